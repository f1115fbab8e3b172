import { SettingsError } from '../errors.js'
import { lastValue, parseAllowlisted, sealSettings } from '../settings.js'
import { lastMatch } from './common.js'
import type { ChunkArgsOptions, Encoder, EncoderMemoryInputs, EncoderProgress, EncoderSettings } from './types.js'
import { X264_OPTIONS } from './x264-options.js'
import { colourArgsFor, colourFieldsSetBy, MATRIX, type ColourOptions } from './vui-names.js'

/**
 * Parses and checks an x264 settings string (the allowlist: x264-options.ts). Throws SettingsError
 * naming the first refused option. Runs where settings cross a trust boundary: `swarm add`, the
 * originator's admission, and every worker on what an originator sends (a worker never trusts the
 * originator's check).
 */
export function parseX264Settings (raw: string): EncoderSettings {
  const { args, values } = parseAllowlisted(raw, X264_OPTIONS)
  const outputDepth = values.get('output-depth') === '10' ? 10 : 8
  const profile = values.get('profile')
  if (profile !== undefined && outputDepth === 10 && ['baseline', 'main', 'high'].includes(profile)) {
    throw new SettingsError(`x264 settings: --profile ${profile} cannot carry 10-bit output; use --profile high10 or drop --output-depth 10`, '--profile')
  }
  return sealSettings({ encoder: 'x264', raw, args, outputDepth, ...(profile !== undefined ? { profile } : {}) })
}

// ---- colour ------------------------------------------------------------------------------------

/*
 * x264 writes "unknown" for range, primaries, transfer and matrix unless told, and players then
 * guess (often BT.601 for SD, wrong for most sources). What the source says is carried into the
 * encode, except where the user's settings say otherwise. ffprobe and x264 mostly share names;
 * vui-names.ts holds the ones x264 accepts, under ffprobe's name.
 */
const X264_COLOUR: ColourOptions = {
  options: { range: 'range', primaries: 'colorprim', transfer: 'transfer', matrix: 'colormatrix', chromaLocation: 'chromaloc', sar: 'sar' },
  range: { tv: 'tv', pc: 'pc' },
  matrix: { ...MATRIX, gbr: 'GBR', ycgco: 'YCgCo', ictcp: 'ICtCp' },
  masteringDisplay: 'mastering-display',
  contentLight: 'cll'
}

/**
 * x264 writes no signal-type VUI for `--range tv` alone, so without the container's word the
 * output says nothing and players guess. Undefined when the settings leave it to x264 (auto).
 */
function statedRange (settings: EncoderSettings): 'tv' | 'pc' | undefined {
  const i = settings.args.lastIndexOf('--range')
  const value = i >= 0 ? settings.args[i + 1] : undefined
  return value === 'tv' || value === 'pc' ? value : undefined
}

// ---- one chunk ---------------------------------------------------------------------------------

/** `--vbv-init` where the settings set a VBV (x265 takes the same option). */
export function vbvInitArgs (settings: EncoderSettings, o: ChunkArgsOptions): string[] {
  return o.vbvInit !== undefined && settings.args.includes('--vbv-maxrate') ? ['--vbv-init', String(o.vbvInit)] : []
}

function chunkArgs (settings: EncoderSettings, o: ChunkArgsOptions): string[] {
  return [
    ...settings.args,
    ...(o.threads !== undefined ? ['--threads', String(o.threads)] : []),
    // Chunks are concatenated, so every one must carry the same self-contained headers.
    '--stitchable',
    '--fps', `${o.frameRate.num}/${o.frameRate.den}`,
    '--frames', String(o.frameCount),
    '--demuxer', 'y4m',
    ...vbvInitArgs(settings, o),
    '--output', o.outputPath,
    o.inputPath ?? '-'
  ]
}

const PROGRESS_RE = /(\d+)(?:\/\d+)? frames[:,] ([\d.]+) fps/g

