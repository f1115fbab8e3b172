import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey, Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  CHUNK_PROTOCOL, encodeFrame, LEASE_PROTOCOL, MAX_CONTROL_FRAME, MAX_TRANSFER_BYTES, RESULT_PROTOCOL, signClaim, signLease, type LeaseArbiter,
  type ChunkLease, type Refusal, type RefusalCode, type SegmentMeta, type RemoteOriginatorLink, type SwarmNode
} from '../../src/swarm/index.js'
import type { LogLevel } from '../../src/log/index.js'
import { recordTally } from '../helpers/tally.js'
import { makeNode } from './helpers.js'
import { waitFor } from '../helpers/wait.js'

const CLAIMS = 'Hostile input: claims'
const RESULTS = 'Hostile input: results'

const JOB = 'c0ffee'.repeat(10) + 'beef'
const OTHER_JOB = '1'.repeat(64)
const SEGMENT_BYTES = 700_001 // spans several 256 KiB data frames and ends mid-frame
const LEASE_MS = 30_000

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const timeout = (): AbortSignal => AbortSignal.timeout(10_000)

const refusal = (code: RefusalCode, message: string): Refusal => ({ ok: false, code, message })

/**
 * An in-memory originator: one job, chunk 0 open, one segment on disk. It records every call so
 * the tests can check what the swarm layer passed through (in particular, which peer it named).
 */
class FakeArbiter implements LeaseArbiter {
  lease: { id: string, peer: string, issuedAt: number, expiresAt: number } | undefined
  maxBytes = 4 * 1024 * 1024
  /** When set, segmentFor announces a SHA-256 that does not match the bytes. */
  lieAboutSegmentHash = false
  slots: string[] = []
  calls: Array<{ fn: string, args: unknown[] }> = []
  accepted: Array<{ jobId: string, chunk: number, peer: string, tmpPath: string, sha256: string, bytes: Buffer, mode: number }> = []
  private slotCount = 0

  readonly meta: SegmentMeta = { frames: 48, selectFromTime: 0.041708, settings: '--preset ultrafast --crf 30', frameRate: { num: 24000, den: 1001 }, pixFmt: 'yuv420p', width: 320, height: 180 }

  constructor (readonly dir: string, readonly segmentPath: string, readonly segment: Buffer) {}

  reset (): void {
    this.lease = undefined
    this.maxBytes = 4 * 1024 * 1024
    this.lieAboutSegmentHash = false
    this.calls = []
    this.accepted = []
    this.slots = []
  }

  callsTo (fn: string): unknown[][] { return this.calls.filter(c => c.fn === fn).map(c => c.args) }

  private holds (jobId: string, chunk: number, leaseId: string, peer: string): Refusal | undefined {
    if (jobId !== JOB) return refusal('unknown-job', `no job ${jobId.slice(0, 8)}`)
    if (chunk !== 0 || this.lease === undefined || this.lease.id !== leaseId || this.lease.peer !== peer) return refusal('not-holder', `${peer.slice(-8)} holds no lease ${leaseId} on chunk ${chunk}`)
    return undefined
  }

  requestLease (jobId: string, chunk: number, claimant: string): ReturnType<LeaseArbiter['requestLease']> {
    this.calls.push({ fn: 'requestLease', args: [jobId, chunk, claimant] })
    if (jobId !== JOB) return refusal('unknown-job', `no job ${jobId.slice(0, 8)}`)
    if (chunk !== 0) return refusal('not-open', `chunk ${chunk} is not open`)
    if (this.lease !== undefined) return refusal('not-open', `chunk 0 is leased to ${this.lease.peer.slice(-8)}`)
    const issuedAt = Date.now()
    this.lease = { id: randomBytes(12).toString('hex'), peer: claimant, issuedAt, expiresAt: issuedAt + LEASE_MS }
    return { ok: true, lease: { id: this.lease.id, issuedAt, expiresAt: this.lease.expiresAt } }
  }

  renewLease (jobId: string, chunk: number, leaseId: string, peer: string, progress: { framesDone: number, fps: number }): ReturnType<LeaseArbiter['renewLease']> {
    this.calls.push({ fn: 'renewLease', args: [jobId, chunk, leaseId, peer, progress] })
    const no = this.holds(jobId, chunk, leaseId, peer)
    if (no !== undefined) return no
    this.lease!.expiresAt = Date.now() + LEASE_MS + 1
    return { ok: true, expiresAt: this.lease!.expiresAt }
  }

  releaseLease (jobId: string, chunk: number, leaseId: string, peer: string, reason: string): ReturnType<LeaseArbiter['releaseLease']> {
    this.calls.push({ fn: 'releaseLease', args: [jobId, chunk, leaseId, peer, reason] })
    const no = this.holds(jobId, chunk, leaseId, peer)
    if (no !== undefined) return no
    this.lease = undefined
    return { ok: true }
  }

