import { flag, int, intOr, num, numericTuple, numIn, oneOf, token, value, type OptionSpec, type OptionTable } from '../settings.js'
import { MAX_LOOKAHEAD_FRAMES } from './x264-options.js'

/*
 * x265's allowlist (x265 3.5, Debian's 8+10+12-bit build): every option a stranger's settings may
 * pass to a worker's x265, each value checked, and the options refused on purpose with the reason
 * the user is shown. Output depth is 8 or 10 (what EncoderSettings carries); 12-bit profiles are
 * not offered.
 */

const PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow', 'placebo']
const TUNES = ['psnr', 'ssim', 'grain', 'zerolatency', 'fastdecode', 'animation']
/** Profiles of 8-bit output; with --output-depth 10 they are refused (x265 would refuse to start). */
export const X265_8BIT_PROFILES = ['main', 'mainstillpicture', 'msp', 'main-intra', 'main444-8', 'main444-intra', 'main444-stillpicture']
const PROFILES = [...X265_8BIT_PROFILES, 'main10', 'main10-intra', 'main422-10', 'main422-10-intra', 'main444-10', 'main444-10-intra']

/** x265 spells most switches both ways (`--[no-]name`): both are allowed. */
function switches (...names: string[]): Record<string, OptionSpec> {
  return Object.fromEntries(names.flatMap(n => [[n, flag], [`no-${n}`, flag]]))
}

