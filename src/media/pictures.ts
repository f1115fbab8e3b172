import { randomInt } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodedSize, y4mPixFmt } from './encode.js'
import { joinIvf } from './av1.js'
import { encoderFor } from './encoders/index.js'
import { lastLine, refusedByTool, ToolError, VerificationError } from './errors.js'
import { peerInputArgs } from './peer-bytes.js'
import type { StructureJob } from './structure.js'
import { runTool, type RunOptions } from './tools.js'

/*
 * The picture check: does a peer's result show what a viewer of the source would see, in every
 * frame? Three pictures of the chunk are compared, all reduced by the same ffmpeg filters:
 *
 * - the source (this node's segment), every frame;
 * - the result, every frame, decoded with error detection on: a stream that fails to decode
 *   anywhere is refused;
 * - this node's own encode of a few frames drawn with a CSPRNG after the upload, with the job's
 *   settings: what an honest encode of exactly those pictures loses, so the bounds follow the job
 *   (an honest `--crf 51` result is far worse than a `--crf 20` one) and the content (grain loses
 *   more than a cartoon).
 *
 * Every frame is reduced to its signature: the means of its 8×8 blocks of luma and 16×16 blocks
 * of each chroma plane. Coding noise averages out of a block's mean; a black frame, negated or missing colour, another
 * frame's picture or an overlay does not. The drawn frames are also compared at half size, where
 * blur and lost detail show. The figures behind each bound are in docs/architecture.md (media,
 * step 5) and docs/security.md.
 */

/** A signature is the mean of each block of this many luma pixels a side (chroma: twice as many). */
export const SIGNATURE_BLOCK = 8

/** Frames of each result this node encodes itself for the detail comparison. */
export const SAMPLED_FRAMES = 2

/*
 * The figures in the comments below are scores (a rule's figure over its bound) measured over 17
 * settings × 3 tiny clips (test/media/pictures.test.ts), 11 settings × 7 real clips up to 1080p
 * with 240-frame GOPs, and the real-file corpus; the whole table is in docs/security.md.
 */
export interface PictureThresholds {
  /**
   * Per plane, the drawn frames' error at half size may be this many dB above the error of this
   * node's own encode of the same frames. Honest results came at most 6.7 dB above (ultrafast
   * `--crf 40`, whose P-frames lose more than the I-frame the own encode makes), blur then
   * `--crf 51` on a `--crf 20` job 13.6 dB and more.
   */
  detailMarginDb: number
  /** The own encode's error counts as at least this (levels², about 45 dB): no job asks for more. */
  detailMseFloor: number
  /**
   * A drawn frame's largest block difference, per plane, may be `localFloor + localFactor × RMS`
   * levels, RMS being the own encode's block difference on that frame: a region an honest encode
   * does not change (an overlay, a logo, text, other colours). Honest results at most 0.71 of
   * it; 16 px text 2.2 times it and more at `--crf 20`, 1.4 at `--crf 30`.
   */
  localFloor: number
  localFactor: number
  /**
   * Every frame's mean block difference, per plane (Y, U, V), may be this many levels, or
   * `frameMeanFactor` times the chunk's median, whichever is more: one frame unlike the chunk's
   * others (black, from elsewhere, garbled) stands out of the chunk's own coding noise. Honest
   * results at most 0.54 of it, one black frame 4.3 times it and more.
   */
  frameMeanFloor: [number, number, number]
  frameMeanFactor: number
  /**
   * As frameMeanFloor, for every frame's largest block difference: a damaged region of one frame.
   * The floor is above what a VBV-starved honest frame after a scene change shows (about 50
   * levels at `--crf 20 --vbv-maxrate 300` on slides).
   */
  frameMaxFloor: number
  frameMaxFactor: number
  /**
   * The result's frames may not match the source's neighbouring frames (each frame against the
   * one before, and against the one after) with less than this share of the error against their
   * own: a result shifted by one does (0.005 of it on the test chunk, 0.03-0.14 on real clips),
   * an honest one never came under 0.94 (a still picture: about 1).
   */
  shiftRatio: number
  /** ...once the error against its own frames is at least this (mean squared block difference, levels²). */
  shiftMinMse: number
}

