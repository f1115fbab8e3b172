import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { encodeChunk, encodedSize, type EncodeProgress } from './encode.js'
import { VerificationError } from './errors.js'
import { checkSourceCrc, mergeChunks, type MergeResult } from './merge.js'
import { planChunks, type ChunkPlan, type PlanOptions } from './plan.js'
import type { MediaInfo } from './probe.js'
import { otherTracksInput, prepareSource } from './prepare.js'
import { extractCaptions } from './captions.js'
import { effectiveSettings, statedRange } from './colour.js'
import { encoderFor, type EncoderSettings } from './encoders/index.js'
import { cutSegment, extractVideo, splitByDecoding, splitInOnePass, splitsInOnePass, UndecodableCutError, type Segment } from './split.js'
import { verifyEncodedChunk } from './verify.js'

export interface LocalEncodeOptions extends PlanOptions {
  workDir: string
  outputPath?: string
  threads?: number
  signal?: AbortSignal
  onChunkProgress?: (chunkIndex: number, progress: EncodeProgress) => void
  onStage?: (stage: 'probe' | 'split' | 'encode' | 'merge' | 'verify', detail?: string) => void
  /** Keep segments and encoded chunks (for inspection); default removes them. */
  keepWork?: boolean
}

export interface LocalEncodeReport {
  source: MediaInfo
  plan: ChunkPlan
  segments: Segment[]
  output: MergeResult
  outputInfo: MediaInfo
  /** Bytes of all encoded chunks together (the new video bitstream). */
  encodedBytes: number
  timings: { splitSec: number, encodeSec: number, mergeSec: number, totalSec: number }
}

/** Output (the merge's probe of it) must hold as many video frames as the source, or the merge is not accepted. */
export function verifyMergedOutput (source: MediaInfo, out: MediaInfo): MediaInfo {
  if (out.video.frameCount !== source.video.frameCount) {
    throw new VerificationError(`${out.path}: has ${out.video.frameCount} video frames, the source has ${source.video.frameCount}`)
  }
  return out
}

/**
 * The whole pipeline on one machine: probe, plan, cut, encode chunk after chunk, verify each,
 * merge and verify the result. The swarm runs the same steps, spread over peers. The settings
 * come parsed, by whoever took them in (the benchmark's command line).
 */
export async function encodeFileLocally (sourcePath: string, userSettings: EncoderSettings, o: LocalEncodeOptions): Promise<LocalEncodeReport> {
  const t0 = performance.now()
  o.onStage?.('probe', sourcePath)
  await checkSourceCrc(sourcePath)
  const source = await prepareSource(sourcePath, o.signal !== undefined ? { signal: o.signal } : {})
  const plan = planChunks(source, o)
  // The chunks get the source's colour description added (colour.ts).
  const settings = effectiveSettings(userSettings, source.video)
  await mkdir(o.workDir, { recursive: true })
  o.onStage?.('split', `${plan.chunks.length} chunks`)
  const segments = await cutLocally(sourcePath, source, plan, o)
  const t1 = performance.now()
  o.onStage?.('encode')
  const encoded: string[] = []
  let encodedBytes = 0
  const encoder = encoderFor(settings.encoder)
  for (const segment of segments) {
    const result = await encodeChunk({
      segmentPath: segment.path,
      selectFromTime: segment.selectFromTime,
      frameCount: segment.frameCount,
      settings,
      frameRate: source.video.frameRate,
      sourcePixFmt: source.video.pixFmt,
      width: source.video.width,
      height: source.video.height,
      outputPath: join(o.workDir, `chunk-${segment.chunkIndex}${encoder.fileExtension}`),
      ...(o.threads !== undefined ? { threads: o.threads } : {}),
      ...(o.signal !== undefined ? { signal: o.signal } : {}),
      onProgress: (p) => o.onChunkProgress?.(segment.chunkIndex, p)
    })
    await verifyEncodedChunk(result.path, { frameCount: segment.frameCount, encoder: settings.encoder, ...encodedSize(source.video.width, source.video.height, source.video.pixFmt) })
    encoded.push(result.path)
    encodedBytes += result.sizeBytes
  }
  const t2 = performance.now()
  o.onStage?.('merge')
  const captions = source.video.closedCaptions ? await extractCaptions(sourcePath, o.workDir, o.signal !== undefined ? { signal: o.signal } : {}) : []
  const otherTracks = await otherTracksInput(source, join(o.workDir, 'tracks.mkv'), o.signal !== undefined ? { signal: o.signal } : {})
  const output = await mergeChunks({
    source, chunkPaths: encoded, encoder: settings.encoder, workDir: o.workDir, otherTracks: otherTracks ?? null,
    ...(statedRange(settings) !== undefined ? { range: statedRange(settings) } : {}),
    ...(o.outputPath !== undefined ? { outputPath: o.outputPath } : {}),
    ...(o.signal !== undefined ? { signal: o.signal } : {}),
    captions
  })
  const t3 = performance.now()
  o.onStage?.('verify', output.path)
  const outputInfo = verifyMergedOutput(source, output.info)
  if (o.keepWork !== true) await rm(o.workDir, { recursive: true, force: true })
  return {
    source,
    plan,
    segments,
    output,
    outputInfo,
    encodedBytes,
    timings: { splitSec: (t1 - t0) / 1000, encodeSec: (t2 - t1) / 1000, mergeSec: (t3 - t2) / 1000, totalSec: (performance.now() - t0) / 1000 }
  }
}

