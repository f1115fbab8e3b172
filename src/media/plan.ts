import { MediaError } from './errors.js'
import type { MediaInfo, VideoFrame } from './probe.js'

/** The old Distributed-encoding scripts cut every 7 GOPs; it keeps chunks long enough that x264's lookahead barely notices the cuts. */
export const DEFAULT_GOPS_PER_CHUNK = 7

export interface PlanOptions {
  /** Keyframe intervals per chunk (default 7). Ignored when chunkSeconds is set. */
  gopsPerChunk?: number
  /** Target chunk duration in seconds; chunks start at the first keyframe at or after it. */
  chunkSeconds?: number
  /** Split finer (down to one GOP per chunk) until there are at least this many chunks, when the keyframes allow it. */
  minChunks?: number
}

/** A chunk is an exact range of frames in display order: [startFrame, endFrame). */
export interface ChunkRange {
  index: number
  startFrame: number
  endFrame: number
  frameCount: number
  /** Time of the first frame, seconds. */
  startTime: number
  /** Decode-order index of the keyframe the chunk starts at. */
  decodeStart: number
  /** Last decode-order index whose frame is inside the range (open-GOP leading B-frames of the next keyframe sit after that keyframe). */
  decodeEnd: number
}

export interface ChunkPlan {
  frameCount: number
  chunks: ChunkRange[]
}

/**
 * Keyframes where a chunk may start: a keyframe K qualifies only when no frame shown at or after
 * K is decoded before K, so decoding from K alone yields every frame of the range.
 */
export function cutPoints (frames: VideoFrame[]): number[] {
  const n = frames.length
  // minDecodeFromHere[i] = smallest decode index among display positions >= i
  const minDecodeFromHere = new Array<number>(n + 1)
  minDecodeFromHere[n] = Number.POSITIVE_INFINITY
  for (let i = n - 1; i >= 0; i--) minDecodeFromHere[i] = Math.min((frames[i] as VideoFrame).decodeIndex, minDecodeFromHere[i + 1] as number)
  const points = [0]
  for (let i = 1; i < n; i++) {
    const f = frames[i] as VideoFrame
    if (f.key && minDecodeFromHere[i] === f.decodeIndex) points.push(i)
  }
  return points
}

function chooseStarts (frames: VideoFrame[], points: number[], options: PlanOptions): number[] {
  if (options.chunkSeconds !== undefined) {
    if (!(options.chunkSeconds > 0)) throw new MediaError(`chunk duration must be positive, got ${options.chunkSeconds}`)
    const starts = [0]
    let lastStart = (frames[0] as VideoFrame).time
    for (const p of points) {
      const t = (frames[p] as VideoFrame).time
      if (p !== 0 && t - lastStart >= options.chunkSeconds - 1e-9) { starts.push(p); lastStart = t }
    }
    return starts
  }
  const gops = options.gopsPerChunk ?? DEFAULT_GOPS_PER_CHUNK
  if (!Number.isInteger(gops) || gops < 1) throw new MediaError(`GOPs per chunk must be a whole number >= 1, got ${gops}`)
  return points.filter((_, i) => i % gops === 0)
}

/**
 * Plans chunks for a probed file. Deterministic: the same file and options give the same plan,
 * which is what lets a restarted originator and its workers agree on chunk numbers.
 */
export function planChunks (info: MediaInfo, options: PlanOptions = {}): ChunkPlan {
  const frames = info.video.frames
  const points = cutPoints(frames)
  let starts = chooseStarts(frames, points, options)
  const minChunks = options.minChunks ?? 1
  if (starts.length < minChunks && options.chunkSeconds === undefined) {
    // Fewer chunks than wanted: fall back to as many GOPs per chunk as still reaches the minimum.
    const gops = Math.max(1, Math.floor(points.length / minChunks))
    starts = points.filter((_, i) => i % gops === 0)
  }
  const chunks: ChunkRange[] = starts.map((startFrame, index) => {
    const endFrame = index + 1 < starts.length ? starts[index + 1] as number : frames.length
    let decodeEnd = 0
    for (let i = startFrame; i < endFrame; i++) decodeEnd = Math.max(decodeEnd, (frames[i] as VideoFrame).decodeIndex)
    const first = frames[startFrame] as VideoFrame
    return {
      index,
      startFrame,
      endFrame,
      frameCount: endFrame - startFrame,
      startTime: first.time,
      decodeStart: startFrame === 0 ? 0 : first.decodeIndex,
      decodeEnd
    }
  })
  return { frameCount: frames.length, chunks }
}
