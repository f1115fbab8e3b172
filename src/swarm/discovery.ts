import { RELAY_V2_HOP_CODEC } from '@libp2p/circuit-relay-v2'
import type { ComponentLogger, IdentifyResult, Logger, PeerDiscovery, PeerId, PeerInfo, Startable } from '@libp2p/interface'
import type { ConnectionManager } from '@libp2p/interface-internal'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { logger, type Logger as LineLogger, type LogSink } from '../log/index.js'
import { circuitVia, isRelayed } from './reach.js'

/**
 * Turning discovered peers into connections. js-libp2p (since v2) only records a discovered peer in
 * its peer store; nothing dials it. It also emits `peer:discovery` only for a peer it has never
 * stored, so a LAN peer that restarts would never be dialled again. The discovery modules' own
 * `peer` events fire every time a peer answers (mDNS: every query round), so we listen to those.
 */

export const DISCOVERY_SOURCES = ['mdns', 'bootstrap', 'dht'] as const
export type DiscoverySource = typeof DISCOVERY_SOURCES[number]
/** How a peer came to us: a discovery source, or `inbound` when it dialled us before we heard of it. */
export type FoundBy = DiscoverySource | 'inbound'

/** A peer that keeps answering is remembered; the least recently heard go first past this many. */
const MAX_REMEMBERED_PEERS = 1024
/** Discovery events carry addresses from the network: keep a bounded number per peer. */
const MAX_ADDRS_PER_PEER = 16

export interface DiscoveredPeer {
  id: PeerId
  sources: Set<DiscoverySource>
  /** Addresses the peer was last heard at, with its /p2p/ id, ready to dial. */
  addrs: Multiaddr[]
  lastHeard: number
}

type FoundListener = (peer: DiscoveredPeer, source: DiscoverySource) => void

/**
 * Every peer the node's discovery modules reported, with how it was found. Shared by the tagged
 * discovery modules (which are built before libp2p's services) and the peer dialer.
 */
export class DiscoveredPeers {
  private readonly peers = new Map<string, DiscoveredPeer>()
  private readonly listeners: FoundListener[] = []

  constructor (private readonly now: () => number = Date.now) {}

  /** Set by the dialer: whether a connection to the peer is open. */
  isConnected: (peer: string) => boolean = () => false

  found (source: DiscoverySource, info: PeerInfo): void {
    const key = info.id.toString()
    const known = this.peers.get(key)
    // The DHT also reports every peer that connects to us and speaks its protocol: that peer was
    // not found by the DHT, it came to us (or through another source already recorded).
    if (source === 'dht' && known?.sources.has('dht') !== true && this.isConnected(key)) return
    const addrs = dialableAddrs(info, source).slice(0, MAX_ADDRS_PER_PEER)
    const peer: DiscoveredPeer = known ?? { id: info.id, sources: new Set(), addrs: [], lastHeard: 0 }
    peer.sources.add(source)
    if (addrs.length > 0) peer.addrs = addrs
    peer.lastHeard = this.now()
    // Map order is insertion order: re-inserting keeps the most recently heard at the end.
    this.peers.delete(key)
    this.peers.set(key, peer)
    while (this.peers.size > MAX_REMEMBERED_PEERS) this.peers.delete(this.peers.keys().next().value as string)
    for (const l of this.listeners) l(peer, source)
  }

  get (peer: string): DiscoveredPeer | undefined { return this.peers.get(peer) }

  /** How the peer was found: its discovery sources in a fixed order, or `inbound` if none. */
  foundBy (peer: string): FoundBy[] {
    const sources = this.peers.get(peer)?.sources
    if (sources === undefined || sources.size === 0) return ['inbound']
    return DISCOVERY_SOURCES.filter(s => sources.has(s))
  }

  onFound (listener: FoundListener): void { this.listeners.push(listener) }
}

/**
 * The addresses worth dialling, each ending in the peer's id so the dial checks whom it reached.
 * mDNS answers and DHT records list every address of the peer, its loopback too: from another
 * machine that address is our own, never the peer, so it is dropped unless it is all there is
 * (nodes on one host). Bootstrap addresses are the user's, taken as given.
 */
