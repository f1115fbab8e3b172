import { createHash } from 'node:crypto'
import type { ComponentLogger, ContentRouting, Logger, PeerId, Startable } from '@libp2p/interface'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { logger, type Logger as LineLogger, type LogSink } from '../log/index.js'
import type { DiscoveredPeers } from './discovery.js'

/**
 * Finding the swarm's members beyond the LAN: every node stores a provider record in the swarm's
 * DHT under one key that all members derive alike, and looks up who else provides it. A node that
 * knows a single member (any bootstrap address) thus finds the others, and those that join later,
 * without the meeting node having to be up or to know them all. docs/protocol.md §1.1 gives the
 * derivation byte for byte.
 */

/** Domain tag of the derivation; a new version of it gets a new tag. */
export const MEMBERS_KEY_TAG = 'swarm-encode/members/1'
/** The name whose key swarms without a pre-shared key meet under. */
export const PUBLIC_SWARM_NAME = 'public'
/** CID codec of the key: raw (the hash names no content, only a meeting point). */
const RAW_CODEC = 0x55
/** Multihash code of SHA-256. */
const SHA2_256 = 0x12

/**
 * The rendezvous key, a CIDv1 (raw, sha2-256): SHA-256 of the tag, a zero byte, the kind ("psk" or
 * "name"), a zero byte and then either the pre-shared key's 32 bytes or the name in UTF-8. Only the
 * hash travels: the DHT never sees the key itself (and with a key, only members reach the DHT).
 */
export function membersKey (o: { swarmKey?: Uint8Array, name?: string }): CID {
  const h = createHash('sha256').update(MEMBERS_KEY_TAG).update(Buffer.from([0]))
  if (o.swarmKey !== undefined) h.update('psk').update(Buffer.from([0])).update(pskBytes(o.swarmKey))
  else h.update('name').update(Buffer.from([0])).update(o.name ?? PUBLIC_SWARM_NAME, 'utf8')
  return CID.createV1(RAW_CODEC, Digest.create(SHA2_256, h.digest()))
}

/** The 32 key bytes of a swarm key, whether given raw or as the normalised key file (private-swarm.ts). */
function pskBytes (key: Uint8Array): Uint8Array {
  if (key.byteLength === 32) return key
  const hex = /([0-9a-f]{64})\s*$/i.exec(Buffer.from(key).toString('utf8'))?.[1]
  if (hex === undefined) throw new Error('swarm key: expected 32 bytes or a /key/swarm/psk/1.0.0/ file')
  return Buffer.from(hex, 'hex')
}

export interface MemberFinderComponents {
  peerId: PeerId
  contentRouting: ContentRouting
  /** libp2p's event bus; only connection:open and connection:close are listened to. */
  events: Pick<EventTarget, 'addEventListener' | 'removeEventListener'>
  logger: ComponentLogger
}

export interface MemberFinderInit {
  key: CID
  /** Found members are reported here as found by the DHT; the peer dialer connects to them. */
  peers: DiscoveredPeers
  log?: LogSink
  /** Between rounds once other members were found: a member that joins later looks up the others itself. */
  intervalMs?: number
  /**
   * After the first round that found others (and after each reconnection), the next rounds come
   * sooner, doubling from this up to intervalMs: a record stored just before ours (a member that
   * reconnected to a restarted meeting node) or a member that joins a minute later is found then,
   * not ten minutes on. Only while a round finds fewer than EARLY_ROUNDS_BELOW_MEMBERS others: in a
   * larger swarm a member that joins later looks the others up itself, and fifty nodes looking
   * again a minute after joining cost a host already busy with their joining.
   *
   * These early rounds only look up; they do not store our record again once it was stored since
   * the connection. A provider keeps its own record (kad-dht stores it locally before sending it
   * out), and while the swarm is this small every member is among the K = 20 peers closest to the
   * key, so a lookup's walk reaches it and it answers for itself; the addresses an answer gives
   * come from the answering node's peer store (identify), not from the record. Storing it again
   * a minute on told the swarm nothing new, and cost every member as much as the lookup: in an
   * idle swarm of 9 nodes an early round took 0.6 s of CPU on each, about half that without.
   */
  earlyIntervalMs?: number
  /** After a round that found nobody (the DHT had no peers yet), the next comes after this, doubling up to intervalMs. */
  retryMs?: number
  /** How long after the first connection (or the first after losing all) the round starts: identify must have run so the DHT knows the peer. */
  settleMs?: number
  /** Each of provide and lookup gives up after this. */
  queryTimeoutMs?: number
}

