/**
 * A real originator under attack. Node A is an in-process daemon (originator + worker + control
 * API) with a job of its own; H is a hostile libp2p node that speaks the swarm protocols by hand
 * (raw streams, hand-built and hand-signed frames, gossipsub publishes), T is a third peer. Every
 * hostile input must be refused with the right code while A keeps running, and A's job must still
 * complete frame-exact, encoded by A's own worker only.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey, Stream } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { shortPeer } from '../../src/log/index.js'
import { startDaemon, type Daemon, type JobStatus } from '../../src/daemon/index.js'
import { encodeChunk, parseX264Settings, verifyEncodedChunk, type EncodeChunkOptions } from '../../src/media/index.js'
import {
  CLAIM_MAX_LIFETIME_MS, CLAIM_MAX_SKEW_MS, createSwarmNode, encodeFrame, JOBS_TOPIC, LEASE_PROTOCOL, MAX_ANNOUNCEMENT_BYTES,
  MAX_TRANSFER_BYTES, RESULT_PROTOCOL, signClaim, STREAM_IDLE_TIMEOUT_MS, verifyLease,
  type JobAnnouncement, type LeaseArbiter, type ChunkLease, type RemoteOriginatorLink, type SegmentMeta, type SwarmNode
} from '../../src/swarm/index.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { decodedFrameCount } from '../helpers/media.js'
import { recordTally } from '../helpers/tally.js'
import { makeNode } from '../swarm/helpers.js'
import { prng } from '../helpers/random.js'
import { http } from '../helpers/http.js'
import { HostileArbiter } from '../helpers/hostile-arbiter.js'
import { waitFor } from '../helpers/wait.js'

const CLAIMS = 'Hostile input: claims'
const RESULTS = 'Hostile input: results'
const PUBSUB = 'Hostile input: pubsub'
const SETTINGS = 'Hostile input: settings'

const JOB_SETTINGS = '--preset superfast --crf 28'
/** A's own worker waits this long before every encode, on top of the gate below. */
const ENCODER_DELAY_MS = 300

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const decode = (b: Uint8Array): any => JSON.parse(new TextDecoder().decode(b))
const hex = (bytes: number): string => randomBytes(bytes).toString('hex')

let fx: Fixtures
let root: string
let home: string
let A: Daemon
let H: SwarmNode
let T: SwarmNode
let hKey: PrivateKey
const hostileNodes: SwarmNode[] = []
let hId: string
let addrA: Multiaddr
let linkH: RemoteOriginatorLink
let linkT: RemoteOriginatorLink
let token: string
let jobId: string
const hArbiter = new HostileArbiter()
const logsA: string[] = []
/** Segment paths A's worker was asked to encode (any job). */
const encoded: string[] = []
let openGate: () => void = () => {}
const gate = new Promise<void>(resolve => { openGate = resolve })
const pwned: string[] = []

/** H's leases on A's job, taken legitimately, used as the base of the result attacks. */
let hLease1: ChunkLease
let hLease2: ChunkLease
/** A real segment of A's job that H fetched with its lease, and its meta. */
let stolenSegment: { path: string, meta: SegmentMeta }
/** The never-ending upload, left to A's idle timeout; checked in the last test. */
let endless: Promise<{ ms: number, error?: Error, answer?: unknown, ourTimeout: boolean }> | undefined
let endlessPartial = ''
let endlessLogsBefore = 0

const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' })
const jobDir = (): string => join(home, 'jobs', jobId)
const incoming = async (): Promise<string[]> => await readdir(join(jobDir(), 'incoming')).catch(() => [])
const logsFrom = (peer: string, what: string): string[] => logsA.filter(l => l.includes(`${what} from ${shortPeer(peer)}`))

async function chunkList (): Promise<NonNullable<JobStatus['chunkList']>> {
  const r = await http(`${A.controlUrl}/v1/jobs/${jobId}`, { headers: auth() })
  expect(r.status).toBe(200)
  return (r.body as JobStatus).chunkList ?? []
}

async function openChunks (): Promise<number[]> {
  return (await chunkList()).filter(c => c.state === 'open').map(c => c.index)
}