function dialableAddrs (info: PeerInfo, source: DiscoverySource): Multiaddr[] {
  const id = info.id.toString()
  const seen = new Set<string>()
  const withId = info.multiaddrs.flatMap(a => {
    const ended = endingInId(a, id)
    if (ended === undefined || seen.has(ended.toString())) return []
    seen.add(ended.toString())
    return [ended]
  })
  if (source === 'bootstrap') return withId
  const notLoopback = withId.filter(a => !isLoopback(a))
  return notLoopback.length > 0 ? notLoopback : withId
}

/**
 * The address ending in `/p2p/ID`: as given when it does, with it appended when it names no peer
 * after its last hop (a relayed address from a DHT record comes as `…/p2p/RELAY/p2p-circuit`,
 * where the relay's id is not the peer's), and none when it ends in another peer's id (libp2p
 * refuses a dial whose addresses name different peers, and would dial none of them).
 */
function endingInId (a: Multiaddr, id: string): Multiaddr | undefined {
  const parts = a.getComponents()
  const last = parts[parts.length - 1]
  if (last?.name === 'p2p') return last.value === id ? a : undefined
  return a.encapsulate(`/p2p/${id}`)
}

function isLoopback (a: Multiaddr): boolean {
  const host = a.getComponents()[0]
  if (host === undefined) return false
  if (host.name === 'ip4') return host.value?.startsWith('127.') === true
  if (host.name === 'ip6') return host.value === '::1'
  return false
}

/**
 * Wraps a peer discovery module (or a service that is one, like kad-dht) so each peer it reports is
 * recorded with its source. The listener is added before libp2p's own, so the record exists by the
 * time anything else hears of the peer.
 */
export function tagDiscovery<C, D extends PeerDiscovery> (source: DiscoverySource, peers: DiscoveredPeers, factory: (components: C) => D): (components: C) => D {
  return (components) => {
    const discovery = factory(components)
    discovery.addEventListener('peer', (evt) => { peers.found(source, evt.detail) })
    return discovery
  }
}

export interface PeerDialerInit {
  peers: DiscoveredPeers
  /** Addresses (ending in /p2p/ID) to keep a connection to: redialled whenever they are not connected. */
  bootstrap?: string[]
  /** How often bootstrap peers are checked and redialled. */
  redialIntervalMs?: number
  dialTimeoutMs?: number
  /** After a failed dial the peer is left alone this long, doubling with each failure up to maxBackoffMs. */
  minBackoffMs?: number
  maxBackoffMs?: number
  /**
   * While the node has no connection at all, a peer that failed is tried again this soon, whatever
   * its backoff (default 10 s): a node alone does nothing, and its bootstrap node, refused once in
   * a crowd starting together, would otherwise wait minutes (50 nodes on one host: 4 never joined).
   */
  aloneRetryMs?: number
  /**
   * Peers that the DHT names are dialled only while the node has fewer connections than this: a
   * worker dials the originators it needs anyway, and at fifty nodes a full mesh costs every node
   * CPU for nothing. mDNS and bootstrap peers are dialled up to the connection manager's limit.
   */
  dhtDialTarget?: number
  /** Lines for the node's log (connected, could not connect). */
  log?: LogSink
  now?: () => number
}

export interface PeerDialerComponents {
  peerId: PeerId
  connectionManager: ConnectionManager
  logger: ComponentLogger
  /** libp2p's event bus: `peer:identify` says which connected peers serve as relays. */
  events?: Pick<EventTarget, 'addEventListener' | 'removeEventListener'>
}

export interface UnreachablePeer {
  id: string
  foundBy: FoundBy[]
  /** Failed dials in a row. */
  attempts: number
  /** Why the first of them failed, in words. */
  error: string
  retryInMs: number
}

interface DialState {
  failures: number
  retryAt: number
  /** When the last dial failed. */
  failedAt?: number
  /** The failure that was logged since the peer last connected, if any. */
  lastLogged?: string
  inFlight: boolean
}

export const DEFAULT_DIAL_TIMEOUT_MS = 10_000
export const DEFAULT_MIN_BACKOFF_MS = 5_000
export const DEFAULT_MAX_BACKOFF_MS = 5 * 60_000
export const DEFAULT_REDIAL_INTERVAL_MS = 10_000
export const DEFAULT_DHT_DIAL_TARGET = 32
export const DEFAULT_ALONE_RETRY_MS = 10_000
const MDNS_TIE_BREAK_MS = 1500
const MDNS_DIAL_TIMEOUT_MS = 3_000
/** libp2p's own limit per address of a dial (its `addressDialTimeout` default). */
const LIBP2P_ADDRESS_DIAL_TIMEOUT_MS = 6_000
/** The longest a dial of a peer with many addresses may take. */
const MAX_DIAL_TIMEOUT_MS = 30_000
/** Relays tried for one peer found by the DHT, beyond the addresses it was found with. */
const MAX_RELAY_ROUTES = 2
/** Relays remembered (connected peers that serve the hop protocol); checked for a connection when used. */
const MAX_KNOWN_RELAYS = 16