/** Long option name → spec. Every option here is an encoding decision and touches no file. */
const ALLOWED: Record<string, OptionSpec> = {
  preset: value(oneOf(PRESETS)),
  tune: value(oneOf(TUNES)),
  profile: value(oneOf(PROFILES)),
  'output-depth': value(oneOf(['8', '10'])),
  'level-idc': value(numIn(0, 8.5)),
  ...switches('high-tier'),
  'uhd-bd': flag,
  /** Frames encoded at once, each holding its own pictures: bounded to x265's own maximum. */
  'frame-threads': value(numIn(1, 16, true)),
  ...switches('wpp', 'pmode', 'pme'),
  slices: value(numIn(1, 64, true)),
  asm: value(token),
  'no-asm': flag,
  ctu: value(oneOf(['16', '32', '64'])),
  'min-cu-size': value(oneOf(['8', '16', '32', '64'])),
  'max-tu-size': value(oneOf(['4', '8', '16', '32'])),
  'tu-intra-depth': value(numIn(1, 4, true)),
  'tu-inter-depth': value(numIn(1, 4, true)),
  'limit-tu': value(numIn(0, 4, true)),
  rd: value(numIn(1, 6, true)),
  'psy-rd': value(numIn(0, 5)),
  'no-psy-rd': flag,
  'rdoq-level': value(numIn(0, 2, true)),
  'no-rdoq-level': flag,
  'psy-rdoq': value(numIn(0, 50)),
  'no-psy-rdoq': flag,
  'dynamic-rd': value(numIn(0, 4)),
  ...switches('ssim-rd', 'rd-refine', 'early-skip', 'tskip-fast', 'splitrd-skip'),
  rskip: value(numIn(0, 2, true)),
  'rskip-edge-threshold': value(numIn(0, 100, true)),
  'nr-intra': value(numIn(0, 2000, true)),
  'nr-inter': value(numIn(0, 2000, true)),
  ...switches('weightp', 'weightb', 'cu-lossless', 'signhide', 'tskip'),
  'max-merge': value(numIn(1, 5, true)),
  ref: value(numIn(1, 16, true)),
  'limit-refs': value(numIn(0, 3, true)),
  me: value(oneOf(['dia', 'hex', 'umh', 'star', 'sea', 'full', '0', '1', '2', '3', '4', '5'])),
  subme: value(numIn(0, 7, true)),
  merange: value(numIn(0, 32768, true)),
  ...switches('rect', 'amp', 'limit-modes', 'temporal-mvp', 'hme'),
  'hme-search': value(token),
  'hme-range': value(numericTuple),
  ...switches('strong-intra-smoothing', 'constrained-intra', 'b-intra', 'fast-intra'),
  rdpenalty: value(numIn(0, 2, true)),
  ...switches('open-gop'),
  keyint: value(int),
  'min-keyint': value(int),
  /** Frames looked past keyint for a scene cut: within the lookahead, bounded like it. */
  'gop-lookahead': value(numIn(0, MAX_LOOKAHEAD_FRAMES, true)),
  'no-scenecut': flag,
  scenecut: value(int),
  'scenecut-bias': value(numIn(0, 100)),
  ...switches('hist-scenecut', 'fades'),
  'hist-threshold': value(numIn(0, 1)),
  'scenecut-aware-qp': value(numIn(0, 3, true)),
  'masking-strength': value(numericTuple),
  radl: value(numIn(0, 16, true)),
  'intra-refresh': flag,
  /**
   * Frames x265 holds ahead of the encode, full pictures each: x265 takes up to 250, which at 4K or
   * 8K is gigabytes a worker never agreed to. Bounded as x264's (x264-options.ts).
   */
  'rc-lookahead': value(numIn(0, MAX_LOOKAHEAD_FRAMES, true)),
  'lookahead-slices': value(numIn(0, 16, true)),
  bframes: value(numIn(0, 16, true)),
  'bframe-bias': value(int),
  'b-adapt': value(numIn(0, 2, true)),
  ...switches('b-pyramid'),
  bitrate: value(int),
  qp: value(numIn(0, 69, true)),
  crf: value(numIn(0, 51)),
  ...switches('lossless'),
  'crf-max': value(numIn(0, 51)),
  'crf-min': value(numIn(0, 51)),
  'vbv-maxrate': value(int),
  'vbv-bufsize': value(int),
  'vbv-init': value(num),
  'vbv-end': value(num),
  'min-vbv-fullness': value(numIn(0, 100)),
  'max-vbv-fullness': value(numIn(0, 100)),
  'vbv-end-fr-adj': value(num),
  ...switches('strict-cbr'),
  'aq-mode': value(numIn(0, 4, true)),
  ...switches('hevc-aq', 'aq-motion', 'cutree', 'rc-grain', 'const-vbv'),
  'aq-strength': value(numIn(0, 3)),
  'qp-adaptation-range': value(numIn(1, 6)),
  'qg-size': value(oneOf(['8', '16', '32', '64'])),
  ipratio: value(num),
  pbratio: value(num),
  qcomp: value(num),
  qpstep: value(int),
  qpmin: value(numIn(0, 69, true)),
  qpmax: value(numIn(0, 69, true)),
  cbqpoffs: value(numIn(-12, 12, true)),
  crqpoffs: value(numIn(-12, 12, true)),
  /** x265 takes a file name here too; only its built-in lists are allowed. */
  'scaling-list': value(oneOf(['default', 'off'])),
  'max-ausize-factor': value(numIn(0.5, 1)),
  deblock: value(numericTuple),
  'no-deblock': flag,
  ...switches('sao', 'sao-non-deblock', 'limit-sao'),
  'selective-sao': value(numIn(0, 4, true)),
  sar: value(numericTuple),
  overscan: value(oneOf(['unknown', 'show', 'crop'])),
  videoformat: value(oneOf(['unknown', 'component', 'pal', 'ntsc', 'secam', 'mac'])),
  range: value(oneOf(['limited', 'full'])),
  colorprim: value(token),
  transfer: value(token),
  colormatrix: value(token),
  chromaloc: value(numIn(0, 5, true)),
  'master-display': value(token),
  'max-cll': value(numericTuple),
  ...switches('cll', 'hdr10', 'hdr-opt', 'hdr10-opt'),
  'min-luma': value(int),
  'max-luma': value(int),
  // Not --opt-qp-pps nor --opt-ref-list-length-pps: a PPS that changes midway is what the structure check refuses.
  ...switches('repeat-headers', 'info', 'hrd', 'idr-recovery-sei', 'temporal-layers', 'aud', 'vui-timing-info', 'vui-hrd-info', 'opt-cu-delta-qp'),
  hash: value(numIn(0, 3, true)),
  'atc-sei': value(numIn(0, 255, true)),
  'pic-struct': value(numIn(0, 12, true)),
  'log2-max-poc-lsb': value(numIn(4, 16, true)),
  dither: flag,
  ...switches('copy-pic', 'psnr', 'ssim'),
  'lowpass-dct': flag,
  'no-progress': flag
}

