/**
 * Encodes that fail (issue 4, "Faults" 5): a worker without x264 gives its chunks back with a reason
 * and stops claiming that job; a chunk that fails everywhere fails the job, with the reason in
 * `swarm status --json` and exit 1 from `swarm add --wait`, instead of going round forever.
 */
import { execa } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobStatus } from '../../src/daemon/index.js'
import { probeMedia } from '../../src/media/index.js'
import { runSwarm, SWARM_CLI, type LocalNode } from '../../scripts/local-swarm.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import {
  addJob, dumpLogs, expectCompleteJob, jobRecord, leasesInLog, makeClip, nodeStatus, pathWithoutX264, secs, short, startSwarm, stopNodes,
  tallyFault, waitForJobEnd
} from '../helpers/faults.js'
import { ceiling, waitFor } from '../helpers/wait.js'

const LEASE_S = 4
let root: string
let fx: Fixtures
const nodes: LocalNode[] = []
let o: LocalNode
let a: LocalNode
let b: LocalNode

beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-faults-failures-'))
  const noX264 = await pathWithoutX264(join(root, 'bin-without-x264'))
  const started = await startSwarm(root, [
    { name: 'o', extraArgs: ['--lease-seconds', String(LEASE_S), '--verbose'], env: { SWARM_TEST_ENCODER: 'delay:100' } },
    // A has ffmpeg, ffprobe and mkvmerge but no x264.
    { name: 'a', extraArgs: ['--verbose'], env: { PATH: noX264 } },
    { name: 'b', extraArgs: ['--verbose'], env: { SWARM_TEST_ENCODER: 'delay:100' } }
  ], nodes) as [LocalNode, LocalNode, LocalNode]
  o = started[0]
  a = started[1]
  b = started[2]
})
afterAll(async () => {
  await stopNodes(nodes)
  dumpLogs(nodes)
  await rm(root, { recursive: true, force: true })
})

/**
 * `swarm add FILE SETTINGS --chunk-gops 7 --wait --json`, bounded so a job that never ends fails
 * the test instead of hanging it. The bound is a ceiling, stretched on a busy machine: what these
 * tests check is that the job ends (fails), not how fast.
 */
async function addAndWait (home: string, file: string, settings: string, output: string, timeoutMs: number): Promise<{ exitCode: number | undefined, timedOut: boolean, stdout: string, stderr: string, ms: number }> {
  const started = Date.now()
  const r = await execa(process.execPath, [SWARM_CLI, 'add', '--home', home, file, settings, '--output', output, '--chunk-gops', '7', '--wait', '--json'], { reject: false, stdin: 'ignore', timeout: ceiling(timeoutMs) })
  return { exitCode: r.exitCode, timedOut: r.timedOut, stdout: String(r.stdout), stderr: String(r.stderr), ms: Date.now() - started }
}

/** A job error for the tally: its first words and x264's own last line, without the scratch paths in between. */
function brief (error: string | undefined): string {
  const lines = (error ?? '').split('\n')
  const first = (lines[0] ?? '').replace(/encoding \/\S+: /, '')
  return lines.length > 1 ? `${first} … ${lines.at(-1) ?? ''}` : first
}

/** Leases of a job the originator's log says lapsed ("lease on JOB8#N held by PEER8 expired"), of one holder or all. */
function expiredLeases (log: string, jobId: string, holder?: string): number {
  const re = new RegExp(`lease on ${jobId.slice(0, 8)}#\\d+ held by (\\S+) expired`, 'g')
  return [...log.matchAll(re)].filter(m => holder === undefined || m[1] === short(holder)).length
}

/** Grants minus those that lapsed: for each lapse, that holder's earliest grant of the chunk before it. */
function withoutLapsed<T extends { chunk: number, holder: string, at: number }> (grants: T[], log: string, jobId: string): T[] {
  const left = [...grants]
  const re = new RegExp(`lease on ${jobId.slice(0, 8)}#(\\d+) held by (\\S+) expired`, 'g')
  for (const m of log.matchAll(re)) {
    const i = left.findIndex(g => g.chunk === Number(m[1]) && g.holder === m[2] && g.at < m.index)
    if (i >= 0) left.splice(i, 1)
  }
  return left
}

async function localJob (file: string, home = o.home): Promise<JobStatus | undefined> {
  return (await nodeStatus(home)).jobs.find(j => j.local && j.file === file)
}

