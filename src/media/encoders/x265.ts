import { SettingsError } from '../errors.js'
import { lastValue, optionsGiven, parseAllowlisted, sealSettings } from '../settings.js'
import type { ChunkArgsOptions, Encoder, EncoderMemoryInputs, EncoderSettings } from './types.js'
import { encodedFrames, parseProgress, vbvInitArgs } from './x264.js'
import { X265_8BIT_PROFILES, X265_OPTIONS } from './x265-options.js'
import { colourArgsFor, colourFieldsSetBy, MATRIX, type ColourOptions } from './vui-names.js'

/**
 * Parses and checks an x265 settings string (the allowlist: x265-options.ts). Throws SettingsError
 * naming the first refused option. Runs where x264's parser runs: wherever settings cross a trust
 * boundary.
 */
export function parseX265Settings (raw: string): EncoderSettings {
  const { args, values } = parseAllowlisted(raw, X265_OPTIONS)
  const outputDepth = values.get('output-depth') === '10' ? 10 : 8
  const profile = values.get('profile')
  if (profile !== undefined && outputDepth === 10 && X265_8BIT_PROFILES.includes(profile)) {
    throw new SettingsError(`x265 settings: --profile ${profile} cannot carry 10-bit output; use --profile main10 (or main422-10, main444-10) or drop --output-depth 10`, '--profile')
  }
  return sealSettings({ encoder: 'x265', raw, args, outputDepth, ...(profile !== undefined ? { profile } : {}) })
}

// ---- colour ------------------------------------------------------------------------------------

/*
 * As x264, x265 writes no colour description unless told; it takes the same words for primaries,
 * transfer and matrix, "limited" and "full" for the range, and writes HDR10's mastering display
 * and content light level SEI from --master-display and --max-cll.
 */
const X265_COLOUR: ColourOptions = {
  options: { range: 'range', primaries: 'colorprim', transfer: 'transfer', matrix: 'colormatrix', chromaLocation: 'chromaloc', sar: 'sar' },
  range: { tv: 'limited', pc: 'full' },
  matrix: { ...MATRIX, gbr: 'gbr', ycgco: 'ycgco', ictcp: 'ictcp' },
  masteringDisplay: 'master-display',
  contentLight: 'max-cll'
}

/** The range the settings state, in the container's words. */
function statedRange (settings: EncoderSettings): 'tv' | 'pc' | undefined {
  const value = lastValue(settings, 'range')
  return value === 'limited' ? 'tv' : value === 'full' ? 'pc' : undefined
}

// ---- one chunk ---------------------------------------------------------------------------------

/*
 * What a chunk's command line adds to the settings, and why nothing else is forced:
 * - every x265 stream starts with an IDR picture and its VPS, SPS and PPS, so chunks put end to end
 *   need neither --repeat-headers nor a forced keyint; closed or open GOPs inside a chunk are the
 *   user's choice (x265's open-GOP CRAs only ever lead pictures of their own chunk). The result
 *   checks (verify.ts, hevc.ts) hold every chunk to an IDR first and its parameter sets present.
 * - the parameter sets depend on the settings, not on the chunk (x265 takes no frame count into
 *   its level or SPS), so the chunks' are byte for byte the same: the merge sees one stream.
 * - x265's info SEI (its version and options, ~2.3 KB once per chunk) is kept: it is the one place
 *   that says what made a chunk, and the structure check allows for it (SEI_BYTES_ALLOWANCE).
 */
function chunkArgs (settings: EncoderSettings, o: ChunkArgsOptions): string[] {
  return [
    ...settings.args,
    // x265's one thread pool, sized to the worker's cores (x265 has no --threads).
    ...(o.threads !== undefined ? ['--pools', String(o.threads)] : []),
    '--fps', `${o.frameRate.num}/${o.frameRate.den}`,
    '--frames', String(o.frameCount),
    '--y4m',
    ...vbvInitArgs(settings, o),
    '--output', o.outputPath,
    // The input as x265's one positional argument.
    o.inputPath ?? '-'
  ]
}

