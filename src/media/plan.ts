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
  /**
   * Encodes expected to run at once across the swarm. With it, the job's last chunks shrink (down
   * to one GOP each) so the encoders run out of work at about the same time rather than one chunk
   * apart: each chunk is at most 1/(2P) of the frames still to come (guided self-scheduling).
   */
  tailParallelism?: number
  /** A last chunk shorter than half a typical GOP joins the chunk before it. */
  absorbShortTail?: boolean
  /** The shortest a tail chunk may be cut (default MIN_TAIL_CHUNK_SECONDS; AV1_MIN_TAIL_CHUNK_SECONDS for the AV1 encoders). */
  minTailChunkSeconds?: number
  /**
   * Chunks may also start between keyframes (their segment then starts at the keyframe before,
   * and the encoder skips the pre-roll), where the source's keyframes are too far apart for
   * minChunks or for the tail: a real encode's GOPs are 4-10 s, and a 40 s file cut only at its
   * keyframes is six chunks of uneven size. At most MAX_PREROLL_FRAMES before the chunk.
   */
  midGopCuts?: boolean
}

/**
 * The most frames a chunk that starts between keyframes decodes before its first one: each costs
 * its encoder a decode (a few ms at 720p against tens for the encode) and the transfer a frame. A
 * worker takes segments with up to 600 frames besides the chunk's (worker's SEGMENT_OVERLAP_FRAMES).
 */
export const MAX_PREROLL_FRAMES = 300

/**
 * A guided plan's chunk ends at a keyframe within this share of its target length either way
 * (the next chunk then needs no pre-roll), else between keyframes within MID_GOP_WINDOW of it.
 */
const KEYFRAME_WINDOW = 0.5
const MID_GOP_WINDOW = 0.25

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
 * Where chunks may start when they may start between keyframes: inside a GOP longer than the
 * shortest tail chunk (a shorter one gains the tail nothing a keyframe does not), any frame
 * whose decode from the GOP's cut point K passes at most MAX_PREROLL_FRAMES other pictures. Every
 * frame shown at or after K decodes from K alone (cutPoints), so such a chunk's segment is K's
 * packets on.
 */
function midGopStarts (frames: VideoFrame[], points: number[], minSeconds: number): { candidates: number[] } {
  const candidates: number[] = []
  for (const [p, key] of points.entries()) {
    const end = points[p + 1] ?? frames.length
    const span = ((frames[end - 1] as VideoFrame).time - (frames[key] as VideoFrame).time)
    candidates.push(key)
    if (span <= minSeconds) continue
    for (let i = key + 1; i < end; i++) {
      if ((frames[i] as VideoFrame).decodeIndex - (frames[key] as VideoFrame).decodeIndex > MAX_PREROLL_FRAMES) continue
      candidates.push(i)
    }
  }
  return { candidates }
}

/** The entry of a sorted list nearest `want` within [lo, hi], searched from index `from`; and where the search may resume for a higher lo. */
function nearest (list: number[], from: number, lo: number, hi: number, want: number): { best?: number, from: number } {
  while (from < list.length && (list[from] as number) < lo) from++
  let best: number | undefined
  for (let i = from; i < list.length && (list[i] as number) <= hi; i++) {
    const q = list[i] as number
    if (best === undefined || Math.abs(q - want) < Math.abs(best - want)) best = q
  }
  return best !== undefined ? { best, from } : { from }
}

/**
 * Chunk starts for a source whose keyframes are too far apart to plan by: guided self-scheduling
 * over every frame a chunk may start at. Each chunk aims at T = max(shortest, min(L, R / 2P))
 * frames (R: the frames still to come; P: the encodes at once; L: twice the frames over minChunks,
 * or once with one encode at a time). It ends at the keyframe nearest T within half of it either
 * way (no pre-roll for the next chunk: each costs its encoder a decode), else at the frame nearest
 * T within a quarter of it that a chunk may start at; a remainder under half the shortest chunk
 * joins the last one.
 *
 * With P encodes, the tail is balanced (balancedTail): the plan follows P encoders of equal speed
 * taking chunks lowest first, and when the next chunk would leave the encoder that takes it less
 * than the shortest chunk before the even share (frames / P), the last P chunks are sized so that
 * each encoder ends at that share. Guided sizes alone end on whole chunks: the AV1 tail's 5 s
 * chunks left one of two encoders idle for a third of a chunk, or the last chunk took a remainder
 * and outlasted the others (measured: 6.9% idle on SVT-AV1, a minute on aomenc).
 */