/** One lease-protocol exchange by hand: a frame out, A's one answer frame back. */
async function rawLease (body: unknown, from: SwarmNode = H): Promise<any> {
  const stream = await from.dialProtocol(addrA, LEASE_PROTOCOL, { signal: AbortSignal.timeout(5000) })
  const lp = lpStream(stream, { maxDataLength: 1024 * 1024 })
  await lp.write(encodeFrame(body))
  const answer = decode((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray())
  await stream.close().catch(() => {})
  return answer
}

/** Opens a result upload by hand and returns A's first answer (go-ahead or refusal). */
async function rawResult (header: unknown): Promise<{ stream: Stream, lp: ReturnType<typeof lpStream<Stream>>, answer: any }> {
  const stream = await H.dialProtocol(addrA, RESULT_PROTOCOL, { signal: AbortSignal.timeout(5000) })
  const lp = lpStream(stream, { maxDataLength: 1024 * 1024 })
  await lp.write(encodeFrame(header))
  const answer = decode((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray())
  return { stream, lp, answer }
}

/**
 * A result that fails verification bans its sender (item 7, test/faults/bans.test.ts): checks H is
 * banned from A and from the job, for the reason given, then lifts the ban (as `swarm peers unban`
 * does) so that the attacks after this one still reach A's handlers.
 */
async function expectBannedThenLift (reason: RegExp): Promise<void> {
  const ban = await waitFor('A to ban H', () => A.status().banned.find(b => b.id === hId), { timeoutMs: 5000, everyMs: 50 })
  expect(ban).toMatchObject({ active: true, jobs: [jobId] })
  expect(ban.reason).toMatch(reason)
  const r = await http(`${A.controlUrl}/v1/bans/${hId}`, { method: 'DELETE', headers: auth() })
  expect(r.status).toBe(200)
  expect(A.status().banned).toEqual([])
}

async function writeTemp (name: string, bytes: Uint8Array): Promise<string> {
  const p = join(root, 'h', name)
  await writeFile(p, bytes)
  return p
}

async function expectAlive (): Promise<void> {
  const r = await http(`${A.controlUrl}/v1/status`, { headers: auth() })
  expect(r.status).toBe(200)
  expect(r.body.peerId).toBe(A.peerId)
  expect(A.status().jobs.find(j => j.id === jobId)?.state).not.toBe('failed')
}

beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-hostile-'))
  home = join(root, 'a')
  await mkdir(join(root, 'h'), { recursive: true })
  const slowEncoder = async (o: EncodeChunkOptions): ReturnType<typeof encodeChunk> => {
    encoded.push(o.segmentPath)
    // Held until the tests that need open chunks are done, then a little slow on top.
    await Promise.race([gate, new Promise((_resolve, reject) => { o.signal?.addEventListener('abort', () => { reject(new Error('aborted')) }) })])
    await sleep(ENCODER_DELAY_MS)
    return await encodeChunk(o)
  }
  A = await startDaemon({
    home, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, bootstrap: [], slots: 1, plan: { gopsPerChunk: 1 }, encoder: slowEncoder,
    log: l => logsA.push(l)
  })
  token = (JSON.parse(await readFile(join(home, 'control.json'), 'utf8')) as { token: string }).token
  hKey = await generateKeyPair('Ed25519')
  hId = peerIdFromPrivateKey(hKey).toString()
  H = await createSwarmNode({ privateKey: hKey, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, encode: { arbiter: hArbiter } })
  T = await makeNode()
  const first = A.addresses()[0]
  if (first === undefined) throw new Error('A is not listening')
  expect(first).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
  addrA = multiaddr(first)
  await H.dial(addrA)
  linkH = H.services.encode.linkTo(A.peerId, A.addresses())
  linkT = T.services.encode.linkTo(A.peerId, A.addresses())

  const added = await http(`${A.controlUrl}/v1/jobs`, { method: 'POST', headers: auth(), body: JSON.stringify({ file: fx.openGop10bit, settings: JOB_SETTINGS, output: join(root, 'out.mkv') }) })
  expect(added.status).toBe(200)
  jobId = (added.body.job as JobStatus).id
  // Split done, and A's own worker holds what it takes on at once (one slot, perhaps a prefetched
  // chunk), stuck at the gate: the other chunks stay open for the attacks.
  await waitFor('the job to be split and A\'s worker to hold its chunks', async () => {
    const before = A.status()
    const j = before.jobs.find(x => x.id === jobId)
    if (j === undefined || j.state !== 'encoding' || before.worker.active.length === 0) return false
    await sleep(500)
    const after = A.status()
    return after.worker.active.length === before.worker.active.length && after.jobs.find(x => x.id === jobId)?.chunks.leased === after.worker.active.length
  }, { timeoutMs: 120_000, everyMs: 50 }).catch((err: Error) => { throw new Error(`${err.message}; status: ${JSON.stringify(A.status().jobs)} worker: ${JSON.stringify(A.status().worker)}; log: ${logsA.slice(-10).join(' | ')}`) })
})

afterAll(async () => {
  openGate()
  await Promise.allSettled([H?.stop(), T?.stop(), ...hostileNodes.map(async n => { await n.stop() })])
  await A?.stop()
  for (const p of pwned) await rm(p, { force: true })
  if (root !== undefined) await rm(root, { recursive: true, force: true })
})

// ---- claims -------------------------------------------------------------------------------------