  segmentFor (jobId: string, chunk: number, leaseId: string, peer: string): ReturnType<LeaseArbiter['segmentFor']> {
    this.calls.push({ fn: 'segmentFor', args: [jobId, chunk, leaseId, peer] })
    const no = this.holds(jobId, chunk, leaseId, peer)
    if (no !== undefined) return no
    return { ok: true, path: this.segmentPath, size: this.segment.length, sha256: this.lieAboutSegmentHash ? sha256(Buffer.from('other')) : sha256(this.segment), meta: this.meta }
  }

  async resultSlot (jobId: string, chunk: number, leaseId: string, peer: string, size: number): ReturnType<LeaseArbiter['resultSlot']> {
    this.calls.push({ fn: 'resultSlot', args: [jobId, chunk, leaseId, peer] })
    const no = this.holds(jobId, chunk, leaseId, peer)
    if (no !== undefined) return no
    const tmpPath = join(this.dir, 'results', `chunk0-${++this.slotCount}.tmp`)
    this.slots.push(tmpPath)
    // The size limit is the arbiter's (the originator's maxResultBytes); this one's is settable.
    if (size > this.maxBytes) return { ok: false, code: 'too-large', message: `result of ${size} bytes is larger than ${this.maxBytes}` }
    return { ok: true, tmpPath, maxBytes: this.maxBytes }
  }

  async uploadFailed (tmpPath: string): Promise<void> {
    this.calls.push({ fn: 'uploadFailed', args: [tmpPath] })
    await rm(tmpPath, { force: true })
  }

  async acceptResult (jobId: string, chunk: number, peer: string, tmpPath: string, sha: string): ReturnType<LeaseArbiter['acceptResult']> {
    this.calls.push({ fn: 'acceptResult', args: [jobId, chunk, peer, tmpPath, sha] })
    this.accepted.push({ jobId, chunk, peer, tmpPath, sha256: sha, bytes: await readFile(tmpPath), mode: (await stat(tmpPath)).mode & 0o777 })
    return { ok: true }
  }
}

let a: SwarmNode
let b: SwarmNode
let addrA: Multiaddr
let arbiter: FakeArbiter
let link: RemoteOriginatorLink
let originDir: string
let workDir: string
let bKey: PrivateKey
const logsA: string[] = []
/** A's log lines with their level, to tell the races the protocol expects from real problems. */
const levelledA: Array<{ line: string, level: LogLevel }> = []
/** A's idle limit on streams; short so the slow-peer test does not wait 30 s. */
const A_IDLE_MS = 1500

beforeAll(async () => {
  originDir = await mkdtemp(join(tmpdir(), 'swarm-svc-origin-'))
  workDir = await mkdtemp(join(tmpdir(), 'swarm-svc-worker-'))
  const segment = randomBytes(SEGMENT_BYTES)
  const segmentPath = join(originDir, 'segment-0.mkv')
  await writeFile(segmentPath, segment)
  arbiter = new FakeArbiter(originDir, segmentPath, segment)
  a = await makeNode({ arbiter, log: (line, level) => { logsA.push(line); levelledA.push({ line, level }) }, idleTimeoutMs: A_IDLE_MS })
  b = await makeNode()
  const first = a.getMultiaddrs()[0]
  if (first === undefined) throw new Error('node A is not listening')
  addrA = first
  await b.dial(addrA)
  link = b.services.encode.linkTo(a.peerId.toString(), a.getMultiaddrs().map(String))
  // B's key, to sign claims by hand for the raw-stream tests.
  bKey = (b.services.encode as unknown as { components: { privateKey: PrivateKey } }).components.privateKey
  expect(peerIdFromPrivateKey(bKey).equals(b.peerId)).toBe(true)
})

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()])
  for (const d of [originDir, workDir]) if (d !== undefined) await rm(d, { recursive: true, force: true })
})

beforeEach(() => { arbiter.reset() })

async function claimChunk0 (): Promise<ChunkLease> {
  const answer = await link.claim(JOB, 0, timeout())
  if (!answer.ok) throw new Error(`claim refused: ${answer.code} ${answer.message}`)
  return answer.lease
}

async function writeTemp (name: string, bytes: Uint8Array): Promise<string> {
  const p = join(workDir, name)
  await writeFile(p, bytes)
  return p
}