export const PICTURE_THRESHOLDS: Readonly<PictureThresholds> = Object.freeze<PictureThresholds>({
  detailMarginDb: 10,
  detailMseFloor: 2,
  localFloor: 16,
  localFactor: 16,
  frameMeanFloor: [16, 12, 12],
  frameMeanFactor: 6,
  frameMaxFloor: 80,
  frameMaxFactor: 4,
  shiftRatio: 0.5,
  shiftMinMse: 0.25
})

export interface SourceSegmentRef {
  /** The chunk's source segment (Matroska, cut by this node). */
  path: string
  /** Decoded frames before this timestamp are pre-roll; the chunk is the next `frameCount` frames. */
  selectFromTime: number
}

export interface PictureCheckOptions extends RunOptions {
  /** The job as its encoder sees it (effective settings, the source's size, pixel format and rate): the own encode uses it. */
  job: StructureJob
  /** Frames to encode here and compare at half size (tests, measurements). Default: SAMPLED_FRAMES drawn by pickSampledFrames. */
  samples?: number[]
  /**
   * The source's side of the check, made before the result came (prepareSourceReference, for the
   * same segment, frame count and job): its frames are compared, and only the result is decoded now.
   */
  reference?: SourceReference
  /** The CSPRNG behind the default samples; a test may fix it. */
  random?: (max: number) => number
  thresholds?: Partial<PictureThresholds>
  /** Return the scores without refusing anything (measurements). A result that does not decode is still refused. */
  measureOnly?: boolean
}

type Planes = [number, number, number]

/** One frame of the result against the source's frame at its position, block means in levels of 8 bits. */
export interface FrameDifference {
  position: number
  /** Mean absolute block difference, Y, U, V. */
  mean: Planes
  /** Largest block difference, Y, U, V. */
  max: Planes
}

export interface SampleScore {
  position: number
  /** The own encode's block difference on this frame (root mean square, Y, U, V): what honest coding costs here. */
  ownRms: Planes
  /** The largest block difference the result may have on this frame (localFloor + localFactor × ownRms). */
  localBound: Planes
}

export interface PictureCheck {
  frames: FrameDifference[]
  /** Over the frames with both neighbours: mean squared luma block difference against the source's own, previous and next frames. */
  neighbours: { own: number, previous: number, next: number }
  samples: SampleScore[]
  /** Per plane, the drawn frames' error at half size over the own encode's, in dB (pooled over the samples). */
  detailDb: Planes
  /** Each rule's figure over its bound (above 1 breaks it): how far an honest result is from a refusal, or a lie past it. */
  scores: PictureScores
  /** With measureOnly: the first rule the result breaks, as a refusal would say it. */
  failure?: string
}

/** The rules, in the order a refusal names them (PictureThresholds says what each bounds). */
export interface PictureScores {
  /** The worst frame's mean block difference, of any plane. */
  frameMean: number
  /** The worst frame's largest block difference, of any plane. */
  frameMax: number
  /** Shifted by one. */
  shift: number
  /** A region of a drawn frame. */
  local: number
  /** Detail lost in the drawn frames, of any plane. */
  detail: number
}

/**
 * Frames to encode here, drawn with a CSPRNG after the result is in, so the worker could not know
 * them: `count` distinct positions, each frame equally likely. Sorted.
 */
export function pickSampledFrames (frameCount: number, count = SAMPLED_FRAMES, random: (max: number) => number = randomInt): number[] {
  const free = Array.from({ length: Math.max(0, frameCount) }, (_, i) => i)
  const picked: number[] = []
  while (picked.length < count && free.length > 0) picked.push(...free.splice(random(free.length), 1))
  return picked.sort((a, b) => a - b)
}

interface Reduced {
  /** Signatures of every frame (yuv420p, one sample a block), frame after frame. */
  signatures: Uint8Array
  /** The drawn frames at half size (yuv444p16le). */
  halves: Uint16Array
}

/** Where a frame's planes are in a run of raw frames, and their sizes in samples. */
interface Layout {
  frame: number
  planes: Array<{ offset: number, size: number }>
}

interface Geometry {
  width: number
  height: number
  /** The signature: one sample an 8x8 block of luma, a 16x16 block of each chroma plane. */
  grid: { width: number, height: number }
  sig: Layout
  half: { width: number, height: number }
  halfLayout: Layout
}

