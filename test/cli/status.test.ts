import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobStatus, StatusJson } from '../../src/daemon/index.js'
import { runSwarm, startLocalNode, type LocalNode } from '../../scripts/local-swarm.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'

let root: string
let fx: Fixtures
let a: LocalNode
let b: LocalNode
let jobId: string

beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-status-'))
  a = await startLocalNode(join(root, 'a'))
  b = await startLocalNode(join(root, 'b'), { bootstrap: [a.addresses[0] as string] })
  const added = await runSwarm(['add', fx.vfrMp4, '--preset ultrafast --crf 30', '--home', a.home, '--output', join(root, 'vfr out.mkv'), '--wait', '--json'])
  expect(added.exitCode).toBe(0)
  jobId = (JSON.parse(added.stdout) as { job: JobStatus }).job.id
})
afterAll(async () => {
  await Promise.allSettled([a.stop(), b.stop()])
  await rm(root, { recursive: true, force: true })
})

describe('swarm status', () => {
  it('--json prints one object with this node, its peers and its jobs in the documented shape', async () => {
    const r = await runSwarm(['status', '--home', a.home, '--json'])
    expect(r.exitCode).toBe(0)
    const s = JSON.parse(r.stdout) as StatusJson
    expect(s.peerId).toBe(a.peerId)
    expect(s.addresses).toEqual(a.addresses)
    expect(s.peers.map(p => p.id)).toContain(b.peerId)
    const job = s.jobs.find(j => j.id === jobId)
    expect(job).toMatchObject({ file: fx.vfrMp4, settings: '--preset ultrafast --crf 30', state: 'done', output: join(root, 'vfr out.mkv'), local: true })
    expect(job?.chunks.total).toBeGreaterThanOrEqual(2)
    expect(job?.chunks).toEqual({ total: job?.chunks.total, open: 0, leased: 0, done: job?.chunks.total })
    expect(Object.values(job?.encodedBy ?? {}).reduce((x, y) => x + y, 0)).toBe(job?.chunks.total)
    expect(s.worker.slots).toBe(1)
  })

  it('shows one job with its chunks by id prefix, and refuses an unknown one', async () => {
    const r = await runSwarm(['status', jobId.slice(0, 10), '--home', a.home, '--json'])
    expect(r.exitCode).toBe(0)
    const job = JSON.parse(r.stdout) as JobStatus
    expect(job.id).toBe(jobId)
    expect(job.chunkList?.length).toBe(job.chunks.total)
    expect(job.chunkList?.every(c => c.state === 'done' && typeof c.encodedBy === 'string')).toBe(true)
    const text = await runSwarm(['status', jobId.slice(0, 10), '--home', a.home])
    expect(text.stdout).toContain(`job       ${jobId}`)
    expect(text.stdout).toMatch(/CHUNK\s+STATE\s+FRAMES\s+PEER/)
    const unknown = await runSwarm(['status', 'ffffffff', '--home', a.home])
    expect(unknown.exitCode).toBe(1)
    expect(unknown.stderr).toMatch(/no job matches 'ffffffff'; `swarm status` lists jobs/)
  })

  it('prints human tables by default', async () => {
    const r = await runSwarm(['status', '--home', a.home])
    expect(r.exitCode).toBe(0)
    expect(r.stdout).toContain(`peer id   ${a.peerId}`)
    expect(r.stdout).toMatch(/PEERS \(1\)/)
    expect(r.stdout).toMatch(/JOBS \(1\)[\s\S]*done/)
    expect(r.stdout).toMatch(/WORKER \(1 slot, [\d.]+ [MG]iB of memory each, encodes at idle priority\)/)
  })
})
