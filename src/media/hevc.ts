import { BitReader, nalUnits, rbsp, readVuiStart, seiMessages } from './h264.js'

/**
 * Raw HEVC (Annex B, H.265) read without decoding a picture: what a parse-only check of an x265
 * chunk needs (pictures, IDR first, parameter sets, size and format from the SPS), and what the
 * structure check compares (structure.ts). The same start codes and emulation prevention as H.264;
 * two-byte NAL headers, and a sequence parameter set with far more before its VUI.
 */

/** ITU-T H.265 Table 7-1. */
export const HEVC_NAL = {
  /** Slice segments of non-IRAP pictures: TRAIL, TSA, STSA, RADL, RASL (0 … 9). */
  lastNonIrapSlice: 9,
  BLA_W_LP: 16,
  IDR_W_RADL: 19,
  IDR_N_LP: 20,
  CRA: 21,
  /** IRAP slice types end here (22, 23 reserved IRAP). */
  lastIrap: 23,
  VPS: 32,
  SPS: 33,
  PPS: 34,
  AUD: 35,
  FD: 38,
  PREFIX_SEI: 39,
  SUFFIX_SEI: 40
} as const

export interface HevcSpsSummary {
  /** general_profile_idc: 1 Main, 2 Main 10, 3 Main Still Picture, 4 range extensions (4:2:2, 4:4:4, 12-bit). */
  profileIdc: number
  chromaFormatIdc: number
  bitDepth: number
  /** Picture size after the conformance window's cropping. */
  width: number
  height: number
  /** field_seq_flag of the VUI: pictures are fields (x265 --field / --interlace). */
  fieldSeq: boolean
  vui: { sar?: string, fullRange?: boolean, primaries?: number, transfer?: number, matrix?: number }
}

export interface HevcSummary {
  /** Coded pictures of the base layer: slice segments with first_slice_segment_in_pic_flag set. */
  pictures: number
  /** The first picture is an IDR picture (IDR_W_RADL or IDR_N_LP): nothing before it is needed. */
  startsWithIdr: boolean
  sps?: HevcSpsSummary
  hasVps: boolean
  hasPps: boolean
}

/** Whether a NAL unit type is a slice segment (VCL): 0 … 9 and the IRAP types 16 … 23. */
export function isHevcSlice (type: number): boolean {
  return type <= HEVC_NAL.lastNonIrapSlice || (type >= HEVC_NAL.BLA_W_LP && type <= HEVC_NAL.lastIrap)
}

/** The NAL units of an HEVC stream, with the two-byte header's type and layer. */
function * hevcNalUnits (data: Uint8Array): Generator<{ type: number, layer: number, start: number, end: number }> {
  for (const { start, end } of nalUnits(data)) {
    const b0 = data[start] as number
    const b1 = data[start + 1] ?? 0
    yield { type: (b0 >> 1) & 0x3F, layer: ((b0 & 1) << 5) | (b1 >> 3), start, end }
  }
}

/** profile_tier_level(1, maxSubLayersMinus1) (7.3.3): the general profile, the rest skipped. */
function profileTierLevel (r: BitReader, maxSubLayersMinus1: number): number {
  r.u(2) // general_profile_space
  r.u(1) // general_tier_flag
  const profileIdc = r.u(5)
  r.u(32) // general_profile_compatibility_flags
  r.u(4) // progressive, interlaced, non_packed, frame_only
  r.u(43); r.u(1) // constraint flags and general_inbld / reserved
  r.u(8) // general_level_idc
  const profilePresent: number[] = []
  const levelPresent: number[] = []
  for (let i = 0; i < maxSubLayersMinus1; i++) { profilePresent.push(r.u(1)); levelPresent.push(r.u(1)) }
  if (maxSubLayersMinus1 > 0) for (let i = maxSubLayersMinus1; i < 8; i++) r.u(2)
  for (let i = 0; i < maxSubLayersMinus1; i++) {
    if (profilePresent[i] === 1) { r.u(32); r.u(32); r.u(24) }
    if (levelPresent[i] === 1) r.u(8)
  }
  return profileIdc
}

