import type { VideoColour } from '../probe.js'
import { parseAllowlisted, sealSettings } from '../settings.js'
import { AOMENC_MATRIX, AOMENC_OPTIONS, AOMENC_PRIMARIES, AOMENC_TRANSFER, aomencTakesValue } from './aomenc-options.js'
import { AV1_IVF, av1MemoryInputs, av1RefuseSource, CICP_MATRIX, CICP_PRIMARIES, CICP_TRANSFER, lastMatch, lastValue, optionsGiven } from './common.js'
import type { ChunkArgsOptions, Encoder, EncoderMemoryInputs, EncoderProgress, EncoderSettings } from './types.js'

/**
 * Parses and checks an aomenc settings string (the allowlist: aomenc-options.ts). Throws
 * SettingsError naming the first refused option. Runs wherever settings cross a trust boundary,
 * as x264's does.
 */
export function parseAomencSettings (raw: string): EncoderSettings {
  const { args, values } = parseAllowlisted(raw, AOMENC_OPTIONS)
  const outputDepth = values.get('bit-depth') === '10' ? 10 : 8
  return sealSettings({ encoder: 'aomenc', raw, args, outputDepth })
}

// ---- colour ------------------------------------------------------------------------------------

/** aomenc's name of each CICP code point it takes (its --help's lists, in code point order). */
function namesByCode (codes: number[], names: string[]): Map<number, string> {
  return new Map(codes.map((code, i) => [code, names[i] as string]))
}
const PRIMARIES_BY_CODE = namesByCode([1, 2, 6, 4, 5, 7, 8, 9, 10, 11, 12, 22], AOMENC_PRIMARIES)
const TRANSFER_BY_CODE = namesByCode([2, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 17], AOMENC_TRANSFER)
const MATRIX_BY_CODE = namesByCode([0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], AOMENC_MATRIX)
/**
 * The aomenc option that states each colour field. Range and chroma position have none that works
 * here: aomenc takes both from the y4m it reads (XCOLORRANGE, C420mpeg2), which the decoder writes
 * from the source's, and refuses --chroma-sample-position that the y4m's chroma tag does not match.
 */
const COLOUR_OPTIONS: Partial<Record<keyof VideoColour, string>> = {
  primaries: 'color-primaries', transfer: 'transfer-characteristics', matrix: 'matrix-coefficients'
}

function sourceColourArgs (colour: VideoColour, settings: EncoderSettings): string[] {
  const set = optionsGiven(settings)
  const args: string[] = []
  const carry = (option: string, value: string | undefined): void => {
    if (value !== undefined && !set.has(option)) args.push(`--${option}`, value)
  }
  const code = (table: Record<string, number>, name: string | undefined): number | undefined => name !== undefined ? table[name] : undefined
  carry('color-primaries', PRIMARIES_BY_CODE.get(code(CICP_PRIMARIES, colour.primaries) ?? -1))
  carry('transfer-characteristics', TRANSFER_BY_CODE.get(code(CICP_TRANSFER, colour.transfer) ?? -1))
  carry('matrix-coefficients', MATRIX_BY_CODE.get(code(CICP_MATRIX, colour.matrix) ?? -1))
  return args
}

function colourSetBy (settings: EncoderSettings): Set<keyof VideoColour> {
  const set = optionsGiven(settings)
  return new Set((Object.keys(COLOUR_OPTIONS) as Array<keyof VideoColour>).filter(k => set.has(COLOUR_OPTIONS[k] as string)))
}

// ---- one chunk ---------------------------------------------------------------------------------

/** Parsed settings hold `--name value`; aomenc reads a value only as `--name=value`. */
function aomencArgs (args: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < args.length; i++) {
    const word = args[i] as string
    out.push(aomencTakesValue(word.slice(2)) ? `${word}=${args[++i] as string}` : word)
  }
  return out
}

function chunkArgs (settings: EncoderSettings, o: ChunkArgsOptions): string[] {
  return [
    '--ivf',
    // aomenc's default is two passes, which read the input twice: from a pipe it writes nothing.
    '--passes=1',
    ...aomencArgs(settings.args),
    ...(o.threads !== undefined ? [`--threads=${o.threads}`] : []),
    /*
     * A key frame at the chunk's start and none inside it, as Av1an encodes its chunks
     * (`--disable-kf --kf-max-dist=9999`): the chunk boundaries already sit at the source's key
     * frames, and a key frame aomenc adds mid-chunk cuts its golden-frame group short.
     */
    '--disable-kf', `--kf-max-dist=${Math.max(9999, o.frameCount)}`,
    `--fps=${o.frameRate.num}/${o.frameRate.den}`,
    `--limit=${o.frameCount}`,
    // On a warning aomenc otherwise asks whether to go on, and reads the answer from stdin: the y4m.
    '--disable-warning-prompt',
    '-o', o.outputPath,
    o.inputPath ?? '-'
  ]
}

// "Pass 1/1 frame   36/1       2827B  422197 us 85.27 fps [ETA  0:00:16]" while it works; below 1 fps it counts frames a minute ("0.50 fpm").
const PROGRESS_RE = /Pass \d+\/\d+ frame\s+\d+\/(\d+)\s[^\r\n]*?\(?([\d.]+) (fps|fpm)/g

/** Frames written so far (aomenc's second count: its first is frames read, up to --lag-in-frames ahead). */
function parseProgress (stderr: string): EncoderProgress | undefined {
  const latest = lastMatch(PROGRESS_RE, stderr)
  if (latest === undefined) return undefined
  const rate = Number(latest[2])
  return { framesDone: Number(latest[1]), fps: latest[3] === 'fpm' ? rate / 60 : rate }
}

/** Its closing line: "Pass 1/1 frame   40/40     22959B    4591b/f  110184b/s 2267803 us (17.64 fps)". */
const SUMMARY_RE = /Pass \d+\/\d+ frame\s+\d+\/(\d+)\s+\d+B\s+\d+b\/f/g

function encodedFrames (stderr: string): number | undefined {
  const summary = lastMatch(SUMMARY_RE, stderr)
  return summary === undefined ? undefined : Number(summary[1])
}

// ---- memory and size ---------------------------------------------------------------------------

/** libaom 3.6's lag in frames when none is given (good quality). */
const DEFAULT_LAG_IN_FRAMES = 35

function memoryInputs (settings: EncoderSettings): EncoderMemoryInputs {
  const lag = lastValue(settings, 'lag-in-frames')
  // Its alt-refs are among the lagged frames, not held beside them.
  return av1MemoryInputs(settings, { lookahead: lag !== undefined ? Number(lag) : DEFAULT_LAG_IN_FRAMES, bframes: 0 })
}

export const aomenc: Encoder = {
  id: 'aomenc',
  binary: 'aomenc',
  ...AV1_IVF,
  versionArgs: ['--help'],
  // Its --help ends with the encoders built in: "av1    - AOMedia Project AV1 Encoder v3.6.0 (default)" (it has no --version).
  parseVersion: (output) => /AOMedia Project AV1 Encoder v?(\S+)/.exec(output)?.[1],
  parseSettings: parseAomencSettings,
  refuseSource: (y4mOfSource) => av1RefuseSource('aomenc', y4mOfSource),
  chunkArgs,
  sourceColourArgs,
  colourSetBy,
  // aomenc has no option for the range: it codes the y4m's (the source's), and nothing the settings say.
  statedRange: () => undefined,
  parseProgress,
  encodedFrames,
  memoryInputs
}
