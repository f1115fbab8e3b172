import { randomInt } from 'node:crypto'
import { lastLine, refusedByTool, VerificationError } from './errors.js'
import { peerInputArgs } from './peer-bytes.js'
import type { VideoInfo } from './probe.js'
import { DECODED_FRAME_STEP_MS } from './split.js'
import { runTool, runToolBytes, type RunOptions } from './tools.js'

/**
 * Lowest PSNR (luma, both pictures scaled down 4×, in dB) a sampled frame of a result may have
 * against the same frame of the source. Measured on the fixtures (docs/architecture.md, media
 * step 5): honest encodes at `--crf 51 --preset ultrafast` score 28 dB and more (34 dB on a noisy 720p clip), another
 * chunk's frames 21 dB or less, black and negated frames about 6 dB.
 */
export const PICTURE_PSNR_THRESHOLD = 24

/**
 * How much better (dB) a sampled frame may match the source's previous or next frame than its own.
 * An honest frame matches its own frame best; a frame shifted by one matches a neighbour several
 * dB better. Where the source does not move, neighbours are alike and the difference is a fraction
 * of a dB (and a shift there changes nothing anyone could see).
 */
export const PICTURE_NEIGHBOUR_MARGIN_DB = 1

/**
 * A sampled frame this close to its own source frame (dB) shows the source's picture, whatever its
 * neighbours score: the neighbour rule applies only below it. Where the picture hardly moves, an
 * honest frame scored 52.7 dB against its own frame and 54.0 against a neighbour (coding noise on
 * near-identical frames, 64x36 test pattern); a frame shifted by one scores 23-26 dB against its own.
 */
export const PICTURE_NEIGHBOUR_RULE_BELOW_DB = 40

/** Pictures are compared at a quarter of their width and height: coding noise averages out, content differences stay. */
const SCALE_DOWN = 4

export interface SourceSegmentRef {
  /** The chunk's source segment (Matroska, cut by this node). */
  path: string
  /** Decoded frames before this timestamp are pre-roll; the chunk is the next `frameCount` frames. */
  selectFromTime: number
}

export interface PictureCheckOptions extends RunOptions {
  /** Size of the pictures (the source's); the comparison runs at a quarter of it. */
  width: number
  height: number
  /** Lowest per-frame PSNR accepted (default PICTURE_PSNR_THRESHOLD). */
  threshold?: number
  /** Default PICTURE_NEIGHBOUR_MARGIN_DB. */
  neighbourMargin?: number
  /** Positions to compare (tests, measurements). Default: drawn by pickPicturePositions once the segment's keyframes are known. */
  positions?: number[]
  /** The CSPRNG behind the default positions; a test may fix it. */
  random?: (max: number) => number
  /** The segment's frame times, when the caller knows them (segmentTimesFromSource); else read with ffprobe. */
  segmentTimes?: SegmentTimes
}

export interface SampledFrame {
  position: number
  /** PSNR (dB, luma, scaled down) against the source's frame at the same position. */
  psnr: number
  /** The better of the PSNRs against the source's previous and next frames (-Infinity for a one-frame chunk). */
  neighbourPsnr: number
}

export interface PictureCheck {
  frames: SampledFrame[]
  /** The lowest PSNR of them. */
  min: number
  /** Runs of source frames read again from the segment's start because a seek landed past them (0 when seeks work). */
  rereads: number
}

/**
 * Frame positions to compare, drawn with a CSPRNG after the result is in, so the worker could not
 * know them. What a check costs is decoding: the result from its IDR up to the last sampled
 * frame, the source from the keyframe before each sampled frame's previous neighbour (a source
 * frame can cost a quarter of an x264 medium encode of it). So: one frame anywhere in the chunk
 * (every frame equally likely: whole-chunk substitutions fail wherever it lands, and a result
 * wrong in a fraction f of its frames fails with probability f at least), and a second look in
 * the same source GOP, the first or second frame after its keyframe: decoded on the way to the
 * first, so nearly free, and never the chunk's first or last frame, so that a shift by one (which
 * repeats an end frame) always shows. `keyPositions` are the chunk positions of the source's
 * keyframes (0 is always one). Sorted, distinct.
 */
export function pickPicturePositions (frameCount: number, keyPositions: number[] = [0], random: (max: number) => number = randomInt): number[] {
  if (frameCount <= 0) return []
  const anywhere = random(frameCount)
  if (frameCount < 3) return [anywhere]
  const key = Math.max(0, ...keyPositions.filter(k => Number.isInteger(k) && k <= anywhere))
  // Not the keyframe itself: its previous neighbour is the previous GOP's last frame, a whole GOP to decode.
  const second = Math.min(frameCount - 2, key + 1 + random(2))
  return [...new Set([second, anywhere])].sort((a, b) => a - b)
}

