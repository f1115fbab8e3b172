/**
 * Transfers that would fill a node's disk or CPU (issue 15, item 5), against real nodes. A is an
 * in-process daemon with a job of its own (its own worker holds one chunk at a gate, so the others
 * stay open), verifying one result at a time. H is a hostile libp2p node that holds leases the
 * honest way and then abuses the result protocol by hand; T is a second peer. HO is a hostile
 * originator that serves A's worker a segment far larger than its job could have.
 */
import { lpStream } from '@libp2p/utils'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Stream } from '@libp2p/interface'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Daemon } from '../../src/daemon/index.js'
import { encodeChunk, parseX264Settings } from '../../src/media/index.js'
import { encodeFrame, RESULT_PROTOCOL, type ChunkLease, type RemoteOriginatorLink, type SegmentMeta, type SwarmNode } from '../../src/swarm/index.js'
import { maxSegmentBytes } from '../../src/worker/index.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { hostileOriginator } from '../helpers/hostile-arbiter.js'
import { gatedOriginator, type GatedOriginator } from '../helpers/gated-originator.js'
import { encodeLie } from '../helpers/lies.js'
import { recordTally } from '../helpers/tally.js'
import { waitFor } from '../helpers/wait.js'
import { makeNode } from '../swarm/helpers.js'

const SECTION = 'Hostile input: uploads and downloads'
const JOB_SETTINGS = '--preset superfast --crf 28'

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const decode = (b: Uint8Array): any => JSON.parse(new TextDecoder().decode(b))

let fx: Fixtures
let root: string
let home: string
let A: Daemon
/** Originators started by a test of their own (a job with fresh chunks), stopped after all. */
const moreOriginators: Array<{ A: Daemon, open: () => void }> = []
let H: SwarmNode
let T: SwarmNode
let HO: SwarmNode
let addrA: Multiaddr
let linkH: RemoteOriginatorLink
let linkT: RemoteOriginatorLink
let jobId: string
const logsA: string[] = []
let openGate: () => void = () => {}
let chunkList: GatedOriginator['chunks']
let job: GatedOriginator['job']

const incoming = async (): Promise<string[]> => await readdir(join(home, 'jobs', jobId, 'incoming')).catch(() => [])

async function claimOpen (link: RemoteOriginatorLink): Promise<ChunkLease> {
  for (const c of await chunkList()) {
    if (c.state !== 'open') continue
    const got = await link.claim(jobId, c.index, AbortSignal.timeout(5000))
    if (got.ok) return got.lease
  }
  throw new Error(`no open chunk to claim: ${(await chunkList()).map(c => `${c.index} ${c.state}`).join(', ')}`)
}

/** Opens a result upload by hand and returns A's first answer (go-ahead or refusal) with the stream. */
async function rawResult (header: unknown): Promise<{ stream: Stream, answer: any }> {
  const stream = await H.dialProtocol(addrA, RESULT_PROTOCOL, { signal: AbortSignal.timeout(5000) })
  const lp = lpStream(stream, { maxDataLength: 1024 * 1024 })
  await lp.write(encodeFrame(header))
  return { stream, answer: decode((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray()) }
}

beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-uploads-'))
  await mkdir(join(root, 'h'), { recursive: true })
  const gated = await gatedOriginator(join(root, 'a'), fx.openGop10bit, JOB_SETTINGS, { log: l => logsA.push(l), leaseLimits: { verifyConcurrency: 1 } })
  ;({ A, home, jobId, chunks: chunkList, job, open: openGate } = gated)
  H = await makeNode()
  T = await makeNode()
  addrA = multiaddr(A.addresses()[0] as string)
  await H.dial(addrA)
  linkH = H.services.encode.linkTo(A.peerId, A.addresses())
  linkT = T.services.encode.linkTo(A.peerId, A.addresses())
})

