/**
 * Throwaway identities against a real originator (issue 15, item 3). A is an in-process daemon with
 * a job of its own and its own worker; the hostile peers are real libp2p nodes, each with a fresh
 * peer id (they cost nothing to make), that speak the lease protocol as any worker would: signed
 * claims, heartbeats, releases. They only lie: they give a chunk back "with a reason", or hold
 * chunks and heartbeat progress they never make.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Daemon, DaemonOptions } from '../../src/daemon/index.js'
import type { ChunkLease, RemoteOriginatorLink, SwarmNode } from '../../src/swarm/index.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { gatedOriginator, type GatedOriginator } from '../helpers/gated-originator.js'
import { recordTally } from '../helpers/tally.js'
import { waitFor } from '../helpers/wait.js'
import { makeNode } from '../swarm/helpers.js'

const SECTION = 'Hostile input: throwaway identities'
const JOB_SETTINGS = '--preset superfast --crf 28'

let fx: Fixtures
let root: string
const nodes: SwarmNode[] = []
const daemons: Daemon[] = []

beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-throwaway-'))
})

afterAll(async () => {
  await Promise.allSettled(nodes.map(async n => { await n.stop() }))
  for (const d of daemons) await d.stop().catch(() => {})
  if (root !== undefined) await rm(root, { recursive: true, force: true })
})

async function originatorWithJob (name: string, extra: Partial<DaemonOptions> = {}): Promise<GatedOriginator> {
  const o = await gatedOriginator(join(root, name), fx.openGop10bit, JOB_SETTINGS, extra)
  daemons.push(o.A)
  return o
}

/** A hostile peer with a fresh identity, connected to A, and its link (the same client code our worker uses). */
async function throwaway (A: Daemon): Promise<{ node: SwarmNode, id: string, link: RemoteOriginatorLink }> {
  const node = await makeNode()
  nodes.push(node)
  return { node, id: node.peerId.toString(), link: node.services.encode.linkTo(A.peerId, A.addresses()) }
}

describe('three fresh peer ids that claim a chunk and give it back "with a reason"', () => {
  it('do not fail the job: the chunk is kept for the originator\'s own worker, which encodes it', async () => {
    const { A, jobId, chunks, job, open } = await originatorWithJob('fail')
    const target = (await chunks()).find(c => c.state === 'open')?.index as number
    const started = Date.now()
    const liars: string[] = []
    for (let i = 0; i < 3; i++) {
      const h = await throwaway(A)
      liars.push(h.id)
      const got = await h.link.claim(jobId, target, AbortSignal.timeout(5000))
      if (!got.ok) throw new Error(`claim refused: ${got.message}`)
      expect(await h.link.release(got.lease, 'x264 [error]: malloc of size 1234 failed', AbortSignal.timeout(5000))).toEqual({ ok: true })
    }
    const ms = Date.now() - started
    // Before: "chunk N failed on 3 peers" and the job failed right here, within milliseconds.
    expect((await job()).state).toBe('encoding')
    expect((await job()).error).toBeUndefined()
    // Their reasons are counted and shown, not obeyed.
    expect((await job()).givenBack?.filter(g => liars.includes(g.peer))).toHaveLength(3)
    // A fourth fresh id cannot take the chunk: it waits for A's own worker.
    const fourth = await throwaway(A)
    expect(await fourth.link.claim(jobId, target, AbortSignal.timeout(5000))).toMatchObject({ ok: false, code: 'not-open' })
    open()
    await waitFor('A\'s job to be done', async () => (await job()).state === 'done', { timeoutMs: 120_000, everyMs: 100 })
    expect((await chunks())[target]).toMatchObject({ state: 'done', encodedBy: A.peerId })
    recordTally({
      section: SECTION,
      fault: 'three fresh peer ids each claim the same chunk and release it with an x264 error as the reason',
      happened: `job kept encoding (was: failed within ${ms} ms, "chunk ${target} failed on 3 peers"); the reasons were listed in status; a fourth id's claim was refused; A's own worker encoded the chunk and the job completed`,
      lost: 'nothing'
    })
  })
})

describe('two fresh peer ids that hold leases and backups and heartbeat fake progress', () => {
  it('hold no more than their cap, lose their leases at the deadline, and the job completes', async () => {
    const CAP = 2
    const { A, jobId, chunks, job, open } = await originatorWithJob('stall', { leaseLimits: { maxLeasesPerPeer: CAP, minDeadlineMs: 3000, noPaceDeadlineMs: 60_000 } })
    const total = (await chunks()).length
    const liars = [await throwaway(A), await throwaway(A)]
    const held = liars.map(() => new Map<number, ChunkLease>())
    const refusals = new Map<string, number>()
    let most = 0
    /** Every liar claims every chunk it can (open ones, then backups), and heartbeats "nearly done, very fast" on all it holds. */
    const round = async (): Promise<void> => {
      for (const [i, h] of liars.entries()) {
        const mine = held[i] as Map<number, ChunkLease>
        for (let c = 0; c < total; c++) {
          if (mine.has(c)) continue
          const got = await h.link.claim(jobId, c, AbortSignal.timeout(5000))
          if (got.ok) mine.set(c, got.lease)
          else refusals.set(got.code, (refusals.get(got.code) ?? 0) + 1)
        }
        for (const [c, lease] of mine) {
          const frames = (await chunks())[c]?.frames ?? 1
          const beat = await h.link.heartbeat(lease, { framesDone: frames - 1, fps: 500 }, AbortSignal.timeout(5000))
          if (!beat.ok) mine.delete(c)
        }
        most = Math.max(most, mine.size)
      }
    }
    await round()
    // Before: the first id took every open chunk and the second a backup of each, A's own included.
    expect(held.map(m => m.size)).toEqual([CAP, CAP])
    expect(refusals.get('too-many-leases')).toBeGreaterThan(0)
    open()
    let rounds = 0
    let stop = false
    const lying = (async () => { while (!stop) { await round().catch(() => {}); rounds++ } })()
    try {
      await waitFor('A\'s job to be done despite the liars', async () => (await job()).state === 'done', { timeoutMs: 120_000, everyMs: 200 })
    } finally {
      stop = true
      await lying
    }
    expect(most).toBeLessThanOrEqual(CAP)
    const list = await chunks()
    expect(list.every(c => c.state === 'done' && c.encodedBy === A.peerId)).toBe(true)
    recordTally({
      section: SECTION,
      fault: `two fresh peer ids claim every chunk and backup they can and heartbeat "${'frames − 1 done at 500 fps'}" without ever encoding (lease cap ${CAP} per peer in this test)`,
      happened: `each held at most ${most} leases (claims beyond refused too-many-leases: ${refusals.get('too-many-leases') ?? 0}); their leases ended at the deadline from the job's pace and they could not take those chunks again (${refusals.get('not-open') ?? 0} not-open); A's own worker encoded all ${total} chunks and the job completed after ${rounds} rounds of lies (was: stalled for ever)`,
      lost: 'nothing'
    })
  })
})