/** scaling_list_data() (7.3.4), skipped. */
function skipScalingListData (r: BitReader): void {
  for (let sizeId = 0; sizeId < 4; sizeId++) {
    for (let matrixId = 0; matrixId < 6; matrixId += sizeId === 3 ? 3 : 1) {
      if (r.u(1) === 0) { r.ue(); continue } // scaling_list_pred_matrix_id_delta
      const coefs = Math.min(64, 1 << (4 + (sizeId << 1)))
      if (sizeId > 1) r.se() // scaling_list_dc_coef_minus8
      for (let i = 0; i < coefs; i++) r.se()
    }
  }
}

/** st_ref_pic_set(idx) (7.3.7), skipped; returns its picture count, which a later set predicted from it needs. */
function skipShortTermRefPicSet (r: BitReader, idx: number, count: number, pictures: number[]): number {
  if (idx !== 0 && r.u(1) === 1) { // inter_ref_pic_set_prediction_flag
    const deltaIdx = idx === count ? r.ue() + 1 : 1
    r.u(1); r.ue() // delta_rps_sign, abs_delta_rps_minus1
    const refPictures = pictures[idx - deltaIdx] ?? 0
    let used = 0
    for (let j = 0; j <= refPictures; j++) {
      const usedByCurr = r.u(1)
      const useDelta = usedByCurr === 1 ? 1 : r.u(1)
      if (useDelta === 1) used++
    }
    return used
  }
  const negative = r.ue()
  const positive = r.ue()
  if (negative + positive > 32) throw new RangeError('too many reference pictures')
  for (let i = 0; i < negative + positive; i++) { r.ue(); r.u(1) }
  return negative + positive
}

function parseHevcSps (nal: Uint8Array): HevcSpsSummary {
  const r = new BitReader(rbsp(nal.subarray(2)))
  r.u(4) // sps_video_parameter_set_id
  const maxSubLayersMinus1 = r.u(3)
  r.u(1) // sps_temporal_id_nesting_flag
  const profileIdc = profileTierLevel(r, maxSubLayersMinus1)
  r.ue() // sps_seq_parameter_set_id
  const chromaFormatIdc = r.ue()
  let separateColourPlane = 0
  if (chromaFormatIdc === 3) separateColourPlane = r.u(1)
  const codedWidth = r.ue()
  const codedHeight = r.ue()
  let crop = [0, 0, 0, 0]
  if (r.u(1) === 1) crop = [r.ue(), r.ue(), r.ue(), r.ue()]
  const bitDepth = r.ue() + 8
  r.ue() // bit_depth_chroma_minus8
  const pocLsbBits = r.ue() + 4
  const orderingAll = r.u(1)
  for (let i = orderingAll === 1 ? 0 : maxSubLayersMinus1; i <= maxSubLayersMinus1; i++) { r.ue(); r.ue(); r.ue() }
  r.ue(); r.ue(); r.ue(); r.ue(); r.ue(); r.ue() // coding and transform block sizes, hierarchy depths
  if (r.u(1) === 1 && r.u(1) === 1) skipScalingListData(r) // scaling_list_enabled, sps_scaling_list_data_present
  r.u(1); r.u(1) // amp_enabled_flag, sample_adaptive_offset_enabled_flag
  if (r.u(1) === 1) { r.u(4); r.u(4); r.ue(); r.ue(); r.u(1) } // pcm
  const sets = r.ue()
  if (sets > 64) throw new RangeError('too many short-term reference picture sets')
  const pictures: number[] = []
  for (let i = 0; i < sets; i++) pictures.push(skipShortTermRefPicSet(r, i, sets, pictures))
  if (r.u(1) === 1) { // long_term_ref_pics_present_flag
    const longTerm = r.ue()
    if (longTerm > 32) throw new RangeError('too many long-term reference pictures')
    for (let i = 0; i < longTerm; i++) { r.u(pocLsbBits); r.u(1) }
  }
  r.u(1); r.u(1) // sps_temporal_mvp_enabled_flag, strong_intra_smoothing_enabled_flag
  let vui: HevcSpsSummary['vui'] = {}
  let fieldSeq = false
  if (r.u(1) === 1) {
    vui = readVuiStart(r)
    if (r.u(1) === 1) { r.ue(); r.ue() } // chroma_loc_info
    r.u(1) // neutral_chroma_indication_flag
    fieldSeq = r.u(1) === 1
  }
  const arrayType = separateColourPlane === 1 ? 0 : chromaFormatIdc
  const subWidth = arrayType === 1 || arrayType === 2 ? 2 : 1
  const subHeight = arrayType === 1 ? 2 : 1
  return {
    profileIdc,
    chromaFormatIdc,
    bitDepth,
    width: codedWidth - subWidth * ((crop[0] as number) + (crop[1] as number)),
    height: codedHeight - subHeight * ((crop[2] as number) + (crop[3] as number)),
    fieldSeq,
    vui
  }
}