afterAll(async () => {
  openGate()
  for (const o of moreOriginators) o.open()
  await Promise.allSettled(moreOriginators.map(async o => { await o.A.stop() }))
  await Promise.allSettled([H?.stop(), T?.stop(), HO?.stop()])
  await A?.stop()
  if (root !== undefined) await rm(root, { recursive: true, force: true })
})

describe('results', () => {
  it('twenty uploads at once under one lease: one is let in, the others are refused before any byte', async () => {
    const lease = await claimOpen(linkH)
    const header = { jobId, chunk: lease.chunk, leaseId: lease.leaseId, size: 100_000, sha256: sha256(randomBytes(8)) }
    const opened = await Promise.all(Array.from({ length: 20 }, async () => await rawResult(header)))
    const answers = opened.map(o => o.answer)
    // Before: twenty go-aheads, twenty files written at once (32 per connection and protocol).
    expect(answers.filter(a => a.ok === true)).toHaveLength(1)
    expect(answers.filter(a => a.ok === false && a.code === 'duplicate-upload')).toHaveLength(19)
    expect((await incoming()).length).toBeLessThanOrEqual(1)
    // The one let in never sends its bytes: once it is gone, the lease may upload again (lost bytes are not a result).
    for (const o of opened) o.stream.abort(new Error('hostile peer hangs up'))
    await waitFor('the partial upload to be removed', async () => (await incoming()).length === 0, { timeoutMs: 10_000, everyMs: 50 })
    const again = await waitFor('the lease to be free for an upload again', async () => {
      const o = await rawResult(header)
      o.stream.abort(new Error('done'))
      return o.answer.ok === true ? o.answer : undefined
    }, { timeoutMs: 10_000, everyMs: 100 })
    expect(again).toEqual({ ok: true })
    await linkH.release(lease, '', AbortSignal.timeout(5000))
    recordTally({ section: SECTION, fault: 'twenty result uploads opened at once under one lease', happened: 'one go-ahead, nineteen refused with duplicate-upload before any byte (was: twenty go-aheads); after the one was dropped the lease could upload again', lost: 'nothing' })
  })

  it('a former holder whose lease is not the most recent one is refused before any byte', async () => {
    const old = await claimOpen(linkH)
    await linkH.release(old, '', AbortSignal.timeout(5000))
    const got = await linkT.claim(jobId, old.chunk, AbortSignal.timeout(5000))
    if (!got.ok) throw new Error(got.message)
    await linkT.release(got.lease, '', AbortSignal.timeout(5000))
    const header = { jobId, chunk: old.chunk, leaseId: old.leaseId, size: 100_000, sha256: sha256(randomBytes(8)) }
    const { stream, answer } = await rawResult(header)
    stream.abort(new Error('done'))
    // Before: any past holder (of the last 16) could upload, whatever lease id it named.
    expect(answer).toMatchObject({ ok: false, code: 'lease-expired' })
    expect(await incoming()).toEqual([])
    recordTally({ section: SECTION, fault: 'upload under a lease that ended before another peer\'s lease on the same chunk', happened: 'refused with lease-expired before any byte (was: let in; any of the last 16 holders could upload)', lost: 'nothing' })
  })

  it('an upload larger than its chunk can honestly be is refused with too-large before any byte', async () => {
    const lease = await claimOpen(linkH)
    const seg = await linkH.fetchSegment(lease, join(root, 'h', 'size.mkv'), AbortSignal.timeout(10_000))
    const { frames, width, height } = seg.meta
    // Four bytes a pixel: more than lossless x264 writes for 8-bit 4:2:0 (1.5 raw), less than the old bound (8).
    const size = frames * width * height * 4
    const segmentSize = (await stat(seg.path)).size
    const { stream, answer } = await rawResult({ jobId, chunk: lease.chunk, leaseId: lease.leaseId, size, sha256: sha256(randomBytes(8)) })
    stream.abort(new Error('done'))
    expect(answer).toMatchObject({ ok: false, code: 'too-large' })
    expect(await incoming()).toEqual([])
    await linkH.release(lease, '', AbortSignal.timeout(5000))
    recordTally({ section: SECTION, fault: `result header announcing ${size} bytes (4 bytes a pixel) for a ${frames}-frame ${width}x${height} chunk whose segment is ${segmentSize} bytes`, happened: 'refused with too-large before any byte (was: let in, the bound was 8 bytes a pixel)', lost: 'nothing' })
  })

  /** An honest encode of a fetched segment, as a worker makes it. */
  async function encodeHonestly (seg: { path: string, meta: SegmentMeta }, outputPath: string): Promise<string> {
    const m = seg.meta
    return (await encodeChunk({ segmentPath: seg.path, selectFromTime: m.selectFromTime, frameCount: m.frames, settings: parseX264Settings(m.settings), frameRate: m.frameRate, sourcePixFmt: m.pixFmt, outputPath })).path
  }

  /** H takes three chunks and uploads a result for each at once (each costs a decode and a picture check), then T uploads one honest result. */
  async function floodThenHonest (kind: 'honest' | 'negate'): Promise<{ order: string[], hAnswers: Array<{ ok: boolean, code?: string }>, tAnswer: { ok: boolean } }> {
    const hLeases = [await claimOpen(linkH), await claimOpen(linkH), await claimOpen(linkH)]
    const uploads: Array<{ lease: ChunkLease, path: string, sha: string, size: number }> = []
    for (const lease of hLeases) {
      const seg = await linkH.fetchSegment(lease, join(root, 'h', `seg-${kind}-${lease.chunk}.mkv`), AbortSignal.timeout(10_000))
      const out = join(root, 'h', `${kind}-${lease.chunk}.264`)
      const path = kind === 'honest'
        ? await encodeHonestly(seg, out)
        : await encodeLie(seg.path, seg.meta.selectFromTime, seg.meta.frames, 'negate', out, { settings: seg.meta.settings, pixFmt: seg.meta.pixFmt })
      const bytes = await readFile(path)
      uploads.push({ lease, path, sha: sha256(bytes), size: bytes.length })
    }
    const tLease = await claimOpen(linkT)
    const tSeg = await linkT.fetchSegment(tLease, join(root, 'h', `t-seg-${kind}.mkv`), AbortSignal.timeout(10_000))
    const tOut = join(root, 'h', `t-${kind}.264`)
    await encodeHonestly(tSeg, tOut)
    const order: string[] = []
    const hUploads = uploads.map(async l => {
      const answer = await linkH.uploadResult(l.lease, l.path, l.sha, AbortSignal.timeout(120_000))
      order.push(`H${l.lease.chunk}`)
      return answer
    })
    // All three of H's are on A's disk, waiting for verification (or one of them in it), before T's arrives.
    await waitFor('H\'s three results to be on A\'s disk', async () => {
      let complete = order.length
      for (const f of await incoming()) {
        const chunk = Number(/^chunk-(\d+)-/.exec(f)?.[1])
        const upload = uploads.find(l => l.lease.chunk === chunk)
        if (upload !== undefined && (await stat(join(home, 'jobs', jobId, 'incoming', f)).catch(() => undefined))?.size === upload.size) complete++
      }
      return complete >= 3
    }, { timeoutMs: 20_000, everyMs: 10 })
    const tAnswer = await linkT.uploadResult(tLease, tOut, sha256(await readFile(tOut)), AbortSignal.timeout(120_000))
    order.push('T')
    return { order, hAnswers: await Promise.all(hUploads), tAnswer }
  }

  it('a peer flooding verification does not make an honest result wait behind all of its own', async () => {
    const { order, hAnswers, tAnswer } = await floodThenHonest('honest')
    expect(tAnswer).toEqual({ ok: true })
    expect(hAnswers.every(a => a.ok)).toBe(true)
    // Before: one queue in arrival order, so T's came back after all three of H's.
    expect(order.indexOf('T')).toBeLessThan(3)
    recordTally({ section: SECTION, fault: 'a peer uploads three results at once just before another peer\'s (one verification at a time)', happened: `verified in the order ${order.join(', ')}: the other peer's result took its turn after H's first (was: after all three)`, lost: 'nothing' })
  })

  it('a peer flooding wrong results is banned at the first, and the rest are refused without a decode', async () => {
    // A job with fresh chunks (the one above has none left), on an originator of its own.
    const fresh = await gatedOriginator(join(root, 'a2'), fx.openGop10bit, JOB_SETTINGS, { log: l => logsA.push(l), leaseLimits: { verifyConcurrency: 1 } })
    moreOriginators.push({ A, open: openGate })
    ;({ A, home, jobId, chunks: chunkList, job, open: openGate } = fresh)
    addrA = multiaddr(A.addresses()[0] as string)
    await H.dial(addrA)
    linkH = H.services.encode.linkTo(A.peerId, A.addresses())
    linkT = T.services.encode.linkTo(A.peerId, A.addresses())
    const { order, hAnswers, tAnswer } = await floodThenHonest('negate')
    expect(tAnswer).toEqual({ ok: true })
    const codes = hAnswers.map(a => a.ok ? 'ok' : a.code)
    // The first checked is refused, which bans H from the job; the two still waiting are refused
    // unchecked (each used to cost a decode, and the hang-up that follows a ban could cut them off unanswered).
    expect(codes.filter(c => c === 'bad-result')).toHaveLength(1)
    expect(codes.filter(c => c === 'banned')).toHaveLength(2)
    expect(logsA.filter(l => l.includes('unchecked: banned while it waited its turn'))).toHaveLength(2)
    recordTally({ section: SECTION, fault: 'a peer uploads three results that decode but show the wrong pictures, at once', happened: `answers ${codes.join(', ')} (order ${order.join(', ')}): the first checked and refused, which banned the peer; the other two refused without a decode (was: each decoded and checked)`, lost: 'nothing' })
  })
})

