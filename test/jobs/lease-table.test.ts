import { describe, expect, it } from 'vitest'
import { LeaseTable, type LeaseAnswer, type LeaseTableOptions } from '../../src/jobs/lease-table.js'
import type { ChunkRecord, ChunkState, JobRecord, LeaseRecord } from '../../src/jobs/types.js'
import { jobRecord } from '../helpers/job-record.js'
import { prng } from '../helpers/random.js'

const LEASE_MS = 30_000

interface Harness {
  table: LeaseTable
  jobs: Map<string, JobRecord>
  clock: { t: number }
  changes: Array<{ job: string, announce: boolean }>
  failures: string[]
}

/** A table over the given jobs, wired the way the originator wires it: `failed` fails the job and drops its leases. */
function harness (jobs: JobRecord[], options: Partial<LeaseTableOptions> = {}): Harness {
  const map = new Map(jobs.map(j => [j.id, j]))
  const clock = { t: 1_000_000 }
  const changes: Harness['changes'] = []
  const failures: string[] = []
  let ids = 0
  const table: LeaseTable = new LeaseTable(map, {
    leaseMs: LEASE_MS,
    now: () => clock.t,
    newLeaseId: () => `lease${ids++}`,
    changed: (job, announce) => { changes.push({ job: job.id, announce }) },
    failed: (job, error) => {
      failures.push(error)
      job.state = 'failed'
      job.error = error
      table.abandon(job)
    },
    ...options
  })
  return { table, jobs: map, clock, changes, failures }
}

function granted (answer: LeaseAnswer): LeaseRecord {
  if (!answer.ok) throw new Error(`refused: ${answer.code} ${answer.message}`)
  return answer.lease
}

function chunkOf (job: JobRecord, index: number): ChunkRecord {
  const chunk = job.chunks[index]
  if (chunk === undefined) throw new Error(`no chunk ${index}`)
  return chunk
}

function result (peer: string, at: number): { file: string, size: number, sha256: string, encodedBy: string, at: number } {
  return { file: 'r.264', size: 1, sha256: 'x', encodedBy: peer, at }
}

describe('LeaseTable: claims', () => {
  it('gives an open chunk to the first claimant and refuses the rest, with the reason', () => {
    const job = jobRecord('j', ['open', 'pending', 'done'], 'splitting')
    const { table, changes } = harness([job])
    const lease = granted(table.claim('j', 0, 'a'))
    expect(lease).toMatchObject({ holder: 'a', issuedAt: 1_000_000, expiresAt: 1_000_000 + LEASE_MS, framesDone: 0, fps: 0 })
    expect(lease.backup).toBeUndefined()
    expect(chunkOf(job, 0)).toMatchObject({ state: 'leased', lease })
    expect(job.stats).toEqual({ leases: 1, backupLeases: 0, droppedResults: 0 })
    expect(changes).toEqual([{ job: 'j', announce: true }])
    expect(table.claim('j', 0, 'b')).toMatchObject({ ok: false, code: 'not-open' })
    expect(table.claim('j', 1, 'b')).toMatchObject({ ok: false, code: 'not-open', message: 'chunk 1 is not cut yet' })
    expect(table.claim('j', 2, 'b')).toMatchObject({ ok: false, code: 'already-done' })
    expect(table.claim('j', 3, 'b')).toMatchObject({ ok: false, code: 'unknown-chunk' })
    expect(table.claim('j', 0.5, 'b')).toMatchObject({ ok: false, code: 'unknown-chunk' })
    expect(table.claim('nope', 0, 'b')).toMatchObject({ ok: false, code: 'unknown-job' })
  })

  it('leases nothing of a job that is merging, done or failed', () => {
    for (const state of ['merging', 'done', 'failed'] as const) {
      const { table } = harness([jobRecord('j', ['open'], state)])
      expect(table.claim('j', 0, 'a')).toMatchObject({ ok: false, code: 'job-finished' })
      // A finished job is checked before the chunk: even a chunk it never had is "finished".
      expect(table.claim('j', 7, 'a')).toMatchObject({ ok: false, code: 'job-finished' })
    }
  })

  it('opens only pending chunks, and announces the change', () => {
    const job = jobRecord('j', ['pending', 'done'], 'splitting')
    const { table, changes } = harness([job])
    table.open(job, chunkOf(job, 0))
    table.open(job, chunkOf(job, 1))
    expect(job.chunks.map(c => c.state)).toEqual(['open', 'done'])
    expect(changes).toHaveLength(2)
  })
})

