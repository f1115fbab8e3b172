import { describe, expect, it } from 'vitest'
import { ClaimPolicy, type ChunkRef, type ClaimPolicyOptions, type JobView, type Pick } from '../../src/worker/index.js'
import { prng } from '../helpers/random.js'

const ME = 'me'
const JOB_A = 'a'.repeat(64)
const JOB_B = 'b'.repeat(64)
const JOB_C = 'c'.repeat(64)

interface Harness { policy: ClaimPolicy, clock: { t: number }, slots: number }

function harness (options: Partial<ClaimPolicyOptions> = {}): Harness {
  const clock = { t: 1_000_000 }
  const slots = options.slots ?? 1
  const policy = new ClaimPolicy({ peerId: ME, now: () => clock.t, random: prng(7), ...options, slots })
  return { policy, clock, slots }
}

function view (jobId: string, open: number[], more: Partial<JobView> = {}): JobView {
  return { jobId, originator: 'origin', settings: '--preset ultrafast', totalChunks: 64, open, seq: 1, ...more }
}

/** from, from + 1, … below to. (Array.from on a length is slow enough to matter in the random sequences.) */
function range (from: number, to: number): number[] {
  const out: number[] = []
  for (let i = from; i < to; i++) out.push(i)
  return out
}

function refOf (pick: Pick): ChunkRef { return { originator: pick.view.originator, jobId: pick.view.jobId, chunk: pick.chunk } }

function picked (policy: ClaimPolicy): Pick {
  const pick = policy.next()
  if (pick === undefined) throw new Error('nothing picked')
  return pick
}

/** A claim granted and done with at once: the job stays eligible (no download under way). */
function finish (policy: ClaimPolicy, pick: Pick): Pick {
  policy.granted(pick)
  policy.ended(refOf(pick))
  return pick
}

function takeAndFinish (policy: ClaimPolicy): Pick { return finish(policy, picked(policy)) }

/** Every distinct chunk `next()` offers over many asks (asking changes nothing but the random draw and the turn). */
function offered (policy: ClaimPolicy, asks = 300): number[] {
  const seen = new Set<number>()
  for (let i = 0; i < asks; i++) seen.add(picked(policy).chunk)
  return [...seen].sort((a, b) => a - b)
}

/**
 * Makes every slot busy: each holds a chunk of job C (another originator's, so downloads of the
 * job under test are not held back), encoding, the last download having taken 1 s. Returns the
 * first encode, and `nearEnd`, which reports it close to its end.
 */
function busy (h: Harness): { running: ChunkRef, nearEnd: () => boolean } {
  const refs: ChunkRef[] = []
  for (let i = 0; i < h.slots; i++) {
    const pick: Pick = { view: view(JOB_C, [i], { originator: 'other' }), chunk: i }
    h.policy.granted(pick)
    h.policy.staged(refOf(pick), 'encoding')
    refs.push(refOf(pick))
  }
  h.policy.downloaded(1000)
  const running = refs[0] as ChunkRef
  return { running, nearEnd: () => h.policy.progressed(running, 0, 25) }
}

