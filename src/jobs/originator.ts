import { EventEmitter } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { access, mkdir, rm, stat } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import {
  checkFidelity, chunkRanges, copyOutput, effectiveSettings, hdrLosses, extractCaptions, formatFidelity, mergeChunks, otherTracksInput, statedRange, planChunks, prepareSource,
  verifyMergedOutput, DEFAULT_ENCODER, type EncoderId, type ChunkRange, type MediaInfo, type PlanOptions, type Segment
} from '../media/index.js'
import { jobTag, logger, shortJob, shortPeer, type Logger, type LogSink } from '../log/index.js'
import type { Answer, OriginatorEvent, ReportOffence, SegmentOffer, UnstampedEvent } from '../swarm/index.js'
// The events module alone, not the swarm layer's index: stamping an event needs no libp2p.
import { stamped } from '../swarm/events.js'
import { checkChunkCount, checkInput, checkRoomForSegments, InputError, jobIdOf, planOptionsFor, type AddJobRequest } from './admission.js'
import type { JobFolder } from './job-folder.js'
import { encoderOf, keepSettings, settingsOf } from './job-settings.js'
import { JobStore } from './job-store.js'
import { DEFAULT_MAX_LEASES_PER_PEER, LeaseTable, type LeaseAnswer } from './lease-table.js'
import { ResultIntake } from './result-intake.js'
import { splitSource } from './splitter.js'
import { StragglerSplits, type ShortenOwnEncode } from './straggler.js'
import { JOB_RECORD_VERSION, refusal, type JobRecord } from './types.js'
import type { AdaptiveRule, VerifyMode } from './verification-policy.js'

const rangeOption = (range: 'tv' | 'pc' | undefined): { range?: 'tv' | 'pc' } => range !== undefined ? { range } : {}

async function pathExists (path: string): Promise<boolean> {
  try { await access(path); return true } catch { return false }
}

export interface OriginatorOptions {
  /** The node's home; jobs live in `<home>/jobs/<id>/`. */
  home: string
  /** This node's peer id: the originator of every job added here. */
  peerId: string
  /** Lease length. Short, so a dead worker costs little; heartbeats renew it. */
  leaseMs?: number
  /** A chunk that failed on this many distinct peers fails the job instead of looping. */
  maxChunkFailures?: number
  plan?: PlanOptions
  now?: () => number
  log?: LogSink
  /**
   * How many peers could encode a job of this encoder (this node included; peers that advertise no
   * encoders count), so a job is planned with enough chunks, and fails once all of them gave up.
   */
  swarmSize?: (encoder: EncoderId) => number
  /** Concurrent encodes per peer, as an estimate of the swarm's (peers do not announce theirs): this node's own slots. */
  slotsPerPeer?: number
  /** Peers' results decoded at once (default: this machine's cores); the rest wait their turn, one per peer at a time. */
  verifyConcurrency?: number
  /** Make the source's side of a picture check while the peer encodes (ResultIntake.leased); default true. */
  prepareChecks?: boolean
  /**
   * This node runs a worker that can encode its own jobs (the daemon always does): a chunk given
   * back by several peers is kept for it, and only its failure fails the job (LeaseTable.hopeless).
   */
  ownWorker?: boolean
  /** Whether a peer is still in the swarm (the daemon: subscribed to the jobs topic); departed peers' failures do not count. */
  isPresent?: (peer: string) => boolean
  /** Leases one peer may hold on one job; default the larger of DEFAULT_MAX_LEASES_PER_PEER and this node's slots + 1. */
  maxLeasesPerPeer?: number
  /** Floor of a lease's hard deadline (default 60 s; tests shorten it). */
  minDeadlineMs?: number
  /** A lease's deadline before the job has a pace (default 30 min). */
  noPaceDeadlineMs?: number
  /** The most chunks a job may be cut into: what peers accept in an announcement. */
  maxChunks?: number
  /**
   * Sources at least this large are cut just ahead of the swarm (SEGMENTS_AHEAD_PER_ENCODER
   * unclaimed segments per encoder) instead of all at once (default 1 GiB): a 30 GB remux would
   * otherwise need 30 GB free before its first chunk, and hold it until most chunks are done.
   */
  cutAheadFromBytes?: number
  /** A peer whose result failed verification is reported here: the daemon bans it (swarm/bans.ts). */
  reportOffence?: ReportOffence
  /** Whether a peer is banned now, from the node or from the job: its results still waiting to be checked are then refused unchecked, and none is kept. */
  isBanned?: (peer: string, jobId: string) => boolean
  /**
   * How peers' results of jobs added here are checked unless the job says (`swarm add --verify`):
   * `all` (default) or `adaptive` (verification-policy.ts).
   */
  verify?: VerifyMode
  /** The version of an encoder a peer advertises (this node's own for itself), kept with each result of the job. */
  encoderVersionOf?: (peer: string, encoder: EncoderId) => string | undefined
  /** The encoders this machine has (media installedEncoders): a job for another is refused. Unset: not checked. */
  installedEncoders?: ReadonlySet<EncoderId>
  /** Which results get the picture check in adaptive mode: tests script the draw (`SWARM_TEST_VERIFY_DRAWS`). */
  checks?: { draw?: (jobId: string, peer: string) => number, rule?: AdaptiveRule }
  /**
   * Ends this node's own encode of a chunk early, so an idle peer takes the rest (straggler.ts; the
   * daemon: its worker's shortenOwnEncode). Unset: no chunk is split once planned.
   */
  shortenOwnEncode?: ShortenOwnEncode
  /** How much sooner a split must end a chunk, in seconds (default 2; tests lower it to split chunks of a few seconds). */
  splitMinGainSeconds?: number
}

