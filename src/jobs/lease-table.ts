import { randomBytes } from 'node:crypto'
import { logger, shortChunk, shortJob, shortPeer, type Logger, type LogSink } from '../log/index.js'
import type { Answer, EmitEvent, OriginatorEvent } from '../swarm/index.js'
import { refusal, type ChunkRecord, type JobRecord, type JobStats, type LeaseRecord, type ResultRecord } from './types.js'
import type { EncoderId } from '../media/index.js'
import { encoderOf } from './job-settings.js'

export const DEFAULT_LEASE_MS = 30_000
/** A waiting peer that has not asked again for this long leaves the queue (it found work elsewhere, or left). */
const WAITING_TTL_MS = 15_000
const DEFAULT_MAX_CHUNK_FAILURES = 3
/** How long a chunk done under a second holder is announced, so that holder hears it should stop. */
const SETTLED_MS = 30_000
/** Recent chunks whose pace estimates how long a fresh copy of a chunk would take. */
const PACE_SAMPLES = 64
/** Former holders remembered per chunk (a claim of theirs after a lapse is told `lease-expired`, not `not-holder`). */
const PAST_HOLDERS = 16
/**
 * Leases one peer may hold on one job at once, backups included. A claim does not carry the
 * claimant's slots and nothing else announces them, so this is a constant: it covers every slot
 * count defaultSlots gives (at most 7, on a 7-core machine) plus the prefetched chunk. An
 * originator run with more slots assumes its peers may have as many (see Originator). Without a
 * cap, two fresh peer ids could hold the lease and the backup of every chunk of a job.
 */
export const DEFAULT_MAX_LEASES_PER_PEER = 8
/**
 * A lease's hard deadline is this many times what a fresh copy of its chunk takes at the swarm's
 * observed pace (the median of PACE_SAMPLES): heartbeats keep a live holder's lease, but progress
 * it only claims cannot keep a chunk past that. A backup is offered at twice the pace (see
 * backupWorthwhile), so by the deadline a second copy has usually been running for a while.
 */
const DEADLINE_PACE_FACTOR = 4
/**
 * A holder's reported pace counts for backups once it has done this share of its chunk. Before, it
 * says little: SVT-AV1 on a 142-frame 720p chunk reported its first frames 5 s in (its decoder's
 * pre-roll and its own start), at 1.2 fps, a running average that reached 15.6 fps by frame 114;
 * and a worker at 0 frames is rarely waiting for a slot any more (prefetches start near the end of
 * the encode before them and leave a job's last chunks alone: worker/claim-policy.ts).
 */
const PACE_FROM_SHARE = 0.1
/** No deadline shorter than this, so a job of very short chunks does not cut honest holders off on noise. */
const DEFAULT_MIN_DEADLINE_MS = 60_000
/**
 * Until a chunk of the job has come back there is no pace: a lease then ends this long after its
 * grant. Generous (a first 4K placebo chunk can take this long), but finite; the first result
 * anyone delivers tightens every running lease's deadline at once.
 */
const DEFAULT_NO_PACE_DEADLINE_MS = 30 * 60_000

export interface LeaseTableOptions {
  /** Lease length. Short, so a dead worker costs little; heartbeats renew it. */
  leaseMs?: number
  /**
   * A chunk that failed on this many distinct peers is tried by this node's own worker (see
   * `self`) and fails the job if that fails too. Remote peers' reasons alone never fail a job.
   */
  maxChunkFailures?: number
  now: () => number
  /**
   * How many peers could encode a job of this encoder (this node included): once every one of them
   * has failed a job twice, nobody will finish it. Peers without the encoder never claim it.
   */
  swarmSize?: (encoder: EncoderId) => number
  /** Whether a peer is still in the swarm; a peer that left is no evidence that the job cannot finish. Default: every peer is. */
  isPresent?: (peer: string) => boolean
  /**
   * This node's own peer id when its worker can encode: a chunk that failed on maxChunkFailures
   * peers is kept for it, and only its own failure (evidence we can trust) fails the job. It is
   * also exempt from the lease cap and the deadline rule (it is not a stranger).
   */
  self?: string
  /** Leases one peer may hold on one job (default DEFAULT_MAX_LEASES_PER_PEER). */
  maxLeasesPerPeer?: number
  /** The shortest hard deadline a lease gets (default 60 s). */
  minDeadlineMs?: number
  /** A lease's deadline while the job has no pace yet (default 30 min). */
  noPaceDeadlineMs?: number
  /** Ids of new leases: random, unless a test wants them predictable. */
  newLeaseId?: () => string
  log?: LogSink
  /** A job's leases changed; `announce` is false for heartbeats, which only need keeping. */
  changed: (job: JobRecord, announce: boolean) => void
  /** A job can no longer finish (a chunk failed everywhere): the owner fails it, which calls abandon. */
  failed: (job: JobRecord, error: string) => void
  /** Leases granted and ended, as node events (swarm/events.ts); the owner stamps them. */
  event?: EmitEvent<OriginatorEvent>
}