const DEFAULT_INTERVAL_MS = 10 * 60_000
const DEFAULT_EARLY_INTERVAL_MS = 60_000
export const EARLY_ROUNDS_BELOW_MEMBERS = 16
const DEFAULT_RETRY_MS = 5_000
const DEFAULT_SETTLE_MS = 2_000
const DEFAULT_QUERY_TIMEOUT_MS = 30_000
/** Providers taken from one lookup: the DHT returns records from the network, so bounded. */
const MAX_PROVIDERS_PER_ROUND = 256

export class MemberFinder implements Startable {
  private readonly debug: Logger
  private readonly log: LineLogger
  private controller = new AbortController()
  private timer: ReturnType<typeof setTimeout> | undefined
  private running = false
  private failures = 0
  /** Rounds that found others since the node's first connection (or the first after losing all). */
  private successes = 0
  /** Whether our record was stored since the node's first connection (or the first after losing all). */
  private stored = false
  /** Whether the round to come is an early one (earlyIntervalMs), which stores nothing once `stored`. */
  private early = false
  private readonly seen = new Set<string>()
  private readonly counters = { rounds: 0, provided: 0 }
  private connected = 0

  constructor (private readonly components: MemberFinderComponents, private readonly init: MemberFinderInit) {
    this.debug = components.logger.forComponent('swarm:members')
    this.log = logger('peers', init.log, '')
    this.onOpen = this.onOpen.bind(this)
    this.onClose = this.onClose.bind(this)
  }

  readonly [Symbol.toStringTag] = 'swarm:member-finder'

  start (): void {
    this.controller = new AbortController()
    this.components.events.addEventListener('connection:open', this.onOpen)
    this.components.events.addEventListener('connection:close', this.onClose)
  }

  stop (): void {
    this.controller.abort()
    this.components.events.removeEventListener('connection:open', this.onOpen)
    this.components.events.removeEventListener('connection:close', this.onClose)
    if (this.timer !== undefined) clearTimeout(this.timer)
  }

  /** The key, how many rounds ran, whether our record is stored, and how many members were found so far. */
  get stats (): { key: string, rounds: number, provided: boolean, found: number } {
    return { key: this.init.key.toString(), rounds: this.counters.rounds, provided: this.counters.provided > 0, found: this.seen.size }
  }

  private onOpen (): void {
    // The first connection, or the first after the node lost them all (the meeting node restarted,
    // the network came back): our record may be gone with the peers that held it, so store it again.
    if (this.connected++ === 0) {
      this.successes = 0
      this.stored = false
      this.early = false
      this.schedule(this.init.settleMs ?? DEFAULT_SETTLE_MS)
    }
  }

  private onClose (): void { this.connected = Math.max(0, this.connected - 1) }

  private schedule (ms: number): void {
    if (this.controller.signal.aborted) return
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = setTimeout(() => { void this.round() }, ms)
    this.timer.unref()
  }

  private async round (): Promise<void> {
    if (this.running || this.controller.signal.aborted) return
    this.running = true
    this.counters.rounds++
    const timeout = this.init.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS
    let others = 0
    try {
      if (!this.early || !this.stored) {
        try {
          await this.components.contentRouting.provide(this.init.key, { signal: AbortSignal.any([this.controller.signal, AbortSignal.timeout(timeout)]) })
          this.counters.provided++
          this.stored = true
        } catch (err) {
          this.debug('storing our provider record failed: %e', err)
        }
      }
      const self = this.components.peerId.toString()
      let n = 0
      for await (const info of this.components.contentRouting.findProviders(this.init.key, { signal: AbortSignal.any([this.controller.signal, AbortSignal.timeout(timeout)]) })) {
        if (++n > MAX_PROVIDERS_PER_ROUND) break
        const id = info.id.toString()
        if (id === self) continue
        others++
        if (!this.seen.has(id)) {
          this.seen.add(id)
          this.log.info(`found swarm member ${id} through the DHT (provider record)`)
        }
        this.init.peers.found('dht', info)
      }
    } catch (err) {
      this.debug('looking up members failed: %e', err)
    } finally {
      this.running = false
    }
    const interval = this.init.intervalMs ?? DEFAULT_INTERVAL_MS
    if (others > 0) {
      this.failures = 0
      const early = others < EARLY_ROUNDS_BELOW_MEMBERS ? (this.init.earlyIntervalMs ?? DEFAULT_EARLY_INTERVAL_MS) * 2 ** this.successes++ : interval
      this.early = early < interval
      this.schedule(Math.min(interval, early))
    } else {
      this.early = false
      this.schedule(Math.min(interval, (this.init.retryMs ?? DEFAULT_RETRY_MS) * 2 ** this.failures++))
    }
  }
}

export function memberFinder (init: MemberFinderInit): (components: MemberFinderComponents) => MemberFinder {
  return (components) => new MemberFinder(components, init)
}