/** Unclaimed segments a large job keeps cut per encoder in the swarm (at least MIN_SEGMENTS_AHEAD in all). */
const SEGMENTS_AHEAD_PER_ENCODER = 2
const MIN_SEGMENTS_AHEAD = 4
const DEFAULT_CUT_AHEAD_FROM_BYTES = 1024 ** 3

/** A job still to split, or with every chunk verified but not merged yet, has work for the originator itself. */
function needsRun (job: JobRecord): boolean {
  return job.state === 'splitting' || (job.state === 'encoding' && job.chunks.every(c => c.state === 'done'))
}

/**
 * The originator of jobs added on this node: the coordinator of a job's life (added, split,
 * encoded, merged, done or failed, retried, cancelled). It is the only arbiter of its jobs, and
 * everything it knows is on disk so a restarted node resumes where it stopped without re-encoding
 * a verified chunk. It wires four parts: the job store (records and job.json), the lease table
 * (who may hold which chunk), the splitter (segments from the source) and the result intake
 * (uploads let in, verified and kept); the job's folder is job-folder.ts. Merging is its own.
 */
export class Originator extends EventEmitter<{ changed: [jobId: string], event: [OriginatorEvent] }> {
  private readonly store: JobStore
  private readonly leases: LeaseTable
  private readonly intake: ResultIntake
  private readonly stragglers?: StragglerSplits
  private readonly sources = new Map<string, MediaInfo>()
  private readonly running = new Map<string, Promise<void>>()
  private readonly aborts = new Map<string, AbortController>()
  private readonly now: () => number
  private readonly log: Logger
  private expiryTimer?: NodeJS.Timeout
  private stopped = false

  constructor (private readonly o: OriginatorOptions) {
    super()
    this.now = o.now ?? Date.now
    this.log = logger('jobs', o.log)
    this.store = new JobStore(join(o.home, 'jobs'), this.now, o.log)
    this.leases = new LeaseTable(this.store.jobs, {
      now: this.now,
      log: o.log,
      changed: (job, announce) => { this.touch(job, announce) },
      failed: (job, error) => { this.fail(job, error) },
      event: (e) => {
        this.tell(e)
        if (e.type === 'lease:granted') { this.intake.leased(e.jobId, e.chunk, e.peer); this.stragglers?.peerBusy(e.jobId, e.peer) }
      },
      leaseMs: o.leaseMs,
      maxChunkFailures: o.maxChunkFailures,
      swarmSize: o.swarmSize,
      ...(o.isPresent !== undefined ? { isPresent: (peer: string) => peer === o.peerId || (o.isPresent?.(peer) ?? true) } : {}),
      ...(o.ownWorker === true ? { self: o.peerId } : {}),
      // Peers do not announce their slots: they are assumed to have as many as this node (see DEFAULT_MAX_LEASES_PER_PEER).
      maxLeasesPerPeer: o.maxLeasesPerPeer ?? Math.max(DEFAULT_MAX_LEASES_PER_PEER, (o.slotsPerPeer ?? 1) + 1),
      minDeadlineMs: o.minDeadlineMs,
      noPaceDeadlineMs: o.noPaceDeadlineMs
    })
    this.intake = new ResultIntake({
      self: o.peerId,
      home: o.home,
      jobs: this.store,
      leases: this.leases,
      folder: (id) => this.folder(id),
      // The last verified chunk: the merge can start.
      chunkDone: (job) => { if (job.chunks.every(c => c.state === 'done') && job.state === 'encoding') this.runInBackground(job.id) },
      now: this.now,
      log: o.log,
      verifyConcurrency: o.verifyConcurrency,
      ...(o.prepareChecks !== undefined ? { prepareChecks: o.prepareChecks } : {}),
      reportOffence: o.reportOffence,
      isBanned: o.isBanned,
      event: (e) => {
        this.tell(e)
        const job = e.type === 'chunk:done' ? this.store.get(e.jobId) : undefined
        if (job !== undefined && e.type === 'chunk:done') this.stragglers?.chunkDone(job, e.chunk, e.peer, e.leaseMs)
      },
      convicted: (job, peer) => { this.requeue(job, peer).catch((err: Error) => { this.log.info(`${shortJob(job.id)}: sending ${shortPeer(peer)}'s chunks back failed: ${err.message}`) }) },
      ...(o.checks !== undefined ? { checks: o.checks } : {}),
      ...(o.encoderVersionOf !== undefined ? { encoderVersionOf: o.encoderVersionOf } : {})
    })
    if (o.shortenOwnEncode !== undefined && o.ownWorker === true) this.stragglers = this.straggling(o.shortenOwnEncode)
  }