/** A claim's answer: the lease as this table records it. */
export type LeaseAnswer = Answer<{ lease: LeaseRecord }>
/** A peer's current lease on a chunk, with its job and chunk; or why it has none. */
type HeldAnswer = Answer<{ job: JobRecord, chunk: ChunkRecord, lease: LeaseRecord }>
type ChunkAnswer = Answer<{ job: JobRecord, chunk: ChunkRecord }>
/** How an upload that was let in ended: `lost` (the bytes never all arrived: it may be tried again) or `refused` (they failed verification). */
export type UploadEnd = 'lost' | 'refused'

export function countStat (job: JobRecord, what: keyof JobStats): void {
  job.stats ??= { leases: 0, backupLeases: 0, droppedResults: 0 }
  job.stats[what] = (job.stats[what] ?? 0) + 1
}

/** The middle of a job's pace samples (the upper one of an even count); undefined for none. */
export function median (values: number[]): number | undefined {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]
}

function nothingToOpen (job: JobRecord): boolean {
  return job.state === 'encoding' && !job.chunks.some(c => c.state === 'open' || c.state === 'pending')
}

/**
 * The lease policy of every job this node originates, and nothing else: who may hold which chunk,
 * for how long, when a second copy is worth giving out, who waits for work, and when a chunk has
 * failed on enough peers to give up. It does no I/O and reads time only from its clock. The job
 * records are the originator's (they are what job.json holds): the table writes their chunks'
 * state, leases, past holders, failures and lease counters, and tells the owner through `changed`.
 */
export class LeaseTable {
  /** Per job: peers whose claims found nothing to take, in the order they first asked → when they last asked. */
  private readonly waiting = new Map<string, Map<string, number>>()
  /** Per job: seconds per frame of recent chunks, lease to verified result; how long a fresh copy of a chunk would take. */
  private readonly secondsPerFrame = new Map<string, number[]>()
  private readonly settled = new Map<string, Array<{ chunk: number, at: number }>>()
  /**
   * Per job: uploads by lease id, in flight or refused after verification. One upload per lease:
   * a second while one runs, or after one was refused, is refused before any byte.
   */
  private readonly uploads = new Map<string, Map<string, { peer: string, chunk: number, state: 'uploading' | 'refused' }>>()
  private readonly leaseMs: number
  private readonly maxChunkFailures: number
  private readonly maxLeasesPerPeer: number
  private readonly now: () => number
  private readonly newLeaseId: () => string
  private readonly log: Logger

  constructor (private readonly jobs: ReadonlyMap<string, JobRecord>, private readonly o: LeaseTableOptions) {
    this.leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS
    this.maxChunkFailures = o.maxChunkFailures ?? DEFAULT_MAX_CHUNK_FAILURES
    this.maxLeasesPerPeer = o.maxLeasesPerPeer ?? DEFAULT_MAX_LEASES_PER_PEER
    this.now = o.now
    this.newLeaseId = o.newLeaseId ?? (() => randomBytes(12).toString('hex'))
    this.log = logger('jobs', o.log)
  }

  /**
   * First valid claim wins: the chunk must exist, be open, and the job still be running. A peer
   * whose claim found nothing to take joins the job's waiting queue (see waitingPeers), unless it
   * holds a lease on the job: then its claim was for its next chunk (or another of its slots), and
   * peers with nothing to do go first. Queued, busy peers were handed chunks they would not start
   * for a whole encode, and while any peer is queued nobody prefetches: one lost prefetch race at
   * 50 nodes turned prefetching off for everyone.
   */
  claim (jobId: string, chunkIndex: number, claimant: string): LeaseAnswer {
    const answer = this.leaseOrRefuse(jobId, chunkIndex, claimant)
    const queue = this.waiting.get(jobId)
    if (answer.ok) queue?.delete(claimant)
    else if ((answer.code === 'not-open' || answer.code === 'already-done') && !this.holdsLease(jobId, claimant)) {
      const q = queue ?? new Map<string, number>()
      // Re-inserted at the back only when new; a peer keeps its place while it keeps asking.
      q.set(claimant, this.now())
      this.waiting.set(jobId, q)
    }
    return answer
  }