function layoutOf (width: number, height: number, chromaWidth: number, chromaHeight: number): Layout {
  const luma = width * height
  const chroma = chromaWidth * chromaHeight
  return { frame: luma + 2 * chroma, planes: [{ offset: 0, size: luma }, { offset: luma, size: chroma }, { offset: luma + chroma, size: chroma }] }
}

function geometryOf (width: number, height: number): Geometry {
  // Even, so the chroma planes are exactly half the luma's.
  const even = (x: number): number => Math.max(4, 2 * Math.round(x / 2))
  const grid = { width: even(width / SIGNATURE_BLOCK), height: even(height / SIGNATURE_BLOCK) }
  const half = { width: Math.max(8, Math.round(width / 2)), height: Math.max(8, Math.round(height / 2)) }
  return {
    width, height, grid, half,
    sig: layoutOf(grid.width, grid.height, grid.width / 2, grid.height / 2),
    halfLayout: layoutOf(half.width, half.height, half.width, half.height)
  }
}

/** 16-bit samples as the host reads them (ffmpeg wrote them little-endian; so are the hosts swarm runs on). */
function samples16 (bytes: Buffer): Uint16Array {
  const out = new Uint16Array(bytes.length >> 1)
  new Uint8Array(out.buffer).set(bytes.subarray(0, out.length * 2))
  return out
}

/**
 * The filters that reduce a picture, the same for all three: at the source's size (a padded
 * result is cropped back first) and the video range (a full-range picture is brought to it, as a
 * player would show it). Signatures are 8-bit: a block's mean is not finer than a level. The
 * drawn frames at half size keep 16 bits, so no dither differs between an 8- and a 10-bit picture.
 */
function signatureOf (g: Geometry): string {
  return `scale=${g.grid.width}:${g.grid.height}:flags=area:out_range=tv,format=yuv420p`
}

function halfOf (g: Geometry): string {
  return `scale=${g.half.width}:${g.half.height}:flags=area:out_range=tv,format=yuv444p16le`
}

function pick (positions: number[]): string {
  return `select='${positions.map(p => `eq(n\\,${p})`).join('+')}'`
}

/** Where one ffmpeg writes what it reduced: files of a known size, read once (no pipe buffer grown chunk by chunk). */
interface ReducedFiles { signatures: string, halves: string }

function filesIn (dir: string, name: string): ReducedFiles {
  return { signatures: join(dir, `${name}-signatures.raw`), halves: join(dir, `${name}-halves.raw`) }
}

/** ffmpeg's outputs for the signatures of `frames` frames and the drawn frames at half size. */
function reducedOutputs (frames: number, samples: number, files: ReducedFiles): string[] {
  return ['-map', '[sig]', '-frames:v', String(frames), '-fps_mode', 'passthrough', '-f', 'rawvideo', '-y', files.signatures,
    '-map', '[half]', '-frames:v', String(samples), '-fps_mode', 'passthrough', '-f', 'rawvideo', '-y', files.halves]
}

async function reduced (args: string[], what: string, files: ReducedFiles, o: RunOptions): Promise<Reduced & { errors: string }> {
  const r = await runTool('ffmpeg', args, what, o)
  return { ...await readReduced(files), errors: r.stderr.trim() }
}

async function readReduced (files: ReducedFiles): Promise<Reduced> {
  return { signatures: await readFile(files.signatures), halves: samples16(await readFile(files.halves)) }
}

/**
 * The result, every frame, in one single-threaded ffmpeg of its own, so a failure is plainly the
 * result's: `-err_detect explode` turns a damaged slice the decoder would conceal into an error,
 * `-xerror` stops there, and anything the decoder reports refuses it as well.
 */