  private straggling (shorten: ShortenOwnEncode): StragglerSplits {
    return new StragglerSplits({
      self: this.o.peerId,
      leases: this.leases,
      shorten,
      source: (job) => this.sources.get(job.id),
      folder: (id) => this.folder(id),
      maxChunks: this.o.maxChunks ?? Number.POSITIVE_INFINITY,
      ...(this.o.splitMinGainSeconds !== undefined ? { minGainSeconds: this.o.splitMinGainSeconds } : {}),
      changed: (job) => { this.touch(job); void this.save(job.id) },
      cutAgain: (job) => {
        if (this.store.get(job.id) !== job || job.state !== 'encoding') return
        job.state = 'splitting'
        this.touch(job)
        this.runInBackground(job.id)
      },
      event: (e) => { this.tell(e) },
      log: this.log
    })
  }

  /** Emits a node event (swarm/events.ts) stamped with this originator's clock. */
  private tell (event: UnstampedEvent<OriginatorEvent>): void { this.emit('event', stamped(event, this.now())) }

  get jobsDir (): string { return this.store.dir }
  jobDir (id: string): string { return this.store.jobDir(id) }
  private folder (id: string): JobFolder { return this.store.folder(id) }

  /** Loads every job from disk and resumes the ones that were not finished. */
  async start (): Promise<void> {
    for (const job of await this.store.load()) {
      // Our own worker restarted with us and holds nothing: leases it had would only lapse.
      this.leases.dropHolder(job, this.o.peerId)
      if (job.state === 'merging' || needsRun(job)) {
        this.log.info(`resuming ${shortJob(job.id)} (${job.state})`)
        this.runInBackground(job.id)
      }
    }
    // Leases held by other peers when this node stopped are still to lapse.
    this.watchLeases()
  }

  /**
   * Looks for lapsed leases every second while a job hands out chunks; leases are granted only
   * then (requestLease starts it again), so a node whose jobs are all done or failed has no timer.
   */
  private watchLeases (): void {
    if (this.expiryTimer !== undefined || this.stopped) return
    this.expiryTimer = setInterval(() => {
      this.expireLeases()
      this.stragglers?.tick(this.store.list())
      if (this.store.list().some(j => j.state === 'encoding' || j.state === 'splitting')) return
      clearInterval(this.expiryTimer)
      this.expiryTimer = undefined
    }, 1000)
    this.expiryTimer.unref()
  }

  async stop (): Promise<void> {
    this.stopped = true
    if (this.expiryTimer !== undefined) clearInterval(this.expiryTimer)
    for (const c of this.aborts.values()) c.abort()
    await Promise.allSettled([...this.running.values()])
    await this.intake.stop()
    await this.store.flush()
  }

  list (): JobRecord[] { return this.store.list() }
  get (id: string): JobRecord | undefined { return this.store.get(id) }