  /**
   * Peers that asked this job for a chunk and found none, longest waiting first (at most `max`,
   * none that last asked more than WAITING_TTL_MS ago). Announced with the job: when chunks open,
   * the i-th waiting peer claims the i-th open chunk and the rest wait, so a chunk draws about one
   * claim however many peers are idle, instead of one from each of them.
   */
  waitingPeers (jobId: string, max = 64): string[] {
    const queue = this.waiting.get(jobId)
    if (queue === undefined) return []
    const now = this.now()
    for (const [peer, at] of queue) if (now - at > WAITING_TTL_MS) queue.delete(peer)
    return [...queue.keys()].slice(0, max)
  }

  /**
   * Heartbeat: renews the lease and records progress, never past the lease's deadline: a holder
   * that only says it is nearly done keeps the chunk no longer than an honest slow one would.
   */
  renew (jobId: string, chunkIndex: number, leaseId: string, peer: string, progress: { framesDone: number, fps: number }): Answer<{ expiresAt: number }> {
    const found = this.current(jobId, chunkIndex, leaseId, peer)
    if (!found.ok) return found
    const lease = found.lease
    const deadline = this.deadlineOf(found.job, found.chunk, lease)
    if (deadline <= this.now()) {
      this.overdue(found.job, found.chunk, lease)
      this.o.changed(found.job, true)
      return refusal('lease-expired', `lease on chunk ${chunkIndex} reached its deadline without a result`)
    }
    lease.expiresAt = Math.min(this.now() + this.leaseMs, deadline)
    lease.renewedAt = this.now()
    lease.framesDone = Math.max(0, Math.min(found.chunk.frames, Math.floor(progress.framesDone)))
    lease.fps = Math.max(0, Number.isFinite(progress.fps) ? progress.fps : 0)
    this.o.changed(found.job, false)
    return { ok: true, expiresAt: lease.expiresAt }
  }

  /**
   * The holder gives the chunk back, saying why. A peer's reason is advisory: it is counted and
   * logged, and once enough peers gave the same chunk back it is kept for this node's own worker,
   * whose failure is the only one that fails the job (see hopeless).
   */
  release (jobId: string, chunkIndex: number, leaseId: string, peer: string, reason: string): Answer {
    const found = this.current(jobId, chunkIndex, leaseId, peer)
    if (!found.ok) return found
    const { job, chunk } = found
    this.drop(chunk, found.lease)
    this.o.event?.({ type: 'lease:ended', why: 'released', jobId, chunk: chunkIndex, peer, ...(reason !== '' ? { reason: reason.slice(0, 500) } : {}) })
    if (reason !== '' && reason !== 'shutdown') {
      chunk.failures.push({ peer, reason: reason.slice(0, 500), at: this.now() })
      this.log.info(`${shortPeer(peer)} released ${shortChunk(jobId, chunkIndex)}: ${reason}`)
      const hopeless = this.hopeless(job, chunk, reason)
      if (hopeless !== undefined) this.o.failed(job, hopeless)
    }
    this.o.changed(job, true)
    return { ok: true }
  }

  /** Leases not renewed in time lapse: a backup takes over its chunk, or the chunk is open again. */
  expire (): number {
    const now = this.now()
    let expired = 0
    for (const job of this.jobs.values()) {
      if (job.state !== 'encoding' && job.state !== 'splitting') continue
      let changed = false
      for (const chunk of job.chunks) {
        if (chunk.state !== 'leased') continue
        for (const lease of [chunk.backup, chunk.lease]) {
          if (lease === undefined) continue
          if (this.deadlineOf(job, chunk, lease) <= now) {
            this.overdue(job, chunk, lease)
          } else if (lease.expiresAt <= now) {
            this.log.info(`lease on ${shortChunk(job.id, chunk.index)} held by ${shortPeer(lease.holder)} expired`)
            this.drop(chunk, lease)
            this.o.event?.({ type: 'lease:ended', why: 'expired', jobId: job.id, chunk: chunk.index, peer: lease.holder })
          } else {
            continue
          }
          changed = true
          expired++
        }
      }
      if (changed) this.o.changed(job, true)
    }
    return expired
  }

