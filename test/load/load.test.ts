import { execa } from 'execa'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobStatus, StatusJson } from '../../src/daemon/index.js'
import { probeMedia } from '../../src/media/index.js'
import { runSwarm, startLocalNode, type LocalNode } from '../../scripts/local-swarm.js'
import { recordTally } from '../helpers/tally.js'
import { ceiling, waitFor } from '../helpers/wait.js'

/**
 * Load: a job of 500 chunks across four nodes with the stand-in encoder (it sleeps, then encodes
 * the two-frame chunk with cheap search so the originator's checks still apply), then a 50-chunk
 * job with the real encoder on the same nodes restarted without it. No chunk lost, none merged
 * twice, and every node's memory stays flat.
 *
 * The 500-chunk job runs in a private swarm (one swarm key), so its results get the checks of
 * adaptive mode: every one the structural check, a peer's first and then one in four the picture
 * check too. With every result picture-checked, five tool starts per two-frame result (0.8 s of
 * CPU a check) made the checks 60% of the test's CPU and it took 10 minutes of CI beside other
 * files; what it is here for (the bookkeeping of 500 chunks and memory) needs neither. The
 * 50-chunk job checks every result (no key: mode all).
 */
let root: string
let big: string
let small: string
let nodes: LocalNode[] = []

async function makeClip (out: string, frames: number): Promise<void> {
  // A keyframe every 2 frames and no B-frames: one chunk per GOP gives frames / 2 chunks.
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=64x36:rate=25',
    '-frames:v', String(frames), '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '2', '-keyint_min', '2', '-sc_threshold', '0', '-bf', '0', '-pix_fmt', 'yuv420p', out])
}

function rssKb (pid: number): Promise<{ rss: number, peak: number }> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => ({
    rss: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0),
    peak: Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0)
  }))
}

async function startFour (env: Record<string, string>, extraArgs: string[] = []): Promise<LocalNode[]> {
  const list: LocalNode[] = []
  const first = await startLocalNode(join(root, 'n0'), { env, slots: 2, extraArgs: ['--lease-seconds', '10', ...extraArgs], timeoutMs: ceiling(30_000) })
  list.push(first)
  for (let i = 1; i < 4; i++) list.push(await startLocalNode(join(root, `n${i}`), { env, slots: 2, extraArgs, bootstrap: [first.addresses[0] as string], timeoutMs: ceiling(30_000) }))
  // The job is planned for the peers the first node sees, and the test expects all four to encode.
  await waitFor('the first node to see the other three', async () =>
    (JSON.parse((await runSwarm(['status', '--home', first.home, '--json'])).stdout) as StatusJson).peers.length >= 3, { timeoutMs: 20_000, everyMs: 200, retryErrors: true })
  return list
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'swarm-load-'))
  big = join(root, 'five hundred.mkv')
  small = join(root, 'fifty.mkv')
  await Promise.all([makeClip(big, 1000), makeClip(small, 100)])
})
afterAll(async () => {
  await Promise.allSettled(nodes.map(async n => await n.stop()))
  await rm(root, { recursive: true, force: true })
})

