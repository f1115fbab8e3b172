import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { colourSetBy } from './colour.js'
import { encodedSize, y4mPixFmt } from './encode.js'
import { describeStructure, type StreamStructure } from './bitstream.js'
import { encoderFor, type EncoderId, type EncoderSettings } from './encoders/index.js'
import { AV1_OBU, type Av1Structure } from './av1.js'
import type { H264Structure, SpsSummary } from './h264.js'
import { HEVC_NAL, type HevcSpsSummary, type HevcStructure } from './hevc.js'
import type { Rational } from './probe.js'
import { runTool, type RunOptions } from './tools.js'

/**
 * NAL unit types x264 writes: slices (1), IDR slices (5), SEI (6), SPS (7), PPS (8), access unit
 * delimiters (9, `--aud`), filler (12, `--nal-hrd cbr`). Anything else (SPS extensions, subset SPS,
 * SVC/MVC or auxiliary slices) is a stream the merge's players would read as something else.
 */
const X264_NAL_TYPES = new Set([1, 5, 6, 7, 8, 9, 12])

/**
 * NAL unit types x265 writes: slice segments of every non-IRAP kind (TRAIL, TSA and STSA with
 * --temporal-layers, RADL, RASL: 0 … 9), IDR (19, 20) and CRA (21, open GOPs) slices, VPS, SPS,
 * PPS (32 … 34), access unit delimiters (35, --aud), filler (38) and prefix and suffix SEI (39,
 * 40; the picture hash is a suffix SEI). Not BLA, nor end of sequence or bitstream: x265 writes none.
 */
const X265_NAL_TYPES = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, HEVC_NAL.IDR_W_RADL, HEVC_NAL.IDR_N_LP, HEVC_NAL.CRA,
  HEVC_NAL.VPS, HEVC_NAL.SPS, HEVC_NAL.PPS, HEVC_NAL.AUD, HEVC_NAL.FD, HEVC_NAL.PREFIX_SEI, HEVC_NAL.SUFFIX_SEI])

/**
 * SEI the encoders write on their own, whatever the settings, beyond a two-frame reference: recovery
 * points (6) come with x264's open GOPs and x265's intra refresh.
 */
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

/** The job's reference: its encoder's structure for the job's settings. */
export type ReferenceStructure = StreamStructure & {
  /** The encoder that wrote it, whose format every result must be in. */
  encoder: EncoderId
  /** Whether the settings state the SAR, the range and the chroma location (else they follow the input and are not compared). */
  stated: { sar: boolean, range: boolean, chromaLocation: boolean }
}

/**
 * What this machine's encoder writes for the job: two grey frames at the job's encoded size and pixel
 * format, with the job's settings. Profile, chroma format, bit depth, field coding and the VUI
 * follow from those alone, not from the pictures, so every honest chunk of the job has the same.
 */
