import { SettingsError } from './errors.js'

/**
 * x264 settings arrive from strangers (a remote originator), so they are parsed here without a
 * shell and checked against an allowlist of pure encoding options. Anything that names a file,
 * changes I/O or timing, or is the worker's to decide, is refused with an error naming it.
 */

type ValueCheck = (value: string) => string | undefined

interface OptionSpec {
  /** Whether the option consumes a value. */
  takesValue: boolean
  check?: ValueCheck
}

const PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow', 'placebo']
const TUNES = ['film', 'animation', 'grain', 'stillimage', 'psnr', 'ssim', 'fastdecode', 'zerolatency', 'touhou']
const PROFILES = ['baseline', 'main', 'high', 'high10', 'high422', 'high444']

const oneOf = (allowed: string[]): ValueCheck => (v) => allowed.includes(v) ? undefined : `must be one of ${allowed.join(', ')}`
const commaListOf = (allowed: string[]): ValueCheck => (v) => v.split(',').every(p => allowed.includes(p)) ? undefined : `must be a comma-separated list of ${allowed.join(', ')}`
const NUMBER_RE = /^[-+]?(\d+(\.\d*)?|\.\d+)$/
const INT_RE = /^[-+]?\d+$/
const num: ValueCheck = (v) => NUMBER_RE.test(v) ? undefined : 'must be a number'
const int: ValueCheck = (v) => INT_RE.test(v) ? undefined : 'must be an integer'
/**
 * A number within x264's range. x264 clamps some out-of-range values without a word (--crf 99 is
 * encoded as 51), which is never what the person meant.
 */
const numIn = (min: number, max: number, integer = false): ValueCheck => (v) => {
  if (!(integer ? INT_RE : NUMBER_RE).test(v)) return integer ? 'must be an integer' : 'must be a number'
  const n = Number(v)
  return n >= min && n <= max ? undefined : `must be between ${min} and ${max}`
}
const keyint: ValueCheck = (v) => v === 'infinite' || INT_RE.test(v) ? undefined : 'must be an integer or "infinite"'
/** Values like "1.0:0.15", "-1:-1", "0,1,2": numbers and separators, nothing that could be a path. */
const numericTuple: ValueCheck = (v) => /^[-+0-9.:,x]+$/.test(v) ? undefined : 'must be numbers separated by ":" or ","'
/** Free-form tokens for VUI/colour options: letters, digits and a few separators. */
const token: ValueCheck = (v) => /^[A-Za-z0-9_.:,()+-]+$/.test(v) ? undefined : 'contains characters that are not allowed here'

/** The most frames a lookahead may hold (--rc-lookahead, --sync-lookahead); see ALLOWED. */
export const MAX_LOOKAHEAD_FRAMES = 60

const flag: OptionSpec = { takesValue: false }
const value = (check: ValueCheck = token): OptionSpec => ({ takesValue: true, check })

