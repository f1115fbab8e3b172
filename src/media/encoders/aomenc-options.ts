import { flag, int, numIn, oneOf, value, type OptionSpec, type OptionTable } from '../settings.js'

/*
 * aomenc's allowlist (libaom 3.6.0, Debian bookworm): every option a stranger's settings may pass
 * to a worker's aomenc, each value checked against the range its --help states, and the options
 * refused on purpose with the reason the user is shown. aomenc reads an option's value only in
 * the `--name=value` form; parsed settings hold it as the next word and chunkArgs joins them.
 */

const ZERO_ONE = value(numIn(0, 1, true))
const KEY_FRAMES_ARE_SWARMS = 'swarm places key frames: one at the start of each chunk (the chunks are cut at the source\'s own key frames), none inside it'
const COST_UPDATE = value(numIn(0, 3, true))

/** The most frames aomenc may hold back for its lookahead (libaom's own limit is 35, MAX_LAG_BUFFERS). */
export const AOMENC_MAX_LAG_IN_FRAMES = 35

/** aomenc's names for CICP code points (its --help), which it takes instead of numbers. */
export const AOMENC_PRIMARIES = ['bt709', 'unspecified', 'bt601', 'bt470m', 'bt470bg', 'smpte240', 'film', 'bt2020', 'xyz', 'smpte431', 'smpte432', 'ebu3213']
export const AOMENC_TRANSFER = ['unspecified', 'bt709', 'bt470m', 'bt470bg', 'bt601', 'smpte240', 'lin', 'log100', 'log100sq10', 'iec61966', 'bt1361', 'srgb', 'bt2020-10bit', 'bt2020-12bit', 'smpte2084', 'hlg', 'smpte428']
export const AOMENC_MATRIX = ['identity', 'bt709', 'unspecified', 'fcc73', 'bt470bg', 'bt601', 'smpte240', 'ycgco', 'bt2020ncl', 'bt2020cl', 'smpte2085', 'chromncl', 'chromcl', 'ictcp']