/** When a segment's frames and keyframes are shown, and whether its frames are reordered. */
export interface SegmentTimes {
  /** Display-order timestamps of the segment's frames (at least the chunk's), seconds. */
  times: number[]
  keyTimes: number[]
  /** Frames are reordered (B-frames): ffmpeg then seeks 3/23 s before what -ss asks for. */
  reordered: boolean
}

/**
 * A segment's times as the source's probe knows them (the segment is a stream copy of the chunk's
 * packets, so they are the same frames, at most half a millisecond apart once Matroska rounds
 * them): what comparePictures would otherwise ask ffprobe for, a process start per result.
 */
export function segmentTimesFromSource (video: Pick<VideoInfo, 'frames' | 'cut'>, startFrame: number, frameCount: number, decoded = video.cut?.by === 'decode'): SegmentTimes {
  if (decoded) {
    // Segments of a decoded source number their frames (splitByDecoding) and start on a keyframe.
    const times = Array.from({ length: frameCount }, (_, i) => (startFrame + i) * DECODED_FRAME_STEP_MS / 1000)
    return { times, keyTimes: times.slice(0, 1), reordered: false }
  }
  const frames = video.frames.slice(startFrame, startFrame + frameCount)
  return {
    times: frames.map(f => f.time),
    keyTimes: frames.filter(f => f.key).map(f => f.time),
    reordered: video.frames.some(f => f.decodeIndex !== f.displayIndex)
  }
}

/** The segment's frame and keyframe times (packets only, nothing decoded). */
async function segmentFrameTimes (path: string, options: RunOptions): Promise<SegmentTimes> {
  const r = await runTool('ffprobe', ['-v', 'error', ...peerInputArgs('matroska', path), '-select_streams', 'v:0',
    '-show_entries', 'stream=has_b_frames', '-show_entries', 'packet=pts_time,flags', '-of', 'csv=p=0'], `reading the frame times of ${path}`, options)
  const times: number[] = []
  const keyTimes: number[] = []
  let reordered = false
  for (const line of r.stdout.split('\n')) {
    const [first, flags] = line.split(',')
    if (first === undefined || first === '' || first === 'N/A') continue
    // The stream line is one number (has_b_frames); packet lines are "pts,flags".
    if (flags === undefined) { reordered = Number(first) > 0; continue }
    times.push(Number(first))
    if (flags.includes('K')) keyTimes.push(Number(first))
  }
  return { times: times.sort((a, b) => a - b), keyTimes: keyTimes.sort((a, b) => a - b), reordered }
}

/**
 * Two times within this are the same frame: Matroska rounds to the millisecond, so a segment's
 * times and the source's differ by up to half of one; frames are never closer than 4 ms (240 fps).
 */
const TIME_TOLERANCE = 0.001

/** ffmpeg (fftools) seeks this much earlier than -ss asks when the stream reorders frames. */
const FFMPEG_DTS_HEURISTIC_S = 3 / 23

/** Source frames first..last (chunk positions) decoded by one ffmpeg, from one seek. */
interface SourceRun { first: number, last: number }

/**
 * The source frames the comparison needs (each sampled frame and its neighbours), as runs: frames
 * that decode from the same keyframe, or follow on from the run before, share one ffmpeg. A new
 * run starts where seeking to a later keyframe beats decoding on.
 */
function sourceRuns (needed: number[], keyPositions: number[]): SourceRun[] {
  const runs: SourceRun[] = []
  for (const f of needed) {
    const run = runs.at(-1)
    const key = Math.max(0, ...keyPositions.filter(k => k <= f))
    if (run !== undefined && key <= run.last) run.last = f
    else runs.push({ first: f, last: f })
  }
  return runs
}

/** What one decode reads and keeps: the input (with any seek), the filter that picks the frames, and how many. */
interface PictureDecode { input: string[], filter: string, frames: number }

/** One decode in an ffmpeg of its own (one thread), exactly its frames, raw, to stdout. */
function decodeArgs (d: PictureDecode): string[] {
  return ['-v', 'error', '-nostdin', '-threads', '1', ...d.input, '-map', '0:v:0', '-vf', d.filter,
    '-frames:v', String(d.frames), '-fps_mode', 'passthrough', '-f', 'rawvideo', '-']
}