async function reduceResult (resultPath: string, frameCount: number, samples: number[], g: Geometry, job: StructureJob, dir: string, o: RunOptions): Promise<Reduced> {
  const coded = encodedSize(job.width, job.height, job.sourcePixFmt)
  const files = filesIn(dir, 'result')
  const graph = `[0:v]crop=${g.width}:${g.height}:0:0,split=2[all][drawn];[all]${signatureOf(g)}[sig];[drawn]${pick(samples)},${halfOf(g)}[half]`
  const args = ['-v', 'error', '-nostdin', '-threads', '1', '-xerror', '-err_detect', 'explode',
    ...peerInputArgs(encoderFor(job.settings.encoder).bitstream, resultPath, { width: coded.width, height: coded.height }), '-filter_complex', graph, ...reducedOutputs(frameCount, samples.length, files)]
  let r: Reduced & { errors: string }
  try {
    r = await reduced(args, `decoding ${resultPath}`, files, o)
  } catch (err) {
    throw refusedByTool(err, resultPath, `${resultPath}: its frames could not all be decoded`)
  }
  if (r.errors !== '') throw new VerificationError(`${resultPath}: decoding reported errors: ${r.errors.split('\n').slice(0, 3).join('; ')}`, { file: resultPath })
  return r
}

/**
 * The source segment, every frame of the chunk, and the drawn frames twice: reduced, and as the
 * worker's encoder got them (y4m at the encoded size and pixel format, encode.ts decoderArgs) for
 * this node's own encode.
 */
async function reduceSource (segment: SourceSegmentRef, frameCount: number, samples: number[], g: Geometry, job: StructureJob, dir: string, o: RunOptions): Promise<Reduced & { y4m: string }> {
  const coded = encodedSize(job.width, job.height, job.sourcePixFmt)
  const pad = coded.width !== job.width || coded.height !== job.height ? `,pad=${coded.width}:${coded.height}` : ''
  const files = filesIn(dir, 'source')
  const y4m = join(dir, 'drawn.y4m')
  const from = (segment.selectFromTime - 0.0005).toFixed(6)
  const graph = `[0:v]select='gte(t\\,${from})',split=3[all][drawn][enc];[all]${signatureOf(g)}[sig];[drawn]${pick(samples)},${halfOf(g)}[half];` +
    `[enc]${pick(samples)}${pad},format=${encoderFor(job.settings.encoder).inputPixFmt(job.settings, y4mPixFmt(job.sourcePixFmt))}[y4m]`
  const args = ['-v', 'error', '-nostdin', '-threads', '1', '-copyts', ...peerInputArgs('matroska', segment.path), '-filter_complex', graph,
    ...reducedOutputs(frameCount, samples.length, files),
    '-map', '[y4m]', '-frames:v', String(samples.length), '-fps_mode', 'passthrough', '-strict', '-1', '-f', 'yuv4mpegpipe', '-y', y4m]
  const r = await reduced(args, `decoding ${segment.path}`, files, o)
  return { ...r, y4m }
}

/** The VBV buffer a drawn frame starts with in the own encode: a tenth of --vbv-bufsize. */
const OWN_ENCODE_VBV_INIT = 0.1

/*
 * With a VBV (`--vbv-maxrate`), an honest chunk's frames after a scene change get what the buffer
 * holds then, far less than a lone frame starting on a full buffer: a slide change at `--crf 18
 * --vbv-maxrate 800` came out 1.6 times further from the source than the bound a full-buffer
 * own encode allows. The own encode starts its frame on a nearly empty buffer instead, as an
 * honest chunk's frame after a scene change does (ChunkArgsOptions.vbvInit).
 */

/** The frames of a y4m file, each as a y4m file of its own: the stream header, then one frame. */
export function y4mFrames (y4m: Buffer, frameBytes: number): Buffer[] {
  const headerEnd = y4m.indexOf(0x0a) + 1
  if (headerEnd <= 0) throw new Error('a y4m file without a stream header')
  const header = y4m.subarray(0, headerEnd)
  const frames: Buffer[] = []
  for (let at = headerEnd; at < y4m.length;) {
    const dataStart = y4m.indexOf(0x0a, at) + 1
    if (dataStart <= 0 || y4m.subarray(at, at + 5).toString('latin1') !== 'FRAME' || dataStart + frameBytes > y4m.length) throw new Error(`a y4m frame at byte ${at} is cut short`)
    frames.push(Buffer.concat([header, y4m.subarray(at, dataStart + frameBytes)]))
    at = dataStart + frameBytes
  }
  return frames
}

/** Bytes of one raw picture of a planar YUV format (y4m's): 4:2:0, 4:2:2 or 4:4:4, one or two bytes a sample. */
export function rawFrameBytes (pixFmt: string, width: number, height: number): number {
  const m = /^yuvj?(420|422|444)p(\d+)?/.exec(pixFmt)
  if (m === null) throw new Error(`no raw frame size for ${pixFmt}`)
  const chroma = m[1] === '420' ? Math.ceil(width / 2) * Math.ceil(height / 2) : m[1] === '422' ? Math.ceil(width / 2) * height : width * height
  return (width * height + 2 * chroma) * (m[2] !== undefined && Number(m[2]) > 8 ? 2 : 1)
}

