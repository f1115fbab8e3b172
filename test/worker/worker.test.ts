import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { localLink } from '../../src/daemon/local-link.js'
import { Originator, type JobRecord } from '../../src/jobs/index.js'
import { MemoryBudgetError, probeMedia, type EncodeChunkOptions } from '../../src/media/index.js'
import { DEFAULT_ENCODE_PRIORITY, Worker, type JobView, type OriginatorLink } from '../../src/worker/index.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { waitFor } from '../helpers/wait.js'
import type { NodeEventOf, RefusalCode } from '../../src/swarm/index.js'

let fx: Fixtures
const cleanup: Array<() => Promise<void>> = []
beforeAll(async () => { fx = await ensureFixtures() })
afterEach(async () => { for (const c of cleanup.splice(0).reverse()) await c() })

function viewOf (job: JobRecord): JobView {
  return { jobId: job.id, originator: job.originator, settings: job.settings, totalChunks: job.chunks.length, open: job.chunks.filter(c => c.state === 'open').map(c => c.index), seq: job.updatedAt }
}

/** The chunks whose results the originator took, as the worker tells them. */
function acceptedUploads (worker: Worker): Array<NodeEventOf<'upload:accepted'>> {
  const accepted: Array<NodeEventOf<'upload:accepted'>> = []
  worker.on('event', (e) => { if (e.type === 'upload:accepted') accepted.push(e) })
  return accepted
}

async function setup (settings: string, workerOptions: { slots?: number, link?: (o: Originator) => OriginatorLink, encoder?: (o: EncodeChunkOptions) => Promise<never>, now?: () => number } = {}) {
  const home = await mkdtemp(join(tmpdir(), 'swarm-worker-'))
  // The worker is this originator's own (peer 'self'): its failures are evidence.
  const originator = new Originator({ home, peerId: 'self', ownWorker: true, plan: { gopsPerChunk: 1 } })
  await originator.start()
  const link = workerOptions.link?.(originator) ?? localLink(originator, 'self')
  const worker = new Worker({ peerId: 'self', slots: workerOptions.slots ?? 2, workDir: join(home, 'work'), linkFor: () => link, heartbeatMs: 200, log: process.env.DEBUG_WORKER !== undefined ? console.log : undefined, ...(workerOptions.encoder !== undefined ? { encoder: workerOptions.encoder } : {}), ...(workerOptions.now !== undefined ? { now: workerOptions.now } : {}) })
  const delivered = acceptedUploads(worker)
  worker.start()
  originator.on('changed', (id) => { const job = originator.get(id); if (job !== undefined) worker.updateJob(viewOf(job)) })
  cleanup.push(async () => { await worker.stop(); await originator.stop(); await rm(home, { recursive: true, force: true }) })
  return { home, originator, worker, delivered }
}