/** Long option name → spec. Every option here is an encoding decision and touches no file. */
const ALLOWED: Record<string, OptionSpec> = {
  good: flag,
  usage: value(oneOf(['0'])),
  profile: value(oneOf(['0'])),
  /** The depth of the stream; the worker feeds y4m of that depth (aomenc never writes less than its input's). */
  'bit-depth': value(oneOf(['8', '10'])),
  'use-16bit-internal': flag,
  'global-error-resilient': ZERO_ONE,
  'error-resilient': ZERO_ONE,
  'frame-parallel': ZERO_ONE,
  /** Frames aomenc holds back to look ahead, full pictures each: bounded by libaom's own limit. */
  'lag-in-frames': value(numIn(0, AOMENC_MAX_LAG_IN_FRAMES, true)),
  // Rate control.
  'end-usage': value(oneOf(['vbr', 'cbr', 'cq', 'q'])),
  'target-bitrate': value(numIn(1, 1000000, true)),
  'min-q': value(numIn(0, 63, true)),
  'max-q': value(numIn(0, 63, true)),
  'cq-level': value(numIn(0, 63, true)),
  'undershoot-pct': value(numIn(0, 100, true)),
  'overshoot-pct': value(numIn(0, 100, true)),
  'buf-sz': value(numIn(0, 100000, true)),
  'buf-initial-sz': value(numIn(0, 100000, true)),
  'buf-optimal-sz': value(numIn(0, 100000, true)),
  'bias-pct': value(numIn(0, 100, true)),
  'minsection-pct': value(numIn(0, 100, true)),
  'maxsection-pct': value(numIn(0, 10000, true)),
  'max-intra-rate': value(numIn(0, 100000, true)),
  'max-inter-rate': value(numIn(0, 100000, true)),
  'gf-cbr-boost': value(numIn(0, 100000, true)),
  lossless: ZERO_ONE,
  'vbr-corpus-complexity-lap': value(numIn(0, 10000, true)),
  'min-cr': value(numIn(0, 100000, true)),
  // Super-resolution codes narrower frames and upscales them in the loop: the decoded size stays the source's.
  'superres-mode': value(numIn(0, 4, true)),
  'superres-denominator': value(numIn(8, 16, true)),
  'superres-kf-denominator': value(numIn(8, 16, true)),
  'superres-qthresh': value(numIn(1, 63, true)),
  'superres-kf-qthresh': value(numIn(1, 63, true)),
  // Speed, threads within the worker's count, tiles.
  'cpu-used': value(numIn(0, 9, true)),
  'row-mt': ZERO_ONE,
  'fp-mt': ZERO_ONE,
  'tile-columns': value(numIn(0, 6, true)),
  'tile-rows': value(numIn(0, 6, true)),
  'num-tile-groups': value(numIn(1, 64, true)),
  'mtu-size': value(numIn(0, 65535, true)),
  'sb-size': value(oneOf(['dynamic', '64', '128'])),
  // Prediction structure inside a chunk.
  'auto-alt-ref': ZERO_ONE,
  'arnr-maxframes': value(numIn(0, 15, true)),
  'arnr-strength': value(numIn(0, 6, true)),
  'min-gf-interval': value(numIn(0, 32, true)),
  'max-gf-interval': value(numIn(0, 32, true)),
  'gf-min-pyr-height': value(numIn(0, 5, true)),
  'gf-max-pyr-height': value(numIn(0, 5, true)),
  'kf-max-pyr-height': value(numIn(-1, 5, true)),
  'max-reference-frames': value(numIn(3, 7, true)),
  'reduced-reference-set': ZERO_ONE,
  'enable-keyframe-filtering': ZERO_ONE,
  'enable-tpl-model': ZERO_ONE,
  // Tuning and AV1 tools.
  tune: value(oneOf(['psnr', 'ssim'])),
  'tune-content': value(oneOf(['default', 'screen', 'film'])),
  sharpness: value(numIn(0, 7, true)),
  'static-thresh': value(numIn(0, 100000, true)),
  'noise-sensitivity': value(numIn(0, 6, true)),
  'aq-mode': value(numIn(0, 3, true)),
  'deltaq-mode': value(numIn(0, 3, true)),
  'deltaq-strength': value(numIn(0, 1000, true)),
  'delta-lf-mode': ZERO_ONE,
  'frame-boost': ZERO_ONE,
  'enable-chroma-deltaq': ZERO_ONE,
  'enable-qm': ZERO_ONE,
  'qm-min': value(numIn(0, 15, true)),
  'qm-max': value(numIn(0, 15, true)),
  'dist-metric': value(oneOf(['psnr', 'qm-psnr'])),
  'cdf-update-mode': value(numIn(0, 2, true)),
  'coeff-cost-upd-freq': COST_UPDATE,
  'mode-cost-upd-freq': COST_UPDATE,
  'mv-cost-upd-freq': COST_UPDATE,
  'dv-cost-upd-freq': COST_UPDATE,
  'enable-cdef': value(numIn(0, 2, true)),
  'enable-restoration': ZERO_ONE,
  'loopfilter-control': value(numIn(0, 3, true)),
  'disable-trellis-quant': value(numIn(0, 3, true)),
  'reduced-tx-type-set': value(numIn(0, 3, true)),
  'use-intra-dct-only': ZERO_ONE,
  'use-inter-dct-only': ZERO_ONE,
  'use-intra-default-tx-only': ZERO_ONE,
  'quant-b-adapt': ZERO_ONE,
  'min-partition-size': value(oneOf(['4', '8', '16', '32', '64', '128'])),
  'max-partition-size': value(oneOf(['4', '8', '16', '32', '64', '128'])),
  'sb-qp-sweep': ZERO_ONE,
  'auto-intra-tools-off': ZERO_ONE,
  'force-video-mode': ZERO_ONE,
  'target-seq-level-idx': value(int),
  'set-tier-mask': value(int),
  'strict-level-conformance': ZERO_ONE,
  'timing-info': value(oneOf(['unspecified', 'constant'])),
  // Film grain: synthesised from the test vectors or the denoiser, never a table file.
  'film-grain-test': value(numIn(0, 16, true)),
  'denoise-noise-level': value(numIn(0, 50, true)),
  'denoise-block-size': value(numIn(2, 64, true)),
  'enable-dnl-denoising': ZERO_ONE,
  // Colour description (aomenc's names for CICP code points; range and chroma position come from the y4m the worker feeds).
  'color-primaries': value(oneOf(AOMENC_PRIMARIES)),
  'transfer-characteristics': value(oneOf(AOMENC_TRANSFER)),
  'matrix-coefficients': value(oneOf(AOMENC_MATRIX)),
  quiet: flag,
  'disable-warnings': flag
}
for (const tool of ['rect-partitions', 'ab-partitions', '1to4-partitions', 'dual-filter', 'intra-edge-filter', 'order-hint', 'tx64', 'flip-idtx', 'rect-tx',
  'dist-wtd-comp', 'masked-comp', 'onesided-comp', 'interintra-comp', 'smooth-interintra', 'diff-wtd-comp', 'interinter-wedge', 'interintra-wedge',
  'global-motion', 'warped-motion', 'filter-intra', 'smooth-intra', 'paeth-intra', 'cfl-intra', 'diagonal-intra', 'directional-intra', 'obmc', 'overlay',
  'palette', 'intrabc', 'angle-delta', 'ref-frame-mvs', 'tx-size-search']) ALLOWED[`enable-${tool}`] = ZERO_ONE

