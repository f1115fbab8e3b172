import { availableParallelism } from 'node:os'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import {
  cutSegment, extractVideo, sourceAsCutSource, splitByDecoding, UndecodableCutError, splitInOnePass, splitsInOnePass, type ChunkRange, type CutSource, type MediaInfo, type Segment
} from '../media/index.js'
import type { Logger } from '../log/index.js'
import type { JobFolder } from './job-folder.js'

export interface SplitRequest {
  source: MediaInfo
  /** The job's plan: every chunk, cut or not. */
  plan: ChunkRange[]
  /** Indices of the chunks still to cut, in order. */
  pending: number[]
  /** The job's folder: segments go to segments/, work/ is scratch and removed at the end. */
  folder: JobFolder
  /** How log lines name the job. */
  tag: string
  signal: AbortSignal
  log: Logger
  /** A chunk's segment is cut and checked: the chunk can open at once, so workers start early. */
  opened: (index: number, segment: Segment) => void
  /** Resolves when another segment may be cut (the job's disk holds only what the swarm will soon encode); default at once. */
  room?: () => Promise<void>
}

/**
 * Cuts a job's pending segments: one sequential pass where the plan allows, then whatever that
 * left one by one, two cuts at a time in chunk order.
 */
export async function splitSource (req: SplitRequest): Promise<void> {
  const splitter = new Splitter(req)
  await splitter.run()
}

const firstLine = (err: unknown): string => (err as Error).message.split('\n')[0] ?? ''

class Splitter {
  private pending: number[]
  /** Why stream-copied cuts of this source cannot be trusted: the rest of its chunks are made from its decode. */
  private decodeInstead?: string
  /** Cutting straight from the source (seeks land on the keyframe) rather than from a copy of its video. */
  private direct: boolean
  private copying?: Promise<CutSource>

  constructor (private readonly req: SplitRequest) {
    this.pending = [...req.pending]
    this.direct = !req.source.streams.some(st => st.type === 'subtitle')
  }

  async run (): Promise<void> {
    if (this.req.source.video.cut?.by !== 'decode') {
      if (this.pending.length > 0 && splitsInOnePass(this.req.plan)) await this.onePass()
      await this.oneByOne()
      if (this.decodeInstead !== undefined && this.pending.length > 0) {
        this.req.log.info(`${this.req.tag}: ${this.decodeInstead}; making the remaining ${this.pending.length} chunks from the decoded source`)
        this.pending.sort((a, b) => a - b)
      }
    }
    await this.decodedPass()
    await rm(this.req.folder.work, { recursive: true, force: true })
  }

  /**
   * One sequential pass cuts every segment (one ffmpeg start, no seeks); a segment that fails its
   * check, or all that remain when the pass fails, are left for the cuts one by one.
   */
  private async onePass (): Promise<void> {
    const { source, plan, folder, tag, signal, log } = this.req
    const wanted = new Set(this.pending)
    const started = performance.now()
    try {
      await splitInOnePass(source, plan, join(folder.work, 'split'), {
        signal,
        pathOf: (index) => this.req.folder.segmentFor(index),
        wanted: (index) => wanted.has(index),
        onSegment: (index, result) => {
          if (!wanted.has(index)) return
          if (result instanceof UndecodableCutError) { this.decodeInstead ??= result.message; return }
          if (result instanceof Error) { log.debug(`${tag}: ${result.message}; cutting it on its own`); return }
          this.req.opened(index, result)
          wanted.delete(index)
        },
        ...(this.req.room !== undefined ? { room: this.req.room } : {})
      })
      log.debug(`${tag}: cut ${this.pending.length - wanted.size} segments in one pass (${((performance.now() - started) / 1000).toFixed(2)} s)`)
    } catch (err) {
      if (signal.aborted) throw err
      log.info(`${tag}: splitting in one pass failed (${firstLine(err)}); cutting the remaining ${wanted.size} chunks one by one`)
    }
    this.pending = this.pending.filter(index => wanted.has(index))
  }

  /**
   * A source cut from its decode (prepareSource says why) has one way to make its segments: one
   * decode from the start, since nothing before a chunk can be skipped. A segment that fails its
   * check fails the job: no other cut would be better.
   */
  private async decodedPass (): Promise<void> {
    const { source, plan, folder, tag, signal, log } = this.req
    const wanted = new Set(this.pending)
    if (wanted.size === 0) return
    if (source.video.cut?.by !== 'decode' && this.decodeInstead === undefined) throw new Error(`chunks ${this.pending.join(', ')} were left uncut`)
    const started = performance.now()
    let failed: Error | undefined
    await splitByDecoding(source, plan, join(folder.work, 'split'), {
      signal,
      pathOf: (index) => this.req.folder.segmentFor(index),
      wanted: (index) => wanted.has(index) && failed === undefined,
      onSegment: (index, result) => {
        if (result instanceof Error) { failed ??= result; return }
        this.req.opened(index, result)
        wanted.delete(index)
      },
      ...(this.req.room !== undefined ? { room: this.req.room } : {})
    })
    if (failed !== undefined) throw failed
    log.debug(`${tag}: made ${this.pending.length} segments from the decoded source (${((performance.now() - started) / 1000).toFixed(2)} s)`)
    this.pending = []
  }