  /**
   * Adds a job, or returns the existing one for the same source content and settings. Bad input
   * (missing file, refused settings, CRC mismatch, no video) throws InputError and queues nothing.
   */
  async addJob (req: AddJobRequest): Promise<{ job: JobRecord, existing: boolean }> {
    const { settings, source, sourceSha256 } = await checkInput(req, this.o.installedEncoders)
    const id = jobIdOf(sourceSha256, settings.args, settings.encoder)
    const existing = this.store.get(id)
    if (existing !== undefined) {
      // An explicit mode holds from now on; results already kept stay as they were checked.
      if (req.verify !== undefined && (existing.verify ?? 'all') !== req.verify) {
        this.log.info(`${shortJob(id)}: peers' results are checked ${req.verify === 'all' ? 'in full' : 'adaptively'} from now on (--verify ${req.verify})`)
        existing.verify = req.verify
        this.touch(existing)
        await this.save(id)
      }
      // A failed job added again is retried from where it stopped: verified chunks are kept.
      if (existing.state === 'failed') await this.retry(existing)
      else if (existing.state === 'done') await this.deliverAgain(existing, req)
      return { job: existing, existing: true }
    }
    const planOptions = planOptionsFor(req, this.o.plan, { peers: this.o.swarmSize?.(settings.encoder), slotsPerPeer: this.o.slotsPerPeer })
    const plan = planChunks(source, planOptions)
    checkChunkCount(req.file, plan.chunks.length, this.o.maxChunks)
    await checkRoomForSegments(this.store.dir, req.file, source)
    // The other tracks are copied now, not after the encode: a track nothing can copy is the
    // user's to hear of before any work is spent (the merge reuses the copy).
    try {
      await otherTracksInput(source, this.folder(id).tracks)
    } catch (err) {
      await rm(this.jobDir(id), { recursive: true, force: true })
      throw new InputError((err as Error).message)
    }
    const now = this.now()
    const encodeSettings = effectiveSettings(settings, source.video)
    const warnings = hdrLosses(settings, source.video)
    const job: JobRecord = {
      version: JOB_RECORD_VERSION,
      id,
      sourcePath: req.file,
      sourceSha256,
      sourceSize: source.sizeBytes,
      settings: req.settings,
      ...(settings.encoder !== DEFAULT_ENCODER ? { encoder: settings.encoder } : {}),
      encodeSettings: encodeSettings.raw,
      ...(source.damage !== undefined ? { damage: source.damage.message } : {}),
      ...(warnings.length > 0 ? { warnings } : {}),
      ...(source.video.closedCaptions && req.dropCaptions === true ? { dropCaptions: true } : {}),
      ...(req.output !== undefined ? { requestedOutput: resolve(req.output) } : {}),
      output: null,
      state: 'splitting',
      originator: this.o.peerId,
      createdAt: now,
      updatedAt: now,
      totalFrames: source.video.frameCount,
      video: { frameRate: source.video.frameRate, pixFmt: source.video.pixFmt, width: source.video.width, height: source.video.height },
      plan: planOptions,
      verify: req.verify ?? this.o.verify ?? 'all',
      chunks: plan.chunks.map(c => ({ index: c.index, startFrame: c.startFrame, frames: c.frameCount, state: 'pending', pastHolders: [], failures: [] }))
    }
    keepSettings(job, { user: settings, encode: encodeSettings })
    this.sources.set(id, source)
    await this.store.create(job)
    this.log.info(`added ${shortJob(id)} ${req.file} (${plan.chunks.length} chunks, ${source.video.frameCount} frames)`)
    for (const w of warnings) this.log.info(`${shortJob(id)}: warning: ${w}`)
    this.tell({ type: 'job:added', jobId: id, file: req.file, chunks: plan.chunks.length, frames: source.video.frameCount })
    this.runInBackground(id)
    this.emit('changed', id)
    return { job, existing: false }
  }

