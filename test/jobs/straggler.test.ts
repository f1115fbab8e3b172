import { execa } from 'execa'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { localLink } from '../../src/daemon/local-link.js'
import { Originator, type JobRecord } from '../../src/jobs/index.js'
import { JobFolder } from '../../src/jobs/job-folder.js'
import { plannedRanges } from '../../src/jobs/originator.js'
import { splitSource } from '../../src/jobs/splitter.js'
import { logger } from '../../src/log/index.js'
import { grantSplitPoint, splitPoint } from '../../src/jobs/straggler.js'
import { encodeChunk, parseX264Settings, prepareSource, probeMedia, type Segment } from '../../src/media/index.js'
import type { NodeEvent, NodeEventOf } from '../../src/swarm/index.js'
import { Worker, type OriginatorLink } from '../../src/worker/index.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { waitFor } from '../helpers/wait.js'

describe('splitPoint', () => {
  const at = { framesPiped: 10, frames: 300, framesDone: 0, fps: 0 }
  const options = { peerSecondsPerFrame: 0.1, frameRate: 24, preroll: 0 }

  it('gives an idle peer of the same pace about half of what is left, less its start and its pre-roll', () => {
    // Own pace unknown (nothing done yet): taken to be the job's. Own keeps a, the peer pays
    // 2.5 s, decodes a frames at 10 ms and encodes 300 - a at 100 ms: a = (2.5 + 30) / 0.19.
    expect(splitPoint(at, options)).toBe(172)
    // The own encode measured at 20 fps, twice the job's pace: it keeps about two thirds.
    expect(splitPoint({ framesPiped: 60, frames: 300, framesDone: 40, fps: 20 }, options)).toBe(40 + Math.ceil((2.5 + 40 * 0.01 + 260 * 0.1) / (0.05 + 0.1 - 0.01)))
  })

  it('takes this node\'s pace on the job\'s earlier chunks until its encode has measured one on this chunk', () => {
    // Twice as slow as the peers (its core also checks their results): (2.5 + 30) / (0.2 + 0.1 - 0.01).
    expect(splitPoint(at, { ...options, ownSecondsPerFrame: 0.2 })).toBe(113)
    // Once it has done a tenth of the chunk, its own pace on it counts.
    expect(splitPoint({ framesPiped: 60, frames: 300, framesDone: 40, fps: 20 }, { ...options, ownSecondsPerFrame: 0.2 })).toBe(247)
  })

  it('never ends the encode before a frame its encoder already has', () => {
    expect(splitPoint({ ...at, framesPiped: 200 }, options)).toBe(200)
  })

  it('does not split when the rest would be too short or the chunk end too little sooner', () => {
    // The encoder was handed all but 20 frames (under a second at 24 fps).
    expect(splitPoint({ ...at, framesPiped: 280 }, options)).toBeUndefined()
    // 300 frames left at 20 ms a frame: 6 s to go, and a split would end them 1.4 s sooner.
    const quick = { framesPiped: 100, frames: 400, framesDone: 100, fps: 50 }
    expect(splitPoint(quick, { ...options, peerSecondsPerFrame: 0.02 })).toBeUndefined()
    expect(splitPoint(quick, { ...options, peerSecondsPerFrame: 0.02, minGainSeconds: 0.5 })).toBe(329)
    // No pace at all yet: no estimate to split by.
    expect(splitPoint(at, { frameRate: 24, preroll: 0 })).toBeUndefined()
  })

  it('counts the decode of every frame before the peer\'s first one', () => {
    const without = splitPoint(at, options) as number
    const withPreroll = splitPoint(at, { ...options, preroll: 100 }) as number
    // The peer starts later, so this node keeps more of the chunk.
    expect(withPreroll).toBeGreaterThan(without)
  })
})