function guidedStarts (frames: VideoFrame[], points: number[], candidates: number[], minChunks: number, parallel: number, minSeconds: number, balance: boolean): number[] {
  const n = frames.length
  const length = (parallel > 1 ? 2 : 1) * n / Math.max(1, minChunks)
  const shortest = Math.min(length, 2 * stubFrames(frames, minSeconds))
  const starts = [0]
  let cur = 0
  let c = 0
  let k = 0
  const tail = parallel > 1 && balance ? new EncoderTimeline(parallel, n) : undefined
  for (;;) {
    // One encode at a time gains nothing from a shrinking tail.
    const target = Math.max(1, Math.round(parallel > 1 ? Math.max(shortest, Math.min(length, (n - cur) / (2 * parallel))) : length))
    if (n - cur - target < shortest / 2) return starts
    if (tail !== undefined && tail.nextFree() + target > tail.evenShare - shortest) {
      return balancedTail(starts, tail, n, shortest / 2, (lo, hi, want) => nearest(candidates, 0, lo, hi, want).best)
    }
    const want = cur + target
    // With one encode at a time the chunks stay near L, so that there are minChunks of them.
    const window = parallel > 1 ? KEYFRAME_WINDOW : MID_GOP_WINDOW
    const key = nearest(points, k, cur + Math.max(shortest, Math.ceil((1 - window) * target)), cur + Math.floor((1 + window) * target), want)
    const mid = nearest(candidates, c, cur + Math.ceil((1 - MID_GOP_WINDOW) * target), cur + Math.floor((1 + MID_GOP_WINDOW) * target), want)
    k = key.from
    c = mid.from
    // No frame in reach (a GOP past MAX_PREROLL_FRAMES): the next one a chunk may start at.
    const next = key.best ?? mid.best ?? candidates[c]
    if (next === undefined || next <= cur || next >= n || n - next < shortest / 2) return starts
    starts.push(next)
    tail?.take(next - cur)
    cur = next
  }
}

/** P encoders of equal speed taking chunks lowest first: when each is free, in frames encoded. */
class EncoderTimeline {
  private readonly free: number[]
  /** Where every encoder would end if the frames divided evenly. */
  readonly evenShare: number
  constructor (parallel: number, frames: number) {
    this.free = new Array<number>(parallel).fill(0)
    this.evenShare = frames / parallel
  }

  /** When the encoder that takes the next chunk is free. */
  nextFree (): number { return Math.min(...this.free) }

  /** When the last encoder is done. */
  lastEnd (): number { return Math.max(...this.free) }

  take (frames: number): void {
    const i = this.free.indexOf(this.nextFree())
    this.free[i] = (this.free[i] as number) + frames
  }

  /**
   * The sizes of the last chunks, in the order they would be taken, for the `left` frames: each
   * encoder (free first, first) gets what brings it to a common end. An encoder whose part would
   * be under `least` frames gets none, and the others share its part.
   */
  lastShares (left: number, least: number): number[] {
    const free = [...this.free].sort((a, b) => a - b)
    for (let k = free.length; k > 1; k--) {
      const end = (free.slice(0, k).reduce((a, b) => a + b, 0) + left) / k
      if (end - (free[k - 1] as number) >= least) return free.slice(0, k).map(f => end - f)
    }
    return [left]
  }
}

/**
 * The plan's last chunks: each the share of the encoder free first (EncoderTimeline.lastShares),
 * ending at the frame nearest it that a chunk may start at, within a quarter of the share either
 * way, else the nearest that leaves at least `least` frames on both sides (a GOP no longer than
 * the shortest chunk is cut only at its keyframe); the shares are drawn again after each chunk,
 * so one that came out shorter or longer is made up by the next ones.
 */
function balancedTail (starts: number[], timeline: EncoderTimeline, frameCount: number, least: number, startNear: (lo: number, hi: number, want: number) => number | undefined): number[] {
  let cur = starts[starts.length - 1] as number
  for (;;) {
    const shares = timeline.lastShares(frameCount - cur, least)
    const share = shares[0] as number
    if (shares.length < 2) return starts
    const want = Math.round(cur + share)
    const next = startNear(cur + Math.ceil(0.75 * share), want + Math.floor(0.25 * share), want) ??
      startNear(cur + Math.ceil(least), frameCount - Math.ceil(least), want)
    if (next === undefined || next <= cur) return starts
    starts.push(next)
    timeline.take(next - cur)
    cur = next
  }
}