  /**
   * The same content with the same settings was encoded before. Its output is reused where it still
   * exists (copied when another output is asked for, or the copy lives beside another name);
   * when it is gone, the job runs again: the caller's output must exist when the job says done.
   */
  private async deliverAgain (job: JobRecord, req: AddJobRequest): Promise<void> {
    const wanted = req.output !== undefined ? resolve(req.output) : undefined
    const previous = job.output
    const stillThere = previous !== null && await stat(previous).then(s => s.isFile(), () => false)
    if (stillThere && (wanted === undefined ? req.file === job.sourcePath : wanted === previous)) return
    if (stillThere) {
      job.output = await copyOutput(previous, { sourcePath: req.file, encoder: encoderOf(job), ...(wanted !== undefined ? { outputPath: wanted } : {}) })
      this.log.info(`${shortJob(job.id)} was encoded before; copied ${previous} to ${job.output}`)
      this.touch(job)
      await this.save(job.id)
      return
    }
    this.log.info(`${shortJob(job.id)} was encoded before but ${previous ?? 'its output'} is gone: encoding again`)
    job.sourcePath = req.file
    if (wanted !== undefined) job.requestedOutput = wanted
    else delete job.requestedOutput
    job.output = null
    delete job.fidelity
    for (const c of job.chunks) {
      c.state = 'pending'
      delete c.segment; delete c.lease; delete c.backup; delete c.result
      c.pastHolders = []
      c.failures = []
      delete c.formerLease; delete c.overdue; delete c.reservedFor
    }
    this.sources.delete(job.id)
    await this.intake.forget(job.id)
    job.state = 'splitting'
    this.touch(job)
    await this.save(job.id)
    this.runInBackground(job.id)
  }

  private async retry (job: JobRecord): Promise<void> {
    job.state = job.chunks.some(c => c.state === 'pending') ? 'splitting' : 'encoding'
    delete job.error
    for (const c of job.chunks) { c.failures = []; delete c.reservedFor; delete c.overdue }
    this.touch(job)
    await this.save(job.id)
    this.runInBackground(job.id)
  }

  /** Stops a job: no more leases, its files are removed; the output, if merged, stays. */
  async cancelJob (id: string): Promise<boolean> {
    const job = this.store.get(id)
    if (job === undefined) return false
    this.aborts.get(id)?.abort()
    await this.running.get(id)?.catch(() => {})
    this.leases.forget(id)
    this.stragglers?.forget(id)
    this.sources.delete(id)
    await this.intake.forget(id)
    await this.store.remove(id)
    // The originator is where a cancel happens; without this line its log never said so, and
    // the refusals peers' late messages get next looked like a fault.
    this.log.info(`${shortJob(id)} cancelled: its segments and results are removed, peers are told it is gone`)
    this.tell({ type: 'job:cancelled', jobId: id })
    this.emit('changed', id)
    return true
  }

  // ---- leases: the lease table decides; these answer the swarm's protocol handlers --------------

  /** First valid claim wins; a peer that found nothing joins the job's waiting queue. */
  requestLease (jobId: string, chunkIndex: number, claimant: string): LeaseAnswer {
    this.watchLeases()
    const claimed = this.store.get(jobId)
    const chunk = claimed?.chunks[chunkIndex]
    if (claimed !== undefined && chunk !== undefined) this.stragglers?.beforeGrant(claimed, chunk, claimant)
    const answer = this.leases.claim(jobId, chunkIndex, claimant)
    const job = answer.ok ? undefined : this.store.get(jobId)
    if (job !== undefined && !answer.ok && (answer.code === 'not-open' || answer.code === 'already-done')) this.stragglers?.peerIdle(job, claimant)
    return answer
  }

  /** Heartbeat: renews the lease and records progress. */
  renewLease (jobId: string, chunkIndex: number, leaseId: string, peer: string, progress: { framesDone: number, fps: number }): Answer<{ expiresAt: number }> {
    return this.leases.renew(jobId, chunkIndex, leaseId, peer, progress)
  }

  /** The holder gives the chunk back, saying why; a chunk that fails everywhere fails the job. */
  releaseLease (jobId: string, chunkIndex: number, leaseId: string, peer: string, reason: string): Answer {
    return this.leases.release(jobId, chunkIndex, leaseId, peer, reason)
  }

  /** Leases not renewed in time lapse (called every second; tests call it with a fake clock). */
  expireLeases (): number { return this.leases.expire() }

  /** Announced with each job: who waits for a chunk, which chunks could use a backup, which a second holder should drop. */
  waitingPeers (jobId: string, max?: number): string[] { return this.leases.waitingPeers(jobId, max) }
  backupCandidates (job: JobRecord, max?: number): number[] { return this.leases.backupCandidates(job, max) }
  settledRecently (jobId: string, withinMs?: number): number[] { return this.leases.settledRecently(jobId, withinMs) }

  // ---- chunk bytes and results ---------------------------------------------------------------