/**
 * One run of source frames, scaled down, in order. With `seek`, the input starts at the last
 * keyframe at or before the run's first frame (the -ss value allows for fftools' dts heuristic, so
 * the demuxer lands on that keyframe rather than a GOP early); without, it is read from the
 * segment's start. Frames are picked by time window, so a seek that lands late yields too few
 * frames (caught by the caller) rather than the wrong ones. One process per run: several inputs in
 * one ffmpeg decode far past what they need (it reads the input with the earliest timestamps first).
 */
function sourceRunDecode (segmentPath: string, run: SourceRun, chunkTimes: number[], t: SegmentTimes, shrink: string, seek: boolean): PictureDecode {
  const from = chunkTimes[run.first] as number
  const to = chunkTimes[run.last] as number
  const landing = t.keyTimes.filter(k => k <= from + TIME_TOLERANCE).pop()
  const seekArgs = seek && landing !== undefined
    ? ['-seek_timestamp', '1', '-noaccurate_seek', '-ss', (landing + TIME_TOLERANCE + (t.reordered ? FFMPEG_DTS_HEURISTIC_S : 0)).toFixed(6)]
    : []
  return {
    input: ['-copyts', ...seekArgs, ...peerInputArgs('matroska', segmentPath)],
    filter: `select='between(t\\,${(from - TIME_TOLERANCE).toFixed(6)}\\,${(to + TIME_TOLERANCE).toFixed(6)})',${shrink}`,
    frames: run.last - run.first + 1
  }
}

/** Runs ffmpeg: its stdout as bytes (the pictures, raw 8-bit luma) and what it reported (`-v error`: errors only). */
async function rawFrames (args: string[], what: string, options: RunOptions): Promise<{ pictures: Buffer, errors: string }> {
  const r = await runToolBytes('ffmpeg', args, what, { ...options, maxBuffer: 256 * 1024 * 1024 })
  return { pictures: r.stdout, errors: r.stderr.trim() }
}

function psnr (a: Buffer, aOffset: number, b: Buffer, bOffset: number, size: number): number {
  let sum = 0
  for (let i = 0; i < size; i++) { const d = (a[aOffset + i] as number) - (b[bOffset + i] as number); sum += d * d }
  return sum === 0 ? 100 : 10 * Math.log10(255 * 255 / (sum / size))
}

/**
 * Compares sampled frames of a result (raw H.264 from a peer) with the source segment, so a valid
 * stream of the right length and size but other pictures (black, negated, another chunk's, shifted
 * by a frame) is caught: each sampled frame must be close to the source's frame at its position
 * (PSNR) and no closer to the source's previous or next frame. Cheap by design: the result is
 * decoded once, up to the last sampled frame, and any decoder error on the way refuses it; the
 * source (usually far heavier to decode) only from the keyframe before each sampled frame; pictures
 * are compared at a quarter of their size. Throws a VerificationError naming the first frame that fails.
 */
