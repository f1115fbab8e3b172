import { copyFile } from 'node:fs/promises'
import { basename } from 'node:path'
import { chunkRanges, type MediaInfo } from '../media/index.js'
import { shortChunk, shortJob, type Logger } from '../log/index.js'
import type { EmitEvent, OriginatorEvent } from '../swarm/index.js'
import type { JobFolder } from './job-folder.js'
import { countStat, median, type LeaseTable } from './lease-table.js'
import type { ChunkRecord, JobRecord } from './types.js'

/** How far this node's own encode of a chunk has got (the worker's measure, not a peer's word). */
export interface EncodeStanding {
  /** Frames handed to the encoder so far: the encode cannot end before them. */
  framesPiped: number
  /** The frames the chunk has now. */
  frames: number
  /** Frames the encoder reports done, and its pace (0: none reported yet). */
  framesDone: number
  fps: number
}

/**
 * Ends this node's own encode of a chunk early (the daemon: its worker's shortenOwnEncode): `choose`
 * names the frames to keep from where the encode stands, or none; the answer is the frames the
 * encode will have, or undefined when it could not end there.
 */
export type ShortenOwnEncode = (jobId: string, chunk: number, leaseId: string, choose: (at: EncodeStanding) => number | undefined) => number | undefined

/** What a split must win: this much sooner an end, so a cut's new key frame and a peer's start are worth it. */
const MIN_GAIN_SECONDS = 2
/** A split-off chunk holds at least this much video (and at least MIN_SPLIT_FRAMES): shorter ones cost a key frame for little. */
const MIN_SPLIT_SECONDS = 1
const MIN_SPLIT_FRAMES = 12
/**
 * What a split-off chunk costs its peer beside its frames at the job's pace: the announcement, the
 * claim, the download, the tools' start and the encoder's end of a short chunk. Measured with
 * SVT-AV1 preset 8 on two one-core nodes: split-off parts of 50-77 frames took their peer 2.3-2.6 s
 * more than their frames at its pace (with 1.5 s here, this node ended 2-3 s before the peer).
 */
const SPLIT_OVERHEAD_SECONDS = 2.5
/**
 * Decoding a frame of the source before the split-off chunk (its segment is the straggler's, so
 * the peer decodes what this node already encoded): a tenth of an encode's time a frame, at most
 * 20 ms. SVT-AV1 at preset 8 spends 50-150 ms a 720p frame; the source's decode took 6 ms (1.3 s
 * for 216 frames, performance.md).
 */
const prerollSecondsPerFrame = (encodeSecondsPerFrame: number): number => Math.min(0.02, encodeSecondsPerFrame / 10)
/** The own encode's pace is its own once it has done this share of the chunk (LeaseTable's PACE_FROM_SHARE). */
const OWN_PACE_FROM_SHARE = 0.1
/** Splits one job may make: each adds a chunk to every announcement of it. */
const MAX_SPLITS_PER_JOB = 32
/** Recent chunks whose pace (lease to kept result, a frame) stands for this node's own worker's, and for the peers'. */
const PACE_SAMPLES = 16

export interface SplitPointOptions {
  /** Seconds a frame of this job has taken a peer, lease to kept result; undefined before any result. */
  peerSecondsPerFrame?: number
  /** The source's frames a second: the smallest split-off chunk is MIN_SPLIT_SECONDS of them. */
  frameRate: number
  /** Frames the peer decodes before the chunk's first one however it is split (the segment's own pre-roll). */
  preroll: number
  /** How much sooner the chunk must end for a split to be worth it (default MIN_GAIN_SECONDS). */
  minGainSeconds?: number
  /**
   * Seconds a frame of this job's earlier chunks took this node's own worker: its pace until its
   * encode has measured its own on this chunk (else the peers' is assumed). On two nodes the
   * originator's worker, beside every check, went at half the peer's pace.
   */
  ownSecondsPerFrame?: number
}

/**
 * Where to end this node's own encode of a straggling chunk so that it and an idle peer, taking the
 * rest, end together: the own encode keeps `a` more frames at its pace, the peer pays the overhead,
 * decodes everything before its first frame and encodes the rest at the job's pace. Undefined when
 * no split ends the chunk MIN_GAIN_SECONDS sooner, or the rest would be too short.
 */