  /** The segment a leaseholder may fetch, with what it needs to encode it. */
  segmentFor (jobId: string, chunkIndex: number, leaseId: string, peer: string): Answer<SegmentOffer> {
    const found = this.leases.current(jobId, chunkIndex, leaseId, peer)
    if (!found.ok) return found
    const { job, chunk } = found
    if (chunk.segment === undefined) return refusal('not-open', `chunk ${chunkIndex} has no segment yet`)
    return {
      ok: true,
      path: this.folder(jobId).segment(chunk.segment.file),
      size: chunk.segment.size,
      sha256: chunk.segment.sha256,
      meta: {
        frames: chunk.frames, selectFromTime: chunk.segment.selectFromTime, settings: job.encodeSettings ?? job.settings,
        ...(job.encoder !== undefined ? { encoder: job.encoder } : {}),
        frameRate: job.video.frameRate, pixFmt: job.video.pixFmt, width: job.video.width, height: job.video.height
      }
    }
  }

  /** A segment's bytes all went out on the holder's stream (the swarm layer's chunk protocol says so). */
  segmentSent (jobId: string, chunkIndex: number, peer: string, bytes: number, relayed: boolean): void {
    this.tell({ type: 'segment:sent', jobId, chunk: chunkIndex, peer, bytes, relayed })
  }

  segmentSendFailed (jobId: string, chunkIndex: number, peer: string, reason: string): void {
    this.tell({ type: 'segment:send-failed', jobId, chunk: chunkIndex, peer, reason })
  }

  /** An upload's turn and checks: result-intake.ts. */
  async resultSlot (jobId: string, chunkIndex: number, leaseId: string, peer: string, size: number): Promise<Answer<{ tmpPath: string, maxBytes: number }>> {
    return await this.intake.resultSlot(jobId, chunkIndex, leaseId, peer, size)
  }

  async uploadFailed (tmpPath: string): Promise<void> { await this.intake.uploadFailed(tmpPath) }

  /** Takes a received result if it is verified and its chunk still not done (result-intake.ts). */
  async acceptResult (jobId: string, chunkIndex: number, peer: string, tmpPath: string, sha256: string): Promise<Answer> {
    return await this.intake.accept(jobId, chunkIndex, peer, tmpPath, sha256)
  }

  /**
   * A peer was caught with a wrong result for the job: every result it gave the job, checked in
   * full or on its structure alone, is thrown away and its chunk encoded again by someone else
   * (the peer is banned). Their chunks are cut again (their segments were deleted when they were
   * done), so the job is splitting again; a merge under way is stopped first, and its output
   * removed, since it holds the peer's chunks. Once the job is done it is too late: said in the log.
   */
  private async requeue (job: JobRecord, peer: string): Promise<void> {
    if (!job.chunks.some(c => c.state === 'done' && c.result?.encodedBy === peer)) return
    if (job.state === 'done') {
      this.log.info(`${shortJob(job.id)} was merged before ${shortPeer(peer)} was caught with a wrong result; its chunks in ${job.output ?? 'the output'} were checked as the job's mode says (${job.verify ?? 'all'})`)
      return
    }
    // A merge reads the results about to be deleted: stopped first (it fails nothing when stopped).
    const merge = job.state === 'merging' ? this.running.get(job.id) : undefined
    if (merge !== undefined) this.aborts.get(job.id)?.abort()
    const reopened = this.leases.reopenEncodedBy(job, peer)
    if (reopened.length === 0) return
    const folder = this.folder(job.id)
    // Deleted before they are cut again: a check of another copy may still read an old segment, and
    // keeps its own file; a new result is written only once the chunk is cut and encoded again.
    await Promise.all(reopened.flatMap(({ chunk, result }) => [
      rm(folder.result(result.file), { force: true }),
      rm(folder.segmentFor(chunk.index), { force: true })
    ]))
    await this.save(job.id)
    await merge?.catch(() => {})
    this.runInBackground(job.id)
  }

  // ---- background work: split and merge ------------------------------------------------------

  private runInBackground (id: string): void {
    if (this.running.has(id) || this.stopped) return
    const controller = new AbortController()
    this.aborts.set(id, controller)
    const task = this.advance(id, controller.signal)
      .catch((err: Error) => {
        const job = this.store.get(id)
        if (job !== undefined && !controller.signal.aborted) this.fail(job, err.message)
      })
      .finally(() => {
        this.running.delete(id)
        this.aborts.delete(id)
        // A state change during the run (e.g. the last result) may need another pass.
        const job = this.store.get(id)
        if (job !== undefined && !controller.signal.aborted && needsRun(job)) this.runInBackground(id)
      })
    this.running.set(id, task)
  }