describe('load', () => {
  it('finishes a 500-chunk job across four nodes and a 50-chunk real encode, with flat memory', async () => {
    const key = join(root, 'swarm.key')
    expect((await runSwarm(['key', 'generate', key])).exitCode).toBe(0)
    nodes = await startFour({ SWARM_TEST_ENCODER: 'sleep:5' }, ['--swarm-key', key])
    const samples: Array<Array<{ rss: number, peak: number }>> = []
    const sampler = setInterval(() => { void Promise.all(nodes.map(async n => await rssKb(n.proc.pid as number))).then(s => samples.push(s)).catch(() => {}) }, 1000)
    const started = Date.now()
    const add = await runSwarm(['add', big, '--preset veryfast', '--home', nodes[0]!.home, '--chunk-gops', '1', '--output', join(root, 'big out.mkv'), '--wait', '--json'])
    const seconds = (Date.now() - started) / 1000
    clearInterval(sampler)
    expect(add.stderr).toBe('')
    expect(add.exitCode).toBe(0)
    const job = (JSON.parse(add.stdout) as { job: JobStatus }).job
    expect(job.state).toBe('done')
    expect(job.chunks.total).toBe(500)
    const counts = Object.values(job.encodedBy)
    // Every chunk exactly once: the per-peer counts add up to the chunk count.
    expect(counts.reduce((a, b) => a + b, 0)).toBe(500)
    expect(Object.keys(job.encodedBy).length).toBe(4)
    expect((await probeMedia(join(root, 'big out.mkv'))).video.frameCount).toBe(1000)
    const record = JSON.parse(await readFile(join(nodes[0]!.home, 'jobs', job.id, 'job.json'), 'utf8')) as { verify?: string, chunks: Array<{ result?: { encodedBy: string, check?: string } }>, stats?: { backupLeases: number, droppedResults: number } }
    expect(record.chunks.every(c => c.result !== undefined)).toBe(true)
    // Checked adaptively: the three peers' results, each by structure and some by pictures too.
    expect(record.verify).toBe('adaptive')
    const checks = { full: 0, structural: 0 }
    for (const c of record.chunks) if (c.result?.check === 'full' || c.result?.check === 'structural') checks[c.result.check]++
    expect(checks.full).toBeGreaterThanOrEqual(3)
    expect(checks.structural).toBeGreaterThan(checks.full)

    // Memory: the peak of each node in the second half of the run is within 64 MiB of the first half's.
    const half = Math.floor(samples.length / 2)
    const peaks = nodes.map((_, i) => ({
      first: Math.max(...samples.slice(0, half).map(s => s[i]?.rss ?? 0)),
      second: Math.max(...samples.slice(half).map(s => s[i]?.rss ?? 0)),
      hwm: Math.max(...samples.map(s => s[i]?.peak ?? 0))
    }))
    for (const p of peaks) expect(p.second - p.first).toBeLessThan(64 * 1024)
    const spread = counts.sort((a, b) => a - b)
    recordTally({
      section: 'Load',
      fault: '500-chunk job (1,000 frames, one GOP of 2 frames per chunk) on 4 nodes × 2 slots in a private swarm, stand-in encoder',
      happened: `done in ${seconds.toFixed(0)} s; chunks per node ${spread.join('/')}; peers' results checked adaptively: ${checks.full} in full, ${checks.structural} by structure; backup leases ${record.stats?.backupLeases ?? 0}, dropped duplicate results ${record.stats?.droppedResults ?? 0}; ` +
        `peak RSS per node ${peaks.map(p => `${Math.round(p.hwm / 1024)}`).join('/')} MiB (first-half vs second-half max RSS differ by at most ${Math.round(Math.max(...peaks.map(p => p.second - p.first)) / 1024)} MiB)`,
      lost: 'nothing (500/500 chunks merged once, 1,000/1,000 frames)'
    })

    // The same nodes again, with the real encoder, on a 50-chunk job.
    await Promise.all(nodes.map(async n => await n.stop()))
    nodes = await startFour({})
    const t2 = Date.now()
    const real = await runSwarm(['add', small, '--preset veryfast --crf 30', '--home', nodes[1]!.home, '--chunk-gops', '1', '--output', join(root, 'small out.mkv'), '--wait', '--json'])
    expect(real.exitCode).toBe(0)
    const job2 = (JSON.parse(real.stdout) as { job: JobStatus }).job
    expect(job2.chunks.total).toBe(50)
    expect(Object.values(job2.encodedBy).reduce((a, b) => a + b, 0)).toBe(50)
    expect((await probeMedia(join(root, 'small out.mkv'))).video.frameCount).toBe(100)
    // No key: every peer's result was checked in full.
    const record2 = JSON.parse(await readFile(join(nodes[1]!.home, 'jobs', job2.id, 'job.json'), 'utf8')) as { verify?: string, chunks: Array<{ result?: { encodedBy: string, check?: string } }> }
    expect(record2.verify).toBe('all')
    expect(record2.chunks.filter(c => c.result?.encodedBy !== nodes[1]!.peerId).every(c => c.result?.check === 'full')).toBe(true)
    const rss = await Promise.all(nodes.map(async n => await rssKb(n.proc.pid as number)))
    recordTally({
      section: 'Load',
      fault: '50-chunk job with the real x264 encoder on the same 4 nodes (restarted, no swarm key: every result checked in full)',
      happened: `done in ${((Date.now() - t2) / 1000).toFixed(0)} s; chunks per node ${Object.values(job2.encodedBy).join('/')}; peak RSS per node ${rss.map(r => Math.round(r.peak / 1024)).join('/')} MiB`,
      lost: 'nothing (50/50 chunks, 100/100 frames)'
    })
    // Only a ceiling: what is measured (memory, chunks merged once) does not depend on the pace.
  }, ceiling(600_000))
})
