/**
 * The demo behind `bash scripts/demo.sh`: three `swarm join` processes on 127.0.0.1 with mDNS off,
 * a generated 10-bit sample with two audio tracks, subtitles, a font and chapters, `swarm add --wait`
 * on the first node, then checks of the output: frame count, codec and depth, and every track kept.
 * `--encoder NAME` encodes with x265, SVT-AV1 or aomenc instead of x264, at a fast preset of its
 * own unless --settings says otherwise.
 */
import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { encoderFor, probeMedia } from '../src/media/index.js'
import { encoderNamed } from '../bench/lib/encoders.js'
import { DEMO_SETTINGS } from './demo-settings.js'
import { startLocalNode, SWARM_CLI as SWARM, type LocalNode } from './local-swarm.js'
import { makeOpenGop10bit } from './sample.js'

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '3' },
    encoder: { type: 'string', default: 'x264' },
    // Without it, DEMO_SETTINGS of the encoder.
    settings: { type: 'string' },
    seconds: { type: 'string', default: '12' },
    out: { type: 'string', default: 'demo-output' },
    keep: { type: 'boolean', default: false }
  }
})

function say (line: string): void { process.stdout.write(`[demo] ${line}\n`) }

async function main (): Promise<void> {
  const encoderId = encoderNamed(values.encoder)
  const encoder = encoderFor(encoderId)
  // Parsed here as the node will: a refused option stops the demo before any node starts.
  const settings = encoder.parseSettings(values.settings ?? DEMO_SETTINGS[encoderId])
  const outDir = resolve(values.out)
  await mkdir(outDir, { recursive: true })
  const sample = join(outDir, 'Demo Sample - 01.mkv')
  if (!existsSync(sample)) {
    say(`making a ${values.seconds} s 10-bit sample with two audio tracks, ASS subtitles, a font and chapters`)
    const work = await mkdtemp(join(tmpdir(), 'swarm-demo-sample-'))
    await makeOpenGop10bit(work, sample, { seconds: Number(values.seconds), size: '640x360' })
    await rm(work, { recursive: true, force: true })
  }
  const root = await mkdtemp(join(tmpdir(), 'swarm-demo-'))
  const nodes: LocalNode[] = []
  const stopAll = async (): Promise<void> => {
    await Promise.allSettled(nodes.map(async n => await n.stop()))
    if (!values.keep) await rm(root, { recursive: true, force: true })
  }
  process.on('SIGINT', () => { void stopAll().then(() => process.exit(130)) })
  try {
    const count = Math.max(1, Number(values.nodes))
    for (let i = 0; i < count; i++) {
      const home = join(root, `node${i + 1}`)
      const node = await startLocalNode(home, { bootstrap: i === 0 ? [] : [nodes[0]!.addresses[0]!], onStderr: (d) => { process.stderr.write(`[node ${i + 1}] ${d}`) } })
      nodes.push(node)
      say(`node ${i + 1}: ${node.peerId} on ${node.addresses.join(', ')}`)
    }
    const output = join(outDir, `Demo Sample - 01 [${encoderId}].mkv`)
    await rm(output, { force: true })
    say(`swarm add "${sample}" "${settings.raw}" --encoder ${encoderId} --wait`)
    const started = performance.now()
    const add = await execa(process.execPath, [SWARM, 'add', sample, settings.raw, '--encoder', encoderId, '--home', nodes[0]!.home, '--output', output, '--wait'], { stdout: 'pipe', stderr: 'inherit', reject: false })
    if (add.exitCode !== 0) throw new Error(`swarm add failed (exit ${add.exitCode}): ${add.stdout}`)
    process.stdout.write(add.stdout + '\n')
    const seconds = (performance.now() - started) / 1000
    const status = await execa(process.execPath, [SWARM, 'status', '--home', nodes[0]!.home, '--json'])
    const job = (JSON.parse(status.stdout) as { jobs: Array<{ encodedBy: Record<string, number>, output: string | null }> }).jobs.find(j => j.output === output)
    const [src, out] = await Promise.all([probeMedia(sample), probeMedia(output)])
    const kinds = (info: typeof src): string => ['audio', 'subtitle', 'attachment'].map(t => `${info.streams.filter(s => s.type === t).length} ${t}`).join(', ')
    const video = out.streams.find(s => s.index === out.video.streamIndex)
    const checks: Array<[string, boolean, string]> = [
      ['frames', out.video.frameCount === src.video.frameCount, `${out.video.frameCount} out, ${src.video.frameCount} in`],
      ['video', video?.codec === encoder.codec && out.video.bitDepth === settings.outputDepth, `${video?.codec ?? '?'} ${video?.profile ?? ''} ${out.video.pixFmt} (source ${src.video.profile ?? ''} ${src.video.pixFmt})`],
      ['tracks kept', kinds(out) === kinds(src), `${kinds(out)} (source: ${kinds(src)})`],
      ['chapters kept', out.chapterCount === src.chapterCount, `${out.chapterCount} of ${src.chapterCount}`],
      ['peers that encoded', Object.keys(job?.encodedBy ?? {}).length >= Math.min(2, nodes.length), JSON.stringify(job?.encodedBy ?? {})]
    ]
    say(`output: ${output} (${seconds.toFixed(1)} s with ${nodes.length} nodes)`)
    for (const [name, ok, detail] of checks) say(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${detail}`)
    if (checks.some(c => !c[1])) process.exitCode = 1
  } finally {
    await stopAll()
  }
}

main().catch((err) => { console.error(`[demo] ${err instanceof Error ? err.message : String(err)}`); process.exit(1) })
