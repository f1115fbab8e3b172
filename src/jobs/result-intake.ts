import { availableParallelism } from 'node:os'
import { mkdir, rename, rm, stat } from 'node:fs/promises'
import {
  reserveSpace, type SpaceReservation, comparePictures, convicts, discardSourceReference, encodedSize, encoderFor, prepareSourceReference, referenceStructure, VerificationError, verifyEncodedChunk,
  type ReferenceStructure, type SourceReference, type StructureJob,
  type EncoderId
} from '../media/index.js'
import { logger, shortChunk, shortPeer, type Logger, type LogSink } from '../log/index.js'
import type { Answer, EmitEvent, OriginatorEvent, Refusal, ReportOffence } from '../swarm/index.js'
import type { JobFolder } from './job-folder.js'
import { encoderOf, settingsOf } from './job-settings.js'
import { countStat, type LeaseTable } from './lease-table.js'
import { refusal, type ChunkRecord, type JobRecord } from './types.js'
import { CheckPlanner, type AdaptiveRule, type CheckDepth } from './verification-policy.js'

/**
 * At most `limit` works at once, peers taking turns: the next work to start is the first waiting
 * one of the first peer in turn with nothing running, else of the first peer in turn; a peer that
 * started or finished one goes to the back. A peer that uploads fifty results then uses idle cores
 * only while nobody else waits, and an honest peer's single result waits for one of the flooder's
 * to finish, not for all of them: they used to wait in one queue in arrival order.
 */
export class FairTurns {
  private active = 0
  private readonly running = new Map<string, number>()
  /** Per peer, its waiting works in arrival order, each with its group (a job); the map's order is the peers' turn order. */
  private readonly queues = new Map<string, Array<{ group: string, start: () => void }>>()
  constructor (private readonly limit: number) {}

  async run<T> (peer: string, work: () => Promise<T>, group = ''): Promise<T> {
    await new Promise<void>(resolve => {
      const q = this.queues.get(peer)
      if (q !== undefined) q.push({ group, start: resolve })
      else this.queues.set(peer, [{ group, start: resolve }])
      this.next()
    })
    try {
      return await work()
    } finally {
      this.active--
      this.running.set(peer, (this.running.get(peer) ?? 1) - 1)
      if (this.running.get(peer) === 0) this.running.delete(peer)
      this.toBack(peer)
      this.next()
    }
  }

  /**
   * Starts at once, beyond the limit, every waiting work of the peer in the group: for works that
   * will find they need not run (a peer just banned from the job), so that their answers do not
   * wait for other peers' turns, past the moment the banned peer's connections are closed.
   */
  startNow (peer: string, group: string): void {
    const q = this.queues.get(peer)
    if (q === undefined) return
    const now = q.filter(w => w.group === group)
    this.queues.set(peer, q.filter(w => w.group !== group))
    this.toBack(peer)
    for (const w of now) {
      this.active++
      this.running.set(peer, (this.running.get(peer) ?? 0) + 1)
      w.start()
    }
  }

  private toBack (peer: string): void {
    const q = this.queues.get(peer)
    if (q === undefined) return
    this.queues.delete(peer)
    if (q.length > 0) this.queues.set(peer, q)
  }

  private next (): void {
    while (this.active < this.limit) {
      let peer: string | undefined
      for (const p of this.queues.keys()) if (!this.running.has(p)) { peer = p; break }
      peer ??= this.queues.keys().next().value
      if (peer === undefined) return
      const waiting = this.queues.get(peer)?.shift()
      this.toBack(peer)
      if (waiting === undefined) continue
      this.active++
      this.running.set(peer, (this.running.get(peer) ?? 0) + 1)
      waiting.start()
    }
  }
}

/**
 * A result may be this many times its segment's size. Measured on every test fixture, x264 at
 * `--crf 0` made 5.2-11.2x the segment (medium 8-bit ... ultrafast 10-bit) and `--qp 0
 * --output-csp i444` up to 21x (those sources are clean synthetic pictures at low bitrates, which
 * lossless coding punishes most); 32 leaves half as much again.
 */
const RESULT_SEGMENT_MULTIPLE = 32
/**
 * Whatever the segment's size, a result may hold its frames' raw pictures in the output format
 * and a quarter more: lossless x264 on noisy pictures approaches the raw size (PCM macroblocks
 * are raw), and a tiny, heavily compressed segment must not turn away an honest `--crf 0`.
 */