describe('lease protocol', () => {
  it('a claim gets a signed lease whose fields match what the arbiter granted', async () => {
    const answer = await link.claim(JOB, 0, timeout())
    expect(answer.ok).toBe(true)
    if (!answer.ok) return
    const granted = arbiter.lease
    expect(granted).toBeDefined()
    expect(answer.lease).toEqual({ jobId: JOB, chunk: 0, leaseId: granted?.id, originator: a.peerId.toString(), issuedAt: granted?.issuedAt, expiresAt: granted?.expiresAt })
    expect(answer.lease.leaseId).toMatch(/^[0-9a-f]{24}$/)
    // The arbiter was asked on behalf of the authenticated remote peer.
    expect(arbiter.callsTo('requestLease')).toEqual([[JOB, 0, b.peerId.toString()]])
    expect(granted?.peer).toBe(b.peerId.toString())
  })

  it('a second claim for the same chunk gets the arbiter\'s refusal verbatim', async () => {
    await claimChunk0()
    const second = await link.claim(JOB, 0, timeout())
    expect(second).toEqual({ ok: false, code: 'not-open', message: `chunk 0 is leased to ${b.peerId.toString().slice(-8)}` })
    expect(arbiter.callsTo('requestLease')).toHaveLength(2)
  })

  it('claims for another chunk or job pass the arbiter\'s refusal through', async () => {
    expect(await link.claim(JOB, 5, timeout())).toEqual({ ok: false, code: 'not-open', message: 'chunk 5 is not open' })
    expect(await link.claim(OTHER_JOB, 0, timeout())).toMatchObject({ ok: false, code: 'unknown-job' })
  })

  it('heartbeat passes through with the progress, rounded for the wire', async () => {
    const lease = await claimChunk0()
    const hb = await link.heartbeat(lease, { framesDone: 12.9, fps: 3.14159 }, timeout())
    expect(hb).toEqual({ ok: true, expiresAt: arbiter.lease?.expiresAt })
    expect(arbiter.callsTo('renewLease')).toEqual([[JOB, 0, lease.leaseId, b.peerId.toString(), { framesDone: 12, fps: 3.14 }]])
  })

  it('heartbeat for a lease the peer does not hold is refused by the arbiter', async () => {
    const lease = await claimChunk0()
    const fake = { ...lease, leaseId: 'f'.repeat(24) }
    expect(await link.heartbeat(fake, { framesDone: 1, fps: 1 }, timeout())).toMatchObject({ ok: false, code: 'not-holder' })
  })

  it('release passes through, and the lease is gone afterwards', async () => {
    const lease = await claimChunk0()
    expect(await link.release(lease, 'worker shutting down', timeout())).toEqual({ ok: true })
    expect(arbiter.callsTo('releaseLease')).toEqual([[JOB, 0, lease.leaseId, b.peerId.toString(), 'worker shutting down']])
    expect(arbiter.lease).toBeUndefined()
    expect(await link.heartbeat(lease, { framesDone: 1, fps: 1 }, timeout())).toMatchObject({ ok: false, code: 'not-holder' })
    expect(await link.release(lease, 'again', timeout())).toMatchObject({ ok: false, code: 'not-holder' })
  })

  it('logs the races the protocol expects at debug, and refusals that need attention at info', async () => {
    const lease = await claimChunk0()
    levelledA.length = 0
    // Races: a chunk another peer claimed first, a heartbeat for a lease that passed on.
    expect(await link.claim(JOB, 0, timeout())).toMatchObject({ ok: false, code: 'not-open' })
    expect(await link.heartbeat({ ...lease, leaseId: 'f'.repeat(24) }, { framesDone: 1, fps: 1 }, timeout())).toMatchObject({ ok: false, code: 'not-holder' })
    // A problem: a result larger than its chunk can be.
    arbiter.maxBytes = 10
    const big = randomBytes(11)
    expect(await link.uploadResult(lease, await writeTemp('result-too-big.264', big), sha256(big), timeout())).toMatchObject({ ok: false, code: 'too-large' })
    const levelOf = (code: string): LogLevel | undefined => levelledA.find(l => l.line.includes(`refused (${code})`))?.level
    expect(levelOf('not-open')).toBe('debug')
    expect(levelOf('not-holder')).toBe('debug')
    expect(levelOf('too-large')).toBe('info')
  })

  it('a very long release reason is cut to what the schema allows rather than refused', async () => {
    const lease = await claimChunk0()
    expect(await link.release(lease, 'x'.repeat(5000), timeout())).toEqual({ ok: true })
    const reason = arbiter.callsTo('releaseLease')[0]?.[4] as string
    expect(reason).toBe('x'.repeat(2000))
  })
})

