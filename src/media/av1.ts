import { MediaError } from './errors.js'

/**
 * Reads an IVF file of AV1 (what SvtAv1EncApp and aomenc write for a chunk) without decoding a
 * picture: the IVF framing, the OBUs of every temporal unit, the sequence header and the first
 * bits of every frame header. A chunk comes from a peer, so every length in it is checked against
 * the bytes that are really there; anything that does not add up throws an Av1BitstreamError
 * rather than being guessed at. References are to the AV1 specification (v1.0.0 errata 1).
 */

/** Bytes that are not a well-formed IVF file of AV1, with what was wrong and where. */
export class Av1BitstreamError extends MediaError {
  override readonly name = 'Av1BitstreamError'
}

/** AV1 colour_config (5.5.2), as the sequence header codes it. */
export interface Av1ColourConfig {
  /** CICP code points (ISO/IEC 23091-2); 2 (unspecified) when the header carries no description. */
  primaries: number
  transfer: number
  matrix: number
  /** colour_range: 1 is full ("pc"), 0 studio ("tv"). */
  fullRange: boolean
  /** chroma_sample_position: 0 unknown, 1 vertical (left), 2 colocated (top-left); only for 4:2:0. */
  chromaSamplePosition: number
}

/** What an IVF file of AV1 says about itself. */
export interface IvfAv1Summary {
  /** Temporal units: one IVF frame each, and one shown frame each, so this is what a decoder outputs. */
  pictures: number
  /** Frames coded but not shown when decoded (alt-refs, forward key frames): they show later, through show_existing_frame, or never. */
  hiddenFrames: number
  /** The first temporal unit carries a sequence header and its first frame is a shown key frame: the chunk decodes on its own. */
  firstIsKey: true
  /** Temporal units whose shown frame is a key frame (shown when coded, or shown through show_existing_frame), the first included. */
  keyFrames: number
  /** The sequence header's largest frame size (max_frame_width/height_minus_1 + 1). */
  width: number
  height: number
  /** seq_profile: 0 Main (4:2:0, 4:0:0), 1 High (4:4:4), 2 Professional (4:2:2, 12-bit). */
  profile: number
  bitDepth: 8 | 10 | 12
  /** "420", "422", "444", or "400" for monochrome. */
  chroma: '420' | '422' | '444' | '400'
  colour: Av1ColourConfig
  filmGrain: boolean
  /**
   * The sequence header's payload. Every sequence header in the file is byte-identical to it
   * (or this throws): chunks appended into one track must all carry the same one.
   */
  sequenceHeader: Uint8Array
  /** What the IVF header states; not trusted for anything but a message (its frame count is not even read). */
  ivf: { width: number, height: number, rateNum: number, rateDen: number }
}

const IVF_HEADER_BYTES = 32
const IVF_FRAME_HEADER_BYTES = 12

// OBU types (6.2.2).
const OBU_SEQUENCE_HEADER = 1
const OBU_TEMPORAL_DELIMITER = 2
const OBU_FRAME_HEADER = 3
const OBU_TILE_GROUP = 4
const OBU_METADATA = 5
const OBU_FRAME = 6
const OBU_REDUNDANT_FRAME_HEADER = 7
const OBU_TILE_LIST = 8
const OBU_PADDING = 15

const KEY_FRAME = 0

/** Reads bits MSB first, never past the end of the slice it was given. */
class BitReader {
  private bit = 0
  constructor (private readonly b: Uint8Array, private readonly what: string) {}
  f (n: number): number {
    let v = 0
    for (let i = 0; i < n; i++) {
      const byte = this.b[this.bit >> 3]
      if (byte === undefined) throw new Av1BitstreamError(`${this.what} ends early`)
      v = v * 2 + ((byte >> (7 - (this.bit & 7))) & 1)
      this.bit++
    }
    return v
  }

  /** uvlc() (4.10.3): at most 32 leading zeros, each one a bit really there. */
  uvlc (): number {
    let zeros = 0
    while (this.f(1) === 0) zeros++
    if (zeros >= 32) return 2 ** 32 - 1
    return this.f(zeros) + 2 ** zeros - 1
  }
}