describe('claims', () => {
  it('the job has enough chunks for the attacks (control case)', async () => {
    const list = await chunkList()
    expect(list.length).toBeGreaterThanOrEqual(5)
    expect(list.filter(c => c.state === 'leased').every(c => c.holder === A.peerId)).toBe(true)
    expect((await openChunks()).length).toBeGreaterThanOrEqual(3)
  })

  it('a claim tampered with after signing is refused with bad-signature', async () => {
    const [o, other] = await openChunks() as [number, number]
    const signed = await signClaim(hKey, hId, jobId, o, Date.now())
    const before = logsFrom(hId, 'claim').length
    const answer = await rawLease({ type: 'claim', claim: { ...signed.claim, chunk: other }, signature: signed.signature })
    expect(answer).toMatchObject({ ok: false, code: 'bad-signature' })
    expect(logsFrom(hId, 'claim').length).toBe(before + 1)
    expect(await openChunks()).toContain(other)
    await expectAlive()
    recordTally({ section: CLAIMS, fault: 'claim to a live originator tampered after signing (chunk index changed)', happened: `refused with bad-signature, logged; chunk ${other} stayed open; A kept serving`, lost: 'nothing' })
  })

  it('a claim in H\'s name signed with another key is refused with bad-signature', async () => {
    const [o] = await openChunks() as [number]
    const forged = await signClaim(await generateKeyPair('Ed25519'), hId, jobId, o, Date.now())
    const answer = await rawLease({ type: 'claim', ...forged })
    expect(answer).toMatchObject({ ok: false, code: 'bad-signature' })
    expect(await openChunks()).toContain(o)
    recordTally({ section: CLAIMS, fault: 'claim naming the sender as claimant but signed with a stranger\'s key', happened: `refused with bad-signature; chunk ${o} stayed open`, lost: 'nothing' })
  })

  it('a genuine claim of another peer, relayed by H, is refused with wrong-signer', async () => {
    const [o] = await openChunks() as [number]
    const kKey = await generateKeyPair('Ed25519')
    const signed = await signClaim(kKey, peerIdFromPrivateKey(kKey).toString(), jobId, o, Date.now())
    const answer = await rawLease({ type: 'claim', ...signed })
    expect(answer).toMatchObject({ ok: false, code: 'wrong-signer' })
    expect(await openChunks()).toContain(o)
    recordTally({ section: CLAIMS, fault: 'validly signed claim of another peer, sent over H\'s connection', happened: `refused with wrong-signer; chunk ${o} stayed open`, lost: 'nothing' })
  })

  it('an expired claim, one with a too-long lifetime and one from the future are refused', async () => {
    const [o] = await openChunks() as [number]
    const now = Date.now()
    expect(await rawLease({ type: 'claim', ...await signClaim(hKey, hId, jobId, o, now - 60_000) })).toMatchObject({ ok: false, code: 'expired' })
    expect(await rawLease({ type: 'claim', ...await signClaim(hKey, hId, jobId, o, now, CLAIM_MAX_LIFETIME_MS + 60_000) })).toMatchObject({ ok: false, code: 'expired' })
    expect(await rawLease({ type: 'claim', ...await signClaim(hKey, hId, jobId, o, now + CLAIM_MAX_SKEW_MS + 60_000) })).toMatchObject({ ok: false, code: 'not-yet-valid' })
    expect(await openChunks()).toContain(o)
    recordTally({ section: CLAIMS, fault: 'claim issued 60 s ago (expired), and one with a lifetime past the 60 s maximum', happened: `both refused with expired; chunk ${o} stayed open`, lost: 'nothing' })
    recordTally({ section: CLAIMS, fault: `claim issued ${(CLAIM_MAX_SKEW_MS + 60_000) / 1000} s in the future`, happened: 'refused with not-yet-valid', lost: 'nothing' })
  })

  it('a replayed claim is refused with replayed, after the original won a lease', async () => {
    const [o] = await openChunks() as [number]
    const signed = await signClaim(hKey, hId, jobId, o, Date.now())
    const first = await rawLease({ type: 'claim', ...signed })
    expect(first).toMatchObject({ ok: true, lease: { jobId, chunk: o, holder: hId, originator: A.peerId } })
    // The lease A signed is genuine: H keeps it for the result attacks below.
    expect(await verifyLease({ lease: first.lease, signature: first.signature }, { originator: A.peerId, holder: hId, jobId, chunk: o })).toMatchObject({ ok: true })
    hLease1 = { jobId, chunk: o, leaseId: first.lease.leaseId, originator: A.peerId, expiresAt: first.lease.expiresAt, issuedAt: first.lease.issuedAt }
    const again = await rawLease({ type: 'claim', ...signed })
    expect(again).toMatchObject({ ok: false, code: 'replayed' })
    const chunk = (await chunkList())[o]
    expect(chunk).toMatchObject({ state: 'leased', holder: hId })
    recordTally({ section: CLAIMS, fault: 'the same signed claim sent twice (replayed nonce)', happened: `first won the lease on chunk ${o}, the replay was refused with replayed; lease unchanged`, lost: 'nothing' })
  })

  it('claims for an unknown job or an unknown chunk are refused', async () => {
    expect(await linkH.claim(hex(32), 0, AbortSignal.timeout(5000))).toMatchObject({ ok: false, code: 'unknown-job' })
    expect(await linkH.claim(jobId, 999, AbortSignal.timeout(5000))).toMatchObject({ ok: false, code: 'unknown-chunk' })
    // A chunk index past the wire limit never reaches the originator.
    const bad = await rawLease({ type: 'claim', ...await signClaim(hKey, hId, jobId, 1_000_001, Date.now()) })
    expect(bad).toMatchObject({ ok: false, code: 'bad-request' })
    await expectAlive()
    recordTally({ section: CLAIMS, fault: 'signed claim for a job A does not have', happened: 'refused with unknown-job', lost: 'nothing' })
    recordTally({ section: CLAIMS, fault: `signed claim for chunk 999 of a ${(await chunkList()).length}-chunk job (and chunk 1,000,001)`, happened: 'refused with unknown-chunk (past the wire limit: bad-request before the originator sees it)', lost: 'nothing' })
  })

  it('a chunk already leased is refused to a third peer, and to H for A\'s own chunks', async () => {
    const [o2] = await openChunks() as [number]
    const got = await linkH.claim(jobId, o2, AbortSignal.timeout(5000))
    expect(got.ok).toBe(true)
    if (!got.ok) return
    hLease2 = got.lease
    // Something is still open, so a leased chunk is not up for a backup copy either.
    expect((await openChunks()).length).toBeGreaterThanOrEqual(1)
    expect(await linkT.claim(jobId, o2, AbortSignal.timeout(5000))).toMatchObject({ ok: false, code: 'not-open' })
    const aChunks = (await chunkList()).filter(c => c.holder === A.peerId).map(c => c.index)
    expect(aChunks.length).toBeGreaterThanOrEqual(1)
    for (const c of aChunks) expect(await linkH.claim(jobId, c, AbortSignal.timeout(5000))).toMatchObject({ ok: false, code: 'not-open' })
    const list = await chunkList()
    expect(list[o2]).toMatchObject({ state: 'leased', holder: hId })
    for (const c of aChunks) expect(list[c]).toMatchObject({ state: 'leased', holder: A.peerId })
    recordTally({ section: CLAIMS, fault: 'claim for a chunk another peer holds (third peer on H\'s chunk, H on A\'s own)', happened: `refused with not-open (${1 + aChunks.length} of ${1 + aChunks.length}); holders unchanged`, lost: 'nothing' })
  })
})

// ---- results ------------------------------------------------------------------------------------