describe('Worker with its own node as originator', () => {
  it('encodes a whole job: every chunk claimed, encoded, verified, merged', async () => {
    const { originator, delivered } = await setup('--preset ultrafast --crf 30')
    const { job } = await originator.addJob({ file: fx.openGop10bit, settings: '--preset ultrafast --crf 30', output: join(tmpdir(), `swarm-worker-out-${process.pid}.mkv`) })
    cleanup.push(async () => { await rm(job.output ?? '', { force: true }) })
    await waitFor('the job to end', () => job.state === 'done' || job.state === 'failed', { timeoutMs: 90_000, everyMs: 50 })
    expect(job.error).toBeUndefined()
    expect(delivered).toHaveLength(job.chunks.length)
    expect(new Set(delivered.map(c => c.chunk)).size).toBe(job.chunks.length)
    const out = await probeMedia(job.output as string)
    expect(out.video.frameCount).toBe(240)
  })

  it('gives a chunk back with the reason when its encode fails, tries once more after a pause, then stops claiming that job', async () => {
    const priorities: Array<string | undefined> = []
    const failing = async (o: EncodeChunkOptions): Promise<never> => { priorities.push(o.priority); const e = new Error('x264 [error]: could not open output file'); e.name = 'ToolError'; throw e }
    let offset = 0
    const now = (): number => Date.now() + offset
    const { originator, worker, home } = await setup('--preset ultrafast', { slots: 1, encoder: failing, now })
    const { job } = await originator.addJob({ file: fx.shortClip, settings: '--preset ultrafast' })
    await waitFor('a failure on chunk 0', () => (job.chunks[0]?.failures.length ?? 0) > 0, { timeoutMs: 90_000, everyMs: 50 })
    expect(job.chunks[0]?.failures[0]?.reason).toMatch(/could not open output file/)
    expect(job.chunks[0]?.state).toBe('open')
    // Encodes run below the node's own priority: in the idle class unless the node says otherwise.
    expect(DEFAULT_ENCODE_PRIORITY).toBe('idle')
    expect(priorities).toEqual([DEFAULT_ENCODE_PRIORITY])
    // Backed off: no second try within the pause.
    await new Promise(r => setTimeout(r, 1000))
    expect(job.chunks[0]?.failures).toHaveLength(1)
    // After the pause it tries once more (a failure may be transient), fails again, and gives up on the job.
    offset += 11_000
    worker.updateJob(viewOf(job))
    await waitFor('a second failure on chunk 0, or the job to fail', () => (job.chunks[0]?.failures.length ?? 0) > 1 || job.state === 'failed', { timeoutMs: 90_000, everyMs: 50 })
    offset += 11_000
    worker.updateJob(viewOf(job))
    await new Promise(r => setTimeout(r, 1000))
    expect(job.chunks[0]?.failures).toHaveLength(2)
    // The only peer gave up twice: the job fails with the reason rather than waiting forever.
    expect(job.state).toBe('failed')
    expect(job.error).toMatch(/every peer \(1\) failed to encode this job twice.*could not open output file/)
    expect(worker.status().active).toEqual([])
    expect(await readdir(join(home, 'work')).catch(() => [])).toEqual([])
  })
})