const RESULT_RAW_MARGIN = 1.25

/** Bytes per pixel of a raw picture as the job's encoder would write it (output colour space and depth); 8-bit 4:2:0 if its settings no longer parse. */
function rawBytesPerPixel (job: JobRecord): number {
  try {
    const settings = settingsOf(job).encode
    return encoderFor(settings.encoder).rawBytesPerPixel(settings)
  } catch { return 1.5 /* checked when the job was added */ }
}

/** What the job's encoder is given: its effective settings, and the source's size, pixel format and rate. */
function encodingOf (job: JobRecord): StructureJob {
  return { settings: settingsOf(job).encode, width: job.video.width, height: job.video.height, sourcePixFmt: job.video.pixFmt, frameRate: job.video.frameRate }
}

/** The largest result a chunk can honestly have (see RESULT_SEGMENT_MULTIPLE and RESULT_RAW_MARGIN). */
export function maxResultBytes (job: JobRecord, chunk: ChunkRecord): number {
  const raw = chunk.frames * job.video.width * job.video.height * rawBytesPerPixel(job)
  return Math.ceil(Math.max(RESULT_SEGMENT_MULTIPLE * (chunk.segment?.size ?? 0), RESULT_RAW_MARGIN * raw)) + 1024 * 1024
}

export interface ResultIntakeOptions {
  /** This node's peer id: its own worker's results are moved in, not copied, and only parsed. */
  self: string
  /** The node's home: replaced by `<home>` in reasons sent back to peers. */
  home: string
  /** The job records, and the write of job.json once a result is kept. */
  jobs: { get: (id: string) => JobRecord | undefined, save: (id: string) => Promise<void> }
  /** Who may upload, and the chunk's record once a result is kept (lease-table.ts). */
  leases: Pick<LeaseTable, 'beginUpload' | 'endUpload' | 'complete'>
  /** Where a job's segments, uploads and results are (job-folder.ts). */
  folder: (jobId: string) => JobFolder
  /** A chunk's result is verified, kept and written to job.json. */
  chunkDone: (job: JobRecord, chunk: ChunkRecord) => void
  /** Peers' results decoded at once (default: this machine's cores); the rest wait their turn, one per peer at a time. */
  verifyConcurrency?: number
  now?: () => number
  log?: LogSink
  /** A peer whose result failed verification is reported here: the daemon bans it (swarm/bans.ts). */
  reportOffence?: ReportOffence
  /**
   * Whether a peer is banned now, from the node or from the job: its results still waiting to be
   * checked are then refused unchecked, and none of its results is kept (one that passed its check
   * while the peer was caught with another must not count).
   */
  isBanned?: (peer: string, jobId: string) => boolean
  /** Results refused and chunks done, as node events (swarm/events.ts); the owner stamps them. */
  event?: EmitEvent<OriginatorEvent>
  /**
   * A peer was caught with a wrong result for this job (reported as an offence just before): every
   * result it gave the job must be encoded again (Originator.requeue).
   */
  convicted?: (job: JobRecord, peer: string) => void
  /**
   * Which results get the picture check in adaptive mode (verification-policy.ts): the draw
   * (default: node:crypto) and the rule (default ADAPTIVE_RULE). Tests script the draw.
   */
  checks?: { draw?: (jobId: string, peer: string) => number, rule?: AdaptiveRule }
  /** The version of an encoder a peer advertises (this node's own for itself), kept with each result. */
  encoderVersionOf?: (peer: string, encoder: EncoderId) => string | undefined
  /** Make the source's side of a picture check while the peer encodes (leased); default true. Off: all of it after the upload. */
  prepareChecks?: boolean
}

/** The source's side of one chunk's next picture check, being made or made (ResultIntake.leased). */
interface PreparedCheck {
  /** Whose lease it was made for. */
  peer: string
  /** Its work has begun: the check waits for it rather than doing it again. */
  started: boolean
  controller: AbortController
  reference: Promise<SourceReference | undefined>
}

/**
 * The originator's intake of results: which uploads it lets in (slots, size bounds, disk room),
 * the check of each result (parse, structure, and pictures for every peer's result or, in adaptive
 * mode, a drawn share: verification-policy.ts; a peer caught lying is reported, and everything it
 * gave the job goes back to be encoded again), and the keeping of a good one. Nothing unverified ever counts.
 */