describe('ClaimPolicy: protocol §8.2, one test per rule', () => {
  it('open chunks are claimed lowest index first', () => {
    const { policy } = harness()
    policy.updateJob(view(JOB_A, [5, 2, 9, 3]))
    expect([0, 1, 2, 3].map(() => takeAndFinish(policy).chunk)).toEqual([2, 3, 5, 9])
    expect(policy.next()).toBeUndefined()
  })

  it('with a waiting list, the i-th listed peer claims the i-th lowest open chunk it can', () => {
    const others = ['p0', 'p1', 'p2']
    for (let i = 0; i <= others.length; i++) {
      const { policy } = harness()
      const waiting = [...others.slice(0, i), ME, ...others.slice(i)]
      policy.updateJob(view(JOB_A, [20, 4, 12, 7, 30], { waiting }))
      expect(offered(policy, 20)).toEqual([[4, 7, 12, 20][i]])
    }
    // "It can": a chunk it holds or was refused is not counted.
    const { policy } = harness()
    policy.updateJob(view(JOB_A, [4, 7, 12], { waiting: ['p0', ME] }))
    policy.refused({ view: picked(policy).view, chunk: 4 }, 'job-finished', 'no')
    expect(picked(policy).chunk).toBe(12)
  })

  it('a listed peer with no such chunk claims nothing, until a chunk has been open for 1 s', () => {
    const { policy, clock } = harness({ slots: 2 })
    policy.updateJob(view(JOB_A, [4], { waiting: ['p0', 'p1', ME] }))
    clock.t += 600
    // Chunk 7 opens 600 ms after chunk 4; the queue still covers both.
    policy.updateJob(view(JOB_A, [4, 7], { waiting: ['p0', 'p1', ME], seq: 2 }))
    expect(policy.next()).toBeUndefined()
    clock.t += 399
    expect(policy.next()).toBeUndefined()
    clock.t += 1
    const first = picked(policy)
    expect(first.chunk).toBe(4)
    policy.granted(first)
    policy.staged(refOf(first), 'queued')
    // Chunk 7 has been open 400 ms: still its waiting peer's.
    expect(policy.next()).toBeUndefined()
    clock.t += 600
    expect(picked(policy).chunk).toBe(7)
  })

  it('an unlisted peer, when the list is at least as long as the open chunks, claims nothing until a chunk has been open for 1 s', () => {
    const { policy, clock } = harness()
    policy.updateJob(view(JOB_A, [2, 3], { waiting: ['p0', 'p1'] }))
    expect(policy.next()).toBeUndefined()
    clock.t += 999
    // A newer announcement keeps when each chunk was first seen open.
    policy.updateJob(view(JOB_A, [2, 3], { waiting: ['p0', 'p1', 'p2'], seq: 2 }))
    expect(policy.next()).toBeUndefined()
    clock.t += 1
    expect(picked(policy).chunk).toBe(2)
  })

  it('an unlisted peer otherwise claims the open chunk at the list\'s length', () => {
    const { policy } = harness()
    policy.updateJob(view(JOB_A, [8, 3, 5], { waiting: ['p0'] }))
    expect(offered(policy, 20)).toEqual([5])
    policy.updateJob(view(JOB_A, [8, 3, 5], { waiting: ['p0', 'p1'], seq: 2 }))
    expect(offered(policy, 20)).toEqual([8])
  })

  it('within 2 s of losing a race on a job with no waiting list, a worker picks at random among its four lowest open chunks', () => {
    const { policy, clock } = harness()
    policy.updateJob(view(JOB_A, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]))
    const lost = picked(policy)
    expect(lost.chunk).toBe(0)
    policy.refused(lost, 'not-open', 'taken')
    expect(offered(policy)).toEqual([1, 2, 3, 4])
    clock.t += 1999
    expect(offered(policy)).toEqual([1, 2, 3, 4])
    clock.t += 1
    expect(offered(policy)).toEqual([1])
    // A waiting list decides instead, lost race or not.
    policy.refused(picked(policy), 'not-open', 'taken')
    policy.updateJob(view(JOB_A, [2, 3, 4, 5, 6], { waiting: [ME], seq: 2 }))
    expect(offered(policy)).toEqual([2])
  })

  it('a busy worker prefetches only once a running encode has less than twice its last download time plus 1 s left', () => {
    const h = harness()
    h.policy.updateJob(view(JOB_A, [0, 1, 2, 3, 4, 5]))
    const { running } = busy(h)
    expect(h.policy.wantsMore()).toBe(true)
    expect(h.policy.prefetchDue()).toBe(false)
    expect(h.policy.next()).toBeUndefined()
    // 3.1 s left at 10 fps: more than 2 × 1 s + 1 s.
    expect(h.policy.progressed(running, 31, 10)).toBe(false)
    expect(h.policy.next()).toBeUndefined()
    // No speed yet says nothing about time left.
    expect(h.policy.progressed(running, 1, 0)).toBe(false)
    // 2.9 s left: due, and said once.
    expect(h.policy.progressed(running, 29, 10)).toBe(true)
    expect(h.policy.progressed(running, 1, 10)).toBe(false)
    expect(h.policy.prefetchDue()).toBe(true)
    expect(h.policy.next()?.view.jobId).toBe(JOB_A)
  })

  it('a prefetch picks at random among the lowest 2 × encoders open chunks (encoders: the swarm\'s peers times its own slots), and leaves the job\'s last `encoders` for the end', () => {
    const h = harness({ slots: 1, swarmSize: () => 3 })
    h.policy.updateJob(view(JOB_A, range(1, 41)))
    expect(busy(h).nearEnd()).toBe(true)
    expect(offered(h.policy)).toEqual([1, 2, 3, 4, 5, 6])
    // Two encoders, a tail of three open chunks: only the largest (the lowest) may be taken ahead.
    const tail = harness({ slots: 1, swarmSize: () => 2 })
    tail.policy.updateJob(view(JOB_A, [9, 11, 12]))
    busy(tail).nearEnd()
    expect(offered(tail.policy)).toEqual([9])
  })

  it('a busy worker never prefetches its own node\'s chunks, a backup, a chunk of a job with no more open chunks than encoders, or anything of a job with waiting peers', () => {
    const open = [0, 1, 2, 3, 4, 5]
    const cases: Array<{ job: JobView, allowed: boolean }> = [
      { job: view(JOB_A, open), allowed: true },
      { job: view(JOB_A, open, { originator: ME }), allowed: false },
      { job: view(JOB_A, [], { backup: [0, 1, 2] }), allowed: false },
      { job: view(JOB_A, open, { waiting: ['p0'] }), allowed: false },
      { job: view(JOB_A, open, { waiting: [ME] }), allowed: false }
    ]
    for (const { job, allowed } of cases) {
      const h = harness({ slots: 2 })
      h.policy.updateJob(job)
      busy(h).nearEnd()
      expect(h.policy.next() !== undefined).toBe(allowed)
    }
    // Three peers of two slots are six encoders: six open chunks are no more than that, seven are.
    for (const [count, allowed] of [[6, false], [7, true]] as const) {
      const h = harness({ slots: 2, swarmSize: () => 3 })
      h.policy.updateJob(view(JOB_A, range(0, count)))
      busy(h).nearEnd()
      expect(h.policy.next() !== undefined).toBe(allowed)
    }
  })
})