describe('downloads', () => {
  it('a segment larger than its announced job could have is refused by the worker before any byte', async () => {
    openGate()
    await waitFor('A\'s job to be done', async () => (await job()).state === 'done', { timeoutMs: 120_000, everyMs: 100 })
    const hostile = await hostileOriginator(A)
    HO = hostile.node
    const arbiter = hostile.arbiter
    const bigSize = 4 * 1024 * 1024
    const bigPath = join(root, 'h', 'big.mkv')
    await writeFile(bigPath, randomBytes(bigSize))
    const meta: SegmentMeta = { frames: 1, selectFromTime: 0, settings: '--preset superfast', frameRate: { num: 24, den: 1 }, pixFmt: 'yuv420p', width: 16, height: 16 }
    const totalFrames = 4
    const id = await hostile.announce(bigPath, meta, totalFrames)
    const release = await waitFor('A\'s worker to give the chunk back', () => arbiter.callsFor(id, 'releaseLease')[0], { timeoutMs: 20_000, everyMs: 50 })
    expect(release.peer).toBe(A.peerId)
    expect(arbiter.callsFor(id, 'segmentFor').length).toBeGreaterThanOrEqual(1)
    // Before: all 4 MiB were written to A's disk, then found not to be a segment.
    expect(HO.services.encode.stats.segmentBytesOut).toBe(0)
    const cap = maxSegmentBytes(meta, totalFrames)
    expect(logsA.some(l => l.includes(`segment of ${bigSize} bytes is more than the ${cap}`))).toBe(true)
    recordTally({ section: SECTION, fault: `a hostile originator serves a ${bigSize}-byte segment for a 1-frame 16x16 chunk of a ${totalFrames}-frame job`, happened: `A's worker refused it from the header (bound ${cap} bytes) before any byte was written, and gave the chunk back (was: downloaded in full)`, lost: 'nothing' })
  })

})
