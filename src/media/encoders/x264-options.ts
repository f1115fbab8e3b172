import { commaListOf, flag, int, intOr, num, numericTuple, numIn, oneOf, token, value, type OptionSpec, type OptionTable } from '../settings.js'

/*
 * x264's allowlist (x264 0.164): every option a stranger's settings may pass to a worker's x264,
 * each value checked, and the options refused on purpose with the reason the user is shown.
 */

const PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow', 'placebo']
const TUNES = ['film', 'animation', 'grain', 'stillimage', 'psnr', 'ssim', 'fastdecode', 'zerolatency', 'touhou']
const PROFILES = ['baseline', 'main', 'high', 'high10', 'high422', 'high444']

/** The most frames a lookahead may hold (--rc-lookahead, --sync-lookahead); see ALLOWED. */
export const MAX_LOOKAHEAD_FRAMES = 60

/** Long option name → spec. Every option here is an encoding decision and touches no file. */
const ALLOWED: Record<string, OptionSpec> = {
  profile: value(oneOf(PROFILES)),
  preset: value(oneOf(PRESETS)),
  tune: value(commaListOf(TUNES)),
  slow_firstpass: flag,
  keyint: value(intOr('infinite')),
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

export const X264_OPTIONS: OptionTable = { encoder: { name: 'x264', article: 'an' }, allowed: ALLOWED, refused: REFUSED, short: SHORT }