/**
 * A tail chunk spans at least this long (or one GOP, if longer). Every chunk costs a fixed ~0.6 s
 * of CPU on top of its encode (tool starts on the worker, the picture check on the originator);
 * one-GOP tail chunks of a 1 s GOP source spent more in overhead than they saved in idle time.
 */
export const MIN_TAIL_CHUNK_SECONDS = 1.5

/**
 * An AV1 chunk starts with the only key frame it has, and a short one pays for it: SVT-AV1 at
 * preset 8 wrote +0.5% bytes at 120-frame chunks against one 240-frame encode, +1% at 48 and +4%
 * at 32, at the same PSNR (720p, measured for issue 28; Av1an #1217). Its tail chunks stay at
 * least 5 s (120 frames at 24 fps); an AV1 encode is slow enough that the idle time they cost is
 * small against the encode.
 */
export const AV1_MIN_TAIL_CHUNK_SECONDS = 5

/**
 * The plan's head keeps its chunks; from the first chunk larger than 1/(2P) of the frames from its
 * start to the end, chunks are cut afresh, each the longest that stays within that bound (guided
 * self-scheduling), none shorter than MIN_TAIL_CHUNK_SECONDS (or the head's chunks, if shorter);
 * the last ones at keyframes that bring every encoder to the even share (balancedTail).
 */
function shrinkTail (starts: number[], points: number[], frames: VideoFrame[], parallel: number, minSeconds: number, balance: boolean): number[] {
  const frameCount = frames.length
  const bound = (from: number): number => Math.max(1, Math.ceil((frameCount - from) / (2 * parallel)))
  const out: number[] = []
  const timeline = new EncoderTimeline(parallel, frameCount)
  const shortest = 2 * stubFrames(frames, minSeconds)
  let c = 0
  for (; c < starts.length; c++) {
    const start = starts[c] as number
    const end = c + 1 < starts.length ? starts[c + 1] as number : frameCount
    if (end - start > bound(start)) break
    out.push(start)
    timeline.take(end - start)
  }
  if (c === starts.length) return out
  let cur = starts[c] as number
  let largest = (c + 1 < starts.length ? starts[c + 1] as number : frameCount) - cur
  let p = points.indexOf(cur)
  while (cur < frameCount) {
    out.push(cur)
    const minEnd = (frames[cur] as VideoFrame).time + minSeconds - 0.0005
    // The next chunk starts at the last cut point within the bound (and no later than the chunk before's size allows) …
    let next = p + 1
    while (next + 1 < points.length && (points[next + 1] as number) - cur <= Math.min(bound(cur), largest)) next++
    // … and not before the minimum length, when the frames allow it, unless the head's chunks are shorter still.
    while (next < points.length && (frames[points[next] as number] as VideoFrame).time < minEnd && (points[next] as number) - cur < largest) next++
    const nextStart = next < points.length ? points[next] as number : frameCount
    // As in guidedStarts: the last chunks end every encoder at the even share.
    if (balance && timeline.nextFree() + nextStart - cur > timeline.evenShare - shortest) {
      return balancedTail(out, timeline, frameCount, shortest / 2, (lo, hi, want) => nearest(points, 0, lo, hi, want).best)
    }
    timeline.take(nextStart - cur)
    largest = Math.max(nextStart - cur, 1)
    p = next
    cur = nextStart
  }
  return out
}

/**
 * When the last of `parallel` encoders of equal speed ends, taking the chunks lowest first (in
 * frames): what a plan's tail is judged by.
 */
function makespanOf (starts: number[], frameCount: number, parallel: number): number {
  const timeline = new EncoderTimeline(Math.max(1, parallel), frameCount)
  starts.forEach((start, i) => { timeline.take((starts[i + 1] ?? frameCount) - start) })
  return timeline.lastEnd()
}

/**
 * The plan with a balanced tail where it ends sooner on equal encoders than the plan without one;
 * else the guided sizes, which only go down, so a slower encoder that takes a last chunk holds the
 * job up less (real swarms mix machines). Where the even share is hardly longer than the shortest
 * chunk, or the keyframes are too coarse for the shares, balancing can lose.
 */
function betterBalanced (frameCount: number, parallel: number, plan: (balance: boolean) => number[]): number[] {
  const balanced = plan(true)
  if (parallel < 2) return balanced
  const plain = plan(false)
  const [b, p] = [makespanOf(balanced, frameCount, parallel), makespanOf(plain, frameCount, parallel)]
  return b < p ? balanced : plain
}

/**
 * A last chunk shorter than half a typical GOP (a keyframe a few frames before the end) costs a
 * whole claim, transfer and encoder start for almost nothing: it joins the chunk before it.
 */