  /** The lease `leaseId` that `peer` holds on the chunk now, with its job and chunk. */
  current (jobId: string, chunkIndex: number, leaseId: string, peer: string): HeldAnswer {
    const found = this.locate(jobId, chunkIndex)
    if (!found.ok) return found
    const { chunk } = found
    if (chunk.state === 'done') return refusal('already-done', `chunk ${chunkIndex} is already done`)
    const lease = [chunk.lease, chunk.backup].find(l => l !== undefined && l.id === leaseId && l.holder === peer)
    if (lease === undefined) {
      return refusal(chunk.pastHolders.includes(peer) ? 'lease-expired' : 'not-holder', `no current lease ${leaseId.slice(0, 8)} on chunk ${chunkIndex} for this peer`)
    }
    return { ...found, lease }
  }

  /**
   * Lets an upload in, before any byte is written, or says why not. Who may deliver: the chunk's
   * current holder, or its most recent former holder under the lease it held, for as long after
   * that lease ended as a lease on the chunk may last (late results are welcome, no work thrown
   * away; an old or forgotten lease is not). One upload per lease, and no more uploads in flight
   * per peer than it may hold leases. Every upload let in must be ended with endUpload, or kept
   * with complete.
   */
  beginUpload (jobId: string, chunkIndex: number, leaseId: string, peer: string): ChunkAnswer {
    const found = this.locate(jobId, chunkIndex)
    if (!found.ok) return found
    const { job, chunk } = found
    if (chunk.state === 'done') return refusal('already-done', `chunk ${chunkIndex} is already done`)
    if (job.state !== 'encoding' && job.state !== 'splitting') return refusal('job-finished', `job ${shortJob(jobId)} is ${job.state}`)
    const holds = [chunk.lease, chunk.backup].some(l => l?.holder === peer && l.id === leaseId)
    const former = chunk.formerLease
    if (!holds) {
      if (former?.holder !== peer || former.id !== leaseId) {
        return refusal(chunk.pastHolders.includes(peer) ? 'lease-expired' : 'not-holder', `no current or most recent lease ${leaseId.slice(0, 8)} on chunk ${chunkIndex} for this peer`)
      }
      if (this.now() - former.endedAt > this.allowance(job, chunk)) return refusal('lease-expired', `the lease on chunk ${chunkIndex} ended too long ago for a late result`)
    }
    const uploads = this.uploads.get(jobId) ?? new Map<string, { peer: string, chunk: number, state: 'uploading' | 'refused' }>()
    const previous = uploads.get(leaseId)
    if (previous !== undefined) {
      return refusal('duplicate-upload', previous.state === 'uploading' ? `a result under lease ${leaseId.slice(0, 8)} is already being uploaded` : `a result under lease ${leaseId.slice(0, 8)} was already refused`)
    }
    const inFlight = [...uploads.values()].filter(u => u.peer === peer && u.state === 'uploading').length
    if (peer !== this.o.self && inFlight >= this.maxLeasesPerPeer) return refusal('too-many-uploads', `this peer already has ${inFlight} uploads in flight for this job`)
    uploads.set(leaseId, { peer, chunk: chunkIndex, state: 'uploading' })
    this.uploads.set(jobId, uploads)
    return found
  }

  /**
   * An upload let in by beginUpload ended without its result being kept. Lost bytes may be sent
   * again under the same lease; a refused result may not, and the lease it was made under ends
   * now (its holder has nothing better to give; the chunk goes to a backup or opens).
   */
  endUpload (jobId: string, chunkIndex: number, leaseId: string, how: UploadEnd): void {
    const uploads = this.uploads.get(jobId)
    const upload = uploads?.get(leaseId)
    if (uploads === undefined || upload === undefined || upload.chunk !== chunkIndex) return
    if (how === 'lost') { uploads.delete(leaseId); return }
    upload.state = 'refused'
    const job = this.jobs.get(jobId)
    const chunk = job?.chunks[chunkIndex]
    const lease = [chunk?.lease, chunk?.backup].find(l => l?.id === leaseId)
    if (job === undefined || chunk === undefined || lease === undefined || chunk.state !== 'leased') return
    this.log.info(`lease on ${shortChunk(jobId, chunkIndex)} held by ${shortPeer(lease.holder)} ends: its result was refused`)
    this.drop(chunk, lease)
    this.o.event?.({ type: 'lease:ended', why: 'refused', jobId, chunk: chunkIndex, peer: lease.holder })
    this.o.changed(job, true)
  }