/** Long option name → spec. Every option here is an encoding decision and touches no file. */
const ALLOWED: Record<string, OptionSpec> = {
  profile: value(oneOf(PROFILES)),
  preset: value(oneOf(PRESETS)),
  tune: value(commaListOf(TUNES)),
  slow_firstpass: flag,
  keyint: value(keyint),
  'min-keyint': value(int),
  'no-scenecut': flag,
  scenecut: value(int),
  'intra-refresh': flag,
  bframes: value(numIn(0, 16, true)),
  'b-adapt': value(numIn(0, 2, true)),
  'b-bias': value(int),
  'b-pyramid': value(oneOf(['none', 'strict', 'normal', '0', '1', '2'])),
  'open-gop': flag,
  'no-cabac': flag,
  ref: value(numIn(1, 16, true)),
  'no-deblock': flag,
  deblock: value(numericTuple),
  slices: value(int),
  'slices-max': value(int),
  'slice-max-size': value(int),
  'slice-max-mbs': value(int),
  'slice-min-mbs': value(int),
  tff: flag,
  bff: flag,
  'constrained-intra': flag,
  'fake-interlaced': flag,
  'frame-packing': value(int),
  qp: value(numIn(0, 81, true)),
  bitrate: value(int),
  crf: value(numIn(-12, 51)),
  /**
   * Frames x264 holds ahead of the encode, each a full picture plus its half-size copy: x264 takes
   * up to 250, which at 4K or 8K is gigabytes a worker never agreed to (issue 26.2). 60 is what the
   * slowest presets (veryslow, placebo) use; beyond it x264's own docs see no gain.
   */
  'rc-lookahead': value(numIn(0, MAX_LOOKAHEAD_FRAMES, true)),
  'vbv-maxrate': value(int),
  'vbv-bufsize': value(int),
  'vbv-init': value(num),
  'crf-max': value(numIn(-12, 51)),
  qpmin: value(numIn(0, 81, true)),
  qpmax: value(numIn(0, 81, true)),
  qpstep: value(int),
  ratetol: value(num),
  ipratio: value(num),
  pbratio: value(num),
  'chroma-qp-offset': value(int),
  'aq-mode': value(numIn(0, 3, true)),
  'aq-strength': value(num),
  'no-mbtree': flag,
  qcomp: value(num),
  cplxblur: value(num),
  qblur: value(num),
  partitions: value(token),
  direct: value(oneOf(['none', 'spatial', 'temporal', 'auto'])),
  'no-weightb': flag,
  weightp: value(int),
  me: value(oneOf(['dia', 'hex', 'umh', 'esa', 'tesa'])),
  merange: value(int),
  mvrange: value(int),
  'mvrange-thread': value(int),
  subme: value(numIn(0, 11, true)),
  'psy-rd': value(numericTuple),
  'no-psy': flag,
  'no-mixed-refs': flag,
  'no-chroma-me': flag,
  'no-8x8dct': flag,
  trellis: value(numIn(0, 2, true)),
  'no-fast-pskip': flag,
  'no-dct-decimate': flag,
  nr: value(int),
  'deadzone-inter': value(int),
  'deadzone-intra': value(int),
  cqm: value(oneOf(['flat', 'jvt'])),
  cqm4: value(numericTuple),
  cqm8: value(numericTuple),
  cqm4i: value(numericTuple),
  cqm4p: value(numericTuple),
  cqm8i: value(numericTuple),
  cqm8p: value(numericTuple),
  cqm4iy: value(numericTuple),
  cqm4ic: value(numericTuple),
  cqm4py: value(numericTuple),
  cqm4pc: value(numericTuple),
  overscan: value(oneOf(['undef', 'show', 'crop'])),
  videoformat: value(oneOf(['component', 'pal', 'ntsc', 'secam', 'mac', 'undef'])),
  range: value(oneOf(['auto', 'tv', 'pc'])),
  colorprim: value(token),
  transfer: value(token),
  colormatrix: value(token),
  chromaloc: value(int),
  'mastering-display': value(token),
  cll: value(numericTuple),
  'alternative-transfer': value(token),
  'nal-hrd': value(oneOf(['none', 'vbr', 'cbr'])),
  filler: flag,
  'pic-struct': flag,
  'output-csp': value(oneOf(['i400', 'i420', 'yv12', 'nv12', 'nv21', 'i422', 'yv16', 'nv16', 'yuyv', 'uyvy', 'i444', 'yv24', 'bgr', 'bgra', 'rgb'])),
  'output-depth': value(oneOf(['8', '10'])),
  sar: value(numericTuple),
  level: value(token),
  'bluray-compat': flag,
  'avcintra-class': value(int),
  'avcintra-flavor': value(oneOf(['panasonic', 'sony'])),
  stitchable: flag,
  'sliced-threads': flag,
  /** Frames buffered for the threaded lookahead, full pictures each: bounded like rc-lookahead. */
  'sync-lookahead': value(numIn(0, MAX_LOOKAHEAD_FRAMES, true)),
  'non-deterministic': flag,
  'cpu-independent': flag,
  aud: flag,
  'sps-id': value(int),
  psnr: flag,
  ssim: flag,
  quiet: flag,
  'no-progress': flag,
  'log-level': value(oneOf(['none', 'error', 'warning', 'info', 'debug'])),
  verbose: flag,
  asm: value(int),
  'no-asm': flag
}
// x264 spells this one with a dash; keep the table readable above and fix it here.
ALLOWED['slow-firstpass'] = flag
delete ALLOWED.slow_firstpass