  /**
   * Two cuts at a time, in chunk order: a cut is mostly waiting on ffmpeg/ffprobe start-up, and a
   * big swarm can take chunks faster than one cut after another opens them.
   */
  private async oneByOne (): Promise<void> {
    const cutNext = async (): Promise<void> => {
      for (;;) {
        if (this.decodeInstead !== undefined) return
        await this.req.room?.()
        const index = this.pending.shift()
        if (index === undefined) return
        await this.cutOrLeave(index)
      }
    }
    // The first chunk is the one a worker is waiting for. With a core to spare it is cut alongside
    // the next one (and the copy of the video, when that is needed from the start); on one core
    // they would only slow each other down (the first cut took 0.56 s instead of 0.31), so it goes alone.
    const firstChunk = this.pending[0] === 0 ? this.pending.shift() : undefined
    const oneCore = availableParallelism() === 1
    if (!this.direct && (firstChunk === undefined || !oneCore)) this.videoCopy().catch(() => {}) // awaited by the cuts
    const first = firstChunk !== undefined ? this.cutOrLeave(firstChunk) : Promise.resolve()
    if (oneCore) await first
    // Cut just ahead of demand: one cut at a time, so two cuts cannot both take the last place.
    if (this.req.room !== undefined) await first.then(cutNext)
    else await Promise.all([first.then(cutNext), cutNext()])
  }

  /**
   * A chunk no stream copy can cut (its keyframe does not start a clean decode, or the copy loses
   * frames) is left for the decoded pass, and so is every chunk after it.
   */
  private async cutOrLeave (index: number): Promise<void> {
    try {
      await this.cutChunk(index)
    } catch (err) {
      if (this.req.signal.aborted) throw err
      this.decodeInstead ??= err instanceof UndecodableCutError ? err.message : `chunk ${index} could not be cut by stream copy (${firstLine(err)})`
      this.pending.push(index)
    }
  }

  /**
   * Segments are cut straight from the source while its seeks land on the chunk's keyframe. With
   * subtitle tracks the Matroska demuxer seeks further back (to catch subtitles still on screen),
   * and with some interleavings of other tracks a keyframe early: then the video is copied out
   * once and later chunks are cut from the copy, where every seek lands. The first chunk needs no
   * seek at all. A segment that landed early is still exact (it keeps the pre-roll, a GOP more to
   * send and decode); a cut the checks refuse is cut again from the copy.
   */
  private async cutChunk (index: number): Promise<void> {
    if (index === 0 || this.direct) {
      try {
        const packets = await this.cut(index, sourceAsCutSource(this.req.source))
        const range = this.req.plan[index] as ChunkRange
        if (index !== 0 && packets > range.decodeEnd - range.decodeStart + 1) this.switchToCopy(`seeking in the source landed before chunk ${index}'s keyframe`)
        return
      } catch (err) {
        if (this.req.signal.aborted) throw err
        this.switchToCopy(`chunk ${index} cut from the source failed (${firstLine(err)})`)
      }
    }
    await this.cut(index, await this.videoCopy())
  }

  /** Cuts a chunk's segment and opens the chunk; returns the segment's packet count. */
  private async cut (index: number, from: CutSource): Promise<number> {
    const range = this.req.plan[index]
    if (range === undefined) throw new Error(`chunk ${index} missing from plan`)
    const seg = await cutSegment(this.req.source, from, range, this.req.folder.segmentFor(index), { signal: this.req.signal })
    this.req.opened(index, seg)
    return seg.packetCount
  }

  private async videoCopy (): Promise<CutSource> {
    this.copying ??= extractVideo(this.req.source, join(this.req.folder.work, 'video-only.mkv'), { signal: this.req.signal })
    return await this.copying
  }

  private switchToCopy (why: string): void {
    if (!this.direct) return
    this.direct = false
    this.req.log.debug(`${this.req.tag}: ${why}; cutting the rest from a copy of the video`)
    this.videoCopy().catch(() => {}) // awaited by the next cut
  }
}