  /** A pending chunk's segment is cut: anyone may claim it now. */
  open (job: JobRecord, chunk: ChunkRecord): void {
    if (chunk.state === 'pending') chunk.state = 'open'
    this.o.changed(job, true)
  }

  /**
   * A verified result for the chunk was kept: the chunk is done for good, its pace teaches how long
   * a fresh copy takes, and whoever else still works on it should stop now rather than at its next
   * heartbeat.
   */
  complete (job: JobRecord, chunk: ChunkRecord, peer: string, result: ResultRecord): void {
    chunk.result = result
    chunk.state = 'done'
    const winner = [chunk.lease, chunk.backup].find(l => l?.holder === peer)
    if (winner !== undefined && chunk.frames > 0) {
      const samples = this.secondsPerFrame.get(job.id) ?? []
      samples.push((this.now() - winner.issuedAt) / 1000 / chunk.frames)
      this.secondsPerFrame.set(job.id, samples.slice(-PACE_SAMPLES))
    }
    const others = [chunk.lease, chunk.backup].filter(l => l !== undefined && l.holder !== peer)
    if (others.length > 0) {
      const list = (this.settled.get(job.id) ?? []).filter(s => this.now() - s.at <= SETTLED_MS)
      list.push({ chunk: chunk.index, at: this.now() })
      this.settled.set(job.id, list)
    }
    delete chunk.lease
    delete chunk.backup
    delete chunk.reservedFor
    const uploads = this.uploads.get(job.id)
    for (const [id, u] of uploads ?? []) if (u.chunk === chunk.index) uploads?.delete(id)
    this.log.trace(`chunk ${shortChunk(job.id, chunk.index)} done by ${shortPeer(peer)}`)
    this.o.changed(job, true)
  }

  /** Chunks of a job that were done while a second peer still worked on them: that peer should stop. */
  settledRecently (jobId: string, withinMs = SETTLED_MS): number[] {
    const now = this.now()
    return (this.settled.get(jobId) ?? []).filter(s => now - s.at <= withinMs).map(s => s.chunk)
  }

  /** Leased chunks that could use a second copy, furthest from done first; empty while anything is open. */
  backupCandidates (job: JobRecord, max = 8): number[] {
    if (!nothingToOpen(job)) return []
    return job.chunks
      .filter(c => c.state === 'leased' && c.backup === undefined && c.lease !== undefined && this.backupWorthwhile(job, c))
      .sort((a, b) => (b.frames - (b.lease?.framesDone ?? 0)) - (a.frames - (a.lease?.framesDone ?? 0)))
      .slice(0, max)
      .map(c => c.index)
  }

  /** The job's pace: seconds a frame of its recent chunks took, lease to kept result (the median); undefined before the first. */
  secondsPerFrameOf (jobId: string): number | undefined { return median(this.secondsPerFrame.get(jobId) ?? []) }

  /** A peer holds nothing on this job any more (our own worker, restarted): its leases would only lapse. */
  dropHolder (job: JobRecord, peer: string): void {
    for (const chunk of job.chunks) {
      for (const lease of [chunk.backup, chunk.lease]) if (lease?.holder === peer) this.drop(chunk, lease)
    }
  }

