import type { HdrMetadata, Rational, VideoColour } from '../probe.js'

/**
 * What an encoder is to the pipeline. Splitting, verification and merge do not change with the
 * encoder; what does is here: which options a stranger may pass it, its command line for one
 * chunk, how it is told the source's colour, what it prints while it works, and what its settings
 * hold in memory. Another encoder (x265, SVT-AV1, aomenc) is another implementation of this
 * interface, registered in `index.ts`; nothing else forks.
 */

/** Every encoder a job may name. Only those `encoderFor` knows are implemented. */
export const ENCODER_IDS = ['x264', 'x265', 'svt-av1', 'aomenc'] as const
export type EncoderId = typeof ENCODER_IDS[number]

/**
 * Settings as the only form they take below a trust boundary: parsed and allowlisted by their
 * encoder (`Encoder.parseSettings`), frozen, and made nowhere else (encodeChunk refuses any
 * value its encoder did not parse, settings.ts `isParsedSettings`).
 */
export interface EncoderSettings {
  readonly encoder: EncoderId
  /** The settings as written: by the user, or as an originator sent them. */
  readonly raw: string
  /** Normalised argument array for the encoder (long option names, values as separate words). */
  readonly args: readonly string[]
  /** Bit depth the encoder will produce with these settings. */
  readonly outputDepth: 8 | 10
  readonly profile?: string
}

/** What one chunk's command line needs besides the settings. */
export interface ChunkArgsOptions {
  /** Nominal rate of the source, so every chunk's rate control sees the same frame rate. */
  frameRate: Rational
  frameCount: number
  /** The encoder's threads; unset lets it pick. */
  threads?: number
  outputPath: string
  /**
   * The y4m the encoder reads: a file (the structure check's reference, the picture check's own
   * encode), or, unset, stdin (a chunk, fed by the decoder).
   */
  inputPath?: string
  /**
   * How full the VBV starts, where the settings set one (x264 and x265 `--vbv-init`; the AV1
   * encoders have no such option and ignore it). Unset: the encoder's default.
   */
  vbvInit?: number
}

/** Progress an encoder printed: frames done so far and its rate. */
export interface EncoderProgress {
  framesDone: number
  fps: number
}

/** Pictures an encoder holds for these settings, and their size in samples: memory.ts's estimate is made of them. */
export interface EncoderMemoryInputs {
  /** Full pictures held for the lookahead, as B-frames and as references. */
  lookahead: number
  bframes: number
  ref: number
  /** Samples a pixel of the pictures it holds (1.5 for 4:2:0, 2 for 4:2:2, 3 for 4:4:4). */
  samplesPerPixel: number
  bytesPerSample: number
}

/**
 * The raw bitstream an encoder writes for a chunk, named as ffmpeg's demuxer for it: a peer's
 * bytes are always read with this format forced (ffmpeg never guesses a stranger's format).
 * x264: Annex B H.264; x265: Annex B HEVC; the AV1 encoders: IVF.
 */
export type ChunkBitstream = 'h264' | 'hevc' | 'ivf'

/** The bitstream's codec as ffprobe names it, and as the output's video track carries it. */
export type OutputCodec = 'h264' | 'hevc' | 'av1'

export interface Encoder {
  readonly id: EncoderId
  /** Its command-line program, run through tools.ts. */
  readonly binary: string
  /** What `chunkArgs` writes to `outputPath`. */
  readonly bitstream: ChunkBitstream
  readonly codec: OutputCodec
  /** A chunk file's extension, with its dot. */
  readonly fileExtension: string
  /** The arguments that make the binary print its version (and exit 0), and the version found in that output. */
  readonly versionArgs: readonly string[]
  parseVersion: (output: string) => string | undefined
  /**
   * Parses a settings string without a shell and checks it against this encoder's allowlist of
   * pure encoding options; throws a SettingsError naming the first refused option.
   */
  parseSettings: (raw: string) => EncoderSettings
  /**
   * Why this encoder cannot encode a source whose frames come as this y4m pixel format (encode.ts
   * y4mPixFmt), for the user; undefined when it can. encodeChunk checks it before it starts; an
   * originator should check it when it admits a job.
   */
  refuseSource: (y4mOfSource: string) => string | undefined
  /** The y4m pixel format the decoder feeds the encoder, given the source's: what the encoder needs to write the settings' output. */
  inputPixFmt: (settings: EncoderSettings, y4mOfSource: string) => string
  /**
   * The command line for one chunk: y4m from `inputPath` (stdin by default), the raw bitstream
   * written to `outputPath`.
   */
  chunkArgs: (settings: EncoderSettings, o: ChunkArgsOptions) => string[]
  /**
   * Options stating the source's colour description and SAR, and its HDR10 mastering display and
   * content light level where the encoder can write them, for each the source states and the
   * settings leave open.
   */
  sourceColourArgs: (colour: VideoColour, settings: EncoderSettings, hdr?: HdrMetadata) => string[]
  /** The colour fields the settings set themselves: the output follows them, not the source. */
  colourSetBy: (settings: EncoderSettings) => Set<keyof VideoColour>
  /** The range the encode states, for the container to state as well; undefined when left to the encoder. */
  statedRange: (settings: EncoderSettings) => 'tv' | 'pc' | undefined
  /** The latest progress in a piece of the encoder's stderr, if it holds any. */
  parseProgress: (stderr: string) => EncoderProgress | undefined
  /** The frames the encoder says it wrote, from its whole stderr; undefined when it does not say. */
  encodedFrames: (stderr: string) => number | undefined
  /**
   * What the encoder prints when it has failed but will never exit by itself: the encode is killed
   * when its stderr says this, rather than holding the worker's slot for ever.
   */
  hangsAfter?: RegExp
  memoryInputs: (settings: EncoderSettings) => EncoderMemoryInputs
  /** Bytes a pixel of a raw output picture takes (output chroma format and depth): what bounds an honest result's size. */
  rawBytesPerPixel: (settings: EncoderSettings) => number
}
