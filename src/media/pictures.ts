import { randomInt } from 'node:crypto'
import { execa } from 'execa'
import { AbortError, VerificationError } from './errors.js'
import { peerInputArgs } from './peer-bytes.js'
import { runTool, toToolError, type RunOptions } from './tools.js'

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

/** Frames compared per chunk by default: one near the start, one near the end, the rest anywhere. */
export const PICTURE_SAMPLES = 4

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
}

/**
 * Frame positions to compare, drawn with a CSPRNG after the result is in (so the worker could not
 * know them): one among the first few frames, one among the last few (a shift by a frame or
 * another chunk's frames show at both ends), the others anywhere. Sorted, distinct.
 */
export function pickPicturePositions (frameCount: number, samples = PICTURE_SAMPLES, random: (max: number) => number = randomInt): number[] {
  if (frameCount <= 0) return []
  const want = Math.min(frameCount, Math.max(1, samples))
  const edge = Math.max(1, Math.min(8, Math.ceil(frameCount / 20)))
  const picked = new Set<number>([random(edge)])
  if (want > 1) picked.add(frameCount - 1 - random(edge))
  while (picked.size < want) picked.add(random(frameCount))
  return [...picked].sort((a, b) => a - b)
}

/** Display-order timestamps of the segment's frames and of its keyframes (packets only, nothing decoded). */
async function segmentFrameTimes (path: string, options: RunOptions): Promise<{ times: number[], keyTimes: number[] }> {
  const r = await runTool('ffprobe', ['-v', 'error', ...peerInputArgs('matroska', path), '-select_streams', 'v:0',
    '-show_entries', 'packet=pts_time,flags', '-of', 'csv=p=0'], `reading the frame times of ${path}`, options)
  const times: number[] = []
  const keyTimes: number[] = []
  for (const line of r.stdout.split('\n')) {
    const [pts, flags] = line.split(',')
    if (pts === undefined || pts === '' || pts === 'N/A') continue
    times.push(Number(pts))
    if (flags?.includes('K') === true) keyTimes.push(Number(pts))
  }
  return { times: times.sort((a, b) => a - b), keyTimes: keyTimes.sort((a, b) => a - b) }
}