  /**
   * A peer was caught with a wrong result: nothing it gave the job counts any more. Every chunk it
   * encoded that was kept (checked in full or structure only) goes back to pending, without its
   * result or segment record (its segment was deleted when the chunk was done, so the owner cuts
   * it again and then opens it), and every lease the peer holds on the job ends. A running job is
   * splitting again while those chunks are cut; a failed one stays failed (a retry cuts them). A
   * done job is past help: nothing changes. Returns the chunks reopened, with the results they had,
   * so the owner can delete the files.
   */
  reopenEncodedBy (job: JobRecord, peer: string): Array<{ chunk: ChunkRecord, result: ResultRecord }> {
    if (job.state === 'done') return []
    this.dropHolder(job, peer)
    const reopened: Array<{ chunk: ChunkRecord, result: ResultRecord }> = []
    for (const chunk of job.chunks) {
      const result = chunk.result
      if (chunk.state !== 'done' || result?.encodedBy !== peer) continue
      chunk.state = 'pending'
      delete chunk.result
      delete chunk.segment
      // Its lease ended with the result; a late upload under it must not count for the chunk's new round.
      delete chunk.formerLease
      reopened.push({ chunk, result })
    }
    if (reopened.length > 0) {
      job.stats ??= { leases: 0, backupLeases: 0, droppedResults: 0 }
      job.stats.requeuedResults = (job.stats.requeuedResults ?? 0) + reopened.length
      if (job.state === 'encoding' || job.state === 'merging') job.state = 'splitting'
      this.log.info(`${shortJob(job.id)}: ${shortPeer(peer)} was caught with a wrong result; the ${reopened.length} chunk${reopened.length === 1 ? '' : 's'} it encoded (${reopened.map(r => r.chunk.index).join(', ')}) go back to be encoded again`)
      this.o.event?.({ type: 'chunks:requeued', jobId: job.id, peer, chunks: reopened.map(r => r.chunk.index) })
    }
    this.o.changed(job, true)
    return reopened
  }

  /** A failed job hands out nothing and holds nothing: its leased chunks are open again for a retry. */
  abandon (job: JobRecord): void {
    for (const c of job.chunks) if (c.state === 'leased') { delete c.lease; delete c.backup; c.state = 'open' }
  }

  /** The job is gone (cancelled): its queue, pace and uploads go with it. */
  forget (jobId: string): void {
    this.waiting.delete(jobId)
    this.secondsPerFrame.delete(jobId)
    this.uploads.delete(jobId)
  }

  /**
   * When a lease ends whatever its holder says: its grant plus what the chunk may take (see
   * allowance). This node's own worker has no deadline: it is the one that tries a chunk last.
   */
  deadlineOf (job: JobRecord, chunk: ChunkRecord, lease: LeaseRecord): number {
    if (lease.holder === this.o.self) return Number.POSITIVE_INFINITY
    return lease.issuedAt + this.allowance(job, chunk)
  }

  /** How long a lease on this chunk may last: DEADLINE_PACE_FACTOR fresh copies at the job's pace, within the floor; long while there is no pace. */
  private allowance (job: JobRecord, chunk: ChunkRecord): number {
    const perFrame = median(this.secondsPerFrame.get(job.id) ?? [])
    if (perFrame === undefined || perFrame <= 0) return this.o.noPaceDeadlineMs ?? DEFAULT_NO_PACE_DEADLINE_MS
    // Whole milliseconds: expiry times cross the wire as integers.
    return Math.max(this.o.minDeadlineMs ?? DEFAULT_MIN_DEADLINE_MS, Math.ceil(DEADLINE_PACE_FACTOR * chunk.frames * perFrame * 1000))
  }

  /** A lease reached its deadline without a result: it ends, and its holder may not claim that chunk again (it would only hold it once more). */
  private overdue (job: JobRecord, chunk: ChunkRecord, lease: LeaseRecord): void {
    this.log.info(`lease on ${shortChunk(job.id, chunk.index)} held by ${shortPeer(lease.holder)} reached its deadline (${lease.framesDone}/${chunk.frames} frames reported) without a result`)
    const overdue = chunk.overdue ?? []
    if (!overdue.includes(lease.holder)) overdue.push(lease.holder)
    if (overdue.length > PAST_HOLDERS) overdue.shift()
    chunk.overdue = overdue
    this.drop(chunk, lease)
    this.o.event?.({ type: 'lease:ended', why: 'overdue', jobId: job.id, chunk: chunk.index, peer: lease.holder })
  }

  private leasesHeld (job: JobRecord, peer: string): number {
    let n = 0
    for (const c of job.chunks) if (c.state === 'leased') for (const l of [c.lease, c.backup]) if (l?.holder === peer) n++
    return n
  }

  private locate (jobId: string, chunkIndex: number): ChunkAnswer {
    const job = this.jobs.get(jobId)
    if (job === undefined) return refusal('unknown-job', `no job ${shortJob(jobId)} here`)
    const chunk = job.chunks[chunkIndex]
    if (chunk === undefined) return refusal('unknown-chunk', `job ${shortJob(jobId)} has no chunk ${chunkIndex}`)
    return { ok: true, job, chunk }
  }

