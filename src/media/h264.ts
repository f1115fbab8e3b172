/** What a raw H.264 (Annex B) stream says about itself, read without decoding a picture. */
export interface AnnexBSummary {
  /** Coded pictures: slices that start a picture (first_mb_in_slice = 0). */
  pictures: number
  /** The first picture is an IDR picture. */
  startsWithIdr: boolean
  /** From the first sequence parameter set, if there is one. */
  sps?: SpsSummary
  hasPps: boolean
}

export interface SpsSummary {
  profileIdc: number
  chromaFormatIdc: number
  bitDepth: number
  width: number
  height: number
  /** 0: the stream may code fields (interlaced or MBAFF); 1: frames only. */
  frameMbsOnly: number
  /** What the VUI states: SAR, range and colour description (absent: not stated). */
  vui: { sar?: string, fullRange?: boolean, primaries?: number, transfer?: number, matrix?: number }
}

/** H.264 Table E-1 (and H.265's, the same): aspect_ratio_idc 1 … 16. */
const SAR_TABLE = ['1:1', '12:11', '10:11', '16:11', '40:33', '24:11', '20:11', '32:11', '80:33', '18:11', '15:11', '64:33', '160:99', '4:3', '3:2', '2:1']

const NAL_SLICE = 1
const NAL_IDR = 5
const NAL_SPS = 7
const NAL_PPS = 8

/**
 * The start of vui_parameters(), which H.264 (E.1.1) and HEVC (E.2.1) share: the SAR, and the
 * signal type (range and colour description).
 */
export function readVuiStart (r: BitReader): SpsSummary['vui'] {
  const vui: SpsSummary['vui'] = {}
  if (r.u(1) === 1) {
    const idc = r.u(8)
    if (idc === 255) vui.sar = `${r.u(16)}:${r.u(16)}`
    else if (idc >= 1 && idc <= SAR_TABLE.length) vui.sar = SAR_TABLE[idc - 1]
  }
  if (r.u(1) === 1) r.u(1) // overscan_appropriate_flag
  if (r.u(1) === 1) {
    r.u(3) // video_format
    vui.fullRange = r.u(1) === 1
    if (r.u(1) === 1) { vui.primaries = r.u(8); vui.transfer = r.u(8); vui.matrix = r.u(8) }
  }
  return vui
}

/** Profiles whose SPS carries chroma format, bit depths and scaling matrices (H.264 7.3.2.1.1). */
const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135])

/** Reads an RBSP bit by bit: fixed-length and exp-Golomb codes (H.264 and HEVC alike). */
export class BitReader {
  private bit = 0
  constructor (private readonly b: Uint8Array) {}
  u (n: number): number {
    let v = 0
    for (let i = 0; i < n; i++) {
      const byte = this.b[this.bit >> 3]
      if (byte === undefined) throw new RangeError('SPS ends early')
      v = v * 2 + ((byte >> (7 - (this.bit & 7))) & 1)
      this.bit++
    }
    return v
  }

  ue (): number {
    let zeros = 0
    while (this.u(1) === 0) { if (++zeros > 31) throw new RangeError('bad exp-Golomb code') }
    return zeros === 0 ? 0 : 2 ** zeros - 1 + this.u(zeros)
  }

  se (): number {
    const k = this.ue()
    return k % 2 === 1 ? (k + 1) / 2 : -k / 2
  }
}

/** The NAL's payload with emulation-prevention bytes (00 00 03) removed. */
export function rbsp (nal: Uint8Array): Uint8Array {
  const out = new Uint8Array(nal.length)
  let n = 0; let zeros = 0
  for (const byte of nal) {
    if (zeros >= 2 && byte === 3) { zeros = 0; continue }
    zeros = byte === 0 ? zeros + 1 : 0
    out[n++] = byte
  }
  return out.subarray(0, n)
}

function skipScalingList (r: BitReader, size: number): void {
  let last = 8; let next = 8
  for (let j = 0; j < size; j++) {
    if (next !== 0) next = (last + r.se() + 256) % 256
    last = next === 0 ? last : next
  }
}

