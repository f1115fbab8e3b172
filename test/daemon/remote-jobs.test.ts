import { describe, expect, it } from 'vitest'
import { remoteJobFeed, RemoteJobs } from '../../src/daemon/remote-jobs.js'
import type { JobView } from '../../src/worker/index.js'
import { announcement, jobId, PEER_A, PEER_B, PEER_C } from '../helpers/records.js'

const TTL = 30_000

describe('RemoteJobs', () => {
  it('keeps the newest announcement of each job, by sequence number', () => {
    const jobs = new RemoteJobs(TTL)
    const x = jobId('1')
    expect(jobs.hear(announcement(PEER_B, x, 5), 0)).toBe('current')
    expect(jobs.hear(announcement(PEER_B, x, 4, { state: 'merging' }), 1)).toBe('stale')
    expect(jobs.hear(announcement(PEER_B, x, 5, { state: 'done' }), 2)).toBe('current')
    expect(jobs.current()).toEqual([{ ann: announcement(PEER_B, x, 5, { state: 'done' }), seen: 2 }])
    expect(jobs.addrsOf(PEER_B)).toEqual(announcement(PEER_B, x, 5).addrs)
    expect(jobs.addrsOf(PEER_C)).toEqual([])
  })

  it('keys jobs by originator and id: a second originator of one id neither replaces nor withdraws the first', () => {
    const jobs = new RemoteJobs(TTL)
    const x = jobId('1')
    jobs.hear(announcement(PEER_B, x, 100), 0)
    // C announces B's job id in its own name, with a higher sequence number.
    expect(jobs.hear(announcement(PEER_C, x, 1_000, { name: 'copy.mkv' }), 1)).toBe('shadowed')
    expect(jobs.current().map(r => r.ann.originator)).toEqual([PEER_B])
    // Sequence numbers count per originator: B's next one is not stale next to C's.
    expect(jobs.hear(announcement(PEER_B, x, 101), 2)).toBe('current')
    // C withdraws its own copy only.
    expect(jobs.withdraw(PEER_C, x)).toBe(true)
    expect(jobs.withdraw(PEER_C, x)).toBe(false)
    expect(jobs.current().map(r => r.ann.originator)).toEqual([PEER_B])
    expect(jobs.withdraw(PEER_A, x)).toBe(false)
    expect(jobs.withdraw(PEER_B, x)).toBe(true)
    expect(jobs.current()).toEqual([])
    expect(jobs.hear(announcement(PEER_B, x, 102), 3)).toBe('current')
  })

  it('makes the next originator current when the first is gone', () => {
    const jobs = new RemoteJobs(TTL)
    const x = jobId('1')
    jobs.hear(announcement(PEER_B, x, 1), 0)
    jobs.hear(announcement(PEER_C, x, 1), 0)
    expect(jobs.withdraw(PEER_B, x)).toBe(true)
    expect(jobs.current().map(r => r.ann.originator)).toEqual([PEER_C])
    expect(jobs.hear(announcement(PEER_C, x, 2), 1)).toBe('current')
  })

  it('forgets jobs whose originator has been silent longer than the TTL', () => {
    const jobs = new RemoteJobs(TTL)
    const x = jobId('1')
    const y = jobId('2')
    jobs.hear(announcement(PEER_B, x, 1), 0)
    jobs.hear(announcement(PEER_C, x, 1), 0)
    jobs.hear(announcement(PEER_B, y, 1), 20_000)
    expect(jobs.expire(TTL)).toEqual([])
    // B's job x and C's copy both went silent: the worker drops both.
    expect(jobs.expire(TTL + 1)).toEqual([{ originator: PEER_B, jobId: x }, { originator: PEER_C, jobId: x }])
    expect(jobs.current().map(r => r.ann.jobId)).toEqual([y])
    expect(jobs.has(PEER_C, x)).toBe(false)
  })
})