describe('grantSplitPoint', () => {
  // Measured on two one-core nodes with SVT-AV1 preset 8: the peer claimed the last chunk (142
  // frames, 65 ms a frame at the job's pace) 1.3 s before this node's own encode (130 ms a frame) ended.
  const measured = { frames: 142, peerSecondsPerFrame: 0.065, ownSecondsPerFrame: 0.13, ownFreeIn: 1.3, frameRate: 24, preroll: 0 }

  it('gives the peer the part it ends with the slower node taking the rest once free', () => {
    // (1.3 + 142 × 0.13) / (0.065 + 0.13 - 0.0065) = 104.8: both end 8.3 s on, not 10.7.
    expect(grantSplitPoint(measured)).toBe(105)
    // A peer still busy for 3 s with its chunk before takes less.
    expect(grantSplitPoint({ ...measured, peerBusyFor: 3 })).toBe(89)
    // Before any result is in, the peer is taken to go at this node's pace.
    expect(grantSplitPoint({ ...measured, peerSecondsPerFrame: undefined })).toBe(Math.round((1.3 + 142 * 0.13) / (0.26 - 0.013)))
  })

  it('leaves the chunk whole when this node is free too late, or the parts would be too short', () => {
    expect(grantSplitPoint({ ...measured, ownFreeIn: 12 })).toBeUndefined()
    expect(grantSplitPoint({ ...measured, frames: 40 })).toBeUndefined()
    expect(grantSplitPoint({ ...measured, ownSecondsPerFrame: 0 })).toBeUndefined()
  })
})

let fx: Fixtures
let shims: string
const realPath = process.env.PATH
const cleanup: Array<() => Promise<void>> = []
beforeAll(async () => {
  fx = await ensureFixtures()
  // x265 for this node's own encodes stops itself before it reads a frame, until the test lets it
  // go on: the straggler, made one whatever the machine's load.
  shims = await mkdtemp(join(tmpdir(), 'swarm-straggler-shims-'))
  const real = (await execa('sh', ['-c', 'command -v x265'])).stdout.trim()
  await writeFile(join(shims, 'x265'), `#!/bin/sh\ncase "$*" in *work-self*) kill -STOP $$ ;; esac\nexec ${real} "$@"\n`)
  await chmod(join(shims, 'x265'), 0o755)
  process.env.PATH = `${shims}:${realPath ?? ''}`
})
afterAll(async () => {
  process.env.PATH = realPath
  await rm(shims, { recursive: true, force: true })
})
afterEach(async () => { for (const c of cleanup.splice(0).reverse()) await c() })

/** The local link of a peer other than the originator: its leases name the originator, as a remote claim's do. */
function peerLink (originator: Originator, peer: string): OriginatorLink {
  const link = localLink(originator, peer)
  return {
    ...link,
    claim: async (jobId, chunk, signal) => {
      const answer = await link.claim(jobId, chunk, signal)
      return answer.ok ? { ...answer, lease: { ...answer.lease, originator: 'self' } } : answer
    }
  }
}

const ofType = <T extends NodeEvent['type']>(events: NodeEvent[], type: T): Array<NodeEventOf<T>> => events.filter((e): e is NodeEventOf<T> => e.type === type)