/**
 * Dials every peer the discovery modules report, unless it is us, already connected, being dialled,
 * backing off after a failure, or the node is at its connection limit. A peer that answers mDNS
 * again after it went away is dialled again; one that keeps failing (a node without this swarm's
 * key is refused by the pre-shared-key handshake) is logged once and retried with a growing delay,
 * never in a tight loop.
 */
export class PeerDialer implements Startable {
  private readonly log: Logger
  private readonly peers: LineLogger
  private readonly state = new Map<string, DialState>()
  private readonly bootstrap: Array<{ id: string, addr: Multiaddr }>
  private controller = new AbortController()
  private timer: NodeJS.Timeout | undefined
  private started = false
  private readonly now: () => number
  private readonly self: string
  private readonly counters = { dials: 0, connected: 0, failed: 0 }
  /** Peers that said (in identify) they serve the circuit relay hop protocol, in the order heard. */
  private readonly relays = new Set<string>()

  constructor (private readonly components: PeerDialerComponents, private readonly init: PeerDialerInit) {
    this.log = components.logger.forComponent('swarm:dialer')
    // These lines never had a prefix; people and tests look for them as they are.
    this.peers = logger('peers', init.log, '')
    this.now = init.now ?? Date.now
    this.self = components.peerId.toString()
    this.bootstrap = (init.bootstrap ?? []).map(a => {
      const addr = multiaddr(a)
      const id = addr.getComponents().findLast(c => c.name === 'p2p')?.value
      if (id === undefined) throw new Error(`bootstrap address ${a} does not end in /p2p/PEERID`)
      return { id, addr }
    })
    init.peers.onFound((peer, source) => { if (this.started) this.consider(peer.id.toString(), source) })
    init.peers.isConnected = (peer) => components.connectionManager.getConnections().some(c => c.remotePeer.toString() === peer)
    this.onIdentify = this.onIdentify.bind(this)
  }

  readonly [Symbol.toStringTag] = 'swarm:peer-dialer'

  start (): void {
    this.started = true
    this.controller = new AbortController()
    this.timer = setInterval(() => { this.redialBootstrap() }, this.init.redialIntervalMs ?? DEFAULT_REDIAL_INTERVAL_MS)
    this.timer.unref()
    this.components.events?.addEventListener('peer:identify', this.onIdentify)
  }

  /** Once the transports listen: bootstrap peers are reported like any discovered peer, so dialled at once. */
  afterStart (): void {
    for (const b of this.bootstrap) this.init.peers.found('bootstrap', { id: peerIdFromString(b.id), multiaddrs: [b.addr] })
  }

  stop (): void {
    this.started = false
    this.controller.abort()
    if (this.timer !== undefined) clearInterval(this.timer)
    this.components.events?.removeEventListener('peer:identify', this.onIdentify)
  }

  /** How a peer was found, for `swarm peers` and `status`. */
  foundBy (peer: string): FoundBy[] { return this.init.peers.foundBy(peer) }

  /**
   * Peers that were found but could not be connected to (failed at least once since they last
   * connected), with the reason: what `swarm peers` shows under "found, not connected".
   */
  unreachable (): UnreachablePeer[] {
    const list: UnreachablePeer[] = []
    const connected = new Set(this.components.connectionManager.getConnections().map(c => c.remotePeer.toString()))
    for (const [id, st] of this.state) {
      if (st.failures === 0 || connected.has(id)) continue
      list.push({ id, foundBy: this.foundBy(id), attempts: st.failures, error: st.lastLogged ?? '', retryInMs: Math.max(0, Math.round(st.retryAt - this.now())) })
    }
    return list
  }

  /** Dials, failures and successes so far: for tests and `status`. */
  get stats (): { dials: number, connected: number, failed: number } { return { ...this.counters } }

  private redialBootstrap (): void {
    for (const b of this.bootstrap) {
      if (this.components.connectionManager.getConnections().some(c => c.remotePeer.toString() === b.id)) continue
      this.dial(b.id, [b.addr], 'bootstrap', [b.addr])
    }
  }