describe('results', () => {
  it('an upload from a peer without the lease, using H\'s lease id, is refused with not-holder', async () => {
    const data = randomBytes(50_000)
    const answer = await linkT.uploadResult(hLease1, await writeTemp('stolen.264', data), sha256(data), AbortSignal.timeout(10_000))
    expect(answer).toMatchObject({ ok: false, code: 'not-holder' })
    expect(await incoming()).toEqual([])
    expect((await chunkList())[hLease1.chunk]?.state).not.toBe('done')
    recordTally({ section: RESULTS, fault: 'result upload from a peer that never held the chunk (with the holder\'s lease id)', happened: 'refused with not-holder before any byte; nothing written to incoming/', lost: 'nothing' })
  })

  it('an upload whose bytes do not match the announced SHA-256 is refused and leaves no file', async () => {
    const data = randomBytes(300_000)
    const before = logsFrom(hId, 'result stream').length
    const answer = await linkH.uploadResult(hLease1, await writeTemp('badsha.264', data), sha256(Buffer.from('something else')), AbortSignal.timeout(10_000))
    expect(answer).toMatchObject({ ok: false, code: 'bad-request' })
    if (!answer.ok) expect(answer.message).toMatch(/SHA-256 mismatch/)
    expect(await incoming()).toEqual([])
    expect(logsFrom(hId, 'result stream').slice(before).some(l => l.includes('SHA-256 mismatch'))).toBe(true)
    expect((await chunkList())[hLease1.chunk]?.state).not.toBe('done')
    recordTally({ section: RESULTS, fault: '300 kB result whose SHA-256 does not match the header', happened: 'refused with bad-request (SHA-256 mismatch), logged; partial file removed, incoming/ empty; chunk not done', lost: 'nothing' })
  })

  it('garbage bytes with a correct SHA-256 are refused as bad-result and the chunk is not done', async () => {
    // A lease of its own: a refused result ends the lease it was made under (hLease1 serves the tests below).
    const [o] = await openChunks() as [number]
    const got = await linkH.claim(jobId, o, AbortSignal.timeout(5000))
    if (!got.ok) throw new Error(got.message)
    const lease = got.lease
    const data = randomBytes(200_000)
    const started = Date.now()
    const answer = await linkH.uploadResult(lease, await writeTemp('garbage.264', data), sha256(data), AbortSignal.timeout(30_000))
    const ms = Date.now() - started
    expect(answer).toMatchObject({ ok: false, code: 'bad-result' })
    expect(await incoming()).toEqual([])
    expect(existsSync(join(jobDir(), 'results', `chunk-${lease.chunk}.264`))).toBe(false)
    expect((await chunkList())[lease.chunk]?.state).not.toBe('done')
    expect(logsA.some(l => l.includes(`refused result for ${jobId.slice(0, 8)}#${lease.chunk} from ${shortPeer(hId)}`))).toBe(true)
    await expectBannedThenLift(/^failed verification: result for chunk \d+: /)
    recordTally({ section: RESULTS, fault: '200 kB of random bytes (not H.264) with their correct SHA-256, from the leaseholder', happened: `refused with bad-result by the parse of its NAL units (${ms} ms), logged; chunk not done, nothing kept; H banned from the job and the node`, lost: 'nothing' })
  })

  it('a real H.264 with too few frames is refused as bad-result', async () => {
    const dest = join(root, 'h', `segment-${hLease2.chunk}.mkv`)
    const seg = await linkH.fetchSegment(hLease2, dest, AbortSignal.timeout(10_000))
    stolenSegment = { path: join(root, 'h', 'kept-segment.mkv'), meta: seg.meta }
    await copyFile(seg.path, stolenSegment.path)
    const short = seg.meta.frames - 8
    const out = join(root, 'h', 'short.264')
    await encodeChunk({
      segmentPath: seg.path, selectFromTime: seg.meta.selectFromTime, frameCount: short, settings: parseX264Settings(seg.meta.settings),
      frameRate: seg.meta.frameRate, sourcePixFmt: seg.meta.pixFmt, outputPath: out
    })
    // It really is a valid H.264 chunk, just not the chunk's frame count.
    expect((await verifyEncodedChunk(out, { frameCount: short, width: seg.meta.width, height: seg.meta.height })).codec).toBe('h264')
    const answer = await linkH.uploadResult(hLease2, out, sha256(await readFile(out)), AbortSignal.timeout(30_000))
    expect(answer).toMatchObject({ ok: false, code: 'bad-result' })
    if (!answer.ok) expect(answer.message).toContain(`holds ${short} frames, expected ${seg.meta.frames}`)
    expect((await chunkList())[hLease2.chunk]?.state).not.toBe('done')
    expect(await incoming()).toEqual([])
    await expectBannedThenLift(new RegExp(`holds ${short} frames, expected ${seg.meta.frames}`))
    recordTally({ section: RESULTS, fault: `valid H.264 of ${short} frames for a ${seg.meta.frames}-frame chunk (x264 on the real segment)`, happened: `refused with bad-result ("holds ${short} frames, expected ${seg.meta.frames}"); chunk not done; H banned from the job and the node`, lost: 'nothing' })
  })

  it('an upload announced larger than the size limit is refused with too-large before any byte', async () => {
    for (const size of [2 ** 30, MAX_TRANSFER_BYTES + 1]) {
      const { stream, answer } = await rawResult({ jobId, chunk: hLease1.chunk, leaseId: hLease1.leaseId, size, sha256: 'a'.repeat(64) })
      expect(answer).toMatchObject({ ok: false, code: 'too-large' })
      await stream.close().catch(() => {})
    }
    expect(await incoming()).toEqual([])
    await expectAlive()
    const frames = (await chunkList())[hLease1.chunk]?.frames ?? 0
    recordTally({ section: RESULTS, fault: `result header announcing 1 GiB, and 8 GiB + 1 byte (MAX_TRANSFER_BYTES + 1), for a ${frames}-frame chunk`, happened: 'both refused with too-large before any data; nothing written', lost: 'nothing' })
  })

  it('an upload that stops halfway and is then abandoned by H leaves no file behind', async () => {
    const { stream, lp, answer } = await rawResult({ jobId, chunk: hLease1.chunk, leaseId: hLease1.leaseId, size: 200_000, sha256: sha256(randomBytes(8)) })
    expect(answer).toEqual({ ok: true })
    await lp.write(randomBytes(100_000))
    // The file is created when the upload is accepted; its bytes are written when an acknowledgement
    // falls due (every MiB) or at the end, so these 100 kB are held, not yet on disk.
    const partial = await waitFor('the partial upload\'s file in incoming/', async () => {
      const files = await incoming()
      return files.length === 1 ? files[0] : undefined
    }, { timeoutMs: 5000, everyMs: 50 })
    const started = Date.now()
    stream.abort(new Error('hostile peer hangs up'))
    await waitFor('the partial file to be removed', async () => (await incoming()).length === 0, { timeoutMs: 5000, everyMs: 50 })
    const ms = Date.now() - started
    expect(existsSync(join(jobDir(), 'incoming', partial as string))).toBe(false)
    expect((await chunkList())[hLease1.chunk]?.state).not.toBe('done')
    await expectAlive()
    recordTally({ section: RESULTS, fault: 'upload announcing 200 kB, 100 kB sent, then the stream reset by the sender', happened: `A dropped it and removed the partial file within ${ms} ms; chunk not done`, lost: 'nothing' })
  })

  it('an upload that never ends is left running into A\'s idle timeout (checked at the end of the file)', async () => {
    const { lp, answer } = await rawResult({ jobId, chunk: hLease1.chunk, leaseId: hLease1.leaseId, size: 200_000, sha256: sha256(randomBytes(8)) })
    expect(answer).toEqual({ ok: true })
    await lp.write(randomBytes(100_000))
    endlessPartial = await waitFor('the partial upload to land in incoming/', async () => (await incoming())[0], { timeoutMs: 5000, everyMs: 50 })
    endlessLogsBefore = logsFrom(hId, 'result stream').length
    const t0 = Date.now()
    const signal = AbortSignal.timeout(STREAM_IDLE_TIMEOUT_MS + 15_000)
    // H now says nothing at all; A should reset the stream after its idle limit.
    endless = lp.read({ signal }).then(
      f => ({ ms: Date.now() - t0, answer: decode(f.subarray()), ourTimeout: false }),
      (err: Error) => ({ ms: Date.now() - t0, error: err, ourTimeout: signal.aborted })
    )
    expect(endlessPartial).toMatch(new RegExp(`^chunk-${hLease1.chunk}-`))
  })
})