describe('the last open chunk claimed by a peer while this node\'s own worker ends its encode', () => {
  it('is granted in part: the peer is told the first frames in its segment\'s meta, the rest opens as a chunk of its own', async () => {
    const home = await mkdtemp(join(tmpdir(), 'swarm-grant-split-'))
    cleanup.push(async () => { await originator.stop(); await rm(home, { recursive: true, force: true }) })
    // This node's worker, as its encode reports itself: 30 of its 40 frames done at 40 fps.
    const standing = { framesPiped: 34, frames: 40, framesDone: 30, fps: 40 }
    const originator = new Originator({
      home, peerId: 'self', ownWorker: true, plan: { chunkSeconds: 7 },
      shortenOwnEncode: (_jobId, _chunk, _leaseId, choose) => { choose(standing); return undefined }
    })
    await originator.start()
    const events: NodeEvent[] = []
    originator.on('event', (e: NodeEvent) => events.push(e))
    const { job } = await originator.addJob({ file: fx.openGop10bit, settings: '--preset ultrafast --crf 30', encoder: 'x265' })
    await waitFor('every chunk cut', () => job.state === 'encoding', { everyMs: 20 })
    expect(job.chunks.map(c => c.frames)).toEqual([200, 40])

    // Our worker takes the short chunk; a peer then claims the other, the last one open.
    expect(originator.requestLease(job.id, 1, 'self').ok).toBe(true)
    const granted = originator.requestLease(job.id, 0, 'peer')
    expect(granted.ok).toBe(true)
    // (0.25 s + 200 × 25 ms) / (25 + 25 - 2.5 ms) = 110.5: the peer 111 frames, this node 89 once free.
    const split = ofType(events, 'chunk:split')[0]
    expect(split).toMatchObject({ jobId: job.id, chunk: 0, into: 2, kept: 111, frames: 89 })
    expect(job.chunks[0]).toMatchObject({ startFrame: 0, frames: 111, state: 'leased' })
    expect(job.chunks[2]).toMatchObject({ startFrame: 111, frames: 89 })
    const offer = originator.segmentFor(job.id, 0, granted.ok ? granted.lease.id : '', 'peer')
    expect(offer.ok && offer.meta.frames).toBe(111)
    await waitFor('the split-off chunk to open', () => job.chunks[2]?.state === 'open', { everyMs: 20 })
    // Its segment is the first chunk's, its first frame named halfway from the frame before it.
    const source = await probeMedia(fx.openGop10bit)
    const t = (i: number): number => source.video.frames[i]!.time
    const selectFrom = job.chunks[2]!.segment!.selectFromTime
    expect(selectFrom).toBeGreaterThan(t(110))
    expect(selectFrom).toBeLessThan(t(111))
    expect(job.stats?.splits).toBe(1)
  })
})

describe('a straggling chunk of this node\'s own encode', () => {
  it('is split for an idle peer: the own encode ends at an exact frame, the peer encodes the rest, the output is the source\'s frames', async () => {
    const home = await mkdtemp(join(tmpdir(), 'swarm-straggler-'))
    const output = join(home, 'out.mkv')
    let own: Worker | undefined
    const originator = new Originator({
      home, peerId: 'self', ownWorker: true, plan: { chunkSeconds: 7 }, splitMinGainSeconds: 0,
      shortenOwnEncode: (jobId, chunk, leaseId, choose) => own?.shortenOwnEncode(jobId, chunk, leaseId, choose)
    })
    await originator.start()
    await mkdir(join(home, 'work-self'), { recursive: true })
    own = new Worker({ peerId: 'self', slots: 1, workDir: join(home, 'work-self'), linkFor: () => localLink(originator, 'self'), heartbeatMs: 200 })
    const peer = new Worker({ peerId: 'peer', slots: 1, prefetch: 0, workDir: join(home, 'work-peer'), linkFor: () => peerLink(originator, 'peer'), heartbeatMs: 200 })
    const ownWorker = own
    cleanup.push(async () => {
      await execa('pkill', ['-CONT', '-f', 'work-self'], { reject: false })
      await peer.stop(); await ownWorker.stop(); await originator.stop(); await rm(home, { recursive: true, force: true })
    })
    // Chunk 0 (200 of the 240 frames) is this node's: the peer is not shown it while it is open.
    originator.on('changed', (id) => {
      const job = originator.get(id)
      if (job === undefined) return
      const view = { jobId: job.id, originator: 'self', settings: job.settings, encoder: 'x265' as const, totalChunks: job.chunks.length, seq: job.updatedAt }
      const open = job.chunks.filter(c => c.state === 'open').map(c => c.index)
      ownWorker.updateJob({ ...view, open })
      peer.updateJob({ ...view, open: open.filter(i => i !== 0) })
    })
    const events: NodeEvent[] = []
    for (const emitter of [originator, ownWorker, peer]) emitter.on('event', (e: NodeEvent) => events.push(e))
    ownWorker.start()
    peer.start()

    const { job } = await originator.addJob({ file: fx.openGop10bit, settings: '--preset ultrafast --crf 30', encoder: 'x265', output })
    const split = await waitFor('the split', () => ofType(events, 'chunk:split')[0] ?? (job.state === 'failed' ? new Error(job.error) : undefined), { timeoutMs: 60_000, everyMs: 50 })
    if (split instanceof Error) throw split
    await execa('pkill', ['-CONT', '-f', 'work-self'], { reject: false })
    await waitFor('the merge', () => job.state === 'done' || job.state === 'failed', { timeoutMs: 90_000, everyMs: 100 })
    expect(job.error).toBeUndefined()

    // Chunk 0 ended where the split said; the rest is chunk 2, right after it, encoded by the peer.
    expect(split).toMatchObject({ jobId: job.id, chunk: 0, into: 2, frames: 200 - split.kept })
    expect(split.kept).toBeGreaterThan(0)
    expect(split.kept).toBeLessThan(200)
    const [first, second, rest] = job.chunks
    expect(first).toMatchObject({ startFrame: 0, frames: split.kept, result: { encodedBy: 'self' } })
    expect(second).toMatchObject({ startFrame: 200, frames: 40, result: { encodedBy: 'peer' } })
    expect(rest).toMatchObject({ startFrame: split.kept, frames: 200 - split.kept, result: { encodedBy: 'peer', check: 'full' } })
    expect(job.stats?.splits).toBe(1)
    expect(ofType(events, 'encode:finished').filter(e => e.originator === 'self' && e.chunk === 0).map(e => e.frames)).toEqual([split.kept])
    // Every frame once, in order, and every track: the merge and its fidelity check passed.
    expect(job.fidelity?.ok).toBe(true)
    const out = await probeMedia(output)
    expect(out.video.frameCount).toBe(240)
    expect(ofType(events, 'result:refused')).toEqual([])
  })
})