describe('ClaimPolicy: the rest of the worker\'s choices', () => {
  it('claims backup copies (protocol §8.1) only when no job it knows has an open chunk it may claim, furthest behind first', () => {
    const { policy } = harness()
    policy.updateJob(view(JOB_A, [], { backup: [6, 1] }))
    policy.updateJob(view(JOB_B, [5]))
    expect(takeAndFinish(policy)).toMatchObject({ chunk: 5, view: { jobId: JOB_B } })
    // The backups are listed furthest from done first: that order, not the index, decides.
    expect(takeAndFinish(policy)).toMatchObject({ chunk: 6, view: { jobId: JOB_A } })
    expect(takeAndFinish(policy)).toMatchObject({ chunk: 1, view: { jobId: JOB_A } })
  })

  it('serves jobs in turn (round robin)', () => {
    const { policy } = harness()
    for (const id of [JOB_A, JOB_B, JOB_C]) policy.updateJob(view(id, range(0, 10)))
    const order = Array.from({ length: 9 }, () => takeAndFinish(policy).view.jobId)
    expect(order).toEqual([JOB_A, JOB_B, JOB_C, JOB_A, JOB_B, JOB_C, JOB_A, JOB_B, JOB_C])
  })

  it('downloads one segment per originator at a time; a download stalled past 5 s, or three times the last one, stops holding a place', () => {
    const { policy, clock } = harness({ slots: 2, prefetch: 0 })
    policy.updateJob(view(JOB_A, [0, 1, 2]))
    policy.updateJob(view(JOB_B, [0, 1, 2], { originator: 'second' }))
    const first = picked(policy)
    policy.granted(first)
    // The first originator is busy sending; the other one's chunk is next.
    const second = picked(policy)
    expect(second.view.originator).not.toBe(first.view.originator)
    policy.granted(second)
    expect(policy.wantsMore()).toBe(false)
    clock.t += 5000
    expect(policy.wantsMore()).toBe(false)
    clock.t += 1
    expect(policy.wantsMore()).toBe(true)
    // Stalled, but still downloading: nothing more from either originator until a download ends.
    expect(policy.next()).toBeUndefined()
    policy.staged(refOf(first), 'queued')
    expect(picked(policy).view.originator).toBe(first.view.originator)
    // After a 4 s download, a download stalls at 12 s.
    policy.downloaded(4000)
    expect(policy.wantsMore()).toBe(false)
    clock.t += 12_000 - 5001
    expect(policy.wantsMore()).toBe(false)
    clock.t += 1
    expect(policy.wantsMore()).toBe(true)
  })

  it('counts what holds or waits for a slot, not an upload: slots plus one prefetch unless told otherwise', () => {
    /** Holds `count` more downloaded chunks (of originators o`from`, …), each waiting for a slot; returns them. */
    const hold = (policy: ClaimPolicy, from: number, count: number): Pick[] => Array.from({ length: count }, (_, i) => {
      const pick: Pick = { view: view(JOB_A, [0], { originator: `o${from + i}` }), chunk: 0 }
      policy.granted(pick)
      policy.staged(refOf(pick), 'queued')
      return pick
    })
    const { policy } = harness({ slots: 2 })
    const held = hold(policy, 0, 2)
    expect(policy.wantsMore()).toBe(true)
    held.push(...hold(policy, 2, 1))
    expect(policy.wantsMore()).toBe(false)
    policy.staged(refOf(held[0] as Pick), 'uploading')
    expect(policy.wantsMore()).toBe(true)
    const none = harness({ slots: 2, prefetch: 0 }).policy
    hold(none, 0, 2)
    expect(none.wantsMore()).toBe(false)
  })

  it('leaves a refused chunk alone until the clock passes its backoff: 3 s, 5 s without an answer, 10 s given back, 10 min once done', () => {
    const cases: Array<{ name: string, act: (p: ClaimPolicy, pick: Pick) => void, ms: number }> = [
      { name: 'not-open', act: (p, pick) => { p.refused(pick, 'not-open', 'taken') }, ms: 3000 },
      { name: 'no answer', act: (p, pick) => { p.unanswered(pick) }, ms: 5000 },
      { name: 'given back', act: (p, pick) => { p.granted(pick); p.gaveUp(refOf(pick)); p.ended(refOf(pick)) }, ms: 10_000 },
      { name: 'already-done', act: (p, pick) => { p.refused(pick, 'already-done', 'done') }, ms: 600_000 }
    ]
    for (const { name, act, ms } of cases) {
      const { policy, clock } = harness()
      policy.updateJob(view(JOB_A, [3]))
      act(policy, picked(policy))
      // The next announcement lists the chunk as open again.
      policy.updateJob(view(JOB_A, [3], { seq: 2 }))
      clock.t += ms - 1
      expect(policy.next(), name).toBeUndefined()
      clock.t += 1
      expect(policy.next()?.chunk, name).toBe(3)
    }
  })

  it('leaves a job alone for 3 s once its originator says it holds as many leases as it may', () => {
    const { policy, clock } = harness()
    policy.updateJob(view(JOB_A, [0, 1, 2]))
    policy.refused(picked(policy), 'too-many-leases', 'enough')
    clock.t += 2999
    expect(policy.next()).toBeUndefined()
    clock.t += 1
    expect(policy.next()?.chunk).toBe(1)
  })

  it('drops a claimed chunk from the view it was picked from, not from a newer one heard meanwhile', () => {
    const { policy } = harness()
    policy.updateJob(view(JOB_A, [0, 1]))
    const pick = picked(policy)
    policy.updateJob(view(JOB_A, [0, 1], { seq: 2 }))
    policy.refused(pick, 'job-finished', 'no')
    // The refusal's backoff still covers chunk 0 in the newer view.
    expect(picked(policy).chunk).toBe(1)
    expect(pick.view.open).toEqual([1])
  })

  it('stops claiming a job it cannot encode: a banned answer (news once), a settings error, a second tool failure, or being told so', () => {
    const { policy } = harness()
    const job = view(JOB_A, [0, 1, 2, 3, 4, 5])
    policy.updateJob(job)
    expect(policy.refused(picked(policy), 'banned', 'go away')).toBe(true)
    expect(policy.isUnable(job)).toBe(true)
    expect(policy.next()).toBeUndefined()
    // The same id from another originator is another job.
    const copy = view(JOB_A, [0, 1, 2], { originator: 'copy' })
    policy.updateJob(copy)
    expect(policy.refused(picked(policy), 'banned', 'go away')).toBe(true)
    expect(policy.refused({ view: copy, chunk: 1 }, 'banned', 'still')).toBe(false)

    const tools = harness().policy
    tools.updateJob(job)
    tools.encodeFailed(job, 'ToolError', 'x264 crashed')
    tools.encodeFailed(job, 'Error', 'something else')
    expect(tools.isUnable(job)).toBe(false)
    tools.encodeFailed(job, 'VerificationError', 'frames missing')
    expect(tools.isUnable(job)).toBe(true)
    expect(tools.next()).toBeUndefined()

    const settings = harness().policy
    settings.updateJob(job)
    settings.encodeFailed(job, 'SettingsError', '--bogus')
    expect(settings.next()).toBeUndefined()

    const told = harness().policy
    told.updateJob(job)
    told.markUnable(job, 'memory')
    expect(told.next()).toBeUndefined()
  })

  it('ignores an older announcement of a job, and forgets a removed job but not what it cannot encode', () => {
    const { policy } = harness()
    expect(policy.updateJob(view(JOB_A, [1], { seq: 5 }))).toBe('new')
    expect(policy.updateJob(view(JOB_A, [2], { seq: 4 }))).toBe('stale')
    expect(picked(policy).chunk).toBe(1)
    expect(policy.updateJob(view(JOB_A, [3], { seq: 5 }))).toBe('update')
    expect(picked(policy).chunk).toBe(3)
    policy.markUnable(view(JOB_A, []), 'memory')
    policy.removeJob({ originator: 'origin', jobId: JOB_A })
    expect(policy.next()).toBeUndefined()
    expect(policy.updateJob(view(JOB_A, [4], { seq: 1 }))).toBe('new')
    expect(policy.next()).toBeUndefined()
  })
})

