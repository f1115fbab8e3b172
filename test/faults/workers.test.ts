/**
 * Faults of workers (issue 4, "Faults" 1 and 2): a worker SIGKILLed mid-encode, and a worker frozen
 * with SIGSTOP past its lease and then resumed. Real `swarm join` processes on 127.0.0.1; workers
 * slowed with SWARM_TEST_ENCODER=delay:MS so they can be caught in the middle of a chunk.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChunkStatus, JobStatus } from '../../src/daemon/index.js'
import { probeMedia } from '../../src/media/index.js'
import { startLocalNode, type LocalNode } from '../../scripts/local-swarm.js'
import {
  addJob, chunksTakenInLog, dumpLogs, expectCompleteJob, jobRecord, jobStatus, leasesInLog, makeClip, running, secs, short, startSwarm, stopNodes, waitForJobEnd, tallyFault
} from '../helpers/faults.js'
import { waitFor } from '../helpers/wait.js'

const LEASE_S = 4
const LEASE_MS = LEASE_S * 1000
let root: string
const nodes: LocalNode[] = []

beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'swarm-faults-workers-')) })
afterAll(async () => {
  await stopNodes(nodes)
  dumpLogs(nodes)
  await rm(root, { recursive: true, force: true })
})

/** Polls the originator until `peer` holds a chunk it is encoding (progress reported with a heartbeat) and returns that chunk. */
async function chunkBeingEncodedBy (home: string, jobId: string, peer: string): Promise<ChunkStatus> {
  return await waitFor(`${short(peer)} to be encoding a chunk of ${jobId.slice(0, 8)}`, async () =>
    (await jobStatus(home, jobId)).chunkList?.find(c => c.state === 'leased' && c.holder === peer && (c.framesDone ?? 0) > 0 && (c.framesDone ?? 0) < c.frames), { everyMs: 50, retryErrors: true })
}

