/**
 * `npm run bench:throughput` (issue 27): two `swarm join` nodes pinned to one core each against
 * plain `ffmpeg | x264 --threads 1` on one core (or --encoder's encoder on one thread), for every
 * source × preset × verification mode (bench/throughput-options.ts has the options). Each run is bench/swarm.ts --pinned-only: the
 * plain run, the swarm, the plain run again and (unless --no-ceiling) two plain runs at once; the
 * table gives each figure's median over a case's runs, and the speedup's range.
 *
 * Before the cases, each source's cost: its bit rate, its GOPs, and the CPU of decoding it against
 * a `--preset faster` encode of it (bench/sources.ts). After them, the chunk plan of each case and
 * its tail: from the first node to run out of work to the last encode's end, and to the job's end.
 *
 * Writes <out>/throughput.json, and each run's swarm.json and node logs under
 * <out>/<source>[-<encoder>]-<preset>[-<verify>]/run-<n>/ (the encoder named unless it is x264).
 */
import { execa } from 'execa'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join, resolve } from 'node:path'
import { checkCommandLine } from '../cli/main.js'
import { readEventLog } from '../scripts/local-swarm.js'
import { DEFAULT_ENCODER } from '../src/media/index.js'
import type { NodeEvent } from '../src/swarm/index.js'
import { formatTable, markdownTable } from './lib/table.js'
import { ensureSource, parseSourceSpec, sourceCost, type SourceCost } from './sources.js'
import { parseThroughputArgs, THROUGHPUT_HELP, type ThroughputOptions } from './throughput-options.js'
import { BENCH_ENCODERS } from './lib/encoders.js'
import { caseDirName, caseRows, caseSettingsLabel, runFigures, sourceRows, summariseCase, verifyLabel, type CaseKey, type CaseSummary, type RunFigures, type SwarmJson } from './throughput-report.js'

/** Every source made and measured (cached after the first time), in the order asked. */
async function prepareSources (o: ThroughputOptions): Promise<Array<{ name: string, cost: SourceCost }>> {
  const out: Array<{ name: string, cost: SourceCost }> = []
  for (const name of o.sources) {
    const clip = await ensureSource(parseSourceSpec(name))
    const cost = await sourceCost(clip, o.remeasure)
    out.push({ name, cost })
  }
  return out
}

function caseDir (o: ThroughputOptions, key: CaseKey): string {
  return join(resolve(o.out), caseDirName(key))
}

/** One run of a case: bench/swarm.ts in a process of its own, then its swarm.json and the nodes' event logs. */
async function runOnce (o: ThroughputOptions, key: CaseKey, run: number): Promise<RunFigures> {
  const dir = join(caseDir(o, key), `run-${run}`)
  await mkdir(dir, { recursive: true })
  console.log(`\n== ${key.source}, ${caseSettingsLabel(key, o.crf)}, verify ${verifyLabel(key.verify)}, run ${run} of ${o.runs} (load average ${loadavg()[0]?.toFixed(2)}) ==`)
  await execa('node', [join(import.meta.dirname, 'swarm.js'), '--pinned-only', '--bracket', ...(o.ceiling ? ['--ceiling'] : []), ...(o.toolCpu ? ['--tool-cpu'] : []),
    '--nodes', '2', '--encoder', key.encoder, `--settings=${BENCH_ENCODERS[key.encoder].settings(key.preset, o.crf)}`, '--source', key.source, ...(key.verify !== '' ? ['--verify', key.verify] : []), '--out', dir], { stdio: 'inherit' })
  const json = JSON.parse(await readFile(join(dir, 'swarm.json'), 'utf8')) as SwarmJson
  const events: NodeEvent[][] = await Promise.all(Array.from({ length: json.swarmK.nodes }, async (_, i) => await readEventLog(join(dir, 'swarm-logs', `swarm-k-node${i + 1}.events.jsonl`))))
  return runFigures(json, events)
}

function printTables (title: string, rows: string[][]): void {
  console.log(`\n${title}\n${formatTable(rows)}\n\nas Markdown:\n${markdownTable(rows)}`)
}

/** What each case's plan was, and how long its last chunks kept one node busy while the other had nothing left. */
function printPlans (cases: CaseSummary[]): void {
  console.log('\nchunk plans (seconds of source per chunk) and tails (median over the runs):')
  for (const c of cases) {
    const tail = c.median.tailIdleSec === null ? 'no tail figure' : `tail ${c.median.tailIdleSec.toFixed(1)} s from the first node going idle to the last encode's end, ${c.median.tailToEndSec?.toFixed(1)} s to the job's end`
    console.log(`  ${c.source} ${c.encoder === DEFAULT_ENCODER ? '' : `${c.encoder} `}${c.preset} ${verifyLabel(c.verify)}: ${c.chunkSeconds.length} chunks: ${c.chunkSeconds.map(s => s.toFixed(1)).join(' ')}; ${tail}`)
  }
}

async function main (): Promise<void> {
  const o = parseThroughputArgs(process.argv.slice(2))
  if (o === 'help') { console.log(THROUGHPUT_HELP); return }
  // The nodes are this build's `swarm join`: a --verify it does not know would fail the first run after minutes of plain encoding.
  for (const mode of o.verify) {
    const problem = checkCommandLine(['join', '--verify', mode])
    if (problem !== undefined) throw new Error(`--verify ${mode}: this build's swarm join does not take it (${problem})`)
  }
  const sources = await prepareSources(o)
  printTables('sources (CPU on one core; decode: the plain encode\'s decoder alone):', sourceRows(sources))
  const cases: CaseSummary[] = []
  const runs: Record<string, RunFigures[]> = {}
  for (const source of o.sources) {
    for (const preset of o.presets) {
      for (const verify of o.verify.length > 0 ? o.verify : ['']) {
        const key = { encoder: o.encoder, source, preset, verify }
        const figures: RunFigures[] = []
        for (let run = 1; run <= o.runs; run++) figures.push(await runOnce(o, key, run))
        runs[caseDir(o, key)] = figures
        cases.push(summariseCase(key, figures))
      }
    }
  }
  printTables(`medians of ${o.runs} run${o.runs > 1 ? 's' : ''} per case (load average now ${loadavg().map(n => n.toFixed(2)).join(' ')}):`, caseRows(cases, o.crf))
  printPlans(cases)
  await mkdir(resolve(o.out), { recursive: true })
  await writeFile(join(resolve(o.out), 'throughput.json'), JSON.stringify({ options: o, sources, cases, runs }, null, 2) + '\n')
  console.log(`\nwrote ${join(o.out, 'throughput.json')}`)
}

main().catch((err) => { console.error(err instanceof Error ? err.message : err); process.exit(1) })