export async function referenceStructure (job: StructureJob, options: RunOptions = {}): Promise<ReferenceStructure> {
  const settings = job.settings
  const encoder = encoderFor(settings.encoder)
  // x264 and x265 take SAR and range from the y4m header when the settings leave them open, and what a
  // worker's decode of a segment writes there is not ours to predict: compared only when stated.
  const setBy = colourSetBy(settings)
  const stated = { sar: setBy.has('sar'), range: setBy.has('range'), chromaLocation: setBy.has('chromaLocation') }
  const size = encodedSize(job.width, job.height, job.sourcePixFmt)
  const dir = await mkdtemp(join(tmpdir(), 'swarm-structure-'))
  try {
    const y4m = join(dir, 'grey.y4m')
    const out = join(dir, `reference${encoder.fileExtension}`)
    await runTool('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', `color=c=gray:size=${size.width}x${size.height}:rate=${job.frameRate.num}/${job.frameRate.den}`,
      '-frames:v', '2', '-pix_fmt', encoder.inputPixFmt(settings, y4mPixFmt(job.sourcePixFmt)), '-strict', '-1', '-f', 'yuv4mpegpipe', y4m], 'making the reference frames for the structure check', options)
    const args = encoder.chunkArgs(settings, { frameRate: job.frameRate, frameCount: 2, threads: 1, outputPath: out, inputPath: y4m })
    await runTool(encoder.binary, args, 'encoding the reference frames for the structure check', options)
    return { ...describeStructure(encoder.codec, await readFile(out)), encoder: settings.encoder, stated }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * Where a result's structure differs from the job's reference: each entry says what and how.
 * Level and reference counts are left out (x264 derives them from the frame count too).
 */
export function structureMismatches (result: StreamStructure, reference: ReferenceStructure, pictures: number): string[] {
  if (result.codec !== reference.codec) return [`a ${result.codec} stream, expected ${reference.codec}`]
  if (result.codec === 'av1') return av1Mismatches(result, reference as Av1Structure & ReferenceStructure, pictures)
  const problems = result.codec === 'h264' ? h264Mismatches(result, reference as H264Structure & ReferenceStructure) : hevcMismatches(result, reference as HevcStructure & ReferenceStructure)
  const foreignSei = result.seiTypes.filter(t => !(reference as H264Structure | HevcStructure).seiTypes.includes(t) && !ALWAYS_ALLOWED_SEI.has(t))
  if (foreignSei.length > 0) problems.push(`SEI payload types this job's encoder does not write: ${foreignSei.join(', ')}`)
  const seiCap = SEI_BYTES_ALLOWANCE + SEI_BYTES_PER_PICTURE * pictures
  if (result.seiBytes > seiCap) problems.push(`${result.seiBytes} bytes of SEI for ${pictures} pictures (at most ${seiCap})`)
  return problems
}

/** A sequence header field both sides state, as messages name it. */
type Field<S> = [label: string, key: keyof S]

const H264_FIELDS: Array<Field<SpsSummary>> = [['profile_idc', 'profileIdc'], ['chroma format', 'chromaFormatIdc'], ['bit depth', 'bitDepth'], ['frame_mbs_only', 'frameMbsOnly']]
const HEVC_FIELDS: Array<Field<HevcSpsSummary>> = [['general_profile_idc', 'profileIdc'], ['chroma format', 'chromaFormatIdc'], ['bit depth', 'bitDepth'], ['field_seq', 'fieldSeq']]

/**
 * What both codecs compare alike: the sequence header's format fields and VUI (SAR and range where
 * the settings state them), one SPS throughout, the reference's PPS count, and NAL unit types.
 */
function sequenceMismatches<S extends Pick<SpsSummary, 'vui'>> (result: { sps?: S, distinctSps: number, distinctPps: number, nalTypes: number[] }, reference: ReferenceStructure & { sps?: S, distinctPps: number },
  fields: Array<Field<S>>, nal: { writer: string, types: Set<number> }): string[] {
  const problems: string[] = []
  const r = result.sps
  const e = reference.sps
  if (r === undefined || e === undefined) return r === undefined ? ['no readable SPS'] : []
  const compare = (what: string, got: unknown, want: unknown): void => {
    if (got !== want) problems.push(`${what} ${String(got ?? 'not stated')}, expected ${String(want ?? 'not stated')}`)
  }
  for (const [label, key] of fields) compare(label, r[key], e[key])
  if (reference.stated.sar) compare('SAR', r.vui.sar, e.vui.sar)
  if (reference.stated.range) compare('full range', r.vui.fullRange, e.vui.fullRange)
  compare('colour primaries', r.vui.primaries, e.vui.primaries)
  compare('transfer', r.vui.transfer, e.vui.transfer)
  compare('matrix', r.vui.matrix, e.vui.matrix)
  if (result.distinctSps !== 1) problems.push(`${result.distinctSps} different SPS (one expected: the format must not change midway)`)
  if (result.distinctPps !== reference.distinctPps) problems.push(`${result.distinctPps} different PPS, expected ${reference.distinctPps}`)
  const foreignNal = result.nalTypes.filter(t => !nal.types.has(t))
  if (foreignNal.length > 0) problems.push(`NAL unit types ${nal.writer} does not write: ${foreignNal.join(', ')}`)
  return problems
}

function h264Mismatches (result: H264Structure, reference: H264Structure & ReferenceStructure): string[] {
  return sequenceMismatches(result, reference, H264_FIELDS, { writer: 'x264', types: X264_NAL_TYPES })
}

function hevcMismatches (result: HevcStructure, reference: HevcStructure & ReferenceStructure): string[] {
  const problems = sequenceMismatches(result, reference, HEVC_FIELDS, { writer: 'x265', types: X265_NAL_TYPES })
  if (result.sps !== undefined && result.distinctVps !== 1) problems.push(`${result.distinctVps} different VPS (one expected)`)
  if (result.otherLayers > 0) problems.push(`${result.otherLayers} NAL units of layers other than the base layer, which x265 does not write`)
  return problems
}

/**
 * OBU types SvtAv1EncApp and aomenc write: sequence headers, temporal delimiters, frames, frame
 * headers (a shown existing frame) and tile groups, and metadata (HDR10's, where the settings
 * ask). Not padding, redundant frame headers or tile lists (refused by the reader already).
 */
const AV1_OBU_TYPES = new Set<number>([AV1_OBU.SEQUENCE_HEADER, AV1_OBU.TEMPORAL_DELIMITER, AV1_OBU.FRAME_HEADER, AV1_OBU.TILE_GROUP, AV1_OBU.METADATA, AV1_OBU.FRAME])

/** Sequence header syntax the format comparison below already covers, with a clearer message. */
const AV1_FORMAT_SYNTAX = new Set(['seq_profile', 'high_bitdepth', 'twelve_bit', 'mono_chrome', 'subsampling_x', 'subsampling_y'])

/**
 * An AV1 result's sequence header must be the reference's, syntax element for syntax element:
 * the chunks are joined into one track under the first one's (the merge), so any difference a
 * decoder acts on (profile, depth, chroma, colour, tools, timing, level, film grain) is a stream
 * that is not the job's. The range and chroma position are compared where the settings state
 * them: else the encoder codes the y4m's (aomenc), which follows the worker's decode of the source.
 */
function av1Mismatches (result: Av1Structure, reference: Av1Structure & ReferenceStructure, pictures: number): string[] {
  if (result.invalid !== undefined) return [result.invalid]
  const r = result.sequence
  const e = reference.sequence
  if (r === undefined || e === undefined || result.format === undefined || reference.format === undefined) return r === undefined ? ['no sequence header'] : []
  const problems: string[] = []
  const compare = (what: string, got: unknown, want: unknown): void => {
    if (got !== want) problems.push(`${what} ${String(got ?? 'absent')}, expected ${String(want ?? 'absent')}`)
  }
  compare('seq_profile', result.format.profile, reference.format.profile)
  compare('bit depth', result.format.bitDepth, reference.format.bitDepth)
  compare('chroma', result.format.chroma, reference.format.chroma)
  const open = new Set(AV1_FORMAT_SYNTAX)
  if (!reference.stated.range) open.add('color_range')
  if (!reference.stated.chromaLocation) open.add('chroma_sample_position')
  for (const name of new Set([...Object.keys(e), ...Object.keys(r)])) if (!open.has(name)) compare(name, r[name], e[name])
  const foreignObu = result.obuTypes.filter(t => !AV1_OBU_TYPES.has(t))
  if (foreignObu.length > 0) problems.push(`OBU types ${reference.encoder} does not write: ${foreignObu.join(', ')}`)
  const foreignMetadata = result.metadataTypes.filter(t => !reference.metadataTypes.includes(t))
  if (foreignMetadata.length > 0) problems.push(`metadata types this job's encoder does not write: ${foreignMetadata.join(', ')}`)
  const cap = SEI_BYTES_ALLOWANCE + SEI_BYTES_PER_PICTURE * pictures
  if (result.metadataBytes > cap) problems.push(`${result.metadataBytes} bytes of metadata OBUs for ${pictures} pictures (at most ${cap})`)
  return problems
}