export class ResultIntake {
  private readonly verifyTurns: FairTurns
  /** Uploads let in by resultSlot, by the temporary path their bytes go to. */
  private readonly uploads = new Map<string, { jobId: string, chunk: number, leaseId: string, peer: string, space?: SpaceReservation }>()
  /** Peers' results being verified now, per chunk ("job#index"): their picture checks read its segment. */
  private readonly verifying = new Map<string, number>()
  /** Per job, what this machine's x264 writes for its settings: peers' results must match it (media/structure.ts). */
  private readonly structures = new Map<string, Promise<ReferenceStructure>>()
  /** Which of a peer's results get the picture check (verification-policy.ts). */
  private readonly planner: CheckPlanner
  /** Per chunk ("job#index"), the source's side of its next picture check (leased). */
  private readonly prepared = new Map<string, PreparedCheck>()
  /** Preparations run one at a time, jobs taking turns: the checks of results that are in come first. */
  private readonly preparing = new FairTurns(1)
  /** Per job, preparations and removals of their files not yet ended: the job's folder goes only after them. */
  private readonly preparationsOf = new Map<string, Set<Promise<unknown>>>()
  private stopped = false
  /** Aborted when the node stops: checks and preparations end rather than write into job folders after it. */
  private readonly stopping = new AbortController()
  /** Per job, results being taken now (accept, from the upload's end to kept or refused), and who waits for none to be. */
  private readonly accepting = new Map<string, { count: number, idle: Array<() => void> }>()
  private readonly now: () => number
  private readonly log: Logger

  constructor (private readonly o: ResultIntakeOptions) {
    this.now = o.now ?? Date.now
    this.log = logger('jobs', o.log)
    this.verifyTurns = new FairTurns(Math.max(1, o.verifyConcurrency ?? availableParallelism()))
    this.planner = new CheckPlanner(o.checks ?? {})
  }

  /** The job's settings or source may have changed (encoded again, cancelled): its reference structure is made anew, and every peer starts again with its first full checks. */
  async forget (jobId: string): Promise<void> {
    this.structures.delete(jobId)
    this.planner.forget(jobId)
    for (const key of [...this.prepared.keys()]) if (key.startsWith(`${jobId}#`)) this.discardPrepared(key)
    await this.preparationsEnded(jobId)
  }

  /**
   * A peer took a lease on a chunk. When its result will surely get the picture check (every result
   * in mode all, a peer's first in adaptive mode), the source's side of that check (the source's
   * frames reduced, the frames to compare drawn now and kept here, this node's own encode of them:
   * media's prepareSourceReference) is made while the peer encodes, so the check of its result
   * only decodes the result. At a job's end that is the time from the last encode to the merge.
   * The frames are drawn with the CSPRNG and never leave this node before the check, as when
   * drawn after the upload; a reference serves one check and is then gone.
   */
  leased (jobId: string, chunkIndex: number, peer: string): void {
    if (peer === this.o.self || this.o.prepareChecks === false || this.stopped) return
    const key = `${jobId}#${chunkIndex}`
    const job = this.o.jobs.get(jobId)
    const chunk = job?.chunks[chunkIndex]
    if (job === undefined || chunk?.segment === undefined || this.prepared.has(key)) return
    const mode = job.verify ?? 'all'
    if (!this.planner.nextIsFull(jobId, peer, mode)) return
    // Adaptive: only the peer's next result is sure to be checked in full, not two it holds at once.
    if (mode !== 'all' && [...this.prepared].some(([k, e]) => e.peer === peer && k.startsWith(`${jobId}#`))) return
    const segment = { path: this.o.folder(jobId).segment(chunk.segment.file), selectFromTime: chunk.segment.selectFromTime }
    const frames = chunk.frames
    const under = this.o.folder(jobId).checks
    const entry: PreparedCheck = { peer, started: false, controller: new AbortController(), reference: Promise.resolve(undefined) }
    entry.reference = this.preparing.run(jobId, async () => {
      if (entry.controller.signal.aborted || chunk.state === 'done') return undefined
      entry.started = true
      return await prepareSourceReference(segment, frames, { job: encodingOf(job), signal: AbortSignal.any([entry.controller.signal, this.stopping.signal]), under })
    }).catch((err: Error) => {
      // Its check does it all after the upload, as without a preparation.
      if (err.name !== 'AbortError') this.log.debug(`preparing the check of ${shortChunk(jobId, chunkIndex)} failed: ${err.message}`)
      return undefined
    })
    this.track(jobId, entry.reference)
    this.prepared.set(key, entry)
  }

