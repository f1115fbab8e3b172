/**
 * The originator killed (issue 4, "Faults" 3): SIGKILL mid-job and during the merge, then restarted
 * with the same home. Its node.lock is stale and taken over; the job resumes from job.json; chunks
 * verified before the kill are never encoded again.
 */
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { shortPeer } from '../../src/log/index.js'
import type { JobRecord } from '../../src/jobs/index.js'
import { probeMedia } from '../../src/media/index.js'
import { startLocalNode, type LocalNode } from '../../scripts/local-swarm.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import {
  addJob, dumpLogs, expectCompleteJob, jobRecord, jobStatus, leasesInLog, makeClip, secs, startSwarm, stopNodes, waitForJobEnd, tallyFault
} from '../helpers/faults.js'
import { waitFor } from '../helpers/wait.js'

const LEASE_S = 4
let root: string
let fx: Fixtures
const nodes: LocalNode[] = []
let o: LocalNode
let a: LocalNode
let b: LocalNode
const oArgs = ['--lease-seconds', String(LEASE_S), '--verbose']
const oEnv = { SWARM_TEST_ENCODER: 'delay:100' }

beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-faults-originator-'))
  const started = await startSwarm(root, [
    { name: 'o', extraArgs: oArgs, env: oEnv },
    { name: 'a', extraArgs: ['--verbose'], env: { SWARM_TEST_ENCODER: 'delay:100' } },
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

/** Restarts the originator with the same home; it dials the workers (its port is new). */
async function restartOriginator (): Promise<{ node: LocalNode, ms: number }> {
  const started = Date.now()
  const node = await startLocalNode(o.home, { extraArgs: oArgs, env: oEnv, bootstrap: [a.addresses[0] as string, b.addresses[0] as string] })
  nodes.push(node)
  return { node, ms: Date.now() - started }
}

type Result = NonNullable<JobRecord['chunks'][number]['result']>

describe('the originator killed and restarted with the same home', () => {
  it('SIGKILL mid-job: the job resumes, verified chunks are not encoded again, workers deliver or re-claim, the output is correct', async () => {
    // GOPs of 3 frames, 7 to a chunk: 10 chunks of 21 frames; every node needs about 2.5 s a chunk.
    const clip = await makeClip(join(root, 'src', 'ten-chunks.mkv'), { frames: 10 * 21, keyint: 3 })
    const srcFrames = (await probeMedia(clip)).video.frameCount
    const job = await addJob(o.home, clip, '--preset ultrafast --crf 30', join(root, 'out', 'resumed.mkv'))
    expect(job.chunks.total).toBe(10)
    // Kill once some chunks are verified and a remote worker is in the middle of another.
    await waitFor('two verified chunks and a worker mid-chunk', async () => {
      const j = await jobStatus(o.home, job.id)
      if (!(j.chunks.done >= 2 && (j.chunkList ?? []).some(c => c.state === 'leased' && c.holder !== o.peerId && (c.framesDone ?? 0) > 0))) return false
      // Status reports a chunk done a moment before job.json is written (the worker is answered
      // only after the write): wait for the file too, since that is what the restart reads.
      return (await jobRecord(o.home, job.id)).chunks.filter(c => c.result !== undefined).length >= 2
    }, { timeoutMs: 40_000, everyMs: 50, retryErrors: true })
    const peerId = o.peerId
    o.proc.kill('SIGKILL')
    const killedAt = Date.now()
    await o.proc
    const before = await jobRecord(o.home, job.id)
    const doneBefore = new Map<number, Result>()
    for (const c of before.chunks) if (c.result !== undefined) doneBefore.set(c.index, c.result)
    const heldBefore = before.chunks.filter(c => c.state === 'leased' && c.lease !== undefined).map(c => ({ index: c.index, holder: c.lease?.holder as string }))
    expect(doneBefore.size).toBeGreaterThanOrEqual(2)
    expect(doneBefore.size).toBeLessThan(before.chunks.length)
    expect(heldBefore.some(h => h.holder !== peerId)).toBe(true)
    // The lock file still names the dead process.
    expect(Number((await readFile(join(o.home, 'node.lock'), 'utf8')).trim())).toBe(o.proc.pid)

    const restart = await restartOriginator()
    o = restart.node
    expect(o.peerId).toBe(peerId)
    const end = await waitForJobEnd(o.home, job.id, 60_000)
    expect(end.state).toBe('done')
    const { record, frames } = await expectCompleteJob(o.home, job.id, srcFrames)
    // Every chunk verified before the kill is untouched: same file, hash, encoder and time.
    for (const [index, result] of doneBefore) expect(record.chunks[index]?.result).toEqual(result)
    // ... and the restarted originator never leased one of them again.
    const leasedAgain = leasesInLog(o.stderr(), job.id).filter(l => doneBefore.has(l.chunk))
    expect(leasedAgain).toEqual([])
    // Chunks that were held at the kill: delivered by their holder after the restart, or re-claimed.
    const delivered = heldBefore.filter(h => record.chunks[h.index]?.result?.encodedBy === h.holder && h.holder !== peerId)
    const reclaimed = heldBefore.filter(h => !delivered.includes(h))
    for (const h of heldBefore) expect(record.chunks[h.index]?.result?.at).toBeGreaterThan(killedAt)
    // Leases the originator's own worker held before the kill: nobody renews them after the restart.
    const ownHeld = heldBefore.filter(h => h.holder === peerId)
    const ownLapsed = ownHeld.filter(h => new RegExp(`lease on ${job.id.slice(0, 8)}#${h.index} held by ${shortPeer(peerId)} expired`).test(o.stderr()))

    tallyFault('originator SIGKILL mid-job, restarted with the same home', `killed with ${doneBefore.size}/${before.chunks.length} chunks verified and ${heldBefore.length} leased; restarted in ${secs(restart.ms)} (stale node.lock taken over, same peer id); ` +
        `the ${doneBefore.size} verified chunks kept their results and were never leased again; of the ${heldBefore.length} leased chunks ${delivered.length} were delivered by their holder after the restart and ${reclaimed.length} re-claimed ` +
        `(${ownHeld.length} had been held by the originator's own worker; ${ownLapsed.length} of those waited for their lease to lapse after the restart); ` +
        `job done ${secs(Date.now() - killedAt)} after the kill; output ${frames}/${srcFrames} frames`)
  })

  it('SIGKILL during the merge: after the restart the merge runs again and the job ends done with a correct output', async () => {
    // The real 10-bit test file: two audio tracks, subtitles, a font and chapters make the merge take a while.
    const srcFrames = (await probeMedia(fx.openGop10bit)).video.frameCount
    const output = join(root, 'out', 'merge-killed.mkv')
    const job = await addJob(o.home, fx.openGop10bit, '--preset ultrafast --crf 30', output)
    // Watch job.json (written before the merge starts) closely and kill the moment it says merging.
    const file = join(o.home, 'jobs', job.id, 'job.json')
    const seen = await waitFor('the job to start merging', async () => {
      const r = JSON.parse(await readFile(file, 'utf8')) as JobRecord
      if (r.state === 'done' || r.state === 'failed') throw new Error(`job reached ${r.state} before it was seen merging`)
      return r.state === 'merging' ? r : undefined
    }, { timeoutMs: 60_000, everyMs: 5, retryErrors: true })
    o.proc.kill('SIGKILL')
    const killedAt = Date.now()
    await o.proc
    const before = await jobRecord(o.home, job.id)
    expect(before.state).toBe('merging')
    expect(before.output).toBeNull()
    expect(seen.chunks.every(c => c.state === 'done')).toBe(true)
    const outputExisted = existsSync(output)

    const restart = await restartOriginator()
    o = restart.node
    const end = await waitForJobEnd(o.home, job.id, 60_000)
    expect(end.state).toBe('done')
    expect(o.stderr()).toMatch(new RegExp(`resuming ${job.id.slice(0, 12)} \\(merging\\)`))
    const { record, frames } = await expectCompleteJob(o.home, job.id, srcFrames)
    expect(record.output).toBe(output)
    // Nothing was encoded again: every result is the one verified before the kill.
    for (const c of before.chunks) expect(record.chunks[c.index]?.result).toEqual(c.result)
    expect(leasesInLog(o.stderr(), job.id)).toEqual([])
    const probed = await probeMedia(output)
    const src = await probeMedia(fx.openGop10bit)
    expect(probed.streams.map(s => s.type)).toEqual(src.streams.map(s => s.type))
    // No leftovers of the interrupted merge beside the output.
    expect(existsSync(join(o.home, 'jobs', job.id, 'merge'))).toBe(false)

    tallyFault('originator SIGKILL during the merge, restarted with the same home', `killed right after job.json said merging (${before.chunks.length}/${before.chunks.length} chunks verified; output ${outputExisted ? 'already renamed into place' : 'not written yet'}); ` +
        `restarted in ${secs(restart.ms)}, the merge ran again and the job was done ${secs(Date.now() - killedAt)} after the kill with no chunk encoded again; ` +
        `output ${frames}/${srcFrames} frames, all ${probed.streams.length} streams kept`)
  })
})
