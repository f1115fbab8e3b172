import { numericTuple, numIn, oneOf, token, value, type OptionSpec, type OptionTable } from '../settings.js'
import { MAX_LOOKAHEAD_FRAMES } from './x264-options.js'

/*
 * SvtAv1EncApp's allowlist (SVT-AV1 1.4.1, Debian bookworm): every option a stranger's settings
 * may pass to a worker's SvtAv1EncApp, each value checked against the range its --help states, and
 * the options refused on purpose with the reason the user is shown. SvtAv1EncApp takes an option's
 * value as the next word (never `--name=value`), which is how parsed settings hold them.
 */

const ZERO_ONE = value(numIn(0, 1, true))
const QINDEX_OFFSET = value(numIn(-256, 255, true))
const KEY_FRAMES_ARE_SWARMS = 'swarm places key frames: one at the start of each chunk (the chunks are cut at the source\'s own key frames), none inside it'

/** Long option name → spec. Every option here is an encoding decision and touches no file. */
const ALLOWED: Record<string, OptionSpec> = {
  preset: value(numIn(0, 13, true)),
  profile: value(oneOf(['0'])),
  level: value(numIn(0, 7.3)),
  /** The depth of the stream; the worker feeds y4m of that depth (SvtAv1EncApp takes the y4m's). */
  'input-depth': value(oneOf(['8', '10'])),
  'enable-hdr': ZERO_ONE,
  'enable-stat-report': ZERO_ONE,
  asm: value(oneOf(['c', 'mmx', 'sse', 'sse2', 'sse3', 'ssse3', 'sse4_1', 'sse4_2', 'avx', 'avx2', 'avx512', 'max'])),
  // Rate control.
  rc: value(oneOf(['0', '1', '2'])),
  qp: value(numIn(1, 63, true)),
  crf: value(numIn(1, 63, true)),
  tbr: value(numIn(1, 100000, true)),
  mbr: value(numIn(0, 100000, true)),
  'max-qp': value(numIn(1, 63, true)),
  'min-qp': value(numIn(1, 63, true)),
  'aq-mode': value(numIn(0, 2, true)),
  'use-fixed-qindex-offsets': value(numIn(0, 2, true)),
  'key-frame-qindex-offset': QINDEX_OFFSET,
  'key-frame-chroma-qindex-offset': QINDEX_OFFSET,
  'qindex-offsets': value(numericTuple),
  'chroma-qindex-offsets': value(numericTuple),
  'luma-y-dc-qindex-offset': value(numIn(-64, 63, true)),
  'chroma-u-dc-qindex-offset': value(numIn(-64, 63, true)),
  'chroma-u-ac-qindex-offset': value(numIn(-64, 63, true)),
  'chroma-v-dc-qindex-offset': value(numIn(-64, 63, true)),
  'chroma-v-ac-qindex-offset': value(numIn(-64, 63, true)),
  'undershoot-pct': value(numIn(0, 100, true)),
  'overshoot-pct': value(numIn(0, 100, true)),
  'mbr-overshoot-pct': value(numIn(0, 100, true)),
  'gop-constraint-rc': ZERO_ONE,
  'buf-sz': value(numIn(0, 10000, true)),
  'buf-initial-sz': value(numIn(0, 10000, true)),
  'buf-optimal-sz': value(numIn(0, 10000, true)),
  'recode-loop': value(numIn(0, 4, true)),
  'bias-pct': value(numIn(0, 100, true)),
  'minsection-pct': value(numIn(0, 100, true)),
  'maxsection-pct': value(numIn(0, 10000, true)),
  'enable-qm': ZERO_ONE,
  'qm-min': value(numIn(0, 15, true)),
  'qm-max': value(numIn(0, 15, true)),
  // Prediction structure inside a chunk.
  /**
   * Frames looked at ahead of the mini-GOP, full pictures each: SvtAv1EncApp takes up to 120,
   * bounded like x264's lookahead for the same reason (memory a worker never agreed to). -1: its own choice.
   */
  lookahead: value(numIn(-1, MAX_LOOKAHEAD_FRAMES, true)),
  'hierarchical-levels': value(numIn(2, 5, true)),
  'pred-struct': value(oneOf(['1', '2'])),
  // AV1 tools.
  'tile-rows': value(numIn(0, 6, true)),
  'tile-columns': value(numIn(0, 4, true)),
  'enable-dlf': ZERO_ONE,
  'enable-cdef': ZERO_ONE,
  'enable-restoration': ZERO_ONE,
  'enable-tpl-la': ZERO_ONE,
  'enable-mfmv': value(numIn(-1, 1, true)),
  'fast-decode': ZERO_ONE,
  'enable-tf': ZERO_ONE,
  'enable-overlays': ZERO_ONE,
  tune: ZERO_ONE,
  scm: value(numIn(0, 2, true)),
  rmv: ZERO_ONE,
  'film-grain': value(numIn(0, 50, true)),
  'film-grain-denoise': ZERO_ONE,
  // Super-resolution codes narrower frames and upscales them in the loop: the decoded size stays the source's.
  'superres-mode': value(numIn(0, 4, true)),
  'superres-denom': value(numIn(8, 16, true)),
  'superres-kf-denom': value(numIn(8, 16, true)),
  'superres-qthres': value(numIn(0, 63, true)),
  'superres-kf-qthres': value(numIn(0, 63, true)),
  // Colour description (CICP numbers or SvtAv1EncApp's names for them).
  'color-primaries': value(token),
  'transfer-characteristics': value(token),
  'matrix-coefficients': value(token),
  'color-range': value(oneOf(['0', '1', 'studio', 'full'])),
  'chroma-sample-position': value(oneOf(['unknown', 'vertical', 'left', 'colocated', 'topleft'])),
  'mastering-display': value(token),
  'content-light': value(numericTuple)
}

