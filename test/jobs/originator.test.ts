import { existsSync, readdirSync } from 'node:fs'
import { execa } from 'execa'
import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { encodeChunk, parseX264Settings, planChunks, probeMedia } from '../../src/media/index.js'
import { InputError, Originator, type JobRecord } from '../../src/jobs/index.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { waitFor } from '../helpers/wait.js'

let fx: Fixtures
const cleanup: Array<() => Promise<void>> = []
beforeAll(async () => { fx = await ensureFixtures() })
// Last in, first out: an originator is stopped before the folder it writes to is deleted.
afterEach(async () => { for (const c of cleanup.splice(0).reverse()) await c() })

class FakeClock { t = 1_000_000; now = (): number => this.t }

async function makeOriginator (clock = new FakeClock(), home?: string): Promise<{ o: Originator, home: string, clock: FakeClock }> {
  const dir = home ?? await mkdtemp(join(tmpdir(), 'swarm-orig-'))
  const o = new Originator({ home: dir, peerId: '12D3KooWorigin', leaseMs: 30_000, now: clock.now, plan: { gopsPerChunk: 1 } })
  await o.start()
  cleanup.push(async () => { await o.stop(); if (home === undefined) await rm(dir, { recursive: true, force: true }) })
  return { o, home: dir, clock }
}

const SETTINGS = '--preset ultrafast --crf 30'

/** The open-GOP fixture split and every chunk leased to its own peer (`peer<i>`), plus a scratch dir. */
async function everyChunkLeased (tag: string): Promise<{ o: Originator, clock: FakeClock, job: JobRecord, leases: ReturnType<Originator['requestLease']>[], scratch: string }> {
  const scratch = await mkdtemp(join(tmpdir(), `swarm-orig-${tag}-`))
  cleanup.push(async () => { await rm(scratch, { recursive: true, force: true }) })
  const { o, clock } = await makeOriginator()
  const { job } = await o.addJob({ file: fx.openGop10bit, settings: SETTINGS })
  await waitFor('the job to be encoding', () => job.state === 'encoding', { timeoutMs: 60_000, everyMs: 50 })
  const leases = job.chunks.map(c => o.requestLease(job.id, c.index, `peer${c.index}`))
  return { o, clock, job, leases, scratch }
}

async function encodeFor (o: Originator, job: JobRecord, chunk: number, leaseId: string, peer: string, scratch: string): Promise<string> {
  const seg = o.segmentFor(job.id, chunk, leaseId, peer)
  if (!seg.ok) throw new Error(seg.message)
  const out = join(scratch, `c${chunk}-${peer}.264`)
  await encodeChunk({ segmentPath: seg.path, selectFromTime: seg.meta.selectFromTime, frameCount: seg.meta.frames, settings: parseX264Settings(seg.meta.settings), frameRate: seg.meta.frameRate, sourcePixFmt: seg.meta.pixFmt, outputPath: out })
  const slot = await o.resultSlot(job.id, chunk, leaseId, peer, (await stat(out)).size)
  if (!slot.ok) throw new Error(slot.message)
  await copyFile(out, slot.tmpPath).catch(async () => {
    const { mkdir } = await import('node:fs/promises'); await mkdir(join(slot.tmpPath, '..'), { recursive: true }); await copyFile(out, slot.tmpPath)
  })
  return slot.tmpPath
}