describe('chunk protocol', () => {
  it('fetchSegment writes a byte-identical file and returns the meta', async () => {
    const lease = await claimChunk0()
    const before = { out: a.services.encode.stats.segmentBytesOut, in: b.services.encode.stats.segmentBytesIn }
    const dest = join(workDir, 'fetched', 'seg0.mkv')
    const got = await link.fetchSegment(lease, dest, timeout())
    expect(got).toEqual({ path: dest, owned: true, meta: arbiter.meta })
    const bytes = await readFile(dest)
    expect(bytes.length).toBe(SEGMENT_BYTES)
    expect(bytes.equals(arbiter.segment)).toBe(true)
    expect(arbiter.callsTo('segmentFor')).toEqual([[JOB, 0, lease.leaseId, b.peerId.toString()]])
    expect(b.services.encode.stats.segmentBytesIn - before.in).toBe(SEGMENT_BYTES)
    expect(a.services.encode.stats.segmentBytesOut - before.out).toBe(SEGMENT_BYTES)
  })

  it('fetchSegment without a lease throws the originator\'s refusal and writes nothing', async () => {
    const lease = await claimChunk0()
    const dest = join(workDir, 'fetched', 'nolease.mkv')
    await expect(link.fetchSegment({ ...lease, leaseId: '0'.repeat(24) }, dest, timeout())).rejects.toThrow(/refused the segment: .*holds no lease/)
    expect(existsSync(dest)).toBe(false)
  })

  it('fetchSegment refuses bytes that do not match the announced SHA-256 and removes the partial file', async () => {
    const lease = await claimChunk0()
    arbiter.lieAboutSegmentHash = true
    const dest = join(workDir, 'fetched', 'corrupt.mkv')
    await expect(link.fetchSegment(lease, dest, timeout())).rejects.toThrow(/SHA-256 mismatch/)
    expect(existsSync(dest)).toBe(false)
  })
})

describe('result protocol', () => {
  it('uploadResult delivers the file to the arbiter\'s tmpPath with the right SHA-256', async () => {
    const lease = await claimChunk0()
    const result = randomBytes(600_000)
    const path = await writeTemp('result-ok.264', result)
    const before = a.services.encode.stats.resultBytesIn
    expect(await link.uploadResult(lease, path, sha256(result), timeout())).toEqual({ ok: true })
    expect(arbiter.accepted).toHaveLength(1)
    const acc = arbiter.accepted[0]!
    expect(acc).toMatchObject({ jobId: JOB, chunk: 0, peer: b.peerId.toString(), tmpPath: arbiter.slots[0], sha256: sha256(result) })
    expect(acc.bytes.equals(result)).toBe(true)
    expect(sha256(await readFile(acc.tmpPath))).toBe(sha256(result))
    expect(acc.mode).toBe(0o600)
    expect(a.services.encode.stats.resultBytesIn - before).toBe(result.length)
  })

  it('uploadResult with a wrong SHA-256 is refused, never reaches acceptResult and leaves no file', async () => {
    const lease = await claimChunk0()
    const result = randomBytes(300_000)
    const path = await writeTemp('result-badsha.264', result)
    const outcome = await link.uploadResult(lease, path, sha256(Buffer.from('something else')), timeout()).then(v => v, (e: unknown) => e as Error)
    if (outcome instanceof Error) {
      expect(outcome.message).not.toBe('')
    } else {
      expect(outcome).toMatchObject({ ok: false, code: 'bad-request' })
      if (!outcome.ok) expect(outcome.message).toMatch(/SHA-256 mismatch/)
    }
    expect(arbiter.slots).toHaveLength(1)
    await waitFor('the partial result to be removed', () => !existsSync(arbiter.slots[0]!), { timeoutMs: 3000, everyMs: 25 })
    expect(arbiter.callsTo('acceptResult')).toHaveLength(0)
    expect(logsA.some(l => l.includes('SHA-256 mismatch'))).toBe(true)
    recordTally({ section: RESULTS, fault: '300 kB upload whose bytes do not match the SHA-256 in its header (swarm layer)', happened: `${outcome instanceof Error ? 'stream ended' : 'answered bad-request (SHA-256 mismatch)'}, logged; partial file removed, never handed to the originator`, lost: 'nothing' })
  })

  it('an upload larger than maxBytes is refused with code too-large before any byte is sent', async () => {
    const lease = await claimChunk0()
    arbiter.maxBytes = 1000
    const path = await writeTemp('result-big.264', randomBytes(1001))
    const refusedBefore = a.services.encode.stats.refusedResults
    const outBefore = b.services.encode.stats.resultBytesOut
    const answer = await link.uploadResult(lease, path, sha256(await readFile(path)), timeout())
    expect(answer).toMatchObject({ ok: false, code: 'too-large' })
    expect(arbiter.slots).toHaveLength(1)
    expect(existsSync(arbiter.slots[0]!)).toBe(false)
    expect(arbiter.callsTo('acceptResult')).toHaveLength(0)
    expect(a.services.encode.stats.refusedResults).toBe(refusedBefore + 1)
    expect(b.services.encode.stats.resultBytesOut).toBe(outBefore)
    // Exactly maxBytes is fine.
    const exact = randomBytes(1000)
    expect(await link.uploadResult(lease, await writeTemp('result-exact.264', exact), sha256(exact), timeout())).toEqual({ ok: true })
    expect(arbiter.accepted[0]?.bytes.equals(exact)).toBe(true)
    recordTally({ section: RESULTS, fault: 'upload announced 1 byte over the chunk\'s size limit (swarm layer)', happened: 'refused with too-large before any byte was sent; no file written; exactly the limit is accepted', lost: 'nothing' })
  })

  it('uploadResult without a lease gets the arbiter\'s refusal', async () => {
    const lease = await claimChunk0()
    const data = randomBytes(10)
    const answer = await link.uploadResult({ ...lease, leaseId: 'e'.repeat(24) }, await writeTemp('result-nolease.264', data), sha256(data), timeout())
    expect(answer).toMatchObject({ ok: false, code: 'not-holder' })
    expect(arbiter.slots).toHaveLength(0)
  })

  it('an empty result is refused as a bad request', async () => {
    const lease = await claimChunk0()
    const answer = await link.uploadResult(lease, await writeTemp('result-empty.264', new Uint8Array(0)), sha256(new Uint8Array(0)), timeout())
    expect(answer).toMatchObject({ ok: false, code: 'bad-request' })
    expect(arbiter.callsTo('resultSlot')).toHaveLength(0)
  })
})