/** Options refused on purpose, with the reason shown to the user. */
const REFUSED: Record<string, string> = {
  input: 'the worker feeds SvtAv1EncApp itself',
  output: 'it names the output file, which the worker chooses',
  config: 'it names a configuration file on disk',
  errlog: 'it names a file on disk',
  recon: 'it writes a file on disk',
  'stat-file': 'it names a file on disk',
  stats: 'it names a stats file on disk',
  pass: 'multi-pass reads its input twice, which a pipe cannot, and keeps a stats file; use --crf (or --rc 1 --tbr)',
  passes: 'multi-pass reads its input twice, which a pipe cannot, and keeps a stats file; use --crf (or --rc 1 --tbr)',
  qpfile: 'it names a file on disk',
  'use-q-file': 'it reads QPs from a file on disk',
  'fgs-table': 'it names a film grain table file on disk',
  'svtav1-params': 'it passes options past this check; give each option on its own',
  keyint: KEY_FRAMES_ARE_SWARMS,
  scd: KEY_FRAMES_ARE_SWARMS,
  'irefresh-type': `${KEY_FRAMES_ARE_SWARMS}, and a chunk's first frame is always a closed-GOP key frame`,
  'force-key-frames': KEY_FRAMES_ARE_SWARMS,
  frames: 'each chunk is cut by the originator; limiting frames would drop frames',
  nb: 'it buffers any number of input pictures in memory',
  fps: 'the frame rate comes from the source; timestamps are restored at merge',
  'fps-num': 'the frame rate comes from the source; timestamps are restored at merge',
  'fps-denom': 'the frame rate comes from the source; timestamps are restored at merge',
  inj: 'it paces the input in real time',
  'inj-frm-rt': 'it paces the input in real time',
  width: 'the worker feeds SvtAv1EncApp itself',
  height: 'the worker feeds SvtAv1EncApp itself',
  'forced-max-frame-width': 'the frame size comes from the source',
  'forced-max-frame-height': 'the frame size comes from the source',
  'color-format': 'the worker feeds SvtAv1EncApp itself (4:2:0, all it encodes)',
  'compressed-ten-bit-format': 'the worker feeds SvtAv1EncApp itself',
  'resize-mode': 'resizing changes the decoded frame size the merge expects; scale the source before adding it',
  'resize-denom': 'resizing changes the decoded frame size the merge expects; scale the source before adding it',
  'resize-kf-denom': 'resizing changes the decoded frame size the merge expects; scale the source before adding it',
  lp: 'the worker sets threads to fit its cores',
  pin: 'the worker sets threads to fit its cores',
  ss: 'the worker sets threads to fit its cores',
  progress: 'the worker reads SvtAv1EncApp\'s progress itself',
  'no-progress': 'the worker reads SvtAv1EncApp\'s progress itself',
  help: 'it is not an encoding option',
  version: 'it is not an encoding option'
}

/** SvtAv1EncApp's short options, mapped to their long names (-h is --height, not help). */
const SHORT: Record<string, string> = {
  i: 'input', b: 'output', c: 'config', o: 'recon', w: 'width', h: 'height', n: 'frames', q: 'qp'
}

export const SVT_AV1_OPTIONS: OptionTable = { encoder: { name: 'SVT-AV1', article: 'an' }, allowed: ALLOWED, refused: REFUSED, short: SHORT }