describe('a worker killed or frozen mid-encode', () => {
  let o: LocalNode
  let a: LocalNode
  let b: LocalNode
  let clip16: string
  let clip6: string
  const name = (peer: string | undefined): string => peer === o.peerId ? 'O (originator)' : peer === a.peerId ? 'A' : peer === b.peerId ? 'B' : `unknown ${peer ?? '-'}`
  // A, the victim, needs 3.2 s a chunk of 21 frames; O and B 2.1 s.
  const aEnv = { SWARM_TEST_ENCODER: 'delay:150' }

  beforeAll(async () => {
    // GOPs of 3 frames, 7 to a chunk: chunks of 21 frames, 16 and 6 of them, whatever the swarm size.
    clip16 = await makeClip(join(root, 'src', 'sixteen-chunks.mkv'), { frames: 16 * 21, keyint: 3 })
    clip6 = await makeClip(join(root, 'src', 'six-chunks.mkv'), { frames: 6 * 21, keyint: 3, pattern: 'smptebars' })
    const started = await startSwarm(root, [
      { name: 'o', extraArgs: ['--lease-seconds', String(LEASE_S), '--verbose'], env: { SWARM_TEST_ENCODER: 'delay:100' } },
      { name: 'a', extraArgs: ['--verbose'], env: aEnv },
      { name: 'b', extraArgs: ['--verbose'], env: { SWARM_TEST_ENCODER: 'delay:100' } }
    ], nodes) as [LocalNode, LocalNode, LocalNode]
    o = started[0]
    a = started[1]
    b = started[2]
  })

  it('SIGKILL mid-encode: the chunk is open again within about the lease, another peer encodes it, the output is frame-exact', async () => {
    const srcFrames = (await probeMedia(clip16)).video.frameCount
    const job = await addJob(o.home, clip16, '--preset ultrafast --crf 30', join(root, 'out', 'killed.mkv'))
    expect(job.chunks.total).toBe(16)
    const victim = await chunkBeingEncodedBy(o.home, job.id, a.peerId)
    const killedAt = Date.now()
    a.proc.kill('SIGKILL')
    // The lease as A last renewed it (job.json is rewritten on every renewal).
    const lease = await waitFor('the lease in job.json', async () => (await jobRecord(o.home, job.id)).chunks[victim.index]?.lease, { timeoutMs: 2000, everyMs: 20, retryErrors: true })
    expect(lease.holder).toBe(a.peerId)
    // With 16 chunks there is still open work when the lease runs out, so nobody takes a backup
    // copy before: the chunk is freed by the lapse and goes to whoever claims it next.
    const reopened = await waitFor(`chunk ${victim.index} to leave A`, async () => {
      const c = (await jobStatus(o.home, job.id)).chunkList?.[victim.index]
      return c !== undefined && !(c.state === 'leased' && c.holder === a.peerId) ? c : undefined
    }, { timeoutMs: LEASE_MS + 10_000, everyMs: 50, retryErrors: true })
    const reopenedAt = Date.now()
    const reopenMs = reopenedAt - killedAt
    const logAtReopen = o.stderr().length
    // Not before the lease ran out, and soon after: the originator checks leases every second (allow
    // for a loaded machine, where the suite runs several swarms side by side).
    expect(reopenedAt).toBeGreaterThanOrEqual(lease.expiresAt - 50)
    expect(reopenedAt - lease.expiresAt).toBeLessThanOrEqual(3000)
    expect(reopenMs).toBeLessThanOrEqual(LEASE_MS + 3000)
    expect(reopened.state).not.toBe('done')
    expect(reopened.holder ?? 'open').not.toBe(a.peerId)
    expect(o.stderr()).toMatch(new RegExp(`lease on ${job.id.slice(0, 8)}#${victim.index} held by ${short(a.peerId)} expired`))
    // Until then the chunk was A's alone: no backup copy of it was handed out while work was still open.
    const grants = leasesInLog(o.stderr().slice(0, logAtReopen), job.id).filter(l => l.chunk === victim.index)
    expect(grants[0]?.holder).toBe(short(a.peerId))
    expect(grants.filter(l => l.backup)).toEqual([])

    const end = await waitForJobEnd(o.home, job.id, 60_000)
    expect(end.state).toBe('done')
    const { record, frames } = await expectCompleteJob(o.home, job.id, srcFrames)
    const result = record.chunks[victim.index]?.result
    expect([o.peerId, b.peerId]).toContain(result?.encodedBy)
    // A lapse is not a failure; A is remembered as a past holder.
    expect(record.chunks[victim.index]?.failures).toEqual([])
    expect(record.chunks[victim.index]?.pastHolders).toContain(a.peerId)
    // Nothing from A after its death, and every chunk taken exactly once.
    for (const c of record.chunks) if (c.result?.encodedBy === a.peerId) expect(c.result.at).toBeLessThan(killedAt)
    const taken = chunksTakenInLog(o.stderr(), job.id)
    expect([...taken.keys()].sort((x, y) => x - y)).toEqual(record.chunks.map(c => c.index))
    for (const list of taken.values()) expect(list.length).toBe(1)

    tallyFault('worker SIGKILL mid-encode', `A killed at frame ${victim.framesDone ?? 0}/${victim.frames} of chunk ${victim.index} (of ${record.chunks.length}); its lease (${LEASE_S} s, last renewed ${secs(killedAt - (lease.expiresAt - LEASE_MS))} before the kill) ran out ${secs(lease.expiresAt - killedAt)} after the kill, ` +
        `the chunk was free again ${secs(reopenMs)} after the kill and re-encoded by ${name(result?.encodedBy)}; every chunk taken once (backup copies in the job's tail: ${record.stats?.backupLeases ?? 0}, duplicate results dropped: ${record.stats?.droppedResults ?? 0}); output ${frames}/${srcFrames} frames`)
  })

  it('SIGSTOP past the lease, another peer finishes the chunk first, SIGCONT: the late work is dropped, never merged', async () => {
    const srcFrames = (await probeMedia(clip6)).video.frameCount
    // A comes back with the same home: its stale node.lock is taken over, same peer id.
    if (running(a)) a.proc.kill('SIGKILL')
    const peerBefore = a.peerId
    a = await startLocalNode(a.home, { extraArgs: ['--verbose'], env: aEnv, bootstrap: [o.addresses[0] as string] })
    nodes.push(a)
    expect(a.peerId).toBe(peerBefore)
    const job = await addJob(o.home, clip6, '--preset ultrafast --crf 30', join(root, 'out', 'frozen-dropped.mkv'))
    const victim = await chunkBeingEncodedBy(o.home, job.id, a.peerId)
    const pid = a.proc.pid as number
    const frozenAt = Date.now()
    process.kill(pid, 'SIGSTOP')
    let done: ChunkStatus
    try {
      // Frozen past its lease (plus the originator's once-a-second check), and until another peer has finished the chunk.
      done = await waitFor(`chunk ${victim.index} to be done by another peer while A is frozen`, async () => {
        const c = (await jobStatus(o.home, job.id)).chunkList?.[victim.index]
        return c?.state === 'done' && Date.now() - frozenAt > LEASE_MS + 1000 ? c : undefined
      }, { timeoutMs: LEASE_MS + 20_000, retryErrors: true })
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    const frozenMs = Date.now() - frozenAt
    expect(done.encodedBy).not.toBe(a.peerId)
    // A wakes up, learns the chunk is done (from a refused heartbeat or upload, or the announcement) and drops its copy.
    const j8 = job.id.slice(0, 8)
    const dropped = await waitFor('A to drop its copy of the chunk', () =>
      new RegExp(`worker: (lost ${j8}#${victim.index}:.*already done|result for ${j8}#${victim.index} refused.*already done|${j8}#${victim.index} was done by another peer.*)`).exec(a.stderr())?.[0], { timeoutMs: 15_000, retryErrors: true })

    const end = await waitForJobEnd(o.home, job.id, 60_000)
    expect(end.state).toBe('done')
    const { record, frames } = await expectCompleteJob(o.home, job.id, srcFrames)
    expect(record.chunks[victim.index]?.result?.encodedBy).toBe(done.encodedBy)
    const taken = chunksTakenInLog(o.stderr(), job.id)
    expect(taken.get(victim.index)).toEqual([short(done.encodedBy as string)])
    for (const list of taken.values()) expect(list.length).toBe(1)
    const how = new RegExp(`backup lease ${j8}#${victim.index} → ${short(done.encodedBy as string)}`).test(o.stderr()) ? 'as a backup copy' : 'after the lease lapsed'

    tallyFault('worker SIGSTOP past its lease, chunk finished elsewhere, then SIGCONT', `A frozen at frame ${victim.framesDone ?? 0}/${victim.frames} of chunk ${victim.index}; ${name(done.encodedBy)} encoded it ${how} while A was frozen (${secs(frozenMs)}, lease ${LEASE_S} s); ` +
        `after SIGCONT A dropped its copy ("${dropped.replace(/^worker: /, '')}"); the chunk was taken once; output ${frames}/${srcFrames} frames`)
  })
})

describe('a frozen worker whose chunk is still open when it wakes', () => {
  it('SIGSTOP past the lease while the only other node is busy, SIGCONT: the late result is taken', async () => {
    // 168 frames in GOPs of 6: 4 chunks of 42 frames. O has two slots and needs 21 s a chunk, so
    // it holds as many chunks as it will take until A is long done; A holds the others. Nobody is
    // free to take A's chunks while A is frozen. O's pace is a sleep, which a busy machine does not
    // slow while it slows A's real work: at 12.6 s a chunk, O once finished first on a loaded
    // machine and leased the lapsed chunk itself.
    const clip = await makeClip(join(root, 'src', 'four-chunks.mkv'), { frames: 4 * 42, keyint: 6 })
    const srcFrames = (await probeMedia(clip)).video.frameCount
    const [o, a] = await startSwarm(root, [
      { name: 'o2', slots: 2, extraArgs: ['--lease-seconds', String(LEASE_S), '--verbose'], env: { SWARM_TEST_ENCODER: 'delay:500' } },
      { name: 'a2', extraArgs: ['--verbose'], env: { SWARM_TEST_ENCODER: 'delay:100' } }
    ], nodes) as [LocalNode, LocalNode]
    const job = await addJob(o.home, clip, '--preset ultrafast --crf 30', join(root, 'out', 'frozen-taken.mkv'))
    expect(job.chunks.total).toBe(4)
    const victim = await chunkBeingEncodedBy(o.home, job.id, a.peerId)
    const heldByO = (j: JobStatus): number => j.chunkList?.filter(c => c.state === 'leased' && c.holder === o.peerId).length ?? 0
    expect(heldByO(await jobStatus(o.home, job.id))).toBeGreaterThanOrEqual(2)
    const pid = a.proc.pid as number
    const frozenAt = Date.now()
    process.kill(pid, 'SIGSTOP')
    let lapsedMs: number
    let whileOpen: JobStatus
    try {
      whileOpen = await waitFor(`A's lease on chunk ${victim.index} to lapse`, async () => {
        const j = await jobStatus(o.home, job.id)
        return j.chunkList?.[victim.index]?.state === 'open' ? j : undefined
      }, { timeoutMs: LEASE_MS + 10_000, everyMs: 50, retryErrors: true })
      lapsedMs = Date.now() - frozenAt
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    const resumedAt = Date.now()
    // The premise: O was still busy with its own chunks.
    expect(heldByO(whileOpen)).toBeGreaterThanOrEqual(2)

    const end = await waitForJobEnd(o.home, job.id, 60_000)
    expect(end.state).toBe('done')
    const { record, frames } = await expectCompleteJob(o.home, job.id, srcFrames)
    const result = record.chunks[victim.index]?.result
    expect(result?.encodedBy).toBe(a.peerId)
    expect(result?.at).toBeGreaterThan(resumedAt)
    expect(o.stderr()).toMatch(new RegExp(`lease on ${job.id.slice(0, 8)}#${victim.index} held by ${short(a.peerId)} expired`))
    const taken = chunksTakenInLog(o.stderr(), job.id)
    expect(taken.get(victim.index)).toEqual([short(a.peerId)])
    for (const list of taken.values()) expect(list.length).toBe(1)
    // The chunk was never leased to anyone else, not even as a backup: the late result was the only copy.
    expect(leasesInLog(o.stderr(), job.id).filter(l => l.chunk === victim.index).map(l => l.holder)).toEqual([short(a.peerId)])
    expect(record.chunks[victim.index]?.pastHolders).toEqual([a.peerId])

    tallyFault('worker SIGSTOP past its lease, chunk still open, then SIGCONT', `A frozen at frame ${victim.framesDone ?? 0}/${victim.frames} of chunk ${victim.index}; its lease lapsed ${secs(lapsedMs)} later (lease ${LEASE_S} s) while the only other node was busy; ` +
        `after SIGCONT A finished and its late result was taken ${secs((result?.at ?? 0) - resumedAt)} later, the chunk never leased to anyone else; output ${frames}/${srcFrames} frames`)
  })
})