// ---- the job still completes ---------------------------------------------------------------------

describe('A\'s job, under attack', () => {
  it('a claim and an upload for a chunk already done are refused with already-done', async () => {
    openGate()
    const done = await waitFor('A\'s worker to finish a chunk', async () => (await chunkList()).find(c => c.state === 'done'), { everyMs: 50 })
    expect(A.status().jobs.find(j => j.id === jobId)?.state).toBe('encoding')
    expect(await linkH.claim(jobId, done.index, AbortSignal.timeout(5000))).toMatchObject({ ok: false, code: 'already-done' })
    const data = randomBytes(10_000)
    const answer = await linkH.uploadResult({ ...hLease1, chunk: done.index }, await writeTemp('late.264', data), sha256(data), AbortSignal.timeout(10_000))
    expect(answer).toMatchObject({ ok: false, code: 'already-done' })
    expect((await chunkList())[done.index]).toMatchObject({ state: 'done', encodedBy: A.peerId })
    recordTally({ section: CLAIMS, fault: 'claim for a chunk already done', happened: 'refused with already-done', lost: 'nothing' })
    recordTally({ section: RESULTS, fault: 'result upload for a chunk already done (by A)', happened: 'refused with already-done before any byte; A\'s verified result kept', lost: 'nothing' })
  })

  it('completes frame-exact, every chunk encoded by A itself', async () => {
    // H lets go of its two chunks (as a worker that gives up would); A's own worker takes them.
    for (const lease of [hLease1, hLease2]) {
      const r = await linkH.release(lease, '', AbortSignal.timeout(5000))
      expect(r.ok || ['lease-expired', 'not-holder'].includes(r.code)).toBe(true)
    }
    const job = await waitFor('the job to finish', () => {
      const j = A.status().jobs.find(x => x.id === jobId)
      return j !== undefined && (j.state === 'done' || j.state === 'failed') ? j : undefined
    }, { timeoutMs: 60_000, everyMs: 50 })
    expect(job.error).toBeUndefined()
    expect(job.state).toBe('done')
    expect(job.encodedBy).toEqual({ [A.peerId]: job.chunks.total })
    expect(job.output).not.toBeNull()
    expect(await decodedFrameCount(job.output as string)).toBe(240)
    expect(encoded.filter(p => p.includes(jobId))).toHaveLength(job.chunks.total)
    recordTally({ section: RESULTS, fault: 'all of the claim and result attacks above, against one originator with a live job', happened: `job of ${job.chunks.total} chunks completed frame-exact (240/240 frames decoded), every chunk encoded and verified by A itself; A logged ${logsA.filter(l => l.includes(shortPeer(hId)) && l.includes('refused')).length} refusals naming H`, lost: 'nothing' })
  })
})

// ---- settings -----------------------------------------------------------------------------------

