import { mkdir, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { Connection, PeerId, PeerStore, PrivateKey, Startable, Stream } from '@libp2p/interface'
import type { ConnectionManager, Registrar } from '@libp2p/interface-internal'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { logger, shortChunk, shortPeer, type Logger, type LogSink } from '../log/index.js'
import { isExpectedRace, type Answer, type ChunkLease, type FetchedSegment, type LeaseGrant, type Refusal, type SegmentCheck, type SegmentOffer } from './contract.js'
import {
  ChunkHeader, ChunkRequest, ClaimAnswer, HeartbeatAnswer, LeaseRequest, PlainAnswer, ResultRequest, ProtocolViolation
} from './messages.js'
import {
  CHUNK_PROTOCOL, LEASE_PROTOCOL, MAX_TRANSFER_BYTES, REQUEST_TIMEOUT_MS, RESULT_PROTOCOL, STREAM_IDLE_TIMEOUT_MS, TRANSFER_ALLOWANCE_MS
} from './protocol.js'
import { NonceCache, signClaim, signLease, verifyClaim, verifyLease } from './signing.js'
import { isRelayed, pathOf, type PeerPath } from './reach.js'
import { FramedStream } from './streams.js'

/** The originator decodes a whole chunk before it answers an upload. */
const RESULT_VERIFY_TIMEOUT_MS = 10 * 60_000

/** A refusal as the wire schema allows it: a message of at most 2,000 characters. */
function wireRefusal (r: Refusal): Refusal {
  return { ok: false, code: r.code, message: r.message.slice(0, 2000) }
}

/**
 * What the protocol handlers need from the node's originator. The swarm layer only moves bytes
 * and checks signatures; whether a claim wins or a result counts is the originator's call.
 */
export interface LeaseArbiter {
  requestLease: (jobId: string, chunk: number, claimant: string) => Answer<LeaseGrant>
  renewLease: (jobId: string, chunk: number, leaseId: string, peer: string, progress: { framesDone: number, fps: number }) => Answer<{ expiresAt: number }>
  releaseLease: (jobId: string, chunk: number, leaseId: string, peer: string, reason: string) => Answer
  segmentFor: (jobId: string, chunk: number, leaseId: string, peer: string) => Answer<SegmentOffer>
  /** Lets an upload of `size` bytes in, before any byte is written, or refuses it; then exactly one of acceptResult and uploadFailed follows. */
  resultSlot: (jobId: string, chunk: number, leaseId: string, peer: string, size: number) => Promise<Answer<{ tmpPath: string, maxBytes: number }>>
  acceptResult: (jobId: string, chunk: number, peer: string, tmpPath: string, sha256: string) => Promise<Answer>
  /** The bytes of an upload let in never all arrived (reset, timeout, SHA-256 mismatch): the partial file and the slot go. */
  uploadFailed: (tmpPath: string) => Promise<void>
  /** A segment's bytes were all written to the holder's stream (the originator tells it as a node event). */
  segmentSent?: (jobId: string, chunk: number, peer: string, bytes: number, relayed: boolean) => void
  /** A segment's transfer broke off after its offer (reset, too slow, shutdown). */
  segmentSendFailed?: (jobId: string, chunk: number, peer: string, reason: string) => void
}

/** The worker's view of one remote originator: the same calls as the in-process link. */
export interface RemoteOriginatorLink {
  /** Connects (directly, else through a relay it announced) and says how; throws when no way works. */
  connect: (signal: AbortSignal) => Promise<PeerPath>
  claim: (jobId: string, chunk: number, signal: AbortSignal) => Promise<Answer<{ lease: ChunkLease }>>
  heartbeat: (lease: ChunkLease, progress: { framesDone: number, fps: number }, signal: AbortSignal) => Promise<Answer<{ expiresAt: number }>>
  release: (lease: ChunkLease, reason: string, signal: AbortSignal) => Promise<Answer>
  /** Downloads the segment; `check` sees its header before any byte is written and may refuse it by throwing. */
  fetchSegment: (lease: ChunkLease, destPath: string, signal: AbortSignal, check?: SegmentCheck) => Promise<FetchedSegment>
  uploadResult: (lease: ChunkLease, path: string, sha256: string, signal: AbortSignal) => Promise<Answer>
}

export interface SwarmEncodeInit {
  arbiter: LeaseArbiter
  log?: LogSink
  now?: () => number
  /** Concurrent inbound streams per connection for each protocol. */
  maxInboundStreams?: number
  idleTimeoutMs?: number
  /** The fixed part of every transfer's deadline (default TRANSFER_ALLOWANCE_MS; tests shorten it). */
  transferAllowanceMs?: number
  /**
   * The node's block list: every stream of a banned peer, and every request about a job it is
   * banned from, is refused with 'banned'; requests that break the protocol and forged claims are
   * counted against their sender (enough of them ban it).
   */
  bans?: { isBanned: (peer: string, jobId?: string) => boolean, violation: (peer: string, message: string) => void }
}

export interface SwarmEncodeComponents {
  peerId: PeerId
  privateKey: PrivateKey
  registrar: Registrar
  connectionManager: ConnectionManager
  peerStore: PeerStore
}

/** Counters for `swarm status` and the benchmark: what crossed the wire. */
export interface TransferStats {
  segmentBytesOut: number
  segmentBytesIn: number
  resultBytesOut: number
  resultBytesIn: number
  /** Of segmentBytesOut and resultBytesIn, what went over relayed connections (through a --relay node). */
  segmentBytesOutRelayed: number
  resultBytesInRelayed: number
  refusedClaims: number
  refusedResults: number
  /** Streams this node served, by protocol: the originator's message load. */
  served: { claim: number, heartbeat: number, release: number, chunk: number, result: number }
}

/**
 * The swarm's encode protocols as a libp2p service, in the shape of @libp2p/ping: a factory that
 * takes components and options, handlers registered on start, every stream bounded in size, time
 * and by an AbortSignal.
 */
export class SwarmEncode implements Startable {
  readonly stats: TransferStats = {
    segmentBytesOut: 0, segmentBytesIn: 0, resultBytesOut: 0, resultBytesIn: 0, segmentBytesOutRelayed: 0, resultBytesInRelayed: 0, refusedClaims: 0, refusedResults: 0,
    served: { claim: 0, heartbeat: 0, release: 0, chunk: 0, result: 0 }
  }
  private readonly nonces = new NonceCache()
  private readonly log: Logger
  private readonly now: () => number
  private readonly idleMs: number
  private readonly transferAllowanceMs: number
  private readonly shutdown = new AbortController()

  constructor (private readonly components: SwarmEncodeComponents, private readonly init: SwarmEncodeInit) {
    this.log = logger('swarm', init.log)
    this.now = init.now ?? Date.now
    this.idleMs = init.idleTimeoutMs ?? STREAM_IDLE_TIMEOUT_MS
    this.transferAllowanceMs = init.transferAllowanceMs ?? TRANSFER_ALLOWANCE_MS
  }

  readonly [Symbol.toStringTag] = 'swarm-encode'

  async start (): Promise<void> {
    // Relayed connections are "limited" in js-libp2p: the encode protocols run on them too (a
    // swarm relay's limits are set to carry whole chunks, see reach.ts).
    const opts = { maxInboundStreams: this.init.maxInboundStreams ?? 32, maxOutboundStreams: 64, runOnLimitedConnection: true }
    await this.components.registrar.handle(LEASE_PROTOCOL, async (s, c) => { await this.serve(s, c, 'lease', this.handleLease.bind(this)) }, opts)
    await this.components.registrar.handle(CHUNK_PROTOCOL, async (s, c) => { await this.serve(s, c, 'chunk', this.handleChunk.bind(this)) }, opts)
    await this.components.registrar.handle(RESULT_PROTOCOL, async (s, c) => { await this.serve(s, c, 'result', this.handleResult.bind(this)) }, opts)
  }

  async stop (): Promise<void> {
    this.shutdown.abort()
    for (const p of [LEASE_PROTOCOL, CHUNK_PROTOCOL, RESULT_PROTOCOL]) await this.components.registrar.unhandle(p)
  }

  // ---- originator side ------------------------------------------------------------------------

  /**
   * Every refusal is logged with the peer and the reason (the peer gets the same words). The races
   * the protocol expects (two workers claim one chunk, a backup copy lands second, a release after
   * a cancel) go to debug: at the default level they drowned out what needs the user's attention.
   */
  private refused (what: string, peer: string, r: Refusal): void {
    const line = `${what} from ${shortPeer(peer)} refused (${r.code}): ${r.message}`
    if (isExpectedRace(r.code)) this.log.debug(line)
    else this.log.info(line)
  }

  private async serve (stream: Stream, connection: Connection, what: string, handler: (f: FramedStream, peer: string, relayed: boolean) => Promise<void>): Promise<void> {
    const peer = connection.remotePeer.toString()
    const f = new FramedStream(stream, this.shutdown.signal, this.idleMs, this.transferAllowanceMs)
    try {
      // The gater keeps a banned peer from connecting; this covers a connection open when it was banned.
      if (await this.refuseBanned(f, peer)) { await f.close(); return }
      await handler(f, peer, isRelayed(connection))
      await f.close()
    } catch (err) {
      const e = err as Error
      this.log.info(`${what} stream from ${shortPeer(peer)} refused: ${e.message}`)
      if (e instanceof ProtocolViolation) {
        this.init.bans?.violation(peer, e.message)
        // Tell an honest-but-buggy peer what was wrong before hanging up.
        await f.writeMessage({ ok: false, code: 'bad-request', message: e.message.slice(0, 500) }).catch(() => {})
        await f.close()
      } else {
        f.abort(e)
      }
    }
  }

  /** Answers 'banned' (true) when the peer is banned from this node, or from the job the request is about. */
  private async refuseBanned (f: FramedStream, peer: string, jobId?: string): Promise<boolean> {
    if (this.init.bans?.isBanned(peer, jobId) !== true) return false
    this.log.debug(`refused a request from ${shortPeer(peer)}: banned${jobId !== undefined ? ` (job ${jobId.slice(0, 8)})` : ''}`)
    await f.writeMessage({ ok: false, code: 'banned', message: jobId !== undefined ? 'this peer is banned from this job' : 'this peer is banned from this node' })
    return true
  }

  private async handleLease (f: FramedStream, peer: string): Promise<void> {
    const req = await f.readMessage(LeaseRequest, 'lease request')
    this.stats.served[req.type]++
    if (await this.refuseBanned(f, peer, req.type === 'claim' ? req.claim.jobId : req.jobId)) return
    const a = this.init.arbiter
    if (req.type === 'claim') {
      const verdict = await verifyClaim({ claim: req.claim, signature: req.signature }, { remotePeer: peer, now: this.now(), nonces: this.nonces })
      if (!verdict.ok) {
        // A forged claim is no clock skew: honest peers sign their own claims with their own key.
        if (verdict.code === 'bad-signature' || verdict.code === 'wrong-signer') this.init.bans?.violation(peer, `claim: ${verdict.message}`)
        this.stats.refusedClaims++
        this.log.info(`claim from ${shortPeer(peer)} refused: ${verdict.message}`)
        await f.writeMessage({ ok: false, code: verdict.code, message: verdict.message })
        return
      }
      const grant = a.requestLease(req.claim.jobId, req.claim.chunk, peer)
      if (!grant.ok) { this.refused('claim', peer, grant); await f.writeMessage(wireRefusal(grant)); return }
      const signed = await signLease(this.components.privateKey, {
        v: 1, jobId: req.claim.jobId, chunk: req.claim.chunk, holder: peer, originator: this.components.peerId.toString(),
        leaseId: grant.lease.id, issuedAt: grant.lease.issuedAt, expiresAt: grant.lease.expiresAt
      })
      await f.writeMessage({ ok: true, ...signed })
    } else if (req.type === 'heartbeat') {
      const r = a.renewLease(req.jobId, req.chunk, req.leaseId, peer, { framesDone: req.framesDone, fps: req.fps })
      if (!r.ok) this.refused('heartbeat', peer, r)
      await f.writeMessage(r.ok ? { ok: true, expiresAt: r.expiresAt } : wireRefusal(r))
    } else {
      const r = a.releaseLease(req.jobId, req.chunk, req.leaseId, peer, req.reason)
      if (!r.ok) this.refused('release', peer, r)
      await f.writeMessage(r.ok ? { ok: true } : wireRefusal(r))
    }
  }

  private async handleChunk (f: FramedStream, peer: string, relayed: boolean): Promise<void> {
    const req = await f.readMessage(ChunkRequest, 'chunk request')
    this.stats.served.chunk++
    if (await this.refuseBanned(f, peer, req.jobId)) return
    const seg = this.init.arbiter.segmentFor(req.jobId, req.chunk, req.leaseId, peer)
    if (!seg.ok) { this.refused('segment', peer, seg); await f.writeMessage(wireRefusal(seg)); return }
    const m = seg.meta
    try {
      await f.writeMessage({ ok: true, size: seg.size, sha256: seg.sha256, meta: { frames: m.frames, selectFromTime: m.selectFromTime, settings: m.settings, ...(m.encoder !== undefined ? { encoder: m.encoder } : {}), frameRate: { num: m.frameRate.num, den: m.frameRate.den }, pixFmt: m.pixFmt, width: m.width, height: m.height } })
      await f.sendFile(seg.path, seg.size)
    } catch (err) {
      this.init.arbiter.segmentSendFailed?.(req.jobId, req.chunk, peer, (err as Error).message)
      throw err
    }
    this.stats.segmentBytesOut += seg.size
    if (relayed) this.stats.segmentBytesOutRelayed += seg.size
    this.log.trace(`sent segment ${shortChunk(req.jobId, req.chunk)} (${seg.size} bytes) to ${shortPeer(peer)}${relayed ? ' through a relay' : ''}`)
    this.init.arbiter.segmentSent?.(req.jobId, req.chunk, peer, seg.size, relayed)
  }

  private async handleResult (f: FramedStream, peer: string, relayed: boolean): Promise<void> {
    const req = await f.readMessage(ResultRequest, 'result request')
    this.stats.served.result++
    if (await this.refuseBanned(f, peer, req.jobId)) { this.stats.refusedResults++; return }
    f.stream.inactivityTimeout = RESULT_VERIFY_TIMEOUT_MS
    const a = this.init.arbiter
    if (req.size > MAX_TRANSFER_BYTES) {
      this.stats.refusedResults++
      const tooLarge: Refusal = { ok: false, code: 'too-large', message: `result of ${req.size} bytes is larger than the ${MAX_TRANSFER_BYTES} any transfer may be` }
      this.refused('result', peer, tooLarge)
      await f.writeMessage(tooLarge)
      return
    }
    // The arbiter decides who may upload and how much before any byte is written (size cap, one upload per lease, disk space).
    const slot = await a.resultSlot(req.jobId, req.chunk, req.leaseId, peer, req.size)
    if (!slot.ok) { this.stats.refusedResults++; this.refused('result', peer, slot); await f.writeMessage(wireRefusal(slot)); return }
    try {
      await f.writeMessage({ ok: true })
      await mkdir(dirname(slot.tmpPath), { recursive: true })
      await f.receiveFile(slot.tmpPath, req.size, req.sha256, `result for chunk ${req.chunk} from ${shortPeer(peer)}`)
    } catch (err) {
      this.stats.refusedResults++
      await a.uploadFailed(slot.tmpPath)
      throw err
    }
    this.stats.resultBytesIn += req.size
    if (relayed) this.stats.resultBytesInRelayed += req.size
    const answer = await a.acceptResult(req.jobId, req.chunk, peer, slot.tmpPath, req.sha256)
    if (!answer.ok) { this.stats.refusedResults++; this.refused('result', peer, answer) }
    await f.writeMessage(answer.ok ? { ok: true } : wireRefusal(answer))
  }

  // ---- worker side ----------------------------------------------------------------------------

  /** A link to a remote originator; `addrs` (from its announcement) let us dial a peer we never met. */
  linkTo (originator: string, addrs: string[] = []): RemoteOriginatorLink {
    const target = peerIdFromString(originator)
    const self = this.components.peerId.toString()
    const remember = async (): Promise<void> => {
      if (addrs.length === 0) return
      const multiaddrs = addrs.flatMap(a => { try { return [multiaddr(a)] } catch { return [] } })
      await this.components.peerStore.merge(target, { multiaddrs }).catch(() => {})
    }
    const cm = this.components.connectionManager
    /**
     * An open connection, direct first, else a relayed one. js-libp2p's openConnection never reuses
     * a relayed ("limited") connection: it would dial again for every stream, waiting out the
     * originator's unreachable private addresses each time.
     */
    const existing = (): Connection | undefined => {
      const open = cm.getConnections(target).filter(c => c.status === 'open')
      return open.find(c => !isRelayed(c)) ?? open[0]
    }
    const connection = async (signal: AbortSignal): Promise<Connection> => {
      const c = existing()
      if (c !== undefined) return c
      await remember()
      return await cm.openConnection(target, { signal })
    }
    const open = async (protocol: string, signal: AbortSignal): Promise<FramedStream> => {
      const stream = await (await connection(signal)).newStream(protocol, { signal, runOnLimitedConnection: true })
      return new FramedStream(stream, signal, this.idleMs, this.transferAllowanceMs)
    }
    const request = async <T extends import('zod').ZodTypeAny>(body: unknown, schema: T, what: string, signal: AbortSignal): Promise<import('zod').infer<T>> => {
      const s = AbortSignal.any([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)])
      const f = await open(LEASE_PROTOCOL, s)
      try {
        await f.writeMessage(body)
        const answer = await f.readMessage(schema, what)
        await f.close()
        return answer
      } catch (err) {
        f.abort(err as Error)
        throw err
      }
    }
    return {
      connect: async (signal) => pathOf([await connection(signal)]) ?? { kind: 'direct' },
      claim: async (jobId, chunk, signal) => {
        const signed = await signClaim(this.components.privateKey, self, jobId, chunk, this.now())
        const answer = await request({ type: 'claim', ...signed }, ClaimAnswer, 'claim answer', signal)
        if (!answer.ok) return answer
        const verdict = await verifyLease({ lease: answer.lease, signature: answer.signature }, { originator, holder: self, jobId, chunk })
        if (!verdict.ok) throw new Error(`originator ${shortPeer(originator)} sent a bad lease: ${verdict.message}`)
        return { ok: true, lease: { jobId, chunk, leaseId: answer.lease.leaseId, originator, expiresAt: answer.lease.expiresAt, issuedAt: answer.lease.issuedAt } }
      },
      heartbeat: async (lease, progress, signal) => await request({ type: 'heartbeat', jobId: lease.jobId, chunk: lease.chunk, leaseId: lease.leaseId, framesDone: Math.floor(progress.framesDone), fps: Math.round(progress.fps * 100) / 100 }, HeartbeatAnswer, 'heartbeat answer', signal),
      release: async (lease, reason, signal) => await request({ type: 'release', jobId: lease.jobId, chunk: lease.chunk, leaseId: lease.leaseId, reason: reason.slice(0, 2000) }, PlainAnswer, 'release answer', signal),
      fetchSegment: async (lease, destPath, signal, check) => {
        const f = await open(CHUNK_PROTOCOL, signal)
        try {
          await f.writeMessage({ jobId: lease.jobId, chunk: lease.chunk, leaseId: lease.leaseId })
          const header = await f.readMessage(ChunkHeader, 'chunk header')
          if (!header.ok) throw new Error(`originator refused the segment: ${header.message}`)
          if (header.size > MAX_TRANSFER_BYTES) throw new ProtocolViolation(`segment of ${header.size} bytes is over the ${MAX_TRANSFER_BYTES} limit`)
          await mkdir(dirname(destPath), { recursive: true })
          await check?.({ size: header.size, meta: header.meta })
          await f.receiveFile(destPath, header.size, header.sha256, `segment ${shortChunk(lease.jobId, lease.chunk)}`)
          this.stats.segmentBytesIn += header.size
          await f.close()
          return { path: destPath, owned: true, meta: header.meta }
        } catch (err) {
          f.abort(err as Error)
          throw err
        }
      },
      uploadResult: async (lease, path, sha256, signal) => {
        const size = (await stat(path)).size
        const f = await open(RESULT_PROTOCOL, signal)
        f.stream.inactivityTimeout = RESULT_VERIFY_TIMEOUT_MS
        try {
          await f.writeMessage({ jobId: lease.jobId, chunk: lease.chunk, leaseId: lease.leaseId, size, sha256 })
          const go = await f.readMessage(PlainAnswer, 'result go-ahead')
          if (!go.ok) { await f.close(); return go }
          await f.sendFile(path, size)
          this.stats.resultBytesOut += size
          // Verification on the other side decodes the whole chunk: allow it time beyond the idle limit.
          const answer = await f.readMessage(PlainAnswer, 'result answer', RESULT_VERIFY_TIMEOUT_MS)
          await f.close()
          return answer
        } catch (err) {
          f.abort(err as Error)
          throw err
        }
      }
    }
  }
}

export function swarmEncode (init: SwarmEncodeInit): (components: SwarmEncodeComponents) => SwarmEncode {
  return (components) => new SwarmEncode(components, init)
}
