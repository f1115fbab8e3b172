/**
 * What the originator's picture check of a peer's result costs next to the encode it checks
 * (docs/performance.md, "Cost of the picture check"): a realistic 720p source (a Mandelbrot zoom
 * at 3 Mbit/s with 10 s GOPs, as a distribution encode has them), one chunk of it encoded the way
 * a worker does at each preset, then checked the way the originator checks a peer's result. Every
 * tool run is timed by GNU time through the shims of tool-cpu.ts; Node's own share by
 * process.cpuUsage. Run on a quiet machine: `npm run build && node dist/bench/pictures.js`.
 *
 * Options: --presets faster,medium  --seconds 10  --runs 3
 */
import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { comparePictures, cutSegment, encodeChunk, parseX264Settings, planChunks, probeMedia, sourceAsCutSource, type MediaInfo } from '../src/media/index.js'
import { readToolCpu, writeToolShims } from './tool-cpu.js'

/** A 720p source that decodes like a real one: detail and motion, a distribution bitrate, long GOPs. */
async function realisticClip (seconds: number): Promise<string> {
  const dir = join(tmpdir(), 'swarm-bench')
  const path = join(dir, `mandelbrot-720p-${seconds}s-3M.mkv`)
  if (!existsSync(path)) {
    await mkdir(dir, { recursive: true })
    const tmp = `${path}.partial.mkv`
    await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'mandelbrot=size=1280x720:rate=24', '-t', String(seconds),
      '-c:v', 'libx264', '-preset', 'medium', '-b:v', '3M', '-maxrate', '4M', '-bufsize', '8M', '-g', String(seconds * 24), '-pix_fmt', 'yuv420p', tmp])
    await rename(tmp, path)
  }
  return path
}

/** CPU seconds of the tool runs logged since `from` lines, and of Node meanwhile. */
async function cpuOf<T> (log: string, work: () => Promise<T>): Promise<{ value: T, tools: number, node: number }> {
  const before = (await readToolCpu(log)).reduce((a, k) => a + k.cpuSeconds, 0)
  const start = process.cpuUsage()
  const value = await work()
  const used = process.cpuUsage(start)
  const after = (await readToolCpu(log)).reduce((a, k) => a + k.cpuSeconds, 0)
  return { value, tools: after - before, node: (used.user + used.system) / 1e6 }
}

const median = (v: number[]): number => { const s = [...v].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] as number }

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { presets: { type: 'string', default: 'faster,medium' }, seconds: { type: 'string', default: '10' }, runs: { type: 'string', default: '3' } } })
  const seconds = Number(values.seconds)
  const runs = Number(values.runs)
  const work = await mkdtemp(join(tmpdir(), 'swarm-bench-pictures-'))
  try {
    const shims = await writeToolShims(join(work, 'shims'))
    const log = join(work, 'tools.log')
    Object.assign(process.env, shims.envFor(log))
    const clip = await realisticClip(seconds)
    const source: MediaInfo = await probeMedia(clip)
    const chunk = planChunks(source, { gopsPerChunk: 1 }).chunks[0]
    if (chunk === undefined) throw new Error(`${clip}: no chunk`)
    const seg = await cutSegment(source, sourceAsCutSource(source), chunk, join(work, 'segment.mkv'))
    console.log(`source: ${clip} (${source.video.width}x${source.video.height}, ${seg.frameCount} frames in the chunk)`)
    const decode = await cpuOf(log, async () => await execa('ffmpeg', ['-v', 'error', '-nostdin', '-threads', '1', '-i', seg.path, '-f', 'null', '-']))
    console.log(`plain decode of the segment: ${decode.tools.toFixed(2)} s CPU (${(decode.tools / seg.frameCount * 1000).toFixed(1)} ms a frame)`)
    console.log('| preset | encode CPU (s) | check CPU: tools + node (s) | check / encode |')
    console.log('|---|---|---|---|')
    for (const preset of (values.presets ?? '').split(',')) {
      const settings = parseX264Settings(`--preset ${preset}`)
      const encodes: number[] = []
      const checks: Array<{ tools: number, node: number }> = []
      for (let i = 0; i < runs; i++) {
        const out = join(work, `result-${preset}.264`)
        // Threads as a worker with one slot a core would run them; CPU time is what is compared.
        encodes.push((await cpuOf(log, async () => await encodeChunk({ segmentPath: seg.path, selectFromTime: seg.selectFromTime, frameCount: seg.frameCount, settings, frameRate: source.video.frameRate, sourcePixFmt: source.video.pixFmt, outputPath: out, threads: 1 }))).tools)
        const job = { settings, width: source.video.width, height: source.video.height, sourcePixFmt: source.video.pixFmt, frameRate: source.video.frameRate }
        const check = await cpuOf(log, async () => await comparePictures(out, seg, seg.frameCount, { job }))
        checks.push({ tools: check.tools, node: check.node })
      }
      const e = median(encodes)
      const t = median(checks.map(c => c.tools))
      const n = median(checks.map(c => c.node))
      console.log(`| ${preset} | ${e.toFixed(2)} | ${t.toFixed(2)} + ${n.toFixed(2)} | ${((t + n) / e * 100).toFixed(1)}% |`)
    }
    console.log('tool runs by kind:', (await readToolCpu(log)).map(k => `${k.kind} ${k.runs}× ${k.cpuSeconds.toFixed(2)} s`).join('; '))
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}

main().catch((err: unknown) => { console.error(err); process.exitCode = 1 })