/**
 * What an honest encode of the drawn frames looks like: each encoded on its own with the job's
 * settings (an I-frame, as the chunk's first frame is), the streams put end to end, and reduced
 * like the result.
 */
async function reduceOwnEncode (y4m: string, samples: number[], g: Geometry, job: StructureJob, dir: string, o: RunOptions): Promise<Reduced> {
  const encoder = encoderFor(job.settings.encoder)
  const coded = encodedSize(job.width, job.height, job.sourcePixFmt)
  const frames = y4mFrames(await readFile(y4m), rawFrameBytes(encoder.inputPixFmt(job.settings, y4mPixFmt(job.sourcePixFmt)), coded.width, coded.height))
  if (frames.length !== samples.length) throw new Error(`${frames.length} drawn frames were decoded for the own encode, not ${samples.length}`)
  const streams: Buffer[] = []
  for (const [i, frame] of frames.entries()) {
    const input = join(dir, `drawn-${i}.y4m`)
    await writeFile(input, frame)
    const out = join(dir, `own-${i}${encoder.fileExtension}`)
    const args = encoder.chunkArgs(job.settings, { frameRate: job.frameRate, frameCount: 1, threads: 1, outputPath: out, inputPath: input, vbvInit: OWN_ENCODE_VBV_INIT })
    await runTool(encoder.binary, args, 'encoding the drawn frames for the picture check', o)
    streams.push(await readFile(out))
  }
  const own = join(dir, `own${encoder.fileExtension}`)
  // Raw H.264 and HEVC join end to end; IVF files join under one header.
  await writeFile(own, encoder.bitstream === 'ivf' ? joinIvf(streams) : Buffer.concat(streams))
  const files = filesIn(dir, 'own')
  const graph = `[0:v]crop=${g.width}:${g.height}:0:0,split=2[all][drawn];[all]${signatureOf(g)}[sig];[drawn]${halfOf(g)}[half]`
  return await reduced(['-v', 'error', '-nostdin', '-threads', '1', '-f', encoder.bitstream, '-i', own, '-filter_complex', graph, ...reducedOutputs(samples.length, samples.length, files)],
    'decoding the own encode of the drawn frames', files, o)
}

function median (values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length === 0 ? 0 : s.length % 2 === 1 ? s[m] as number : ((s[m - 1] as number) + (s[m] as number)) / 2
}

interface Difference { mean: number, max: number, squares: number }

/*
 * Mean and largest absolute difference, and the sum of squares, of two planes in levels of 8 bits.
 * One loop per sample type: a loop that sees both stays polymorphic and ran 4x slower.
 */
function signatureDifference (a: Uint8Array, aOffset: number, b: Uint8Array, bOffset: number, size: number): Difference {
  let sum = 0
  let max = 0
  let squares = 0
  for (let i = 0; i < size; i++) {
    const d = Math.abs((a[aOffset + i] as number) - (b[bOffset + i] as number))
    sum += d
    squares += d * d
    if (d > max) max = d
  }
  return { mean: sum / size, max, squares }
}

/** Squared luma differences of a result frame (at `at`) against the source's previous and next frames, in one pass. */
function neighbourSquares (result: Uint8Array, source: Uint8Array, at: number, frame: number, size: number): { previous: number, next: number } {
  let previous = 0
  let next = 0
  for (let i = 0; i < size; i++) {
    const r = result[at + i] as number
    const p = r - (source[at - frame + i] as number)
    const n = r - (source[at + frame + i] as number)
    previous += p * p
    next += n * n
  }
  return { previous, next }
}

/** The sum of squared differences of two 16-bit planes, in levels of 8 bits. */
function halfSquares (a: Uint16Array, aOffset: number, b: Uint16Array, bOffset: number, size: number): number {
  let squares = 0
  for (let i = 0; i < size; i++) {
    const d = (a[aOffset + i] as number) - (b[bOffset + i] as number)
    squares += d * d
  }
  return squares / 257 / 257
}