export function splitPoint (at: EncodeStanding, o: SplitPointOptions): number | undefined {
  const done = Math.max(0, Math.min(at.framesDone, at.framesPiped))
  const ownPaced = at.fps > 0 && done >= OWN_PACE_FROM_SHARE * at.frames
  const own = ownPaced ? 1 / at.fps : o.ownSecondsPerFrame ?? o.peerSecondsPerFrame
  const peer = o.peerSecondsPerFrame ?? own
  if (own === undefined || peer === undefined || !(own > 0) || !(peer > 0)) return undefined
  const decode = prerollSecondsPerFrame(peer)
  const left = at.frames - done
  const keep = (SPLIT_OVERHEAD_SECONDS + (o.preroll + done) * decode + left * peer) / (own + peer - decode)
  const end = Math.max(at.framesPiped, Math.ceil(done + keep))
  if (at.frames - end < Math.max(MIN_SPLIT_FRAMES, Math.ceil(MIN_SPLIT_SECONDS * o.frameRate))) return undefined
  const unsplit = left * own
  const split = Math.max((end - done) * own, SPLIT_OVERHEAD_SECONDS + (o.preroll + end) * decode + (at.frames - end) * peer)
  return unsplit - split >= (o.minGainSeconds ?? MIN_GAIN_SECONDS) ? end : undefined
}

export interface GrantSplitOptions extends SplitPointOptions {
  /** The frames of the chunk a peer is about to be granted. */
  frames: number
  /** Seconds until this node's own worker has nothing left to encode of what it holds now (0: idle). */
  ownFreeIn: number
  /** Seconds a frame takes this node's own encode (its measured pace, else the job's). */
  ownSecondsPerFrame: number
  /** Seconds the claiming peer still encodes what it holds of the job (a claim made near the end of its encode before); default 0. */
  peerBusyFor?: number
}

/**
 * How many frames of the last open chunk a claiming peer should get when this node's own worker
 * will be free before that peer could encode all of it: the peer encodes the first `k` at the
 * job's pace, this node the rest once it is free (its start, the pre-roll's decode, its own pace).
 * Undefined when that ends the chunk less than MIN_GAIN_SECONDS sooner or a part would be too short.
 */
export function grantSplitPoint (o: GrantSplitOptions): number | undefined {
  const own = o.ownSecondsPerFrame
  // No result of the job is in yet (it has hardly more chunks than encoders): the peer is taken to go at this node's pace.
  const peer = o.peerSecondsPerFrame ?? own
  if (peer === undefined || !(peer > 0) || !(own > 0) || !(o.ownFreeIn >= 0)) return undefined
  const decode = prerollSecondsPerFrame(peer)
  const least = Math.max(MIN_SPLIT_FRAMES, Math.ceil(MIN_SPLIT_SECONDS * o.frameRate))
  // Both start from the segment, so both pay SPLIT_OVERHEAD_SECONDS: the peer's first k frames end
  // with this node's wait, the pre-roll's decode and the rest at its pace.
  const busy = Math.max(0, o.peerBusyFor ?? 0)
  const k = Math.round((o.ownFreeIn - busy + o.frames * own + o.preroll * decode) / (peer + own - decode))
  if (k < least || o.frames - k < least) return undefined
  const unsplit = busy + SPLIT_OVERHEAD_SECONDS + o.frames * peer
  const split = Math.max(busy + SPLIT_OVERHEAD_SECONDS + k * peer, o.ownFreeIn + SPLIT_OVERHEAD_SECONDS + (o.preroll + k) * decode + (o.frames - k) * own)
  return unsplit - split >= (o.minGainSeconds ?? MIN_GAIN_SECONDS) ? k : undefined
}

