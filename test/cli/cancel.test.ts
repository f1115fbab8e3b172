import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobStatus, StatusJson } from '../../src/daemon/index.js'
import { runSwarm, startLocalNode, type LocalNode } from '../../scripts/local-swarm.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { waitFor } from '../helpers/wait.js'

let root: string
let fx: Fixtures
let a: LocalNode
let b: LocalNode

async function status (n: LocalNode): Promise<StatusJson> {
  return JSON.parse((await runSwarm(['status', '--home', n.home, '--json'])).stdout) as StatusJson
}

beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-cancel-'))
  // Slow encoders, so both nodes are mid-chunk when the job is cancelled.
  a = await startLocalNode(join(root, 'a'), { env: { SWARM_TEST_ENCODER: 'delay:200' } })
  b = await startLocalNode(join(root, 'b'), { env: { SWARM_TEST_ENCODER: 'delay:200' }, bootstrap: [a.addresses[0] as string] })
  await waitFor('the nodes to meet', async () => (await status(a)).peers.length >= 1 ? true : undefined)
})
afterAll(async () => {
  await Promise.allSettled([a.stop(), b.stop()])
  await rm(root, { recursive: true, force: true })
})

describe('swarm cancel', () => {
  it('stops a job everywhere at once: no more leases, workers abort, files removed, output not written', async () => {
    const output = join(root, 'never.mkv')
    const added = await runSwarm(['add', fx.openGop10bit, '--preset superfast', '--home', a.home, '--output', output, '--json'])
    expect(added.exitCode).toBe(0)
    const job = (JSON.parse(added.stdout) as { job: JobStatus }).job
    // Both workers hold a chunk of it.
    await waitFor('both nodes to be encoding', async () => {
      const [sa, sb] = await Promise.all([status(a), status(b)])
      return sa.worker.active.some(t => t.jobId === job.id) && sb.worker.active.some(t => t.jobId === job.id) ? true : undefined
    })
    const r = await runSwarm(['cancel', job.id.slice(0, 12), '--home', a.home])
    expect(r.exitCode).toBe(0)
    expect(r.stdout).toContain('cancelled')
    // The remote worker stops within moments, not at the end of its chunk (about 10 s at this pace).
    const cancelled = Date.now()
    await waitFor('node B to stop encoding', async () => (await status(b)).worker.active.length === 0 ? true : undefined, { timeoutMs: 5000 })
    expect(Date.now() - cancelled).toBeLessThan(3000)
    await waitFor('node A to stop encoding', async () => (await status(a)).worker.active.length === 0 ? true : undefined, { timeoutMs: 5000 })
    expect((await status(a)).jobs.find(j => j.id === job.id)).toBeUndefined()
    expect(existsSync(join(a.home, 'jobs', job.id))).toBe(false)
    expect(await readdir(join(b.home, 'work')).catch(() => [])).toEqual([])
    expect(await readdir(join(a.home, 'work')).catch(() => [])).toEqual([])
    const gone = await runSwarm(['status', job.id, '--home', a.home])
    expect(gone.exitCode).toBe(1)
    expect(existsSync(output)).toBe(false)
    // Cancelling what is not there says so.
    const again = await runSwarm(['cancel', job.id, '--home', a.home])
    expect(again.exitCode).toBe(1)
    expect(again.stderr).toMatch(/no job/)
  })
})