/** Progress as x264 prints it (`12/48 frames, 20.5 fps`); x265 prints the same words. */
export function parseProgress (stderr: string): EncoderProgress | undefined {
  const latest = lastMatch(PROGRESS_RE, stderr)
  return latest === undefined ? undefined : { framesDone: Number(latest[1]), fps: Number(latest[2]) }
}

/** The count in x264's closing `encoded N frames` line; x265 closes with the same words. */
export function encodedFrames (stderr: string): number | undefined {
  const encoded = /encoded (\d+) frames/.exec(stderr)
  return encoded === null ? undefined : Number(encoded[1])
}

// ---- memory and size ---------------------------------------------------------------------------

/**
 * x264's presets' frame counts (x264 0.164 common/base.c): references, B-frames, lookahead.
 * An option given explicitly wins over its preset's value.
 */
interface PresetFrames { ref: number, bframes: number, lookahead: number }
export const X264_PRESET_FRAMES: Record<string, PresetFrames> = {
  ultrafast: { ref: 1, bframes: 0, lookahead: 0 },
  superfast: { ref: 1, bframes: 3, lookahead: 0 },
  veryfast: { ref: 1, bframes: 3, lookahead: 10 },
  faster: { ref: 2, bframes: 3, lookahead: 20 },
  fast: { ref: 2, bframes: 3, lookahead: 30 },
  medium: { ref: 3, bframes: 3, lookahead: 40 },
  slow: { ref: 5, bframes: 3, lookahead: 50 },
  slower: { ref: 8, bframes: 3, lookahead: 60 },
  veryslow: { ref: 16, bframes: 8, lookahead: 60 },
  placebo: { ref: 16, bframes: 16, lookahead: 60 }
}

function memoryInputs (settings: EncoderSettings): EncoderMemoryInputs {
  const preset = X264_PRESET_FRAMES[lastValue(settings, 'preset') ?? 'medium'] ?? X264_PRESET_FRAMES.medium as PresetFrames
  const number = (name: string, fallback: number): number => { const v = Number(lastValue(settings, name)); return lastValue(settings, name) !== undefined && Number.isFinite(v) && v >= 0 ? v : fallback }
  const csp = lastValue(settings, 'output-csp') ?? 'i420'
  return {
    ref: number('ref', preset.ref),
    bframes: number('bframes', preset.bframes),
    lookahead: number('rc-lookahead', preset.lookahead),
    samplesPerPixel: csp.includes('444') || csp === 'rgb' ? 3 : csp.includes('422') ? 2 : 1.5,
    bytesPerSample: settings.outputDepth === 10 ? 2 : 1
  }
}

function rawBytesPerPixel (settings: EncoderSettings): number {
  const at = settings.args.indexOf('--output-csp')
  const csp = at >= 0 ? settings.args[at + 1] ?? 'i420' : 'i420'
  const samples = csp === 'i400' ? 1 : ['i422', 'yv16', 'nv16', 'yuyv', 'uyvy'].includes(csp) ? 2 : ['i444', 'yv24', 'bgr', 'rgb'].includes(csp) ? 3 : csp === 'bgra' ? 4 : 1.5
  return samples * settings.outputDepth / 8
}

export const x264: Encoder = {
  id: 'x264',
  binary: 'x264',
  bitstream: 'h264',
  codec: 'h264',
  fileExtension: '.264',
  versionArgs: ['--version'],
  // "x264 0.164.3095 baf4803"
  parseVersion: (output) => /^x264 (\S+)/m.exec(output)?.[1],
  parseSettings: parseX264Settings,
  // x264 converts any y4m it is given to its --output-csp and --output-depth itself.
  refuseSource: () => undefined,
  inputPixFmt: (_settings, y4mOfSource) => y4mOfSource,
  chunkArgs,
  sourceColourArgs: (colour, settings, hdr) => colourArgsFor(X264_COLOUR, colour, settings, hdr),
  colourSetBy: (settings) => colourFieldsSetBy(X264_COLOUR, settings),
  statedRange,
  parseProgress,
  encodedFrames,
  memoryInputs,
  rawBytesPerPixel
}