export interface StragglerSplitsOptions {
  /** This node's peer id: the holder whose encodes can be ended early. */
  self: string
  leases: LeaseTable
  shorten: ShortenOwnEncode
  /** The job's source as probed for its split; undefined until then (no split before it). */
  source: (job: JobRecord) => MediaInfo | undefined
  folder: (jobId: string) => JobFolder
  /** The most chunks a job may have: what peers accept in an announcement. */
  maxChunks: number
  /** How much sooner a split must end its chunk (default MIN_GAIN_SECONDS; tests lower it to split tiny chunks). */
  minGainSeconds?: number
  /** The job's chunks changed: announce and save. */
  changed: (job: JobRecord) => void
  /** A split-off chunk's segment could not be copied: the owner cuts it (the job is splitting again). */
  cutAgain: (job: JobRecord) => void
  event?: EmitEvent<OriginatorEvent>
  log: Logger
}

/**
 * Splits a chunk while the job runs, at either end of the tail: the one this node's own worker is
 * encoding when a peer has nothing left to do (consider), or the last open one as a peer claims it
 * while this node will be free first (beforeGrant). A plan
 * made before any chunk is encoded cannot know which chunks are dear (a chunk's cost here varies
 * 2.5× a frame with its content), and the originator's own worker encodes beside its checks, so
 * on two nodes the job used to end with one of them idle for 4-13 s. The own encode stops at a
 * frame it has not handed to its encoder yet; the frames after it become a new chunk, with a copy
 * of the straggler's segment, for the idle peer. A peer's chunk is only shortened before its grant:
 * a holder's lease cannot shrink on the wire (a backup copy is their remedy).
 */
export class StragglerSplits {
  /** Per job: peers that delivered a chunk or asked for one and hold nothing of the job now. */
  private readonly idle = new Map<string, Set<string>>()
  private readonly splitting = new Set<string>()
  /** Per job: seconds a frame took, lease to kept result, of this node's own recent chunks and of peers'. */
  private readonly paces = new Map<string, { own: number[], peers: number[] }>()

  constructor (private readonly o: StragglerSplitsOptions) {}

  /** A chunk's result was kept: its pace is this node's or the peers', and a peer that holds nothing more is idle. */
  chunkDone (job: JobRecord, chunk: number, peer: string, leaseMs?: number): void {
    const frames = job.chunks[chunk]?.frames ?? 0
    if (leaseMs !== undefined && leaseMs > 0 && frames > 0) {
      const paces = this.paces.get(job.id) ?? { own: [], peers: [] }
      const list = peer === this.o.self ? paces.own : paces.peers
      list.push(leaseMs / 1000 / frames)
      if (list.length > PACE_SAMPLES) list.shift()
      this.paces.set(job.id, paces)
    }
    this.peerIdle(job, peer)
  }

  private paceOf (jobId: string, whose: 'own' | 'peers'): number | undefined {
    return median(this.paces.get(jobId)?.[whose] ?? [])
  }

  /** A peer holds nothing of the job (its result was kept, or its claim found nothing): a split would have a taker. */
  peerIdle (job: JobRecord, peer: string): void {
    if (peer === this.o.self || this.o.leases.holdsLease(job.id, peer)) return
    const set = this.idle.get(job.id) ?? new Set<string>()
    set.add(peer)
    this.idle.set(job.id, set)
    this.consider(job)
  }

  /** A peer took a chunk of the job: it is busy again. */
  peerBusy (jobId: string, peer: string): void { this.idle.get(jobId)?.delete(peer) }

  forget (jobId: string): void { this.idle.delete(jobId); this.paces.delete(jobId) }

  /** Looks again at every job with an idle peer (the originator's second tick: the own encode's pace may be known by now). */
  tick (jobs: Iterable<JobRecord>): void {
    for (const job of jobs) if ((this.idle.get(job.id)?.size ?? 0) > 0) this.consider(job)
  }

  /** Splits the own worker's straggling chunk of the job if an idle peer would end the job sooner with part of it. */
  consider (job: JobRecord): void {
    // Called from the lease table's and the intake's events: a failure here must not become theirs.
    try {
      this.trySplit(job)
    } catch (err) {
      this.o.log.info(`${shortJob(job.id)}: splitting a straggler failed: ${(err as Error).message}`)
    }
  }