describe('Originator', () => {
  it('refuses bad input clearly and queues nothing', async () => {
    const { o } = await makeOriginator()
    await expect(o.addJob({ file: '/nope/missing.mkv', settings: SETTINGS })).rejects.toThrow(InputError)
    await expect(o.addJob({ file: fx.shortClip, settings: '--crf 18 --output /tmp/x' })).rejects.toThrow(/--output is not allowed/)
    await expect(o.addJob({ file: fx.wrongCrc, settings: SETTINGS })).rejects.toThrow(/CRC32/)
    await expect(o.addJob({ file: 'relative.mkv', settings: SETTINGS })).rejects.toThrow(/absolute path/)
    expect(o.list()).toEqual([])
  })

  it('refuses a job its home has no room for, saying how much it needs, and writes nothing', async () => {
    // A real small filesystem (tmpfs, 8 MiB) as the node's home: the check reads what statfs says of it.
    const home = await mkdtemp(join(tmpdir(), 'swarm-orig-small-'))
    const mounted = await execa('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', home], { reject: false })
    if (mounted.exitCode !== 0) throw new Error(`this test mounts a tmpfs and needs root: ${mounted.stderr}`)
    cleanup.push(async () => { await execa('umount', [home], { reject: false }); await rm(home, { recursive: true, force: true }) })
    const { o } = await makeOriginator(new FakeClock(), home)
    await expect(o.addJob({ file: fx.shortClip, settings: SETTINGS })).rejects.toThrow(/has \d+ MiB free; cutting this \d+ MiB source into chunks needs about \d+ MiB/)
    await expect(o.addJob({ file: fx.shortClip, settings: SETTINGS })).rejects.toBeInstanceOf(InputError)
    expect(o.list()).toEqual([])
    expect(readdirSync(join(home, 'jobs')).length).toBe(0)
  })

  it('derives the job id from content and settings: adding again reports the existing job', async () => {
    const { o } = await makeOriginator()
    const a = await o.addJob({ file: fx.shortClip, settings: SETTINGS })
    const b = await o.addJob({ file: fx.shortClip, settings: SETTINGS })
    expect(a.existing).toBe(false)
    expect(b.existing).toBe(true)
    expect(b.job.id).toBe(a.job.id)
    const c = await o.addJob({ file: fx.shortClip, settings: '--preset ultrafast --crf 31' })
    expect(c.job.id).not.toBe(a.job.id)
    expect(o.list()).toHaveLength(2)
  })

  it('first claim wins; a lapsed lease reopens the chunk (fake clock); heartbeats keep it alive', async () => {
    const { o, clock } = await makeOriginator()
    const { job } = await o.addJob({ file: fx.openGop10bit, settings: SETTINGS })
    await waitFor('the job to be encoding', () => job.state === 'encoding', { timeoutMs: 60_000, everyMs: 50 })
    const first = o.requestLease(job.id, 0, 'peerA')
    expect(first.ok).toBe(true)
    const second = o.requestLease(job.id, 0, 'peerB')
    expect(second).toMatchObject({ ok: false, code: 'not-open' })
    if (!first.ok) return
    clock.t += 20_000
    expect(o.renewLease(job.id, 0, first.lease.id, 'peerA', { framesDone: 10, fps: 5 })).toMatchObject({ ok: true })
    clock.t += 20_000
    expect(o.expireLeases()).toBe(0)
    expect(o.renewLease(job.id, 0, first.lease.id, 'peerB', { framesDone: 10, fps: 5 })).toMatchObject({ ok: false, code: 'not-holder' })
    clock.t += 31_000
    expect(o.expireLeases()).toBe(1)
    expect(job.chunks[0]?.state).toBe('open')
    expect(o.renewLease(job.id, 0, first.lease.id, 'peerA', { framesDone: 20, fps: 5 })).toMatchObject({ ok: false, code: 'lease-expired' })
    expect(o.requestLease(job.id, 0, 'peerB').ok).toBe(true)
    expect(o.requestLease(job.id, 99, 'peerB')).toMatchObject({ ok: false, code: 'unknown-chunk' })
    expect(o.requestLease('f'.repeat(64), 0, 'peerB')).toMatchObject({ ok: false, code: 'unknown-job' })
  })

  it('looks for lapsed leases by itself every second, but only while a job hands out chunks', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
    try {
      const { o, clock } = await makeOriginator()
      await vi.advanceTimersByTimeAsync(2000)
      expect(vi.getTimerCount(), 'no timer without a job').toBe(0)
      const { job } = await o.addJob({ file: fx.openGop10bit, settings: SETTINGS })
      await waitFor('the job to be encoding', () => job.state === 'encoding', { timeoutMs: 60_000, everyMs: 50 })
      expect(o.requestLease(job.id, 0, 'peerA').ok).toBe(true)
      clock.t += 31_000
      await vi.advanceTimersByTimeAsync(1000)
      expect(job.chunks[0]?.state, 'the lapsed lease reopened its chunk').toBe('open')
      await o.cancelJob(job.id)
      await vi.advanceTimersByTimeAsync(1000)
      expect(vi.getTimerCount(), 'no timer once no job hands out chunks').toBe(0)
    } finally {
      vi.useRealTimers()
    }
  })

  it('queues peers that found nothing to claim, in order, until they get a lease or stop asking', async () => {
    const { o, clock } = await makeOriginator()
    const { job } = await o.addJob({ file: fx.openGop10bit, settings: SETTINGS })
    await waitFor('the job to be encoding', () => job.state === 'encoding', { timeoutMs: 60_000, everyMs: 50 })
    expect(o.requestLease(job.id, 0, 'a')).toMatchObject({ ok: true })
    expect(o.requestLease(job.id, 0, 'b')).toMatchObject({ ok: false, code: 'not-open' })
    expect(o.requestLease(job.id, 0, 'c')).toMatchObject({ ok: false, code: 'not-open' })
    expect(o.requestLease(job.id, 0, 'b')).toMatchObject({ ok: false })
    // First come, first in line; asking again keeps one's place.
    expect(o.waitingPeers(job.id)).toEqual(['b', 'c'])
    expect(o.requestLease(job.id, 1, 'b')).toMatchObject({ ok: true })
    expect(o.waitingPeers(job.id)).toEqual(['c'])
    clock.t += 16_000
    expect(o.waitingPeers(job.id)).toEqual([])
    // Unknown jobs and chunks do not queue anyone.
    o.requestLease(job.id, 999, 'd')
    expect(o.waitingPeers(job.id)).toEqual([])
    // A peer that holds a lease is busy: its refused claim was for its next chunk, not a sign it waits.
    expect(o.requestLease(job.id, 0, 'b')).toMatchObject({ ok: false, code: 'not-open' })
    expect(o.waitingPeers(job.id)).toEqual([])
    expect(o.requestLease(job.id, 0, 'e')).toMatchObject({ ok: false, code: 'not-open' })
    expect(o.waitingPeers(job.id)).toEqual(['e'])
  })

  it('decodes peers\' results a few at a time, however many arrive at once', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'swarm-orig-turns-'))
    cleanup.push(async () => { await rm(scratch, { recursive: true, force: true }) })
    // Every ffmpeg this process starts, logged by a shim in front of the real one with its start
    // and end: the decodes of peers' results (raw H.264 forced, through the file protocol only:
    // peerInputArgs) are told from the check's other ffmpeg runs by their arguments.
    const shim = join(scratch, 'bin')
    const runs = join(scratch, 'ffmpeg-runs.log')
    const { mkdir, writeFile, readFile, chmod } = await import('node:fs/promises')
    await mkdir(shim, { recursive: true })
    await writeFile(join(shim, 'ffmpeg'), `#!/bin/sh\nstart=$(date +%s%N)\n/usr/bin/ffmpeg "$@"\nrc=$?\necho "$start $(date +%s%N) $*" >> ${runs}\nexit $rc\n`)
    await chmod(join(shim, 'ffmpeg'), 0o755)
    const path = process.env.PATH
    /** Accepts chunks 0-2 (two GOPs each) from three peers at once; returns the most result decodes that ran at the same time. */
    const burst = async (verifyConcurrency: number): Promise<number> => {
      const home = await mkdtemp(join(tmpdir(), 'swarm-orig-turns-home-'))
      // Each check does all its decoding after the upload, as without a preparation.
      const o = new Originator({ home, peerId: '12D3KooWorigin', plan: { gopsPerChunk: 2 }, verifyConcurrency, prepareChecks: false })
      await o.start()
      cleanup.push(async () => { await o.stop(); await rm(home, { recursive: true, force: true }) })
      const { job } = await o.addJob({ file: fx.openGop10bit, settings: SETTINGS })
      await waitFor('the job to be encoding', () => job.state === 'encoding', { timeoutMs: 60_000, everyMs: 50 })
      const files = []
      for (const i of [0, 1, 2]) {
        const l = o.requestLease(job.id, i, `peer${i}`)
        if (!l.ok) throw new Error(l.message)
        files.push(await encodeFor(o, job, i, l.lease.id, `peer${i}`, scratch))
      }
      await rm(runs, { force: true })
      process.env.PATH = `${shim}:${path ?? ''}`
      let answers
      try {
        answers = await Promise.all(files.map(async (f, i) => await o.acceptResult(job.id, i, `peer${i}`, f, 'x')))
      } finally {
        process.env.PATH = path
      }
      expect(answers).toEqual([{ ok: true }, { ok: true }, { ok: true }])
      const decodes = (await readFile(runs, 'utf8')).split('\n').filter(l => l.includes('-f h264 -protocol_whitelist file')).map(l => l.split(' ').slice(0, 2).map(BigInt))
      expect(decodes).toHaveLength(3)
      return Math.max(...decodes.map(([start]) => decodes.filter(([s, e]) => (s as bigint) <= (start as bigint) && (start as bigint) < (e as bigint)).length))
    }
    expect(await burst(1)).toBe(1)
    // The log does see decodes overlap when they may.
    expect(await burst(3)).toBeGreaterThan(1)
  })

  it('makes the source side of a leased chunk\'s picture check while the peer encodes; the check uses it once, then it is gone', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'swarm-orig-prepared-'))
    const home = await mkdtemp(join(tmpdir(), 'swarm-orig-prepared-home-'))
    const lines: string[] = []
    const o = new Originator({ home, peerId: '12D3KooWorigin', plan: { gopsPerChunk: 2 }, log: (line) => { lines.push(line) } })
    await o.start()
    cleanup.push(async () => { await o.stop(); await rm(home, { recursive: true, force: true }); await rm(scratch, { recursive: true, force: true }) })
    const { job } = await o.addJob({ file: fx.openGop10bit, settings: SETTINGS })
    await waitFor('the job to be encoding', () => job.state === 'encoding', { timeoutMs: 60_000, everyMs: 50 })
    const checks = join(o.jobDir(job.id), 'checks')
    const references = (): string[] => existsSync(checks) ? readdirSync(checks) : []
    const l0 = o.requestLease(job.id, 0, 'peer0')
    const l1 = o.requestLease(job.id, 1, 'peer1')
    if (!l0.ok || !l1.ok) throw new Error('lease')
    // Made one at a time, each in a folder of its own, only the reductions kept.
    await waitFor('both references made', () => references().length === 2 && references().every(r => readdirSync(join(checks, r)).length === 4), { timeoutMs: 60_000, everyMs: 50 })
    expect(await o.acceptResult(job.id, 0, 'peer0', await encodeFor(o, job, 0, l0.lease.id, 'peer0', scratch), 'x')).toEqual({ ok: true })
    expect(lines.filter(l => /checked the pictures of .* against the source's side prepared while it was encoded/.test(l))).toHaveLength(1)
    expect(references()).toHaveLength(1)
    // Unusable (its files gone): the check does it all again rather than refuse the peer's work.
    for (const r of references()) await rm(join(checks, r, 'own-signatures.raw'))
    expect(await o.acceptResult(job.id, 1, 'peer1', await encodeFor(o, job, 1, l1.lease.id, 'peer1', scratch), 'x')).toEqual({ ok: true })
    expect(lines.some(l => /the prepared check of .* failed on this node's side .*; checking it in full/.test(l))).toBe(true)
    expect(references()).toEqual([])
    // This node's own chunks get no picture check, so none is made for them.
    const own = o.requestLease(job.id, 2, '12D3KooWorigin')
    expect(own.ok).toBe(true)
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(references()).toEqual([])
  })

  it('offers a backup copy only of a chunk whose holder would finish later than a fresh copy', async () => {
    const { o, clock, job, leases, scratch } = await everyChunkLeased('late')
    const lease = (i: number): { id: string } => { const l = leases[i]; if (l === undefined || !l.ok) throw new Error('lease'); return l.lease }
    // Chunk 0 comes back after 0.1 s per frame: that is what a fresh copy is expected to take.
    clock.t += 100 * (job.chunks[0]?.frames ?? 0)
    expect(await o.acceptResult(job.id, 0, 'peer0', await encodeFor(o, job, 0, lease(0).id, 'peer0', scratch), 'x')).toEqual({ ok: true })
    const fresh = (i: number): number => 100 * (job.chunks[i]?.frames ?? 0)
    // Just leased, no heartbeat yet: assumed on its way; not worth a second copy.
    expect(o.backupCandidates(job)).toEqual([])
    expect(o.requestLease(job.id, 1, 'idle')).toMatchObject({ ok: false, code: 'not-open' })
    // A holder that reports a good pace keeps its chunk to itself...
    o.renewLease(job.id, 1, lease(1).id, 'peer1', { framesDone: Math.ceil((job.chunks[1]?.frames ?? 0) / 2), fps: 100 })
    // ...one that is slow, a tenth of its chunk in, is late...
    o.renewLease(job.id, 3, lease(3).id, 'peer3', { framesDone: Math.ceil((job.chunks[3]?.frames ?? 0) / 10), fps: 0.5 })
    // ...and one that reports no frames yet (an encoder's start) tells nothing of its pace.
    o.renewLease(job.id, 2, lease(2).id, 'peer2', { framesDone: 0, fps: 0 })
    expect(o.backupCandidates(job)).toEqual([3])
    // Without a pace a holder counts as late once it has had half as long again as a fresh copy needs.
    clock.t += Math.ceil(1.5 * Math.max(fresh(2), fresh(4))) + 1
    expect(o.backupCandidates(job)).toEqual(expect.arrayContaining([2, 3, 4]))
    expect(o.requestLease(job.id, 4, 'idle')).toMatchObject({ ok: true, lease: { backup: true } })
  })

  it('gives a backup copy of a straggler only when nothing is open; first verified result wins, the other is told to stop', async () => {
    const { o, clock, job, leases, scratch } = await everyChunkLeased('backup')
    expect(leases.every(l => l.ok)).toBe(true)
    // Chunk 0 has made progress; chunk 1 has not: chunk 1 is the furthest from done.
    const l0 = leases[0]; const l1 = leases[1]
    if (l0 === undefined || !l0.ok || l1 === undefined || !l1.ok) throw new Error('lease')
    o.renewLease(job.id, 0, l0.lease.id, 'peer0', { framesDone: 40, fps: 10 })
    expect(o.backupCandidates(job)[0]).not.toBe(0)
    expect(o.backupCandidates(job)).toContain(1)
    // The holder itself cannot take a backup of its own chunk; a second backup is refused.
    expect(o.requestLease(job.id, 1, 'peer1')).toMatchObject({ ok: false, code: 'not-open' })
    const backup = o.requestLease(job.id, 1, 'idle')
    expect(backup).toMatchObject({ ok: true, lease: { backup: true, holder: 'idle' } })
    expect(o.requestLease(job.id, 1, 'idle2')).toMatchObject({ ok: false, code: 'not-open' })
    expect(o.backupCandidates(job)).not.toContain(1)
    if (!backup.ok) return
    // Both may heartbeat and fetch; the backup delivers first and wins.
    expect(o.renewLease(job.id, 1, backup.lease.id, 'idle', { framesDone: 5, fps: 10 })).toMatchObject({ ok: true })
    const tmpBackup = await encodeFor(o, job, 1, backup.lease.id, 'idle', scratch)
    const tmpPrimary = await encodeFor(o, job, 1, l1.lease.id, 'peer1', scratch)
    const segmentOf = (chunk: number): string => join(o.jobDir(job.id), 'segments', job.chunks[chunk]!.segment!.file)
    expect(existsSync(segmentOf(1))).toBe(true)
    expect(await o.acceptResult(job.id, 1, 'idle', tmpBackup, 'x')).toEqual({ ok: true })
    // The verified chunk's segment is deleted (disk shrinks as the job goes); the others stay.
    expect(existsSync(segmentOf(1))).toBe(false)
    expect(existsSync(segmentOf(0))).toBe(true)
    expect(o.settledRecently(job.id)).toEqual([1])
    expect(o.renewLease(job.id, 1, l1.lease.id, 'peer1', { framesDone: 9, fps: 10 })).toMatchObject({ ok: false, code: 'already-done' })
    expect(await o.acceptResult(job.id, 1, 'peer1', tmpPrimary, 'x')).toMatchObject({ ok: false, code: 'already-done' })
    expect(job.chunks[1]?.result?.encodedBy).toBe('idle')
    expect(job.stats).toMatchObject({ backupLeases: 1, droppedResults: 1 })
    // A lapsed primary hands the chunk to its backup instead of reopening it.
    const b2 = o.requestLease(job.id, 2, 'idle'); if (!b2.ok) throw new Error('backup')
    clock.t += 20_000
    o.renewLease(job.id, 2, b2.lease.id, 'idle', { framesDone: 1, fps: 1 })
    clock.t += 15_000
    o.expireLeases()
    expect(job.chunks[2]).toMatchObject({ state: 'leased', lease: { holder: 'idle' } })
    expect(job.chunks[2]?.backup).toBeUndefined()
  })

  it('takes a late result from a lapsed lease, drops a second copy, refuses strangers and garbage, then merges', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'swarm-orig-enc-'))
    cleanup.push(async () => { await rm(scratch, { recursive: true, force: true }) })
    const { o, clock } = await makeOriginator()
    const { job } = await o.addJob({ file: fx.openGop10bit, settings: SETTINGS })
    await waitFor('the job to be encoding', () => job.state === 'encoding', { timeoutMs: 60_000, everyMs: 50 })
    // peerA leases chunk 0 and goes silent; the lease lapses and peerB takes the chunk.
    const a = o.requestLease(job.id, 0, 'peerA'); if (!a.ok) throw new Error('lease')
    clock.t += 31_000; o.expireLeases()
    const b = o.requestLease(job.id, 0, 'peerB'); if (!b.ok) throw new Error('lease')
    // peerA's late result still counts: the chunk is not done yet.
    const fileA = await encodeFor(o, job, 0, a.lease.id, 'peerA', scratch).catch(e => e)
    expect(fileA).toBeInstanceOf(Error) // segmentFor needs a current lease...
    const slotA = await o.resultSlot(job.id, 0, a.lease.id, 'peerA', 1)
    expect(slotA.ok).toBe(true) // ...but a lapsed holder may still deliver
    const tmpB = await encodeFor(o, job, 0, b.lease.id, 'peerB', scratch)
    if (!slotA.ok) return
    const { mkdir } = await import('node:fs/promises')
    await mkdir(join(slotA.tmpPath, '..'), { recursive: true })
    await copyFile(tmpB, slotA.tmpPath)
    expect(await o.acceptResult(job.id, 0, 'peerA', slotA.tmpPath, 'x')).toEqual({ ok: true })
    expect(job.chunks[0]?.result?.encodedBy).toBe('peerA')
    // peerB's copy arrives second and is dropped.
    expect(await o.acceptResult(job.id, 0, 'peerB', tmpB, 'x')).toMatchObject({ ok: false, code: 'already-done' })
    expect(existsSync(tmpB)).toBe(false)
    // A stranger cannot even get a slot.
    expect(await o.resultSlot(job.id, 1, 'nolease', 'peerC', 1)).toMatchObject({ ok: false, code: 'not-holder' })
    // Garbage from a real holder is verified and refused.
    const c = o.requestLease(job.id, 1, 'peerC'); if (!c.ok) throw new Error('lease')
    const slotC = await o.resultSlot(job.id, 1, c.lease.id, 'peerC', 10_000); if (!slotC.ok) throw new Error('slot')
    const { writeFile } = await import('node:fs/promises')
    await writeFile(slotC.tmpPath, Buffer.alloc(10_000, 1))
    expect(await o.acceptResult(job.id, 1, 'peerC', slotC.tmpPath, 'x')).toMatchObject({ ok: false, code: 'bad-result' })
    // The lease a refused result was made under ends (the chunk opens), and takes no second result.
    expect(job.chunks[1]?.state).toBe('open')
    expect(await o.resultSlot(job.id, 1, c.lease.id, 'peerC', 10_000)).toMatchObject({ ok: false, code: 'duplicate-upload' })
    // Finish every chunk honestly; the job merges by itself.
    for (const chunk of job.chunks) {
      if (chunk.state === 'done') continue
      const lease = chunk.state === 'leased' && chunk.lease !== undefined ? { ok: true as const, lease: chunk.lease } : o.requestLease(job.id, chunk.index, 'peerC')
      if (!lease.ok) throw new Error('lease')
      const tmp = await encodeFor(o, job, chunk.index, lease.lease.id, lease.lease.holder, scratch)
      expect(await o.acceptResult(job.id, chunk.index, lease.lease.holder, tmp, 'x')).toEqual({ ok: true })
    }
    await waitFor('the job to end', () => job.state === 'done' || job.state === 'failed', { timeoutMs: 60_000, everyMs: 50 })
    expect(job.error).toBeUndefined()
    expect(job.output).not.toBeNull()
    cleanup.push(async () => { await rm(job.output as string, { force: true }) })
  })

  it('sends back every chunk of a peer caught with a wrong result, checked in full or not, even while merging: the merge stops, the chunks are cut and encoded again, and the output holds none of its work', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'swarm-orig-requeue-'))
    cleanup.push(async () => { await rm(scratch, { recursive: true, force: true }) })
    const home = await mkdtemp(join(tmpdir(), 'swarm-orig-requeue-home-'))
    // Adaptive, and every draw says "structure only": each peer's first result is checked in full, the rest are not.
    // A clock that stands still: no pace, so a backup copy is worth giving at once.
    const o = new Originator({ home, peerId: '12D3KooWorigin', now: new FakeClock().now, plan: { gopsPerChunk: 1 }, verify: 'adaptive', checks: { draw: () => 0.99 } })
    await o.start()
    cleanup.push(async () => { await o.stop(); await rm(home, { recursive: true, force: true }) })
    const { job } = await o.addJob({ file: fx.openGop10bit, settings: SETTINGS })
    cleanup.push(async () => { if (job.output !== null) await rm(job.output, { force: true }) })
    expect(job.verify).toBe('adaptive')
    await waitFor('the job to be encoding', () => job.state === 'encoding', { timeoutMs: 60_000, everyMs: 50 })
    const last = job.chunks.length - 1
    expect(last).toBeGreaterThanOrEqual(3)
    const lease = (chunk: number, peer: string): { id: string } => { const l = o.requestLease(job.id, chunk, peer); if (!l.ok) throw new Error(`${peer} on ${chunk}: ${l.message}`); return l.lease }
    // peerA hands in chunks 0 and 1, honestly: the first is checked in full, the second on its structure alone.
    for (const c of [0, 1]) expect(await o.acceptResult(job.id, c, 'peerA', await encodeFor(o, job, c, lease(c, 'peerA').id, 'peerA', scratch), 'x')).toEqual({ ok: true })
    expect(job.chunks.slice(0, 2).map(c => c.result?.check)).toEqual(['full', 'structural'])
    // peerB takes the rest; peerA holds a backup of the last chunk and is let in to upload for it.
    const bLeases = new Map(job.chunks.slice(2).map(c => [c.index, lease(c.index, 'peerB')]))
    const backup = o.requestLease(job.id, last, 'peerA')
    if (!backup.ok) throw new Error(backup.message)
    expect(backup.lease.backup).toBe(true)
    const slotA = await o.resultSlot(job.id, last, backup.lease.id, 'peerA', 10_000)
    if (!slotA.ok) throw new Error(slotA.message)
    const { mkdir, writeFile } = await import('node:fs/promises')
    await mkdir(join(slotA.tmpPath, '..'), { recursive: true })
    await writeFile(slotA.tmpPath, Buffer.alloc(10_000, 7))
    for (const [c, l] of bLeases) expect(await o.acceptResult(job.id, c, 'peerB', await encodeFor(o, job, c, l.id, 'peerB', scratch), 'x')).toEqual({ ok: true })
    // peerB's last result started the merge; peerA's upload is checked while it runs, and is not H.264.
    expect(job.state).toBe('merging')
    expect(await o.acceptResult(job.id, last, 'peerA', slotA.tmpPath, 'x')).toMatchObject({ ok: false, code: 'bad-result' })
    // The merge stopped without failing the job; peerA's two chunks are cut again and open.
    await waitFor('peerA\'s chunks to be open again', () => job.state === 'encoding' && job.chunks[0]?.state === 'open' && job.chunks[1]?.state === 'open', { timeoutMs: 60_000, everyMs: 20 })
    expect(job.error).toBeUndefined()
    expect(job.output).toBeNull()
    expect(job.stats?.requeuedResults).toBe(2)
    expect(readdirSync(join(o.jobDir(job.id), 'results')).sort()).toEqual(job.chunks.slice(2).map(c => `chunk-${c.index}.264`).sort())
    for (const c of [0, 1]) expect(await o.acceptResult(job.id, c, 'peerB', await encodeFor(o, job, c, lease(c, 'peerB').id, 'peerB', scratch), 'x')).toEqual({ ok: true })
    await waitFor('the job to end', () => job.state === 'done' || job.state === 'failed', { timeoutMs: 120_000, everyMs: 50 })
    expect(job.error).toBeUndefined()
    expect(job.chunks.map(c => c.result?.encodedBy)).toEqual(job.chunks.map(() => 'peerB'))
    const { decodedFrameCount } = await import('../helpers/media.js')
    expect(await decodedFrameCount(job.output as string)).toBe(job.totalFrames)
  })

  it('fails a job whose chunk failed on several peers only once its own worker failed it too, with the reason', async () => {
    const home = await mkdtemp(join(tmpdir(), 'swarm-orig-fail-'))
    const o = new Originator({ home, peerId: '12D3KooWorigin', ownWorker: true, plan: { gopsPerChunk: 1 } })
    await o.start()
    cleanup.push(async () => { await o.stop(); await rm(home, { recursive: true, force: true }) })
    const { job } = await o.addJob({ file: fx.shortClip, settings: SETTINGS })
    await waitFor('the job to be encoding', () => job.state === 'encoding', { timeoutMs: 60_000, everyMs: 50 })
    const failOn = (peer: string): void => {
      const l = o.requestLease(job.id, 0, peer); if (!l.ok) throw new Error(l.message)
      o.releaseLease(job.id, 0, l.lease.id, peer, 'x264 [error]: no disk space')
    }
    for (const peer of ['p1', 'p2', 'p3']) failOn(peer)
    // Three peers' word is not evidence: the chunk waits for this node's own worker.
    expect(job.state).toBe('encoding')
    expect(o.requestLease(job.id, 0, 'p4')).toMatchObject({ ok: false, code: 'not-open' })
    failOn('12D3KooWorigin')
    expect(job.state).toBe('failed')
    expect(job.error).toMatch(/chunk 0 failed on 4 peers, this node's own encoder among them; last error: x264 \[error\]: no disk space/)
  })

  it('splits exactly the chunks it planned when the swarm size forced a finer plan', async () => {
    // 35 GOPs of 20 frames (0.8 s); a swarm of 2 asks for at least 8 chunks: 4 GOPs each gives 9
    // chunks, and the tail shrunk for 2 encoders (down to 2 GOPs, the 1.5 s minimum) gives 12, while
    // planning again for "at least 12" would give 18. The job keeps the options it was planned with.
    const dir = await mkdtemp(join(tmpdir(), 'swarm-orig-plan-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
    const clip = join(dir, 'gops.mkv')
    await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=64x36:rate=25', '-frames:v', '700',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '20', '-keyint_min', '20', '-sc_threshold', '0', '-bf', '0', clip])
    const o = new Originator({ home: join(dir, 'home'), peerId: '12D3KooWorigin', swarmSize: () => 2 })
    await o.start()
    cleanup.push(async () => { await o.stop() })
    const { job } = await o.addJob({ file: clip, settings: SETTINGS })
    expect(job.plan).toMatchObject({ minChunks: 8, tailParallelism: 2, absorbShortTail: true })
    expect(job.chunks.map(c => c.frames)).toEqual([80, 80, 80, 80, 80, 60, 60, 40, 40, 40, 40, 20])
    expect(planChunks(await probeMedia(clip), { minChunks: job.chunks.length }).chunks.length).not.toBe(job.chunks.length)
    await waitFor('the split to end', () => job.state !== 'splitting', { timeoutMs: 60_000, everyMs: 50 })
    expect(job.error).toBeUndefined()
    expect(job.state).toBe('encoding')
    expect(job.chunks.every(c => c.state === 'open')).toBe(true)
  })

  for (const [how, clipOf] of [['in one pass (closed GOPs)', 'gops'], ['one by one (open GOPs)', 'openGop']] as const) {
    it(`cuts a large source just ahead of the swarm, ${how}: a few unclaimed segments, more as chunks are claimed, verified ones deleted`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'swarm-orig-ahead-'))
      cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
      // 15 GOPs of 20 frames; open GOPs (leading B-frames) need a cut per chunk, closed ones are cut in one pass.
      const clip = join(dir, `${clipOf}.mkv`)
      await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=64x36:rate=25', '-frames:v', '300',
        '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '20', '-keyint_min', '20', '-sc_threshold', '0',
        ...(clipOf === 'gops' ? ['-bf', '0'] : ['-bf', '3', '-x264-params', 'open-gop=1']), clip])
      // Every source counts as large here; one encoder (no swarm): four unclaimed segments at most.
      const o = new Originator({ home: join(dir, 'home'), peerId: '12D3KooWorigin', plan: { gopsPerChunk: 1 }, cutAheadFromBytes: 0 })
      await o.start()
      cleanup.push(async () => { await o.stop() })
      const { job } = await o.addJob({ file: clip, settings: SETTINGS })
      expect(job.chunks.length).toBeGreaterThan(8)
      const count = (state: string): number => job.chunks.filter(c => c.state === state).length
      const segmentFiles = (): number => readdirSync(join(o.jobDir(job.id), 'segments')).length
      await waitFor('four segments cut', () => count('open') === 4, { timeoutMs: 30_000, everyMs: 50 })
      await new Promise(resolve => setTimeout(resolve, 1000))
      expect([count('open'), segmentFiles(), job.state]).toEqual([4, 4, 'splitting'])
      // Two claimed: two more are cut, no more.
      const a = o.requestLease(job.id, 0, 'peerA'); const b = o.requestLease(job.id, 1, 'peerB')
      if (!a.ok || !b.ok) throw new Error('lease')
      await waitFor('two more segments cut', () => count('open') === 4 && count('leased') === 2, { timeoutMs: 30_000, everyMs: 50 })
      await new Promise(resolve => setTimeout(resolve, 600))
      expect([count('open'), count('leased'), segmentFiles()]).toEqual([4, 2, 6])
      // A verified chunk's segment goes; a segment is cut for none (nothing more was claimed).
      const scratch = join(dir, 'scratch')
      expect(await o.acceptResult(job.id, 0, 'peerA', await encodeFor(o, job, 0, a.lease.id, 'peerA', scratch), 'x')).toEqual({ ok: true })
      expect([count('done'), count('open'), segmentFiles()]).toEqual([1, 4, 5])
      // Claimed one after another, every chunk is cut in the end and the job is encoding.
      for (let i = 2; i < job.chunks.length; i++) {
        await waitFor(`chunk ${i} open`, () => job.chunks[i]!.state === 'open', { timeoutMs: 30_000, everyMs: 20 })
        expect(o.requestLease(job.id, i, `peer${i}`)).toMatchObject({ ok: true })
      }
      await waitFor('every chunk cut', () => job.state === 'encoding', { timeoutMs: 30_000, everyMs: 50 })
      expect(count('pending')).toBe(0)
    })
  }

  it('cuts straight from a source whose seeks land on the keyframe, and from a copy of the video once one does not', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'swarm-orig-direct-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
    const { execa } = await import('execa')
    const { planChunks, probeMedia } = await import('../../src/media/index.js')
    // The open-GOP fixture without its subtitles: its two interleaved audio tracks make ffmpeg's
    // seek land a keyframe early.
    const interleaved = join(dir, 'two-audio.mkv')
    await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-i', fx.openGop10bit, '-map', '0', '-map', '-0:s', '-map', '-0:t', '-c', 'copy', interleaved])
    // Video alone: every seek lands.
    const plain = join(dir, 'video-only.mkv')
    await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-i', fx.openGop10bit, '-map', '0:v', '-c', 'copy', plain])
    const lines: string[] = []
    const o = new Originator({ home: join(dir, 'home'), peerId: '12D3KooWorigin', plan: { gopsPerChunk: 1 }, log: (l) => lines.push(l) })
    await o.start()
    cleanup.push(async () => { await o.stop() })
    const tight = async (file: string): Promise<number[]> => planChunks(await probeMedia(file), { gopsPerChunk: 1 }).chunks.map(c => c.decodeEnd - c.decodeStart + 1)

    const { job: direct } = await o.addJob({ file: plain, settings: SETTINGS })
    await waitFor('the direct job\'s split to end', () => direct.state !== 'splitting', { timeoutMs: 60_000, everyMs: 50 })
    expect(direct.state).toBe('encoding')
    expect(direct.chunks.map(c => c.segment?.packetCount)).toEqual(await tight(plain))
    expect(lines.some(l => l.includes('copy of the video'))).toBe(false)

    const { job: switched } = await o.addJob({ file: interleaved, settings: SETTINGS })
    await waitFor('the switched job\'s split to end', () => switched.state !== 'splitting', { timeoutMs: 60_000, everyMs: 50 })
    expect(switched.state).toBe('encoding')
    expect(lines.some(l => /landed before chunk \d+'s keyframe; cutting the rest from a copy of the video/.test(l))).toBe(true)
    // Every segment holds at least its chunk's packets; the ones cut after the switch hold exactly those.
    const want = await tight(interleaved)
    const got = switched.chunks.map(c => c.segment?.packetCount ?? 0)
    got.forEach((n, i) => { expect(n).toBeGreaterThanOrEqual(want[i] as number) })
    expect(got.at(-1)).toBe(want.at(-1))
  })

  it('splits a closed-GOP source in one pass, subtitle tracks and all, without a copy of the video', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'swarm-orig-onepass-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
    const { execa } = await import('execa')
    // Cut by seeking, this source's subtitles pull the seeks a keyframe back (see the test above);
    // read once from start to end, they cannot.
    const withSubs = join(dir, 'vfr-subs.mkv')
    await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-i', fx.vfrMp4, '-i', fx.openGop10bit, '-map', '0:v', '-map', '1:a', '-map', '1:s', '-c', 'copy', withSubs])
    const lines: string[] = []
    const o = new Originator({ home: join(dir, 'home'), peerId: '12D3KooWorigin', plan: { gopsPerChunk: 1 }, log: (l) => lines.push(l) })
    await o.start()
    cleanup.push(async () => { await o.stop() })
    const { job } = await o.addJob({ file: withSubs, settings: SETTINGS })
    await waitFor('the split to end', () => job.state !== 'splitting', { timeoutMs: 60_000, everyMs: 50 })
    expect(job.state).toBe('encoding')
    expect(job.chunks.length).toBeGreaterThan(2)
    expect(job.chunks.map(c => c.segment?.packetCount)).toEqual(job.chunks.map(c => c.frames))
    expect(lines.some(l => new RegExp(`cut ${job.chunks.length} segments in one pass`).test(l))).toBe(true)
    expect(lines.filter(l => /copy of the video|one by one|on its own/.test(l))).toEqual([])
  })

  it('resumes from disk after a restart without losing verified chunks', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'swarm-orig-resume-'))
    cleanup.push(async () => { await rm(scratch, { recursive: true, force: true }) })
    const clock = new FakeClock()
    const first = await makeOriginator(clock)
    const { job } = await first.o.addJob({ file: fx.openGop10bit, settings: SETTINGS })
    await waitFor('the job to be encoding', () => job.state === 'encoding', { timeoutMs: 60_000, everyMs: 50 })
    const l = first.o.requestLease(job.id, 2, 'peerA'); if (!l.ok) throw new Error('lease')
    const tmp = await encodeFor(first.o, job, 2, l.lease.id, 'peerA', scratch)
    await first.o.acceptResult(job.id, 2, 'peerA', tmp, 'x')
    const held = first.o.requestLease(job.id, 3, 'peerB'); if (!held.ok) throw new Error('lease')
    await first.o.stop()
    const second = await makeOriginator(clock, first.home)
    const again = second.o.get(job.id)
    expect(again?.chunks[2]?.state).toBe('done')
    expect(again?.chunks[2]?.result?.encodedBy).toBe('peerA')
    // The lease on chunk 3 survived the restart: its holder may keep renewing it.
    expect(second.o.renewLease(job.id, 3, held.lease.id, 'peerB', { framesDone: 1, fps: 1 })).toMatchObject({ ok: true })
  })

  it('cuts a resumed job\'s chunks where its record says, whatever the planner would plan now for the same options', async () => {
    const first = await makeOriginator()
    const { job } = await first.o.addJob({ file: fx.openGop10bit, settings: SETTINGS })
    await waitFor('the job to be encoding', () => job.state === 'encoding', { timeoutMs: 60_000, everyMs: 50 })
    const planned = job.chunks.map(c => [c.startFrame, c.frames])
    await first.o.stop()
    // As if a newer planner plans these options otherwise: the record keeps other options, and
    // every chunk is still to be cut.
    const file = join(first.home, 'jobs', job.id, 'job.json')
    const record = JSON.parse(await readFile(file, 'utf8')) as JobRecord
    record.plan = { gopsPerChunk: 1000 }
    record.state = 'splitting'
    for (const c of record.chunks) { c.state = 'pending'; delete c.segment }
    await writeFile(file, JSON.stringify(record))
    expect(planChunks(await probeMedia(fx.openGop10bit), record.plan).chunks).toHaveLength(1)
    const second = await makeOriginator(new FakeClock(), first.home)
    const again = second.o.get(job.id)!
    await waitFor('the split to end', () => again.state !== 'splitting', { timeoutMs: 60_000, everyMs: 50 })
    expect(again.error).toBeUndefined()
    expect(again.state).toBe('encoding')
    expect(again.chunks.map(c => [c.startFrame, c.frames])).toEqual(planned)
    // Each segment starts where its chunk does: one encoded from it has exactly the chunk's frames.
    const scratch = await mkdtemp(join(tmpdir(), 'swarm-orig-replan-'))
    cleanup.push(async () => { await rm(scratch, { recursive: true, force: true }) })
    const last = again.chunks.length - 1
    const l = second.o.requestLease(job.id, last, 'peerA'); if (!l.ok) throw new Error('lease')
    const out = await encodeFor(second.o, again, last, l.lease.id, 'peerA', scratch)
    await second.o.acceptResult(job.id, last, 'peerA', out, 'x')
    expect(again.chunks[last]?.state).toBe('done')
  })
})