/** Options refused on purpose, with the reason shown to the user. */
const REFUSED: Record<string, string> = {
  output: 'it names the output file, which the worker chooses',
  muxer: 'the worker chooses the output container',
  demuxer: 'the worker feeds x264 itself',
  'input-fmt': 'the worker feeds x264 itself',
  'input-csp': 'the worker feeds x264 itself',
  'input-depth': 'the worker feeds x264 itself',
  'input-range': 'the worker feeds x264 itself',
  'input-res': 'the worker feeds x264 itself',
  index: 'it names an index file on disk',
  fps: 'the frame rate comes from the source; timestamps are restored at merge',
  timebase: 'timestamps come from the source and are restored at merge',
  'force-cfr': 'timestamps come from the source and are restored at merge',
  pulldown: 'it rewrites timing; timestamps come from the source',
  seek: 'each chunk is cut by the originator; seeking would drop frames',
  frames: 'each chunk is cut by the originator; limiting frames would drop frames',
  'tcfile-in': 'it names a timecode file on disk',
  'tcfile-out': 'it names a timecode file on disk',
  'dump-yuv': 'it writes a file on disk',
  stats: 'it names a stats file on disk',
  pass: 'multi-pass needs a whole-file first pass and a stats file; use --crf (or --bitrate with VBV) instead',
  'slow-firstpass-stats': 'it names a stats file on disk',
  qpfile: 'it names a file on disk',
  cqmfile: 'it names a file on disk',
  'log-file': 'it names a file on disk',
  'crop-rect': 'cropping changes the frame size the merge expects; crop the source before adding it',
  zones: 'zones use whole-file frame numbers, which do not survive splitting into chunks',
  vf: 'video filters can change the frame count or read files',
  'video-filter': 'video filters can change the frame count or read files',
  opencl: 'OpenCL lookahead loads kernels from disk',
  'opencl-clbin': 'it names a file on disk',
  'opencl-device': 'OpenCL lookahead loads kernels from disk',
  threads: 'the worker sets threads to fit its cores',
  'lookahead-threads': 'the worker sets threads to fit its cores',
  'thread-input': 'the worker sets threads to fit its cores',
  'dts-compress': 'it changes container timestamps, which the merge restores from the source',
  help: 'it is not an encoding option',
  longhelp: 'it is not an encoding option',
  fullhelp: 'it is not an encoding option',
  version: 'it is not an encoding option'
}

/** x264's short options, mapped to their long names. */
const SHORT: Record<string, string> = {
  h: 'help', I: 'keyint', i: 'min-keyint', b: 'bframes', r: 'ref', f: 'deblock', q: 'qp', B: 'bitrate',
  p: 'pass', A: 'partitions', m: 'subme', t: 'trellis', o: 'output', v: 'verbose', V: 'version'
}

/**
 * Splits a settings string the way a POSIX shell splits words (single quotes, double quotes and
 * backslashes), without expanding anything and without running a shell.
 */
export function splitSettings (input: string): string[] {
  const words: string[] = []
  let current = ''
  let inWord = false
  let quote: '"' | "'" | undefined
  for (let i = 0; i < input.length; i++) {
    const c = input[i] as string
    if (quote === "'") {
      if (c === "'") quote = undefined
      else current += c
      continue
    }
    if (quote === '"') {
      if (c === '"') quote = undefined
      else if (c === '\\' && i + 1 < input.length && '"\\$`'.includes(input[i + 1] as string)) current += input[++i]
      else current += c
      continue
    }
    if (c === "'" || c === '"') { quote = c; inWord = true; continue }
    if (c === '\\') {
      if (i + 1 < input.length) { current += input[++i]; inWord = true }
      continue
    }
    if (/\s/.test(c)) {
      if (inWord) { words.push(current); current = ''; inWord = false }
      continue
    }
    current += c
    inWord = true
  }
  if (quote !== undefined) throw new SettingsError(`x264 settings: unbalanced ${quote === '"' ? 'double' : 'single'} quote in "${input}"`)
  if (inWord) words.push(current)
  return words
}