  private trySplit (job: JobRecord): void {
    if (job.state !== 'encoding' || this.splitting.has(job.id) || (this.idle.get(job.id)?.size ?? 0) === 0) return
    if (job.chunks.some(c => c.state === 'open' || c.state === 'pending')) return
    if (job.chunks.length >= this.o.maxChunks || (job.stats?.splits ?? 0) >= MAX_SPLITS_PER_JOB) return
    const source = this.o.source(job)
    if (source === undefined || source.video.cut?.by === 'decode') return
    for (const chunk of job.chunks) {
      const lease = chunk.lease
      if (chunk.state !== 'leased' || lease?.holder !== this.o.self || chunk.backup !== undefined || chunk.segment === undefined || chunk.segment.decoded === true) continue
      const options = this.splitOptions(job, chunk, source)
      const parentFrames = chunk.frames
      const kept = this.o.shorten(job.id, chunk.index, lease.id, at => splitPoint({ ...at, frames: parentFrames }, options))
      if (kept === undefined) continue
      this.split(job, chunk, kept, source)
      return
    }
  }

  /**
   * A peer claims the job's last open chunk while this node's own worker is still encoding: the
   * peer gets the first part, and the rest becomes a chunk for whoever is free first (this node,
   * when done), so the job does not end on one peer's whole chunk while this node waits. Before the
   * grant, so the peer is told the chunk's frames in its segment's meta as for any chunk: nothing
   * on the wire changes. On two nodes this is the other half of the tail: measured, the peer took
   * the last 142-frame chunk 1.3 s before this node's encode ended, which then idled 7.6 s.
   */
  beforeGrant (job: JobRecord, chunk: ChunkRecord, claimant: string): void {
    try {
      this.splitBeforeGrant(job, chunk, claimant)
    } catch (err) {
      this.o.log.info(`${shortJob(job.id)}: splitting chunk ${chunk.index} before its grant failed: ${(err as Error).message}`)
    }
  }

  private splitBeforeGrant (job: JobRecord, chunk: ChunkRecord, claimant: string): void {
    if (claimant === this.o.self || job.state !== 'encoding' || chunk.state !== 'open' || this.splitting.has(job.id)) return
    if (job.chunks.some(c => c !== chunk && (c.state === 'open' || c.state === 'pending'))) return
    if (job.chunks.length >= this.o.maxChunks || (job.stats?.splits ?? 0) >= MAX_SPLITS_PER_JOB) return
    if (chunk.segment === undefined || chunk.segment.decoded === true) return
    const source = this.o.source(job)
    if (source === undefined || source.video.cut?.by === 'decode') return
    const free = this.ownFreeIn(job)
    if (free === undefined) return
    const kept = grantSplitPoint({
      ...this.splitOptions(job, chunk, source), frames: chunk.frames, ownFreeIn: free.seconds, ownSecondsPerFrame: free.secondsPerFrame, peerBusyFor: this.busyFor(job, claimant)
    })
    if (kept !== undefined) this.split(job, chunk, kept, source)
  }

  /**
   * When this node's own worker will have encoded what it holds of the job, and at what pace a
   * frame: its live standing where its encode can tell (EncodeStanding), else its heartbeats, else
   * its pace on the job's earlier chunks, else the peers'. Undefined when it holds nothing of the job (it would take the chunk itself) or
   * no pace is known yet.
   */
  private ownFreeIn (job: JobRecord): { seconds: number, secondsPerFrame: number } | undefined {
    const pace = this.paceOf(job.id, 'own') ?? this.paceOf(job.id, 'peers') ?? this.o.leases.secondsPerFrameOf(job.id)
    let seconds = 0
    let measured: number | undefined
    let holds = false
    for (const c of job.chunks) {
      const lease = c.lease
      if (c.state !== 'leased' || lease?.holder !== this.o.self) continue
      holds = true
      let standing: EncodeStanding | undefined
      this.o.shorten(job.id, c.index, lease.id, at => { standing = at; return undefined })
      const now = standing ?? { frames: c.frames, framesDone: lease.framesDone, fps: lease.fps }
      const paced = now.fps > 0 && now.framesDone >= OWN_PACE_FROM_SHARE * now.frames
      if (paced) measured = 1 / now.fps
      const perFrame = paced ? 1 / now.fps : pace
      if (perFrame === undefined) return undefined
      seconds += Math.max(0, now.frames - now.framesDone) * perFrame
    }
    const secondsPerFrame = measured ?? pace
    return holds && secondsPerFrame !== undefined ? { seconds, secondsPerFrame } : undefined
  }