  private track (jobId: string, work: Promise<unknown>): void {
    const set = this.preparationsOf.get(jobId) ?? new Set()
    this.preparationsOf.set(jobId, set)
    set.add(work)
    void work.finally(() => {
      set.delete(work)
      if (set.size === 0 && this.preparationsOf.get(jobId) === set) this.preparationsOf.delete(jobId)
    })
  }

  private async preparationsEnded (jobId?: string): Promise<void> {
    const sets = jobId !== undefined ? [this.preparationsOf.get(jobId)] : [...this.preparationsOf.values()]
    await Promise.allSettled(sets.flatMap(set => [...(set ?? [])]))
  }

  /** The prepared source side of this chunk's check if its making has begun (waited for), else none: the check makes it itself. */
  private async takePrepared (key: string): Promise<SourceReference | undefined> {
    const entry = this.prepared.get(key)
    if (entry === undefined) return undefined
    this.prepared.delete(key)
    if (!entry.started) { entry.controller.abort(); return undefined }
    return await entry.reference
  }

  private discardPrepared (key: string): void {
    const entry = this.prepared.get(key)
    if (entry === undefined) return
    this.prepared.delete(key)
    entry.controller.abort()
    this.track(key.slice(0, key.indexOf('#')), entry.reference.then(async r => { if (r !== undefined) await discardSourceReference(r) }))
  }

  /**
   * A node stopping: every preparation and picture check stops (a result being checked is refused,
   * blaming nobody), what they made is removed, and nothing of theirs writes into a job's folder after.
   */
  async stop (): Promise<void> {
    this.stopped = true
    this.stopping.abort()
    for (const key of [...this.prepared.keys()]) this.discardPrepared(key)
    await Promise.all([...this.accepting.keys()].map(async jobId => { await this.settled(jobId) }))
    await this.preparationsEnded()
  }

  /**
   * Resolves once no result of the job is being taken (checked, then kept or refused). The merge
   * waits for it: a check still running may catch its peer, whose other results must then not be merged.
   */
  async settled (jobId: string): Promise<void> {
    const taking = this.accepting.get(jobId)
    if (taking !== undefined) await new Promise<void>(resolve => { taking.idle.push(resolve) })
    // Every chunk is done, so each preparation is stopped and its files on their way out.
    await this.preparationsEnded(jobId)
  }

  /**
   * May this peer upload a result of `size` bytes for this chunk? Decided before any byte is
   * written: the sender must be the chunk's holder or its most recent one, with no other upload
   * under that lease (LeaseTable.beginUpload), the size within what the chunk can honestly be
   * (maxResultBytes), and the disk must have room. Returns where to write the bytes; the upload
   * then ends with accept, or with uploadFailed when the bytes never all arrive.
   */
  async resultSlot (jobId: string, chunkIndex: number, leaseId: string, peer: string, size: number): Promise<Answer<{ tmpPath: string, maxBytes: number }>> {
    const found = this.o.leases.beginUpload(jobId, chunkIndex, leaseId, peer)
    if (!found.ok) return this.told(jobId, chunkIndex, peer, found)
    const { job, chunk } = found
    const maxBytes = maxResultBytes(job, chunk)
    const folder = this.o.folder(jobId)
    const refuse = (r: Refusal): Refusal => { this.o.leases.endUpload(jobId, chunkIndex, leaseId, 'lost'); return this.told(jobId, chunkIndex, peer, r) }
    if (size > maxBytes) return refuse({ ok: false, code: 'too-large', message: `result of ${size} bytes is larger than the ${maxBytes} a chunk of ${chunk.frames} frames (segment of ${chunk.segment?.size ?? 0} bytes) can be` })
    let space: SpaceReservation | undefined
    try {
      await mkdir(folder.incoming, { recursive: true })
      // This node's own results are moved in, not copied. A peer's size is reserved until the upload ends.
      if (peer !== this.o.self) space = await reserveSpace(folder.incoming, size, `a result for ${shortChunk(jobId, chunkIndex)}`)
    } catch (err) {
      this.log.info(`refused a result upload from ${shortPeer(peer)}: ${(err as Error).message}`)
      // Our folder's name stays here: the peer only learns that there is no room.
      return refuse(refusal('no-space', `the originator has no room for a result of ${size} bytes now`))
    }
    const tmpPath = folder.newIncoming(chunkIndex)
    this.uploads.set(tmpPath, { jobId, chunk: chunkIndex, leaseId, peer, ...(space !== undefined ? { space } : {}) })
    return { ok: true, tmpPath, maxBytes }
  }

