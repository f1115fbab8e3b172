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

/** OBU types (6.2.2). */
export const AV1_OBU = {
  SEQUENCE_HEADER: 1, TEMPORAL_DELIMITER: 2, FRAME_HEADER: 3, TILE_GROUP: 4, METADATA: 5, FRAME: 6, REDUNDANT_FRAME_HEADER: 7, TILE_LIST: 8, PADDING: 15
} as const
const {
  SEQUENCE_HEADER: OBU_SEQUENCE_HEADER, TEMPORAL_DELIMITER: OBU_TEMPORAL_DELIMITER, FRAME_HEADER: OBU_FRAME_HEADER, TILE_GROUP: OBU_TILE_GROUP, METADATA: OBU_METADATA,
  FRAME: OBU_FRAME, REDUNDANT_FRAME_HEADER: OBU_REDUNDANT_FRAME_HEADER, TILE_LIST: OBU_TILE_LIST, PADDING: OBU_PADDING
} = AV1_OBU

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

/**
 * Every syntax element of a sequence header (5.5) read, by its name in the specification
 * (`seq_level_idx[0]`, `enable_cdef`…): what the structure check compares with the job's reference.
 */
export type Av1SequenceSyntax = Record<string, number>

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
  syntax: Av1SequenceSyntax
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

/** A BitReader that writes down every syntax element it reads under its name. */
class SyntaxReader {
  readonly syntax: Av1SequenceSyntax = {}
  constructor (private readonly r: BitReader) {}
  f (name: string, n: number): number {
    const v = this.r.f(n)
    this.syntax[name] = v
    return v
  }

  flag (name: string): boolean { return this.f(name, 1) === 1 }
  uvlc (name: string): number {
    const v = this.r.uvlc()
    this.syntax[name] = v
    return v
  }
}

/** timing_info, decoder_model_info and the operating points (5.5.1, reduced_still_picture_header off). */
function readOperatingPoints (r: SyntaxReader, frames: SequenceHeader['frames']): void {
  let bufferDelayLength = 0
  if (r.flag('timing_info_present_flag')) {
    r.f('num_units_in_display_tick', 32); r.f('time_scale', 32)
    frames.equalPictureInterval = r.flag('equal_picture_interval')
    if (frames.equalPictureInterval) r.uvlc('num_ticks_per_picture_minus_1')
    frames.decoderModelInfoPresent = r.flag('decoder_model_info_present_flag')
    if (frames.decoderModelInfoPresent) {
      bufferDelayLength = r.f('buffer_delay_length_minus_1', 5) + 1
      r.f('num_units_in_decoding_tick', 32)
      frames.bufferRemovalTimeLength = r.f('buffer_removal_time_length_minus_1', 5) + 1
      frames.framePresentationTimeLength = r.f('frame_presentation_time_length_minus_1', 5) + 1
    }
  }
  const initialDisplayDelayPresent = r.flag('initial_display_delay_present_flag')
  const operatingPoints = r.f('operating_points_cnt_minus_1', 5) + 1
  // Scalable streams (several operating points) decode to different pictures per operating point; no encoder swarm runs writes one.
  if (operatingPoints !== 1) throw new Av1BitstreamError(`the sequence header describes ${operatingPoints} operating points (a scalable stream); a chunk has one`)
  frames.operatingPointIdc = r.f('operating_point_idc[0]', 12)
  if (r.f('seq_level_idx[0]', 5) > 7) r.f('seq_tier[0]', 1)
  if (frames.decoderModelInfoPresent) {
    frames.decoderModelForOp = r.flag('decoder_model_present_for_this_op[0]')
    if (frames.decoderModelForOp) { r.f('decoder_buffer_delay[0]', bufferDelayLength); r.f('encoder_buffer_delay[0]', bufferDelayLength); r.f('low_delay_mode_flag[0]', 1) }
  }
  if (initialDisplayDelayPresent && r.flag('initial_display_delay_present_for_this_op[0]')) r.f('initial_display_delay_minus_1[0]', 4)
}