export async function comparePictures (resultPath: string, segment: SourceSegmentRef, frameCount: number, o: PictureCheckOptions): Promise<PictureCheck> {
  const threshold = o.threshold ?? PICTURE_PSNR_THRESHOLD
  const margin = o.neighbourMargin ?? PICTURE_NEIGHBOUR_MARGIN_DB
  const runOptions: RunOptions = o.signal !== undefined ? { signal: o.signal } : {}
  const w = Math.max(8, Math.round(o.width / SCALE_DOWN))
  const h = Math.max(8, Math.round(o.height / SCALE_DOWN))
  const size = w * h
  const shrink = `scale=${w}:${h}:flags=area,format=gray`

  const segmentTimes = o.segmentTimes ?? await segmentFrameTimes(segment.path, runOptions)
  const chunkTimes = segmentTimes.times.filter(t => t >= segment.selectFromTime - TIME_TOLERANCE).slice(0, frameCount)
  if (chunkTimes.length < frameCount) throw new VerificationError(`segment ${segment.path}: holds ${chunkTimes.length} frames from ${segment.selectFromTime}, expected ${frameCount}`)
  const keyPositions = [...chunkTimes.flatMap((t, i) => segmentTimes.keyTimes.some(k => Math.abs(k - t) <= TIME_TOLERANCE) ? [i] : [])]
  const positions = o.positions ?? pickPicturePositions(frameCount, keyPositions, o.random)
  const sorted = [...new Set(positions)].filter(p => Number.isInteger(p) && p >= 0 && p < frameCount).sort((a, b) => a - b)
  if (sorted.length === 0) throw new Error(`comparing ${resultPath}: no frame positions within 0..${frameCount - 1}`)

  // The result: the sampled frames picked by index, decoded up to the last one.
  const resultDecode: PictureDecode = { input: peerInputArgs('h264', resultPath), filter: `select='${sorted.map(p => `eq(n\\,${p})`).join('+')}',${shrink}`, frames: sorted.length }
  // The source: each sampled frame with its previous and next frame within the chunk.
  const needed = [...new Set(sorted.flatMap(p => [p - 1, p, p + 1]).filter(f => f >= 0 && f < frameCount))].sort((a, b) => a - b)
  const runs = sourceRuns(needed, keyPositions)
  let rereads = 0
  const decodeRun = async (run: SourceRun, seek: boolean): Promise<Buffer> => {
    const what = `decoding frames ${run.first}-${run.last} of ${segment.path}`
    const { pictures } = await rawFrames(decodeArgs(sourceRunDecode(segment.path, run, chunkTimes, segmentTimes, shrink, seek)), what, runOptions)
    // A seek that landed past the run's first frame (a demuxer that seeks otherwise): read from the start instead.
    if (!seek || pictures.length === (run.last - run.first + 1) * size) return pictures
    rereads++
    return await decodeRun(run, false)
  }
  /** Offset of a chunk position's picture in the decoded source runs, laid end to end. */
  const sourceOffset = (position: number): number => {
    let before = 0
    for (const r of runs) {
      if (position <= r.last) return (before + position - r.first) * size
      before += r.last - r.first + 1
    }
    throw new Error(`frame ${position} is in no decoded run`)
  }
  const sourceFrames = runs.reduce((a, r) => a + r.last - r.first + 1, 0)

  // One ffmpeg for the result and one per source run. One for both read the result to its end
  // first (its timestamps start at 0, the segment's where the chunk sits in the source): 0.87 s
  // of CPU against 0.37 s for two on the bench clip, whatever frames were sampled. Apart, a
  // failure of the result's decode is plainly the result's, not a damaged source's.
  const [decoded, sourceParts] = await Promise.allSettled([
    rawFrames(decodeArgs(resultDecode), `decoding sampled frames of ${resultPath}`, runOptions),
    Promise.all(runs.map(async r => await decodeRun(r, true)))
  ])
  if (decoded.status === 'rejected') throw refusedByTool(decoded.reason, resultPath, `${resultPath}: its sampled frames could not be decoded`)
  if (sourceParts.status === 'rejected') {
    const err = sourceParts.reason as Error
    if (err.name === 'AbortError') throw err
    // Our own segment: nothing the peer did.
    throw new VerificationError(`${resultPath}: its pictures could not be compared with the source (${lastLine(err)})`, { cause: err })
  }
  const result = decoded.value.pictures
  const source = Buffer.concat(sourceParts.value)
  // This decode is the only one a peer's result gets: an error up to the last sampled frame refuses it.
  if (decoded.value.errors !== '') throw new VerificationError(`${resultPath}: decoding reported errors: ${decoded.value.errors.split('\n').slice(0, 3).join('; ')}`, { file: resultPath })
  if (result.length !== sorted.length * size) throw new VerificationError(`${resultPath}: only ${Math.floor(result.length / size)} of the ${sorted.length} sampled frames decoded`, { file: resultPath })
  if (source.length !== sourceFrames * size) throw new Error(`segment ${segment.path}: ${Math.floor(source.length / size)} of its ${sourceFrames} sampled frames decoded`)

  const frames: SampledFrame[] = sorted.map((p, i) => {
    const versus = (position: number): number => psnr(result, i * size, source, sourceOffset(position), size)
    const neighbours = [p - 1, p + 1].filter(n => n >= 0 && n < frameCount).map(versus)
    return { position: p, psnr: versus(p), neighbourPsnr: Math.max(-Infinity, ...neighbours) }
  })
  for (const f of frames) {
    if (f.psnr < threshold) {
      throw new VerificationError(`${resultPath}: frame ${f.position} does not show the source's picture (PSNR ${f.psnr.toFixed(1)} dB against the source's frame, at least ${threshold} dB expected)`, { file: resultPath })
    }
    if (f.psnr < PICTURE_NEIGHBOUR_RULE_BELOW_DB && f.neighbourPsnr > f.psnr + margin) {
      throw new VerificationError(`${resultPath}: frame ${f.position} shows a neighbouring frame of the source (PSNR ${f.neighbourPsnr.toFixed(1)} dB against the source's frame ${f.position - 1} or ${f.position + 1}, ${f.psnr.toFixed(1)} dB against its own)`, { file: resultPath })
    }
  }
  return { frames, min: Math.min(...frames.map(f => f.psnr)), rereads }
}