describe('settings', () => {
  beforeAll(async () => {
    // H joins the jobs topic like any peer would.
    H.services.pubsub.subscribe(JOBS_TOPIC)
    await waitFor('H to see A on the jobs topic', () => H.services.pubsub.getSubscribers(JOBS_TOPIC).some(p => p.toString() === A.peerId), { timeoutMs: 20_000, everyMs: 50 })
  })

  const hAnnouncement = (id: string, settings: string, over: Partial<JobAnnouncement> = {}): JobAnnouncement => ({
    v: 1, type: 'job', jobId: id, originator: hId, seq: Date.now(), state: 'encoding', name: 'pwn.mkv', settings,
    totalFrames: 192, chunks: { total: 4, open: 4, leased: 0, done: 0 }, open: [[0, 4]],
    addrs: H.getMultiaddrs().map(a => a.toString().replace(`/p2p/${hId}`, '')),
    ...over
  })

  it.each([
    ['--output', (f: string) => `--preset superfast --output ${f}`, '.264'],
    ['--dump-yuv', (f: string) => `--preset superfast --dump-yuv ${f}`, '.yuv']
  ])('a job of H\'s whose announced settings carry %s is never claimed by A, and writes no file', async (option, make, ext) => {
    const target = `/tmp/pwned-${hex(6)}${ext}`
    pwned.push(target)
    const settings = make(target)
    const id = hex(32)
    const segment = await readFile(stolenSegment.path)
    hArbiter.armed.set(id, { path: stolenSegment.path, size: segment.length, sha256: sha256(segment), meta: { ...stolenSegment.meta, settings } })
    const encodesBefore = encoded.length
    await H.services.pubsub.publish(JOBS_TOPIC, encodeFrame(hAnnouncement(id, settings)))
    // A hears of the job (it lists it) but its worker checks the announced settings before claiming.
    await waitFor('A to list H\'s job', () => A.status().jobs.find(j => j.id === id), { timeoutMs: 15_000, everyMs: 50 })
    await sleep(1500)
    expect(hArbiter.callsFor(id, 'requestLease')).toHaveLength(0)
    expect(hArbiter.callsFor(id, 'segmentFor')).toHaveLength(0)
    expect(encoded.length).toBe(encodesBefore)
    expect(existsSync(target)).toBe(false)
    expect(existsSync(join(home, 'work', id))).toBe(false)
    await expectAlive()
    recordTally({
      section: SETTINGS,
      fault: `H announces a job with settings "${option} /tmp/pwned-…${ext}" (a worker-side check, not swarm add's)`,
      happened: 'A listed the job but its worker refused the announced settings before claiming: 0 claims, 0 segment downloads, 0 encodes; no file written',
      lost: 'nothing'
    })
  })

  it.each([
    ['--output', (f: string) => `--preset superfast --output ${f}`, '.264'],
    ['--dump-yuv', (f: string) => `--preset superfast --dump-yuv ${f}`, '.yuv']
  ])('a job of H\'s announced with clean settings but served with %s in the segment is refused before any encode', async (option, make, ext) => {
    const target = `/tmp/pwned-${hex(6)}${ext}`
    pwned.push(target)
    const id = hex(32)
    const segment = await readFile(stolenSegment.path)
    hArbiter.armed.set(id, { path: stolenSegment.path, size: segment.length, sha256: sha256(segment), meta: { ...stolenSegment.meta, settings: make(target) } })
    const encodesBefore = encoded.length
    await H.services.pubsub.publish(JOBS_TOPIC, encodeFrame(hAnnouncement(id, '--preset superfast')))
    // A claims (H grants), fetches the segment, and must refuse the settings in it before encoding.
    const release = await waitFor('A\'s worker to give the chunk back', () => hArbiter.callsFor(id, 'releaseLease')[0], { timeoutMs: 15_000, everyMs: 50 })
    expect(release.peer).toBe(A.peerId)
    expect(release.reason).toContain(option)
    await sleep(1500)
    const claims = hArbiter.callsFor(id, 'requestLease')
    // It claimed no more than it takes on at once, gave each back naming the option, then stopped
    // claiming the job: it knows it cannot encode these settings.
    expect(claims.length).toBeGreaterThanOrEqual(1)
    expect(claims.length).toBeLessThanOrEqual(2)
    expect(hArbiter.callsFor(id, 'releaseLease')).toHaveLength(claims.length)
    expect(hArbiter.callsFor(id, 'releaseLease').every(r => r.reason?.includes(option) === true)).toBe(true)
    expect(encoded.length).toBe(encodesBefore)
    expect(A.status().worker.active.filter(t => t.jobId === id)).toEqual([])
    expect(existsSync(target)).toBe(false)
    expect(existsSync(join(home, 'work', id))).toBe(false)
    expect(hArbiter.callsFor(id, 'resultSlot')).toHaveLength(0)
    await expectAlive()
    recordTally({
      section: SETTINGS,
      fault: `H announces clean settings but serves the segment with "${option} /tmp/pwned-…${ext}" in its metadata`,
      happened: `A's worker claimed ${claims.length}, refused the served settings from the segment's header, before its download and any encode, and released them ("${release.reason?.slice(0, 90) ?? ''}…"), then claimed nothing more of that job; no file, 0 encodes`,
      lost: 'nothing'
    })
  })
})

// ---- pubsub -------------------------------------------------------------------------------------