/** The frame size, frame ids and the coding tools the sequence enables (5.5.1). */
function readSizeAndTools (r: SyntaxReader, reduced: boolean, frames: SequenceHeader['frames']): { width: number, height: number } {
  const widthBits = r.f('frame_width_bits_minus_1', 4) + 1
  const heightBits = r.f('frame_height_bits_minus_1', 4) + 1
  const width = r.f('max_frame_width_minus_1', widthBits) + 1
  const height = r.f('max_frame_height_minus_1', heightBits) + 1
  if (!reduced && r.flag('frame_id_numbers_present_flag')) {
    const delta = r.f('delta_frame_id_length_minus_2', 4) + 2
    frames.frameIdLength = r.f('additional_frame_id_length_minus_1', 3) + 1 + delta
  }
  r.f('use_128x128_superblock', 1); r.f('enable_filter_intra', 1); r.f('enable_intra_edge_filter', 1)
  if (!reduced) {
    r.f('enable_interintra_compound', 1); r.f('enable_masked_compound', 1); r.f('enable_warped_motion', 1); r.f('enable_dual_filter', 1)
    const orderHint = r.flag('enable_order_hint')
    if (orderHint) { r.f('enable_jnt_comp', 1); r.f('enable_ref_frame_mvs', 1) }
    frames.forceScreenContentTools = r.flag('seq_choose_screen_content_tools') ? 2 : r.f('seq_force_screen_content_tools', 1)
    if (frames.forceScreenContentTools > 0) frames.forceIntegerMv = r.flag('seq_choose_integer_mv') ? 2 : r.f('seq_force_integer_mv', 1)
    if (orderHint) frames.orderHintBits = r.f('order_hint_bits_minus_1', 3) + 1
  }
  r.f('enable_superres', 1); r.f('enable_cdef', 1); r.f('enable_restoration', 1)
  return { width, height }
}

/** color_config (5.5.2): depth, subsampling and colour description. */
function readColourConfig (r: SyntaxReader, profile: number): Pick<SequenceHeader, 'bitDepth' | 'chroma' | 'colour'> & { mono: boolean } {
  const highBitdepth = r.flag('high_bitdepth')
  const bitDepth: 8 | 10 | 12 = profile === 2 && highBitdepth ? (r.flag('twelve_bit') ? 12 : 10) : highBitdepth ? 10 : 8
  const mono = profile === 1 ? false : r.flag('mono_chrome')
  let primaries = 2; let transfer = 2; let matrix = 2
  if (r.flag('color_description_present_flag')) { primaries = r.f('color_primaries', 8); transfer = r.f('transfer_characteristics', 8); matrix = r.f('matrix_coefficients', 8) }
  let fullRange: boolean
  let subX = 1; let subY = 1
  let chromaSamplePosition = 0
  if (mono) {
    fullRange = r.flag('color_range')
  } else if (primaries === 1 && transfer === 13 && matrix === 0) {
    // sRGB: 4:4:4, full range, no bits for either.
    fullRange = true; subX = 0; subY = 0
  } else {
    fullRange = r.flag('color_range')
    if (profile === 1) { subX = 0; subY = 0 } else if (profile === 2) {
      if (bitDepth === 12) { subX = r.f('subsampling_x', 1); subY = subX === 1 ? r.f('subsampling_y', 1) : 0 } else { subX = 1; subY = 0 }
    }
    if (subX === 1 && subY === 1) chromaSamplePosition = r.f('chroma_sample_position', 2)
  }
  if (!mono) r.f('separate_uv_delta_q', 1)
  const chroma = mono ? '400' : subX === 1 && subY === 1 ? '420' : subX === 1 ? '422' : subY === 0 ? '444' : undefined
  if (chroma === undefined) throw new Av1BitstreamError('the sequence header codes chroma subsampled vertically only, which AV1 does not allow')
  return { bitDepth, chroma, mono, colour: { primaries, transfer, matrix, fullRange, chromaSamplePosition } }
}