describe('Worker scheduling (a scripted originator link)', () => {
  const JOB = 'ab'.repeat(32)
  const META = { frames: 10, selectFromTime: 0, settings: '--preset ultrafast', frameRate: { num: 25, den: 1 }, pixFmt: 'yuv420p', width: 64, height: 36 }

  /**
   * A started worker in a fresh temp dir (removed after the test), with a link that leases whatever
   * is claimed and lets the test hold uploads and encodes open.
   */
  /** Rejects when the signal aborts, as a real stream does. */
  const aborted = async (signal: AbortSignal): Promise<never> => await new Promise<never>((_resolve, reject) => {
    if (signal.aborted) { reject(new Error('aborted')); return }
    signal.addEventListener('abort', () => { reject(new Error('aborted')) }, { once: true })
  })

  interface Script {
    /** Worker options. */
    swarmSize?: () => number
    slots?: number
    /** Held before a claim is answered. */
    claimGate?: (chunk: number) => Promise<void>
    /** A refusal code to answer a claim with, instead of a lease. */
    refuseClaim?: (chunk: number) => RefusalCode | undefined
    /** A refusal code to answer the n-th upload (from 0) with, instead of taking it. */
    refuseUpload?: (attempt: number) => RefusalCode | undefined
    /** A download: how long it takes, whether it is from another node, whether it stops when aborted. */
    fetch?: { ms: number, owned: boolean, heedsAbort: boolean }
    /** The originator's answer to a heartbeat (default: renewed for 30 s). */
    heartbeat?: OriginatorLink['heartbeat']
    /** An error a chunk's encode fails with when it is finished, instead of its output. */
    failEncode?: (chunk: number) => Error | undefined
    /** How long a granted lease runs (default 30 s). */
    leaseMs?: number
  }

  async function scripted (tag: string, script: Script = {}) {
    const { claimGate = async () => {}, refuseClaim = () => undefined, refuseUpload = () => undefined, failEncode = () => undefined, fetch = { ms: 0, owned: true, heedsAbort: true }, heartbeat = async () => ({ ok: true, expiresAt: Date.now() + 30_000 }), leaseMs = 30_000, ...extra } = script
    const workDir = await mkdtemp(join(tmpdir(), `swarm-worker-${tag}-`))
    cleanup.push(async () => { await rm(workDir, { recursive: true, force: true }) })
    const claims: number[] = []
    const releases: Array<{ chunk: number, reason: string }> = []
    const uploads = new Map<number, () => void>()
    let uploadAttempts = 0
    const encodes = new Map<number, () => void>()
    const progress = new Map<number, EncodeChunkOptions['onProgress']>()
    const link: OriginatorLink = {
      claim: async (jobId, chunk, signal) => {
        claims.push(chunk)
        await Promise.race([claimGate(chunk), aborted(signal)])
        const code = refuseClaim(chunk)
        if (code !== undefined) return { ok: false, code, message: 'refused by the script' }
        return { ok: true, lease: { jobId, chunk, leaseId: `l${chunk}`, originator: 'origin', expiresAt: Date.now() + leaseMs, issuedAt: Date.now() } }
      },
      heartbeat,
      release: async (lease, reason) => { releases.push({ chunk: lease.chunk, reason }); return { ok: true } },
      fetchSegment: async (_lease, dest, signal) => {
        if (fetch.ms > 0) await new Promise(resolve => setTimeout(resolve, fetch.ms))
        if (fetch.heedsAbort) signal.throwIfAborted()
        await mkdir(dirname(dest), { recursive: true })
        await writeFile(dest, 'segment')
        return { path: dest, owned: fetch.owned, meta: META }
      },
      uploadResult: async (lease, _path, _sha256, signal) => {
        const code = refuseUpload(uploadAttempts++)
        if (code !== undefined) return { ok: false, code, message: 'refused by the script' }
        await Promise.race([new Promise<void>(resolve => uploads.set(lease.chunk, resolve)), aborted(signal)])
        return { ok: true }
      }
    }
    const encoder = async (o: EncodeChunkOptions): Promise<{ path: string, sizeBytes: number, frameCount: number, seconds: number }> => {
      const chunk = Number(/segment-(\d+)/.exec(o.segmentPath)?.[1])
      progress.set(chunk, o.onProgress)
      await new Promise<void>((resolve, reject) => {
        encodes.set(chunk, resolve)
        o.signal?.addEventListener('abort', () => { reject(new Error('aborted')) }, { once: true })
      })
      const failure = failEncode(chunk)
      if (failure !== undefined) throw failure
      await writeFile(o.outputPath, 'h264')
      return { path: o.outputPath, sizeBytes: 4, frameCount: o.frameCount, seconds: 0 }
    }
    const worker = new Worker({ peerId: 'worker', slots: 1, workDir, linkFor: () => link, encoder, heartbeatMs: 200, ...extra })
    cleanup.push(async () => {
      for (const release of [...uploads.values(), ...encodes.values()]) release()
      await worker.stop()
    })
    const delivered = acceptedUploads(worker)
    worker.start()
    // x264 reports the chunk nearly done: from now on the worker may fetch its next chunk.
    const nearEnd = (chunk: number): void => { progress.get(chunk)?.({ framesDone: META.frames, frameCount: META.frames, fps: 100 }) }
    // x264 reports `framesLeft` frames to go at 1 frame a second.
    const report = (chunk: number, framesLeft: number): void => { progress.get(chunk)?.({ framesDone: META.frames - framesLeft, frameCount: META.frames, fps: 1 }) }
    return { worker, delivered, claims, uploads, encodes, releases, nearEnd, report, workDir }
  }

  const view = (open: number[], seq: number): JobView => ({ jobId: JOB, originator: 'origin', settings: '--preset ultrafast', totalChunks: 4, open, seq })

  it('leaves a job alone for a while once its originator says it holds as many leases as it may, instead of asking for every other chunk', async () => {
    const { worker, claims } = await scripted('cap', { refuseClaim: () => 'too-many-leases' })
    worker.updateJob(view([0, 1, 2, 3], 1))
    await waitFor('a claim', () => claims.length > 0, { timeoutMs: 5000, everyMs: 20 })
    // Several pumps (every heartbeat tick, 200 ms here) go by: none claims another chunk of the job.
    await new Promise(resolve => setTimeout(resolve, 1000))
    worker.updateJob(view([0, 1, 2, 3], 2))
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(claims).toHaveLength(1)
  })

  it('uploads again when the originator has no room for the result yet, instead of throwing the encode away', async () => {
    const { worker, delivered, uploads, encodes, releases } = await scripted('no-space', { refuseUpload: n => n === 0 ? 'no-space' : undefined })
    worker.updateJob(view([0], 1))
    await waitFor('the encode', () => encodes.size === 1, { timeoutMs: 5000, everyMs: 20 })
    encodes.get(0)?.()
    // Refused once with no-space, the upload is tried again after a pause.
    await waitFor('the second upload', () => uploads.has(0), { timeoutMs: 10_000, everyMs: 50 })
    uploads.get(0)?.()
    await waitFor('the chunk to be delivered', () => delivered.some(d => d.chunk === 0), { timeoutMs: 5000, everyMs: 50 })
    expect(releases).toEqual([])
  })

  it('stops an encode whose lease the originator refuses as expired, once a late result could no longer be taken', async () => {
    let refusedSince: number | undefined
    const heartbeat: OriginatorLink['heartbeat'] = async () => {
      refusedSince ??= Date.now()
      return { ok: false, code: 'lease-expired', message: 'lease on chunk 0 reached its deadline without a result' }
    }
    const { worker, encodes, releases } = await scripted('lease-gone', { heartbeat })
    worker.updateJob(view([0], 1))
    await waitFor('the encode', () => encodes.size === 1, { timeoutMs: 5000, everyMs: 20 })
    await waitFor('the first refused heartbeat', () => refusedSince !== undefined, { timeoutMs: 5000, everyMs: 20 })
    // A late result is still welcome for a while: the encode goes on past the first refusal.
    expect(worker.status().active.map(a => a.stage)).toEqual(['encoding'])
    // Then it is stopped (its x264 would otherwise run on for nothing), never left to run to its end.
    await waitFor('the encode to be stopped', () => worker.status().active.length === 0, { timeoutMs: 10_000, everyMs: 20 })
    expect(Date.now() - (refusedSince as number)).toBeGreaterThanOrEqual(3 * 200)
    // The lease is gone: nothing to give back.
    expect(releases).toEqual([])
  })

  it('stops an encode whose originator cannot be reached past the lease\'s end, and not before', async () => {
    const heartbeat: OriginatorLink['heartbeat'] = async () => { throw new Error('connection refused') }
    const { worker, encodes } = await scripted('unreachable', { heartbeat, leaseMs: 1500 })
    const started = Date.now()
    worker.updateJob(view([0], 1))
    await waitFor('the encode', () => encodes.size === 1, { timeoutMs: 5000, everyMs: 20 })
    await waitFor('the encode to be stopped', () => worker.status().active.length === 0, { timeoutMs: 15_000, everyMs: 20 })
    // Not at the first failed heartbeat (they are transient while the lease has slack): after its end, and a late result's span.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500 + 3 * 200)
  })

  it('starts the next encode while the last result is still uploading', async () => {
    const { worker, delivered, uploads, encodes } = await scripted('overlap')
    worker.updateJob(view([0, 1, 2], 1))
    await waitFor('one encode', () => encodes.size === 1, { timeoutMs: 5000, everyMs: 50 })
    const [first] = [...encodes.keys()] as [number]
    encodes.get(first)?.()
    // The first result's upload is held open by the originator; the prefetched chunk must encode meanwhile.
    await waitFor('the first chunk\'s upload', () => uploads.has(first), { timeoutMs: 5000, everyMs: 50 })
    await waitFor('two encodes', () => encodes.size === 2, { timeoutMs: 5000, everyMs: 50 })
    const second = [...encodes.keys()].find(c => c !== first)
    expect(worker.status().active.find(t => t.chunk === first)?.stage).toBe('uploading')
    expect(worker.status().active.find(t => t.chunk === second)?.stage).toBe('encoding')
    uploads.get(first)?.()
    await waitFor('the first chunk to complete', () => delivered.some(c => c.chunk === first), { timeoutMs: 5000, everyMs: 50 })
  })

  it('starts encoding a fetched chunk at once, while its claim on the next one is still unanswered', async () => {
    let answerSecondClaim: () => void = () => {}
    const secondClaim = new Promise<void>(resolve => { answerSecondClaim = resolve })
    const { worker, claims, encodes } = await scripted('eager', { slots: 2, claimGate: async (chunk) => { if (chunk !== 0) await secondClaim } })
    cleanup.push(async () => { answerSecondClaim() })
    worker.updateJob(view([0, 1, 2], 1))
    // Chunk 0 is fetched; the claim on chunk 1 (for the second slot) hangs at the originator.
    await waitFor('two claims', () => claims.length === 2, { timeoutMs: 5000, everyMs: 50 })
    await waitFor('chunk 0 to be encoding', () => encodes.has(0), { timeoutMs: 5000, everyMs: 50 })
    expect(worker.status().active.find(t => t.chunk === 0)?.stage).toBe('encoding')
    answerSecondClaim()
  })

  it('gives a lease back unencoded when its claim is answered after another chunk of the job ran out of memory', async () => {
    let answerSecondClaim: () => void = () => {}
    const secondClaim = new Promise<void>(resolve => { answerSecondClaim = resolve })
    const { worker, claims, releases, encodes } = await scripted('memory-race', {
      slots: 2,
      claimGate: async (chunk) => { if (chunk !== 0) await secondClaim },
      failEncode: (chunk) => chunk === 0 ? new MemoryBudgetError('x264 ran out of this worker\'s memory budget of 380 MiB an encode', false) : undefined
    })
    cleanup.push(async () => { answerSecondClaim() })
    worker.updateJob(view([0, 1, 2], 1))
    await waitFor('two claims', () => claims.length === 2, { timeoutMs: 5000, everyMs: 20 })
    await waitFor('chunk 0 to be encoding', () => encodes.has(0), { timeoutMs: 5000, everyMs: 20 })
    encodes.get(0)?.()
    await waitFor('chunk 0 given back', () => releases.some(r => r.chunk === 0), { timeoutMs: 5000, everyMs: 20 })
    expect(releases.find(r => r.chunk === 0)?.reason).toMatch(/^memory: /)
    // The claim on chunk 1 was on its way when chunk 0 ran out: its lease comes back unencoded.
    answerSecondClaim()
    await waitFor('chunk 1 given back', () => releases.some(r => r.chunk === 1), { timeoutMs: 5000, everyMs: 20 })
    expect(encodes.has(1)).toBe(false)
    expect(worker.status().active).toEqual([])
    expect(claims).toEqual([0, 1])
  })

  it('follows the originator\'s waiting queue: its own share of the open chunks, else leaves them to the peers ahead', async () => {
    const { worker, claims } = await scripted('queue')
    // Third in line with two chunks open: both are for the two peers ahead.
    worker.updateJob({ ...view([4, 7], 1), waiting: ['peerA', 'peerB', 'worker'] })
    await new Promise(resolve => setTimeout(resolve, 400))
    expect(claims).toEqual([])
    // Second in line: the second open chunk is ours.
    worker.updateJob({ ...view([4, 7], 2), waiting: ['peerA', 'worker'] })
    await waitFor('one claim', () => claims.length === 1, { timeoutMs: 5000, everyMs: 50 })
    expect(claims).toEqual([7])
  })

  it('takes a chunk its waiting peer left alone for a second', async () => {
    const { worker, claims } = await scripted('leftover')
    // Not in the queue, and the queue covers the one open chunk: leave it to peerA for now.
    worker.updateJob({ ...view([2], 1), waiting: ['peerA'] })
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(claims).toEqual([])
    // peerA found work elsewhere: about a second later the chunk is anyone's.
    await waitFor('one claim', () => claims.length === 1, { timeoutMs: 5000, everyMs: 50 })
    expect(claims).toEqual([2])
  })

  it('keys a job by its originator: another originator\'s job of the same id, with a higher seq, every chunk settled and a withdrawal, leaves this one alone', async () => {
    const { worker, encodes, releases, claims } = await scripted('same-id')
    worker.updateJob(view([0, 1], 1))
    await waitFor('one encode', () => encodes.size === 1, { timeoutMs: 5000, everyMs: 50 })
    const mine = worker.status().active.map(t => [t.originator, t.chunk])
    expect(mine.every(([o]) => o === 'origin')).toBe(true)
    const claimsBefore = claims.length
    // A copycat announces the same id in its own name, says every chunk is settled, then withdraws "it".
    worker.updateJob({ ...view([], Number.MAX_SAFE_INTEGER), originator: 'copycat', settled: [0, 1, 2, 3] })
    worker.removeJob('copycat', JOB)
    await new Promise(resolve => setTimeout(resolve, 300))
    expect(worker.status().active.map(t => [t.originator, t.chunk])).toEqual(mine)
    expect(releases).toEqual([])
    expect(claims.length).toBe(claimsBefore)
    // The real originator's next announcement is still heard, its seq compared only with its own.
    const first = mine[0]?.[1] as number
    worker.updateJob({ ...view([], 2), settled: [first] })
    await waitFor('the chunk the real originator settled to stop', () => !worker.status().active.some(t => t.chunk === first), { timeoutMs: 5000, everyMs: 50 })
  })

  it('stops claiming a job whose originator answers banned, and says so once', async () => {
    const workDir = await mkdtemp(join(tmpdir(), 'swarm-worker-banned-'))
    const claims: number[] = []
    const log: string[] = []
    const no = async (): Promise<never> => { throw new Error('not reached') }
    const link: OriginatorLink = {
      claim: async (_jobId, chunk) => { claims.push(chunk); return { ok: false, code: 'banned', message: 'this peer is banned from this job' } },
      heartbeat: no, release: no, fetchSegment: no, uploadResult: no
    }
    const worker = new Worker({ peerId: 'worker', slots: 1, workDir, linkFor: () => link, heartbeatMs: 200, log: (l) => { log.push(l) } })
    cleanup.push(async () => { await worker.stop(); await rm(workDir, { recursive: true, force: true }) })
    worker.start()
    worker.updateJob(view([0, 1, 2, 3], 1))
    await waitFor('the first claim', () => claims.length >= 1, { timeoutMs: 5000, everyMs: 20 })
    worker.updateJob(view([0, 1, 2, 3], 2))
    await new Promise(resolve => setTimeout(resolve, 600))
    expect(claims).toHaveLength(1)
    expect(log.filter(l => l.includes('this peer is banned from this job'))).toHaveLength(1)
  })

  it('sleeps while it holds nothing and no chunk is on offer; an announcement wakes it, and it then tries a chunk again after its pause with no announcement', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'Date'] })
    try {
      let answer: 'unreachable' | 'not-open' = 'unreachable'
      const { worker, claims } = await scripted('sleep', {
        claimGate: async () => { if (answer === 'unreachable') throw new Error('no route to the originator') },
        refuseClaim: () => answer === 'not-open' ? 'not-open' : undefined
      })
      await vi.advanceTimersByTimeAsync(1000)
      expect(vi.getTimerCount(), 'no timer while idle').toBe(0)
      worker.updateJob(view([0], 1))
      await vi.advanceTimersByTimeAsync(100)
      expect(claims).toEqual([0])
      // A failed claim pauses the chunk for 5 s; the worker ticks meanwhile, and tries it again.
      await vi.advanceTimersByTimeAsync(5500)
      expect(claims).toEqual([0, 0])
      // Taken by another peer: the chunk leaves the worker's view, and nothing else is on offer.
      answer = 'not-open'
      await vi.advanceTimersByTimeAsync(5500)
      expect(claims).toEqual([0, 0, 0])
      await vi.advanceTimersByTimeAsync(1000)
      expect(vi.getTimerCount(), 'asleep again').toBe(0)
    } finally {
      vi.useRealTimers()
    }
  })

  it('gives the leases of a job it forgets back to the originator, without counting a failure', async () => {
    const { worker, encodes, releases, nearEnd } = await scripted('forget')
    worker.updateJob(view([0, 1, 2], 1))
    await waitFor('one encode', () => encodes.size === 1, { timeoutMs: 5000, everyMs: 50 })
    nearEnd([...encodes.keys()][0] as number)
    // One encoding, one prefetched.
    await waitFor('one encode and two chunks held', () => encodes.size === 1 && worker.status().active.length === 2, { timeoutMs: 5000, everyMs: 50 })
    const held = worker.status().active.map(t => t.chunk).sort()
    worker.removeJob('origin', JOB)
    await waitFor('two releases', () => releases.length === 2, { timeoutMs: 5000, everyMs: 50 })
    expect(releases.map(r => r.reason)).toEqual(['', ''])
    expect(releases.map(r => r.chunk).sort()).toEqual(held)
    await waitFor('no chunk held', () => worker.status().active.length === 0, { timeoutMs: 5000, everyMs: 50 })
  })

  it('does not prefetch a job\'s last open chunk while busy: an idle peer can start it now', async () => {
    const { worker, claims, encodes, nearEnd } = await scripted('lastopen')
    worker.updateJob(view([0], 1))
    await waitFor('chunk 0 to be encoding', () => encodes.has(0), { timeoutMs: 5000, everyMs: 50 })
    nearEnd(0)
    // Busy with chunk 0; one chunk left open: leave it.
    worker.updateJob(view([1], 2))
    await new Promise(resolve => setTimeout(resolve, 600))
    expect(claims).toEqual([0])
    // Two open: prefetching one still leaves one for an idle peer.
    worker.updateJob(view([1, 2], 3))
    await waitFor('two claims', () => claims.length === 2, { timeoutMs: 5000, everyMs: 50 })
    expect([1, 2]).toContain(claims[1])
  })

  it('prefetches only while a job has more open chunks than the swarm has encoders', async () => {
    // Four peers of one slot each (as far as this worker can tell).
    const { worker, claims, encodes, nearEnd } = await scripted('swarmsize', { swarmSize: () => 4 })
    worker.updateJob(view([0], 1))
    await waitFor('chunk 0 to be encoding', () => encodes.has(0), { timeoutMs: 5000, everyMs: 50 })
    nearEnd(0)
    // Busy; four open chunks for four encoders: each of the other three could start one now.
    worker.updateJob(view([1, 2, 3, 4], 2))
    await new Promise(resolve => setTimeout(resolve, 600))
    expect(claims).toEqual([0])
    // Five open: one more than the encoders, so taking it ahead leaves nobody short.
    worker.updateJob(view([1, 2, 3, 4, 5], 3))
    await waitFor('two claims', () => claims.length === 2, { timeoutMs: 5000, everyMs: 50 })
  })

  it('fetches its next chunk only when the running encode is about to end', async () => {
    const { worker, claims, encodes, nearEnd } = await scripted('justintime')
    worker.updateJob(view([0, 1, 2, 3], 1))
    await waitFor('chunk 0 to be encoding', () => encodes.has(0), { timeoutMs: 5000, everyMs: 50 })
    // Just started, with chunks open and no download history: no prefetch yet (an idle peer may
    // start chunk 1 now, and at the start of a job every peer's first download is still on its way).
    worker.updateJob(view([1, 2, 3], 2))
    await new Promise(resolve => setTimeout(resolve, 400))
    expect(claims).toEqual([0])
    // x264 says the chunk is nearly done: now the next one is fetched, without a new announcement.
    nearEnd(0)
    await waitFor('two claims', () => claims.length === 2, { timeoutMs: 5000, everyMs: 50 })
    expect(worker.status().active.find(t => t.chunk === 0)?.stage).toBe('encoding')
  })

  it('times the prefetch by its last download from another node: twice that, plus a second, before the end', async () => {
    for (const owned of [true, false]) {
      // A 1 s download: from another node it makes the prefetch due 3 s before the end; our own
      // node's chunks need no download, so after one of those it is due 1 s before the end.
      const { worker, claims, encodes, report } = await scripted(`timing-${String(owned)}`, { fetch: { ms: 1000, owned, heedsAbort: true } })
      worker.updateJob(view([0, 1, 2, 3], 1))
      await waitFor('chunk 0 to be encoding', () => encodes.has(0), { timeoutMs: 5000, everyMs: 50 })
      worker.updateJob(view([1, 2, 3], 2))
      report(0, 4)
      await new Promise(resolve => setTimeout(resolve, 300))
      expect(claims).toEqual([0])
      report(0, 2)
      if (owned) await waitFor('two claims', () => claims.length === 2, { timeoutMs: 5000, everyMs: 50 })
      else {
        await new Promise(resolve => setTimeout(resolve, 300))
        expect(claims).toEqual([0])
        report(0, 1)
        await waitFor('two claims', () => claims.length === 2, { timeoutMs: 5000, everyMs: 50 })
      }
    }
  })

  it('on stop, lets a download that is slow to notice the abort finish before removing its files', async () => {
    const { worker, claims, workDir } = await scripted('stop', { fetch: { ms: 400, owned: true, heedsAbort: false } })
    worker.updateJob(view([0, 1], 1))
    await waitFor('one claim', () => claims.length === 1, { timeoutMs: 5000, everyMs: 50 })
    await worker.stop()
    // The download wrote its segment (directories and all) after the abort; nothing of it is left.
    await new Promise(resolve => setTimeout(resolve, 600))
    expect(existsSync(workDir)).toBe(false)
  })

  it('spreads prefetch claims over twice as many of the lowest open chunks as the swarm has encoders', async () => {
    // Eight busy peers of a ten-encoder swarm, all seeing the same open chunks: asking for the lowest
    // one each, seven would be refused.
    const open = Array.from({ length: 40 }, (_, i) => i + 1)
    const prefetched: number[] = []
    for (let i = 0; i < 8; i++) {
      const { worker, claims, encodes, nearEnd } = await scripted(`spread${i}`, { swarmSize: () => 10 })
      worker.updateJob(view([0], 1))
      await waitFor('chunk 0 to be encoding', () => encodes.has(0), { timeoutMs: 5000, everyMs: 50 })
      nearEnd(0)
      worker.updateJob(view(open, 2))
      await waitFor('two claims', () => claims.length === 2, { timeoutMs: 5000, everyMs: 50 })
      prefetched.push(claims[1] as number)
    }
    for (const c of prefetched) expect(c).toBeGreaterThanOrEqual(1)
    for (const c of prefetched) expect(c).toBeLessThanOrEqual(20)
    expect(new Set(prefetched).size).toBeGreaterThan(1)
  })

  it('leaves a job\'s last chunks, its smallest, out of a prefetch: they go last, in order', async () => {
    // Two encoders, three open chunks of a job's tail: 9 (the largest left), then 11 and 12.
    for (let i = 0; i < 6; i++) {
      const { worker, claims, encodes, nearEnd } = await scripted(`tail${i}`, { swarmSize: () => 2 })
      worker.updateJob(view([0], 1))
      await waitFor('chunk 0 to be encoding', () => encodes.has(0), { timeoutMs: 5000, everyMs: 50 })
      nearEnd(0)
      worker.updateJob(view([9, 11, 12], 2))
      await waitFor('two claims', () => claims.length === 2, { timeoutMs: 5000, everyMs: 50 })
      expect(claims[1]).toBe(9)
    }
  })
})