  /** An upload let in by resultSlot whose bytes never all arrived: its lease may send them again. */
  async uploadFailed (tmpPath: string): Promise<void> {
    const upload = this.uploads.get(tmpPath)
    upload?.space?.release()
    this.uploads.delete(tmpPath)
    await rm(tmpPath, { force: true })
    if (upload !== undefined) this.o.leases.endUpload(upload.jobId, upload.chunk, upload.leaseId, 'lost')
  }

  /**
   * Takes a received result: verifies it as media (decodes, H.264, exact frame count, size) and
   * keeps it if the chunk is still not done. Nothing unverified ever counts.
   */
  async accept (jobId: string, chunkIndex: number, peer: string, tmpPath: string, sha256: string): Promise<Answer> {
    const taking = this.accepting.get(jobId) ?? { count: 0, idle: [] }
    taking.count++
    this.accepting.set(jobId, taking)
    try {
      return await this.take(jobId, chunkIndex, peer, tmpPath, sha256)
    } finally {
      if (--taking.count === 0) {
        this.accepting.delete(jobId)
        for (const resolve of taking.idle) resolve()
      }
    }
  }

  private async take (jobId: string, chunkIndex: number, peer: string, tmpPath: string, sha256: string): Promise<Answer> {
    const started = this.now()
    const upload = this.uploads.get(tmpPath)
    // Its bytes are on disk now, where statfs counts them.
    upload?.space?.release()
    this.uploads.delete(tmpPath)
    const ended = (how: 'lost' | 'refused'): void => { if (upload !== undefined) this.o.leases.endUpload(upload.jobId, upload.chunk, upload.leaseId, how) }
    const job = this.o.jobs.get(jobId)
    const chunk = job?.chunks[chunkIndex]
    if (upload === undefined || upload.jobId !== jobId || upload.chunk !== chunkIndex || upload.peer !== peer) {
      await rm(tmpPath, { force: true })
      return this.told(jobId, chunkIndex, peer, refusal('not-holder', 'no upload was let in for this result'))
    }
    if (job === undefined || chunk === undefined) { await rm(tmpPath, { force: true }); return this.told(jobId, chunkIndex, peer, refusal('unknown-job', 'job or chunk vanished')) }
    // Drawn now, after the upload: the peer could not know which of its results get the picture check.
    const depth: CheckDepth | 'own' = peer === this.o.self ? 'own' : this.planner.decide(jobId, peer, job.verify ?? 'all')
    const bad = await this.verifyResult(job, chunk, peer, tmpPath, depth)
    // A check stopped with the node says nothing of the result: its lease may send it again.
    if (bad !== undefined) { ended(this.stopped ? 'lost' : 'refused'); return this.told(jobId, chunkIndex, peer, bad) }
    // Caught with another result while this one was checked: nothing of this peer counts for the job any more.
    if (peer !== this.o.self && this.o.isBanned?.(peer, jobId) === true) {
      await rm(tmpPath, { force: true })
      ended('refused')
      this.log.info(`refused result for ${shortChunk(jobId, chunkIndex)} from ${shortPeer(peer)}: it passed its check, but the peer was caught with another result meanwhile`)
      return this.told(jobId, chunkIndex, peer, { ok: false, code: 'banned', message: 'this peer is banned from this job; its result was not kept' })
    }
    // Re-check after the await: another copy may have been taken meanwhile.
    if (chunk.state === 'done') {
      await rm(tmpPath, { force: true })
      countStat(job, 'droppedResults')
      ended('lost')
      return this.told(jobId, chunkIndex, peer, refusal('already-done', `chunk ${chunkIndex} is already done`))
    }
    const folder = this.o.folder(jobId)
    const file = folder.resultName(chunkIndex)
    await mkdir(folder.results, { recursive: true })
    await rename(tmpPath, folder.result(file))
    const size = (await stat(folder.result(file))).size
    const leasedAt = [chunk.lease, chunk.backup].find(l => l?.holder === peer)?.issuedAt
    const encoderVersion = this.o.encoderVersionOf?.(peer, encoderOf(job))
    this.o.leases.complete(job, chunk, peer, { file, size, sha256, encodedBy: peer, at: this.now(), ...(depth !== 'own' ? { check: depth } : {}), ...(encoderVersion !== undefined ? { encoderVersion } : {}) })
    this.o.event?.({ type: 'chunk:done', jobId, chunk: chunkIndex, peer, bytes: size, verifyMs: this.now() - started, ...(leasedAt !== undefined ? { leaseMs: this.now() - leasedAt } : {}), ...(depth !== 'own' ? { check: depth } : {}) })
    if (depth === 'structural') this.log.debug(`kept ${shortChunk(jobId, chunkIndex)} from ${shortPeer(peer)} on its structure alone (adaptive checking)`)
    await this.o.jobs.save(jobId)
    // Done by another copy (this node's own, a backup) before its check was needed.
    this.discardPrepared(`${jobId}#${chunkIndex}`)
    await this.dropSegment(job, chunk)
    this.o.chunkDone(job, chunk)
    return { ok: true }
  }