/**
 * Random announcements, claims, answers, task progress and clock steps against the policy's
 * invariants, checked at every pick against an independent record of what the policy was told.
 * Plain checks rather than expect(): they run hundreds of thousands of times.
 */
describe('ClaimPolicy: random sequences', () => {
  const SEQUENCES = 2000
  const STEPS = 60
  const ORIGINATORS = [ME, 'o1', 'o2']
  const CODES = ['not-open', 'not-open', 'already-done', 'too-many-leases', 'job-finished', 'banned'] as const

  function check (ok: boolean, why: () => string): void {
    if (!ok) throw new Error(why())
  }

  interface KnownJob { view: JobView, openSince: Map<number, number>, lostRaceAt?: number, pausedUntil?: number }
  interface Task { ref: ChunkRef, stage: 'fetching' | 'queued' | 'encoding' | 'uploading', grantedAt: number, nearEnd: boolean, stalledAtAGrant: boolean }

  /** What the policy has been told, kept the simple way. */
  class Told {
    readonly jobs = new Map<string, KnownJob>()
    readonly seqs = new Map<string, number>()
    readonly unable = new Set<string>()
    readonly toolFailures = new Map<string, number>()
    readonly backoff = new Map<string, number>()
    readonly tasks = new Map<string, Task>()
    lastFetchMs = 0
    constructor (readonly slots: number, readonly places: number, readonly encoders: () => number) {}

    stalled (t: Task, now: number): boolean { return t.stage === 'fetching' && now - t.grantedAt > Math.max(5000, 3 * this.lastFetchMs) }
    busy (now: number): number { return this.count(t => t.stage !== 'uploading' && !this.stalled(t, now)) }
    downloading (originator: string): boolean { return this.count(t => t.stage === 'fetching' && t.ref.originator === originator) > 0 }
    nearEnd (): boolean { return this.count(t => t.stage === 'encoding' && t.nearEnd) > 0 }
    count (is: (t: Task) => boolean): number {
      let n = 0
      for (const t of this.tasks.values()) if (is(t)) n++
      return n
    }
    /** A job's chunks of one kind this peer may claim now, ascending for open ones, in announced order for backups. */
    candidates (jk: string, j: KnownJob, open: boolean, now: number): number[] {
      const list = open ? j.view.open : j.view.backup ?? []
      const free = list.filter(c => !this.tasks.has(`${jk}#${c}`) && (this.backoff.get(`${jk}#${c}`) ?? 0) <= now)
      return open ? free.sort((a, b) => a - b) : free
    }
  }

  const jk = (r: { originator: string, jobId: string }): string => `${r.originator}/${r.jobId}`
  const ck = (r: ChunkRef): string => `${jk(r)}#${r.chunk}`

  /** Where the waiting list puts this peer: its open chunk, or only a chunk left 1 s (undefined: no share). */
  function share (j: KnownJob, free: number[]): number | undefined {
    const queue = j.view.waiting ?? []
    const at = queue.includes(ME) ? queue.indexOf(ME) : queue.length
    return at < free.length ? free[at] : undefined
  }

  function leftOver (j: KnownJob, free: number[], now: number): number | undefined {
    return free.find(c => now - (j.openSince.get(c) ?? now) >= 1000)
  }

  /** Whether a job is one the policy may pick from now (not counting the prefetch rules). */
  function eligible (rec: Told, key: string, j: KnownJob, now: number): boolean {
    return !rec.unable.has(key) && !rec.downloading(j.view.originator) && (j.pausedUntil ?? 0) <= now
  }

  function checkPick (rec: Told, pick: Pick, now: number, where: () => string): void {
    const key = jk(pick.view)
    const j = rec.jobs.get(key)
    check(j !== undefined, () => `${where()}: picked a job it has not heard of or forgot`)
    const job = j as KnownJob
    check(pick.view.seq === job.view.seq && pick.view.open.length === job.view.open.length, () => `${where()}: picked from a view other than the latest, as trimmed by the claims since`)
    check(!rec.unable.has(key), () => `${where()}: picked a chunk of a job it cannot encode`)
    check(!rec.tasks.has(ck({ ...pick.view, chunk: pick.chunk })), () => `${where()}: picked chunk ${pick.chunk}, which it holds`)
    check((rec.backoff.get(`${key}#${pick.chunk}`) ?? 0) <= now, () => `${where()}: picked chunk ${pick.chunk} before its backoff ended`)
    check((job.pausedUntil ?? 0) <= now, () => `${where()}: picked from a job whose originator said it holds enough leases`)
    check(!rec.downloading(pick.view.originator), () => `${where()}: a second download from ${pick.view.originator}`)
    const isOpen = job.view.open.includes(pick.chunk)
    check(isOpen || (job.view.backup ?? []).includes(pick.chunk), () => `${where()}: chunk ${pick.chunk} is neither open nor a backup`)
    if (rec.busy(now) >= rec.slots) checkPrefetch(rec, key, job, pick.chunk, now, where)
    else if (isOpen) checkOpenOrder(rec, key, job, pick.chunk, now, where)
    else checkBackup(rec, key, job, pick.chunk, now, where)
  }

  function checkPrefetch (rec: Told, key: string, j: KnownJob, chunk: number, now: number, where: () => string): void {
    const enc = rec.encoders()
    check(rec.nearEnd(), () => `${where()}: prefetched with no encode near its end`)
    check(j.view.originator !== ME, () => `${where()}: prefetched its own node's chunk`)
    check(j.view.open.includes(chunk), () => `${where()}: prefetched a backup`)
    check((j.view.waiting ?? []).length === 0, () => `${where()}: prefetched while peers wait`)
    check(j.view.open.length > enc, () => `${where()}: prefetched from a job with ${j.view.open.length} open chunks for ${enc} encoders`)
    const free = rec.candidates(key, j, true, now)
    const contended = now - (j.lostRaceAt ?? -Infinity) < 2000
    const rank = free.indexOf(chunk)
    check(rank < Math.min(j.view.open.length - enc, Math.max(2 * enc, contended ? 4 : 1)), () => `${where()}: prefetched the ${rank}th free chunk of ${j.view.open.length} open, ${enc} encoders`)
  }

  function checkOpenOrder (rec: Told, key: string, j: KnownJob, chunk: number, now: number, where: () => string): void {
    const free = rec.candidates(key, j, true, now)
    if ((j.view.waiting ?? []).length > 0) {
      const expected = share(j, free) ?? leftOver(j, free, now)
      check(chunk === expected, () => `${where()}: waiting list ${String(j.view.waiting)} gives ${String(expected)} of ${String(free)}, picked ${chunk}`)
      return
    }
    const contended = now - (j.lostRaceAt ?? -Infinity) < 2000
    check(free.indexOf(chunk) < (contended ? 4 : 1), () => `${where()}: picked ${chunk} of ${String(free)} (contended: ${String(contended)})`)
  }

  function checkBackup (rec: Told, key: string, j: KnownJob, chunk: number, now: number, where: () => string): void {
    check(chunk === rec.candidates(key, j, false, now)[0], () => `${where()}: backup ${chunk} is not the furthest behind`)
    for (const [k, other] of rec.jobs) {
      if (!eligible(rec, k, other, now)) continue
      const free = rec.candidates(k, other, true, now)
      const claimable = free.length > 0 && ((other.view.waiting ?? []).length === 0 || share(other, free) !== undefined || leftOver(other, free, now) !== undefined)
      check(!claimable, () => `${where()}: took a backup while ${k} had open chunk(s) ${String(free)} to claim`)
    }
  }

  interface Tally { grants: number, prefetches: number, backups: number }
  interface Sim { rand: () => number, policy: ClaimPolicy, rec: Told, clock: { t: number }, size: { n: number }, tally: Tally }
  const pickOne = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T

  function announce (s: Sim, where: () => string): void {
    const { rand, policy, rec, clock } = s
    const ref = { originator: pickOne(rand, ORIGINATORS), jobId: pickOne(rand, [JOB_A, JOB_B]) }
    const total = 1 + Math.floor(rand() * 24)
    const density = rand()
    const open = range(0, total).filter(() => rand() < density)
    const backup = rand() < 0.3 ? range(0, total).reverse().filter(c => !open.includes(c) && rand() < 0.4) : undefined
    const waiting = rand() < 0.6 ? [] : ['p1', ME, 'p2', 'p3'].sort(() => rand() - 0.5).slice(0, 1 + Math.floor(rand() * 4))
    const known = rec.seqs.get(jk(ref))
    const seq = (known ?? 0) + (rand() < 0.1 ? -1 : 1)
    const heard = policy.updateJob({ ...ref, settings: '', totalChunks: total, open, ...(backup !== undefined ? { backup } : {}), waiting, seq })
    const stale = rec.jobs.has(jk(ref)) && (known ?? 0) > seq
    check(heard === (stale ? 'stale' : rec.jobs.has(jk(ref)) ? 'update' : 'new'), () => `${where()}: announcement taken as ${heard}`)
    if (stale) return
    rec.seqs.set(jk(ref), seq)
    const before = rec.jobs.get(jk(ref))
    const openSince = new Map(open.map(c => [c, before?.openSince.get(c) ?? clock.t]))
    rec.jobs.set(jk(ref), { ...before, view: { ...ref, settings: '', totalChunks: total, open: [...open], ...(backup !== undefined ? { backup: [...backup] } : {}), waiting, seq }, openSince })
  }

  function answer (s: Sim, pick: Pick): void {
    const { rand, policy, rec, clock } = s
    const key = jk(pick.view)
    const job = rec.jobs.get(key) as KnownJob
    const drop = (): void => { job.view.open = job.view.open.filter(c => c !== pick.chunk); job.view.backup = job.view.backup?.filter(c => c !== pick.chunk) }
    const r = rand()
    if (r < 0.65) {
      for (const t of rec.tasks.values()) if (rec.stalled(t, clock.t)) t.stalledAtAGrant = true
      policy.granted(pick)
      rec.tasks.set(ck({ ...pick.view, chunk: pick.chunk }), { ref: refOf(pick), stage: 'fetching', grantedAt: clock.t, nearEnd: false, stalledAtAGrant: false })
      drop()
      s.tally.grants++
    } else if (r < 0.9) {
      const code = pickOne(rand, CODES)
      const news = policy.refused(pick, code, 'refused')
      check(news === (code === 'banned' && !rec.unable.has(key)), () => `banned news said ${String(news)}`)
      rec.backoff.set(ck(refOf(pick)), clock.t + (code === 'already-done' ? 600_000 : 3000))
      if (code === 'banned') rec.unable.add(key)
      if (code === 'not-open') job.lostRaceAt = clock.t
      if (code === 'too-many-leases') job.pausedUntil = clock.t + 3000
      drop()
    } else {
      policy.unanswered(pick)
      rec.backoff.set(ck(refOf(pick)), clock.t + 5000)
    }
  }

  function pump (s: Sim, where: () => string): void {
    const { policy, rec, clock } = s
    for (let i = 0; i < 500; i++) {
      const wants = policy.wantsMore()
      check(wants === rec.busy(clock.t) < rec.places, () => `${where()}: wantsMore ${String(wants)} with ${rec.busy(clock.t)} of ${rec.places} places taken`)
      check(policy.prefetchDue() === rec.nearEnd(), () => `${where()}: prefetchDue disagrees`)
      if (!wants) return
      const pick = policy.next()
      if (pick === undefined) return
      checkPick(rec, pick, clock.t, where)
      if (!pick.view.open.includes(pick.chunk)) s.tally.backups++
      if (rec.busy(clock.t) >= rec.slots) s.tally.prefetches++
      answer(s, pick)
    }
    throw new Error(`${where()}: a pump that does not end`)
  }

  function end (s: Sim, t: Task, gaveUp: boolean): void {
    if (gaveUp) { s.policy.gaveUp(t.ref); s.rec.backoff.set(ck(t.ref), s.clock.t + 10_000) }
    s.policy.ended(t.ref)
    s.rec.tasks.delete(ck(t.ref))
  }

  function advanceTask (s: Sim, where: () => string): void {
    const { rand, policy, rec } = s
    if (rec.tasks.size === 0) return
    const t = pickOne(rand, [...rec.tasks.values()])
    const r = rand()
    if (t.stage === 'fetching') {
      if (r < 0.15) { end(s, t, true); return }
      if (rand() < 0.5) { const ms = Math.floor(rand() * 4000); policy.downloaded(ms); rec.lastFetchMs = ms }
      policy.staged(t.ref, 'queued'); t.stage = 'queued'
    } else if (t.stage === 'queued') {
      policy.staged(t.ref, 'encoding'); t.stage = 'encoding'
    } else if (t.stage === 'encoding') {
      if (r < 0.5) { progress(s, t, where); return }
      if (r < 0.65) { failEncode(s, t); return }
      policy.staged(t.ref, 'uploading'); t.stage = 'uploading'
    } else end(s, t, r < 0.2)
  }

  function progress (s: Sim, t: Task, where: () => string): void {
    const { rand, policy, rec } = s
    const framesLeft = Math.floor(rand() * 200)
    const fps = rand() < 0.1 ? 0 : rand() * 60
    const due = !t.nearEnd && fps > 0 && framesLeft / fps * 1000 <= 2 * rec.lastFetchMs + 1000
    check(policy.progressed(t.ref, framesLeft, fps) === due, () => `${where()}: ${framesLeft} frames at ${fps} fps after a ${rec.lastFetchMs} ms download: due should be ${String(due)}`)
    if (due) t.nearEnd = true
  }

  function failEncode (s: Sim, t: Task): void {
    const name = pickOne(s.rand, ['ToolError', 'VerificationError', 'SettingsError', 'Error'])
    s.policy.encodeFailed(t.ref, name, 'failed')
    const key = jk(t.ref)
    const failures = (s.rec.toolFailures.get(key) ?? 0) + (name === 'ToolError' || name === 'VerificationError' ? 1 : 0)
    s.rec.toolFailures.set(key, failures)
    if (name === 'SettingsError' || failures >= 2) s.rec.unable.add(key)
    end(s, t, true)
  }

  function step (s: Sim, where: () => string): void {
    const { rand, policy, rec, clock } = s
    const r = rand()
    if (r < 0.2) announce(s, where)
    else if (r < 0.45) pump(s, where)
    else if (r < 0.75) advanceTask(s, where)
    else if (r < 0.93) clock.t += Math.floor(rand() * rand() * 8000)
    else if (r < 0.96 && rec.jobs.size > 0) {
      const key = pickOne(rand, [...rec.jobs.keys()])
      const { view: v } = rec.jobs.get(key) as KnownJob
      policy.removeJob(v)
      rec.jobs.delete(key)
    } else if (r < 0.98 && rec.jobs.size > 0) {
      const { view: v } = rec.jobs.get(pickOne(rand, [...rec.jobs.keys()])) as KnownJob
      policy.markUnable(v, 'told')
      rec.unable.add(jk(v))
    } else s.size.n = 1 + Math.floor(rand() * 4)
  }

  it(`keeps every invariant through ${SEQUENCES} random sequences`, () => {
    const tally: Tally = { grants: 0, prefetches: 0, backups: 0 }
    for (let seed = 1; seed <= SEQUENCES; seed++) {
      const rand = prng(seed)
      const clock = { t: 1_000_000 }
      const size = { n: 1 + Math.floor(rand() * 3) }
      const slots = 1 + Math.floor(rand() * 3)
      const prefetch = rand() < 0.25 ? undefined : Math.floor(rand() * 3)
      const policy = new ClaimPolicy({ peerId: ME, slots, prefetch, swarmSize: () => size.n, now: () => clock.t, random: prng(seed + 1_000_000) })
      const rec = new Told(slots, slots + (prefetch ?? 1), () => size.n * slots)
      const s: Sim = { rand, policy, rec, clock, size, tally }
      for (let i = 0; i < STEPS; i++) {
        const where = (): string => `seed ${seed} step ${i}`
        step(s, where)
        // Never more holding or waiting for a slot than slots plus prefetch, but for downloads that
        // stalled (and so stopped holding a place) while the worker claimed beside them.
        const holding = rec.count(t => t.stage !== 'uploading' && !t.stalledAtAGrant)
        check(holding <= rec.places, () => `${where()}: ${holding} chunks hold ${rec.places} places`)
      }
    }
    // The sequences reach every kind of claim, not just the easy ones.
    expect(tally.grants).toBeGreaterThan(SEQUENCES * 3)
    expect(tally.prefetches).toBeGreaterThan(SEQUENCES / 5)
    expect(tally.backups).toBeGreaterThan(SEQUENCES / 10)
  })

  it('rotates fairly across jobs: any run of as many picks as there are jobs takes one from each', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rand = prng(seed)
      const { policy } = harness({ slots: 1 + Math.floor(rand() * 4), random: prng(seed + 1) })
      const jobs = 2 + Math.floor(rand() * 4)
      for (let n = 0; n < jobs; n++) policy.updateJob(view(n.toString(16).repeat(64), range(0, 8 * jobs), { originator: `o${n}` }))
      const order: string[] = []
      for (let i = 0; i < 4 * jobs; i++) {
        const pick = picked(policy)
        order.push(pick.view.jobId)
        // Granted and done, or refused for a reason that leaves the job claimable.
        if (rand() < 0.5) finish(policy, pick)
        else policy.refused(pick, pickOne(rand, ['not-open', 'already-done', 'job-finished'] as const), 'no')
      }
      for (let i = 0; i + jobs <= order.length; i++) {
        check(new Set(order.slice(i, i + jobs)).size === jobs, () => `seed ${seed}: picks ${i}..${i + jobs - 1} repeat a job: ${order.slice(i, i + jobs).map(j => j[0]).join('')}`)
      }
    }
  })
})

