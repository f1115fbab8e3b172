/**
 * `npm run bench`: the chunked pipeline (split + every chunk encoded one after another + merge)
 * against one plain `ffmpeg | x264` run over the whole file with the same settings and threads.
 * Prints a table and writes bench-results/pipeline.json. Not part of the tests.
 */
import { mkdir, rm, stat, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { encodeFileLocally, parseX264Settings, probeMedia } from '../src/media/index.js'
import { ensureBenchClip, plainEncode, ssim } from './clip.js'

const { values } = parseArgs({
  options: {
    settings: { type: 'string', default: '--preset medium --crf 20' },
    threads: { type: 'string', default: String(availableParallelism()) },
    seconds: { type: 'string', default: '30' },
    out: { type: 'string', default: 'bench-results' }
  }
})

async function main (): Promise<void> {
  const threads = Number(values.threads)
  const clip = await ensureBenchClip(Number(values.seconds))
  const source = await probeMedia(clip.path)
  const settings = parseX264Settings(values.settings)
  const work = join(tmpdir(), `swarm-bench-run-${process.pid}`)
  await mkdir(work, { recursive: true })
  console.log(`clip: ${clip.path} (${source.video.width}x${source.video.height}, ${source.video.frameCount} frames)`)
  console.log(`settings: ${settings.raw}   threads: ${threads}`)

  // Baseline: one decoder piped into one x264 over the whole file.
  const plainOut = join(work, 'plain.264')
  const plainSec = await plainEncode(clip.path, source, settings, threads, plainOut)

  const report = await encodeFileLocally(clip.path, settings, { workDir: join(work, 'pipeline'), outputPath: join(work, 'pipeline.mkv'), threads, keepWork: true })
  const pipelineSec = report.timings.totalSec
  const pipelineVideoBytes = report.encodedBytes
  const plainBytes = (await stat(plainOut)).size
  const ssimPlain = await ssim(plainOut, clip.path)
  const ssimPipeline = await ssim(report.output.path, clip.path)

  const rows = [
    ['', 'plain ffmpeg|x264', 'swarm pipeline', 'ratio / delta', 'goal'],
    ['time (s)', plainSec.toFixed(2), pipelineSec.toFixed(2), (pipelineSec / plainSec).toFixed(3), '<= 1.05'],
    ['video bytes', String(plainBytes), String(pipelineVideoBytes), (pipelineVideoBytes / plainBytes).toFixed(4), 'within 3%'],
    ['SSIM', ssimPlain.toFixed(5), ssimPipeline.toFixed(5), (ssimPipeline - ssimPlain).toFixed(5), 'within 0.002']
  ]
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map(r => r[c]!.length)))
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c]!)).join('  '))
  console.log(`pipeline stages: split ${report.timings.splitSec.toFixed(2)} s, encode ${report.timings.encodeSec.toFixed(2)} s, merge ${report.timings.mergeSec.toFixed(2)} s; ${report.plan.chunks.length} chunks`)
  await mkdir(values.out, { recursive: true })
  const json = {
    clip: clip.path, frames: source.video.frameCount, settings: settings.raw, threads, chunks: report.plan.chunks.length,
    plain: { seconds: plainSec, videoBytes: plainBytes, ssim: ssimPlain },
    pipeline: { seconds: pipelineSec, videoBytes: pipelineVideoBytes, ssim: ssimPipeline, ...report.timings },
    timeRatio: pipelineSec / plainSec, sizeRatio: pipelineVideoBytes / plainBytes, ssimDelta: ssimPipeline - ssimPlain
  }
  await writeFile(join(values.out, 'pipeline.json'), JSON.stringify(json, null, 2) + '\n')
  console.log(`wrote ${join(values.out, 'pipeline.json')}`)
  await rm(work, { recursive: true, force: true })
}

main().catch((err) => { console.error(err instanceof Error ? err.message : err); process.exit(1) })
