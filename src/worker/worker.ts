import { EventEmitter } from 'node:events'
import { mkdir, rm, rmdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import {
  reserveSpace, convicts, DEFAULT_ENCODER, DEFAULT_SEGMENT_LIMITS, EncodeCutoff, encodeChunk, encoderFor, estimateEncodeMemory, formatMemorySize, MemoryBudgetError, SettingsError, sha256File,
  type CutoffProgress, type EncodePriority, type EncoderId, type EncoderSettings, type EncodeProgress, type EncodedChunk, type EncodeChunkOptions, type SegmentLimits, type SpaceReservation
} from '../media/index.js'
import { jobTag, logger, shortChunk, shortPeer, type Logger, type LogSink } from '../log/index.js'
import type { Answer, ChunkLease, FetchedSegment, ReportOffence, SegmentCheck, SegmentMeta, UnstampedEvent, WorkerEvent } from '../swarm/index.js'
// The contract and events modules alone, not the swarm layer's index: the worker needs no libp2p
// to know a race or stamp an event.
import { isExpectedRace } from '../swarm/contract.js'
import { stamped } from '../swarm/events.js'
import { ClaimPolicy, chunkKey, type JobView, type Pick, type TaskStage } from './claim-policy.js'

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

export type ChunkEncoder = (o: EncodeChunkOptions) => Promise<EncodedChunk>

export interface WorkerOptions {
  peerId: string
  slots: number
  /** Scratch space; names from the network never become paths outside it. */
  workDir: string
  linkFor: (originator: string) => OriginatorLink
  /** The encoders this machine has (media installedEncoders): jobs of others are never claimed. Unset: not checked. */
  installedEncoders?: ReadonlySet<EncoderId>
  /** x264 --threads per encode; default lets x264 decide. */
  threads?: number
  /** How encodes share the machine (media's EncodePriority; default DEFAULT_ENCODE_PRIORITY). */
  encodePriority?: EncodePriority
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

type Stage = TaskStage

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
  /** When (local time) the lease was first found gone: refused as expired, or lapsed with the originator out of reach. */
  lostAt?: number
  /** This node's own chunk, encoded so that it can be ended early (shortenOwnEncode). */
  cutoff?: EncodeCutoff
}

/** How far this node's own encode of a chunk has got, for the originator to choose where it may end (shortenOwnEncode). */
export interface OwnEncodeProgress extends CutoffProgress {
  /** Frames the encoder reports done, and its pace. */
  framesDone: number
  fps: number
}

/**
 * Whether this node's own chunks of a job are encoded so they can be ended early: their frames then
 * pass through this process, about 1.4 ms of CPU a 720p frame (measured here, as much as any Node.js
 * pipe). Against x264's 15 ms a frame at `faster` that is a tenth of the core, for tails of 1-2 s;
 * the other encoders spend 40-150 ms a frame and leave tails of 4-13 s on two nodes (performance.md).
 */
const ownEncodeSplittable = (settings: EncoderSettings): boolean => settings.encoder !== 'x264'


const HEX_ID = /^[0-9a-f]{64}$/
/** Settings from an originator, parsed and allowlisted by this worker (every job is x264's until jobs name their encoder). */
const settingsFrom = (raw: string, encoder: EncoderId = DEFAULT_ENCODER): EncoderSettings => encoderFor(encoder).parseSettings(raw)
/**
 * Encodes run below the node's own priority, by default in the idle class. The node's control work
 * (claims, heartbeats, serving segments, cutting and verifying an originator's chunks) is short
 * but the whole swarm waits on it, and on a machine whose cores all encode it used to queue behind
 * x264. On an otherwise idle machine the encodes still get every cycle; other programs on it stay
 * responsive too. A machine kept busy by other work gets no encoding done at 'idle' (its leases
 * lapse to other peers): `swarm join --encode-priority low` gives encodes a share there.
 */
export const DEFAULT_ENCODE_PRIORITY: EncodePriority = 'idle'
/** How long stop() waits for aborted fetches, encodes and uploads to wind down. */
const STOP_GRACE_MS = 5000
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

/** A peer id as part of a file name: it comes from the network, so nothing but letters and digits. */
function fileTag (originator: string): string { return originator.replace(/[^A-Za-z0-9]/g, '').slice(-24) }

/**
 * The claimant side: watches announced jobs, claims chunks, keeps leases alive with progress,
 * encodes, verifies its own output and returns it. Runs `slots` encodes at once and keeps
 * `prefetch` more chunks downloaded, so the next encode starts without waiting on the network.
 */
export class Worker extends EventEmitter<{ event: [WorkerEvent] }> {
  /** chunkKey → the lease held on it. */
  private readonly tasks = new Map<string, Task>()
  private readonly ready: Task[] = []
  /** What to claim and when: the jobs heard of, backoffs, lost races, jobs this machine cannot encode. */
  private readonly policy: ClaimPolicy
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

  constructor (private readonly o: WorkerOptions) {
    super()
    this.encoder = o.encoder ?? encodeChunk
    this.now = o.now ?? Date.now
    this.log = logger('worker', o.log)
    this.policy = new ClaimPolicy({ peerId: o.peerId, slots: o.slots, prefetch: o.prefetch, swarmSize: o.swarmSize, now: this.now })
  }

  /** Emits a node event (swarm/events.ts) stamped with this worker's clock. */
  private tell (event: UnstampedEvent<WorkerEvent>): void { this.emit('event', stamped(event, this.now())) }

  start (): void { this.wake() }

  /**
   * Ticks while there is something to do: leases to renew, or announced chunks to claim (one we
   * backed off from becomes claimable again with no event to say so). With nothing held and no
   * chunk on offer it sleeps until an announcement wakes it: four ticks a second (with the
   * originator's lease timer) were about a quarter of an idle node's CPU.
   */
  private wake (): void {
    if (this.heartbeatTimer !== undefined || this.stopped) return
    this.heartbeatTimer = setInterval(() => {
      void this.heartbeatAll()
      if (this.wantMore()) void this.pump()
      if (this.idle()) { clearInterval(this.heartbeatTimer); this.heartbeatTimer = undefined }
      // Ticks often; each lease is only renewed when its own period (a third of its length) is due.
    }, Math.min(250, this.o.heartbeatMs ?? 5000))
    this.heartbeatTimer.unref()
  }

  /** Nothing held, nothing under way, and no announced chunk to claim. */
  private idle (): boolean {
    return this.tasks.size === 0 && this.inFlight.size === 0 && !this.pumping && !this.policy.hasOffers()
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

  /**
   * Ends this node's own encode of a chunk of its own job early: the originator splits a straggling
   * chunk (jobs/straggler.ts). `choose` is given how far the encode has got and names the frames to
   * keep, or none. Returns the frames the encode will now have, or undefined when it cannot end
   * there (not encoding now, not under this lease, or the encoder already has those frames).
   */
  shortenOwnEncode (jobId: string, chunk: number, leaseId: string, choose: (at: OwnEncodeProgress) => number | undefined): number | undefined {
    const task = this.tasks.get(chunkKey({ originator: this.o.peerId, jobId, chunk }))
    if (task === undefined || task.lease.leaseId !== leaseId || task.stage !== 'encoding') return undefined
    const at = task.cutoff?.progress()
    if (at === undefined) return undefined
    const frames = choose({ ...at, framesDone: task.framesDone, fps: task.fps })
    if (frames === undefined || task.cutoff?.endAt(frames) !== true) return undefined
    task.frames = frames
    this.log.debug(`ending the encode of ${shortChunk(jobId, chunk)} after ${frames} of its ${at.frames} frames: the rest is split off for another peer`)
    return frames
  }

  updateJob (view: JobView): void {
    if (!HEX_ID.test(view.jobId)) return
    // Sequence numbers are one originator's: another's (however large) says nothing about this job.
    const heard = this.policy.updateJob(view)
    if (heard === 'stale') return
    // The worker's edge for a job's announced settings (the user's), parsed once per job: settings
    // it would refuse anyway mean no claim (and no download) to find out. What it encodes are the
    // settings in each segment's meta, parsed at that edge (fetch).
    if (heard === 'new' && !this.policy.isUnable(view)) {
      try {
        this.checkHasEncoder(view.encoder)
        settingsFrom(view.settings, view.encoder)
      } catch (err) {
        this.policy.markUnable(view, (err as Error).message)
        this.log.debug(`not taking chunks of ${jobTag(view.jobId)} from ${shortPeer(view.originator)}: ${(err as Error).message}`)
      }
    }
    for (const chunk of view.settled ?? []) {
      const task = this.tasks.get(chunkKey({ originator: view.originator, jobId: view.jobId, chunk }))
      if (task !== undefined && task.stage !== 'uploading') {
        this.log.debug(`${shortChunk(view.jobId, chunk)} was done by another peer; stopping`)
        this.stopTask(task)
      }
    }
    this.wake()
    void this.pump()
  }

  /**
   * Forgets a job (withdrawn, or its announcements stopped) and stops its chunks. Their leases are
   * given back, best effort: an originator that is still there (only its gossip did not reach us)
   * can hand the chunks out at once instead of after the lease runs out.
   */
  removeJob (originator: string, jobId: string): void {
    this.policy.removeJob({ originator, jobId })
    for (const t of this.tasks.values()) {
      if (t.lease.jobId !== jobId || t.lease.originator !== originator) continue
      this.stopTask(t)
      this.letGo(t.lease)
    }
  }

  /**
   * Gives a lease back unencoded and without a reason (no failure is counted), best effort and
   * without waiting: the originator can hand the chunk out at once instead of when the lease ends.
   */
  private letGo (lease: ChunkLease): void {
    void this.o.linkFor(lease.originator).release(lease, '', AbortSignal.timeout(3000)).catch(() => {})
  }

  /**
   * Stops work on a chunk now. A running fetch or encode notices the abort and cleans up after
   * itself; a prefetched chunk waiting for a slot has nothing running, so it is cleaned up here.
   */
  private stopTask (task: Task): void {
    task.controller.abort()
    if (task.stage === 'queued') void this.cleanup(task)
  }

  status (): { slots: number, memoryBudgetBytes?: number, encodePriority: EncodePriority, active: Array<{ originator: string, jobId: string, chunk: number, framesDone: number, frames: number, fps: number, stage: Stage }> } {
    return {
      slots: this.o.slots,
      ...(this.o.memoryBudgetBytes !== undefined ? { memoryBudgetBytes: this.o.memoryBudgetBytes } : {}),
      encodePriority: this.o.encodePriority ?? DEFAULT_ENCODE_PRIORITY,
      active: [...this.tasks.values()].map(t => ({ originator: t.lease.originator, jobId: t.lease.jobId, chunk: t.lease.chunk, framesDone: t.framesDone, frames: t.frames, fps: t.fps, stage: t.stage }))
    }
  }

  /** Whether this worker has running work on a job: a lease held, its segment downloading, encoding or uploading. */
  holds (originator: string, jobId: string): boolean {
    for (const t of this.tasks.values()) if (t.lease.originator === originator && t.lease.jobId === jobId) return true
    return false
  }

  private taskKey (lease: ChunkLease): string { return chunkKey(lease) }

  /** A task moves on; the policy counts what holds a slot by it. */
  private setStage (task: Task, stage: Stage): void {
    task.stage = stage
    this.policy.staged(task.lease, stage)
  }

  /** Encode progress: a prefetch may have become due. */
  private noteProgress (task: Task): void {
    if (this.policy.progressed(task.lease, task.frames - task.framesDone, task.fps)) void this.pump()
  }

  private async track<T> (work: Promise<T>): Promise<T> {
    this.inFlight.add(work)
    try { return await work } finally { this.inFlight.delete(work) }
  }

  private wantMore (): boolean {
    return !this.stopped && this.policy.wantsMore()
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
          const pick = this.policy.next()
          if (pick === undefined) break
          await this.track(this.claim(pick))
        }
        this.startEncodes()
      } while (this.repump && !this.stopped)
    } finally {
      this.pumping = false
    }
  }

  private async claim (pick: Pick): Promise<void> {
    const { view, chunk } = pick
    const k = chunkKey({ originator: view.originator, jobId: view.jobId, chunk })
    const link = this.o.linkFor(view.originator)
    let answer: Answer<{ lease: ChunkLease }>
    try {
      answer = await link.claim(view.jobId, chunk, AbortSignal.any([AbortSignal.timeout(10_000), this.stopping.signal]))
    } catch (err) {
      this.policy.unanswered(pick)
      this.log.info(`claim ${shortChunk(view.jobId, chunk)} failed: ${(err as Error).message}`)
      return
    }
    if (!answer.ok) {
      this.tell({ type: 'claim:lost', jobId: view.jobId, chunk, originator: view.originator, code: answer.code, reason: answer.message })
      // The originator banned this node (from the job, or from all of it): said once.
      if (this.policy.refused(pick, answer.code, answer.message)) {
        this.log.info(`not taking chunks of ${jobTag(view.jobId)} from ${shortPeer(view.originator)}: ${answer.message}`)
      }
      return
    }
    // A chunk of this job ran out of memory (or the job became one this node cannot encode) while
    // the claim was on its way: the lease goes straight back, as a prefetch held then would have.
    if (this.policy.isUnable(view)) {
      this.letGo(answer.lease)
      return
    }
    const span = answer.lease.expiresAt - answer.lease.issuedAt
    const beatEvery = Math.max(200, Math.min(this.o.heartbeatMs ?? 5000, Math.floor(span / 3)))
    const task: Task = { lease: answer.lease, stage: 'fetching', framesDone: 0, frames: 0, fps: 0, controller: new AbortController(), lastBeat: this.now(), fetchStarted: this.now(), beatEvery }
    this.tasks.set(k, task)
    this.policy.granted(pick)
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
      const asked = this.now()
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
        // What the job was announced as is what is encoded: a header naming another encoder is the originator's lie or bug.
        if ((meta.encoder ?? DEFAULT_ENCODER) !== (view.encoder ?? DEFAULT_ENCODER)) throw new Error(`the segment's header names the ${meta.encoder ?? DEFAULT_ENCODER} encoder, but the job was announced for ${view.encoder ?? DEFAULT_ENCODER}`)
        this.checkHasEncoder(meta.encoder)
        task.settings = settingsFrom(meta.settings, meta.encoder)
        this.checkMemoryEstimate(meta, task.settings)
        const max = maxSegmentBytes(meta, view.totalFrames)
        if (size > max) throw new Error(`segment of ${size} bytes is more than the ${max} a ${meta.frames}-frame ${meta.width}x${meta.height} chunk of this job can be`)
        // Reserved until the download ends: concurrent downloads do not all pass against the same free space.
        space = await reserveSpace(dir, size, `segment ${shortChunk(view.jobId, chunk)}`)
      }).finally(() => { space?.release() })
      // This node's own chunks are not downloaded: no header, so their meta is parsed here.
      task.settings ??= settingsFrom(task.segment.meta.settings, task.segment.meta.encoder)
      const tookMs = this.now() - asked
      // Only downloads: our own node's chunks need none, and timing a prefetch of another node's
      // chunk by them would start it a second before it is needed.
      if (task.segment.owned) this.policy.downloaded(tookMs)
      this.log.trace(`fetched ${shortChunk(view.jobId, chunk)} in ${(tookMs / 1000).toFixed(2)} s`)
      this.tell({ type: 'segment:fetched', jobId: view.jobId, chunk, originator: view.originator, downloaded: task.segment.owned, ...(bytes !== undefined ? { bytes } : {}), ms: tookMs })
      task.frames = task.segment.meta.frames
      this.setStage(task, 'queued')
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
    this.setStage(task, 'encoding')
    try {
      // The settings this worker checked when the segment's meta arrived (fetch), never the originator's check.
      const settings = task.settings as EncoderSettings
      // Again here: this node's own chunks are not downloaded, so no header check saw them.
      this.checkMemoryEstimate(meta, settings)
      if (lease.originator === this.o.peerId && ownEncodeSplittable(settings)) task.cutoff = new EncodeCutoff()
      const options: EncodeChunkOptions = {
        ...(task.cutoff !== undefined ? { cutoff: task.cutoff } : {}),
        segmentPath: segment.path, selectFromTime: meta.selectFromTime, frameCount: meta.frames, settings,
        frameRate: meta.frameRate, sourcePixFmt: meta.pixFmt, width: meta.width, height: meta.height, outputPath: out, signal: task.controller.signal,
        segmentFromPeer: lease.originator !== this.o.peerId,
        ...(this.o.segmentLimits !== undefined ? { segmentLimits: this.o.segmentLimits } : {}),
        ...(this.o.threads !== undefined ? { threads: this.o.threads } : {}),
        priority: this.o.encodePriority ?? DEFAULT_ENCODE_PRIORITY,
        ...(this.o.memoryBudgetBytes !== undefined ? { memoryLimitBytes: this.o.memoryBudgetBytes } : {}),
        onProgress: (p: EncodeProgress) => { task.framesDone = p.framesDone; task.fps = p.fps; this.noteProgress(task) }
      }
      const encodeStarted = this.now()
      this.tell({ type: 'encode:started', jobId: lease.jobId, chunk: lease.chunk, originator: lease.originator, frames: meta.frames })
      // x264's own frame count is checked by encodeChunk; the full decode is the originator's
      // (it must verify anyway, and a second decode here would cost every worker ~5% of its time).
      const encoded = await this.encoder(options)
      this.tell({ type: 'encode:finished', jobId: lease.jobId, chunk: lease.chunk, originator: lease.originator, frames: encoded.frameCount, ms: this.now() - encodeStarted })
    } catch (err) {
      if (task.controller.signal.aborted) { await this.cleanup(task, out); return undefined }
      if (err instanceof MemoryBudgetError) { await this.refuseForMemory(task, err, out); return undefined }
      const reason = (err as Error).message
      this.tell({ type: 'encode:failed', jobId: lease.jobId, chunk: lease.chunk, originator: lease.originator, reason })
      // Settings this machine cannot encode: stop taking this job's chunks.
      this.policy.encodeFailed(lease, (err as Error).name, reason)
      await this.giveUp(task, `encode failed: ${reason}`, true, out)
      // A segment from another node that is not one (a manifest naming our files, not Matroska, more
      // than a video stream): its originator lied, and is reported (once the chunk is given back
      // with the reason, as to any originator). Our own tools failing is no lie.
      if (segment.owned && convicts(err, segment.path)) {
        this.o.reportOffence?.({ peer: lease.originator, jobId: lease.jobId, reason: `served a segment that is not one: ${reason.replace(segment.path, `${shortChunk(lease.jobId, lease.chunk)}`)}` })
      }
      return undefined
    }
    this.setStage(task, 'uploading')
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

  /** Throws a SettingsError for a job of an encoder this machine does not have: its chunks are left to peers that do. */
  private checkHasEncoder (encoder: EncoderId = DEFAULT_ENCODER): void {
    if (this.o.installedEncoders !== undefined && !this.o.installedEncoders.has(encoder)) {
      throw new SettingsError(`this node has no ${encoder} encoder (it has ${[...this.o.installedEncoders].join(', ') || 'none'})`)
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
    this.policy.markUnable(lease, reason)
    // Its other chunks held here (a prefetch) need as much: given back now, not tried one by one.
    for (const t of this.tasks.values()) {
      if (t === task || t.lease.originator !== lease.originator || t.lease.jobId !== lease.jobId || t.stage === 'uploading') continue
      this.stopTask(t)
      this.letGo(t.lease)
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
    this.policy.markUnable(lease, err.message)
    await this.giveUp(task, `refused the segment's settings: ${err.message}`, true)
  }

  private async giveUp (task: Task, reason: string, countsAsFailure: boolean, out?: string): Promise<void> {
    this.log.info(`giving back ${shortChunk(task.lease.jobId, task.lease.chunk)}: ${reason}`)
    this.tell({ type: 'chunk:given-back', jobId: task.lease.jobId, chunk: task.lease.chunk, originator: task.lease.originator, reason })
    this.policy.gaveUp(task.lease)
    try {
      await this.o.linkFor(task.lease.originator).release(task.lease, countsAsFailure ? reason : '', AbortSignal.timeout(5000))
    } catch { /* the lease will lapse on its own */ }
    await this.cleanup(task, out)
  }

  private async cleanup (task: Task, out?: string): Promise<void> {
    this.tasks.delete(this.taskKey(task.lease))
    this.policy.ended(task.lease)
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