  /** Whether the peer holds a lease (or a backup) on a chunk of the job now. */
  holdsLease (jobId: string, peer: string): boolean {
    const job = this.jobs.get(jobId)
    return job?.chunks.some(c => c.state === 'leased' && (c.lease?.holder === peer || c.backup?.holder === peer)) ?? false
  }

  private leaseOrRefuse (jobId: string, chunkIndex: number, claimant: string): LeaseAnswer {
    const job = this.jobs.get(jobId)
    if (job === undefined) return refusal('unknown-job', `no job ${shortJob(jobId)} here`)
    if (job.state === 'done' || job.state === 'failed' || job.state === 'merging') return refusal('job-finished', `job ${shortJob(jobId)} is ${job.state}`)
    const chunk = job.chunks[chunkIndex]
    if (chunk === undefined || !Number.isInteger(chunkIndex)) return refusal('unknown-chunk', `job ${shortJob(jobId)} has no chunk ${chunkIndex}`)
    if (chunk.state === 'done') return refusal('already-done', `chunk ${chunkIndex} is already done`)
    if (chunk.state === 'pending') return refusal('not-open', `chunk ${chunkIndex} is not cut yet`)
    if (claimant !== this.o.self) {
      if (chunk.reservedFor !== undefined) return refusal('not-open', `chunk ${chunkIndex} failed on ${new Set(chunk.failures.map(f => f.peer)).size} peers and is kept for the originator's own encoder`)
      if (chunk.overdue?.includes(claimant) === true) return refusal('not-open', `chunk ${chunkIndex} reached its deadline under this peer's lease before`)
      const held = this.leasesHeld(job, claimant)
      if (held >= this.maxLeasesPerPeer) return refusal('too-many-leases', `this peer holds ${held} leases on job ${shortJob(jobId)}, the most one peer may`)
    }
    if (chunk.state === 'leased') return this.backupLease(job, chunk, claimant)
    const lease = this.newLease(claimant, false)
    chunk.state = 'leased'
    chunk.lease = lease
    countStat(job, 'leases')
    this.o.changed(job, true)
    this.log.trace(`lease ${shortChunk(jobId, chunkIndex)} → ${shortPeer(claimant)}`)
    this.o.event?.({ type: 'lease:granted', jobId, chunk: chunkIndex, peer: claimant, backup: false })
    return { ok: true, lease }
  }

  /**
   * Backup tasks, as MapReduce does them: once nothing is open, an idle peer may take a second copy
   * of a leased chunk so one slow or vanished worker does not hold up the whole job's tail.
   */
  private backupLease (job: JobRecord, chunk: ChunkRecord, claimant: string): LeaseAnswer {
    const lease = chunk.lease as LeaseRecord
    if (!nothingToOpen(job)) return refusal('not-open', `chunk ${chunk.index} is leased to another peer`)
    if (chunk.backup !== undefined || lease.holder === claimant) return refusal('not-open', `chunk ${chunk.index} already has two holders`)
    if (!this.backupWorthwhile(job, chunk)) return refusal('not-open', `chunk ${chunk.index} is leased to another peer, which should finish it before a second copy could`)
    const backup = this.newLease(claimant, true)
    chunk.backup = backup
    countStat(job, 'backupLeases')
    this.o.changed(job, true)
    this.log.trace(`backup lease ${shortChunk(job.id, chunk.index)} → ${shortPeer(claimant)} (holder ${shortPeer(lease.holder)} at ${lease.framesDone}/${chunk.frames})`)
    this.o.event?.({ type: 'lease:granted', jobId: job.id, chunk: chunk.index, peer: claimant, backup: true })
    return { ok: true, lease: backup }
  }

  private newLease (holder: string, backup: boolean): LeaseRecord {
    const now = this.now()
    return { id: this.newLeaseId(), holder, issuedAt: now, expiresAt: now + this.leaseMs, framesDone: 0, fps: 0, ...(backup ? { backup: true } : {}) }
  }

