/**
 * Peers coming and going (issue 4, "Faults" 4): a worker that leaves cleanly (SIGINT) mid-chunk and
 * rejoins with the same home, and the only worker leaving for good so the originator finishes alone.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChunkStatus } from '../../src/daemon/index.js'
import { probeMedia } from '../../src/media/index.js'
import { startLocalNode, type LocalNode } from '../../scripts/local-swarm.js'
import {
  addJob, chunksTakenInLog, dumpLogs, expectCompleteJob, jobRecord, jobStatus, makeClip, nodeStatus, secs, short, startSwarm, stopNodes,
  tallyFault, waitForJobEnd
} from '../helpers/faults.js'
import { waitFor } from '../helpers/wait.js'

const LEASE_S = 4
const LEASE_MS = LEASE_S * 1000
let root: string
const nodes: LocalNode[] = []
let o: LocalNode
let a: LocalNode
const aArgs = ['--verbose']
const aEnv = { SWARM_TEST_ENCODER: 'delay:100' }

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'swarm-faults-membership-'))
  const started = await startSwarm(root, [
    { name: 'o', extraArgs: ['--lease-seconds', String(LEASE_S), '--verbose'], env: { SWARM_TEST_ENCODER: 'delay:100' } },
    { name: 'a', extraArgs: aArgs, env: aEnv }
  ], nodes) as [LocalNode, LocalNode]
  o = started[0]
  a = started[1]
})
afterAll(async () => {
  await stopNodes(nodes)
  dumpLogs(nodes)
  await rm(root, { recursive: true, force: true })
})

async function chunkBeingEncodedBy (jobId: string, peer: string): Promise<ChunkStatus> {
  return await waitFor(`${short(peer)} to be encoding a chunk of ${jobId.slice(0, 8)}`, async () =>
    (await jobStatus(o.home, jobId)).chunkList?.find(c => c.state === 'leased' && c.holder === peer && (c.framesDone ?? 0) > 0 && (c.framesDone ?? 0) < c.frames), { everyMs: 50, retryErrors: true })
}

/** SIGINT (a clean stop) mid-chunk; returns how long until the originator had the chunk back. */
async function leaveMidChunk (jobId: string): Promise<{ chunk: ChunkStatus, backMs: number, exitCode: number | undefined, leftAt: number }> {
  const chunk = await chunkBeingEncodedBy(jobId, a.peerId)
  const leftAt = Date.now()
  const exited = a.stop('SIGINT')
  await waitFor(`chunk ${chunk.index} to be given back`, async () => {
    const c = (await jobStatus(o.home, jobId)).chunkList?.[chunk.index]
    return c !== undefined && !(c.state === 'leased' && c.holder === a.peerId)
  }, { timeoutMs: LEASE_MS + 5000, everyMs: 20, retryErrors: true })
  const backMs = Date.now() - leftAt
  return { chunk, backMs, exitCode: await exited, leftAt }
}