describe('a third peer', () => {
  it('reaches an originator it never dialled through the announced addresses, and cannot use another peer\'s lease', async () => {
    const c = await makeNode()
    try {
      expect(c.getConnections(a.peerId)).toHaveLength(0)
      const bLease = await claimChunk0()
      const cLink = c.services.encode.linkTo(a.peerId.toString(), a.getMultiaddrs().map(String))
      // C is a different authenticated peer: the arbiter sees C, not B, and refuses.
      expect(await cLink.heartbeat(bLease, { framesDone: 1, fps: 1 }, timeout())).toMatchObject({ ok: false, code: 'not-holder' })
      expect(arbiter.callsTo('renewLease').at(-1)?.[3]).toBe(c.peerId.toString())
      await expect(cLink.fetchSegment(bLease, join(workDir, 'stolen.mkv'), timeout())).rejects.toThrow(/refused/)
      expect(existsSync(join(workDir, 'stolen.mkv'))).toBe(false)
      expect(await cLink.claim(JOB, 0, timeout())).toMatchObject({ ok: false, code: 'not-open' })
      expect(c.getConnections(a.peerId).length).toBeGreaterThan(0)
      // Once B lets go, C can have it.
      expect(await link.release(bLease, 'done', timeout())).toEqual({ ok: true })
      const cClaim = await cLink.claim(JOB, 0, timeout())
      expect(cClaim).toMatchObject({ ok: true, lease: { jobId: JOB, chunk: 0, originator: a.peerId.toString() } })
      expect(arbiter.lease?.peer).toBe(c.peerId.toString())
    } finally {
      await c.stop()
    }
  })
})

// ---- hostile peers ------------------------------------------------------------------------------

/** Opens a raw stream from B to A and returns a length-prefixed view of it. */
async function rawStream (protocol = LEASE_PROTOCOL): Promise<{ stream: Stream, lp: ReturnType<typeof lpStream<Stream>> }> {
  const stream = await b.dialProtocol(addrA, protocol)
  return { stream, lp: lpStream(stream, { maxDataLength: 1024 * 1024 }) }
}

/** Reads A's one answer frame, or the error that ended the stream. */
async function answerOrError (lp: ReturnType<typeof lpStream<Stream>>, ms = 5000): Promise<{ answer?: any, error?: Error }> {
  const signal = AbortSignal.timeout(ms)
  try {
    const frame = await lp.read({ signal })
    return { answer: JSON.parse(new TextDecoder().decode(frame.subarray())) }
  } catch (err) {
    if (signal.aborted) throw new Error(`A neither answered nor closed the stream within ${ms} ms`)
    return { error: err as Error }
  }
}

async function stillServes (): Promise<void> {
  arbiter.reset()
  const answer = await link.claim(JOB, 0, timeout())
  expect(answer.ok).toBe(true)
  expect(a.getConnections(b.peerId).length).toBeGreaterThan(0)
}