  /**
   * Whether a second copy of a leased chunk would likely finish before its holder does (the LATE
   * scheduler's rule): a copy takes what chunks of this job have taken per frame so far, lease to
   * verified result. The holder's own pace comes from its heartbeats once it has done
   * PACE_FROM_SHARE of the chunk; before that it is assumed to go at the usual pace from its lease
   * on, so it only counts as late once it has had half as long again as a fresh copy would need.
   * A stranger's progress is only what it says, so past twice a fresh copy's time it is late
   * whatever it says; this node's own worker's progress is measured, not claimed.
   */
  private backupWorthwhile (job: JobRecord, chunk: ChunkRecord): boolean {
    const lease = chunk.lease
    const perFrame = median(this.secondsPerFrame.get(job.id) ?? [])
    if (lease === undefined || perFrame === undefined || perFrame <= 0) return true
    const fresh = chunk.frames * perFrame
    const age = (this.now() - lease.issuedAt) / 1000
    if (lease.holder !== this.o.self && age > 2 * fresh) return true
    if (lease.fps > 0 && lease.framesDone >= PACE_FROM_SHARE * chunk.frames) return (chunk.frames - lease.framesDone) / lease.fps > fresh
    return age > 1.5 * fresh
  }

  /**
   * Why the job cannot finish after this failure, if it cannot. A failure is a peer's word, and
   * peer ids cost nothing: three fresh ones giving a chunk back "with a reason" used to fail any
   * job in milliseconds. So a chunk given back by maxChunkFailures distinct peers is kept for this
   * node's own worker, and the job fails for it only once that worker failed it too. Without an
   * own worker (self unset) peers' reasons stay advisory: shown in status, never fatal.
   */
  private hopeless (job: JobRecord, chunk: ChunkRecord, reason: string): string | undefined {
    const peers = new Set(chunk.failures.map(f => f.peer))
    const self = this.o.self
    // Our worker stops taking a job it failed twice (Worker.unable): a chunk kept for it then waits for ever.
    const selfGaveUp = self !== undefined && job.chunks.reduce((n, c) => n + c.failures.filter(f => f.peer === self).length, 0) >= 2
    if (peers.size >= this.maxChunkFailures) {
      if (self !== undefined && peers.has(self)) return `chunk ${chunk.index} failed on ${peers.size} peers, this node's own encoder among them; last error: ${reason}`
      if (self !== undefined && chunk.reservedFor === undefined) {
        chunk.reservedFor = self
        this.log.info(`${shortChunk(job.id, chunk.index)} was given back by ${peers.size} peers; keeping it for this node's own encoder`)
      }
    }
    const kept = selfGaveUp ? job.chunks.find(c => c.reservedFor === self && c.state !== 'done') : undefined
    if (kept !== undefined) return `chunk ${kept.index} failed on ${new Set(kept.failures.map(f => f.peer)).size} peers and this node's own encoder failed this job twice; last error: ${reason}`
    // Peers that failed this job twice stop claiming it; once every peer still here has (this node
    // included: swarmSize counts it), nobody will finish it. Peers that left are no evidence.
    const present = this.o.isPresent ?? (() => true)
    const perPeer = new Map<string, number>()
    for (const c of job.chunks) for (const f of c.failures) if (present(f.peer)) perPeer.set(f.peer, (perPeer.get(f.peer) ?? 0) + 1)
    const givenUp = [...perPeer.entries()].filter(([, n]) => n >= 2).map(([p]) => p)
    if (self === undefined || !givenUp.includes(self)) return undefined
    if (givenUp.length >= Math.max(1, this.o.swarmSize?.(encoderOf(job)) ?? 1)) return `every peer (${givenUp.length}) failed to encode this job twice; last error, from chunk ${chunk.index}: ${reason}`
    return undefined
  }

  /** A holder lets go (released, lapsed, overdue or refused): a backup takes over the chunk, else it is open again. */
  private drop (chunk: ChunkRecord, lease: LeaseRecord): void {
    if (!chunk.pastHolders.includes(lease.holder)) chunk.pastHolders.push(lease.holder)
    if (chunk.pastHolders.length > PAST_HOLDERS) chunk.pastHolders.shift()
    chunk.formerLease = { id: lease.id, holder: lease.holder, endedAt: this.now() }
    if (chunk.backup === lease) { delete chunk.backup; return }
    if (chunk.backup !== undefined) {
      chunk.lease = { ...chunk.backup, backup: false }
      delete chunk.backup
      return
    }
    delete chunk.lease
    chunk.state = 'open'
  }
}