/**
 * Counts the base layer's coded pictures and reads the first SPS. A picture's first slice segment
 * has first_slice_segment_in_pic_flag, the top bit after the two-byte NAL header.
 */
export function summarizeHevc (data: Uint8Array): HevcSummary {
  const summary: HevcSummary = { pictures: 0, startsWithIdr: false, hasVps: false, hasPps: false }
  for (const { type, layer, start, end } of hevcNalUnits(data)) {
    if (layer !== 0) continue
    if (isHevcSlice(type)) {
      if (start + 2 < end && ((data[start + 2] as number) & 0x80) !== 0) {
        if (summary.pictures === 0) summary.startsWithIdr = type === HEVC_NAL.IDR_W_RADL || type === HEVC_NAL.IDR_N_LP
        summary.pictures++
      }
    } else if (type === HEVC_NAL.SPS && summary.sps === undefined) {
      try { summary.sps = parseHevcSps(data.subarray(start, end)) } catch { /* reported as no SPS */ }
    } else if (type === HEVC_NAL.VPS) summary.hasVps = true
    else if (type === HEVC_NAL.PPS) summary.hasPps = true
  }
  return summary
}

/**
 * What a raw HEVC stream's structure says beyond its pictures (as describeH264Structure for
 * H.264): distinct parameter sets, NAL unit types, NAL units of another layer, SEI types and bytes.
 */
export interface HevcStructure {
  codec: 'hevc'
  sps?: HevcSpsSummary
  distinctVps: number
  distinctSps: number
  distinctPps: number
  nalTypes: number[]
  /** NAL units with nuh_layer_id > 0: layers (multi-view, scalable, alpha) x265 never writes. */
  otherLayers: number
  seiTypes: number[]
  seiBytes: number
}

export function describeHevcStructure (data: Uint8Array): HevcStructure {
  const sets = { [HEVC_NAL.VPS]: new Set<string>(), [HEVC_NAL.SPS]: new Set<string>(), [HEVC_NAL.PPS]: new Set<string>() }
  const nalTypes = new Set<number>()
  const seiTypes = new Set<number>()
  let seiBytes = 0
  let otherLayers = 0
  let first: HevcSpsSummary | undefined
  for (const { type, layer, start, end } of hevcNalUnits(data)) {
    nalTypes.add(type)
    if (layer !== 0) otherLayers++
    const nal = data.subarray(start, end)
    if (type === HEVC_NAL.VPS || type === HEVC_NAL.SPS || type === HEVC_NAL.PPS) {
      sets[type].add(Buffer.from(nal).toString('base64'))
      if (type === HEVC_NAL.SPS && first === undefined) { try { first = parseHevcSps(nal) } catch { /* counted as a distinct SPS only */ } }
    } else if (type === HEVC_NAL.PREFIX_SEI || type === HEVC_NAL.SUFFIX_SEI) {
      seiBytes += nal.length
      for (const { payloadType } of seiMessages(nal, 2)) seiTypes.add(payloadType)
    }
  }
  return {
    codec: 'hevc',
    ...(first !== undefined ? { sps: first } : {}),
    distinctVps: sets[HEVC_NAL.VPS].size,
    distinctSps: sets[HEVC_NAL.SPS].size,
    distinctPps: sets[HEVC_NAL.PPS].size,
    nalTypes: [...nalTypes].sort((a, b) => a - b),
    otherLayers,
    seiTypes: [...seiTypes].sort((a, b) => a - b),
    seiBytes
  }
}