function parseSps (nal: Uint8Array): SpsSummary {
  const r = new BitReader(rbsp(nal.subarray(1)))
  const profileIdc = r.u(8)
  r.u(16) // constraint flags, level_idc
  r.ue() // seq_parameter_set_id
  let chromaFormatIdc = 1; let bitDepth = 8; let separateColourPlane = 0
  if (HIGH_PROFILES.has(profileIdc)) {
    chromaFormatIdc = r.ue()
    if (chromaFormatIdc === 3) separateColourPlane = r.u(1)
    bitDepth = r.ue() + 8
    r.ue() // bit_depth_chroma_minus8
    r.u(1) // qpprime_y_zero_transform_bypass_flag
    if (r.u(1) === 1) {
      for (let i = 0; i < (chromaFormatIdc !== 3 ? 8 : 12); i++) if (r.u(1) === 1) skipScalingList(r, i < 6 ? 16 : 64)
    }
  }
  r.ue() // log2_max_frame_num_minus4
  const pocType = r.ue()
  if (pocType === 0) r.ue()
  else if (pocType === 1) {
    r.u(1); r.se(); r.se()
    const cycle = r.ue()
    for (let i = 0; i < cycle; i++) r.se()
  }
  r.ue() // max_num_ref_frames
  r.u(1) // gaps_in_frame_num_value_allowed_flag
  const widthMbs = r.ue() + 1
  const heightMapUnits = r.ue() + 1
  const frameMbsOnly = r.u(1)
  if (frameMbsOnly === 0) r.u(1) // mb_adaptive_frame_field_flag
  r.u(1) // direct_8x8_inference_flag
  let crop = [0, 0, 0, 0]
  if (r.u(1) === 1) crop = [r.ue(), r.ue(), r.ue(), r.ue()]
  const arrayType = separateColourPlane === 1 ? 0 : chromaFormatIdc
  const cropX = arrayType === 0 ? 1 : (arrayType === 3 ? 1 : 2)
  const cropY = (arrayType === 0 ? 1 : (arrayType === 1 ? 2 : 1)) * (2 - frameMbsOnly)
  const vui: SpsSummary['vui'] = r.u(1) === 1 ? readVuiStart(r) : {}
  return {
    frameMbsOnly,
    vui,
    profileIdc,
    chromaFormatIdc,
    bitDepth,
    width: widthMbs * 16 - cropX * ((crop[0] as number) + (crop[1] as number)),
    height: (2 - frameMbsOnly) * heightMapUnits * 16 - cropY * ((crop[2] as number) + (crop[3] as number))
  }
}

/**
 * Counts the coded pictures of an Annex B stream and reads its first SPS: what a parse-only check
 * of a chunk needs, in-process. The ffprobe that did this cost ~0.07 s of CPU per chunk, mostly
 * its own start-up, on the originator's busiest core. Every picture's first slice has
 * first_mb_in_slice = 0, an exp-Golomb 0: a single 1 bit right after the NAL header.
 */
export function summarizeAnnexB (data: Uint8Array): AnnexBSummary {
  const summary: AnnexBSummary = { pictures: 0, startsWithIdr: false, hasPps: false }
  for (const { type, start, end } of nalUnits(data)) {
    if (type === NAL_SLICE || type === NAL_IDR) {
      if (start + 1 < end && ((data[start + 1] as number) & 0x80) !== 0) {
        if (summary.pictures === 0) summary.startsWithIdr = type === NAL_IDR
        summary.pictures++
      }
    } else if (type === NAL_SPS && summary.sps === undefined) {
      try { summary.sps = parseSps(data.subarray(start, end)) } catch { /* reported as no SPS */ }
    } else if (type === NAL_PPS) summary.hasPps = true
  }
  return summary
}