describe('remoteJobFeed', () => {
  function setup () {
    const jobs = new RemoteJobs(TTL)
    const worker = { views: [] as JobView[], removed: [] as string[] }
    const log: string[] = []
    let now = 0
    const feed = remoteJobFeed({
      self: PEER_A, jobs, log: (line) => { log.push(line) }, now: () => now,
      worker: { updateJob: (v) => { worker.views.push(v) }, removeJob: (originator, id) => { worker.removed.push(`${originator}/${id}`) } }
    })
    return { jobs, worker, log, feed, advance: (ms: number) => { now += ms } }
  }

  it('hands a remote job to the worker with its open chunks spelled out', () => {
    const { worker, feed } = setup()
    const x = jobId('1')
    feed.onAnnouncement(announcement(PEER_B, x, 7, { open: [[0, 2], [3, 4]], backup: [2], waiting: [PEER_A] }))
    expect(worker.views).toEqual([{
      jobId: x, originator: PEER_B, settings: '--crf 20', totalChunks: 4, totalFrames: 96, open: [0, 1, 3], backup: [2], settled: [], waiting: [PEER_A], seq: 7
    }])
    // Our own announcements come back over gossip: the announcer has told the worker already.
    feed.onAnnouncement(announcement(PEER_A, jobId('2'), 1))
    expect(worker.views).toHaveLength(1)
  })

  it('with two originators announcing one job id, the worker gets each as its own job, and neither can withdraw the other', () => {
    const { jobs, worker, feed } = setup()
    const x = jobId('1')
    feed.onAnnouncement(announcement(PEER_B, x, 10))
    feed.onAnnouncement(announcement(PEER_C, x, 2_000_000, { open: [[0, 4]], settings: '--crf 51' }))
    // The worker keys both by originator: C's huge seq is C's, and says nothing of B's job.
    expect(worker.views.map(v => [v.originator, v.seq])).toEqual([[PEER_B, 10], [PEER_C, 2_000_000]])
    feed.onAnnouncement(announcement(PEER_B, x, 11))
    expect(worker.views.at(-1)).toMatchObject({ originator: PEER_B, seq: 11 })
    // C withdrawing "x" withdraws C's job, never B's.
    feed.onWithdrawal({ v: 1, type: 'gone', jobId: x, originator: PEER_C, seq: 2_000_002 })
    expect(worker.removed).toEqual([`${PEER_C}/${x}`])
    expect(jobs.current().map(r => r.ann.originator)).toEqual([PEER_B])
    feed.onWithdrawal({ v: 1, type: 'gone', jobId: x, originator: PEER_B, seq: 12 })
    expect(worker.removed).toEqual([`${PEER_C}/${x}`, `${PEER_B}/${x}`])
  })

  it('hands another originator\'s job with the id of one of this node\'s own to the worker as that originator\'s', () => {
    const x = jobId('1')
    const { worker, feed } = setup()
    feed.onAnnouncement(announcement(PEER_B, x, Number.MAX_SAFE_INTEGER))
    expect(worker.views.map(v => v.originator)).toEqual([PEER_B])
    feed.onWithdrawal({ v: 1, type: 'gone', jobId: x, originator: PEER_B, seq: 2 })
    expect(worker.removed).toEqual([`${PEER_B}/${x}`])
  })

  it('ignores an announcement older than the last one heard', () => {
    const { worker, feed } = setup()
    const x = jobId('1')
    feed.onAnnouncement(announcement(PEER_B, x, 10))
    feed.onAnnouncement(announcement(PEER_B, x, 9))
    expect(worker.views.map(v => v.seq)).toEqual([10])
  })

  it('drops a job from the worker when its originator goes silent', () => {
    const { worker, feed, advance } = setup()
    feed.onAnnouncement(announcement(PEER_B, jobId('1'), 1))
    advance(TTL)
    feed.expire()
    expect(worker.removed).toEqual([])
    advance(1)
    feed.expire()
    expect(worker.removed).toEqual([`${PEER_B}/${jobId('1')}`])
  })

  it('drops every job of a banned originator, and only its', () => {
    const { jobs, worker, feed } = setup()
    feed.onAnnouncement(announcement(PEER_B, jobId('1'), 1))
    feed.onAnnouncement(announcement(PEER_B, jobId('2'), 1))
    feed.onAnnouncement(announcement(PEER_C, jobId('1'), 1))
    feed.dropOriginator(PEER_B)
    expect(worker.removed.sort()).toEqual([`${PEER_B}/${jobId('1')}`, `${PEER_B}/${jobId('2')}`].sort())
    expect(jobs.current().map(r => r.ann.originator)).toEqual([PEER_C])
    expect(jobs.addrsOf(PEER_B)).toEqual([])
  })
})

describe('RemoteJobs limits', () => {
  const id = (n: number): string => n.toString(16).padStart(64, '0')

  it('keeps at most perOriginator jobs of one originator, dropping its least recently heard, and reports a dropped current id', () => {
    const jobs = new RemoteJobs(TTL, { perOriginator: 3, total: 100 })
    for (let n = 1; n <= 3; n++) jobs.hear(announcement(PEER_B, id(n), 1), n)
    jobs.hear(announcement(PEER_B, id(1), 2), 10) // heard again: now the most recent
    jobs.hear(announcement(PEER_C, id(50), 1), 11)
    expect(jobs.hear(announcement(PEER_B, id(4), 1), 12)).toBe('current')
    expect(jobs.current().map(r => r.ann.jobId).sort()).toEqual([id(1), id(3), id(4), id(50)].sort())
    expect(jobs.takeEvicted()).toEqual([{ originator: PEER_B, jobId: id(2) }])
    expect(jobs.takeEvicted()).toEqual([])
  })

  it('keeps at most total jobs in all, dropping the least recently heard of anyone', () => {
    const jobs = new RemoteJobs(TTL, { perOriginator: 100, total: 4 })
    const peers = [PEER_A, PEER_B, PEER_C]
    for (let n = 0; n < 10; n++) jobs.hear(announcement(peers[n % 3] as string, id(n), 1), n)
    expect(jobs.current().map(r => r.ann.jobId)).toEqual([id(6), id(7), id(8), id(9)])
    expect(jobs.takeEvicted()).toEqual([0, 1, 2, 3, 4, 5].map(n => ({ originator: peers[n % 3], jobId: id(n) })))
  })

  it('a flood of jobs from one peer leaves the worker with the limit, never more, and others\' jobs alone', () => {
    const jobs = new RemoteJobs(TTL, { perOriginator: 16, total: 256 })
    const worker = new Set<string>()
    const feed = remoteJobFeed({ self: PEER_A, jobs, worker: { updateJob: (v: JobView) => { worker.add(v.jobId) }, removeJob: (_o: string, j: string) => { worker.delete(j) } }, log: () => {} })
    feed.onAnnouncement(announcement(PEER_C, id(99_999), 1))
    for (let n = 0; n < 1000; n++) feed.onAnnouncement(announcement(PEER_B, id(n), 1))
    expect(worker.size).toBe(17)
    expect(worker.has(id(99_999))).toBe(true)
    expect(jobs.current().filter(r => r.ann.originator === PEER_B)).toHaveLength(16)
  })
})