  /** Seconds a peer still encodes what it holds of the job, by its heartbeats (its word: this only times a split); unknown pace counts as none. */
  private busyFor (job: JobRecord, peer: string): number {
    let seconds = 0
    for (const c of job.chunks) {
      for (const lease of [c.lease, c.backup]) if (c.state === 'leased' && lease?.holder === peer && lease.fps > 0) seconds += Math.max(0, c.frames - lease.framesDone) / lease.fps
    }
    return seconds
  }

  private splitOptions (job: JobRecord, chunk: ChunkRecord, source: MediaInfo): SplitPointOptions {
    const ordered = [...job.chunks].sort((a, b) => a.startFrame - b.startFrame)
    const range = chunkRanges(source, ordered.map(c => c.startFrame)).chunks.find(r => r.startFrame === chunk.startFrame)
    const first = source.video.frames[chunk.startFrame]
    const preroll = range !== undefined && first !== undefined ? Math.max(0, first.decodeIndex - range.decodeStart) : 0
    const pace = this.paceOf(job.id, 'peers') ?? this.o.leases.secondsPerFrameOf(job.id)
    const own = this.paceOf(job.id, 'own')
    return {
      ...(pace !== undefined ? { peerSecondsPerFrame: pace } : {}),
      ...(own !== undefined ? { ownSecondsPerFrame: own } : {}),
      ...(this.o.minGainSeconds !== undefined ? { minGainSeconds: this.o.minGainSeconds } : {}),
      frameRate: job.video.frameRate.num / job.video.frameRate.den,
      preroll
    }
  }

  /** The chunk keeps its first `kept` frames (its own encode ends there, or its peer is granted them): the rest is a new chunk, open once its segment is copied. */
  private split (job: JobRecord, chunk: ChunkRecord, kept: number, source: MediaInfo): void {
    const total = chunk.frames
    chunk.frames = kept
    const rest: ChunkRecord = { index: job.chunks.length, startFrame: chunk.startFrame + kept, frames: total - kept, state: 'pending', pastHolders: [], failures: [] }
    job.chunks.push(rest)
    countStat(job, 'splits')
    this.o.log.info(`${shortChunk(job.id, chunk.index)}: split after ${kept} of its ${total} frames; the other ${total - kept} are chunk ${rest.index}`)
    this.o.event?.({ type: 'chunk:split', jobId: job.id, chunk: chunk.index, into: rest.index, kept, frames: rest.frames })
    this.o.changed(job)
    this.splitting.add(job.id)
    this.copySegment(job, chunk, rest, source)
      .catch((err: Error) => {
        this.o.log.info(`${shortChunk(job.id, rest.index)}: copying its segment failed (${err.message}); cutting it from the source`)
        this.o.cutAgain(job)
      })
      .finally(() => { this.splitting.delete(job.id) })
  }

  /**
   * The split-off chunk's segment is the straggler's (it holds every frame of both), its first
   * frame named by a time halfway to the frame before, so a timestamp rounded in the segment's
   * container still selects exactly it.
   */
  private async copySegment (job: JobRecord, parent: ChunkRecord, rest: ChunkRecord, source: MediaInfo): Promise<void> {
    const from = parent.segment
    const before = source.video.frames[rest.startFrame - 1]
    const first = source.video.frames[rest.startFrame]
    if (from === undefined || before === undefined || first === undefined) throw new Error('the straggler has no segment to copy')
    const folder = this.o.folder(job.id)
    const path = folder.segmentFor(rest.index)
    await copyFile(folder.segment(from.file), path)
    if (rest.state !== 'pending' || job.state !== 'encoding') return
    rest.segment = { ...from, file: basename(path), selectFromTime: (before.time + first.time) / 2 }
    this.o.leases.open(job, rest)
  }
}