  private async sourceOf (job: JobRecord, signal: AbortSignal): Promise<MediaInfo> {
    const known = this.sources.get(job.id)
    if (known !== undefined) return known
    const source = await prepareSource(job.sourcePath, { signal })
    if (source.video.frameCount !== job.totalFrames) throw new Error(`${job.sourcePath} changed since it was added (${source.video.frameCount} frames, was ${job.totalFrames})`)
    this.sources.set(job.id, source)
    return source
  }

  private async advance (id: string, signal: AbortSignal): Promise<void> {
    const job = this.store.get(id)
    if (job === undefined) return
    if (job.state === 'splitting') await this.split(job, signal)
    if (job.state === 'encoding' && job.chunks.every(c => c.state === 'done')) {
      job.state = 'merging'
      this.touch(job)
      await this.save(id)
    }
    // A result still being checked may catch its peer, and then its chunks are not to be merged
    // (requeue): no new upload is let in once the job is merging, so this ends.
    if (job.state === 'merging') await this.intake.settled(id)
    if (job.state === 'merging') await this.merge(job, signal)
  }

  /**
   * Waits until the job has fewer unclaimed segments than the swarm's encoders will soon take
   * (SEGMENTS_AHEAD_PER_ENCODER each). Claimed segments do not count: they are in flight, and a
   * verified chunk's segment is deleted, so the job's disk stays near what is being encoded.
   */
  private async roomToCut (job: JobRecord, signal: AbortSignal): Promise<void> {
    const ahead = (): number => {
      const encoders = Math.max(1, this.o.swarmSize?.(encoderOf(job)) ?? 1) * Math.max(1, this.o.slotsPerPeer ?? 1)
      return Math.max(MIN_SEGMENTS_AHEAD, SEGMENTS_AHEAD_PER_ENCODER * encoders)
    }
    while (job.chunks.filter(c => c.state === 'open').length >= ahead()) await sleep(200, undefined, { signal })
  }

  /** Cuts the chunks still pending; each opens as soon as its segment exists, so workers start early. */
  private async split (job: JobRecord, signal: AbortSignal): Promise<void> {
    const splitStarted = this.now()
    const source = await this.sourceOf(job, signal)
    const plan = plannedRanges(job, source)
    const opened = (index: number, seg: Segment): void => {
      const chunk = job.chunks[index]
      if (chunk === undefined) return
      chunk.segment = { file: basename(seg.path), size: seg.sizeBytes, sha256: seg.sha256, selectFromTime: seg.selectFromTime, packetCount: seg.packetCount, ...(seg.decoded === true ? { decoded: true } : {}), ...(seg.cutProven === true ? { cutProven: true } : {}) }
      this.leases.open(job, chunk)
    }
    // Again while chunks are pending: a peer caught lying during a pass sends its chunks back to be cut (requeue).
    for (let pending = job.chunks.filter(c => c.state === 'pending'); pending.length > 0; pending = job.chunks.filter(c => c.state === 'pending')) {
      await splitSource({
        source,
        plan,
        pending: pending.map(c => c.index),
        folder: this.folder(job.id),
        tag: jobTag(job.id),
        signal,
        log: this.log,
        opened,
        ...(source.sizeBytes >= (this.o.cutAheadFromBytes ?? DEFAULT_CUT_AHEAD_FROM_BYTES) ? { room: async () => { await this.roomToCut(job, signal) } } : {})
      })
    }
    job.state = 'encoding'
    this.log.debug(`${jobTag(job.id)}: every chunk cut (${((this.now() - splitStarted) / 1000).toFixed(2)} s)`)
    this.tell({ type: 'split:done', jobId: job.id, chunks: job.chunks.length, ms: this.now() - splitStarted })
    this.touch(job)
    await this.save(job.id)
  }