  /** A refusal on its way back to the peer, told as a node event. */
  private told (jobId: string, chunk: number, peer: string, r: Refusal): Refusal {
    this.o.event?.({ type: 'result:refused', jobId, chunk, peer, code: r.code, reason: r.message })
    return r
  }

  /**
   * A done chunk's segment is of no more use (the result is verified and kept; other holders are
   * told to stop): deleted, so the job's extra disk shrinks as it goes, unless a picture check
   * of another copy still reads it (that check deletes it when it ends).
   */
  private async dropSegment (job: JobRecord, chunk: ChunkRecord): Promise<void> {
    if (chunk.state !== 'done' || chunk.segment === undefined || (this.verifying.get(`${job.id}#${chunk.index}`) ?? 0) > 0) return
    await rm(this.o.folder(job.id).segment(chunk.segment.file), { force: true })
  }

  /**
   * The structure every result of the job must have, from a two-frame encode with its settings on
   * this machine (once per job; a failed one is tried again next time, and fails as our side, not the peer's).
   */
  private async structureOf (job: JobRecord): Promise<ReferenceStructure> {
    let reference = this.structures.get(job.id)
    if (reference === undefined) {
      reference = referenceStructure(encodingOf(job))
      this.structures.set(job.id, reference)
      reference.catch(() => { if (this.structures.get(job.id) === reference) this.structures.delete(job.id) })
    }
    return await reference
  }