/** The NAL units of an Annex B stream: type (H.264's), and where each starts (its header byte) and ends. */
export function * nalUnits (data: Uint8Array): Generator<{ type: number, start: number, end: number }> {
  let i = 0
  const n = data.length
  for (;;) {
    // Next start code (00 00 01; a 4-byte 00 00 00 01 ends with the same three).
    while (i + 2 < n && !(data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1)) i++
    if (i + 3 >= n) return
    const start = i + 3
    let end = start
    while (end + 2 < n && !(data[end] === 0 && data[end + 1] === 0 && (data[end + 2] === 1 || data[end + 2] === 0))) end++
    if (end + 2 >= n) end = n
    yield { type: (data[start] as number) & 0x1F, start, end }
    i = end
  }
}

const NAL_SEI = 6
const SEI_USER_DATA_REGISTERED = 4

/**
 * Whether an Annex B stream carries CEA-608/708 captions: SEI user data registered by ITU-T T.35
 * with the ATSC A/53 signature (country 0xB5, provider 0x0031, "GA94", cc_data type 3), which is
 * where every H.264 caption service puts them. Parsed, not decoded: on a 37 Mbit/s 720p source,
 * decoding the first 2 s to find them cost a second of CPU before any chunk could be handed out.
 */
export function carriesA53Captions (data: Uint8Array): boolean {
  for (const { type, start, end } of nalUnits(data)) {
    if (type !== NAL_SEI) continue
    for (const { payloadType, payload: p } of seiMessages(data.subarray(start, end))) {
      if (payloadType === SEI_USER_DATA_REGISTERED && p.length >= 8 && p[0] === 0xB5 && p[1] === 0x00 && p[2] === 0x31 &&
        p[3] === 0x47 && p[4] === 0x41 && p[5] === 0x39 && p[6] === 0x34 && p[7] === 0x03) return true
    }
  }
  return false
}

/**
 * The sei_message()s of an SEI NAL unit (its header included: one byte in H.264, two in HEVC), up
 * to the rbsp trailing bits (0x80).
 */
export function * seiMessages (nal: Uint8Array, headerBytes = 1): Generator<{ payloadType: number, payload: Uint8Array }> {
  const sei = rbsp(nal.subarray(headerBytes))
  let at = 0
  while (at < sei.length && sei[at] !== 0x80) {
    let payloadType = 0
    while (sei[at] === 0xFF) { payloadType += 255; at++ }
    payloadType += sei[at++] ?? 0
    let size = 0
    while (sei[at] === 0xFF) { size += 255; at++ }
    size += sei[at++] ?? 0
    yield { payloadType, payload: sei.subarray(at, at + size) }
    at += size
  }
}

/**
 * What a raw H.264 stream's structure says, beyond its pictures: the parameter sets it carries
 * (distinct ones: a stream that switches SPS midway decodes as another format there), the NAL unit
 * types it uses, and its SEI messages (types and bytes). Compared with what the originator's own
 * x264 writes for the job (structure.ts).
 */
export interface H264Structure {
  codec: 'h264'
  sps?: SpsSummary
  distinctSps: number
  distinctPps: number
  nalTypes: number[]
  seiTypes: number[]
  seiBytes: number
}

export function describeH264Structure (data: Uint8Array): H264Structure {
  const sps = new Set<string>()
  const pps = new Set<string>()
  const nalTypes = new Set<number>()
  const seiTypes = new Set<number>()
  let seiBytes = 0
  let first: SpsSummary | undefined
  for (const { type, start, end } of nalUnits(data)) {
    nalTypes.add(type)
    const nal = data.subarray(start, end)
    if (type === NAL_SPS) {
      sps.add(Buffer.from(nal).toString('base64'))
      if (first === undefined) { try { first = parseSps(nal) } catch { /* counted as a distinct SPS only */ } }
    } else if (type === NAL_PPS) pps.add(Buffer.from(nal).toString('base64'))
    else if (type === NAL_SEI) {
      seiBytes += nal.length
      for (const { payloadType } of seiMessages(nal)) seiTypes.add(payloadType)
    }
  }
  return {
    codec: 'h264',
    ...(first !== undefined ? { sps: first } : {}),
    distinctSps: sps.size,
    distinctPps: pps.size,
    nalTypes: [...nalTypes].sort((a, b) => a - b),
    seiTypes: [...seiTypes].sort((a, b) => a - b),
    seiBytes
  }
}