describe('RemoteJobs fairness: identities are free, running work and known originators are not pushed out', () => {
  const id = (n: number): string => n.toString(16).padStart(64, '0')
  const stranger = (n: number): string => `12D3KooWStranger${n.toString().padStart(36, '0')}`

  it('never drops a job this node has running work on, however many strangers announce', () => {
    const busy = new Set([`${PEER_B}/${id(1)}`])
    const jobs = new RemoteJobs(TTL, { perOriginator: 16, total: 4 }, { isBusy: (o, j) => busy.has(`${o}/${j}`), strangerEvictions: { burst: 1000, perSecond: 0 } })
    jobs.hear(announcement(PEER_B, id(1), 1), 0)
    for (let n = 0; n < 500; n++) jobs.hear(announcement(stranger(n), id(100 + n), 1), 1 + n)
    expect(jobs.has(PEER_B, id(1))).toBe(true)
    expect(jobs.takeEvicted().some(e => e.originator === PEER_B)).toBe(false)
    // With every job busy there is no room, and the newcomer is refused rather than a busy job dropped.
    const all = new RemoteJobs(TTL, { perOriginator: 16, total: 1 }, { isBusy: () => true })
    all.hear(announcement(PEER_B, id(1), 1), 0)
    expect(all.hear(announcement(PEER_C, id(2), 1), 1)).toBe('refused')
    expect(all.hear(announcement(PEER_B, id(3), 1), 2)).toBe('refused')
    expect(all.has(PEER_B, id(1))).toBe(true)
  })

  it('lets strangers push out strangers only at the bucket\'s rate, and refuses the rest', () => {
    const jobs = new RemoteJobs(TTL, { perOriginator: 16, total: 4 }, { strangerEvictions: { burst: 2, perSecond: 1 } })
    for (let n = 0; n < 4; n++) expect(jobs.hear(announcement(stranger(n), id(n), 1), 0)).toBe('current')
    // Full: two evictions from the burst, then none until a second has passed.
    expect(jobs.hear(announcement(stranger(10), id(10), 1), 0)).toBe('current')
    expect(jobs.hear(announcement(stranger(11), id(11), 1), 0)).toBe('current')
    expect(jobs.hear(announcement(stranger(12), id(12), 1), 500)).toBe('refused')
    expect(jobs.hear(announcement(stranger(12), id(12), 1), 1000)).toBe('current')
    expect(jobs.stats).toEqual({ admitted: 7, evicted: 3, refused: 1 })
    // A job already held is heard again without a token.
    expect(jobs.hear(announcement(stranger(12), id(12), 2), 1000)).toBe('current')
  })

  it('keeps room for originators this node works for: strangers never push their jobs out, and they push out strangers first', () => {
    const jobs = new RemoteJobs(TTL, { perOriginator: 16, total: 3 }, { strangerEvictions: { burst: 1000, perSecond: 0 } })
    jobs.workedFor(PEER_B, 0)
    jobs.hear(announcement(PEER_B, id(1), 1), 0)
    jobs.hear(announcement(PEER_B, id(2), 1), 1)
    jobs.hear(announcement(stranger(0), id(3), 1), 2)
    for (let n = 1; n < 100; n++) jobs.hear(announcement(stranger(n), id(100 + n), 1), 2 + n)
    expect(jobs.has(PEER_B, id(1)) && jobs.has(PEER_B, id(2))).toBe(true)
    // Only room for one stranger, and a full list of B's jobs refuses strangers outright.
    jobs.hear(announcement(PEER_B, id(4), 1), 200)
    expect(jobs.current().every(r => r.ann.originator === PEER_B)).toBe(true)
    expect(jobs.hear(announcement(stranger(500), id(500), 1), 201)).toBe('refused')
    // B's own new job pushes out B's least recently heard when nothing else can go.
    expect(jobs.hear(announcement(PEER_B, id(5), 1), 202)).toBe('current')
    expect(jobs.has(PEER_B, id(1))).toBe(false)
  })
})
