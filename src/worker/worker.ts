import { EventEmitter } from 'node:events'
import { mkdir, rm, rmdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import {
  reserveSpace, convicts, DEFAULT_ENCODER, DEFAULT_SEGMENT_LIMITS, encodeChunk, encoderFor, estimateEncodeMemory, formatMemorySize, MemoryBudgetError, SettingsError, sha256File,
  type EncoderSettings, type EncodeProgress, type EncodedChunk, type EncodeChunkOptions, type SegmentLimits, type SpaceReservation
} from '../media/index.js'
import { jobTag, logger, shortChunk, shortPeer, type Logger, type LogSink } from '../log/index.js'
import type { Answer, ChunkLease, FetchedSegment, ReportOffence, SegmentCheck, SegmentMeta, UnstampedEvent, WorkerEvent } from '../swarm/index.js'
// The contract and events modules alone, not the swarm layer's index: the worker needs no libp2p
// to know a race or stamp an event.
import { isExpectedRace } from '../swarm/contract.js'
import { stamped } from '../swarm/events.js'

/**
 * How a worker reaches one originator. Remote originators are reached over libp2p streams; the
 * node's own originator in-process. The worker knows nothing else about transport.
 */
export interface OriginatorLink {
  claim: (jobId: string, chunk: number, signal: AbortSignal) => Promise<Answer<{ lease: ChunkLease }>>
  heartbeat: (lease: ChunkLease, progress: { framesDone: number, fps: number }, signal: AbortSignal) => Promise<Answer<{ expiresAt: number }>>
  release: (lease: ChunkLease, reason: string, signal: AbortSignal) => Promise<Answer>
  /** Fetches the segment to destPath (or returns a path the worker may read but not delete); `check` may refuse it from its header. */
  fetchSegment: (lease: ChunkLease, destPath: string, signal: AbortSignal, check?: SegmentCheck) => Promise<FetchedSegment>
  uploadResult: (lease: ChunkLease, path: string, sha256: string, signal: AbortSignal) => Promise<Answer>
}

/** What the worker knows of a job from its announcements. */
export interface JobView {
  jobId: string
  originator: string
  settings: string
  totalChunks: number
  /** Frames in the whole source, as announced: no segment of the job holds more. */
  totalFrames?: number
  open: number[]
  /** Chunks this worker may take a backup copy of when nothing is open anywhere. */
  backup?: number[]
  /** Chunks done elsewhere: stop encoding them. */
  settled?: number[]
  /** Peers the originator has told no chunk was left for, longest waiting first: the i-th takes the i-th open chunk. */
  waiting?: string[]
  /** Announce sequence number; older announcements are ignored. */
  seq: number
}

export type ChunkEncoder = (o: EncodeChunkOptions) => Promise<EncodedChunk>

export interface WorkerOptions {
  peerId: string
  slots: number
  /** Scratch space; names from the network never become paths outside it. */
  workDir: string
  linkFor: (originator: string) => OriginatorLink
  /** x264 --threads per encode; default lets x264 decide. */
  threads?: number
  /** Nice value of the encoding processes (default ENCODE_NICENESS; 0 keeps the node's own). */
  niceness?: number
  /** Peers in the swarm that encode, this one included (default 1); with slots, how many encoders may want a job's open chunks. */
  swarmSize?: () => number
  /** Leases held but not yet encoding (prefetched), beyond the slots. */
  prefetch?: number
  /** Longest gap between heartbeats; shorter when the originator's leases are short (a third of their length). */
  heartbeatMs?: number
  /**
   * Memory an encode (one slot) may take: chunks whose settings × size need more by the estimate
   * are refused before their segment is downloaded, and the decoder and x264 each run under this
   * limit (media/memory.ts). Unset: no estimate and no limit (tests with a stand-in encoder).
   */
  memoryBudgetBytes?: number
  /** What a segment from another node may ask of this machine: picture size, frames per chunk (default DEFAULT_SEGMENT_LIMITS, fit for 8K). */
  segmentLimits?: SegmentLimits
  /** Test hook: a stand-in encoder. Not reachable from the network. */
  encoder?: ChunkEncoder
  /** An originator caught lying (its segment is not one) is reported here: the daemon bans it (swarm/bans.ts). */
  reportOffence?: ReportOffence
  /** An originator whose segment missed its transfer deadline is reported here: a strike (swarm/bans.ts), enough of them a ban. */
  reportStrike?: ReportOffence
  log?: LogSink
  now?: () => number
}

type Stage = 'fetching' | 'queued' | 'encoding' | 'uploading'

interface Task {
  lease: ChunkLease
  stage: Stage
  framesDone: number
  frames: number
  fps: number
  controller: AbortController
  lastBeat: number
  /** When the segment download began (the claim was granted). */
  fetchStarted: number
  /** Heartbeat period for this lease. */
  beatEvery: number
  segment?: FetchedSegment
  /** The segment's settings as this worker parsed them from its meta: what it checks and encodes. */
  settings?: EncoderSettings
  /** This encode is close enough to its end that the next chunk should be fetched (see prefetchDue). */
  nearEnd?: boolean
  /** When (local time) the lease was first found gone: refused as expired, or lapsed with the originator out of reach. */
  lostAt?: number
}

const HEX_ID = /^[0-9a-f]{64}$/
/** Settings from an originator, parsed and allowlisted by this worker (every job is x264's until jobs name their encoder). */
const settingsFrom = (raw: string): EncoderSettings => encoderFor(DEFAULT_ENCODER).parseSettings(raw)
/**
 * Encodes run below the node's own priority. The node's control work (claims, heartbeats, serving
 * segments, cutting and verifying an originator's chunks) is short but the whole swarm waits on
 * it, and on a machine whose cores all encode it used to queue behind x264. On an otherwise idle
 * machine the encodes still get every cycle; other programs on it stay responsive too.
 */
export const ENCODE_NICENESS = 10
/** After losing a claim race, for this long, a worker chooses among the lowest-numbered few open chunks rather than the lowest. */
const CLAIM_SPREAD = 4
const CONTENDED_MS = 2000
/** How long a chunk meant for a waiting peer is left to it before anyone may claim it (that peer may have found work elsewhere). */
const DEFER_MS = 1000
/**
 * A prefetch starts when a running encode has less than twice the last download's time left, plus
 * this much: soon enough for the download to land before the slot frees, late enough not to hold
 * a chunk another peer could start now, and not all at the start of a job, when every peer's first
 * download is still on its way (at 50 nodes, prefetches then doubled the originator's transfers
 * and the first downloads took 1-2.5 s).
 */
const PREFETCH_MARGIN_MS = 1000
/**
 * A download holds one of the worker's places (slots plus prefetch) for this long at least, or
 * three times the last download's time: past that it is stalled, and the worker claims other work
 * beside it. At most one download per originator runs at a time, and each ends at its transfer
 * deadline, so stalled ones are bounded by the originators heard of; before, a worker awaited
 * every download in its claim loop and one originator trickling a segment froze it (issue 26).
 */
const FETCH_STALL_MIN_MS = 5000
/** How long stop() waits for aborted fetches, encodes and uploads to wind down. */
const STOP_GRACE_MS = 5000
/** How long a job whose originator said we hold as many of its leases as we may is left alone (one of ours ends first). */
const TOO_MANY_LEASES_MS = 3000
/**
 * A segment is a stream copy of the source's video: the chunk's frames plus a pre-roll before and
 * a tail after (at most a GOP each; 600 frames is 10 s at 60 fps). Announcements carry no byte
 * sizes, so a download is bounded by what they and the header do say: that many frames, never
 * more than the job's announced total, each no larger than a raw 16-bit 4:4:4 picture (6 bytes a
 * pixel: no compressed stream copy is larger). Anything above is refused before a byte is written.
 */
const SEGMENT_OVERLAP_FRAMES = 2 * 600
const SEGMENT_RAW_BYTES_PER_PIXEL = 6

/** The most bytes a segment with this header can honestly have (see SEGMENT_OVERLAP_FRAMES). */
export function maxSegmentBytes (meta: SegmentMeta, announcedFrames = Number.POSITIVE_INFINITY): number {
  const frames = Math.min(announcedFrames, meta.frames + SEGMENT_OVERLAP_FRAMES)
  return frames * meta.width * meta.height * SEGMENT_RAW_BYTES_PER_PIXEL + 1024 * 1024
}

/**
 * A job is its originator's: two originators may announce the same id (the same file and settings
 * added on two nodes, or a peer copying another's id in its own name), and neither may touch the
 * other's job through it. Everything the worker keeps about a job is keyed by both.
 */
function jobKey (originator: string, jobId: string): string { return `${originator}/${jobId}` }
/** One chunk of one originator's job. */
function chunkKey (originator: string, jobId: string, chunk: number): string { return `${jobKey(originator, jobId)}#${chunk}` }
/** A peer id as part of a file name: it comes from the network, so nothing but letters and digits. */
function fileTag (originator: string): string { return originator.replace(/[^A-Za-z0-9]/g, '').slice(-24) }

/**
 * The claimant side: watches announced jobs, claims chunks, keeps leases alive with progress,
 * encodes, verifies its own output and returns it. Runs `slots` encodes at once and keeps
 * `prefetch` more chunks downloaded, so the next encode starts without waiting on the network.
 */
export class Worker extends EventEmitter<{ event: [WorkerEvent] }> {
  /** jobKey → the job as its originator last announced it. */
  private readonly jobs = new Map<string, JobView>()
  /** chunkKey → the lease held on it. */
  private readonly tasks = new Map<string, Task>()
  private readonly ready: Task[] = []
  /** chunk key → time until which we do not try it again (it was refused to us). */
  private readonly backoff = new Map<string, number>()
  /** jobKey → when a claim of ours last lost to another peer's. */
  private readonly lostRace = new Map<string, number>()
  /** chunk key → when we first saw it open (for chunks open now). */
  private readonly openSince = new Map<string, number>()
  /** jobKey → time until which we claim nothing of it (its originator said we hold as many leases as we may). */
  private readonly jobBackoff = new Map<string, number>()
  /** Jobs (jobKey) whose settings this machine cannot encode: stop claiming them. */
  private readonly unable = new Map<string, string>()
  /** Tool failures per job (jobKey): one may be transient, two mean this machine cannot do it. */
  private readonly toolFailures = new Map<string, number>()
  /** How long our last segment download from another node took (ms); 0 before the first. */
  private lastFetchMs = 0
  private readonly encoder: ChunkEncoder
  private readonly now: () => number
  private readonly log: Logger
  private heartbeatTimer?: NodeJS.Timeout
  private pumping = false
  /** Fetches, encodes and uploads under way: stop() lets them wind down before removing their files. */
  private readonly inFlight = new Set<Promise<unknown>>()
  /** Aborted by stop(): cuts short a claim still waiting for its answer. */
  private readonly stopping = new AbortController()
  private repump = false
  private stopped = false
  private encodingCount = 0
  private rr = 0

  constructor (private readonly o: WorkerOptions) {
    super()
    this.encoder = o.encoder ?? encodeChunk
    this.now = o.now ?? Date.now
    this.log = logger('worker', o.log)
  }

  /** Emits a node event (swarm/events.ts) stamped with this worker's clock. */
  private tell (event: UnstampedEvent<WorkerEvent>): void { this.emit('event', stamped(event, this.now())) }

  start (): void {
    this.heartbeatTimer = setInterval(() => {
      void this.heartbeatAll()
      // A chunk we backed off from becomes claimable again with no event to say so.
      if (this.wantMore()) void this.pump()
      // Ticks often; each lease is only renewed when its own period (a third of its length) is due.
    }, Math.min(250, this.o.heartbeatMs ?? 5000))
    this.heartbeatTimer.unref()
  }

  /** Gives every lease back (reason "shutdown", which does not count as a failure) and stops. */
  async stop (): Promise<void> {
    this.stopped = true
    this.stopping.abort()
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer)
    const held = [...this.tasks.values()]
    for (const t of held) t.controller.abort()
    await Promise.allSettled(held.map(async t => await this.o.linkFor(t.lease.originator).release(t.lease, 'shutdown', AbortSignal.timeout(3000))))
    // An aborted transfer can still be writing its file; removed under it, the directory came back
    // with a stray segment in it (or rm failed with ENOTEMPTY).
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise(resolve => setTimeout(resolve, STOP_GRACE_MS).unref())])
    await rm(this.o.workDir, { recursive: true, force: true })
  }

  updateJob (view: JobView): void {
    if (!HEX_ID.test(view.jobId)) return
    const jk = jobKey(view.originator, view.jobId)
    // Sequence numbers are one originator's: another's (however large) says nothing about this job.
    const known = this.jobs.get(jk)
    if (known !== undefined && known.seq > view.seq) return
    this.jobs.set(jk, view)
    const now = this.now()
    const openNow = new Set(view.open.map(c => chunkKey(view.originator, view.jobId, c)))
    for (const k of this.openSince.keys()) if (k.startsWith(`${jk}#`) && !openNow.has(k)) this.openSince.delete(k)
    for (const k of openNow) if (!this.openSince.has(k)) this.openSince.set(k, now)
    // The worker's edge for a job's announced settings (the user's), parsed once per job: settings
    // it would refuse anyway mean no claim (and no download) to find out. What it encodes are the
    // settings in each segment's meta, parsed at that edge (fetch).
    if (known === undefined && !this.unable.has(jk)) {
      try { settingsFrom(view.settings) } catch (err) {
        this.unable.set(jk, (err as Error).message)
        this.log.debug(`not taking chunks of ${jobTag(view.jobId)} from ${shortPeer(view.originator)}: ${(err as Error).message}`)
      }
    }
    for (const chunk of view.settled ?? []) {
      const task = this.tasks.get(chunkKey(view.originator, view.jobId, chunk))
      if (task !== undefined && task.stage !== 'uploading') {
        this.log.debug(`${shortChunk(view.jobId, chunk)} was done by another peer; stopping`)
        this.stopTask(task)
      }
    }
    void this.pump()
  }

  /**
   * Forgets a job (withdrawn, or its announcements stopped) and stops its chunks. Their leases are
   * given back, best effort: an originator that is still there (only its gossip did not reach us)
   * can hand the chunks out at once instead of after the lease runs out.
   */
  removeJob (originator: string, jobId: string): void {
    const jk = jobKey(originator, jobId)
    this.jobs.delete(jk)
    this.lostRace.delete(jk)
    this.jobBackoff.delete(jk)
    for (const k of this.openSince.keys()) if (k.startsWith(`${jk}#`)) this.openSince.delete(k)
    for (const t of this.tasks.values()) {
      if (t.lease.jobId !== jobId || t.lease.originator !== originator) continue
      this.stopTask(t)
      void this.o.linkFor(t.lease.originator).release(t.lease, '', AbortSignal.timeout(3000)).catch(() => {})
    }
  }

  /**
   * Stops work on a chunk now. A running fetch or encode notices the abort and cleans up after
   * itself; a prefetched chunk waiting for a slot has nothing running, so it is cleaned up here.
   */
  private stopTask (task: Task): void {
    task.controller.abort()
    if (task.stage === 'queued') void this.cleanup(task)
  }

  status (): { slots: number, memoryBudgetBytes?: number, active: Array<{ originator: string, jobId: string, chunk: number, framesDone: number, frames: number, fps: number, stage: Stage }> } {
    return {
      slots: this.o.slots,
      ...(this.o.memoryBudgetBytes !== undefined ? { memoryBudgetBytes: this.o.memoryBudgetBytes } : {}),
      active: [...this.tasks.values()].map(t => ({ originator: t.lease.originator, jobId: t.lease.jobId, chunk: t.lease.chunk, framesDone: t.framesDone, frames: t.frames, fps: t.fps, stage: t.stage }))
    }
  }

  /** Whether this worker has running work on a job: a lease held, its segment downloading, encoding or uploading. */
  holds (originator: string, jobId: string): boolean {
    for (const t of this.tasks.values()) if (t.lease.originator === originator && t.lease.jobId === jobId) return true
    return false
  }

  private taskKey (lease: ChunkLease): string { return chunkKey(lease.originator, lease.jobId, lease.chunk) }

  /** Picks a chunk to claim: jobs in turn (fair sharing), and within a job a spot that depends on our peer id so peers rarely collide. */
  private pickCandidate (): { view: JobView, chunk: number } | undefined {
    // Open chunks of any job come before backup copies of anyone's stragglers.
    return this.pickFrom(v => v.open, true) ?? this.pickFrom(v => v.backup ?? [], false)
  }

  private pickFrom (chunksOf: (v: JobView) => number[], open: boolean): { view: JobView, chunk: number } | undefined {
    // With every slot busy a claim is a prefetch, which must not take work an idle peer could start
    // now: never our own node's chunks (they need no download), never a backup copy, nothing while
    // idle peers wait for this job's chunks, and only while the job has more open chunks than the
    // swarm has encoders. Near the end a prefetched chunk waits a whole encode for its holder while
    // another encoder runs dry: with 200 equal chunks on 50 peers, some did 5 and some 3.
    const full = this.busyCount() >= this.o.slots
    const encoders = Math.max(1, this.o.swarmSize?.() ?? 1) * this.o.slots
    const due = full && this.prefetchDue()
    const mayPrefetch = (v: JobView): boolean => due && open && chunksOf(v).length > encoders && v.originator !== this.o.peerId && (v.waiting?.length ?? 0) === 0
    const now = this.now()
    const views = [...this.jobs.values()].filter(v => !this.unable.has(jobKey(v.originator, v.jobId)) && !this.downloading(v.originator) && (this.jobBackoff.get(jobKey(v.originator, v.jobId)) ?? 0) <= now && chunksOf(v).length > 0 && (!full || mayPrefetch(v)))
    if (views.length === 0) return undefined
    for (let n = 0; n < views.length; n++) {
      const view = views[(this.rr + n) % views.length] as JobView
      const candidates = chunksOf(view).filter(c => !this.tasks.has(chunkKey(view.originator, view.jobId, c)) && (this.backoff.get(chunkKey(view.originator, view.jobId, c)) ?? 0) <= now)
      if (candidates.length === 0) continue
      // Backups: the furthest behind.
      let chunk: number | undefined = candidates[0]
      if (open) {
        const ascending = candidates.sort((a, b) => a - b)
        // A prefetch leaves the job's last `encoders` open chunks (its smallest: the plan shrinks
        // them so the encoders end together) to be taken last and in order: with two nodes, a
        // prefetch spread over the whole tail once took the 14-frame last chunk early and left a
        // 46-frame one for the end, while the other node waited.
        const pool = full ? ascending.slice(0, Math.max(1, chunksOf(view).length - encoders)) : ascending
        chunk = this.pickOpen(view, pool, now, full ? 2 * encoders : 0)
      }
      if (chunk === undefined) continue
      this.rr = (this.rr + n + 1) % views.length
      return { view, chunk }
    }
    return undefined
  }

  /**
   * Which open chunk to claim (candidates ascending), or none for now. In order, because a job's
   * last chunks are its smallest and the tail ends together only if they are taken last. When the
   * originator lists peers waiting for chunks, the i-th of them takes the i-th open chunk and peers
   * further back (or not listed, if the queue covers every open chunk) leave them alone: one claim
   * per chunk rather than one per idle peer. A chunk nobody took within DEFER_MS is anyone's.
   * Right after losing a claim race, a random one of the first few, so racing peers stop colliding;
   * a prefetch (prefetchSpread > 0), a random one of the first prefetchSpread (twice the encoders).
   */
  private pickOpen (view: JobView, candidates: number[], now: number, prefetchSpread: number): number | undefined {
    const queue = view.waiting ?? []
    if (queue.length > 0) {
      const place = queue.indexOf(this.o.peerId)
      const share = place >= 0 ? place : queue.length
      if (share < candidates.length) return candidates[share]
      const leftOver = candidates.find(c => now - (this.openSince.get(chunkKey(view.originator, view.jobId, c)) ?? now) >= DEFER_MS)
      if (leftOver !== undefined) return leftOver
      return undefined
    }
    // A prefetch is for after the current encode, so any of the next few will do: busy peers all
    // asking for the lowest one at once made 50-60 refused claims a second at 50 nodes. Twice the
    // swarm's encoders, because the lowest ones go first and a view can be half a second old.
    const contended = now - (this.lostRace.get(jobKey(view.originator, view.jobId)) ?? Number.NEGATIVE_INFINITY) < CONTENDED_MS
    const spread = Math.max(prefetchSpread, contended ? CLAIM_SPREAD : 1)
    return candidates[Math.floor(Math.random() * Math.min(candidates.length, spread))]
  }

  /**
   * Whether a running encode is near enough its end to fetch the next chunk now: less than twice
   * the last download's time plus PREFETCH_MARGIN_MS left, at its current speed.
   */
  private prefetchDue (): boolean {
    for (const t of this.tasks.values()) if (t.stage === 'encoding' && t.nearEnd === true) return true
    return false
  }

  private noteProgress (task: Task): void {
    if (task.nearEnd === true || task.fps <= 0) return
    const leftMs = (task.frames - task.framesDone) / task.fps * 1000
    if (leftMs > 2 * this.lastFetchMs + PREFETCH_MARGIN_MS) return
    task.nearEnd = true
    void this.pump()
  }

  private async track<T> (work: Promise<T>): Promise<T> {
    this.inFlight.add(work)
    try { return await work } finally { this.inFlight.delete(work) }
  }

  /** Leases that hold or wait for a slot; a chunk being uploaded no longer does, nor a stalled download (see FETCH_STALL_MIN_MS). */
  private busyCount (): number {
    const now = this.now()
    const stallMs = Math.max(FETCH_STALL_MIN_MS, 3 * this.lastFetchMs)
    let n = 0
    for (const t of this.tasks.values()) {
      if (t.stage === 'uploading') continue
      if (t.stage === 'fetching' && now - t.fetchStarted > stallMs) continue
      n++
    }
    return n
  }

  /** Whether a segment download from this originator is under way: one at a time per originator. */
  private downloading (originator: string): boolean {
    for (const t of this.tasks.values()) if (t.stage === 'fetching' && t.lease.originator === originator) return true
    return false
  }

  private wantMore (): boolean {
    const held = this.busyCount()
    return !this.stopped && held < this.o.slots + (this.o.prefetch ?? 1)
  }

  /**
   * Claims until slots and the prefetch queue are full, then starts encodes. Each download runs
   * on its own (fetch), never awaited here: a slow originator holds its own chunk, not the loop.
   */
  async pump (): Promise<void> {
    if (this.pumping) { this.repump = true; return }
    this.pumping = true
    try {
      do {
        this.repump = false
        while (this.wantMore()) {
          const pick = this.pickCandidate()
          if (pick === undefined) break
          await this.track(this.claim(pick.view, pick.chunk))
        }
        this.startEncodes()
      } while (this.repump && !this.stopped)
    } finally {
      this.pumping = false
    }
  }

  private async claim (view: JobView, chunk: number): Promise<void> {
    const k = chunkKey(view.originator, view.jobId, chunk)
    const link = this.o.linkFor(view.originator)
    let answer: Answer<{ lease: ChunkLease }>
    try {
      answer = await link.claim(view.jobId, chunk, AbortSignal.any([AbortSignal.timeout(10_000), this.stopping.signal]))
    } catch (err) {
      this.backoff.set(k, this.now() + 5000)
      this.log.info(`claim ${shortChunk(view.jobId, chunk)} failed: ${(err as Error).message}`)
      return
    }
    if (!answer.ok) {
      this.tell({ type: 'claim:lost', jobId: view.jobId, chunk, originator: view.originator, code: answer.code, reason: answer.message })
      this.backoff.set(k, this.now() + (answer.code === 'already-done' ? 600_000 : 3000))
      // The originator banned this node (from the job, or from all of it): asking again only costs both sides.
      if (answer.code === 'banned' && !this.unable.has(jobKey(view.originator, view.jobId))) {
        this.unable.set(jobKey(view.originator, view.jobId), answer.message)
        this.log.info(`not taking chunks of ${jobTag(view.jobId)} from ${shortPeer(view.originator)}: ${answer.message}`)
      }
      if (answer.code === 'not-open') this.lostRace.set(jobKey(view.originator, view.jobId), this.now())
      // Every other chunk of the job would be refused too, until one of our leases on it ends.
      if (answer.code === 'too-many-leases') this.jobBackoff.set(jobKey(view.originator, view.jobId), this.now() + TOO_MANY_LEASES_MS)
      // Drop it from our view right away so we do not ask again before the next announcement.
      view.open = view.open.filter(c => c !== chunk)
      view.backup = view.backup?.filter(c => c !== chunk)
      return
    }
    const span = answer.lease.expiresAt - answer.lease.issuedAt
    const beatEvery = Math.max(200, Math.min(this.o.heartbeatMs ?? 5000, Math.floor(span / 3)))
    const task: Task = { lease: answer.lease, stage: 'fetching', framesDone: 0, frames: 0, fps: 0, controller: new AbortController(), lastBeat: this.now(), fetchStarted: this.now(), beatEvery }
    this.tasks.set(k, task)
    view.open = view.open.filter(c => c !== chunk)
    view.backup = view.backup?.filter(c => c !== chunk)
    this.log.trace(`leased ${shortChunk(view.jobId, chunk)}`)
    this.tell({ type: 'claim:won', jobId: view.jobId, chunk, originator: view.originator })
    void this.track(this.fetch(task, view, link)).finally(() => { void this.pump() })
  }

  /** Downloads a leased chunk's segment (within its transfer deadline) and queues it for a slot. */
  private async fetch (task: Task, view: JobView, link: OriginatorLink): Promise<void> {
    const chunk = task.lease.chunk
    let space: SpaceReservation | undefined
    let bytes: number | undefined
    try {
      const dir = join(this.o.workDir, view.jobId)
      const asked = Date.now()
      await mkdir(dir, { recursive: true })
      task.segment = await link.fetchSegment(task.lease, join(dir, `segment-${chunk}-${fileTag(view.originator)}.mkv`), task.controller.signal, async ({ size, meta }) => {
        bytes = size
        if (view.totalFrames !== undefined && meta.frames > view.totalFrames) throw new Error(`the segment's header says ${meta.frames} frames, more than the ${view.totalFrames} the whole job announced`)
        // Memory, before a byte: the decode holds a few pictures of this size, the chunk that many.
        const limits = this.o.segmentLimits ?? DEFAULT_SEGMENT_LIMITS
        if (meta.width > limits.maxSide || meta.height > limits.maxSide || meta.width * meta.height > limits.maxFramePixels) throw new Error(`the segment's header says ${meta.width}x${meta.height} pictures, over this worker's limit (${limits.maxSide} a side, ${limits.maxFramePixels} pixels)`)
        if (meta.frames > limits.maxChunkFrames) throw new Error(`the segment's header says ${meta.frames} frames, over this worker's limit of ${limits.maxChunkFrames} a chunk`)
        // Before a byte too: settings this worker refuses, and settings and picture size that need
        // more than an encode may take here.
        task.settings = settingsFrom(meta.settings)
        this.checkMemoryEstimate(meta, task.settings)
        const max = maxSegmentBytes(meta, view.totalFrames)
        if (size > max) throw new Error(`segment of ${size} bytes is more than the ${max} a ${meta.frames}-frame ${meta.width}x${meta.height} chunk of this job can be`)
        // Reserved until the download ends: concurrent downloads do not all pass against the same free space.
        space = await reserveSpace(dir, size, `segment ${shortChunk(view.jobId, chunk)}`)
      }).finally(() => { space?.release() })
      // This node's own chunks are not downloaded: no header, so their meta is parsed here.
      task.settings ??= settingsFrom(task.segment.meta.settings)
      const tookMs = Date.now() - asked
      // Only downloads: our own node's chunks need none, and timing a prefetch of another node's
      // chunk by them would start it a second before it is needed.
      if (task.segment.owned) this.lastFetchMs = tookMs
      this.log.trace(`fetched ${shortChunk(view.jobId, chunk)} in ${(tookMs / 1000).toFixed(2)} s`)
      this.tell({ type: 'segment:fetched', jobId: view.jobId, chunk, originator: view.originator, downloaded: task.segment.owned, ...(bytes !== undefined ? { bytes } : {}), ms: tookMs })
      task.frames = task.segment.meta.frames
      task.stage = 'queued'
      this.ready.push(task)
      // Now, not when pump() has finished claiming: the next claims (a prefetch that loses a few
      // races) took up to 5 s at the start of a 50-node job while this chunk sat on disk.
      this.startEncodes()
    } catch (err) {
      if (err instanceof MemoryBudgetError) { await this.refuseForMemory(task, err); return }
      this.tell({ type: 'segment:fetch-failed', jobId: view.jobId, chunk, originator: view.originator, reason: (err as Error).message })
      if (err instanceof SettingsError) { await this.refuseSettings(task, err); return }
      await this.giveUp(task, `fetching the segment failed: ${(err as Error).message}`, false)
      // Trickled: the originator kept the download alive below any honest rate until its deadline.
      if ((err as Error).name === 'TransferTooSlow' && view.originator !== this.o.peerId) {
        this.o.reportStrike?.({ peer: view.originator, jobId: view.jobId, reason: `served a segment too slowly: ${(err as Error).message}` })
      }
    }
  }

  private startEncodes (): void {
    while (this.encodingCount < this.o.slots && this.ready.length > 0 && !this.stopped) {
      const task = this.ready.shift() as Task
      if (task.controller.signal.aborted) continue
      this.encodingCount++
      void this.track(this.runEncode(task).then(async (out) => {
        // The slot is free once x264 is done: the upload (and the originator's check of it)
        // overlaps the next encode instead of holding this core idle.
        this.encodingCount--
        void this.pump()
        if (out !== undefined) await this.deliver(task, out)
      }))
    }
  }

  /** Encodes a task's segment; returns the output path, or undefined when the chunk was given back. */
  private async runEncode (task: Task): Promise<string | undefined> {
    const { lease } = task
    const segment = task.segment as FetchedSegment
    const meta = segment.meta
    const out = join(this.o.workDir, lease.jobId, `chunk-${lease.chunk}-${fileTag(lease.originator)}.264`)
    task.stage = 'encoding'
    try {
      // The settings this worker checked when the segment's meta arrived (fetch), never the originator's check.
      const settings = task.settings as EncoderSettings
      // Again here: this node's own chunks are not downloaded, so no header check saw them.
      this.checkMemoryEstimate(meta, settings)
      const options: EncodeChunkOptions = {
        segmentPath: segment.path, selectFromTime: meta.selectFromTime, frameCount: meta.frames, settings,
        frameRate: meta.frameRate, sourcePixFmt: meta.pixFmt, width: meta.width, height: meta.height, outputPath: out, signal: task.controller.signal,
        segmentFromPeer: lease.originator !== this.o.peerId,
        ...(this.o.segmentLimits !== undefined ? { segmentLimits: this.o.segmentLimits } : {}),
        ...(this.o.threads !== undefined ? { threads: this.o.threads } : {}),
        niceness: this.o.niceness ?? ENCODE_NICENESS,
        ...(this.o.memoryBudgetBytes !== undefined ? { memoryLimitBytes: this.o.memoryBudgetBytes } : {}),
        onProgress: (p: EncodeProgress) => { task.framesDone = p.framesDone; task.fps = p.fps; this.noteProgress(task) }
      }
      const encodeStarted = this.now()
      this.tell({ type: 'encode:started', jobId: lease.jobId, chunk: lease.chunk, originator: lease.originator, frames: meta.frames })
      // x264's own frame count is checked by encodeChunk; the full decode is the originator's
      // (it must verify anyway, and a second decode here would cost every worker ~5% of its time).
      await this.encoder(options)
      this.tell({ type: 'encode:finished', jobId: lease.jobId, chunk: lease.chunk, originator: lease.originator, frames: meta.frames, ms: this.now() - encodeStarted })
    } catch (err) {
      if (task.controller.signal.aborted) { await this.cleanup(task, out); return undefined }
      if (err instanceof MemoryBudgetError) { await this.refuseForMemory(task, err, out); return undefined }
      const reason = (err as Error).message
      this.tell({ type: 'encode:failed', jobId: lease.jobId, chunk: lease.chunk, originator: lease.originator, reason })
      // Settings this machine cannot encode: stop taking this job's chunks.
      const name = (err as Error).name
      const jk = jobKey(lease.originator, lease.jobId)
      const failures = (this.toolFailures.get(jk) ?? 0) + (name === 'ToolError' || name === 'VerificationError' ? 1 : 0)
      this.toolFailures.set(jk, failures)
      if (name === 'SettingsError' || failures >= 2) this.unable.set(jk, reason)
      await this.giveUp(task, `encode failed: ${reason}`, true, out)
      // A segment from another node that is not one (a manifest naming our files, not Matroska, more
      // than a video stream): its originator lied, and is reported (once the chunk is given back
      // with the reason, as to any originator). Our own tools failing is no lie.
      if (segment.owned && convicts(err, segment.path)) {
        this.o.reportOffence?.({ peer: lease.originator, jobId: lease.jobId, reason: `served a segment that is not one: ${reason.replace(segment.path, `${shortChunk(lease.jobId, lease.chunk)}`)}` })
      }
      return undefined
    }
    task.stage = 'uploading'
    // The segment is not needed any more; only the result is.
    if (segment.owned) await rm(segment.path, { force: true })
    return out
  }

  private async deliver (task: Task, out: string): Promise<void> {
    const { lease } = task
    try {
      const started = this.now()
      const bytes = (await stat(out)).size
      const answer = await this.uploadWithRetry(task, out)
      if (answer.ok) {
        this.tell({ type: 'upload:accepted', jobId: lease.jobId, chunk: lease.chunk, originator: lease.originator, bytes, ms: this.now() - started })
        this.log.trace(`delivered ${shortChunk(lease.jobId, lease.chunk)}`)
      } else {
        this.tell({ type: 'upload:refused', jobId: lease.jobId, chunk: lease.chunk, originator: lease.originator, code: answer.code, reason: answer.message })
        // Another copy finished first, or the job ended meanwhile: the protocol expects that.
        const line = `result for ${shortChunk(lease.jobId, lease.chunk)} refused: ${answer.message}`
        if (isExpectedRace(answer.code)) this.log.debug(line)
        else this.log.info(line)
      }
    } catch (err) {
      this.log.info(`upload of ${shortChunk(lease.jobId, lease.chunk)} failed: ${(err as Error).message}`)
      await this.giveUp(task, `upload failed: ${(err as Error).message}`, false, out)
      return
    }
    await this.cleanup(task, out)
  }

  /**
   * A finished encode is worth keeping: an upload that fails (the originator restarting, a dropped
   * connection) is tried again for about a lease's length before the chunk is given back.
   */
  private async uploadWithRetry (task: Task, out: string): Promise<Answer> {
    const sha256 = await sha256File(out)
    const giveUpAt = this.now() + Math.max(10_000, task.beatEvery * 3)
    for (let delay = 1000; ; delay = Math.min(delay * 2, 8000)) {
      try {
        const answer = await this.o.linkFor(task.lease.originator).uploadResult(task.lease, out, sha256, task.controller.signal)
        // The originator's disk is full for now: like a dropped connection, worth another try.
        if (!answer.ok && answer.code === 'no-space') throw new Error(answer.message)
        return answer
      } catch (err) {
        if (task.controller.signal.aborted || this.stopped || this.now() + delay > giveUpAt) throw err
        this.log.info(`upload of ${shortChunk(task.lease.jobId, task.lease.chunk)} failed (${(err as Error).message}); trying again in ${delay / 1000} s`)
        await new Promise<void>(resolve => {
          // Cut short when the task is given up or the worker stops (stop() waits for this).
          const t = setTimeout(resolve, delay)
          task.controller.signal.addEventListener('abort', () => { clearTimeout(t); resolve() }, { once: true })
        })
      }
    }
  }

  /** Throws a MemoryBudgetError when the chunk's settings at its picture size need more than an encode may take here (estimateEncodeMemory). */
  private checkMemoryEstimate (meta: SegmentMeta, settings: EncoderSettings): void {
    const budget = this.o.memoryBudgetBytes
    if (budget === undefined) return
    const estimate = estimateEncodeMemory(settings, meta.width, meta.height, this.o.threads)
    if (estimate.bytes > budget) throw new MemoryBudgetError(`needs at least ${formatMemorySize(estimate.bytes)}, over this worker's memory budget of ${formatMemorySize(budget)} an encode: ${estimate.explain}`, true)
  }

  /**
   * A chunk that needs more memory than an encode may take here: given back with the reason, and
   * the job left alone (its other chunks have the same settings and size). Refused by the estimate
   * it costs the originator nothing: honest settings can be too big for a small machine. Stopped
   * by the limit after the estimate let it through, the memory went to what the originator sent
   * (its settings or its segment's bytes), so it earns a strike (swarm/bans.ts), like a trickled
   * segment: this worker did nothing wrong, and enough of them ban a peer that keeps sending bombs.
   */
  private async refuseForMemory (task: Task, err: MemoryBudgetError, out?: string): Promise<void> {
    const { lease } = task
    const reason = `memory: ${err.message}`
    this.unable.set(jobKey(lease.originator, lease.jobId), reason)
    // Its other chunks held here (a prefetch) need as much: given back now, not tried one by one.
    for (const t of this.tasks.values()) {
      if (t === task || t.lease.originator !== lease.originator || t.lease.jobId !== lease.jobId || t.stage === 'uploading') continue
      this.stopTask(t)
      void this.o.linkFor(t.lease.originator).release(t.lease, '', AbortSignal.timeout(3000)).catch(() => {})
    }
    await this.giveUp(task, reason, true, out)
    if (!err.before && lease.originator !== this.o.peerId) {
      this.o.reportStrike?.({ peer: lease.originator, jobId: lease.jobId, reason: `sent a chunk that ran out of this worker's memory budget: ${err.message}` })
    }
  }

  /**
   * A segment whose settings this worker refuses: given back naming the option, and the job left
   * alone (its other chunks have the same settings). No strike: a newer originator may send
   * options this version's allowlist does not know.
   */
  private async refuseSettings (task: Task, err: SettingsError): Promise<void> {
    const { lease } = task
    this.unable.set(jobKey(lease.originator, lease.jobId), err.message)
    await this.giveUp(task, `refused the segment's settings: ${err.message}`, true)
  }

  private async giveUp (task: Task, reason: string, countsAsFailure: boolean, out?: string): Promise<void> {
    this.log.info(`giving back ${shortChunk(task.lease.jobId, task.lease.chunk)}: ${reason}`)
    this.tell({ type: 'chunk:given-back', jobId: task.lease.jobId, chunk: task.lease.chunk, originator: task.lease.originator, reason })
    this.backoff.set(this.taskKey(task.lease), this.now() + 10_000)
    try {
      await this.o.linkFor(task.lease.originator).release(task.lease, countsAsFailure ? reason : '', AbortSignal.timeout(5000))
    } catch { /* the lease will lapse on its own */ }
    await this.cleanup(task, out)
  }

  private async cleanup (task: Task, out?: string): Promise<void> {
    this.tasks.delete(this.taskKey(task.lease))
    const idx = this.ready.indexOf(task)
    if (idx >= 0) this.ready.splice(idx, 1)
    if (task.segment?.owned === true) await rm(task.segment.path, { force: true })
    if (out !== undefined) await rm(out, { force: true })
    // Leave no empty per-job folders behind, but never pull one from under another chunk of the
    // same job (its encoder may be about to create its output there).
    if (![...this.tasks.values()].some(t => t.lease.jobId === task.lease.jobId)) await rmdir(join(this.o.workDir, task.lease.jobId)).catch(() => {})
  }

  /** Renews every held lease with its progress; a refused renewal means the chunk is no longer ours. */
  private async heartbeatAll (): Promise<void> {
    const now = this.now()
    await Promise.allSettled([...this.tasks.values()].map(async (task) => {
      if (now - task.lastBeat < task.beatEvery) return
      task.lastBeat = now
      try {
        const answer = await this.o.linkFor(task.lease.originator).heartbeat(task.lease, { framesDone: task.framesDone, fps: task.fps }, AbortSignal.timeout(10_000))
        if (answer.ok) { task.lease.expiresAt = answer.expiresAt; task.lostAt = undefined; return }
        // While uploading, a refusal usually means our own result was just taken: let the upload finish.
        if (task.stage === 'uploading') return
        if (answer.code !== 'lease-expired' || task.stage !== 'encoding') {
          // Done elsewhere, or the job is gone: stop at once.
          this.log.debug(`lost ${shortChunk(task.lease.jobId, task.lease.chunk)}: ${answer.message}`)
          this.stopTask(task)
          return
        }
        // An expired lease mid-encode still finishes while a late result can be taken (lateResultOver).
        task.lostAt ??= now
      } catch {
        // Transient, while the lease has slack; past its end, the originator cannot be reached to keep it.
        if (task.stage === 'uploading' || now <= task.lease.expiresAt) return
        task.lostAt ??= now
      }
      if (this.lateResultOver(task, now)) {
        this.log.info(`stopping ${shortChunk(task.lease.jobId, task.lease.chunk)}: its lease ended ${((now - (task.lostAt ?? now)) / 1000).toFixed(0)} s ago, too long for a late result to be taken`)
        this.stopTask(task)
      }
    }))
  }

  /**
   * Whether the lease is gone for good: an originator takes a late result from a chunk's most recent
   * holder for as long after the lease ended as the lease could last (lease-table.ts beginUpload),
   * and a lease that reached its deadline lasted as long as it ran. Past that (and at least three
   * heartbeats), whatever the encode delivers is refused, so its processes and memory are freed
   * now instead of when it ends: an originator cannot hold a worker's slot with a lease it let go.
   */
  private lateResultOver (task: Task, now: number): boolean {
    if (task.lostAt === undefined) return false
    return now - task.lostAt > Math.max(3 * task.beatEvery, task.lostAt - task.fetchStarted)
  }
}
