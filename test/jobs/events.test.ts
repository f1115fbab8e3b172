import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { localLink } from '../../src/daemon/local-link.js'
import { Originator, type JobRecord } from '../../src/jobs/index.js'
import type { NodeEvent, NodeEventOf, NodeEventType } from '../../src/swarm/index.js'
import { Worker } from '../../src/worker/index.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { waitFor } from '../helpers/wait.js'

let fx: Fixtures
const cleanup: Array<() => Promise<void>> = []
beforeAll(async () => { fx = await ensureFixtures() })
afterEach(async () => { for (const c of cleanup.splice(0).reverse()) await c() })

const SETTINGS = '--preset ultrafast --crf 30'
/** Both parts run on this clock, a day ahead of the machine's: an event stamped by Date.now() would stand out. */
const AHEAD_MS = 24 * 3600_000

/** Every event of both emitters, in the order they were emitted. */
function recorder (...emitters: Array<{ on: (name: 'event', listener: (e: NodeEvent) => void) => unknown }>): NodeEvent[] {
  const events: NodeEvent[] = []
  for (const emitter of emitters) emitter.on('event', (e) => { events.push(e) })
  return events
}

const ofType = <T extends NodeEventType>(events: NodeEvent[], type: T): Array<NodeEventOf<T>> => events.filter((e): e is NodeEventOf<T> => e.type === type)
/** Where the event of `type` about `chunk` stands in the sequence (-1 when there is none). */
const indexOf = (events: NodeEvent[], type: NodeEventType, chunk: number): number => events.findIndex(e => e.type === type && 'chunk' in e && e.chunk === chunk)

