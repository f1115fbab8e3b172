/**
 * `npm run bench:throughput`: the throughput issue's comparison, every case in one table. For each
 * preset and clip length, bench/swarm.ts --pinned-only: plain `ffmpeg | x264 --threads 1` pinned to
 * one core against two `swarm join` nodes pinned to one core each (--slots 1 --threads 1).
 * Writes <out>/throughput.json and each case's swarm.json under <out>/<preset>-<seconds>s/.
 *
 *   --presets faster,medium   --seconds 40,120   --crf 20   --out bench-results
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
    out: { type: 'string', default: 'bench-results' }
  }
})

interface CaseResult {
  preset: string
  seconds: number
  plainSec: number
  swarmSec: number
  speedup: number
  sizeRatio: number
  ssimDelta: number
  cpuRatio: number
  idleShare: number
  chunks: number
}

async function runCase (preset: string, seconds: number, outDir: string): Promise<CaseResult> {
  const dir = join(outDir, `${preset}-${seconds}s`)
  await mkdir(dir, { recursive: true })
  const settings = `--preset ${preset} --crf ${values.crf}`
  console.log(`\n== ${settings}, ${seconds} s clip ==`)
  await execa('node', [join(import.meta.dirname, 'swarm.js'), '--pinned-only', '--nodes', '2', `--settings=${settings}`, '--seconds', String(seconds), '--out', dir], { stdio: 'inherit' })
  const j = JSON.parse(await readFile(join(dir, 'swarm.json'), 'utf8'))
  const k = j.swarmK
  return {
    preset,
    seconds,
    plainSec: j.baseline1.seconds,
    swarmSec: k.seconds,
    speedup: k.speedup,
    sizeRatio: j.goals.sizeRatio.value,
    ssimDelta: j.goals.ssimDelta.value,
    cpuRatio: k.cpuSeconds.total / j.baseline1.cpuSeconds,
    idleShare: k.cpuSeconds.idleCoreSeconds / (2 * k.seconds),
    chunks: k.chunks
  }
}

async function main (): Promise<void> {
  const outDir = resolve(values.out)
  const results: CaseResult[] = []
  for (const preset of values.presets.split(',')) {
    for (const seconds of values.seconds.split(',').map(Number)) results.push(await runCase(preset, seconds, outDir))
  }
  const rows = [
    ['clip, settings', 'plain 1 core (s)', 'swarm 2 × 1 core (s)', 'speedup', 'goal', 'CPU swarm/plain', 'idle', 'size ratio', 'SSIM delta', 'chunks'],
    ...results.map(r => [`${r.seconds} s, --preset ${r.preset} --crf ${values.crf}`, r.plainSec.toFixed(1), r.swarmSec.toFixed(1), r.speedup.toFixed(2), r.speedup >= 1.9 ? '>= 1.9 met' : '>= 1.9 NOT met',
      r.cpuRatio.toFixed(3), `${(100 * r.idleShare).toFixed(1)}%`, r.sizeRatio.toFixed(4), r.ssimDelta.toFixed(5), String(r.chunks)])
  ]
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map(r => r[c]!.length)))
  console.log('')
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd())
  await writeFile(join(outDir, 'throughput.json'), JSON.stringify(results, null, 2) + '\n')
}

main().catch((err) => { console.error(err instanceof Error ? err.message : err); process.exit(1) })
