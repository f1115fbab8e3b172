import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { colourSetBy } from './colour.js'
import { encodedSize, y4mPixFmt } from './encode.js'
import { encoderFor, type EncoderSettings } from './encoders/index.js'
import { describeH264Structure, type H264Structure } from './h264.js'
import type { Rational } from './probe.js'
import { runTool, type RunOptions } from './tools.js'

/**
 * NAL unit types x264 writes: slices (1), IDR slices (5), SEI (6), SPS (7), PPS (8), access unit
 * delimiters (9, `--aud`), filler (12, `--nal-hrd cbr`). Anything else (SPS extensions, subset SPS,
 * SVC/MVC or auxiliary slices) is a stream the merge's players would read as something else.
 */
const X264_NAL_TYPES = new Set([1, 5, 6, 7, 8, 9, 12])

/** SEI x264 writes on its own, whatever the settings: recovery points (6) come with open GOPs. */
const ALWAYS_ALLOWED_SEI = new Set([6])

/**
 * SEI bytes a result may carry: x264's own options string once (about 1 KB), and a few timing or
 * recovery messages per picture. 100 KB of user data per frame is what a liar pads with.
 */
export const SEI_BYTES_ALLOWANCE = 8192
export const SEI_BYTES_PER_PICTURE = 96

export interface StructureJob {
  /** The job's effective settings (user's plus the source's colour: effectiveSettings). */
  settings: EncoderSettings
  width: number
  height: number
  sourcePixFmt: string
  frameRate: Rational
}

export interface ReferenceStructure extends H264Structure {
  /** Whether the settings state the SAR and the range (else they follow the input and are not compared). */
  stated: { sar: boolean, range: boolean }
}

/**
 * What this machine's x264 writes for the job: two grey frames at the job's encoded size and pixel
 * format, with the job's settings. Profile, chroma format, bit depth, field coding and the VUI
 * follow from those alone, not from the pictures, so every honest chunk of the job has the same.
 */
export async function referenceStructure (job: StructureJob, options: RunOptions = {}): Promise<ReferenceStructure> {
  const settings = job.settings
  const encoder = encoderFor(settings.encoder)
  // x264 takes SAR and range from the y4m header when the settings leave them open, and what a
  // worker's decode of a segment writes there is not ours to predict: compared only when stated.
  const setBy = colourSetBy(settings)
  const stated = { sar: setBy.has('sar'), range: setBy.has('range') }
  const size = encodedSize(job.width, job.height, job.sourcePixFmt)
  const dir = await mkdtemp(join(tmpdir(), 'swarm-structure-'))
  try {
    const y4m = join(dir, 'grey.y4m')
    const out = join(dir, 'reference.264')
    await runTool('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', `color=c=gray:size=${size.width}x${size.height}:rate=${job.frameRate.num}/${job.frameRate.den}`,
      '-frames:v', '2', '-pix_fmt', y4mPixFmt(job.sourcePixFmt), '-strict', '-1', '-f', 'yuv4mpegpipe', y4m], 'making the reference frames for the structure check', options)
    const args = encoder.chunkArgs(settings, { frameRate: job.frameRate, frameCount: 2, threads: 1, outputPath: out })
    args[args.length - 1] = y4m
    await runTool(encoder.binary, args, 'encoding the reference frames for the structure check', options)
    return { ...describeH264Structure(await readFile(out)), stated }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * Where a result's structure differs from the job's reference: each entry says what and how.
 * Level and reference counts are left out (x264 derives them from the frame count too).
 */
export function structureMismatches (result: H264Structure, reference: ReferenceStructure, pictures: number): string[] {
  const problems: string[] = []
  const r = result.sps
  const e = reference.sps
  if (r === undefined || e === undefined) return r === undefined ? ['no readable SPS'] : []
  const compare = (what: string, got: unknown, want: unknown): void => {
    if (got !== want) problems.push(`${what} ${String(got ?? 'not stated')}, expected ${String(want ?? 'not stated')}`)
  }
  compare('profile_idc', r.profileIdc, e.profileIdc)
  compare('chroma format', r.chromaFormatIdc, e.chromaFormatIdc)
  compare('bit depth', r.bitDepth, e.bitDepth)
  compare('frame_mbs_only', r.frameMbsOnly, e.frameMbsOnly)
  if (reference.stated.sar) compare('SAR', r.vui.sar, e.vui.sar)
  if (reference.stated.range) compare('full range', r.vui.fullRange, e.vui.fullRange)
  compare('colour primaries', r.vui.primaries, e.vui.primaries)
  compare('transfer', r.vui.transfer, e.vui.transfer)
  compare('matrix', r.vui.matrix, e.vui.matrix)
  if (result.distinctSps !== 1) problems.push(`${result.distinctSps} different SPS (one expected: the format must not change midway)`)
  if (result.distinctPps !== reference.distinctPps) problems.push(`${result.distinctPps} different PPS, expected ${reference.distinctPps}`)
  const foreignNal = result.nalTypes.filter(t => !X264_NAL_TYPES.has(t))
  if (foreignNal.length > 0) problems.push(`NAL unit types x264 does not write: ${foreignNal.join(', ')}`)
  const foreignSei = result.seiTypes.filter(t => !reference.seiTypes.includes(t) && !ALWAYS_ALLOWED_SEI.has(t))
  if (foreignSei.length > 0) problems.push(`SEI payload types this job's encoder does not write: ${foreignSei.join(', ')}`)
  const seiCap = SEI_BYTES_ALLOWANCE + SEI_BYTES_PER_PICTURE * pictures
  if (result.seiBytes > seiCap) problems.push(`${result.seiBytes} bytes of SEI for ${pictures} pictures (at most ${seiCap})`)
  return problems
}