describe('node events', () => {
  it('tell one job\'s story in order: added, each chunk leased, fetched, encoded, done and uploaded, split, merged', async () => {
    const home = await mkdtemp(join(tmpdir(), 'swarm-events-'))
    const output = join(home, 'out.mkv')
    const now = (): number => Date.now() + AHEAD_MS
    const originator = new Originator({ home, peerId: 'self', ownWorker: true, plan: { gopsPerChunk: 1 }, now })
    await originator.start()
    const worker = new Worker({ peerId: 'self', slots: 2, workDir: join(home, 'work'), linkFor: () => localLink(originator, 'self'), heartbeatMs: 200, now })
    worker.start()
    originator.on('changed', (id) => {
      const job = originator.get(id)
      if (job !== undefined) worker.updateJob({ jobId: job.id, originator: 'self', settings: job.settings, totalChunks: job.chunks.length, open: job.chunks.filter(c => c.state === 'open').map(c => c.index), seq: job.updatedAt })
    })
    cleanup.push(async () => { await worker.stop(); await originator.stop(); await rm(home, { recursive: true, force: true }) })
    const events = recorder(originator, worker)
    const from = now()

    const { job } = await originator.addJob({ file: fx.awkwardName, settings: SETTINGS, output })
    await waitFor('the merge', () => ofType(events, 'merge:done').length > 0 || job.state === 'failed', { timeoutMs: 60_000, everyMs: 50 })
    const until = now()
    expect(job.error).toBeUndefined()
    const chunks = job.chunks.length
    expect(chunks).toBeGreaterThanOrEqual(2)

    // Stamped by the clock the parts were given, in order.
    for (const e of events) expect(e.at).toBeGreaterThanOrEqual(from)
    for (const e of events) expect(e.at).toBeLessThanOrEqual(until)
    for (let i = 1; i < events.length; i++) expect(events[i]!.at).toBeGreaterThanOrEqual(events[i - 1]!.at)

    expect(events[0]).toMatchObject({ type: 'job:added', jobId: job.id, file: fx.awkwardName, chunks, frames: job.totalFrames })
    expect(ofType(events, 'split:done')).toEqual([expect.objectContaining({ jobId: job.id, chunks })])
    for (let chunk = 0; chunk < chunks; chunk++) {
      const record = job.chunks[chunk] as JobRecord['chunks'][number]
      // One peer, nothing lapsed: one lease a chunk, never a backup.
      expect(ofType(events, 'lease:granted').filter(e => e.chunk === chunk)).toEqual([expect.objectContaining({ jobId: job.id, peer: 'self', backup: false })])
      const story = ['lease:granted', 'claim:won', 'segment:fetched', 'encode:started', 'encode:finished', 'chunk:done', 'upload:accepted'] as const
      const at = story.map(type => indexOf(events, type, chunk))
      expect(at.every(i => i >= 0), `chunk ${chunk}: ${story.filter((_, i) => at[i] === -1).join(', ')} missing`).toBe(true)
      expect([...at].sort((a, b) => a - b)).toEqual(at)
      expect(events[at[2]!]).toMatchObject({ originator: 'self', downloaded: false })
      expect(events[at[4]!]).toMatchObject({ frames: record.frames })
      const done = events[at[5]!] as NodeEventOf<'chunk:done'>
      expect(done).toMatchObject({ jobId: job.id, peer: 'self', bytes: record.result?.size })
      expect(done.leaseMs).toBeGreaterThanOrEqual(done.verifyMs)
      expect(events[at[6]!]).toMatchObject({ originator: 'self', bytes: record.result?.size })
    }
    // The merge starts once every chunk is done, and ends the story with the output.
    const lastChunkDone = Math.max(...ofType(events, 'chunk:done').map(e => events.indexOf(e)))
    expect(ofType(events, 'chunk:done')).toHaveLength(chunks)
    expect(events.findIndex(e => e.type === 'merge:started')).toBeGreaterThan(lastChunkDone)
    expect(events.at(-1)).toMatchObject({ type: 'merge:done', jobId: job.id, output })
    expect(ofType(events, 'result:refused')).toEqual([])
    expect(ofType(events, 'lease:ended')).toEqual([])
  })

  it('tell a refused result, a release, a lapse and a cancel, with the reason and the originator\'s clock', async () => {
    const home = await mkdtemp(join(tmpdir(), 'swarm-events-'))
    let clock = 5_000_000
    const originator = new Originator({ home, peerId: 'self', leaseMs: 30_000, plan: { gopsPerChunk: 1 }, now: () => clock })
    await originator.start()
    cleanup.push(async () => { await originator.stop(); await rm(home, { recursive: true, force: true }) })
    const events = recorder(originator)
    const { job } = await originator.addJob({ file: fx.awkwardName, settings: SETTINGS })
    await waitFor('the job to be encoding', () => job.state === 'encoding', { timeoutMs: 30_000, everyMs: 50 })

    // A result that is not H.264: refused, and its lease ends with it.
    const first = originator.requestLease(job.id, 0, 'peerA')
    if (!first.ok) throw new Error(first.message)
    const slot = await originator.resultSlot(job.id, 0, first.lease.id, 'peerA', 100)
    if (!slot.ok) throw new Error(slot.message)
    await writeFile(slot.tmpPath, Buffer.alloc(100, 7))
    clock += 10
    const answer = await originator.acceptResult(job.id, 0, 'peerA', slot.tmpPath, '0'.repeat(64))
    expect(answer).toMatchObject({ ok: false, code: 'bad-result' })
    const refused = ofType(events, 'result:refused')
    expect(refused).toEqual([expect.objectContaining({ at: clock, jobId: job.id, chunk: 0, peer: 'peerA', code: 'bad-result' })])
    expect(refused[0]?.reason).toBe(answer.ok ? '' : answer.message)
    expect(ofType(events, 'lease:ended')).toEqual([expect.objectContaining({ at: clock, chunk: 0, peer: 'peerA', why: 'refused' })])

    // Given back with a reason.
    const second = originator.requestLease(job.id, 1, 'peerB')
    if (!second.ok) throw new Error(second.message)
    expect(ofType(events, 'lease:granted').map(e => [e.chunk, e.peer, e.backup])).toEqual([[0, 'peerA', false], [1, 'peerB', false]])
    originator.releaseLease(job.id, 1, second.lease.id, 'peerB', 'x264 [error]: out of memory')
    expect(ofType(events, 'lease:ended').at(-1)).toMatchObject({ chunk: 1, peer: 'peerB', why: 'released', reason: 'x264 [error]: out of memory' })

    // Not renewed in time.
    const third = originator.requestLease(job.id, 1, 'peerC')
    if (!third.ok) throw new Error(third.message)
    clock += 31_000
    expect(originator.expireLeases()).toBe(1)
    expect(ofType(events, 'lease:ended').at(-1)).toEqual({ type: 'lease:ended', at: clock, jobId: job.id, chunk: 1, peer: 'peerC', why: 'expired' })

    await originator.cancelJob(job.id)
    expect(events.at(-1)).toEqual({ type: 'job:cancelled', at: clock, jobId: job.id })
  })
})