/** Options refused on purpose, with the reason shown to the user. */
const REFUSED: Record<string, string> = {
  output: 'it names the output file, which the worker chooses',
  cfg: 'it names a configuration file on disk',
  fpf: 'it names a first-pass statistics file on disk',
  'two-pass-output': 'it names a file on disk',
  'second-pass-log': 'it names a file on disk',
  'partition-info-path': 'it names a file on disk',
  'film-grain-table': 'it names a film grain table file on disk',
  passes: 'multi-pass reads its input twice, which a pipe cannot, and keeps a statistics file; use --end-usage=q with --cq-level',
  pass: 'multi-pass reads its input twice, which a pipe cannot, and keeps a statistics file; use --end-usage=q with --cq-level',
  codec: 'the worker chooses the codec (av1)',
  // Real-time inter frames lose far more than the originator's own encode of a drawn frame (a key
  // frame) at the same --cq-level: honest --rt chunks at --cq-level=40 scored 1.8 on the picture
  // check, whose refusal is at 1 (good mode: 0.13-0.26).
  rt: 'real-time mode loses more per frame than the picture check can tell from a wrong picture, so honest results would be refused; use good mode (the default) with --cpu-used=6 for speed',
  ivf: 'the worker chooses the output format',
  webm: 'the worker chooses the output format',
  obu: 'the worker chooses the output format',
  annexb: 'the worker chooses the output format',
  'large-scale-tile': 'it writes a tile list stream, which is not a playable video',
  limit: 'each chunk is cut by the originator; limiting frames would drop frames',
  skip: 'each chunk is cut by the originator; skipping frames would drop frames',
  'drop-frame': 'dropping frames changes the frame count the merge expects',
  'resize-mode': 'resizing changes the decoded frame size the merge expects; scale the source before adding it',
  'resize-denominator': 'resizing changes the decoded frame size the merge expects; scale the source before adding it',
  'resize-kf-denominator': 'resizing changes the decoded frame size the merge expects; scale the source before adding it',
  'kf-min-dist': KEY_FRAMES_ARE_SWARMS,
  'kf-max-dist': KEY_FRAMES_ARE_SWARMS,
  'disable-kf': KEY_FRAMES_ARE_SWARMS,
  'enable-fwd-kf': KEY_FRAMES_ARE_SWARMS,
  'fwd-kf-dist': KEY_FRAMES_ARE_SWARMS,
  'sframe-dist': KEY_FRAMES_ARE_SWARMS,
  'sframe-mode': KEY_FRAMES_ARE_SWARMS,
  allintra: 'all-intra mode makes every frame a key frame, and swarm places key frames',
  fps: 'the frame rate comes from the source; timestamps are restored at merge',
  timebase: 'timestamps come from the source and are restored at merge',
  width: 'the worker feeds aomenc itself',
  height: 'the worker feeds aomenc itself',
  forced_max_frame_width: 'the frame size comes from the source',
  forced_max_frame_height: 'the frame size comes from the source',
  'input-bit-depth': 'the worker feeds aomenc itself',
  'input-chroma-subsampling-x': 'the worker feeds aomenc itself',
  'input-chroma-subsampling-y': 'the worker feeds aomenc itself',
  i420: 'the worker feeds aomenc itself',
  i422: 'the worker feeds aomenc itself',
  i444: 'the worker feeds aomenc itself',
  yv12: 'the worker feeds aomenc itself',
  nv12: 'the worker feeds aomenc itself',
  monochrome: 'the output keeps the source\'s colour',
  'chroma-sample-position': 'aomenc takes it from the y4m the worker feeds it, which carries the source\'s, and refuses any other',
  threads: 'the worker sets threads to fit its cores',
  debug: 'it is not an encoding option',
  help: 'it is not an encoding option'
}

/** aomenc's short options, mapped to their long names (-b is --bit-depth, -h --height). */
const SHORT: Record<string, string> = {
  c: 'cfg', D: 'debug', o: 'output', p: 'passes', q: 'quiet', u: 'usage', t: 'threads', w: 'width', h: 'height', b: 'bit-depth'
}

export const AOMENC_OPTIONS: OptionTable = { encoder: { name: 'aomenc', article: 'an' }, allowed: ALLOWED, refused: REFUSED, short: SHORT }

/** Whether an allowed aomenc option takes a value (chunkArgs joins it as `--name=value`). */
export function aomencTakesValue (name: string): boolean {
  return ALLOWED[name]?.takesValue === true
}