/** What the rest of the stream needs from the sequence header. */
interface SequenceHeader {
  profile: number
  reducedStillPictureHeader: boolean
  width: number
  height: number
  bitDepth: 8 | 10 | 12
  chroma: IvfAv1Summary['chroma']
  colour: Av1ColourConfig
  filmGrain: boolean
  /** What reading a frame header as far as refresh_frame_flags takes (5.9.2). */
  frames: {
    equalPictureInterval: boolean
    decoderModelInfoPresent: boolean
    bufferRemovalTimeLength: number
    framePresentationTimeLength: number
    /** The operating point's decoder model is present (decoder_model_present_for_this_op[0]). */
    decoderModelForOp: boolean
    operatingPointIdc: number
    frameIdLength: number | undefined
    forceScreenContentTools: number
    forceIntegerMv: number
    orderHintBits: number
  }
}

/** sequence_header_obu (5.5). */
function parseSequenceHeader (payload: Uint8Array): SequenceHeader {
  const r = new BitReader(payload, 'the sequence header')
  const profile = r.f(3)
  if (profile > 2) throw new Av1BitstreamError(`the sequence header names profile ${profile}; AV1 has profiles 0 to 2`)
  r.f(1) // still_picture
  const reducedStillPictureHeader = r.f(1) === 1
  const frames: SequenceHeader['frames'] = {
    equalPictureInterval: false, decoderModelInfoPresent: false, bufferRemovalTimeLength: 0, framePresentationTimeLength: 0,
    decoderModelForOp: false, operatingPointIdc: 0, frameIdLength: undefined, forceScreenContentTools: 2, forceIntegerMv: 2, orderHintBits: 0
  }
  let bufferDelayLength = 0
  if (reducedStillPictureHeader) {
    r.f(5) // seq_level_idx[0]
  } else {
    if (r.f(1) === 1) { // timing_info_present_flag
      r.f(32); r.f(32) // num_units_in_display_tick, time_scale
      frames.equalPictureInterval = r.f(1) === 1
      if (frames.equalPictureInterval) r.uvlc() // num_ticks_per_picture_minus_1
      frames.decoderModelInfoPresent = r.f(1) === 1
      if (frames.decoderModelInfoPresent) {
        bufferDelayLength = r.f(5) + 1
        r.f(32) // num_units_in_decoding_tick
        frames.bufferRemovalTimeLength = r.f(5) + 1
        frames.framePresentationTimeLength = r.f(5) + 1
      }
    }
    const initialDisplayDelayPresent = r.f(1) === 1
    const operatingPoints = r.f(5) + 1
    // Scalable streams (several operating points) decode to different pictures per operating point; no encoder swarm runs writes one.
    if (operatingPoints !== 1) throw new Av1BitstreamError(`the sequence header describes ${operatingPoints} operating points (a scalable stream); a chunk has one`)
    frames.operatingPointIdc = r.f(12)
    if (r.f(5) > 7) r.f(1) // seq_level_idx[0], seq_tier[0]
    if (frames.decoderModelInfoPresent) {
      frames.decoderModelForOp = r.f(1) === 1
      if (frames.decoderModelForOp) { r.f(bufferDelayLength); r.f(bufferDelayLength); r.f(1) }
    }
    if (initialDisplayDelayPresent && r.f(1) === 1) r.f(4)
  }
  const widthBits = r.f(4) + 1
  const heightBits = r.f(4) + 1
  const width = r.f(widthBits) + 1
  const height = r.f(heightBits) + 1
  if (!reducedStillPictureHeader && r.f(1) === 1) { // frame_id_numbers_present_flag
    const delta = r.f(4) + 2
    frames.frameIdLength = r.f(3) + 1 + delta
  }
  r.f(1); r.f(1); r.f(1) // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
  if (!reducedStillPictureHeader) {
    r.f(1); r.f(1); r.f(1); r.f(1) // interintra, masked compound, warped motion, dual filter
    const orderHint = r.f(1) === 1
    if (orderHint) { r.f(1); r.f(1) } // jnt_comp, ref_frame_mvs
    frames.forceScreenContentTools = r.f(1) === 1 ? 2 : r.f(1) // seq_choose_screen_content_tools
    if (frames.forceScreenContentTools > 0) frames.forceIntegerMv = r.f(1) === 1 ? 2 : r.f(1) // seq_choose_integer_mv
    if (orderHint) frames.orderHintBits = r.f(3) + 1
  }
  r.f(1); r.f(1); r.f(1) // superres, cdef, restoration
  // color_config (5.5.2)
  const highBitdepth = r.f(1) === 1
  const bitDepth: 8 | 10 | 12 = profile === 2 && highBitdepth ? (r.f(1) === 1 ? 12 : 10) : highBitdepth ? 10 : 8
  const mono = profile === 1 ? false : r.f(1) === 1
  let primaries = 2; let transfer = 2; let matrix = 2
  if (r.f(1) === 1) { primaries = r.f(8); transfer = r.f(8); matrix = r.f(8) }
  let fullRange: boolean
  let subX = 1; let subY = 1
  let chromaSamplePosition = 0
  if (mono) {
    fullRange = r.f(1) === 1
  } else if (primaries === 1 && transfer === 13 && matrix === 0) {
    // sRGB: 4:4:4, full range, no bits for either.
    fullRange = true; subX = 0; subY = 0
  } else {
    fullRange = r.f(1) === 1
    if (profile === 1) { subX = 0; subY = 0 } else if (profile === 2) {
      if (bitDepth === 12) { subX = r.f(1); subY = subX === 1 ? r.f(1) : 0 } else { subX = 1; subY = 0 }
    }
    if (subX === 1 && subY === 1) chromaSamplePosition = r.f(2)
  }
  if (!mono) r.f(1) // separate_uv_delta_q
  const filmGrain = r.f(1) === 1
  const chroma = mono ? '400' : subX === 1 && subY === 1 ? '420' : subX === 1 ? '422' : subY === 0 ? '444' : undefined
  if (chroma === undefined) throw new Av1BitstreamError('the sequence header codes chroma subsampled vertically only, which AV1 does not allow')
  return { profile, reducedStillPictureHeader, width, height, bitDepth, chroma, colour: { primaries, transfer, matrix, fullRange, chromaSamplePosition }, filmGrain, frames }
}