/** sequence_header_obu (5.5). */
function parseSequenceHeader (payload: Uint8Array): SequenceHeader {
  const r = new SyntaxReader(new BitReader(payload, 'the sequence header'))
  const profile = r.f('seq_profile', 3)
  if (profile > 2) throw new Av1BitstreamError(`the sequence header names profile ${profile}; AV1 has profiles 0 to 2`)
  r.f('still_picture', 1)
  const reducedStillPictureHeader = r.flag('reduced_still_picture_header')
  const frames: SequenceHeader['frames'] = {
    equalPictureInterval: false, decoderModelInfoPresent: false, bufferRemovalTimeLength: 0, framePresentationTimeLength: 0,
    decoderModelForOp: false, operatingPointIdc: 0, frameIdLength: undefined, forceScreenContentTools: 2, forceIntegerMv: 2, orderHintBits: 0
  }
  if (reducedStillPictureHeader) r.f('seq_level_idx[0]', 5)
  else readOperatingPoints(r, frames)
  const { width, height } = readSizeAndTools(r, reducedStillPictureHeader, frames)
  const { bitDepth, chroma, colour } = readColourConfig(r, profile)
  const filmGrain = r.flag('film_grain_params_present')
  return { profile, reducedStillPictureHeader, width, height, bitDepth, chroma, colour, filmGrain, syntax: r.syntax, frames }
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

/** The IVF file header: a DKIF signature, its own length and AV01; what it states besides. */
function readIvfHeader (bytes: Uint8Array): IvfAv1Summary['ivf'] {
  if (bytes.length < IVF_HEADER_BYTES) throw new Av1BitstreamError(`${bytes.length} bytes is shorter than an IVF header (${IVF_HEADER_BYTES})`)
  const tag = (at: number): string => String.fromCharCode(...bytes.subarray(at, at + 4))
  if (tag(0) !== 'DKIF') throw new Av1BitstreamError('not an IVF file (no DKIF signature)')
  const headerBytes = u16(bytes, 6)
  if (headerBytes !== IVF_HEADER_BYTES) throw new Av1BitstreamError(`the IVF header says it is ${headerBytes} bytes long; IVF headers are ${IVF_HEADER_BYTES}`)
  if (tag(8) !== 'AV01') throw new Av1BitstreamError(`the IVF file holds ${JSON.stringify(tag(8))}, not AV1 (AV01)`)
  return { width: u16(bytes, 12), height: u16(bytes, 14), rateNum: u32(bytes, 16), rateDen: u32(bytes, 20) }
}

/** One IVF frame: a temporal unit's bytes [start, end), and how messages name it. */
interface IvfFrame { start: number, end: number, where: string }

/** The IVF frames after the header, each one's size checked against the bytes really there. */
function * ivfFrames (bytes: Uint8Array): Generator<IvfFrame> {
  for (let at = IVF_HEADER_BYTES, index = 0; at < bytes.length; index++) {
    const where = `temporal unit ${index} (at byte ${at})`
    if (bytes.length - at < IVF_FRAME_HEADER_BYTES) throw new Av1BitstreamError(`${where}: the file ends inside an IVF frame header`)
    const size = u32(bytes, at)
    const start = at + IVF_FRAME_HEADER_BYTES
    if (size > bytes.length - start) throw new Av1BitstreamError(`${where}: its IVF frame says ${size} bytes but ${bytes.length - start} remain`)
    if (size === 0) throw new Av1BitstreamError(`${where}: an empty IVF frame`)
    yield { start, end: start + size, where }
    at = start + size
  }
}

/** An OBU of a temporal unit: its type, its payload, its place in the unit and how messages name it. */
export interface Av1Obu { type: number, payload: Uint8Array, index: number, what: string }

/** The OBUs of one temporal unit (5.3): headers and sizes checked, base layer only, a temporal delimiter first. */
function * obusOf (bytes: Uint8Array, frame: IvfFrame): Generator<Av1Obu> {
  const { end, where } = frame
  for (let p = frame.start, index = 0; p < end; index++) {
    const what = `${where}, OBU ${index}`
    const header = bytes[p] as number
    if ((header & 0x80) !== 0) throw new Av1BitstreamError(`${what}: the forbidden bit is set`)
    const type = (header >> 3) & 0x0f
    let q = p + 1
    if ((header & 0x04) !== 0) { // obu_extension_flag
      if (q >= end) throw new Av1BitstreamError(`${what}: its extension header runs past the end of its frame`)
      if ((bytes[q] as number) >> 3 !== 0) throw new Av1BitstreamError(`${what}: it belongs to a temporal or spatial layer other than the base one; a chunk has one layer`)
      q++
    }
    let payloadEnd = end
    if ((header & 0x02) !== 0) { // obu_has_size_field
      const { value, next } = readLeb128(bytes, q, end, what)
      if (value > end - next) throw new Av1BitstreamError(`${what}: its size ${value} runs past the end of its frame (${end - next} bytes remain)`)
      q = next
      payloadEnd = q + value
    }
    if (index === 0 && type !== OBU_TEMPORAL_DELIMITER) throw new Av1BitstreamError(`${what}: a temporal unit must open with a temporal delimiter, found OBU type ${type}`)
    yield { type, payload: bytes.subarray(q, payloadEnd), index, what }
    p = payloadEnd
  }
}

/** The stream read temporal unit after temporal unit: the sequence header, the frames shown, the reference slots. */
class StreamReader {
  sequence: SequenceHeader | undefined
  sequenceHeader: Uint8Array | undefined
  pictures = 0
  hiddenFrames = 0
  keyFrames = 0
  firstIsKey = false
  /** frame_type of the frame in each of the 8 reference slots, so a shown existing frame's type is known. */
  private readonly slotTypes: Array<number | undefined> = new Array(8).fill(undefined)
  private shown = 0
  private shownKey = false
  /** A frame header read whose tile groups have not come yet: a frame header OBU now would be its copy. */
  private awaitingTiles = false

  readTemporalUnit (bytes: Uint8Array, frame: IvfFrame, onObu?: (obu: Av1Obu) => void): void {
    this.shown = 0
    this.shownKey = false
    this.awaitingTiles = false
    for (const obu of obusOf(bytes, frame)) {
      this.readObu(obu)
      onObu?.(obu)
    }
    const { where } = frame
    if (this.sequence === undefined) throw new Av1BitstreamError(`${where}: the first temporal unit carries no sequence header`)
    if (!this.firstIsKey) throw new Av1BitstreamError(`${where}: the first temporal unit holds no frame`)
    if (this.shown !== 1) throw new Av1BitstreamError(`${where}: it holds ${this.shown} shown frames; a temporal unit shows exactly one`)
    if (this.shownKey) this.keyFrames++
    this.pictures++
  }

  private readObu ({ type, payload, index, what }: Av1Obu): void {
    switch (type) {
      case OBU_TEMPORAL_DELIMITER:
        if (index !== 0) throw new Av1BitstreamError(`${what}: a second temporal delimiter inside one IVF frame`)
        break
      case OBU_SEQUENCE_HEADER:
        if (this.sequenceHeader === undefined) {
          this.sequence = parseSequenceHeader(payload)
          this.sequenceHeader = payload.slice()
        } else if (!sameBytes(this.sequenceHeader, payload)) {
          throw new Av1BitstreamError(`${what}: a sequence header that differs from the first one`)
        }
        break
      case OBU_FRAME_HEADER:
      case OBU_FRAME:
        this.readFrame(type, payload, what)
        break
      case OBU_TILE_GROUP:
        if (this.sequence === undefined) throw new Av1BitstreamError(`${what}: a tile group before any sequence header`)
        this.awaitingTiles = false
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
  }

  private readFrame (type: number, payload: Uint8Array, what: string): void {
    if (this.sequence === undefined) throw new Av1BitstreamError(`${what}: a frame before any sequence header`)
    if (type === OBU_FRAME_HEADER && this.awaitingTiles) return
    const frame = readFrameStart(payload, this.sequence, what)
    if (frame.showExistingFrame) {
      const slotType = this.slotTypes[frame.slot]
      if (slotType === undefined) throw new Av1BitstreamError(`${what}: it shows reference slot ${frame.slot}, which no frame has filled`)
      this.shown++
      // Showing a key frame loads it into every slot (7.21).
      if (slotType === KEY_FRAME) { this.shownKey = true; this.slotTypes.fill(KEY_FRAME) }
      this.awaitingTiles = false
      return
    }
    if (!this.firstIsKey) {
      if (frame.frameType !== KEY_FRAME || !frame.showFrame) throw new Av1BitstreamError(`${what}: the first frame is not a shown key frame, so the chunk does not decode on its own`)
      this.firstIsKey = true
    }
    if (frame.showFrame) { this.shown++; if (frame.frameType === KEY_FRAME) this.shownKey = true } else this.hiddenFrames++
    for (let slot = 0; slot < 8; slot++) if ((frame.refreshFrameFlags >> slot) & 1) this.slotTypes[slot] = frame.frameType
    this.awaitingTiles = type === OBU_FRAME_HEADER
  }
}

/** Reads a whole IVF file of AV1, handing every OBU to `onObu` once it is read. */
function readIvfAv1 (bytes: Uint8Array, onObu?: (obu: Av1Obu) => void): IvfAv1Summary & { sequenceSyntax: Av1SequenceSyntax } {
  const ivf = readIvfHeader(bytes)
  const stream = new StreamReader()
  for (const frame of ivfFrames(bytes)) stream.readTemporalUnit(bytes, frame, onObu)
  const { sequence, sequenceHeader, pictures } = stream
  if (sequence === undefined || sequenceHeader === undefined || pictures === 0) throw new Av1BitstreamError('the IVF file holds no temporal unit')
  return {
    pictures,
    hiddenFrames: stream.hiddenFrames,
    firstIsKey: true,
    keyFrames: stream.keyFrames,
    width: sequence.width,
    height: sequence.height,
    profile: sequence.profile,
    bitDepth: sequence.bitDepth,
    chroma: sequence.chroma,
    colour: sequence.colour,
    filmGrain: sequence.filmGrain,
    sequenceHeader,
    sequenceSyntax: sequence.syntax,
    ivf
  }
}

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
  const { sequenceSyntax: _, ...summary } = readIvfAv1(bytes)
  return summary
}

/** metadata_type (6.7.1): what a metadata OBU carries. */
export const AV1_METADATA = { HDR_CLL: 1, HDR_MDCV: 2, SCALABILITY: 3, ITUT_T35: 4, TIMECODE: 5 } as const

/**
 * What an AV1 chunk's structure says beyond its pictures, for the structure check (structure.ts),
 * as describeHevcStructure for HEVC: its sequence header's syntax, OBU types, metadata types and bytes.
 */
export interface Av1Structure {
  codec: 'av1'
  /** Why the bytes are no AV1 chunk at all (summarizeIvfAv1's refusal); nothing else is read then. */
  invalid?: string
  /** The sequence header's syntax (byte-identical wherever it repeats, or the file is invalid). */
  sequence?: Av1SequenceSyntax
  /** What the sequence header makes of it: the format as messages name it. */
  format?: Pick<IvfAv1Summary, 'profile' | 'bitDepth' | 'chroma'>
  obuTypes: number[]
  /** metadata_type of every metadata OBU. */
  metadataTypes: number[]
  /** Bytes of metadata and padding OBUs: what a liar could fill a result with. */
  metadataBytes: number
  paddingBytes: number
}

export function describeAv1Structure (bytes: Uint8Array): Av1Structure {
  const obuTypes = new Set<number>()
  const metadataTypes = new Set<number>()
  let metadataBytes = 0
  let paddingBytes = 0
  const onObu = ({ type, payload, what }: Av1Obu): void => {
    obuTypes.add(type)
    if (type === OBU_METADATA) {
      metadataTypes.add(readLeb128(payload, 0, payload.length, `${what}: metadata_type`).value)
      metadataBytes += payload.length
    } else if (type === OBU_PADDING) paddingBytes += payload.length
  }
  const sorted = (s: Set<number>): number[] => [...s].sort((a, b) => a - b)
  try {
    const { sequenceSyntax, profile, bitDepth, chroma } = readIvfAv1(bytes, onObu)
    return { codec: 'av1', sequence: sequenceSyntax, format: { profile, bitDepth, chroma }, obuTypes: sorted(obuTypes), metadataTypes: sorted(metadataTypes), metadataBytes, paddingBytes }
  } catch (err) {
    if (!(err instanceof Av1BitstreamError)) throw err
    return { codec: 'av1', invalid: err.message, obuTypes: sorted(obuTypes), metadataTypes: sorted(metadataTypes), metadataBytes, paddingBytes }
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

/**
 * IVF files of one stream as one (the chunks of a job, a merge's video; the picture check's own
 * encodes): the first file's header, then every file's frames, their timestamps counted on from
 * the frames before, and the header's frame count the total. Each file is read as summarizeIvfAv1
 * reads its framing (a bad size throws Av1BitstreamError); the OBUs are copied as they are.
 */
export class IvfJoiner {
  private header: Buffer | undefined
  private frames = 0

  /** The bytes to write for the next file: its frames, after the header if it is the first. */
  push (file: Uint8Array): Buffer {
    readIvfHeader(file)
    const parts: Buffer[] = []
    if (this.header === undefined) {
      this.header = Buffer.from(file.subarray(0, IVF_HEADER_BYTES))
      parts.push(this.header)
    }
    for (const { start, end } of ivfFrames(file)) {
      const frameHeader = Buffer.alloc(IVF_FRAME_HEADER_BYTES)
      frameHeader.writeUInt32LE(end - start, 0)
      frameHeader.writeBigUInt64LE(BigInt(this.frames++), 4)
      parts.push(frameHeader, Buffer.from(file.buffer, file.byteOffset + start, end - start))
    }
    return Buffer.concat(parts)
  }

  /** The header's frame count field (bytes 24-27): where it is and what it must say now. */
  frameCountField (): { offset: number, bytes: Buffer } {
    const bytes = Buffer.alloc(4)
    bytes.writeUInt32LE(this.frames, 0)
    return { offset: 24, bytes }
  }
}

/** IVF files joined in memory (IvfJoiner). */
export function joinIvf (files: Uint8Array[]): Buffer {
  const joiner = new IvfJoiner()
  const joined = Buffer.concat(files.map(f => joiner.push(f)))
  const { offset, bytes } = joiner.frameCountField()
  bytes.copy(joined, offset)
  return joined
}