const FILE = 'it names a file on disk'
const FED = 'the worker feeds x265 itself'
const THREADS = 'the worker sets threads to fit its cores'

/** Options refused on purpose, with the reason shown to the user. */
const REFUSED: Record<string, string> = {
  output: 'it names the output file, which the worker chooses',
  input: FED,
  y4m: FED,
  'input-res': FED,
  'input-depth': FED,
  'input-csp': FED,
  fps: 'the frame rate comes from the source; timestamps are restored at merge',
  seek: 'each chunk is cut by the originator; seeking would drop frames',
  frames: 'each chunk is cut by the originator; limiting frames would drop frames',
  'chunk-start': 'each chunk is cut by the originator',
  'chunk-end': 'each chunk is cut by the originator',
  interlace: 'it makes x265 read each picture as a field: the frame count the merge expects would change',
  'no-interlace': 'it makes x265 read each picture as a field: the frame count the merge expects would change',
  field: 'it makes x265 read each picture as a field: the frame count the merge expects would change',
  'no-field': 'it makes x265 read each picture as a field: the frame count the merge expects would change',
  'frame-dup': 'frame duplication changes the frames the merge expects',
  'dup-threshold': 'frame duplication changes the frames the merge expects',
  'display-window': 'cropping changes the frame size the merge expects; crop the source before adding it',
  'log-level': 'the worker reads x265\'s log to count the frames it encoded',
  csv: FILE,
  'csv-log-level': 'it only applies to a csv file, which names a file on disk',
  recon: FILE,
  'recon-depth': 'it only applies to a recon file, which names a file on disk',
  'recon-y4m-exec': 'it runs a program',
  pass: 'multi-pass needs a whole-file first pass and a stats file; use --crf (or --bitrate with VBV) instead',
  stats: FILE,
  'analysis-save': FILE,
  'analysis-load': FILE,
  'analysis-reuse-file': FILE,
  'dhdr10-info': FILE,
  'dolby-vision-rpu': FILE,
  'dolby-vision-profile': 'Dolby Vision needs an RPU file on disk',
  'nalu-file': FILE,
  qpfile: FILE,
  zonefile: FILE,
  'lambda-file': FILE,
  'abr-ladder': FILE,
  zones: 'zones use whole-file frame numbers, which do not survive splitting into chunks',
  pools: THREADS,
  'numa-pools': THREADS,
  'lookahead-threads': THREADS,
  help: 'it is not an encoding option',
  fullhelp: 'it is not an encoding option',
  version: 'it is not an encoding option'
}

/** x265's short options, mapped to their long names. */
const SHORT: Record<string, string> = {
  h: 'help', V: 'version', o: 'output', D: 'output-depth', f: 'frames', P: 'profile', F: 'frame-threads', p: 'preset', t: 'tune',
  s: 'ctu', w: 'weightp', m: 'subme', I: 'keyint', i: 'min-keyint', b: 'bframes', q: 'qp', r: 'recon'
}

export const X265_OPTIONS: OptionTable = { encoder: { name: 'x265', article: 'an' }, allowed: ALLOWED, refused: REFUSED, short: SHORT }