/** Runs ffmpeg and returns its stdout as bytes: the pictures, raw 8-bit luma. */
async function rawFrames (args: string[], what: string, options: RunOptions): Promise<Buffer> {
  if (options.signal?.aborted === true) throw new AbortError(`${what}: aborted`)
  try {
    const r = await execa('ffmpeg', args, { cancelSignal: options.signal, encoding: 'buffer', stdin: 'ignore', maxBuffer: 256 * 1024 * 1024 })
    return Buffer.from(r.stdout)
  } catch (err) {
    throw toToolError('ffmpeg', err, what)
  }
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
 * decoded up to the last sampled frame only, the source (usually far heavier to decode) only from
 * the keyframe before each sampled frame, and pictures are compared at a quarter of their size.
 * Throws a VerificationError naming the first frame that fails.
 */
export async function comparePictures (resultPath: string, segment: SourceSegmentRef, frameCount: number, positions: number[], o: PictureCheckOptions): Promise<PictureCheck> {
  const sorted = [...new Set(positions)].filter(p => Number.isInteger(p) && p >= 0 && p < frameCount).sort((a, b) => a - b)
  if (sorted.length === 0) throw new Error(`comparing ${resultPath}: no frame positions within 0..${frameCount - 1}`)
  const threshold = o.threshold ?? PICTURE_PSNR_THRESHOLD
  const margin = o.neighbourMargin ?? PICTURE_NEIGHBOUR_MARGIN_DB
  const runOptions: RunOptions = o.signal !== undefined ? { signal: o.signal } : {}
  const w = Math.max(8, Math.round(o.width / SCALE_DOWN))
  const h = Math.max(8, Math.round(o.height / SCALE_DOWN))
  const size = w * h
  const shrink = `scale=${w}:${h}:flags=area,format=gray`

  const { times, keyTimes } = await segmentFrameTimes(segment.path, runOptions)
  const chunkTimes = times.filter(t => t >= segment.selectFromTime - 0.0005).slice(0, frameCount)
  if (chunkTimes.length < frameCount) throw new VerificationError(`segment ${segment.path}: holds ${chunkTimes.length} frames from ${segment.selectFromTime}, expected ${frameCount}`)

  // The result: the sampled frames picked by index, decoded up to the last one.
  const resultArgs = ['-v', 'error', '-nostdin', '-threads', '1', ...peerInputArgs('h264', resultPath),
    '-vf', `select='${sorted.map(p => `eq(n\\,${p})`).join('+')}',${shrink}`, '-frames:v', String(sorted.length),
    '-fps_mode', 'passthrough', '-f', 'rawvideo', '-']
  // The source: for each sampled frame, its previous, own and next frame within the chunk, from one seek to the keyframe before them.
  const groups = sorted.map(p => ({ p, first: Math.max(0, p - 1), last: Math.min(frameCount - 1, p + 1) }))
  const sourceArgs = ['-v', 'error', '-nostdin']
  const graph: string[] = []
  groups.forEach((g, i) => {
    const t = chunkTimes[g.first] as number
    const key = keyTimes.filter(k => k <= t + 0.0005).pop() ?? times[0] ?? 0
    sourceArgs.push('-threads', '1', '-copyts', '-seek_timestamp', '1', '-noaccurate_seek', '-ss', key.toFixed(6), ...peerInputArgs('matroska', segment.path))
    graph.push(`[${i}:v]select='gte(t\\,${(t - 0.0005).toFixed(6)})',trim=end_frame=${g.last - g.first + 1},setpts=PTS-STARTPTS,${shrink}[s${i}]`)
  })
  graph.push(`${groups.map((_, i) => `[s${i}]`).join('')}concat=n=${groups.length}:v=1:a=0[s]`)
  const sourceFrames = groups.reduce((a, g) => a + g.last - g.first + 1, 0)
  sourceArgs.push('-filter_complex', graph.join(';'), '-map', '[s]', '-frames:v', String(sourceFrames), '-fps_mode', 'passthrough', '-f', 'rawvideo', '-')

  let result: Buffer
  let source: Buffer
  try {
    [result, source] = await Promise.all([
      rawFrames(resultArgs, `decoding sampled frames of ${resultPath}`, runOptions),
      rawFrames(sourceArgs, `decoding sampled frames of ${segment.path}`, runOptions)
    ])
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err
    throw new VerificationError(`${resultPath}: its pictures could not be compared with the source (${(err as Error).message.split('\n').slice(-1)[0] ?? ''})`)
  }
  if (result.length !== sorted.length * size) throw new VerificationError(`${resultPath}: only ${Math.floor(result.length / size)} of the ${sorted.length} sampled frames decoded`)
  if (source.length !== sourceFrames * size) throw new Error(`segment ${segment.path}: ${Math.floor(source.length / size)} of its ${sourceFrames} sampled frames decoded`)

  const frames: SampledFrame[] = []
  let at = 0
  groups.forEach((g, i) => {
    const versus = (index: number): number => psnr(result, i * size, source, (at + index - g.first) * size, size)
    const neighbours = [g.p - 1, g.p + 1].filter(n => n >= g.first && n <= g.last).map(versus)
    frames.push({ position: g.p, psnr: versus(g.p), neighbourPsnr: Math.max(-Infinity, ...neighbours) })
    at += g.last - g.first + 1
  })
  for (const f of frames) {
    if (f.psnr < threshold) {
      throw new VerificationError(`${resultPath}: frame ${f.position} does not show the source's picture (PSNR ${f.psnr.toFixed(1)} dB against the source's frame, at least ${threshold} dB expected)`)
    }
    if (f.neighbourPsnr > f.psnr + margin) {
      throw new VerificationError(`${resultPath}: frame ${f.position} shows a neighbouring frame of the source (PSNR ${f.neighbourPsnr.toFixed(1)} dB against the source's frame ${f.position - 1} or ${f.position + 1}, ${f.psnr.toFixed(1)} dB against its own)`)
    }
  }
  return { frames, min: Math.min(...frames.map(f => f.psnr)) }
}
