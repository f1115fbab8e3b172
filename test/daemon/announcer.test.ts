import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Announcer, type AnnouncedJobs } from '../../src/daemon/announcer.js'
import type { JobRecord } from '../../src/jobs/index.js'
import { ANNOUNCE_INTERVAL_MS, announcementBatchMs, type JobAnnouncement, type TopicMessage } from '../../src/swarm/index.js'
import type { JobView } from '../../src/worker/index.js'
import { chunk, jobId, jobRecord, PEER_A, PEER_B } from '../helpers/records.js'

const self = PEER_A

/** An announcer over a job table the test edits, publishing into a list. */
function setup (o: { swarmSize?: number, backup?: number[], settled?: number[], waiting?: string[] } = {}) {
  const table = new Map<string, JobRecord>()
  const jobs: AnnouncedJobs = {
    get: (id) => table.get(id),
    list: () => [...table.values()],
    backupCandidates: () => o.backup ?? [],
    settledRecently: () => o.settled ?? [],
    waitingPeers: () => o.waiting ?? []
  }
  const published: TopicMessage[] = []
  const worker = { views: [] as JobView[], removed: [] as string[] }
  let swarmSize = o.swarmSize ?? 1
  const announcer = new Announcer({
    self, jobs, swarmSize: () => swarmSize,
    publish: async (msg) => { published.push(msg) },
    worker: { updateJob: (v) => { worker.views.push(v) }, removeJob: (originator, id) => { expect(originator).toBe(self); worker.removed.push(id) } },
    addrs: () => [`/ip4/10.0.0.1/tcp/4001/p2p/${self}`, '/ip4/127.0.0.1/tcp/4001']
  })
  const change = (job: JobRecord): void => { table.set(job.id, job); announcer.changed(job.id) }
  const remove = (id: string): void => { table.delete(id); announcer.changed(id) }
  return { table, announcer, published, worker, change, remove, setSwarmSize: (n: number) => { swarmSize = n } }
}

const jobs = (published: TopicMessage[]): JobAnnouncement[] => published.filter((m): m is JobAnnouncement => m.type === 'job')