const PLANES = ['luma', 'U', 'V'] as const
const PLANE_INDEXES = [0, 1, 2] as const
const f1 = (x: number): string => x.toFixed(1)

/**
 * Compares a result (its encoder's raw bitstream, from a peer) with the chunk's source segment, every frame, and
 * refuses one a viewer would see is not the source encoded with the job's settings: frames of
 * the wrong picture or colour, one frame off, an overlay, lost detail. Throws a VerificationError
 * naming the frame and the figures; a result that does not decode cleanly to its last frame is
 * refused too. A failure on this node's side (its segment, its own encode, a missing tool) is
 * not the peer's and is thrown as such (convicts: false).
 */
export async function comparePictures (resultPath: string, segment: SourceSegmentRef, frameCount: number, o: PictureCheckOptions): Promise<PictureCheck> {
  const t: PictureThresholds = { ...PICTURE_THRESHOLDS, ...o.thresholds }
  const runOptions: RunOptions = o.signal !== undefined ? { signal: o.signal } : {}
  const { job } = o
  const g = geometryOf(job.width, job.height)
  if (o.reference !== undefined && o.reference.frameCount !== frameCount) throw new Error(`comparing ${resultPath}: the prepared reference is of ${o.reference.frameCount} frames, not ${frameCount}`)
  const samples = o.reference?.samples ?? drawnFrames(frameCount, o)
  if (samples.length === 0) throw new Error(`comparing ${resultPath}: no frame positions within 0..${frameCount - 1}`)

  const dir = await mkdtemp(join(tmpdir(), 'swarm-pictures-'))
  try {
    const prepared = o.reference
    const ours = prepared !== undefined
      ? async () => await readReference(prepared)
      : async () => await reduceReference(segment, frameCount, samples, g, job, dir, runOptions)
    const [result, reference] = await Promise.allSettled([reduceResult(resultPath, frameCount, samples, g, job, dir, runOptions), ours()])
    if (result.status === 'rejected') throw result.reason
    if (reference.status === 'rejected') {
      const err = reference.reason as Error
      if (err.name === 'AbortError' || (err instanceof ToolError && err.missing)) throw err
      // Our own segment or encode: nothing the peer did.
      throw new VerificationError(`${resultPath}: its pictures could not be compared with the source (${lastLine(err)})`, { cause: err })
    }
    const { source, own } = reference.value
    const res = result.value
    const sig = g.sig.frame
    const half = g.halfLayout.frame
    if (source.signatures.length !== frameCount * sig || source.halves.length !== samples.length * half) {
      throw new VerificationError(`segment ${segment.path}: ${Math.floor(source.signatures.length / sig)} of the chunk's ${frameCount} frames decoded`)
    }
    if (own.signatures.length !== samples.length * sig || own.halves.length !== samples.length * half) {
      throw new VerificationError(`the own encode of ${samples.length} drawn frames decoded to ${Math.floor(own.signatures.length / sig)}`)
    }
    if (res.signatures.length !== frameCount * sig || res.halves.length !== samples.length * half) {
      throw new VerificationError(`${resultPath}: only ${Math.floor(res.signatures.length / sig)} of its ${frameCount} frames decoded`, { file: resultPath })
    }
    return judge(resultPath, frameCount, samples, res, source, own, g, t, o.measureOnly === true)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function drawnFrames (frameCount: number, o: Pick<PictureCheckOptions, 'samples' | 'random'>): number[] {
  return [...new Set(o.samples ?? pickSampledFrames(frameCount, SAMPLED_FRAMES, o.random))].filter(p => Number.isInteger(p) && p >= 0 && p < frameCount).sort((a, b) => a - b)
}

/** The source's frames reduced, and this node's own encode of the drawn ones, written to `dir`. */
async function reduceReference (segment: SourceSegmentRef, frameCount: number, samples: number[], g: Geometry, job: StructureJob, dir: string, o: RunOptions): Promise<{ source: Reduced, own: Reduced }> {
  const source = await reduceSource(segment, frameCount, samples, g, job, dir, o)
  return { source, own: await reduceOwnEncode(source.y4m, samples, g, job, dir, o) }
}

/**
 * The source's side of a picture check, made while the chunk is still being encoded elsewhere: the
 * frames to compare, drawn now with the CSPRNG and known only to this node (the peer learns
 * nothing until its result is judged), and the source's and the own encode's reductions, in files
 * of `dir`. The check of the result then only decodes the result: at the job's end the last
 * result's check no longer waits for this node's own encode (two AV1 key frames: 1.6 s of CPU).
 * One reference serves one check; discardSourceReference removes its files.
 */
export interface SourceReference {
  frameCount: number
  samples: number[]
  dir: string
}

/** `under`: the folder to make the reference's own in (default: the OS temp dir). */
export async function prepareSourceReference (segment: SourceSegmentRef, frameCount: number, o: Pick<PictureCheckOptions, 'job' | 'samples' | 'random' | 'signal'> & { under?: string }): Promise<SourceReference> {
  const samples = drawnFrames(frameCount, o)
  if (samples.length === 0) throw new Error(`preparing the check of ${segment.path}: no frame positions within 0..${frameCount - 1}`)
  const under = o.under ?? tmpdir()
  await mkdir(under, { recursive: true })
  const dir = await mkdtemp(join(under, 'reference-'))
  try {
    await reduceReference(segment, frameCount, samples, geometryOf(o.job.width, o.job.height), o.job, dir, o.signal !== undefined ? { signal: o.signal } : {})
    // Only the reductions are read again: the drawn frames' y4m and the own encode's streams go.
    const kept = new Set([...Object.values(filesIn(dir, 'source')), ...Object.values(filesIn(dir, 'own'))])
    await Promise.all((await readdir(dir)).map(async name => { if (!kept.has(join(dir, name))) await rm(join(dir, name), { force: true }) }))
    return { frameCount, samples, dir }
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}

export async function discardSourceReference (reference: SourceReference): Promise<void> {
  await rm(reference.dir, { recursive: true, force: true })
}

async function readReference (reference: SourceReference): Promise<{ source: Reduced, own: Reduced }> {
  return { source: await readReduced(filesIn(reference.dir, 'source')), own: await readReduced(filesIn(reference.dir, 'own')) }
}

function judge (resultPath: string, frameCount: number, samples: number[], res: Reduced, source: Reduced, own: Reduced, g: Geometry, t: PictureThresholds, measureOnly: boolean): PictureCheck {
  /** Plane p of frame f of some signatures, against plane p of the source's frame `sourceFrame`. */
  const sigDiff = (of: Uint8Array, f: number, p: 0 | 1 | 2, sourceFrame: number): Difference => {
    const plane = g.sig.planes[p] as { offset: number, size: number }
    return signatureDifference(of, f * g.sig.frame + plane.offset, source.signatures, sourceFrame * g.sig.frame + plane.offset, plane.size)
  }
  const lumaSize = g.sig.planes[0]?.size ?? 1
  const frames: FrameDifference[] = []
  const neighbours = { own: 0, previous: 0, next: 0 }
  for (let f = 0; f < frameCount; f++) {
    const d = PLANE_INDEXES.map(p => sigDiff(res.signatures, f, p, f))
    frames.push({ position: f, mean: d.map(x => x.mean) as Planes, max: d.map(x => x.max) as Planes })
    if (f === 0 || f === frameCount - 1) continue
    neighbours.own += (d[0] as Difference).squares / lumaSize
    const around = neighbourSquares(res.signatures, source.signatures, f * g.sig.frame, g.sig.frame, lumaSize)
    neighbours.previous += around.previous / lumaSize
    neighbours.next += around.next / lumaSize
  }
  const inner = Math.max(1, frameCount - 2)
  neighbours.own /= inner
  neighbours.previous /= inner
  neighbours.next /= inner

  const resSquares: Planes = [0, 0, 0]
  const ownSquares: Planes = [0, 0, 0]
  const halfDiff = (of: Uint16Array, i: number, p: 0 | 1 | 2): number => {
    const plane = g.halfLayout.planes[p] as { offset: number, size: number }
    const at = i * g.halfLayout.frame + plane.offset
    return halfSquares(of, at, source.halves, at, plane.size) / plane.size
  }
  const sampleScores: SampleScore[] = samples.map((position, i) => {
    const ownRms = PLANE_INDEXES.map(p => {
      resSquares[p] += halfDiff(res.halves, i, p)
      ownSquares[p] += halfDiff(own.halves, i, p)
      return Math.sqrt(sigDiff(own.signatures, i, p, position).squares / (g.sig.planes[p]?.size ?? 1))
    }) as Planes
    return { position, ownRms, localBound: ownRms.map(r => t.localFloor + t.localFactor * r) as Planes }
  })
  const detailDb = PLANE_INDEXES.map(p => 10 * Math.log10(Math.max(resSquares[p], 1e-12) / Math.max(ownSquares[p], samples.length * t.detailMseFloor))) as Planes

  const { scores, failure } = rate(frames, neighbours, sampleScores, detailDb, t)
  if (failure !== undefined && !measureOnly) throw new VerificationError(`${resultPath}: ${failure}`, { file: resultPath })
  return { frames, neighbours, samples: sampleScores, detailDb, scores, ...(failure !== undefined ? { failure } : {}) }
}

/** A rule's score and, past 1, what the refusal says. */
interface Rated { score: number, why: string }

/** The worst of some ratings (the first of equals). */
function worst (ratings: Rated[]): Rated {
  return ratings.reduce((a, b) => b.score > a.score ? b : a, { score: 0, why: '' })
}

/**
 * Each rule's score (its figure over its bound: above 1 breaks it) and the first rule broken, in
 * the order a refusal names them: whole frames, a shift, a region of a drawn frame, lost detail.
 */
function rate (frames: FrameDifference[], neighbours: PictureCheck['neighbours'], samples: SampleScore[], detailDb: Planes, t: PictureThresholds): { scores: PictureScores, failure?: string } {
  const frameMean: Rated[] = []
  const frameMax: Rated[] = []
  for (const p of PLANE_INDEXES) {
    const meanBound = Math.max(t.frameMeanFloor[p], t.frameMeanFactor * median(frames.map(f => f.mean[p])))
    const maxBound = Math.max(t.frameMaxFloor, t.frameMaxFactor * median(frames.map(f => f.max[p])))
    for (const f of frames) {
      frameMean.push({ score: f.mean[p] / meanBound, why: `frame ${f.position} does not show the source's picture: its ${PLANES[p]} is ${f1(f.mean[p])} levels off the source's on average over 8x8 blocks (at most ${f1(meanBound)} for this chunk)` })
      frameMax.push({ score: f.max[p] / maxBound, why: `frame ${f.position} does not show the source's picture in part: an 8x8 block's ${PLANES[p]} is ${f1(f.max[p])} levels off the source's (at most ${f1(maxBound)} for this chunk)` })
    }
  }
  const closest = Math.min(neighbours.previous, neighbours.next)
  const which = neighbours.previous < neighbours.next ? 'previous' : 'next'
  const shift: Rated = {
    score: neighbours.own < t.shiftMinMse ? 0 : t.shiftRatio * neighbours.own / Math.max(closest, 1e-9),
    why: `its frames show the source's ${which} frames, not their own (shifted by one): mean squared error ${f1(closest)} against the ${which} frame, ${f1(neighbours.own)} against their own`
  }
  const local = worst(samples.flatMap(s => PLANE_INDEXES.map(p => {
    const max = frames[s.position]?.max[p] ?? 0
    return { score: max / s.localBound[p], why: `frame ${s.position} is further from the source than an encode with the job's settings: an 8x8 block's ${PLANES[p]} is ${f1(max)} levels off (this node's own encode of the frame allows at most ${f1(s.localBound[p])})` }
  })))
  const detail = worst(PLANE_INDEXES.map(p => ({
    score: 10 ** ((detailDb[p] - t.detailMarginDb) / 10),
    why: `its frames ${samples.map(s => s.position).join(' and ')} are further from the source than an encode with the job's settings: ${PLANES[p]} error at half size ${f1(detailDb[p])} dB above this node's own encode of them (at most ${t.detailMarginDb} dB)`
  })))
  const rated: Record<keyof PictureScores, Rated> = { frameMean: worst(frameMean), frameMax: worst(frameMax), shift, local, detail }
  const scores = Object.fromEntries(Object.entries(rated).map(([k, r]) => [k, r.score])) as unknown as PictureScores
  const broken = Object.values(rated).find(r => r.score > 1)
  return { scores, ...(broken !== undefined ? { failure: broken.why } : {}) }
}