/**
 * The chunks' segments, cut as the swarm's splitter cuts them: in one pass where it can, else one
 * by one from a copy of the video, and from the decoded source where a cut cannot be decoded.
 */
async function cutLocally (sourcePath: string, source: MediaInfo, plan: ChunkPlan, o: LocalEncodeOptions): Promise<Segment[]> {
  const segmentPath = (index: number): string => join(o.workDir, `segment-${index}.mkv`)
  const cutSegments: Array<Segment | undefined> = plan.chunks.map(() => undefined)
  const decoded = source.video.cut?.by === 'decode'
  if (decoded || splitsInOnePass(plan.chunks)) {
    try {
      await (decoded ? splitByDecoding : splitInOnePass)(source, plan.chunks, join(o.workDir, 'split'), {
        ...(o.signal !== undefined ? { signal: o.signal } : {}),
        pathOf: segmentPath,
        wanted: () => true,
        onSegment: (index, result) => { if (!(result instanceof Error)) cutSegments[index] = result }
      })
    } catch (err) {
      if (o.signal?.aborted === true || decoded) throw err
    }
  }
  // Open-GOP plans, and whatever the one pass could not cut, one chunk at a time from a copy of the video.
  const rest = plan.chunks.filter(c => cutSegments[c.index] === undefined)
  if (decoded && rest.length > 0) throw new VerificationError(`${sourcePath}: chunk ${rest[0]?.index ?? 0} could not be made from the decoded source`)
  if (rest.length > 0) {
    const cutSource = await extractVideo(source, join(o.workDir, 'video-only.mkv'), { signal: o.signal })
    for (const chunk of rest) {
      try {
        cutSegments[chunk.index] = await cutSegment(source, cutSource, chunk, segmentPath(chunk.index), { signal: o.signal })
      } catch (err) {
        // A keyframe no decode can start from: the rest is made from the decoded source (as the swarm's splitter does).
        if (!(err instanceof UndecodableCutError)) throw err
        break
      }
    }
  }
  const undecodable = plan.chunks.filter(c => cutSegments[c.index] === undefined)
  if (undecodable.length > 0) {
    // The decoding pass runs over every chunk (its cuts are frame numbers); only the missing ones are kept.
    await splitByDecoding(source, plan.chunks, join(o.workDir, 'split-decoded'), {
      ...(o.signal !== undefined ? { signal: o.signal } : {}),
      pathOf: segmentPath,
      wanted: index => cutSegments[index] === undefined,
      onSegment: (index, result) => { if (result instanceof Error) throw result; cutSegments[index] = result }
    })
  }
  return cutSegments as Segment[]
}