function dropStub (starts: number[], points: number[], frameCount: number): number[] {
  if (starts.length < 2 || points.length < 2) return starts
  const gaps = points.map((q, i) => (i + 1 < points.length ? points[i + 1] as number : frameCount) - q).sort((a, b) => a - b)
  const medianGop = gaps[Math.floor(gaps.length / 2)] as number
  const last = frameCount - (starts[starts.length - 1] as number)
  return last * 2 < medianGop ? starts.slice(0, -1) : starts
}

/** The median time from a cut point to the next (the last to the end). */
function medianGopSeconds (frames: VideoFrame[], points: number[]): number {
  const end = frames[frames.length - 1]?.time ?? 0
  const spans = points.map((q, i) => (frames[points[i + 1] ?? -1]?.time ?? end) - (frames[q] as VideoFrame).time).sort((a, b) => a - b)
  return spans[Math.floor(spans.length / 2)] ?? 0
}

/** Frames in half of `seconds`, at the source's average rate. */
function stubFrames (frames: VideoFrame[], seconds: number): number {
  const span = (frames[frames.length - 1]?.time ?? 0) - (frames[0]?.time ?? 0)
  return span > 0 ? Math.ceil((seconds / 2) * (frames.length - 1) / span) : 1
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
  const minSeconds = options.minTailChunkSeconds ?? MIN_TAIL_CHUNK_SECONDS
  // Between keyframes only where the keyframes are too far apart: too few of them for minChunks,
  // or GOPs longer than the shortest tail chunk, which a keyframe plan's tail cannot reach.
  const midGop = options.midGopCuts === true && options.chunkSeconds === undefined && (starts.length < minChunks || medianGopSeconds(frames, points) > minSeconds)
    ? midGopStarts(frames, points, minSeconds)
    : undefined
  const parallel = options.tailParallelism ?? 1
  // A guided plan has no stub (guidedStarts); a keyframe plan's is joined before the tails are compared.
  const withoutStub = (s: number[]): number[] => options.absorbShortTail === true ? dropStub(s, points, frames.length) : s
  if (midGop !== undefined) starts = betterBalanced(frames.length, parallel, balance => guidedStarts(frames, points, midGop.candidates, minChunks, parallel, minSeconds, balance))
  else if (parallel > 1) {
    const head = starts
    starts = betterBalanced(frames.length, parallel, balance => withoutStub(shrinkTail(head, points, frames, parallel, minSeconds, balance)))
  } else starts = withoutStub(starts)
  return chunkRanges(info, starts, points)
}

/**
 * The chunks that start at these frames, each to the next (the last to the end), with the span of
 * packets each needs: from the cut point at or before its start (midGopStarts), at most
 * MAX_PREROLL_FRAMES pictures before it. A job keeps its chunks' starts, so a node that resumes it
 * cuts exactly those, whatever planChunks would plan now for the same options. Throws MediaError
 * for starts this source cannot have: not increasing from 0, past its end, or too far from a cut.
 */
export function chunkRanges (info: MediaInfo, starts: number[], points = cutPoints(info.video.frames)): ChunkPlan {
  const frames = info.video.frames
  let p = 0
  const chunks: ChunkRange[] = starts.map((startFrame, index) => {
    const endFrame = index + 1 < starts.length ? starts[index + 1] as number : frames.length
    if (!Number.isInteger(startFrame) || (index === 0 && startFrame !== 0) || endFrame <= startFrame || endFrame > frames.length) {
      throw new MediaError(`chunk ${index} of ${starts.length} cannot start at frame ${startFrame} of a video of ${frames.length} frames`)
    }
    while (p + 1 < points.length && (points[p + 1] as number) <= startFrame) p++
    const key = points[p] as number
    const first = frames[startFrame] as VideoFrame
    if (first.decodeIndex - (frames[key] as VideoFrame).decodeIndex > MAX_PREROLL_FRAMES) {
      throw new MediaError(`chunk ${index} starts at frame ${startFrame}, more than ${MAX_PREROLL_FRAMES} pictures after the cut point before it (frame ${key})`)
    }
    let decodeEnd = 0
    for (let i = startFrame; i < endFrame; i++) decodeEnd = Math.max(decodeEnd, (frames[i] as VideoFrame).decodeIndex)
    return {
      index,
      startFrame,
      endFrame,
      frameCount: endFrame - startFrame,
      startTime: first.time,
      decodeStart: startFrame === 0 ? 0 : (frames[key] as VideoFrame).decodeIndex,
      decodeEnd
    }
  })
  return { frameCount: frames.length, chunks }
}
