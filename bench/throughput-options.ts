/**
 * `npm run bench:throughput`'s command line: its help and its parser, apart from the benchmark so
 * that a test can hold the two to each other (and to the command lines docs/performance.md gives).
 */
import { parseArgs } from 'node:util'
import { VERIFY_MODES } from '../src/jobs/index.js'
import { parseSourceSpec, sourceName } from './sources.js'

export const THROUGHPUT_HELP = `Usage: npm run bench:throughput -- [options]   (node dist/bench/throughput.js [options])

Two swarm join nodes pinned to one core each against plain ffmpeg | x264 --threads 1 on one core,
for every source × preset × verification mode, each case run --runs times (the table gives
medians). Before the cases, each source's decode cost against a --preset faster encode of it.

  --sources LIST   comma-separated: realistic-<N>s (720p, distribution bitrate, 4-9 s GOPs),
                   realistic-1080p-<N>s, stress-<N>s (the noisy near-lossless clip, 1 s GOPs)
                   (default: realistic-40s,realistic-120s,stress-40s)
  --presets LIST   x264 presets, comma-separated (default: faster,medium)
  --crf N          x264 --crf of every case (default: 20)
  --runs N         runs per case (default: 3)
  --verify LIST    all, adaptive or all,adaptive: given to the nodes as swarm join --verify; without
                   it the nodes' own default (all, as they have no --swarm-key)
  --out DIR        where results go: <out>/throughput.json, each run's swarm.json (default: bench-results)
  --no-ceiling     skip the two plain runs at once after each swarm run
  --no-tool-cpu    run the nodes' tools without GNU time: no verification CPU figures
  --remeasure      measure each source's decode and encode cost again (else cached beside it)
  --help           this text
`

export const X264_PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow', 'placebo']

export interface ThroughputOptions {
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
  presets: { type: 'string', default: 'faster,medium' },
  crf: { type: 'string', default: '20' },
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
  return {
    sources: list(values.sources).map(s => sourceName(parseSourceSpec(s))),
    presets: oneOf('presets', list(values.presets), X264_PRESETS),
    crf: wholeNumber('crf', values.crf, 0, 51),
    runs: wholeNumber('runs', values.runs, 1, 100),
    verify: values.verify === undefined ? [] : oneOf('verify', list(values.verify), [...VERIFY_MODES]),
    out: values.out,
    ceiling: !values['no-ceiling'],
    toolCpu: !values['no-tool-cpu'],
    remeasure: values.remeasure
  }
}