// ---- memory and size ---------------------------------------------------------------------------

/** x265 3.5's presets' frame counts (as x265 prints them at start): references, B-frames, lookahead. */
interface PresetFrames { ref: number, bframes: number, lookahead: number }
export const X265_PRESET_FRAMES: Record<string, PresetFrames> = {
  ultrafast: { ref: 1, bframes: 3, lookahead: 5 },
  superfast: { ref: 1, bframes: 3, lookahead: 10 },
  veryfast: { ref: 2, bframes: 4, lookahead: 15 },
  faster: { ref: 2, bframes: 4, lookahead: 15 },
  fast: { ref: 3, bframes: 4, lookahead: 15 },
  medium: { ref: 3, bframes: 4, lookahead: 20 },
  slow: { ref: 4, bframes: 4, lookahead: 25 },
  slower: { ref: 5, bframes: 8, lookahead: 40 },
  veryslow: { ref: 5, bframes: 8, lookahead: 40 },
  placebo: { ref: 5, bframes: 8, lookahead: 60 }
}

function memoryInputs (settings: EncoderSettings): EncoderMemoryInputs {
  const preset = X265_PRESET_FRAMES[lastValue(settings, 'preset') ?? 'medium'] ?? X265_PRESET_FRAMES.medium as PresetFrames
  const number = (name: string, fallback: number): number => { const v = Number(lastValue(settings, name)); return lastValue(settings, name) !== undefined && Number.isFinite(v) && v >= 0 ? v : fallback }
  return {
    ref: number('ref', preset.ref),
    bframes: number('bframes', preset.bframes),
    lookahead: number('rc-lookahead', preset.lookahead),
    // x265 encodes the chroma format it is fed, which the settings cannot name: counted at 4:4:4.
    samplesPerPixel: 3,
    bytesPerSample: settings.outputDepth === 10 ? 2 : 1
  }
}

/** x265 keeps the input's chroma format (it has no --output-csp), so the bound is 4:4:4's. */
function rawBytesPerPixel (settings: EncoderSettings): number {
  return 3 * settings.outputDepth / 8
}

/** 10-bit PQ output with HDR10 metadata gets x265's block-level QP for it unless the settings say otherwise. */
function sourceColourArgs (...[colour, settings, hdr]: Parameters<Encoder['sourceColourArgs']>): string[] {
  const args = colourArgsFor(X265_COLOUR, colour, settings, hdr)
  const given = optionsGiven(settings)
  const hdr10 = hdr?.masteringDisplay !== undefined || hdr?.contentLight !== undefined
  if (hdr10 && settings.outputDepth === 10 && (colour.transfer === 'smpte2084' || lastValue(settings, 'transfer') === 'smpte2084') &&
    !given.has('hdr10-opt') && !given.has('no-hdr10-opt')) args.push('--hdr10-opt')
  return args
}

export const x265: Encoder = {
  id: 'x265',
  binary: 'x265',
  bitstream: 'hevc',
  codec: 'hevc',
  fileExtension: '.hevc',
  versionArgs: ['--version'],
  // "x265 [info]: HEVC encoder version 3.5+1-f0c1022b6"
  parseVersion: (output) => /HEVC encoder version (\S+)/.exec(output)?.[1],
  parseSettings: parseX265Settings,
  // x265 encodes the chroma format it is fed (4:2:0, 4:2:2, 4:4:4) and converts the depth itself.
  refuseSource: () => undefined,
  inputPixFmt: (_settings, y4mOfSource) => y4mOfSource,
  chunkArgs,
  sourceColourArgs,
  colourSetBy: (settings) => colourFieldsSetBy(X265_COLOUR, settings),
  statedRange,
  parseProgress,
  encodedFrames,
  memoryInputs,
  rawBytesPerPixel
}