describe('pubsub', () => {
  const rejectedFromH = (): number => logsA.filter(l => l.startsWith(`swarm: rejected an announcement from ${shortPeer(hId)}`)).length
  const rejectedBySize = (): number => logsA.filter(l => /^swarm: rejected a \d+-byte announcement/.test(l)).length
  const jobIds = (): string[] => A.status().jobs.map(j => j.id)
  const validFromH = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
    v: 1, type: 'job', jobId: hex(32), originator: hId, seq: Date.now(), state: 'encoding', name: 'x.mkv', settings: '--crf 20',
    totalFrames: 10, chunks: { total: 1, open: 0, leased: 0, done: 0 }, open: [], addrs: [], ...over
  })

  it('an announcement and a withdrawal forged in A\'s name are rejected', async () => {
    const before = { jobs: jobIds(), rejected: rejectedFromH() }
    const forgedId = hex(32)
    await H.services.pubsub.publish(JOBS_TOPIC, encodeFrame(validFromH({ jobId: forgedId, originator: A.peerId, chunks: { total: 1, open: 1, leased: 0, done: 0 }, open: [[0, 1]] })))
    await H.services.pubsub.publish(JOBS_TOPIC, encodeFrame({ v: 1, type: 'gone', jobId, originator: A.peerId, seq: Number.MAX_SAFE_INTEGER }))
    await waitFor('A to reject both', () => rejectedFromH() >= before.rejected + 2, { timeoutMs: 10_000, everyMs: 50 })
    expect(logsA.filter(l => l.includes(`from ${shortPeer(hId)} in the name of ${shortPeer(A.peerId)}`)).length).toBeGreaterThanOrEqual(2)
    expect(jobIds()).toEqual(before.jobs)
    expect(jobIds()).not.toContain(forgedId)
    expect(A.status().jobs.find(j => j.id === jobId)).toMatchObject({ state: 'done', local: true })
    recordTally({ section: PUBSUB, fault: 'signed announcement of a new job in A\'s name (originator = A\'s peer id), published by H', happened: 'rejected by A\'s topic validator ("in the name of"), logged; A lists no such job', lost: 'nothing' })
    recordTally({ section: PUBSUB, fault: 'withdrawal of A\'s own job in A\'s name, published by H', happened: 'rejected by A\'s topic validator; A\'s job still listed', lost: 'nothing' })
  })

  /**
   * A hostile pubsub peer with a clean record at A. Each attack on A's score gets its own: A scores
   * invalid messages as the square of their count (times -10, decaying slowly) and caches scores
   * between heartbeats, so a peer that was already rejected earlier in this file may reach the
   * graylist after its first new rejection or only after many, depending on when A's heartbeat
   * falls. A fresh peer is always validated for exactly its first three (-90 < -80).
   */
  const freshPubsubPeer = async (): Promise<{ node: Awaited<ReturnType<typeof createSwarmNode>>, id: string, rejected: () => number }> => {
    const key = await generateKeyPair('Ed25519')
    const node = await createSwarmNode({ privateKey: key, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, encode: { arbiter: hArbiter } })
    hostileNodes.push(node)
    await node.dial(addrA)
    node.services.pubsub.subscribe(JOBS_TOPIC)
    const id = peerIdFromPrivateKey(key).toString()
    // Seeing A subscribed is not enough: until gossipsub's next heartbeat grafts A into the peer's
    // mesh, what it publishes may reach nobody. A genuine announcement A lists proves the path.
    const probe = hex(32)
    await waitFor('A to list an announcement of the fresh peer', async () => {
      await node.services.pubsub.publish(JOBS_TOPIC, encodeFrame(validFromH({ originator: id, jobId: probe, seq: Date.now() }))).catch(() => {})
      return jobIds().includes(probe) ? true : await sleep(250).then(() => jobIds().includes(probe))
    }, { timeoutMs: 20_000, everyMs: 0 })
    return { node, id, rejected: () => logsA.filter(l => l.startsWith(`swarm: rejected an announcement from ${shortPeer(id)}`)).length }
  }

  it('2,000 random and malformed payloads: the first are rejected, then the sender is graylisted and the rest dropped unread; A lists no job from them', async () => {
    const { node: H3, id: h3Id, rejected: rejectedFromH3 } = await freshPubsubPeer()
    const fromH3 = (over: Record<string, unknown> = {}): Record<string, unknown> => validFromH({ originator: h3Id, ...over })
    const rnd = prng(0x0b5e55ed)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T
    const alphabet = Buffer.from('{}[]":,0123456789-.eE truefalsnul\\"vtypejobgone')
    const INVALID: Record<string, unknown[]> = {
      v: [0, 2, '1', null], type: ['jobs', '', null], jobId: ['', 'ab', '../../etc/passwd', 7], seq: [-1, 0.5, '1'],
      state: ['', 'paused'], name: ['n'.repeat(513), null], settings: ['s'.repeat(4097), []], totalFrames: [-1, 0.1],
      chunks: [null, { total: 1 }], open: [[[1, 1]], [[0, 1_000_001]], 'all'], addrs: ['a', Array.from({ length: 17 }, () => 'a')],
      originator: ['', 'x', '0'.repeat(40)]
    }
    const valid = Buffer.from(JSON.stringify(fromH3()))
    const payloads: Uint8Array[] = []
    for (let i = 0; i < 2000; i++) {
      const kind = i % 5
      if (kind === 0) {
        payloads.push(randomBytes(1 + Math.floor(rnd() * 400)))
      } else if (kind === 1) {
        const b = new Uint8Array(1 + Math.floor(rnd() * 300))
        for (let j = 0; j < b.length; j++) b[j] = alphabet[Math.floor(rnd() * alphabet.length)] as number
        payloads.push(b)
      } else if (kind === 2) {
        const field = pick(Object.keys(INVALID))
        payloads.push(encodeFrame({ ...fromH3(), [field]: pick(INVALID[field] as unknown[]) }))
      } else if (kind === 3) {
        // A valid announcement cut short: never closed, never JSON.
        payloads.push(Uint8Array.from(valid.subarray(0, 1 + Math.floor(rnd() * (valid.length - 2)))))
      } else {
        // Schema-valid, but in the name of some other peer.
        payloads.push(encodeFrame(fromH3({ originator: pick([A.peerId, T.peerId.toString(), hId]) })))
      }
    }
    const before = { jobs: jobIds(), rejected: rejectedFromH3() }
    const started = Date.now()
    /** A's count of rejections stops growing: it has read all it will of what was sent. */
    const settle = async (what: string): Promise<void> => {
      let settled = rejectedFromH3()
      await waitFor(what, async () => {
        await sleep(1000)
        const now = rejectedFromH3()
        const still = now === settled
        settled = now
        return still
      }, { timeoutMs: 60_000, everyMs: 0 })
    }
    // Each rejection scores the sender down (the square of its count, times -10): past the graylist
    // A drops its messages unread, so the count stops growing long before 2,000. A peer's score is
    // cached for a heartbeat (1 s): sent in one burst, 2,000 messages can all arrive within it on a
    // busy machine, so they go in batches of 200, each after A settled on the last.
    for (let at = 0; at < payloads.length; at += 200) {
      for (const p of payloads.slice(at, at + 200)) await H3.services.pubsub.publish(JOBS_TOPIC, p)
      if (at === 0) {
        await waitFor('A to have rejected the first three payloads', () => rejectedFromH3() >= before.rejected + 3, { timeoutMs: 30_000, everyMs: 50 })
          .catch((err: Error) => { throw new Error(`${err.message}; A rejected ${rejectedFromH3() - before.rejected}; the sender's pubsub peers: [${H3.services.pubsub.getPeers().map(p => shortPeer(p.toString())).join(' ')}], A subscribed in its view: ${H3.services.pubsub.getSubscribers(JOBS_TOPIC).some(p => p.toString() === A.peerId)}`) })
      }
      await settle(`A to stop validating H's messages (${at + 200} sent)`)
    }
    const ms = Date.now() - started
    const validated = rejectedFromH3() - before.rejected
    expect(validated).toBeGreaterThanOrEqual(3)
    expect(validated).toBeLessThan(payloads.length)
    expect(jobIds()).toEqual(before.jobs)
    await expectAlive()
    // Graylisted now: even a genuine announcement of its own is dropped unread.
    const genuine = hex(32)
    await H3.services.pubsub.publish(JOBS_TOPIC, encodeFrame(fromH3({ jobId: genuine })))
    await sleep(2000)
    expect(jobIds()).not.toContain(genuine)
    expect(rejectedFromH3() - before.rejected).toBe(validated)
    recordTally({ section: PUBSUB, fault: `${payloads.length.toLocaleString('en-US')} gossipsub messages from one peer: random bytes, JSON-ish noise, announcements with one bad field, truncated announcements, announcements in other peers' names`, happened: `the first ${validated} were rejected by A's topic validator and logged; the sender's score then fell below the graylist and the other ${payloads.length - validated} were dropped unread (${ms} ms); A listed none, kept running, and dropped the sender's next, genuine announcement too`, lost: 'nothing' })
  })

  it('oversized messages are rejected without being parsed, and A keeps running', async () => {
    // A fresh peer: two invalid messages cost it little.
    const { node: H2, id: h2Id } = await freshPubsubPeer()
    const fromH2 = (over: Record<string, unknown> = {}): Record<string, unknown> => validFromH({ originator: h2Id, ...over })
    const before = { jobs: jobIds(), size: rejectedBySize() }
    // A valid announcement in H2's own name, padded with JSON whitespace one byte past the limit.
    const id = hex(32)
    const base = encodeFrame(fromH2({ jobId: id }))
    const padded = new Uint8Array(MAX_ANNOUNCEMENT_BYTES + 1).fill(0x20)
    padded.set(base)
    await H2.services.pubsub.publish(JOBS_TOPIC, padded)
    await waitFor('A to reject the padded announcement', () => rejectedBySize() >= before.size + 1, { timeoutMs: 10_000, everyMs: 50 })
    expect(logsA.some(l => l.includes(`rejected a ${MAX_ANNOUNCEMENT_BYTES + 1}-byte announcement`))).toBe(true)
    expect(jobIds()).not.toContain(id)
    // Three times the limit: still within gossipsub's own inbound cap, so our validator sees and rejects it.
    const hugeId = hex(32)
    const huge = new Uint8Array(MAX_ANNOUNCEMENT_BYTES * 3).fill(0x20)
    huge.set(encodeFrame(fromH2({ jobId: hugeId })))
    await H2.services.pubsub.publish(JOBS_TOPIC, huge).catch(() => {})
    await waitFor('A to reject the huge announcement', () => rejectedBySize() >= before.size + 2, { timeoutMs: 10_000, everyMs: 50 })
    expect(jobIds()).not.toContain(hugeId)
    expect(jobIds()).toEqual(before.jobs)
    // H2 is still a pubsub peer of A: a genuine announcement afterwards gets through.
    const afterId = hex(32)
    await H2.services.pubsub.publish(JOBS_TOPIC, encodeFrame(fromH2({ jobId: afterId })))
    await waitFor('A to list H2\'s next announcement', () => jobIds().includes(afterId) ? true : undefined, { timeoutMs: 10_000, everyMs: 50 })
    await expectAlive()
    recordTally({ section: PUBSUB, fault: `valid announcement padded to ${MAX_ANNOUNCEMENT_BYTES + 1} bytes, and one of ${MAX_ANNOUNCEMENT_BYTES * 3} bytes`, happened: 'both rejected on size by A\'s validator (logged, never parsed), neither listed; H stayed a pubsub peer (its next announcement arrived); A kept running', lost: 'nothing' })
  })
})