describe('a job whose chunks were split, cut again', () => {
  it('plans each chunk at its own index in frame order, and the splitter cuts a split-off chunk exactly', async () => {
    const source = await prepareSource(fx.openGop10bit)
    // Chunk 0 of 200 frames split after 111: the rest is chunk 2, last by index.
    const chunk = (index: number, startFrame: number, frames: number): JobRecord['chunks'][number] => ({ index, startFrame, frames, state: 'pending', pastHolders: [], failures: [] })
    const job = { sourcePath: fx.openGop10bit, chunks: [chunk(0, 0, 111), chunk(1, 200, 40), chunk(2, 111, 89)] } as unknown as JobRecord
    const plan = plannedRanges(job, source)
    expect(plan.map(r => [r.index, r.startFrame, r.frameCount])).toEqual([[0, 0, 111], [1, 200, 40], [2, 111, 89]])
    // Not the frames the job says: the source changed under it.
    expect(() => plannedRanges({ ...job, chunks: [chunk(0, 0, 111), chunk(1, 200, 41), chunk(2, 111, 89)] } as unknown as JobRecord, source)).toThrow(/no longer has the frames/)

    const dir = await mkdtemp(join(tmpdir(), 'swarm-split-again-'))
    cleanup.push(async () => { await rm(dir, { recursive: true, force: true }) })
    const folder = new JobFolder(dir)
    const opened: Segment[] = []
    await splitSource({ source, plan, pending: [2], folder, tag: 'test', signal: new AbortController().signal, log: logger('jobs'), opened: (_index, seg) => { opened.push(seg) } })
    expect(opened.map(s => [s.chunkIndex, s.frameCount])).toEqual([[2, 89]])
    // Its frames are the source's 111-199: encoded from the segment, exactly 89 of them.
    const out = join(dir, 'rest.264')
    const encoded = await encodeChunk({
      segmentPath: opened[0]!.path, selectFromTime: opened[0]!.selectFromTime, frameCount: 89, settings: parseX264Settings('--preset ultrafast --crf 30'),
      frameRate: source.video.frameRate, sourcePixFmt: source.video.pixFmt, outputPath: out, threads: 1
    })
    expect(encoded.frameCount).toBe(89)
    expect(Math.abs(opened[0]!.selectFromTime - source.video.frames[111]!.time)).toBeLessThan(0.001)
  })
})
