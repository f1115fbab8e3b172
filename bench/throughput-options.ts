/**
 * `npm run bench:throughput`'s command line: its help and its parser, apart from the benchmark so
 * that a test can hold the two to each other (and to the command lines docs/performance.md gives).
 */
import { parseArgs } from 'node:util'
import { VERIFY_MODES } from '../src/jobs/index.js'
import type { EncoderId } from '../src/media/index.js'
import { BENCH_ENCODERS, encoderNamed, benchSettings } from './lib/encoders.js'
import { parseSourceSpec, sourceName } from './sources.js'

export const THROUGHPUT_HELP = `Usage: npm run bench:throughput -- [options]   (node dist/bench/throughput.js [options])

Two swarm join nodes pinned to one core each against plain ffmpeg | ENCODER on one thread and one
core, for every source × preset × verification mode, each case run --runs times (the table gives
medians). Before the cases, each source's decode cost against an x264 --preset faster encode of it.

  --sources LIST   comma-separated: realistic-<N>s (720p, distribution bitrate, 4-9 s GOPs),
                   realistic-1080p-<N>s, stress-<N>s (the noisy near-lossless clip, 1 s GOPs)
                   (default: realistic-40s,realistic-120s,stress-40s)
  --encoder NAME   x264, x265, svt-av1 or aomenc: the encoder of every case (default: x264)
  --presets LIST   the encoder's presets, comma-separated: x264 and x265 --preset names (default:
                   faster,medium), SVT-AV1 --preset 0-13 (default: 10,8), aomenc --cpu-used=N 0-9
                   (default: 6,4; above 6 encodes as 6 in its good-quality mode)
  --crf N          the quality of every case: x264 and x265 --crf 0-51 (default: 20 and 24),
                   SVT-AV1 --crf 1-63 (default: 35), aomenc --end-usage=q --cq-level=N 0-63 (default: 30)
  --runs N         runs per case (default: 3)
  --verify LIST    all, adaptive or all,adaptive: given to the nodes as swarm join --verify; without
                   it the nodes' own default (all, as they have no --swarm-key)
  --out DIR        where results go: <out>/throughput.json, each run's swarm.json (default: bench-results)
  --no-ceiling     skip the two plain runs at once after each swarm run
  --no-tool-cpu    run the nodes' tools without GNU time: no verification CPU figures
  --remeasure      measure each source's decode and encode cost again (else cached beside it)
  --help           this text
`

export interface ThroughputOptions {
  encoder: EncoderId
  /** Source names as bench/sources.ts spells them. */
  sources: string[]
  presets: string[]
  crf: number
  runs: number
  /** Empty: --verify is not passed (the nodes' default). */
  verify: string[]
  out: string
  ceiling: boolean
  toolCpu: boolean
  remeasure: boolean
}

const OPTIONS = {
  sources: { type: 'string', default: 'realistic-40s,realistic-120s,stress-40s' },
  encoder: { type: 'string', default: 'x264' },
  // Their defaults are the encoder's (bench/lib/encoders.ts).
  presets: { type: 'string' },
  crf: { type: 'string' },
  runs: { type: 'string', default: '3' },
  verify: { type: 'string' },
  out: { type: 'string', default: 'bench-results' },
  'no-ceiling': { type: 'boolean', default: false },
  'no-tool-cpu': { type: 'boolean', default: false },
  remeasure: { type: 'boolean', default: false },
  help: { type: 'boolean', default: false }
} as const

const list = (text: string): string[] => text.split(',').map(s => s.trim()).filter(s => s !== '')

function oneOf (what: string, values: string[], allowed: string[]): string[] {
  const bad = values.filter(v => !allowed.includes(v))
  if (values.length === 0 || bad.length > 0) throw new Error(`--${what}: ${bad.length > 0 ? `unknown ${bad.join(', ')}` : 'empty'}; one or more of ${allowed.join(', ')}`)
  return values
}

function wholeNumber (what: string, text: string, min: number, max: number): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${what} ${text}: a whole number from ${min} to ${max}`)
  return n
}

/** The options, checked; 'help' for --help. Throws on anything it does not know or cannot use. */
export function parseThroughputArgs (argv: string[]): ThroughputOptions | 'help' {
  const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false })
  if (values.help) return 'help'
  const encoder = encoderNamed(values.encoder)
  const e = BENCH_ENCODERS[encoder]
  const presets = oneOf('presets', values.presets === undefined ? [...e.throughputPresets] : list(values.presets), [...e.presets])
  const crf = values.crf === undefined ? e.quality.default : wholeNumber('crf', values.crf, e.quality.min, e.quality.max)
  // The encoder's own parser has the last word, before minutes of plain encoding rather than after.
  for (const preset of presets) benchSettings(encoder, preset, crf)
  return {
    encoder,
    sources: list(values.sources).map(s => sourceName(parseSourceSpec(s))),
    presets,
    crf,
    runs: wholeNumber('runs', values.runs, 1, 100),
    verify: values.verify === undefined ? [] : oneOf('verify', list(values.verify), [...VERIFY_MODES]),
    out: values.out,
    ceiling: !values['no-ceiling'],
    toolCpu: !values['no-tool-cpu'],
    remeasure: values.remeasure
  }
}