  private consider (peer: string, source: DiscoverySource, deferred = false): void {
    if (peer === this.self || !this.started) return
    if (source === 'mdns' && !deferred && this.self > peer) {
      // Both ends hear each other's mDNS answer at the same moment; the lower id dials first and the
      // other only if that connection has not arrived shortly after, so a pair keeps one connection.
      setTimeout(() => { this.consider(peer, source, true) }, MDNS_TIE_BREAK_MS).unref()
      return
    }
    const cm = this.components.connectionManager
    const connections = cm.getConnections()
    if (connections.some(c => c.remotePeer.toString() === peer)) return
    const limit = source === 'dht' ? Math.min(cm.getMaxConnections(), this.init.dhtDialTarget ?? DEFAULT_DHT_DIAL_TARGET) : cm.getMaxConnections()
    if (connections.length >= limit) return
    const known = this.init.peers.get(peer)
    if (known === undefined) return
    // A DHT record may come without addresses: then the peer store and peer routing find them.
    if (known.addrs.length === 0) { this.dial(peer, known.id, source, known.addrs); return }
    const addrs = known.sources.has('dht') ? [...known.addrs, ...this.relayRoutes(peer, known.addrs)] : known.addrs
    this.dial(peer, addrs, source, addrs)
  }

  /**
   * Routes to a peer through the relays this node is connected to directly, for a peer found by the
   * DHT. Its record may list only addresses that lead nowhere from here: a member behind NAT is
   * listed with its home address by a node that learned of it before it held a reservation (seen
   * from another home: no answer, and the next lookup ten minutes away). A relay it holds no slot
   * on refuses at once; libp2p dials relayed addresses after the direct ones, so a peer that
   * answers directly is not relayed.
   */
  private relayRoutes (peer: string, addrs: Multiaddr[]): Multiaddr[] {
    const named = new Set(addrs.flatMap(a => a.getComponents().filter(c => c.name === 'p2p').map(c => c.value)))
    const routes: Multiaddr[] = []
    for (const relay of this.relays) {
      if (routes.length >= MAX_RELAY_ROUTES) break
      if (relay === peer || named.has(relay)) continue
      const direct = this.components.connectionManager.getConnections(peerIdFromString(relay)).find(c => !isRelayed(c))
      if (direct === undefined) { this.relays.delete(relay); continue }
      routes.push(circuitVia(direct).encapsulate(`/p2p/${peer}`))
    }
    return routes
  }

  /**
   * A connected peer serves as a relay: remember it, and try again at once the peers found by the
   * DHT that could not be reached, now that there is a route to them there may not have been.
   */
  private onIdentify (evt: Event): void {
    const { peerId, protocols, connection } = (evt as CustomEvent<IdentifyResult>).detail
    const relay = peerId.toString()
    if (!protocols.includes(RELAY_V2_HOP_CODEC) || isRelayed(connection) || this.relays.has(relay)) return
    this.relays.add(relay)
    if (this.relays.size > MAX_KNOWN_RELAYS) this.relays.delete(this.relays.values().next().value as string)
    for (const [peer, st] of this.state) {
      if (st.failures === 0 || st.inFlight || this.init.peers.get(peer)?.sources.has('dht') !== true) continue
      st.retryAt = 0
      this.consider(peer, 'dht')
    }
  }