describe('encodes that fail', () => {
  it('a worker without x264 claims none of an x264 job\'s chunks (it advertises none and knows it has none); they are encoded elsewhere', async () => {
    // GOPs of 3 frames, 7 to a chunk: 6 chunks of 21 frames, some open for seconds while O and B work.
    const clip = await makeClip(join(root, 'src', 'six-chunks.mkv'), { frames: 6 * 21, keyint: 3 })
    const srcFrames = (await probeMedia(clip)).video.frameCount
    const job = await addJob(o.home, clip, '--preset ultrafast --crf 30', join(root, 'out', 'no-x264.mkv'))
    const end = await waitForJobEnd(o.home, job.id, 60_000)
    expect(end.state).toBe('done')
    const { record, frames } = await expectCompleteJob(o.home, job.id, srcFrames)
    // Before, A claimed, failed ("x264 was not found on PATH") and gave chunks back twice; now it never claims.
    expect(Object.keys(end.encodedBy)).not.toContain(a.peerId)
    expect(record.chunks.flatMap(c => c.failures)).toEqual([])
    expect(leasesInLog(o.stderr(), job.id).filter(l => l.holder === short(a.peerId))).toEqual([])
    expect(a.stderr()).toMatch(new RegExp(`not taking chunks of ${job.id.slice(0, 8)} from ${short(o.peerId)}: this node has no x264 encoder`))
    expect((await nodeStatus(o.home)).peers.find(p => p.id === a.peerId)?.encoders?.map(e => e.encoder)).not.toContain('x264')

    tallyFault('a worker without x264',
      `A advertised no encoders and claimed none of the job's ${record.chunks.length} chunks ("this node has no x264 encoder"), no chunk was given back; ` +
      `O and B encoded them all; output ${frames}/${srcFrames} frames`)
  })

  it('settings x264 refuses everywhere (--profile high --qp 0) on a job of several chunks: the job fails with the reason and swarm add --wait exits 1', async () => {
    // Every node fails: O and B because their x264 refuses lossless in High profile, A for want of x264.
    const clip = await makeClip(join(root, 'src', 'three-chunks.mkv'), { frames: 3 * 21, keyint: 3, pattern: 'smptebars' })
    const output = join(root, 'out', 'refused.mkv')
    let r: Awaited<ReturnType<typeof addAndWait>> | undefined
    try {
      r = await addAndWait(o.home, clip, '--profile high --qp 0', output, 30_000)
      expect(r.timedOut).toBe(false)
      expect(r.exitCode).toBe(1)
      const status = await localJob(clip)
      expect(status?.state).toBe('failed')
      expect(status?.error ?? '').toMatch(/lossless|x264/)
      const printed = JSON.parse(r.stdout) as { job: JobStatus }
      expect(printed.job.state).toBe('failed')
      expect(printed.job.error).toBe(status?.error)
      const cli = JSON.parse((await runSwarm(['status', '--home', o.home, '--json'])).stdout) as { jobs: JobStatus[] }
      expect(cli.jobs.find(j => j.id === status?.id)?.error).toBe(status?.error)
      const record = await jobRecord(o.home, status?.id as string)
      const leases = leasesInLog(o.stderr(), record.id)

      tallyFault('a job of several chunks whose settings every x264 refuses (--profile high --qp 0, and one node without x264)',
        `${record.chunks.length} chunks, ${leases.length} leases in all, ${record.chunks.reduce((n, c) => n + c.failures.length, 0)} failures from ${new Set(record.chunks.flatMap(c => c.failures.map(f => f.peer))).size} peers; ` +
        `the job failed ${secs(r.ms)} after swarm add --wait started, which exited 1; swarm status --json: "${brief(status?.error)}"`)
    } finally {
      // A job that did not fail must not keep the swarm busy for the next test.
      const j = await localJob(clip)
      if (j !== undefined && j.state !== 'failed' && j.state !== 'done') {
        const rec = await jobRecord(o.home, j.id).catch(() => undefined)
        console.error(`job ${j.id.slice(0, 12)} still ${j.state} after ${r?.ms ?? '?'} ms: chunks ${JSON.stringify(j.chunks)}; failures ${JSON.stringify(rec?.chunks.map(c => c.failures.map(f => `${short(f.peer)}`)))}`)
        await runSwarm(['cancel', j.id, '--home', o.home])
      }
    }
  })

  it('a one-chunk job that fails on every node that can encode it fails once each has tried, with the reason, and swarm add --wait exits 1', async () => {
    // shortClip is 18 frames, less than a GOP: one chunk, which O and B (A has no x264) try in turn.
    const r = await addAndWait(o.home, fx.shortClip, '--profile high --qp 0 --preset ultrafast', join(root, 'out', 'short-refused.mkv'), 30_000)
    expect(r.timedOut).toBe(false)
    expect(r.exitCode).toBe(1)
    const status = await localJob(fx.shortClip)
    expect(status?.state).toBe('failed')
    expect(status?.chunks.total).toBe(1)
    expect(status?.error ?? '').toMatch(/encode failed: .*x264/)
    const record = await jobRecord(o.home, status?.id as string)
    const peers = new Set(record.chunks[0]?.failures.map(f => f.peer))
    expect(peers).toEqual(new Set([o.peerId, b.peerId]))
    // Each node that can encode it tried at most twice (a lease, or a backup copy while another
    // held it): no loop; the job fails once both gave up. A lease that lapsed (a heartbeat late on
    // a busy machine) is no try: its holder may be given the chunk again, so each lapse allows one more grant.
    const log = o.stderr()
    const grants = leasesInLog(log, record.id)
    const tries = withoutLapsed(grants, log, record.id)
    expect(tries.length).toBeLessThanOrEqual(4)
    for (const holder of new Set(tries.map(g => g.holder))) expect(tries.filter(g => g.holder === holder).length).toBeLessThanOrEqual(2)
    expect(tries.map(g => g.holder)).not.toContain(short(a.peerId))

    tallyFault('a one-chunk job that fails on every node (--profile high --qp 0)',
      `the chunk was leased ${grants.length} times, once to each node with x264 (the third has none and claims nothing), and given back with a reason each time; the job failed ${secs(r.ms)} after swarm add --wait started, which exited 1; ` +
      `swarm status --json: "${brief(status?.error)}"`)
  })
  it('in a swarm of two, a chunk that fails on the only node with x264 fails the job instead of waiting for a peer that can encode it', async () => {
    // P's x264 refuses the settings, Q has no x264 (and advertises none): nobody in this swarm can encode the job.
    const [p, q] = await startSwarm(root, [
      { name: 'p', extraArgs: ['--lease-seconds', String(LEASE_S), '--verbose'] },
      { name: 'q', extraArgs: ['--verbose'], env: { PATH: await pathWithoutX264(join(root, 'bin-without-x264')) } }
    ], nodes) as [LocalNode, LocalNode]
    let r: Awaited<ReturnType<typeof addAndWait>> | undefined
    try {
      r = await addAndWait(p.home, fx.shortClip, '--profile high --qp 0', join(root, 'out', 'two-nodes-refused.mkv'), 25_000)
      expect(r.timedOut).toBe(false)
      expect(r.exitCode).toBe(1)
      const status = await localJob(fx.shortClip, p.home)
      expect(status?.state).toBe('failed')
      expect(status?.error ?? '').toMatch(/x264/)
      const record = await jobRecord(p.home, status?.id as string)
      // Q has no x264, says so, and claims nothing: P alone could encode it, and P gave up.
      expect(new Set(record.chunks[0]?.failures.map(f => f.peer))).toEqual(new Set([p.peerId]))

      tallyFault('in a swarm of two nodes, a chunk P\'s x264 refuses (--profile high --qp 0) and Q has no x264',
        `${record.chunks[0]?.failures.length ?? 0} attempts in all, all P's (Q claims no x264 job), each given back with a reason; the job failed ${secs(r.ms)} after swarm add --wait started, which exited 1; swarm status --json: "${brief(status?.error)}"`)
    } finally {
      const j = await localJob(fx.shortClip, p.home)
      if (j !== undefined && j.state !== 'failed' && j.state !== 'done') {
        const rec = await jobRecord(p.home, j.id).catch(() => undefined)
        console.error(`job ${j.id.slice(0, 12)} still ${j.state} after ${r?.ms ?? '?'} ms: chunks ${JSON.stringify(j.chunks)}; failures ${JSON.stringify(rec?.chunks.map(c => c.failures.map(f => `${short(f.peer)}`)))}`)
      }
    }
  })
})