describe('hostile streams', () => {
  it.each([
    ['random bytes', () => randomBytes(200)],
    ['non-UTF-8', () => Uint8Array.from([0x7b, 0x22, 0xff, 0x22, 0x7d])],
    ['JSON of the wrong shape', () => encodeFrame({ type: 'claim' })],
    ['a request of an unknown type', () => encodeFrame({ type: 'steal', jobId: JOB })],
    ['a heartbeat with a negative chunk', () => encodeFrame({ type: 'heartbeat', jobId: JOB, chunk: -1, leaseId: 'a'.repeat(24), framesDone: 0, fps: 0 })],
    ['an empty frame', () => new Uint8Array(0)],
    ['a frame over MAX_CONTROL_FRAME', () => encodeFrame({ type: 'release', jobId: JOB, chunk: 0, leaseId: 'a'.repeat(24), reason: 'r'.repeat(MAX_CONTROL_FRAME) })]
  ])('garbage on the lease protocol (%s) gets bad-request, and A keeps serving', async (what, make) => {
    const { lp } = await rawStream()
    await lp.write(make())
    const { answer, error } = await answerOrError(lp)
    expect(error).toBeUndefined()
    expect(answer).toMatchObject({ ok: false, code: 'bad-request' })
    expect(typeof answer.message).toBe('string')
    expect(arbiter.calls).toHaveLength(0)
    await stillServes()
    recordTally({ section: CLAIMS, fault: `garbage frame on the lease protocol: ${what}`, happened: `answered bad-request ("${String(answer.message).slice(0, 80)}"); nothing reached the originator; node kept serving`, lost: 'nothing' })
  })

  it('a schema-valid request padded past MAX_CONTROL_FRAME is refused; just under the limit it is served', async () => {
    const release = (pad: number): Uint8Array => {
      const body = Buffer.from(JSON.stringify({ type: 'release', jobId: JOB, chunk: 0, leaseId: 'a'.repeat(24), reason: 'r' }))
      return Buffer.concat([body, Buffer.alloc(pad - body.length, 0x20)]) // JSON allows trailing whitespace
    }
    const big = await rawStream()
    await big.lp.write(release(MAX_CONTROL_FRAME + 1))
    const refused = (await answerOrError(big.lp)).answer
    expect(refused).toMatchObject({ ok: false, code: 'bad-request' })
    expect(refused.message).toMatch(new RegExp(`${MAX_CONTROL_FRAME + 1} bytes`))
    expect(arbiter.callsTo('releaseLease')).toHaveLength(0)
    const fits = await rawStream()
    await fits.lp.write(release(MAX_CONTROL_FRAME))
    expect((await answerOrError(fits.lp)).answer).toMatchObject({ ok: false, code: 'not-holder' })
    expect(arbiter.callsTo('releaseLease')).toHaveLength(1)
    recordTally({ section: CLAIMS, fault: `schema-valid request padded with whitespace to ${MAX_CONTROL_FRAME + 1} bytes (1 over the frame limit)`, happened: 'answered bad-request naming the size; never reached the originator; exactly the limit is served', lost: 'nothing' })
  })

  it.each([
    ['chunk', CHUNK_PROTOCOL],
    ['result', RESULT_PROTOCOL]
  ])('garbage on the %s protocol gets bad-request too', async (what, protocol) => {
    const { lp } = await rawStream(protocol)
    await lp.write(encodeFrame({ jobId: 'nope', chunk: 0 }))
    const { answer } = await answerOrError(lp)
    expect(answer).toMatchObject({ ok: false, code: 'bad-request' })
    expect(answer.message).toMatch(/jobId/)
    await stillServes()
    recordTally({ section: RESULTS, fault: `malformed request on the ${what} protocol (bad job id, fields missing)`, happened: `answered bad-request ("${String(answer.message).slice(0, 80)}"); node kept serving`, lost: 'nothing' })
  })

  it('a length prefix far beyond any limit makes A drop the stream, not buffer it', async () => {
    const { stream } = await rawStream()
    // varint(1 GiB) followed by a few bytes of "payload".
    stream.send(Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x04, 1, 2, 3]))
    const { answer, error } = await answerOrError(lpStream(stream))
    // Either a polite refusal naming the problem, or a dropped stream; never a buffered payload.
    if (answer !== undefined) expect(answer).toMatchObject({ ok: false, code: 'bad-request', message: expect.stringMatching(/length/) })
    else expect(error).toBeInstanceOf(Error)
    await stillServes()
    recordTally({ section: CLAIMS, fault: 'frame length prefix of 1 GiB on the lease protocol', happened: `${answer !== undefined ? `answered bad-request ("${String(answer.message).slice(0, 60)}")` : 'stream dropped'} without buffering the payload; node kept serving`, lost: 'nothing' })
  })

  it('an endless varint gets the stream dropped (at the latest at the idle limit)', async () => {
    const { stream } = await rawStream()
    stream.send(new Uint8Array(32).fill(0xff))
    const started = Date.now()
    const { answer, error } = await answerOrError(lpStream(stream))
    // Either a polite refusal naming the problem, or a dropped stream; never a buffered payload.
    if (answer !== undefined) expect(answer).toMatchObject({ ok: false, code: 'bad-request', message: expect.stringMatching(/length/) })
    else expect(error).toBeInstanceOf(Error)
    const ms = Date.now() - started
    await stillServes()
    recordTally({ section: CLAIMS, fault: 'endless varint (32 bytes of 0xff) as a frame length on the lease protocol', happened: `${answer !== undefined ? `answered bad-request ("${String(answer.message).slice(0, 60)}")` : 'stream dropped'} after ${ms} ms; node kept serving`, lost: 'nothing' })
  })

  it('a peer that opens a stream and says nothing is cut off after the idle limit', async () => {
    const { lp } = await rawStream()
    const started = Date.now()
    const { answer, error } = await answerOrError(lp, A_IDLE_MS + 5000)
    const took = Date.now() - started
    expect(answer).toBeUndefined()
    expect(error).toBeInstanceOf(Error)
    expect(took).toBeGreaterThanOrEqual(A_IDLE_MS - 100)
    await stillServes()
    recordTally({ section: CLAIMS, fault: 'peer opens a lease stream and never sends a byte', happened: `stream cut off after ${took} ms (idle limit ${A_IDLE_MS} ms in this test); node kept serving`, lost: 'nothing' })
  })

  it('a peer that closes its side without a request gets no answer, and A keeps serving', async () => {
    const { stream, lp } = await rawStream()
    await stream.close()
    const { answer } = await answerOrError(lp)
    expect(answer).toBeUndefined()
    await stillServes()
  })

  it('a forged claim signature is refused with bad-signature', async () => {
    const signed = await signClaim(bKey, b.peerId.toString(), JOB, 0, Date.now())
    const refusedBefore = a.services.encode.stats.refusedClaims
    const { lp } = await rawStream()
    await lp.write(encodeFrame({ type: 'claim', claim: { ...signed.claim, chunk: 1 }, signature: signed.signature }))
    expect((await answerOrError(lp)).answer).toMatchObject({ ok: false, code: 'bad-signature' })
    expect(arbiter.callsTo('requestLease')).toHaveLength(0)
    expect(a.services.encode.stats.refusedClaims).toBe(refusedBefore + 1)
  })

  it('a genuine claim by another peer, relayed by B, is refused with wrong-signer', async () => {
    const cKey = await generateKeyPair('Ed25519')
    const c = peerIdFromPrivateKey(cKey).toString()
    const signed = await signClaim(cKey, c, JOB, 0, Date.now())
    const { lp } = await rawStream()
    await lp.write(encodeFrame({ type: 'claim', ...signed }))
    expect((await answerOrError(lp)).answer).toMatchObject({ ok: false, code: 'wrong-signer' })
    expect(arbiter.callsTo('requestLease')).toHaveLength(0)
  })

  it('a replayed claim is refused with replayed, and an expired one with expired', async () => {
    const signed = await signClaim(bKey, b.peerId.toString(), JOB, 0, Date.now())
    const first = await rawStream()
    await first.lp.write(encodeFrame({ type: 'claim', ...signed }))
    expect((await answerOrError(first.lp)).answer).toMatchObject({ ok: true, lease: { holder: b.peerId.toString(), jobId: JOB, chunk: 0 } })
    arbiter.reset()
    const again = await rawStream()
    await again.lp.write(encodeFrame({ type: 'claim', ...signed }))
    expect((await answerOrError(again.lp)).answer).toMatchObject({ ok: false, code: 'replayed' })
    expect(arbiter.callsTo('requestLease')).toHaveLength(0)
    const old = await signClaim(bKey, b.peerId.toString(), JOB, 0, Date.now() - 60_000)
    const late = await rawStream()
    await late.lp.write(encodeFrame({ type: 'claim', ...old }))
    expect((await answerOrError(late.lp)).answer).toMatchObject({ ok: false, code: 'expired' })
  })
})