describe('Announcer', () => {
  beforeEach(() => { vi.useFakeTimers({ now: 1_700_000_000_000 }) })
  afterEach(() => { vi.useRealTimers() })

  it("announces a job's first open chunk at once, to the swarm and our own worker alike", () => {
    const { announcer, published, worker, change } = setup()
    announcer.start()
    const id = jobId('a')
    change(jobRecord(id, [chunk(0, 'pending')], { state: 'splitting' }))
    expect(published).toEqual([])
    change(jobRecord(id, [chunk(0, 'open'), chunk(1, 'pending')], { state: 'splitting' }))
    expect(published).toHaveLength(1)
    const ann = published[0] as JobAnnouncement
    expect(ann).toMatchObject({ type: 'job', jobId: id, originator: self, state: 'splitting', open: [[0, 1]] })
    expect(worker.views).toEqual([expect.objectContaining({ jobId: id, originator: self, open: [0], totalChunks: 2, seq: ann.seq })])
    announcer.stop()
  })

  it('batches later changes for announcementBatchMs of the swarm size, one announcement per job', () => {
    const { announcer, published, change, setSwarmSize } = setup({ swarmSize: 50 })
    announcer.start()
    const a = jobId('a')
    const b = jobId('b')
    change(jobRecord(a, [chunk(0, 'open'), chunk(1, 'open')]))
    change(jobRecord(b, [chunk(0, 'open')]))
    expect(jobs(published).map(m => m.jobId)).toEqual([a, b])
    const batch = announcementBatchMs(50)
    expect(batch).toBe(500)
    change(jobRecord(a, [chunk(0, 'leased'), chunk(1, 'open')]))
    change(jobRecord(a, [chunk(0, 'leased'), chunk(1, 'leased')]))
    change(jobRecord(b, [chunk(0, 'leased')]))
    // The batch's length is taken when it starts: a swarm that grows meanwhile does not stretch it.
    setSwarmSize(100)
    vi.advanceTimersByTime(batch - 1)
    expect(published).toHaveLength(2)
    vi.advanceTimersByTime(1)
    const batched = jobs(published).slice(2)
    expect(batched.map(m => m.jobId)).toEqual([a, b])
    expect(batched[0]).toMatchObject({ chunks: { total: 2, open: 0, leased: 2, done: 0 }, open: [] })
    // Sequence numbers only grow, across jobs.
    const seqs = jobs(published).map(m => m.seq)
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs)
    expect(new Set(seqs).size).toBe(seqs.length)
    announcer.stop()
  })

  it('batches in a small swarm for at least 100 ms', () => {
    const { announcer, published, change } = setup({ swarmSize: 2 })
    announcer.start()
    const a = jobId('a')
    change(jobRecord(a, [chunk(0, 'open')]))
    change(jobRecord(a, [chunk(0, 'leased')]))
    vi.advanceTimersByTime(99)
    expect(published).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(published).toHaveLength(2)
    announcer.stop()
  })

  it('announces claimable jobs at start, and every live job each ANNOUNCE_INTERVAL_MS', () => {
    const { table, announcer, published } = setup()
    for (const [digit, state] of [['a', 'splitting'], ['b', 'encoding'], ['c', 'merging'], ['d', 'done'], ['e', 'failed']] as const) {
      table.set(jobId(digit), jobRecord(jobId(digit), [chunk(0, 'done')], { state }))
    }
    announcer.start()
    expect(jobs(published).map(m => m.state)).toEqual(['splitting', 'encoding'])
    vi.advanceTimersByTime(ANNOUNCE_INTERVAL_MS - 1)
    expect(published).toHaveLength(2)
    vi.advanceTimersByTime(1)
    expect(jobs(published).slice(2).map(m => m.state)).toEqual(['splitting', 'encoding', 'merging'])
    vi.advanceTimersByTime(ANNOUNCE_INTERVAL_MS)
    expect(published).toHaveLength(8)
    announcer.stop()
    vi.advanceTimersByTime(10 * ANNOUNCE_INTERVAL_MS)
    expect(published).toHaveLength(8)
  })

  it("withdraws a job that disappears ('gone'), and announces it at once if it comes back", () => {
    const { announcer, published, worker, change, remove } = setup()
    announcer.start()
    const a = jobId('a')
    change(jobRecord(a, [chunk(0, 'open')]))
    remove(a)
    expect(published).toHaveLength(1)
    vi.advanceTimersByTime(announcementBatchMs(1))
    expect(published[1]).toEqual({ v: 1, type: 'gone', jobId: a, originator: self, seq: (published[0] as JobAnnouncement).seq + 1 })
    expect(worker.removed).toEqual([a])
    change(jobRecord(a, [chunk(0, 'open')]))
    expect(published).toHaveLength(3)
    expect(published[2]).toMatchObject({ type: 'job', jobId: a })
    announcer.stop()
  })

  it('says what the swarm needs: name, counts, open ranges, hints only when there are any, addresses without our id', () => {
    const { announcer, published, change } = setup({ backup: [3], settled: [1], waiting: [PEER_B] })
    announcer.start()
    const a = jobId('a')
    change(jobRecord(a, [chunk(0, 'open'), chunk(1, 'done'), chunk(2, 'open'), chunk(3, 'leased'), chunk(4, 'open')], { sourcePath: '/videos/deep/film.mkv' }))
    expect(published[0]).toEqual({
      v: 1, type: 'job', jobId: a, originator: self, seq: 1_700_000_000_001, state: 'encoding',
      name: 'film.mkv', settings: '--crf 20', totalFrames: 120,
      chunks: { total: 5, open: 3, leased: 1, done: 1 },
      open: [[0, 1], [2, 3], [4, 5]],
      backup: [3], settled: [1], waiting: [PEER_B],
      addrs: ['/ip4/10.0.0.1/tcp/4001', '/ip4/127.0.0.1/tcp/4001']
    })
    announcer.stop()
    const quiet = setup()
    quiet.announcer.start()
    quiet.change(jobRecord(a, [chunk(0, 'open')]))
    expect(quiet.published[0]).not.toHaveProperty('backup')
    expect(quiet.published[0]).not.toHaveProperty('settled')
    expect(quiet.published[0]).not.toHaveProperty('waiting')
    quiet.announcer.stop()
  })

  it('offers no chunk of a failed job, though its leases reopened', () => {
    const { table, announcer, published, worker } = setup({ waiting: [PEER_B] })
    const a = jobId('a')
    table.set(a, jobRecord(a, [chunk(0, 'open')], { state: 'failed', error: 'merge failed' }))
    announcer.start()
    announcer.changed(a)
    vi.advanceTimersByTime(announcementBatchMs(1))
    expect(published[0]).toMatchObject({ state: 'failed', open: [], chunks: { open: 1 } })
    expect(published[0]).not.toHaveProperty('waiting')
    expect(worker.views[0]).toMatchObject({ open: [], waiting: [] })
    announcer.stop()
  })

  it('publishes nothing once stopped, not even a batch under way', () => {
    const { announcer, published, change } = setup()
    announcer.start()
    const a = jobId('a')
    change(jobRecord(a, [chunk(0, 'open')]))
    change(jobRecord(a, [chunk(0, 'leased')]))
    announcer.stop()
    change(jobRecord(a, [chunk(0, 'done')]))
    vi.advanceTimersByTime(10 * ANNOUNCE_INTERVAL_MS)
    expect(published).toHaveLength(1)
  })
})