  private async merge (job: JobRecord, signal: AbortSignal): Promise<void> {
    const source = await this.sourceOf(job, signal)
    const folder = this.folder(job.id)
    const chunkPaths = inFrameOrder(job).map(c => folder.result(c.result?.file ?? folder.resultName(c.index)))
    this.log.debug(`merging ${shortJob(job.id)}`)
    const mergeStarted = this.now()
    this.tell({ type: 'merge:started', jobId: job.id })
    const workDir = folder.merge
    await mkdir(workDir, { recursive: true })
    // Captions ride in the source's pictures, which the encode replaces: taken out as a subtitle track.
    const captions = source.video.closedCaptions && job.dropCaptions !== true ? await extractCaptions(job.sourcePath, workDir, { signal }) : []
    const tracks = folder.tracks
    const otherTracks = await pathExists(tracks) ? tracks : await otherTracksInput(source, tracks, { signal })
    const result = await mergeChunks({
      source, chunkPaths, workDir, signal, otherTracks: otherTracks ?? null, encoder: encoderOf(job),
      ...rangeOption(statedRange(settingsOf(job).encode)),
      ...(job.requestedOutput !== undefined ? { outputPath: job.requestedOutput } : {}),
      captions
    })
    // Stopped because a peer whose chunks it holds was caught lying (requeue): the file must not stay.
    if (signal.aborted) { await rm(result.path, { force: true }); signal.throwIfAborted() }
    // The merge's own probe of the output (every packet) serves both checks: no other read of either file.
    const output = verifyMergedOutput(source, result.info)
    job.output = result.path
    // The single place where "nothing lost" is decided: a failed check fails the job, with the table.
    // The user's settings, not the effective ones: colour carried over from the source is compared, not skipped.
    const fidelity = await checkFidelity(source, result.path, { settings: settingsOf(job).user, captionsDropped: job.dropCaptions === true, captionChannels: captions.map(c => c.channel), output, ...cutsToCompare(job), signal })
    if (signal.aborted) { job.output = null; await rm(result.path, { force: true }); signal.throwIfAborted() }
    job.fidelity = fidelity
    if (!job.fidelity.ok) {
      this.fail(job, `the output ${result.path} differs from the source:\n${formatFidelity(job.fidelity)}`)
      await this.save(job.id)
      return
    }
    job.state = 'done'
    this.touch(job)
    await this.save(job.id)
    // The output is verified: segments and results have done their work.
    await Promise.all(folder.scratch.map(async d => await rm(d, { recursive: true, force: true })))
    this.log.info(`${shortJob(job.id)} done → ${result.path}`)
    this.tell({ type: 'merge:done', jobId: job.id, ms: this.now() - mergeStarted, output: result.path })
  }

  private fail (job: JobRecord, error: string): void {
    if (job.state === 'done') return
    job.state = 'failed'
    job.error = error
    this.leases.abandon(job)
    this.log.info(`${shortJob(job.id)} failed: ${error}`)
    this.tell({ type: 'job:failed', jobId: job.id, reason: error })
    this.touch(job)
    void this.save(job.id)
  }

  // ---- persistence: the job store writes, the originator announces ----------------------------

  /** A change to tell the swarm about is written at once; one that is not (a heartbeat) may wait a little. */
  private touch (job: JobRecord, announce = true): void {
    if (announce) {
      this.store.touch(job)
      this.emit('changed', job.id)
    } else {
      this.store.touchLazily(job)
    }
  }

  /** Writes job.json atomically; overlapping saves are serialised per job. */
  async save (id: string): Promise<void> { await this.store.save(id) }
}

/**
 * The cuts whose pictures the merge compares with the source decoded across them: those the split
 * could not prove clean (a segment cut at an IDR or IRAP picture, or made from the decoded source,
 * decodes as the source does across the cut, by the codec's rules). The first chunk is no cut.
 */
function cutsToCompare (job: JobRecord): { chunkStarts: number[], cutsProven: number } {
  const cuts = inFrameOrder(job).slice(1)
  const proven = (c: JobRecord['chunks'][number]): boolean => c.segment?.cutProven === true || c.segment?.decoded === true
  return { chunkStarts: cuts.filter(c => !proven(c)).map(c => c.startFrame), cutsProven: cuts.filter(proven).length }
}

/** A job's chunks in the order of their frames: a split-off chunk (straggler.ts) comes last by index. */
function inFrameOrder (job: JobRecord): JobRecord['chunks'] {
  return [...job.chunks].sort((a, b) => a.startFrame - b.startFrame)
}

/**
 * The ranges of the chunks the job has, not of a plan made again (the planner may have changed
 * since), each at its chunk's index: chunks split off later come last by index, not by frame.
 */
export function plannedRanges (job: JobRecord, source: MediaInfo): ChunkRange[] {
  const ordered = inFrameOrder(job)
  const ranges = chunkRanges(source, ordered.map(c => c.startFrame)).chunks
  const plan: ChunkRange[] = []
  ranges.forEach((range, i) => {
    const chunk = ordered[i] as JobRecord['chunks'][number]
    if (range.frameCount !== chunk.frames) throw new Error(`${job.sourcePath} no longer has the frames its job's chunks were planned on (${source.video.frameCount} frames now)`)
    plan[chunk.index] = { ...range, index: chunk.index }
  })
  return plan
}
