/**
 * What `swarm` says when something is wrong or interrupted: one line that says what to do, never
 * an internal route, a libp2p setting or a stack trace. Real `swarm` processes on 127.0.0.1.
 */
import { execa } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { shortPeer } from '../../src/log/index.js'
import type { JobStatus } from '../../src/daemon/index.js'
import { runSwarm, startLocalNode, SWARM_CLI, type LocalNode } from '../../scripts/local-swarm.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { waitFor } from '../helpers/wait.js'

let root: string
let fx: Fixtures
let node: LocalNode

/** stderr without blank lines: what a person sees. */
function linesOf (stderr: string): string[] { return stderr.split('\n').filter(l => l.trim() !== '') }

/** Adds the fixture with settings no other test uses here, so each test gets a job of its own. */
async function addJob (crf: number): Promise<JobStatus> {
  const r = await runSwarm(['add', fx.openGop10bit, `--preset superfast --crf ${crf}`, '--home', node.home, '--output', join(root, `out-${crf}.mkv`), '--json'])
  expect(r.exitCode).toBe(0)
  return (JSON.parse(r.stdout) as { job: JobStatus }).job
}

beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-messages-'))
  // A slow encoder keeps every job encoding for as long as a test looks at it.
  node = await startLocalNode(join(root, 'a'), { env: { SWARM_TEST_ENCODER: 'delay:200' } })
})
afterAll(async () => {
  await node?.stop()
  await rm(root, { recursive: true, force: true })
})

describe('messages instead of internals', () => {
  it('swarm status with a prefix that cannot be a job id says no job matches and where jobs are listed', async () => {
    const r = await runSwarm(['status', 'abc', '--home', node.home])
    expect(r.exitCode).toBe(1)
    expect(linesOf(r.stderr)).toEqual([expect.stringMatching(/^swarm: no job matches 'abc' .*; `swarm status` lists jobs$/)])
    expect(r.stderr).not.toMatch(/route|\/v1\//)
  })

  it('swarm status with a well-formed prefix no job has says the same', async () => {
    const r = await runSwarm(['status', 'abcd', '--home', node.home])
    expect(r.exitCode).toBe(1)
    expect(linesOf(r.stderr)).toEqual(['swarm: no job matches \'abcd\'; `swarm status` lists jobs'])
  })

  it('swarm cancel with a prefix that is not hex says no job matches', async () => {
    const r = await runSwarm(['cancel', 'zzzz', '--home', node.home])
    expect(r.exitCode).toBe(1)
    expect(linesOf(r.stderr)).toEqual([expect.stringMatching(/^swarm: no job matches 'zzzz' .*; `swarm status` lists jobs$/)])
    expect(r.stderr).not.toMatch(/route|DELETE|\/v1\//)
  })

  it('swarm cancel with a prefix answers with the full id of the job it cancelled, and the originator logs it', async () => {
    const job = await addJob(30)
    const prefix = job.id.slice(0, 4)
    const r = await runSwarm(['cancel', prefix, '--home', node.home])
    expect(r.stderr).toBe('')
    expect(r.exitCode).toBe(0)
    expect(r.stdout.trim()).toBe(`cancelled ${job.id}`)
    await waitFor('the originator to log the cancel', () => node.stderr().includes(`${job.id.slice(0, 12)} cancelled`))
  })

  it('swarm cancel on a node that did not add the job says which node can cancel it', async () => {
    const other = await startLocalNode(join(root, 'c'), { env: { SWARM_TEST_ENCODER: 'delay:200' }, bootstrap: [node.addresses[0] as string] })
    try {
      const job = await addJob(32)
      const prefix = job.id.slice(0, 6)
      // The other node hears of the job through its announcement.
      await waitFor('the other node to list the job', async () => {
        const r = await runSwarm(['status', prefix, '--json', '--home', other.home])
        return r.exitCode === 0
      })
      const r = await runSwarm(['cancel', prefix, '--home', other.home])
      expect(r.exitCode).toBe(1)
      expect(linesOf(r.stderr)).toEqual([`swarm: job ${job.id.slice(0, 12)} was added on another node (${shortPeer(node.peerId)}); only that node can cancel it`])
      expect((await runSwarm(['cancel', prefix, '--home', node.home])).stdout.trim()).toBe(`cancelled ${job.id}`)
    } finally {
      await other.stop()
    }
  })

  it('swarm join on a port another program holds says which port and which option picks another, in one line', async () => {
    const port = /\/tcp\/(\d+)\//.exec(node.addresses[0] as string)?.[1]
    expect(port).toBeDefined()
    const r = await runSwarm(['join', '--home', join(root, 'b'), '--listen', `/ip4/127.0.0.1/tcp/${port as string}`, '--no-mdns', '--no-upnp'])
    expect(r.exitCode).toBe(2)
    expect(linesOf(r.stderr)).toEqual([`swarm: port ${port as string} is in use by another program (or another swarm node); choose another with --listen /ip4/127.0.0.1/tcp/PORT, or stop what uses it`])
    expect(r.stderr).not.toMatch(/faultTolerance|EADDRINUSE|\bat /)
  })

  it('swarm status --watch --json | head -n 1 ends quietly with exit 0 when head closes the pipe', async () => {
    // head exits after the first line; the next refresh (a second later) meets a closed pipe.
    const r = await execa('bash', ['-c', `"$0" "$1" status --watch --json --home "$2" 2>"$3" | head -n 1; echo "swarm exit \${PIPESTATUS[0]}"`,
      process.execPath, SWARM_CLI, node.home, join(root, 'watch.err')], { reject: false, timeout: 60_000 })
    const [first, exit] = r.stdout.split('\n')
    expect(JSON.parse(first as string)).toHaveProperty('peerId')
    expect(exit).toBe('swarm exit 0')
    expect((await execa('cat', [join(root, 'watch.err')])).stdout).toBe('')
  })

  it('Ctrl-C of swarm add --wait says the job goes on encoding and how to follow or stop it, and exits 130', async () => {
    const adding = execa(process.execPath, [SWARM_CLI, 'add', fx.openGop10bit, '--preset superfast --crf 31', '--home', node.home, '--output', join(root, 'out-31.mkv'), '--wait'],
      { reject: false, stdin: 'ignore', buffer: true, env: { NO_COLOR: '1' } })
    let stdout = ''
    adding.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
    const id = await waitFor('swarm add to queue the job', () => /^queued: job ([0-9a-f]{64})/m.exec(stdout)?.[1], { timeoutMs: 60_000 })
    adding.kill('SIGINT')
    const r = await adding
    expect(r.exitCode).toBe(130)
    const short = id.slice(0, 12)
    expect(linesOf(r.stderr).at(-1)).toBe(`swarm: job ${short} is still encoding on this node; \`swarm status ${short}\` to follow, \`swarm cancel ${short}\` to stop`)
    // It is: the job is still there and not failed, and the commands it names work.
    const s = await runSwarm(['status', short, '--json', '--home', node.home])
    expect(s.exitCode).toBe(0)
    expect(['splitting', 'encoding']).toContain((JSON.parse(s.stdout) as JobStatus).state)
    const c = await runSwarm(['cancel', short, '--home', node.home])
    expect(c.stdout.trim()).toBe(`cancelled ${id}`)
  })
})