  /** `addrs`: what discovery reported, for the timeout and the log line; `target`: what is dialled. */
  private dial (peer: string, target: Multiaddr[] | PeerId, source: DiscoverySource, addrs: Multiaddr[]): void {
    const state = this.state.get(peer) ?? { failures: 0, retryAt: 0, inFlight: false }
    if (!this.state.has(peer)) {
      this.state.set(peer, state)
      // Bounded like the discovered peers: the oldest dial records go first.
      if (this.state.size > MAX_REMEMBERED_PEERS) this.state.delete(this.state.keys().next().value as string)
    }
    const alone = this.components.connectionManager.getConnections().length === 0
    const retryAt = alone ? Math.min(state.retryAt, (state.failedAt ?? 0) + (this.init.aloneRetryMs ?? DEFAULT_ALONE_RETRY_MS)) : state.retryAt
    if (state.inFlight || this.now() < retryAt) return
    state.inFlight = true
    this.counters.dials++
    // A LAN peer connects and finishes its handshakes in milliseconds; one that does not within a
    // few seconds is most likely a node of another swarm whose pre-shared key garbles the handshake
    // into a stall, and it should be given up on quickly. Elsewhere libp2p tries a peer's addresses
    // one after another, each for up to 6 s: a member in another home lists private addresses that
    // lead nowhere from here before its relayed one, so the dial gets that long again for each
    // address beyond the first (at most MAX_DIAL_TIMEOUT_MS).
    const base = this.init.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
    const timeoutMs = source === 'mdns' ? Math.min(MDNS_DIAL_TIMEOUT_MS, base) : Math.min(Math.max(base, MAX_DIAL_TIMEOUT_MS), base + LIBP2P_ADDRESS_DIAL_TIMEOUT_MS * Math.max(0, addrs.length - 1))
    const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(timeoutMs)])
    this.components.connectionManager.openConnection(Array.isArray(target) && target.length === 1 ? target[0] as Multiaddr : target, { signal }).then((conn) => {
      state.inFlight = false
      if (state.failures > 0 || state.lastLogged !== undefined) this.peers.info(`connected to peer ${peer} (found by ${source}) at ${conn.remoteAddr.toString()} after ${state.failures} failed attempts`)
      else this.peers.info(`connected to peer ${peer} (found by ${source}) at ${conn.remoteAddr.toString()}`)
      state.failures = 0
      state.retryAt = 0
      state.lastLogged = undefined
      this.counters.connected++
    }, (err: Error) => {
      state.inFlight = false
      if (!this.started) return
      state.failures++
      this.counters.failed++
      const min = this.init.minBackoffMs ?? DEFAULT_MIN_BACKOFF_MS
      const max = this.init.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS
      const backoff = Math.min(max, min * 2 ** (state.failures - 1))
      // A little jitter, so two nodes that refuse each other do not dial in step forever.
      state.retryAt = this.now() + backoff * (0.9 + 0.2 * Math.random())
      state.failedAt = this.now()
      const reason = describeDialError(err)
      this.log('dial %s (found by %s) failed (%d): %s', peer, source, state.failures, err.message)
      // Once per peer until it connects: with a foreign key the garbled handshake fails a different
      // way each time, so "once per reason" would still repeat.
      if (state.lastLogged !== undefined) return
      state.lastLogged = reason
      this.peers.info(`could not connect to peer ${peer} (found by ${source}) ${addrs.length > 0 ? `at ${addrs.map(a => a.toString()).join(', ')}` : '(addresses from the peer store)'}: ${reason}; ` +
        'trying again later with a growing delay (not logged again)')
    })
  }
}

/** Says what a failed dial most likely means, in words a person running `swarm join` can act on. */
export function describeDialError (err: Error): string {
  // A dial of several addresses fails with each address's error: the one that says most wins (a
  // timeout on a private address of another network says more than our own loopback's refusal).
  const each = (err as Partial<AggregateError>).errors
  if (Array.isArray(each) && each.length > 0) {
    const reasons = each.map(e => describeDialError(e as Error))
    return reasons.find(r => r.startsWith('no answer')) ?? reasons.find(r => r.startsWith('no route')) ?? reasons[0] as string
  }
  const text = `${err.name}: ${err.message}`
  if (/ECONNREFUSED/.test(text)) return 'connection refused (nothing listens there: is swarm join running, and its port open in the firewall?)'
  if (/Abort|Timeout|ETIMEDOUT/i.test(text)) return 'no answer in time (a firewall dropping the port, the peer is gone, or it is a node of another swarm: a different --swarm-key, or none)'
  if (/EHOSTUNREACH|ENETUNREACH/.test(text)) return 'no route to the peer'
  // The pre-shared-key handshake garbles everything after the nonce exchange when keys differ:
  // Noise or multistream-select then fail on bytes that make no sense, or the peer hangs up.
  if (/psk|nonce|decrypt|invalid|unexpected|length|multistream|handshake|Unsupported|EOF|ECONNRESET|closed|reset/i.test(text)) {
    return `refused during the handshake (${err.message.slice(0, 120)}): the peer is most likely not in this swarm (a different --swarm-key, or none) or another program`
  }
  return err.message.slice(0, 200)
}

/** A libp2p service factory for the dialer, as js-libp2p's own services are built. */
export function peerDialer (init: PeerDialerInit): (components: PeerDialerComponents) => PeerDialer {
  return (components) => new PeerDialer(components, init)
}