export interface X264Settings {
  /** The settings as the user wrote them. */
  raw: string
  /** Normalised argument array for x264 (long option names, values as separate words). */
  args: string[]
  /** Bit depth x264 will produce: 8 unless `--output-depth 10`. */
  outputDepth: 8 | 10
  profile?: string
}

/** A value for a message: quoted, at most about 80 characters (a settings string can be 4 KiB). */
export function quoteShort (v: string, max = 80): string {
  return JSON.stringify(v.length > max ? `${v.slice(0, max)}…` : v) + (v.length > max ? ` (${v.length} characters)` : '')
}

function refuse (option: string, why: string): never {
  const shown = option.length > 80 ? `${option.slice(0, 80)}… (${option.length} characters)` : option
  throw new SettingsError(`x264 settings: option ${shown} is not allowed: ${why}`, option.slice(0, 80))
}

/**
 * Parses and checks a settings string. Throws SettingsError naming the first refused option.
 * Runs on the originator (at `swarm add`) and again on every worker: a worker never trusts the
 * originator's check.
 */
export function parseX264Settings (raw: string): X264Settings {
  if (typeof raw !== 'string') throw new SettingsError('x264 settings must be a string')
  if (raw.length > 4096) throw new SettingsError(`x264 settings: ${raw.length} characters is too long (at most 4096)`)
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(raw)) throw new SettingsError('x264 settings: control characters are not allowed')
  const words = splitSettings(raw)
  const args: string[] = []
  let outputDepth: 8 | 10 = 8
  let profile: string | undefined
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string
    let name: string
    let shown: string
    let inlineValue: string | undefined
    if (word.startsWith('--')) {
      const eq = word.indexOf('=')
      name = eq >= 0 ? word.slice(2, eq) : word.slice(2)
      inlineValue = eq >= 0 ? word.slice(eq + 1) : undefined
      shown = `--${name}`
      if (name === '') refuse('--', 'a bare "--" would make x264 read the next words as file names')
    } else if (word.startsWith('-') && word.length > 1 && !NUMBER_RE.test(word)) {
      const letter = word[1] as string
      const long = SHORT[letter]
      shown = `-${letter}`
      if (long === undefined) refuse(shown, 'it is not an x264 encoding option')
      name = long
      if (word.length > 2) inlineValue = word.slice(2)
    } else {
      throw new SettingsError(`x264 settings: unexpected argument ${quoteShort(word)}: x264 would take it as an input or output file name`, word.slice(0, 80))
    }
    const refusedWhy = REFUSED[name]
    if (refusedWhy !== undefined) refuse(shown === `--${name}` ? shown : `${shown} (--${name})`, refusedWhy)
    const spec = ALLOWED[name]
    if (spec === undefined) refuse(shown, 'it is not on the list of x264 encoding options swarm accepts')
    if (!spec.takesValue) {
      if (inlineValue !== undefined) throw new SettingsError(`x264 settings: option ${shown} takes no value`, shown)
      args.push(`--${name}`)
      continue
    }
    let val = inlineValue
    if (val === undefined) {
      if (i + 1 >= words.length) throw new SettingsError(`x264 settings: option ${shown} needs a value`, shown)
      val = words[++i] as string
    }
    const problem = spec.check?.(val)
    if (problem !== undefined) throw new SettingsError(`x264 settings: value ${quoteShort(val)} of ${shown} ${problem}`, shown)
    if (name === 'output-depth') outputDepth = val === '10' ? 10 : 8
    if (name === 'profile') profile = val
    args.push(`--${name}`, val)
  }
  if (profile !== undefined && outputDepth === 10 && ['baseline', 'main', 'high'].includes(profile)) {
    throw new SettingsError(`x264 settings: --profile ${profile} cannot carry 10-bit output; use --profile high10 or drop --output-depth 10`, '--profile')
  }
  return { raw, args, outputDepth, ...(profile !== undefined ? { profile } : {}) }
}