describe('LeaseTable: heartbeats, expiry and release', () => {
  it('renews a lease on heartbeat, quietly, and lets an unrenewed one lapse', () => {
    const job = jobRecord('j', ['open'])
    const { table, clock, changes } = harness([job])
    const lease = granted(table.claim('j', 0, 'a'))
    clock.t += 20_000
    expect(table.renew('j', 0, lease.id, 'a', { framesDone: 250, fps: Number.NaN })).toEqual({ ok: true, expiresAt: clock.t + LEASE_MS })
    // Progress is clamped to the chunk and a nonsense rate is no rate.
    expect(chunkOf(job, 0).lease).toMatchObject({ framesDone: 100, fps: 0, renewedAt: clock.t })
    expect(changes.at(-1)).toEqual({ job: 'j', announce: false })
    expect(table.renew('j', 0, lease.id, 'b', { framesDone: 1, fps: 1 })).toMatchObject({ ok: false, code: 'not-holder' })
    expect(table.renew('j', 0, 'other', 'a', { framesDone: 1, fps: 1 })).toMatchObject({ ok: false, code: 'not-holder' })
    clock.t += LEASE_MS - 1
    expect(table.expire()).toBe(0)
    clock.t += 1
    expect(table.expire()).toBe(1)
    expect(chunkOf(job, 0)).toMatchObject({ state: 'open', pastHolders: ['a'] })
    expect(chunkOf(job, 0).lease).toBeUndefined()
    expect(table.renew('j', 0, lease.id, 'a', { framesDone: 1, fps: 1 })).toMatchObject({ ok: false, code: 'lease-expired' })
  })

  it('lets leases of jobs that are not running be (their leases were dropped when they stopped)', () => {
    const job = jobRecord('j', ['open'])
    const { table, clock } = harness([job])
    granted(table.claim('j', 0, 'a'))
    job.state = 'merging'
    clock.t += 10 * LEASE_MS
    expect(table.expire()).toBe(0)
  })

  it('reopens a released chunk; only a release with a reason counts as a failure', () => {
    const job = jobRecord('j', ['open'])
    const { table } = harness([job])
    for (const reason of ['', 'shutdown']) {
      const lease = granted(table.claim('j', 0, 'a'))
      expect(table.release('j', 0, lease.id, 'a', reason)).toEqual({ ok: true })
      expect(chunkOf(job, 0).state).toBe('open')
    }
    expect(chunkOf(job, 0).failures).toEqual([])
    const lease = granted(table.claim('j', 0, 'a'))
    table.release('j', 0, lease.id, 'a', 'x'.repeat(600))
    expect(chunkOf(job, 0).failures).toEqual([{ peer: 'a', reason: 'x'.repeat(500), at: 1_000_000 }])
    expect(table.release('j', 0, lease.id, 'a', 'again')).toMatchObject({ ok: false, code: 'lease-expired' })
  })

  it('keeps a chunk that failed on maxChunkFailures peers for its own worker, and fails the job only when that fails it too', () => {
    const job = jobRecord('j', ['open', 'open'])
    const { table, failures } = harness([job], { maxChunkFailures: 3, swarmSize: () => 10, self: 'self' })
    const failOn = (peer: string): void => { table.release('j', 0, granted(table.claim('j', 0, peer)).id, peer, 'x264 [error]: no disk space') }
    failOn('p1'); failOn('p1'); failOn('p2')
    expect(job.state).toBe('encoding')
    granted(table.claim('j', 1, 'p9'))
    // Three throwaway ids "failing" a chunk used to fail the job right here.
    failOn('p3')
    expect(failures).toEqual([])
    expect(chunkOf(job, 0)).toMatchObject({ state: 'open', reservedFor: 'self' })
    expect(table.claim('j', 0, 'p4')).toMatchObject({ ok: false, code: 'not-open', message: /kept for the originator's own encoder/ })
    failOn('self')
    expect(failures).toEqual(['chunk 0 failed on 4 peers, this node\'s own encoder among them; last error: x264 [error]: no disk space'])
    expect(job).toMatchObject({ state: 'failed', error: failures[0] })
    // The failed job holds nothing: its leased chunks are open for a retry.
    expect(job.chunks.map(c => [c.state, c.lease, c.backup])).toEqual([['open', undefined, undefined], ['open', undefined, undefined]])
  })

  it('fails the job when a chunk is kept for its own worker but that worker already failed the job twice (it would never take the chunk)', () => {
    const job = jobRecord('j', ['open', 'open', 'open'])
    const { table, failures } = harness([job], { maxChunkFailures: 3, swarmSize: () => 10, self: 'self' })
    const failOn = (chunk: number, peer: string): void => { table.release('j', chunk, granted(table.claim('j', chunk, peer)).id, peer, 'x264 [error]: bad') }
    failOn(1, 'self'); failOn(2, 'self')
    expect(job.state).toBe('encoding')
    failOn(0, 'p1'); failOn(0, 'p2'); failOn(0, 'p3')
    expect(failures).toEqual(['chunk 0 failed on 3 peers and this node\'s own encoder failed this job twice; last error: x264 [error]: bad'])
  })

  it('treats peers\' reasons as advisory when this node has no worker of its own: counted, never fatal', () => {
    const job = jobRecord('j', ['open'])
    const { table, failures } = harness([job], { maxChunkFailures: 3, swarmSize: () => 1 })
    // Ten peers, each failing twice, in a swarm said to have one: still only their word.
    for (let round = 0; round < 2; round++) for (let i = 0; i < 10; i++) table.release('j', 0, granted(table.claim('j', 0, `p${i}`)).id, `p${i}`, 'bad')
    expect(failures).toEqual([])
    expect(job.state).toBe('encoding')
    expect(chunkOf(job, 0).failures).toHaveLength(20)
    expect(chunkOf(job, 0).reservedFor).toBeUndefined()
  })

  it('fails the job once every peer still in the swarm, itself included, failed it twice; departed peers do not count', () => {
    const job = jobRecord('j', ['open', 'open', 'open'])
    const present = new Set(['self', 'b'])
    const { table, failures } = harness([job], { maxChunkFailures: 99, swarmSize: () => present.size, self: 'self', isPresent: p => present.has(p) })
    const failOn = (chunk: number, peer: string): void => { table.release('j', chunk, granted(table.claim('j', chunk, peer)).id, peer, 'bad') }
    // Two peers that failed twice and left, and b: not every peer here.
    failOn(0, 'gone1'); failOn(1, 'gone1'); failOn(0, 'gone2'); failOn(1, 'gone2')
    failOn(0, 'b'); failOn(1, 'b')
    expect(job.state).toBe('encoding')
    failOn(0, 'self')
    expect(job.state).toBe('encoding')
    failOn(2, 'self')
    expect(failures).toEqual(['every peer (2) failed to encode this job twice; last error, from chunk 2: bad'])
  })

  it('remembers at most 16 past holders of a chunk', () => {
    const job = jobRecord('j', ['open'])
    const { table } = harness([job])
    for (let i = 0; i < 20; i++) table.release('j', 0, granted(table.claim('j', 0, `p${i}`)).id, `p${i}`, '')
    expect(chunkOf(job, 0).pastHolders).toEqual(Array.from({ length: 16 }, (_, i) => `p${i + 4}`))
  })

  it('drops every lease a restarted peer held, handing its chunks to their backups', () => {
    const job = jobRecord('j', ['open', 'open'])
    const { table } = harness([job])
    granted(table.claim('j', 0, 'self'))
    granted(table.claim('j', 1, 'other'))
    const backup = granted(table.claim('j', 0, 'other'))
    table.dropHolder(job, 'self')
    expect(chunkOf(job, 0)).toMatchObject({ state: 'leased', lease: { id: backup.id, holder: 'other', backup: false }, pastHolders: ['self'] })
    expect(chunkOf(job, 0).backup).toBeUndefined()
    expect(chunkOf(job, 1).lease?.holder).toBe('other')
  })
})

describe('LeaseTable: backups', () => {
  it('gives one backup of a leased chunk, never to its holder, and only once nothing is open or pending', () => {
    const job = jobRecord('j', ['open', 'open'])
    const { table, clock } = harness([job])
    const primary = granted(table.claim('j', 0, 'a'))
    expect(table.claim('j', 0, 'b')).toMatchObject({ ok: false, code: 'not-open', message: 'chunk 0 is leased to another peer' })
    expect(table.backupCandidates(job)).toEqual([])
    const other = granted(table.claim('j', 1, 'c'))
    expect(table.claim('j', 0, 'a')).toMatchObject({ ok: false, message: 'chunk 0 already has two holders' })
    // No pace known yet: any copy may help.
    expect(table.backupCandidates(job)).toEqual([0, 1])
    const backup = granted(table.claim('j', 0, 'b'))
    expect(backup).toMatchObject({ holder: 'b', backup: true })
    expect(job.stats).toMatchObject({ leases: 2, backupLeases: 1 })
    expect(table.claim('j', 0, 'd')).toMatchObject({ ok: false, message: 'chunk 0 already has two holders' })
    expect(table.backupCandidates(job)).toEqual([1])
    // A lapsed backup just goes; a lapsed primary hands the chunk to its backup.
    // (Chunk 1's holder keeps renewing throughout, so nothing opens.)
    const heartbeats = (): void => {
      table.renew('j', 0, primary.id, 'a', { framesDone: 1, fps: 1 })
      table.renew('j', 1, other.id, 'c', { framesDone: 1, fps: 1 })
    }
    heartbeats()
    clock.t += LEASE_MS - 1
    heartbeats()
    clock.t += 1
    table.expire()
    expect(chunkOf(job, 0)).toMatchObject({ state: 'leased', lease: { holder: 'a' } })
    expect(chunkOf(job, 0).backup).toBeUndefined()
    const again = granted(table.claim('j', 0, 'b'))
    clock.t += LEASE_MS - 1
    table.renew('j', 0, again.id, 'b', { framesDone: 1, fps: 1 })
    table.renew('j', 1, other.id, 'c', { framesDone: 1, fps: 1 })
    clock.t += 1
    table.expire()
    expect(chunkOf(job, 0)).toMatchObject({ state: 'leased', lease: { id: again.id, holder: 'b', backup: false } })
  })

  it('gives no backups while the job is still splitting, even with nothing open', () => {
    const job = jobRecord('j', ['open'], 'splitting')
    const { table } = harness([job])
    granted(table.claim('j', 0, 'a'))
    expect(table.backupCandidates(job)).toEqual([])
    expect(table.claim('j', 0, 'b')).toMatchObject({ ok: false, code: 'not-open' })
  })

  it('backs up only a holder that would finish later than a fresh copy (the LATE rule)', () => {
    const job = jobRecord('j', ['open', 'open', 'open', 'open', 'open', 'open'])
    const { table, clock } = harness([job])
    const leases = job.chunks.map(c => granted(table.claim('j', c.index, `p${c.index}`)))
    // Chunk 0 took 0.1 s a frame: a fresh copy of a 100-frame chunk takes 10 s.
    clock.t += 10_000
    table.complete(job, chunkOf(job, 0), 'p0', result('p0', clock.t))
    const lease = (i: number): string => leases[i]?.id ?? ''
    table.renew('j', 1, lease(1), 'p1', { framesDone: 10, fps: 100 }) // 0.9 s to go: keeps it
    table.renew('j', 2, lease(2), 'p2', { framesDone: 0, fps: 0 }) // nothing out yet: as if it had said nothing
    table.renew('j', 3, lease(3), 'p3', { framesDone: 10, fps: 0.5 }) // 180 s to go: late
    table.renew('j', 5, lease(5), 'p5', { framesDone: 3, fps: 1.2 }) // an encoder's first frames (SVT-AV1): too few to tell its pace
    // Without a pace: late once it has had 1.5 fresh copies' time since its lease (15 s; 10 s so far).
    expect(table.backupCandidates(job)).toEqual([3])
    expect(table.claim('j', 1, 'idle')).toMatchObject({ ok: false, message: /should finish it before a second copy could/ })
    expect(table.claim('j', 5, 'idle')).toMatchObject({ ok: false, message: /should finish it before a second copy could/ })
    clock.t += 5_001
    expect(table.backupCandidates(job)).toEqual([2, 4, 5, 3])
    expect(table.backupCandidates(job, 1)).toEqual([2])
    expect(granted(table.claim('j', 4, 'idle')).backup).toBe(true)
  })

  it('takes this node\'s own worker at its word: no backup of its chunk while it says a copy would finish later, however long it took', () => {
    const job = jobRecord('j', ['open', 'open', 'open'])
    const { table, clock } = harness([job], { self: 'self' })
    const own = granted(table.claim('j', 0, 'self'))
    const stranger = granted(table.claim('j', 1, 'p1'))
    granted(table.claim('j', 2, 'p2'))
    // Chunk 2 took 0.1 s a frame: a fresh copy takes 10 s.
    clock.t += 10_000
    table.complete(job, chunkOf(job, 2), 'p2', result('p2', clock.t))
    // Both have run 21 s, past twice a fresh copy, and both say 10 frames (1 s) are left.
    clock.t += 11_000
    table.renew('j', 0, own.id, 'self', { framesDone: 90, fps: 10 })
    table.renew('j', 1, stranger.id, 'p1', { framesDone: 90, fps: 10 })
    expect(table.backupCandidates(job)).toEqual([1])
    expect(table.claim('j', 0, 'idle')).toMatchObject({ ok: false, message: /should finish it before a second copy could/ })
    // Its own word that it is slow counts as much.
    table.renew('j', 0, own.id, 'self', { framesDone: 20, fps: 0.5 })
    expect(table.backupCandidates(job)).toEqual([0, 1])
  })
})

describe('LeaseTable: results', () => {
  it('completes a chunk for good and tells a second holder to stop', () => {
    const job = jobRecord('j', ['open', 'open'])
    const { table, clock } = harness([job])
    const primary = granted(table.claim('j', 0, 'a'))
    granted(table.claim('j', 1, 'c'))
    const backup = granted(table.claim('j', 0, 'b'))
    table.complete(job, chunkOf(job, 0), 'b', result('b', clock.t))
    expect(chunkOf(job, 0)).toMatchObject({ state: 'done', result: { encodedBy: 'b' } })
    expect(chunkOf(job, 0).lease).toBeUndefined()
    expect(chunkOf(job, 0).backup).toBeUndefined()
    expect(table.settledRecently('j')).toEqual([0])
    expect(table.renew('j', 0, primary.id, 'a', { framesDone: 1, fps: 1 })).toMatchObject({ ok: false, code: 'already-done' })
    expect(table.release('j', 0, backup.id, 'b', 'x')).toMatchObject({ ok: false, code: 'already-done' })
    expect(table.claim('j', 0, 'a')).toMatchObject({ ok: false, code: 'already-done' })
    expect(table.beginUpload('j', 0, primary.id, 'a')).toMatchObject({ ok: false, code: 'already-done' })
    // A chunk done by its only holder has nobody to stop.
    table.complete(job, chunkOf(job, 1), 'c', result('c', clock.t))
    expect(table.settledRecently('j')).toEqual([0])
    clock.t += 30_001
    expect(table.settledRecently('j')).toEqual([])
  })

  it('takes results from the current holder and the most recent former one only, one upload per lease, while the job runs', () => {
    const job = jobRecord('j', ['open'])
    const { table, clock } = harness([job], { minDeadlineMs: 60_000, noPaceDeadlineMs: 600_000 })
    const lease = granted(table.claim('j', 0, 'a'))
    expect(table.beginUpload('j', 0, lease.id, 'b')).toMatchObject({ ok: false, code: 'not-holder' })
    expect(table.beginUpload('j', 0, lease.id, 'a')).toMatchObject({ job, chunk: chunkOf(job, 0) })
    // One upload per lease: a second at once is refused; lost bytes may be sent again.
    expect(table.beginUpload('j', 0, lease.id, 'a')).toMatchObject({ ok: false, code: 'duplicate-upload' })
    table.endUpload('j', 0, lease.id, 'lost')
    expect(table.beginUpload('j', 0, lease.id, 'a')).toMatchObject({ ok: true })
    table.endUpload('j', 0, lease.id, 'lost')
    clock.t += LEASE_MS + 1
    table.expire()
    // A lapsed holder's work is still welcome, under the lease it held and no other.
    expect(table.beginUpload('j', 0, 'whatever', 'a')).toMatchObject({ ok: false, code: 'lease-expired' })
    expect(table.beginUpload('j', 0, lease.id, 'a')).toMatchObject({ ok: true })
    table.endUpload('j', 0, lease.id, 'lost')
    expect(table.current('j', 0, lease.id, 'a')).toMatchObject({ ok: false, code: 'lease-expired' })
    // Once another lease on the chunk ended after it, it is no longer the most recent.
    const second = granted(table.claim('j', 0, 'b'))
    expect(table.beginUpload('j', 0, lease.id, 'a')).toMatchObject({ ok: true })
    table.endUpload('j', 0, lease.id, 'lost')
    table.release('j', 0, second.id, 'b', '')
    expect(table.beginUpload('j', 0, lease.id, 'a')).toMatchObject({ ok: false, code: 'lease-expired' })
    // Nor is a late result welcome for ever: only as long after the lease ended as a lease may last.
    expect(table.beginUpload('j', 0, second.id, 'b')).toMatchObject({ ok: true })
    table.endUpload('j', 0, second.id, 'lost')
    clock.t += 600_001
    expect(table.beginUpload('j', 0, second.id, 'b')).toMatchObject({ ok: false, code: 'lease-expired', message: /too long ago/ })
    job.state = 'failed'
    expect(table.beginUpload('j', 0, lease.id, 'a')).toMatchObject({ ok: false, code: 'job-finished' })
    expect(table.beginUpload('j', 5, lease.id, 'a')).toMatchObject({ ok: false, code: 'unknown-chunk' })
    expect(table.beginUpload('x', 0, lease.id, 'a')).toMatchObject({ ok: false, code: 'unknown-job' })
  })

  it('ends a lease whose result was refused, and takes no second result under it', () => {
    const job = jobRecord('j', ['open', 'open'])
    const { table } = harness([job])
    const lease = granted(table.claim('j', 0, 'a'))
    granted(table.claim('j', 1, 'c'))
    const backup = granted(table.claim('j', 0, 'b'))
    expect(table.beginUpload('j', 0, lease.id, 'a')).toMatchObject({ ok: true })
    table.endUpload('j', 0, lease.id, 'refused')
    // The backup holds the chunk now; the refused lease is the most recent former one but spent.
    expect(chunkOf(job, 0)).toMatchObject({ state: 'leased', lease: { id: backup.id, holder: 'b' }, formerLease: { id: lease.id, holder: 'a' } })
    expect(table.beginUpload('j', 0, lease.id, 'a')).toMatchObject({ ok: false, code: 'duplicate-upload', message: /already refused/ })
  })

  it('lets a peer have no more uploads in flight than it may hold leases', () => {
    const job = jobRecord('j', ['open', 'open', 'open'])
    const { table } = harness([job], { maxLeasesPerPeer: 2 })
    const leases = [0, 1].map(c => granted(table.claim('j', c, 'a')))
    const third = granted(table.claim('j', 2, 'x'))
    table.release('j', 2, third.id, 'x', '')
    // a takes chunk 2 after x gave it back, then gives it back too: a is its most recent holder.
    table.release('j', 1, leases[1]?.id ?? '', 'a', '')
    const again = granted(table.claim('j', 2, 'a'))
    for (const [c, l] of [[0, leases[0]], [2, again]] as const) expect(table.beginUpload('j', c, l?.id ?? '', 'a')).toMatchObject({ ok: true })
    expect(table.beginUpload('j', 1, leases[1]?.id ?? '', 'a')).toMatchObject({ ok: false, code: 'too-many-uploads' })
    table.endUpload('j', 0, leases[0]?.id ?? '', 'lost')
    expect(table.beginUpload('j', 1, leases[1]?.id ?? '', 'a')).toMatchObject({ ok: true })
  })
})

describe('LeaseTable: a peer caught with a wrong result', () => {
  it('sends every chunk it encoded back to be cut and encoded again, ends its leases, and leaves others\' work alone', () => {
    const job = jobRecord('j', ['open', 'open', 'open', 'open', 'open'])
    const events: unknown[] = []
    const { table, clock, changes } = harness([job], { event: (e) => { events.push(e) } })
    // The liar delivered chunks 0 and 2 (one checked in full, one on its structure alone) and holds 3 and a backup of 4; b delivered 1.
    const delivered = new Map<number, LeaseRecord>()
    for (const [c, peer, check] of [[0, 'liar', 'full'], [1, 'b', 'full'], [2, 'liar', 'structural']] as const) {
      delivered.set(c, granted(table.claim('j', c, peer)))
      table.complete(job, chunkOf(job, c), peer, { ...result(peer, clock.t), check })
    }
    granted(table.claim('j', 3, 'liar'))
    granted(table.claim('j', 4, 'c'))
    const backup = granted(table.claim('j', 4, 'liar'))
    expect(backup.backup).toBe(true)
    changes.length = 0
    events.length = 0
    const reopened = table.reopenEncodedBy(job, 'liar')
    expect(events).toEqual([{ type: 'chunks:requeued', jobId: 'j', peer: 'liar', chunks: [0, 2] }])
    expect(reopened.map(r => [r.chunk.index, r.result.check])).toEqual([[0, 'full'], [2, 'structural']])
    expect(job.chunks.map(c => c.state)).toEqual(['pending', 'done', 'pending', 'open', 'leased'])
    for (const c of [0, 2]) {
      expect(chunkOf(job, c).result).toBeUndefined()
      expect(chunkOf(job, c).segment).toBeUndefined()
      expect(chunkOf(job, c).formerLease).toBeUndefined()
    }
    expect(chunkOf(job, 1)).toMatchObject({ state: 'done', result: { encodedBy: 'b' } })
    expect(chunkOf(job, 4)).toMatchObject({ lease: { holder: 'c' } })
    expect(chunkOf(job, 4).backup).toBeUndefined()
    // The job is splitting until those chunks are cut again; no claim, no upload on them meanwhile.
    expect(job.state).toBe('splitting')
    expect(job.stats?.requeuedResults).toBe(2)
    expect(changes).toEqual([{ job: 'j', announce: true }])
    expect(table.claim('j', 0, 'b')).toMatchObject({ ok: false, code: 'not-open' })
    expect(table.beginUpload('j', 0, delivered.get(0)?.id ?? '', 'liar')).toMatchObject({ ok: false, code: 'not-holder' })
    table.open(job, chunkOf(job, 0))
    expect(granted(table.claim('j', 0, 'b')).holder).toBe('b')
    // Nothing more of the liar's to send back.
    expect(table.reopenEncodedBy(job, 'liar')).toEqual([])
  })

  it('changes nothing in a done job, and keeps a failed one failed (a retry cuts the chunks)', () => {
    const done = jobRecord('d', ['done'], 'done')
    const failed = jobRecord('f', ['done', 'open'], 'failed')
    for (const job of [done, failed]) chunkOf(job, 0).result = result('liar', 0)
    const { table } = harness([done, failed])
    expect(table.reopenEncodedBy(done, 'liar')).toEqual([])
    expect(chunkOf(done, 0).state).toBe('done')
    expect(table.reopenEncodedBy(failed, 'liar')).toHaveLength(1)
    expect(failed.state).toBe('failed')
    expect(chunkOf(failed, 0).state).toBe('pending')
  })
})

describe('LeaseTable: throwaway identities', () => {
  it('gives one peer at most maxLeasesPerPeer leases on a job, backups included; this node\'s own worker is not capped', () => {
    const job = jobRecord('j', ['open', 'open', 'open', 'open'])
    const { table } = harness([job], { maxLeasesPerPeer: 2, self: 'self' })
    granted(table.claim('j', 0, 'a'))
    granted(table.claim('j', 1, 'a'))
    expect(table.claim('j', 2, 'a')).toMatchObject({ ok: false, code: 'too-many-leases' })
    granted(table.claim('j', 2, 'self'))
    granted(table.claim('j', 3, 'self'))
    // Nothing open now: a backup counts towards the cap too.
    expect(table.claim('j', 2, 'a')).toMatchObject({ ok: false, code: 'too-many-leases' })
    granted(table.claim('j', 0, 'self'))
    expect(granted(table.claim('j', 2, 'b')).backup).toBe(true)
  })

  it('ends a lease at its deadline from the job\'s pace, whatever progress its holder reports; the holder may not take that chunk again', () => {
    const job = jobRecord('j', ['open', 'open', 'open'])
    const { table, clock } = harness([job], { minDeadlineMs: 1000 })
    const paced = granted(table.claim('j', 0, 'honest'))
    const slow = granted(table.claim('j', 1, 'liar'))
    granted(table.claim('j', 2, 'other'))
    // Before any result the deadline is the no-pace one.
    expect(table.deadlineOf(job, chunkOf(job, 1), slow)).toBe(slow.issuedAt + 30 * 60_000)
    // 0.1 s a frame: a fresh copy of 100 frames takes 10 s, a lease may last 40.
    clock.t += 10_000
    table.complete(job, chunkOf(job, 0), 'honest', result('honest', clock.t))
    expect(paced.id).toBeDefined()
    expect(table.deadlineOf(job, chunkOf(job, 1), slow)).toBe(slow.issuedAt + 40_000)
    // "Nearly done, very fast", every few seconds: renewed, but never past the deadline.
    let last = 0
    for (let t = 0; t < 25_000; t += 5_000) {
      clock.t += 5_000
      const r = table.renew('j', 1, slow.id, 'liar', { framesDone: 99, fps: 1000 })
      if (!r.ok) throw new Error(r.message)
      expect(r.expiresAt).toBeLessThanOrEqual(slow.issuedAt + 40_000)
      last = r.expiresAt
    }
    expect(last).toBe(slow.issuedAt + 40_000)
    // Past twice a fresh copy's time its word no longer keeps a backup away.
    expect(table.backupCandidates(job)).toContain(1)
    const backup = granted(table.claim('j', 1, 'idle'))
    expect(backup.backup).toBe(true)
    clock.t = slow.issuedAt + 40_000
    expect(table.renew('j', 1, slow.id, 'liar', { framesDone: 99, fps: 1000 })).toMatchObject({ ok: false, code: 'lease-expired', message: /deadline/ })
    expect(chunkOf(job, 1)).toMatchObject({ state: 'leased', lease: { id: backup.id, holder: 'idle' }, overdue: ['liar'] })
    // The backup has a deadline of its own, from its own grant; when it passes, the chunk opens, but not to the liar.
    clock.t = backup.issuedAt + 40_000
    expect(table.expire()).toBeGreaterThanOrEqual(1)
    expect(chunkOf(job, 1).state).toBe('open')
    expect(table.claim('j', 1, 'liar')).toMatchObject({ ok: false, code: 'not-open', message: /deadline/ })
    expect(granted(table.claim('j', 1, 'fresh')).holder).toBe('fresh')
  })

  it('gives this node\'s own worker no deadline: it is the one that tries a chunk last', () => {
    const job = jobRecord('j', ['open'])
    const { table, clock } = harness([job], { self: 'self', noPaceDeadlineMs: 1000 })
    const own = granted(table.claim('j', 0, 'self'))
    clock.t += 20_000
    expect(table.renew('j', 0, own.id, 'self', { framesDone: 1, fps: 1 })).toMatchObject({ ok: true, expiresAt: clock.t + LEASE_MS })
    expect(table.expire()).toBe(0)
  })
})

describe('LeaseTable: the waiting queue', () => {
  it('queues idle peers that found nothing, in order, until they get a lease or stop asking', () => {
    const job = jobRecord('j', ['open', 'open', 'pending'], 'splitting')
    const { table, clock } = harness([job])
    granted(table.claim('j', 0, 'a'))
    table.claim('j', 0, 'b')
    clock.t += 1000
    table.claim('j', 2, 'c')
    table.claim('j', 0, 'b')
    expect(table.waitingPeers('j')).toEqual(['b', 'c'])
    expect(table.waitingPeers('j', 1)).toEqual(['b'])
    granted(table.claim('j', 1, 'b'))
    expect(table.waitingPeers('j')).toEqual(['c'])
    // Busy peers and claims that could never succeed do not queue.
    table.claim('j', 0, 'b')
    table.claim('j', 9, 'd')
    table.claim('nope', 0, 'd')
    expect(table.waitingPeers('j')).toEqual(['c'])
    clock.t += 15_001
    expect(table.waitingPeers('j')).toEqual([])
    expect(table.waitingPeers('nope')).toEqual([])
    table.claim('j', 0, 'e')
    table.forget('j')
    expect(table.waitingPeers('j')).toEqual([])
  })
})

/**
 * Random claim/heartbeat/release/expire/result sequences against the table's invariants. Each
 * step is checked against what the step was allowed to change, so a lease that vanishes has to
 * have been released, lapsed, completed or dropped with its failed job. Plain checks rather than
 * expect(): they run a few million times.
 */
describe('LeaseTable: random sequences', () => {
  const SEQUENCES = 3000
  const STEPS = 80

  type Live = Map<string, { lease: LeaseRecord, chunk: number }>
  type Step =
    | { kind: 'claim', chunk: number, peer: string }
    | { kind: 'renew' | 'release', lease: LeaseRecord, chunk: number, reason: string }
    | { kind: 'expire', advance: number }
    | { kind: 'result', chunk: number, peer: string, outcome: 'kept' | 'lost' | 'refused' }
    | { kind: 'open' }
    | { kind: 'convict', peer: string }

  function check (ok: boolean, why: () => string): void {
    if (!ok) throw new Error(why())
  }

  function liveLeases (job: JobRecord): Live {
    const live: Live = new Map()
    for (const c of job.chunks) {
      for (const l of [c.lease, c.backup]) {
        if (l === undefined) continue
        check(!live.has(l.id), () => `lease ${l.id} held twice`)
        live.set(l.id, { lease: { ...l }, chunk: c.index })
      }
    }
    return live
  }

  /** At most one primary and one backup per chunk; every chunk in exactly one state; a stopped job holds nothing. */
  function checkShape (job: JobRecord, where: () => string): void {
    const counts = { pending: 0, open: 0, leased: 0, done: 0 }
    for (const c of job.chunks) {
      counts[c.state]++
      if (c.state === 'leased') {
        check(c.lease !== undefined && c.lease.backup !== true, () => `${where()}: leased chunk ${c.index} without a primary lease`)
        check(c.backup === undefined || (c.backup.backup === true && c.backup.holder !== c.lease?.holder), () => `${where()}: bad backup on chunk ${c.index}`)
      } else {
        check(c.lease === undefined && c.backup === undefined, () => `${where()}: ${c.state} chunk ${c.index} has a lease`)
      }
      check((c.state === 'done') === (c.result !== undefined), () => `${where()}: chunk ${c.index} is ${c.state} with result ${String(c.result !== undefined)}`)
      check(c.pastHolders.length <= 16, () => `${where()}: chunk ${c.index} remembers too many holders`)
    }
    check(counts.pending + counts.open + counts.leased + counts.done === job.chunks.length, () => `${where()}: chunks lost`)
    check(job.state === 'encoding' || job.state === 'splitting' || counts.leased === 0, () => `${where()}: a ${job.state} job holds leases`)
    check(job.state !== 'encoding' || counts.pending === 0, () => `${where()}: an encoding job has pending chunks`)
  }

  function randomStep (rand: () => number, job: JobRecord, peers: string[], ended: Map<string, { lease: LeaseRecord, chunk: number }>, live: Live): Step {
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)] as T
    const r = rand()
    const chunk = Math.floor(rand() * (job.chunks.length + 1)) // sometimes one past the end
    const known = live.size > 0 && rand() < 0.8 ? pick([...live.values()]) : (ended.size > 0 ? pick([...ended.values()]) : undefined)
    const reason = pick(['', 'shutdown', 'x264 [error]: out of memory'])
    if (r < 0.35) return { kind: 'claim', chunk, peer: pick(peers) }
    if (r < 0.5 && known !== undefined) return { kind: 'renew', lease: known.lease, chunk: known.chunk, reason }
    if (r < 0.6 && known !== undefined) return { kind: 'release', lease: known.lease, chunk: known.chunk, reason }
    if (r < 0.75) return { kind: 'expire', advance: Math.floor(rand() * 25_000) }
    if (r < 0.92) return { kind: 'result', chunk, peer: known !== undefined && rand() < 0.8 ? known.lease.holder : pick(peers), outcome: pick(['kept', 'kept', 'lost', 'refused'] as const) }
    if (r < 0.94) return { kind: 'convict', peer: pick(peers) }
    return { kind: 'open' }
  }

  /** peer0 plays the originator's own worker: not capped, no deadline, and only its failure is evidence. */
  const SELF = 'peer0'
  const CAP = 2

  it(`keeps every invariant through ${SEQUENCES} random sequences`, () => {
    const tally = { grants: 0, backups: 0, completions: 0, jobFailures: 0, capped: 0, pastDeadline: 0, refusedResults: 0, reserved: 0, requeued: 0 }
    for (let seed = 1; seed <= SEQUENCES; seed++) {
      const rand = prng(seed)
      const size = 1 + Math.floor(rand() * 6)
      const opened = Math.floor(rand() * (size + 1))
      const states = Array.from({ length: size }, (_, i): ChunkState => (i < opened ? 'open' : 'pending'))
      const job = jobRecord(`job${seed}`, states, opened < size ? 'splitting' : 'encoding', 10 + Math.floor(rand() * 200))
      const peers = Array.from({ length: 2 + Math.floor(rand() * 4) }, (_, i) => `peer${i}`)
      // The last of four or more peers has left the swarm: its failures are no evidence.
      const present = (p: string): boolean => peers.length < 4 || p !== peers[peers.length - 1]
      const { table, clock } = harness([job], {
        maxChunkFailures: 3, swarmSize: () => peers.filter(present).length, isPresent: present, self: SELF, maxLeasesPerPeer: CAP, minDeadlineMs: 10_000, noPaceDeadlineMs: 45_000
      })
      const deadline = (lease: LeaseRecord, chunk: number): number => table.deadlineOf(job, job.chunks[chunk] as ChunkRecord, lease)
      const issued = new Set<string>()
      const ended = new Map<string, { lease: LeaseRecord, chunk: number }>()
      const done = new Set<number>()

      for (let step = 0; step < STEPS; step++) {
        const before = liveLeases(job)
        const stateBefore = job.state
        const s = randomStep(rand, job, peers, ended, before)
        const where = (): string => `seed ${seed} step ${step} (${s.kind})`
        /** Whether this step may end the lease. */
        let mayEnd: (lease: LeaseRecord, chunk: number) => boolean = () => false
        let granted: string | undefined
        if (s.kind === 'claim') {
          const overdue = job.chunks[s.chunk]?.overdue?.includes(s.peer) === true
          const reserved = job.chunks[s.chunk]?.reservedFor !== undefined
          const answer = table.claim(job.id, s.chunk, s.peer)
          if (!answer.ok && answer.code === 'too-many-leases') tally.capped++
          if (answer.ok) {
            check(s.peer === SELF || !overdue, () => `${where()}: ${s.peer} got chunk ${s.chunk} again after missing its deadline on it`)
            check(s.peer === SELF || !reserved, () => `${where()}: ${s.peer} got chunk ${s.chunk}, which is kept for the originator's own worker`)
            granted = answer.lease.id
            tally.grants++
            if (answer.lease.backup === true) tally.backups++
            check(!done.has(s.chunk), () => `${where()}: done chunk ${s.chunk} leased again`)
            check(!table.waitingPeers(job.id).includes(s.peer), () => `${where()}: a peer with a fresh lease still waits`)
          }
        } else if (s.kind === 'renew') {
          const answer = table.renew(job.id, s.chunk, s.lease.id, s.lease.holder, { framesDone: rand() * 300, fps: rand() * 50 })
          // Progress never carries a lease past its deadline: refused there, and the lease ends.
          const overdue = before.has(s.lease.id) && deadline(s.lease, s.chunk) <= clock.t
          check(answer.ok === (before.has(s.lease.id) && !overdue), () => `${where()}: renewal answered ${String(answer.ok)}`)
          if (answer.ok) check(answer.expiresAt <= deadline(s.lease, s.chunk), () => `${where()}: renewed past the deadline`)
          // Expiry times cross the wire as integers (a fractional deadline once broke every heartbeat answer).
          if (answer.ok) check(Number.isInteger(answer.expiresAt), () => `${where()}: expiry ${answer.expiresAt} is not whole milliseconds`)
          if (overdue) tally.pastDeadline++
          mayEnd = (lease) => overdue && lease.id === s.lease.id
        } else if (s.kind === 'release') {
          const answer = table.release(job.id, s.chunk, s.lease.id, s.lease.holder, s.reason)
          check(answer.ok === before.has(s.lease.id), () => `${where()}: release answered ${String(answer.ok)}`)
          mayEnd = (lease) => answer.ok && lease.id === s.lease.id
        } else if (s.kind === 'expire') {
          clock.t += s.advance
          table.expire()
          mayEnd = (lease, chunk) => lease.expiresAt <= clock.t || deadline(lease, chunk) <= clock.t
          for (const [id, { lease, chunk }] of before) if (lease.expiresAt > clock.t && deadline(lease, chunk) <= clock.t && !liveLeases(job).has(id)) tally.pastDeadline++
          for (const { lease, chunk } of liveLeases(job).values()) {
            check(lease.expiresAt > clock.t, () => `${where()}: a lapsed lease survived expiry`)
            check(deadline(lease, chunk) > clock.t, () => `${where()}: a lease survived its deadline`)
          }
        } else if (s.kind === 'result') {
          // As the originator does: let in if the peer holds the chunk or held it last, then kept, lost or refused.
          const own = [...before.values()].find(l => l.lease.holder === s.peer && l.chunk === s.chunk)
          const former = job.chunks[s.chunk]?.formerLease
          const leaseId = own?.lease.id ?? (former?.holder === s.peer ? former.id : 'none')
          const slot = table.beginUpload(job.id, s.chunk, leaseId, s.peer)
          if (slot.ok) {
            check(!done.has(s.chunk), () => `${where()}: a done chunk took a result`)
            check(own !== undefined || (former?.holder === s.peer && former.id === leaseId), () => `${where()}: an upload from ${s.peer}, which neither holds nor last held chunk ${s.chunk}`)
            check(!table.beginUpload(job.id, s.chunk, leaseId, s.peer).ok, () => `${where()}: two uploads at once under one lease`)
            if (s.outcome === 'kept') {
              table.complete(job, slot.chunk, s.peer, result(s.peer, clock.t))
              done.add(s.chunk)
              tally.completions++
              mayEnd = (_lease, chunk) => chunk === s.chunk
              if (job.state === 'encoding' && job.chunks.every(c => c.state === 'done')) job.state = 'done'
            } else {
              table.endUpload(job.id, s.chunk, leaseId, s.outcome)
              if (s.outcome === 'refused') {
                tally.refusedResults++
                mayEnd = (lease) => lease.id === leaseId
                check(table.beginUpload(job.id, s.chunk, leaseId, s.peer).ok === false, () => `${where()}: a second result under a refused lease`)
              }
            }
          }
        } else if (s.kind === 'convict') {
          // As the originator does when a check catches the peer: nothing of it counts for the job any more.
          const was = job.chunks.filter(c => c.state === 'done' && c.result?.encodedBy === s.peer).map(c => c.index)
          const reopened = table.reopenEncodedBy(job, s.peer)
          check(JSON.stringify(reopened.map(r => r.chunk.index)) === JSON.stringify(stateBefore === 'done' ? [] : was), () => `${where()}: reopened ${reopened.map(r => r.chunk.index).join(',')} of ${was.join(',')}`)
          for (const { chunk } of reopened) { done.delete(chunk.index); check(chunk.state === 'pending', () => `${where()}: chunk ${chunk.index} reopened as ${chunk.state}`) }
          tally.requeued += reopened.length
          if (stateBefore !== 'done') for (const c of job.chunks) check(c.lease?.holder !== s.peer && c.backup?.holder !== s.peer && c.result?.encodedBy !== s.peer, () => `${where()}: chunk ${c.index} still holds ${s.peer}'s work`)
          mayEnd = (lease) => stateBefore !== 'done' && lease.holder === s.peer
        } else {
          const pending = job.chunks.find(c => c.state === 'pending')
          if (pending !== undefined) table.open(job, pending)
          if (job.state === 'splitting' && !job.chunks.some(c => c.state === 'pending')) job.state = 'encoding'
        }
        if (job.state === 'failed' && stateBefore !== 'failed') {
          tally.jobFailures++
          mayEnd = () => true
          // Only evidence fails a job: the originator's own worker failed it too.
          check(job.chunks.some(c => c.failures.some(f => f.peer === SELF)), () => `${where()}: the job failed on peers' word alone`)
        }
        if (job.chunks.some(c => c.reservedFor !== undefined)) tally.reserved++
        const held = new Map<string, number>()
        for (const { lease } of liveLeases(job).values()) held.set(lease.holder, (held.get(lease.holder) ?? 0) + 1)
        for (const [peer, n] of held) check(peer === SELF || n <= CAP, () => `${where()}: ${peer} holds ${n} leases, over the cap of ${CAP}`)

        checkShape(job, where)
        for (const c of done) check(job.chunks[c]?.state === 'done', () => `${where()}: chunk ${c} undone`)
        const after = liveLeases(job)
        for (const [id, held] of before) {
          if (after.has(id)) continue
          check(mayEnd(held.lease, held.chunk), () => `${where()}: lease ${id} on chunk ${held.chunk} vanished`)
          ended.set(id, held)
        }
        for (const id of after.keys()) {
          if (before.has(id)) continue
          check(id === granted && !issued.has(id), () => `${where()}: lease ${id} appeared without a grant`)
          issued.add(id)
        }
        check((job.stats?.leases ?? 0) + (job.stats?.backupLeases ?? 0) === issued.size, () => `${where()}: lease counters disagree`)
      }

      // Every lease ends: once time passes, whatever is still held lapses.
      const last = liveLeases(job)
      clock.t += LEASE_MS + 1
      table.expire()
      check(liveLeases(job).size === 0, () => `seed ${seed}: leases outlived their expiry`)
      for (const [id, held] of last) ended.set(id, held)
      check([...issued].every(id => ended.has(id)), () => `seed ${seed}: a lease never ended`)
    }
    // The sequences do reach every rule, not just the easy paths.
    expect(tally.grants).toBeGreaterThan(SEQUENCES * 5)
    expect(tally.backups).toBeGreaterThan(100)
    expect(tally.completions).toBeGreaterThan(SEQUENCES)
    expect(tally.jobFailures).toBeGreaterThan(10)
    expect(tally.capped).toBeGreaterThan(100)
    expect(tally.pastDeadline).toBeGreaterThan(50)
    expect(tally.refusedResults).toBeGreaterThan(100)
    expect(tally.reserved).toBeGreaterThan(20)
    expect(tally.requeued).toBeGreaterThan(100)
  })
})