// ---- hostile originators ------------------------------------------------------------------------

describe('a worker facing a hostile originator', () => {
  let evil: SwarmNode
  let evilKey: PrivateKey
  let respond: (request: any, lp: ReturnType<typeof lpStream<Stream>>, stream: Stream) => Promise<void>
  let evilLink: RemoteOriginatorLink

  beforeAll(async () => {
    evil = await makeNode()
    evilKey = (evil.services.encode as unknown as { components: { privateKey: PrivateKey } }).components.privateKey
    const handler = async (stream: Stream): Promise<void> => {
      const lp = lpStream(stream)
      try {
        const request = JSON.parse(new TextDecoder().decode((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray()))
        await respond(request, lp, stream)
        await stream.close()
      } catch (err) {
        stream.abort(err as Error)
      }
    }
    for (const p of [LEASE_PROTOCOL, CHUNK_PROTOCOL]) {
      await evil.unhandle(p)
      await evil.handle(p, handler)
    }
    evilLink = b.services.encode.linkTo(evil.peerId.toString(), evil.getMultiaddrs().map(String))
  })

  afterAll(async () => { await evil?.stop() })

  const leaseFor = (claim: any, over: Record<string, unknown> = {}): any => ({
    v: 1, jobId: claim.jobId, chunk: claim.chunk, holder: claim.claimant, originator: evil.peerId.toString(),
    leaseId: 'ab'.repeat(12), issuedAt: Date.now(), expiresAt: Date.now() + 30_000, ...over
  })
  const answerWith = (make: (claim: any) => Promise<unknown>): void => {
    respond = async (req, lp) => { await lp.write(encodeFrame(await make(req.claim))) }
  }

  it('accepts a well-formed lease (control case for the tests below)', async () => {
    answerWith(async claim => ({ ok: true, ...await signLease(evilKey, leaseFor(claim)) }))
    expect(await evilLink.claim(JOB, 2, timeout())).toMatchObject({ ok: true, lease: { jobId: JOB, chunk: 2, leaseId: 'ab'.repeat(12), originator: evil.peerId.toString() } })
  })

  it.each([
    ['signed by another key', async (claim: any) => ({ ok: true, ...await signLease(await generateKeyPair('Ed25519'), leaseFor(claim)) })],
    ['naming another originator', async (claim: any) => ({ ok: true, ...await signLease(evilKey, leaseFor(claim, { originator: a.peerId.toString() })) })],
    ['for another chunk', async (claim: any) => ({ ok: true, ...await signLease(evilKey, leaseFor(claim, { chunk: claim.chunk + 1 })) })],
    ['for another job', async (claim: any) => ({ ok: true, ...await signLease(evilKey, leaseFor(claim, { jobId: OTHER_JOB })) })],
    ['for another holder', async (claim: any) => ({ ok: true, ...await signLease(evilKey, leaseFor(claim, { holder: a.peerId.toString() })) })],
    ['tampered after signing', async (claim: any) => { const sl = await signLease(evilKey, leaseFor(claim)); return { ok: true, lease: { ...sl.lease, expiresAt: sl.lease.expiresAt + 1 }, signature: sl.signature } }]
  ])('a lease %s is refused', async (_what, make) => {
    answerWith(make)
    await expect(evilLink.claim(JOB, 2, timeout())).rejects.toThrow(/sent a bad lease/)
  })

  it.each([
    ['a malformed answer', async () => ({ ok: true, lease: 'yes' })],
    ['an answer with extra fields', async (claim: any) => ({ ok: true, ...await signLease(evilKey, leaseFor(claim)), admin: true })]
  ])('%s to a claim throws a ProtocolViolation', async (_what, make) => {
    answerWith(make)
    await expect(evilLink.claim(JOB, 2, timeout())).rejects.toThrow(/claim answer/)
  })

  const lease = (): ChunkLease => ({ jobId: JOB, chunk: 2, leaseId: 'ab'.repeat(12), originator: 'x', issuedAt: 0, expiresAt: 0 })
  const header = (size: number, data: Uint8Array, over: Record<string, unknown> = {}): unknown => ({ ok: true, size, sha256: sha256(data), meta: arbiter.meta, ...over })

  it('a segment with more bytes than its header announced is refused and removed', async () => {
    const data = randomBytes(1000)
    respond = async (_req, lp) => { await lp.write(encodeFrame(header(500, data.subarray(0, 500)))); await lp.write(data) }
    const dest = join(workDir, 'evil', 'more.mkv')
    await expect(evilLink.fetchSegment(lease(), dest, timeout())).rejects.toThrow(/more bytes than the 500 announced/)
    expect(existsSync(dest)).toBe(false)
  })

  it('a segment that stops short is refused and removed', async () => {
    const data = randomBytes(1000)
    respond = async (_req, lp) => { await lp.write(encodeFrame(header(2000, data))); await lp.write(data) }
    const dest = join(workDir, 'evil', 'short.mkv')
    await expect(evilLink.fetchSegment(lease(), dest, timeout())).rejects.toThrow()
    expect(existsSync(dest)).toBe(false)
  })

  it('a segment over MAX_TRANSFER_BYTES is refused before anything is written', async () => {
    respond = async (_req, lp) => { await lp.write(encodeFrame(header(MAX_TRANSFER_BYTES + 1, new Uint8Array(0)))) }
    const dest = join(workDir, 'evil', 'huge.mkv')
    await expect(evilLink.fetchSegment(lease(), dest, timeout())).rejects.toThrow(/over the .* limit/)
    expect(existsSync(dest)).toBe(false)
  })

  it('a header with a hostile pixel format is refused', async () => {
    respond = async (_req, lp) => { await lp.write(encodeFrame(header(1, Buffer.from('x'), { meta: { ...arbiter.meta, pixFmt: 'yuv420p;rm -rf /' } }))) }
    await expect(evilLink.fetchSegment(lease(), join(workDir, 'evil', 'pix.mkv'), timeout())).rejects.toThrow(/chunk header: meta\.pixFmt/)
  })

  it('a request to a silent originator ends at the caller\'s deadline', async () => {
    respond = async () => { await new Promise(resolve => setTimeout(resolve, 5000)) }
    const started = Date.now()
    await expect(evilLink.heartbeat(lease(), { framesDone: 1, fps: 1 }, AbortSignal.timeout(500))).rejects.toThrow()
    expect(Date.now() - started).toBeLessThan(3000)
  })
})