describe('peers leaving and joining', () => {
  it('a worker leaves mid-chunk (SIGINT) and rejoins with the same home: the chunk comes back at once, the rejoined peer works again, the job completes', async () => {
    // GOPs of 3 frames, 7 to a chunk: 8 chunks of 21 frames, about 2.5 s each on either node.
    const clip = await makeClip(join(root, 'src', 'eight-chunks.mkv'), { frames: 8 * 21, keyint: 3 })
    const srcFrames = (await probeMedia(clip)).video.frameCount
    const job = await addJob(o.home, clip, '--preset ultrafast --crf 30', join(root, 'out', 'rejoined.mkv'))
    expect(job.chunks.total).toBe(8)
    const left = await leaveMidChunk(job.id)
    // A clean stop gives the lease back (reason "shutdown"): no waiting for it to lapse, no failure counted.
    expect(left.exitCode).toBe(0)
    expect(left.backMs).toBeLessThan(LEASE_MS - 1000)
    expect(o.stderr()).not.toMatch(new RegExp(`lease on ${job.id.slice(0, 8)}#${left.chunk.index} held by ${short(a.peerId)} expired`))
    const afterLeave = await jobRecord(o.home, job.id)
    expect(afterLeave.chunks[left.chunk.index]?.failures).toEqual([])
    expect(afterLeave.chunks[left.chunk.index]?.pastHolders).toContain(a.peerId)
    expect(afterLeave.chunks.filter(c => c.state !== 'done').length).toBeGreaterThan(2)

    const peerId = a.peerId
    const rejoinedAt = Date.now()
    a = await startLocalNode(a.home, { extraArgs: aArgs, env: aEnv, bootstrap: [o.addresses[0] as string] })
    nodes.push(a)
    expect(a.peerId).toBe(peerId)
    await waitFor('the rejoined peer to hold a chunk again', async () =>
      (await jobStatus(o.home, job.id)).chunkList?.some(c => c.state === 'leased' && c.holder === a.peerId), { timeoutMs: 20_000, everyMs: 50, retryErrors: true })
    const backAtWorkMs = Date.now() - rejoinedAt

    const end = await waitForJobEnd(o.home, job.id, 60_000)
    expect(end.state).toBe('done')
    const { record, frames } = await expectCompleteJob(o.home, job.id, srcFrames)
    const afterRejoin = record.chunks.filter(c => c.result?.encodedBy === a.peerId && c.result.at > rejoinedAt)
    expect(afterRejoin.length).toBeGreaterThanOrEqual(1)
    expect(record.chunks.every(c => c.failures.length === 0)).toBe(true)
    for (const list of chunksTakenInLog(o.stderr(), job.id).values()) expect(list.length).toBe(1)

    tallyFault('a worker leaves mid-chunk (SIGINT) and rejoins with the same home',
      `A stopped at frame ${left.chunk.framesDone ?? 0}/${left.chunk.frames} of chunk ${left.chunk.index}: it gave the lease back and the chunk was free ${secs(left.backMs)} later (lease ${LEASE_S} s, no failure counted); ` +
      `restarted with the same home and peer id, it held a chunk again ${secs(backAtWorkMs)} after starting and encoded ${afterRejoin.length} more; output ${frames}/${srcFrames} frames`)
  })

  it('the only worker leaves for good: the originator encodes the rest alone and finishes', async () => {
    const clip = await makeClip(join(root, 'src', 'four-chunks.mkv'), { frames: 4 * 21, keyint: 3, pattern: 'smptebars' })
    const srcFrames = (await probeMedia(clip)).video.frameCount
    const job = await addJob(o.home, clip, '--preset ultrafast --crf 30', join(root, 'out', 'alone.mkv'))
    const left = await leaveMidChunk(job.id)
    expect(left.exitCode).toBe(0)
    expect(left.backMs).toBeLessThan(LEASE_MS - 1000)
    await waitFor('the originator to have no peers', async () => (await nodeStatus(o.home)).peers.length === 0, { timeoutMs: 10_000, retryErrors: true })
    const remaining = (await jobRecord(o.home, job.id)).chunks.filter(c => c.state !== 'done').map(c => c.index)
    expect(remaining).toContain(left.chunk.index)

    const end = await waitForJobEnd(o.home, job.id, 60_000)
    expect(end.state).toBe('done')
    const { record, frames } = await expectCompleteJob(o.home, job.id, srcFrames)
    for (const i of remaining) expect(record.chunks[i]?.result?.encodedBy).toBe(o.peerId)
    const aloneMs = Math.max(...record.chunks.map(c => c.result?.at ?? 0)) - left.leftAt

    tallyFault('the only worker leaves (SIGINT) mid-job',
      `A left at frame ${left.chunk.framesDone ?? 0}/${left.chunk.frames} of chunk ${left.chunk.index}, giving it back in ${secs(left.backMs)}; ` +
      `the originator, now without peers, encoded the remaining ${remaining.length} of ${record.chunks.length} chunks alone in ${secs(aloneMs)}; output ${frames}/${srcFrames} frames`)
  })
})
