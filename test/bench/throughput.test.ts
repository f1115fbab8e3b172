/**
 * `npm run bench:throughput`'s pure parts: its command line (the help, the parser, the docs' command
 * lines, the built script's --help), the figures it takes from a run's swarm.json and event logs,
 * and its tables. No timing: the benchmark itself is not run here.
 */
import { execa } from 'execa'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseThroughputArgs, THROUGHPUT_HELP } from '../../bench/throughput-options.js'
import { BENCH_ENCODERS, benchSettings } from '../../bench/lib/encoders.js'
import { caseDirName, caseRows, caseSettingsLabel, runFigures, speedupGoal, summariseCase, tailFigures, verificationFigures, type RunFigures, type SwarmJson } from '../../bench/throughput-report.js'
import { PROJECT_ROOT } from '../../scripts/local-swarm.js'
import { ENCODER_IDS, splitSettings } from '../../src/media/index.js'
import type { NodeEvent } from '../../src/swarm/index.js'

const SAMPLE_VALUES: Record<string, string> = { '--encoder': 'x264', '--sources': 'realistic-40s', '--presets': 'faster', '--crf': '20', '--runs': '1', '--verify': 'adaptive', '--out': 'x' }

describe('the command line', () => {
  it('has the defaults the issue asks for', () => {
    expect(parseThroughputArgs([])).toEqual({
      encoder: 'x264',
      sources: ['realistic-40s', 'realistic-120s', 'stress-40s'], presets: ['faster', 'medium'], crf: 20, runs: 3, verify: [], out: 'bench-results', ceiling: true, toolCpu: true, remeasure: false
    })
  })

  it('takes every option its help names, and names every option it takes', () => {
    const named = [...new Set([...THROUGHPUT_HELP.matchAll(/^\s+(--[a-z-]+)/gm)].map(m => m[1] as string))]
    expect(named.length).toBeGreaterThanOrEqual(10)
    for (const option of named) {
      const argv = option in SAMPLE_VALUES ? [option, SAMPLE_VALUES[option] as string] : [option]
      expect(() => parseThroughputArgs(argv), option).not.toThrow()
    }
    expect(parseThroughputArgs(['--help'])).toBe('help')
    expect(parseThroughputArgs(['--sources', 'realistic-1080p-40s,stress-120s', '--verify', 'all,adaptive', '--runs', '1', '--no-ceiling', '--no-tool-cpu'])).toMatchObject({
      sources: ['realistic-1080p-40s', 'stress-120s'], verify: ['all', 'adaptive'], runs: 1, ceiling: false, toolCpu: false
    })
  })

  it('refuses what it cannot run', () => {
    for (const argv of [['--presets', 'fastest'], ['--verify', 'some'], ['--runs', '0'], ['--runs', '1.5'], ['--crf', '60'], ['--sources', 'clip-40s'], ['--seconds', '40'], ['extra']]) {
      expect(() => parseThroughputArgs(argv), argv.join(' ')).toThrow()
    }
  })

  it('takes each encoder\'s own presets and quality range, with defaults of its own', () => {
    expect(parseThroughputArgs(['--encoder', 'svt-av1'])).toMatchObject({ encoder: 'svt-av1', presets: ['10', '8'], crf: 35 })
    expect(parseThroughputArgs(['--encoder', 'aomenc', '--presets', '0,9', '--crf', '63'])).toMatchObject({ encoder: 'aomenc', presets: ['0', '9'], crf: 63 })
    expect(parseThroughputArgs(['--encoder', 'x265', '--presets', 'veryfast'])).toMatchObject({ encoder: 'x265', presets: ['veryfast'], crf: 24 })
    expect(parseThroughputArgs(['--encoder', 'svt-av1', '--presets', '13', '--crf', '1'])).toMatchObject({ presets: ['13'], crf: 1 })
    for (const argv of [['--encoder', 'x266'], ['--encoder', 'svt-av1', '--presets', 'faster'], ['--encoder', 'svt-av1', '--presets', '14'], ['--encoder', 'svt-av1', '--crf', '0'],
      ['--encoder', 'aomenc', '--presets', '10'], ['--encoder', 'aomenc', '--crf', '64'], ['--encoder', 'x265', '--crf', '52'], ['--presets', '8']]) {
      expect(() => parseThroughputArgs(argv), argv.join(' ')).toThrow()
    }
  })

  it('makes settings every encoder\'s own parser takes, at both ends of its presets and quality', () => {
    expect(BENCH_ENCODERS.x264.settings('faster', 20)).toBe('--preset faster --crf 20')
    expect(BENCH_ENCODERS['svt-av1'].settings('10', 35)).toBe('--preset 10 --crf 35')
    expect(BENCH_ENCODERS.aomenc.settings('6', 30)).toBe('--cpu-used=6 --end-usage=q --cq-level=30')
    for (const id of ENCODER_IDS) {
      const { presets, quality } = BENCH_ENCODERS[id]
      for (const preset of [presets[0]!, presets.at(-1)!]) {
        for (const q of [quality.min, quality.default, quality.max]) expect(benchSettings(id, preset, q).encoder, `${id} ${preset} ${q}`).toBe(id)
      }
    }
  })

  it('parses every command line of it in the docs', () => {
    const docs = ['README.md', ...readdirSync(join(PROJECT_ROOT, 'docs')).filter(f => f.endsWith('.md')).map(f => `docs/${f}`)]
    const lines = docs.flatMap(file => readFileSync(join(PROJECT_ROOT, file), 'utf8').split('\n')
      .flatMap(line => [...line.matchAll(/(?:npm run bench:throughput(?: --)?|node dist\/bench\/throughput\.js)([^`#\n]*)/g)].map(m => ({ file, args: m[1] as string }))))
    expect(lines.length).toBeGreaterThan(0)
    for (const { file, args } of lines) expect(() => parseThroughputArgs(splitSettings(args.trim())), `${file}: ${args}`).not.toThrow()
  })

  it('prints its help from the built script', async () => {
    const { stdout } = await execa('node', [join(PROJECT_ROOT, 'dist', 'bench', 'throughput.js'), '--help'])
    expect(stdout.trim()).toBe(THROUGHPUT_HELP.trim())
  })
})

const at = (t: number): { at: number } => ({ at: t * 1000 })
const base = { jobId: 'j', originator: 'o' }

describe('figures of a run', () => {
  const originatorEvents = [
    { type: 'chunk:done', ...base, chunk: 0, peer: 'o', bytes: 1, verifyMs: 1, ...at(10) },
    { type: 'chunk:done', ...base, chunk: 1, peer: 'w', bytes: 1, verifyMs: 900, check: 'full', ...at(11) },
    { type: 'chunk:done', ...base, chunk: 2, peer: 'w', bytes: 1, verifyMs: 20, check: 'structural', ...at(20) },
    { type: 'encode:finished', ...base, chunk: 0, frames: 100, ms: 1, ...at(9) },
    { type: 'upload:accepted', ...base, chunk: 0, bytes: 1, ms: 1, ...at(10) },
    { type: 'encode:finished', ...base, chunk: 3, frames: 100, ms: 1, ...at(30) },
    { type: 'upload:accepted', ...base, chunk: 3, bytes: 1, ms: 1, ...at(30) },
    { type: 'merge:done', jobId: 'j', ms: 900, output: 'out.mkv', ...at(34) }
  ] as NodeEvent[]
  const workerEvents = [
    { type: 'encode:finished', ...base, chunk: 2, frames: 100, ms: 1, ...at(26) },
    { type: 'upload:accepted', ...base, chunk: 2, bytes: 1, ms: 1, ...at(27) },
    // A backup copy of chunk 3 that lost: work for nothing, so the worker's useful work ended at 26 s.
    { type: 'encode:finished', ...base, chunk: 3, frames: 100, ms: 1, ...at(31) },
    { type: 'upload:refused', ...base, chunk: 3, code: 'already-done', reason: 'done', ...at(32) }
  ] as NodeEvent[]
  const toolCpu = [
    [{ kind: 'ffmpeg: picture checks', runs: 4, cpuSeconds: 1.5 }, { kind: 'ffmpeg: structure reference', runs: 1, cpuSeconds: 0.1 }, { kind: 'x264: structure reference', runs: 1, cpuSeconds: 0.1 }, { kind: 'x264: encodes', runs: 2, cpuSeconds: 30 }],
    [{ kind: 'x264: encodes', runs: 2, cpuSeconds: 15 }, { kind: 'ffmpeg: decodes for encodes', runs: 2, cpuSeconds: 2 }]
  ]

  it('verification: the originator\'s checking tools against the other nodes\' encodes, per checked result', () => {
    const v = verificationFigures(toolCpu, originatorEvents)
    expect(v).toMatchObject({ full: 1, structural: 1 })
    expect(v?.share).toBeCloseTo(1.7 / 17)
    expect(v?.cpuPerResult).toBeCloseTo(0.85)
    expect(verificationFigures(null, originatorEvents)).toBeNull()
    expect(verificationFigures([toolCpu[0]!], originatorEvents)).toBeNull()
  })

  it('tail: from the first node to finish its last kept encode to the last one\'s end and to the merge\'s end', () => {
    expect(tailFigures([originatorEvents, workerEvents])).toEqual({ idleSec: 4, toEndSec: 8 })
    expect(tailFigures([originatorEvents])).toBeNull()
  })

  it('reads a swarm.json', () => {
    const json: SwarmJson = {
      frames: 960,
      seconds: 40,
      baseline1: { seconds: 60, cpuSeconds: 58, secondsAfterSwarm: 62 },
      ceiling: { speedup: 1.97 },
      toolCpuPerNode: toolCpu,
      swarmK: { nodes: 2, seconds: 40, speedup: 1.5, speedupAgainstMeanBaseline: 1.525, chunkFrames: [168, 120, 216, 192, 144, 120], cpuSeconds: { total: 64, idleCoreSeconds: 16, beside: { benchSampling: 0.5, otherCpu: 2, steal: 0.25 } } },
      goals: { sizeRatio: { value: 0.98 }, ssimDelta: { value: -0.0001 } }
    }
    const r = runFigures(json, [originatorEvents, workerEvents])
    expect(r).toMatchObject({ plainSec: 60, plainAfterSec: 62, swarmSec: 40, speedup: 1.5, speedupAgainstMean: 1.525, ceiling: 1.97, idleShare: 0.2, besideSwarm: 2.75, sizeRatio: 0.98, ssimDelta: -0.0001, tail: { idleSec: 4, toEndSec: 8 } })
    expect(r.cpuRatio).toBeCloseTo(64 / 58)
    expect(r.chunkSeconds).toEqual([7, 5, 9, 8, 6, 5])
  })
})

function run (speedupAgainstMean: number, extra: Partial<RunFigures> = {}): RunFigures {
  return {
    plainSec: 60, plainAfterSec: null, swarmSec: 60 / speedupAgainstMean, speedup: speedupAgainstMean, speedupAgainstMean, ceiling: null, cpuRatio: 1.1, idleShare: 0.05,
    besideSwarm: 1, sizeRatio: 0.98, ssimDelta: 0, chunkSeconds: [7, 5, 9], verification: null, tail: null, ...extra
  }
}

describe('a case over its runs', () => {
  it('takes each figure\'s median, keeps nulls where no run had the figure, and the range', () => {
    const s = summariseCase({ encoder: 'x264', source: 'realistic-40s', preset: 'faster', verify: '' }, [run(1.5), run(1.9, { tail: { idleSec: 3, toEndSec: 5 } }), run(1.7)])
    expect(s.median.speedupAgainstMean).toBeCloseTo(1.7)
    expect(s.median.plainAfterSec).toBeNull()
    expect(s.median.tailIdleSec).toBe(3)
    expect(s.median.verificationShare).toBeNull()
    expect(s.speedupRange).toEqual([1.5, 1.9])
    expect(s.runs).toBe(3)
  })

  it('states the issue\'s goal per source, preset and mode, and a report where it asks for none', () => {
    expect(speedupGoal({ encoder: 'x264', source: 'realistic-40s', preset: 'faster', verify: 'adaptive' })).toBe(1.9)
    expect(speedupGoal({ encoder: 'x264', source: 'realistic-120s', preset: 'faster', verify: 'all' })).toBe(1.8)
    expect(speedupGoal({ encoder: 'x264', source: 'realistic-120s', preset: 'medium', verify: '' })).toBe(1.85)
    expect(speedupGoal({ encoder: 'x264', source: 'stress-40s', preset: 'medium', verify: 'adaptive' })).toBe(1.9)
    expect(speedupGoal({ encoder: 'x264', source: 'stress-40s', preset: 'faster', verify: 'adaptive' })).toBeUndefined()
    expect(speedupGoal({ encoder: 'x264', source: 'realistic-40s', preset: 'slow', verify: 'all' })).toBeUndefined()
    expect(speedupGoal({ encoder: 'x265', source: 'realistic-40s', preset: 'faster', verify: 'adaptive' })).toBeUndefined()
  })

  it('makes a table with a cell for every column, the verification mode named', () => {
    const cases = [summariseCase({ encoder: 'x264', source: 'realistic-40s', preset: 'faster', verify: 'adaptive' }, [run(1.95), run(1.92)]), summariseCase({ encoder: 'x264', source: 'stress-40s', preset: 'faster', verify: '' }, [run(1.4)])]
    const rows = caseRows(cases, 20)
    expect(new Set(rows.map(r => r.length)).size).toBe(1)
    expect(rows[1]).toContain('adaptive')
    expect(rows[1]).toContain('≥ 1.9 met')
    expect(rows[2]).toContain('all (default)')
    expect(rows[2]).toContain('report')
    expect(rows[1]).toContain('--preset faster --crf 20')
  })

  it('names an encoder other than x264 in the table and the case\'s folder, and x264\'s as before', () => {
    const svt = { encoder: 'svt-av1', source: 'realistic-40s', preset: '10', verify: 'adaptive' } as const
    const x264 = { encoder: 'x264', source: 'realistic-40s', preset: 'faster', verify: '' } as const
    expect(caseDirName(svt)).toBe('realistic-40s-svt-av1-10-adaptive')
    expect(caseDirName(x264)).toBe('realistic-40s-faster')
    expect(caseSettingsLabel(svt, 35)).toBe('svt-av1 --preset 10 --crf 35')
    expect(caseSettingsLabel(x264, 20)).toBe('--preset faster --crf 20')
    const rows = caseRows([summariseCase(svt, [run(1.95)])], 35)
    expect(rows[1]).toContain('svt-av1 --preset 10 --crf 35')
    expect(rows[1]).toContain('report')
  })
})