/** leb128() (4.10.5): at most 8 bytes, a value below 2^32, every byte inside `end`. */
function readLeb128 (b: Uint8Array, at: number, end: number, what: string): { value: number, next: number } {
  let value = 0
  for (let i = 0; i < 8; i++) {
    if (at + i >= end) throw new Av1BitstreamError(`${what}: its size field runs past the end of its frame`)
    const byte = b[at + i] as number
    value += (byte & 0x7f) * 2 ** (7 * i)
    if ((byte & 0x80) === 0) {
      if (value > 2 ** 32 - 1) throw new Av1BitstreamError(`${what}: its size ${value} is beyond what AV1 allows`)
      return { value, next: at + i + 1 }
    }
  }
  throw new Av1BitstreamError(`${what}: its size field is longer than 8 bytes`)
}

const u16 = (b: Uint8Array, at: number): number => (b[at] as number) | ((b[at + 1] as number) << 8)
const u32 = (b: Uint8Array, at: number): number => u16(b, at) + u16(b, at + 2) * 0x10000

/**
 * Summarises an IVF file of AV1 as a chunk must be: a DKIF header for AV01, then temporal units,
 * one per IVF frame, each opening with a temporal delimiter and holding exactly one shown frame
 * (a frame coded with show_frame = 1, or a show_existing_frame header). The first holds a sequence
 * header and a shown key frame. `pictures` is then what a decoder outputs.
 *
 * Throws Av1BitstreamError naming the frame and OBU at fault. It never reads past `bytes` and
 * every loop advances through them, so hostile input costs at most one pass over it. Frame
 * headers are read as far as refresh_frame_flags only: tiles are not counted, so a frame header
 * OBU that repeats the one before it (before any tile group) is taken for the copy the
 * specification allows (7.5), not a new frame.
 */