  /**
   * Undefined if the result is good media for the chunk; else the refusal, and the file is gone.
   * `depth`: a peer's result gets the structural checks and, when `full`, the picture check; this
   * node's own is only parsed.
   */
  private async verifyResult (job: JobRecord, chunk: ChunkRecord, peer: string, tmpPath: string, depth: CheckDepth | 'own'): Promise<Refusal | undefined> {
    const chunkIndex = chunk.index
    let reported = false
    try {
      // A peer's result is parsed first (count, IDR, parameter sets, size: in-process, cheap), then
      // decoded once for the picture check, a few at a time: fifty peers that finish in the same
      // second would otherwise start fifty decoders. This node's own x264 output is only parsed.
      const expectations = {
        frameCount: chunk.frames, ...encodedSize(job.video.width, job.video.height, job.video.pixFmt), decode: false,
        // The job's encoder says what a result must be (its codec), this node's own included.
        encoder: encoderOf(job),
        ...(peer !== this.o.self ? { structure: await this.structureOf(job) } : {})
      }
      await verifyEncodedChunk(tmpPath, expectations)
      if (depth === 'full') {
        let bannedWhileQueued = false
        const key = `${job.id}#${chunkIndex}`
        this.verifying.set(key, (this.verifying.get(key) ?? 0) + 1)
        try {
          await this.verifyTurns.run(peer, async () => {
            // Done while this copy waited its turn: the segment may be gone, and the copy is not needed.
            if (chunk.state === 'done') return
            // Caught lying while this one waited (a flood of wrong results): the rest cost no decode.
            if (this.o.isBanned?.(peer, job.id) === true) { bannedWhileQueued = true; return }
            // Right count and size say nothing of the pictures: frames drawn now, after the upload,
            // are compared with the source segment's (media/pictures.ts).
            if (chunk.segment === undefined) throw new VerificationError(`chunk ${chunkIndex} has no source segment to compare the result with`)
            const segment = { path: this.o.folder(job.id).segment(chunk.segment.file), selectFromTime: chunk.segment.selectFromTime }
            const reference = await this.takePrepared(key)
            // The job's settings set what an honest encode of the drawn frames loses.
            const compare = async (prepared?: SourceReference): Promise<unknown> =>
              await comparePictures(tmpPath, segment, chunk.frames, { job: encodingOf(job), signal: this.stopping.signal, ...(prepared !== undefined ? { reference: prepared } : {}) })
            try {
              try {
                await compare(reference)
                if (reference !== undefined) this.log.debug(`checked the pictures of ${shortChunk(job.id, chunkIndex)} from ${shortPeer(peer)} against the source's side prepared while it was encoded`)
              } catch (err) {
                // Our prepared side unusable (its files gone, a disk error): the whole check again, rather than the peer's work refused for it.
                if (reference === undefined || convicts(err, tmpPath) || (err as Error).name === 'AbortError') throw err
                this.log.debug(`the prepared check of ${shortChunk(job.id, chunkIndex)} failed on this node's side (${(err as Error).message}); checking it in full`)
                await compare()
              }
            } catch (err) {
              // Convicted inside its turn: the next result of this peer waiting for a turn must see
              // the ban, or it costs a decode too (the turn passes on before any await out here).
              if (convicts(err, tmpPath)) { this.convict(job, chunkIndex, peer, tmpPath, err); reported = true }
              throw err
            } finally {
              if (reference !== undefined) {
                const removal = discardSourceReference(reference)
                this.track(job.id, removal)
                await removal
              }
            }
          }, job.id)
        } finally {
          const left = (this.verifying.get(key) ?? 1) - 1
          if (left > 0) this.verifying.set(key, left)
          else this.verifying.delete(key)
          await this.dropSegment(job, chunk)
        }
        if (bannedWhileQueued) {
          await rm(tmpPath, { force: true })
          this.log.info(`refused result for ${shortChunk(job.id, chunkIndex)} from ${shortPeer(peer)} unchecked: banned while it waited its turn`)
          return { ok: false, code: 'banned', message: 'this peer is banned from this job; its result was not checked' }
        }
      }
      return undefined
    } catch (err) {
      const reason = this.publicReason(err, tmpPath, chunkIndex)
      if (!reported) {
        this.log.info(`refused result for ${shortChunk(job.id, chunkIndex)} from ${shortPeer(peer)}: ${reason}`)
        // Caught lying: the result itself is not what the chunk must be. Not when the check failed on
        // our side (a missing tool, our own segment, a stop): see convicts.
        if (peer !== this.o.self && convicts(err, tmpPath)) {
          this.o.reportOffence?.({ peer, jobId: job.id, reason: `failed verification: ${reason}` })
          this.o.convicted?.(job, peer)
        }
      }
      await rm(tmpPath, { force: true })
      return refusal('bad-result', reason)
    }
  }

  /** The reason goes back to the peer: no path of ours may be in it. */
  private publicReason (err: unknown, tmpPath: string, chunkIndex: number): string {
    return (err as Error).message.replaceAll(tmpPath, `result for chunk ${chunkIndex}`).replaceAll(this.o.home, '<home>')
  }

  /**
   * Logs the refusal and reports the liar at once, so that a ban lands before anything else of its
   * is looked at, and has every result it gave the job encoded again: none of them counts now.
   */
  private convict (job: JobRecord, chunkIndex: number, peer: string, tmpPath: string, err: unknown): void {
    const reason = this.publicReason(err, tmpPath, chunkIndex)
    this.log.info(`refused result for ${shortChunk(job.id, chunkIndex)} from ${shortPeer(peer)}: ${reason}`)
    this.o.reportOffence?.({ peer, jobId: job.id, reason: `failed verification: ${reason}` })
    // Its other results waiting for a turn are refused now, unchecked: not after other peers' turns,
    // by which time the ban may have closed its connections and cut their answers off.
    if (this.o.isBanned?.(peer, job.id) === true) this.verifyTurns.startNow(peer, job.id)
    this.o.convicted?.(job, peer)
  }
}