// ---- the never-ending upload --------------------------------------------------------------------

describe('a stream that never ends', () => {
  it('is dropped by A after its idle timeout, and the partial file is gone', async () => {
    expect(endless).toBeDefined()
    const outcome = await (endless as NonNullable<typeof endless>)
    expect(outcome.ourTimeout).toBe(false)
    expect(outcome.answer).toBeUndefined()
    expect(outcome.error).toBeInstanceOf(Error)
    expect(outcome.ms).toBeGreaterThanOrEqual(STREAM_IDLE_TIMEOUT_MS - 1000)
    expect(outcome.ms).toBeLessThan(STREAM_IDLE_TIMEOUT_MS + 10_000)
    const logged = await waitFor('A to log the dropped stream', () => logsFrom(hId, 'result stream').slice(endlessLogsBefore)[0], { timeoutMs: 5000, everyMs: 50 })
    expect(existsSync(join(jobDir(), 'incoming', endlessPartial))).toBe(false)
    await expectAlive()
    recordTally({ section: RESULTS, fault: 'upload announcing 200 kB, 100 kB sent, then silence with the stream left open', happened: `A reset the stream after ${(outcome.ms / 1000).toFixed(1)} s of silence (idle limit ${STREAM_IDLE_TIMEOUT_MS / 1000} s), logged "${logged.replace(/^.*refused: /, '').slice(0, 60)}"; partial file gone`, lost: 'nothing' })
  })
})
