/**
 * `npm run bench:throughput`: the throughput issue's comparison, every case in one table. For each
 * preset and clip length, bench/swarm.ts --pinned-only: plain `ffmpeg | x264 --threads 1` pinned to
 * one core against two `swarm join` nodes pinned to one core each (--slots 1 --threads 1).
 * Writes <out>/throughput.json and each case's swarm.json under <out>/<preset>-<seconds>s/.
 *
 * Each case brackets the swarm with two plain runs (before and after) and ends with two plain runs
 * at once, one per core: the speedup is given against both, and against what the machine's two
 * cores give with no swarm at all (--no-ceiling skips the last two runs).
 *
 * With --repeat N each case runs N times (into run-1 … run-N) and the table gives the median of
 * each figure with the range of the speedup: one run's speedup moves by 5-10% with the VM's speed.
 *
 * --tool-cpu gives the nodes' tool CPU by purpose (bench/tool-cpu.ts; needs GNU time).
 *
 *   --presets faster,medium   --seconds 40,120   --crf 20   --out bench-results   --no-ceiling   --repeat 1   --tool-cpu
 */
import { execa } from 'execa'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    presets: { type: 'string', default: 'faster,medium' },
    seconds: { type: 'string', default: '40,120' },
    crf: { type: 'string', default: '20' },
    out: { type: 'string', default: 'bench-results' },
    'no-ceiling': { type: 'boolean', default: false },
    repeat: { type: 'string', default: '1' },
    'tool-cpu': { type: 'boolean', default: false }
  }
})

interface CaseResult {
  preset: string
  seconds: number
  plainSec: number
  plainAfterSec: number | null
  swarmSec: number
  speedup: number
  speedupAgainstMean: number
  ceiling: number | null
  sizeRatio: number
  ssimDelta: number
  cpuRatio: number
  idleShare: number
  /** CPU seconds of the bench's sampling, other processes and steal during the swarm run: each makes its idle share (and speedup) say less. */
  besideSwarm: number
  chunks: number
}

async function runCase (preset: string, seconds: number, outDir: string, run: number, runs: number): Promise<CaseResult> {
  const dir = join(outDir, `${preset}-${seconds}s`, ...(runs > 1 ? [`run-${run}`] : []))
  await mkdir(dir, { recursive: true })
  const settings = `--preset ${preset} --crf ${values.crf}`
  console.log(`\n== ${settings}, ${seconds} s clip${runs > 1 ? `, run ${run} of ${runs}` : ''} ==`)
  await execa('node', [join(import.meta.dirname, 'swarm.js'), '--pinned-only', '--bracket', ...(values['no-ceiling'] === true ? [] : ['--ceiling']), ...(values['tool-cpu'] === true ? ['--tool-cpu'] : []), '--nodes', '2', `--settings=${settings}`, '--seconds', String(seconds), '--out', dir], { stdio: 'inherit' })
  const j = JSON.parse(await readFile(join(dir, 'swarm.json'), 'utf8'))
  const k = j.swarmK
  return {
    preset,
    seconds,
    plainSec: j.baseline1.seconds,
    plainAfterSec: j.baseline1.secondsAfterSwarm,
    swarmSec: k.seconds,
    speedup: k.speedup,
    speedupAgainstMean: k.speedupAgainstMeanBaseline,
    ceiling: j.ceiling?.speedup ?? null,
    sizeRatio: j.goals.sizeRatio.value,
    ssimDelta: j.goals.ssimDelta.value,
    cpuRatio: k.cpuSeconds.total / j.baseline1.cpuSeconds,
    idleShare: k.cpuSeconds.idleCoreSeconds / (2 * k.seconds),
    besideSwarm: (k.cpuSeconds.beside?.benchSampling ?? 0) + (k.cpuSeconds.beside?.otherCpu ?? 0) + (k.cpuSeconds.beside?.steal ?? 0),
    chunks: k.chunks
  }
}

function median (xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** One row per case: each figure's median over the case's runs (null figures stay null). */
function summarise (runs: CaseResult[]): CaseResult & { runs: number, speedupRange: [number, number] } {
  const m = (pick: (r: CaseResult) => number | null): number | null => {
    const xs = runs.map(pick).filter((x): x is number => x !== null && Number.isFinite(x))
    return xs.length === 0 ? null : median(xs)
  }
  const first = runs[0] as CaseResult
  const mean = runs.map(r => r.speedupAgainstMean)
  return {
    preset: first.preset,
    seconds: first.seconds,
    plainSec: m(r => r.plainSec) as number,
    plainAfterSec: m(r => r.plainAfterSec),
    swarmSec: m(r => r.swarmSec) as number,
    speedup: m(r => r.speedup) as number,
    speedupAgainstMean: m(r => r.speedupAgainstMean) as number,
    ceiling: m(r => r.ceiling),
    sizeRatio: m(r => r.sizeRatio) as number,
    ssimDelta: m(r => r.ssimDelta) as number,
    cpuRatio: m(r => r.cpuRatio) as number,
    idleShare: m(r => r.idleShare) as number,
    besideSwarm: m(r => r.besideSwarm) as number,
    chunks: first.chunks,
    runs: runs.length,
    speedupRange: [Math.min(...mean), Math.max(...mean)]
  }
}

async function main (): Promise<void> {
  const outDir = resolve(values.out)
  const repeat = Math.max(1, Math.floor(Number(values.repeat)))
  const all: CaseResult[][] = []
  for (const preset of values.presets.split(',')) {
    for (const seconds of values.seconds.split(',').map(Number)) {
      const runs: CaseResult[] = []
      for (let run = 1; run <= repeat; run++) runs.push(await runCase(preset, seconds, outDir, run, repeat))
      all.push(runs)
    }
  }
  const results = all.map(summarise)
  const rows = [
    ['clip, settings', 'plain 1 core (s) before / after', 'swarm 2 × 1 core (s)', 'speedup', 'against mean plain', ...(repeat > 1 ? ['range'] : []), 'goal', 'ceiling', 'CPU swarm/plain', 'idle', 'bench + others + steal (s)', 'size ratio', 'SSIM delta', 'chunks'],
    ...results.map(r => [`${r.seconds} s, --preset ${r.preset} --crf ${values.crf}`, `${r.plainSec.toFixed(1)} / ${r.plainAfterSec?.toFixed(1) ?? '-'}`, r.swarmSec.toFixed(1), r.speedup.toFixed(2), r.speedupAgainstMean.toFixed(2),
      ...(repeat > 1 ? [`${r.speedupRange[0].toFixed(2)}–${r.speedupRange[1].toFixed(2)}`] : []), r.speedupAgainstMean >= 1.9 ? '>= 1.9 met' : '>= 1.9 NOT met', r.ceiling?.toFixed(2) ?? '-',
      r.cpuRatio.toFixed(3), `${(100 * r.idleShare).toFixed(1)}%`, r.besideSwarm.toFixed(1), r.sizeRatio.toFixed(4), r.ssimDelta.toFixed(5), String(r.chunks)])
  ]
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map(r => r[c]!.length)))
  console.log(repeat > 1 ? `\nmedians of ${repeat} runs per case` : '')
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd())
  await writeFile(join(outDir, 'throughput.json'), JSON.stringify(repeat > 1 ? results.map((r, i) => ({ ...r, each: all[i] })) : results, null, 2) + '\n')
}

main().catch((err) => { console.error(err instanceof Error ? err.message : err); process.exit(1) })