export function summarizeIvfAv1 (bytes: Uint8Array): IvfAv1Summary {
  if (bytes.length < IVF_HEADER_BYTES) throw new Av1BitstreamError(`${bytes.length} bytes is shorter than an IVF header (${IVF_HEADER_BYTES})`)
  const tag = (at: number): string => String.fromCharCode(...bytes.subarray(at, at + 4))
  if (tag(0) !== 'DKIF') throw new Av1BitstreamError('not an IVF file (no DKIF signature)')
  const headerBytes = u16(bytes, 6)
  if (headerBytes !== IVF_HEADER_BYTES) throw new Av1BitstreamError(`the IVF header says it is ${headerBytes} bytes long; IVF headers are ${IVF_HEADER_BYTES}`)
  if (tag(8) !== 'AV01') throw new Av1BitstreamError(`the IVF file holds ${JSON.stringify(tag(8))}, not AV1 (AV01)`)
  const ivf = { width: u16(bytes, 12), height: u16(bytes, 14), rateNum: u32(bytes, 16), rateDen: u32(bytes, 20) }

  let sequence: SequenceHeader | undefined
  let sequenceHeader: Uint8Array | undefined
  let pictures = 0
  let hiddenFrames = 0
  let keyFrames = 0
  let firstIsKey = false
  /** frame_type of the frame in each of the 8 reference slots, so a shown existing frame's type is known. */
  const slotTypes: Array<number | undefined> = new Array(8).fill(undefined)

  let at = IVF_HEADER_BYTES
  while (at < bytes.length) {
    const tu = pictures
    const where = `temporal unit ${tu} (at byte ${at})`
    if (bytes.length - at < IVF_FRAME_HEADER_BYTES) throw new Av1BitstreamError(`${where}: the file ends inside an IVF frame header`)
    const size = u32(bytes, at)
    const start = at + IVF_FRAME_HEADER_BYTES
    if (size > bytes.length - start) throw new Av1BitstreamError(`${where}: its IVF frame says ${size} bytes but ${bytes.length - start} remain`)
    if (size === 0) throw new Av1BitstreamError(`${where}: an empty IVF frame`)
    const end = start + size

    let shown = 0
    let shownKey = false
    /** A frame header read whose tile groups have not come yet: a frame header OBU now would be its copy. */
    let awaitingTiles = false
    let obuIndex = 0
    let p = start
    while (p < end) {
      const what = `${where}, OBU ${obuIndex}`
      const header = bytes[p] as number
      if ((header & 0x80) !== 0) throw new Av1BitstreamError(`${what}: the forbidden bit is set`)
      const type = (header >> 3) & 0x0f
      const hasExtension = (header & 0x04) !== 0
      const hasSize = (header & 0x02) !== 0
      let q = p + 1
      if (hasExtension) {
        if (q >= end) throw new Av1BitstreamError(`${what}: its extension header runs past the end of its frame`)
        if ((bytes[q] as number) >> 3 !== 0) throw new Av1BitstreamError(`${what}: it belongs to a temporal or spatial layer other than the base one; a chunk has one layer`)
        q++
      }
      let payloadEnd: number
      if (hasSize) {
        const { value, next } = readLeb128(bytes, q, end, what)
        if (value > end - next) throw new Av1BitstreamError(`${what}: its size ${value} runs past the end of its frame (${end - next} bytes remain)`)
        q = next
        payloadEnd = q + value
      } else {
        payloadEnd = end
      }
      const payload = bytes.subarray(q, payloadEnd)
      if (obuIndex === 0 && type !== OBU_TEMPORAL_DELIMITER) throw new Av1BitstreamError(`${what}: a temporal unit must open with a temporal delimiter, found OBU type ${type}`)

      switch (type) {
        case OBU_TEMPORAL_DELIMITER:
          if (obuIndex !== 0) throw new Av1BitstreamError(`${what}: a second temporal delimiter inside one IVF frame`)
          break
        case OBU_SEQUENCE_HEADER: {
          if (sequenceHeader === undefined) {
            sequence = parseSequenceHeader(payload)
            sequenceHeader = payload.slice()
          } else if (!sameBytes(sequenceHeader, payload)) {
            throw new Av1BitstreamError(`${what}: a sequence header that differs from the first one`)
          }
          break
        }
        case OBU_FRAME_HEADER:
        case OBU_FRAME: {
          if (sequence === undefined) throw new Av1BitstreamError(`${what}: a frame before any sequence header`)
          if (type === OBU_FRAME_HEADER && awaitingTiles) break
          const frame = readFrameStart(payload, sequence, what)
          if (frame.showExistingFrame) {
            const slotType = slotTypes[frame.slot]
            if (slotType === undefined) throw new Av1BitstreamError(`${what}: it shows reference slot ${frame.slot}, which no frame has filled`)
            shown++
            // Showing a key frame loads it into every slot (7.21).
            if (slotType === KEY_FRAME) { shownKey = true; slotTypes.fill(KEY_FRAME) }
            awaitingTiles = false
            break
          }
          if (!firstIsKey) {
            if (frame.frameType !== KEY_FRAME || !frame.showFrame) throw new Av1BitstreamError(`${what}: the first frame is not a shown key frame, so the chunk does not decode on its own`)
            firstIsKey = true
          }
          if (frame.showFrame) { shown++; if (frame.frameType === KEY_FRAME) shownKey = true } else hiddenFrames++
          for (let slot = 0; slot < 8; slot++) if ((frame.refreshFrameFlags >> slot) & 1) slotTypes[slot] = frame.frameType
          awaitingTiles = type === OBU_FRAME_HEADER
          break
        }
        case OBU_TILE_GROUP:
          if (sequence === undefined) throw new Av1BitstreamError(`${what}: a tile group before any sequence header`)
          awaitingTiles = false
          break
        case OBU_REDUNDANT_FRAME_HEADER:
        case OBU_METADATA:
        case OBU_PADDING:
          break
        case OBU_TILE_LIST:
          throw new Av1BitstreamError(`${what}: a tile list OBU (large-scale tile coding), which a chunk never holds`)
        default:
          // Reserved types are to be ignored by decoders (6.2.2); a chunk has no use for them.
          throw new Av1BitstreamError(`${what}: reserved OBU type ${type}`)
      }
      obuIndex++
      p = payloadEnd
    }
    if (tu === 0 && sequence === undefined) throw new Av1BitstreamError(`${where}: the first temporal unit carries no sequence header`)
    if (!firstIsKey) throw new Av1BitstreamError(`${where}: the first temporal unit holds no frame`)
    if (shown !== 1) throw new Av1BitstreamError(`${where}: it holds ${shown} shown frames; a temporal unit shows exactly one`)
    if (shownKey) keyFrames++
    pictures++
    at = end
  }
  if (sequence === undefined || sequenceHeader === undefined || pictures === 0) throw new Av1BitstreamError('the IVF file holds no temporal unit')
  return {
    pictures,
    hiddenFrames,
    firstIsKey: true,
    keyFrames,
    width: sequence.width,
    height: sequence.height,
    profile: sequence.profile,
    bitDepth: sequence.bitDepth,
    chroma: sequence.chroma,
    colour: sequence.colour,
    filmGrain: sequence.filmGrain,
    sequenceHeader,
    ivf
  }
}

function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

const INTRA_ONLY_FRAME = 2
const SWITCH_FRAME = 3

type FrameStart = { showExistingFrame: true, slot: number } | { showExistingFrame: false, frameType: number, showFrame: boolean, refreshFrameFlags: number }

/**
 * The start of uncompressed_header() (5.9.2), as far as refresh_frame_flags: whether the frame is
 * shown, its type, and which reference slots it fills (what a later show_existing_frame shows).
 */
function readFrameStart (payload: Uint8Array, sequence: SequenceHeader, what: string): FrameStart {
  if (sequence.reducedStillPictureHeader) return { showExistingFrame: false, frameType: KEY_FRAME, showFrame: true, refreshFrameFlags: 0xff }
  const s = sequence.frames
  const r = new BitReader(payload, `${what}: the frame header`)
  const temporalPointInfo = s.decoderModelInfoPresent && !s.equalPictureInterval
  if (r.f(1) === 1) return { showExistingFrame: true, slot: r.f(3) }
  const frameType = r.f(2)
  const frameIsIntra = frameType === INTRA_ONLY_FRAME || frameType === KEY_FRAME
  const showFrame = r.f(1) === 1
  if (showFrame && temporalPointInfo) r.f(s.framePresentationTimeLength)
  if (!showFrame) r.f(1) // showable_frame
  const everySlot = frameType === SWITCH_FRAME || (frameType === KEY_FRAME && showFrame)
  const errorResilient = everySlot ? true : r.f(1) === 1
  r.f(1) // disable_cdf_update
  const allowScreenContentTools = s.forceScreenContentTools === 2 ? r.f(1) : s.forceScreenContentTools
  if (allowScreenContentTools === 1 && s.forceIntegerMv === 2) r.f(1) // force_integer_mv
  if (s.frameIdLength !== undefined) r.f(s.frameIdLength) // current_frame_id
  if (frameType !== SWITCH_FRAME) r.f(1) // frame_size_override_flag
  r.f(s.orderHintBits) // order_hint
  if (!frameIsIntra && !errorResilient) r.f(3) // primary_ref_frame
  if (s.decoderModelInfoPresent && r.f(1) === 1 && s.decoderModelForOp) { // buffer_removal_time_present_flag
    // Only the base layer is let through (see the OBU extension check), so temporal_id and spatial_id are 0.
    const idc = s.operatingPointIdc
    if (idc === 0 || ((idc & 1) === 1 && ((idc >> 8) & 1) === 1)) r.f(s.bufferRemovalTimeLength)
  }
  const refreshFrameFlags = everySlot ? 0xff : r.f(8)
  return { showExistingFrame: false, frameType, showFrame, refreshFrameFlags }
}
