/**
 * A trickling originator (issue 26, item 1). H is a real libp2p node that announces a job, grants
 * W's claims, answers heartbeats, and serves each segment one byte a second: every frame well
 * inside the 30 s idle limit, so only an overall deadline stops it. A is an honest originator (its
 * own worker held at a gate) whose job W must still encode meanwhile. W runs one slot, and a
 * transfer deadline of 2 s + size at 64 KiB/s (the fixed part is 30 s in `swarm join`).
 */
import { lpStream } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDaemon, type Daemon } from '../../src/daemon/index.js'
import { CHUNK_PROTOCOL, encodeFrame, STRIKES_TO_BAN, type SegmentMeta } from '../../src/swarm/index.js'
import { ensureFixtures } from '../fixtures.js'
import { gatedOriginator, type GatedOriginator } from '../helpers/gated-originator.js'
import { hostileOriginator, type HostileOriginator } from '../helpers/hostile-arbiter.js'
import { recordTally } from '../helpers/tally.js'
import { waitFor } from '../helpers/wait.js'

const ALLOWANCE_MS = 2000
const TRICKLE_EVERY_MS = 1000
/** 64 KiB: a deadline of 2 s + 1 s; at one byte a second the whole segment would take 18 h. */
const SEGMENT_BYTES = 64 * 1024

let root: string
let W: Daemon
let H: HostileOriginator
let A: GatedOriginator | undefined
const logsW: string[] = []
/** H's segment streams open (H's side), how many were opened, and the most downloads from H W ran at once (W's side, sampled). */
let trickling = 0
let mostAtOnce = 0
let trickles = 0
let sampler: NodeJS.Timeout | undefined
let stopAnnouncing = (): void => {}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'swarm-slow-originator-'))
  W = await startDaemon({ home: join(root, 'w'), listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, bootstrap: [], slots: 1, transferAllowanceMs: ALLOWANCE_MS, log: l => logsW.push(l) })
  H = await hostileOriginator(W)
  // H's chunk protocol: the header at once, then one byte a second for as long as W listens.
  await H.node.unhandle(CHUNK_PROTOCOL)
  await H.node.handle(CHUNK_PROTOCOL, async (stream: Stream) => {
    const lp = lpStream(stream)
    trickling++
    trickles++
    try {
      const req = JSON.parse(new TextDecoder().decode((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray())) as { jobId: string }
      const offer = H.arbiter.armed.get(req.jobId)
      if (offer === undefined) throw new Error('not armed')
      H.arbiter.calls.push({ fn: 'segmentFor', jobId: req.jobId, chunk: -1, peer: W.peerId })
      await lp.write(encodeFrame({ ok: true, size: offer.size, sha256: offer.sha256, meta: offer.meta }))
      for (let i = 0; i < offer.size; i++) {
        await new Promise(resolve => setTimeout(resolve, TRICKLE_EVERY_MS))
        await lp.write(new Uint8Array([i & 0xff]), { signal: AbortSignal.timeout(5000) })
      }
    } catch (err) {
      stream.abort(err as Error)
    } finally {
      trickling--
    }
  })
})

afterAll(async () => {
  stopAnnouncing()
  clearInterval(sampler)
  A?.open()
  await Promise.allSettled([H?.node.stop(), A?.A.stop(), W?.stop()])
  if (root !== undefined) await rm(root, { recursive: true, force: true })
})

describe('an originator that serves its segments one byte a second', () => {
  it('holds none of W\'s encodes: an honest job on W completes meanwhile, H\'s chunks are given back at their deadline, and H is banned after three strikes', async () => {
    const fx = await ensureFixtures()
    const file = join(root, 'h-segment.mkv')
    await writeFile(file, randomBytes(SEGMENT_BYTES))
    const meta: SegmentMeta = { frames: 48, selectFromTime: 0, settings: '--preset ultrafast', frameRate: { num: 24, den: 1 }, pixFmt: 'yuv420p', width: 160, height: 90 }
    const hJob = await H.announce(file, meta, 192)
    // Every 5 s, as a real originator does: W keeps the job listed (and its download running).
    stopAnnouncing = H.keepAnnouncing(hJob, 5000)
    await waitFor('W to start downloading from H', () => trickling > 0, { timeoutMs: 20_000, everyMs: 50 })
    sampler = setInterval(() => {
      const fromH = W.status().worker.active.filter(t => t.originator === H.node.peerId.toString() && t.stage === 'fetching').length
      mostAtOnce = Math.max(mostAtOnce, fromH)
    }, 20)
    const attackStarted = Date.now()
    // A's job, announced while W's one slot is (before: would be for 18 h) on H's download.
    A = await gatedOriginator(join(root, 'a'), fx.openGop10bit, '--preset ultrafast --crf 30', { bootstrap: [W.addresses()[0] as string] })
    const a = A
    const aReady = Date.now()
    const doneByW = async (): Promise<number> => (await a.chunks()).filter(c => c.state === 'done' && c.encodedBy === W.peerId).length
    let byW = 0
    try {
      await waitFor('W to encode 3 of A\'s chunks', async () => { byW = await doneByW(); return byW >= 3 }, { timeoutMs: 60_000, everyMs: 200 })
    } finally {
      console.log(`W encoded ${byW} of A's chunks ${((Date.now() - aReady) / 1000).toFixed(1)} s after A's job was ready; H's downloads so far: ${trickles}, most at once ${mostAtOnce}`)
    }
    const threeChunksMs = Date.now() - aReady
    const ban = await waitFor('W to ban H', () => W.status().banned.find(b => b.id === H.node.peerId.toString()), { timeoutMs: 30_000, everyMs: 100 })
    const bannedAfterMs = Date.now() - attackStarted
    expect(ban.reason).toMatch(/^3 transfers slower than the deadline within 1 h; the last: served a segment too slowly/)
    const strikes = logsW.filter(l => /^swarm: strike \d of 3 against /.test(l))
    expect(strikes).toHaveLength(STRIKES_TO_BAN)
    // Each of H's chunks was given back at its deadline, with no failure counted against W.
    const releases = H.arbiter.callsFor(hJob, 'releaseLease')
    expect(releases.length).toBeGreaterThanOrEqual(STRIKES_TO_BAN)
    expect(logsW.filter(l => /giving back .*fetching the segment failed: segment .*: \d+ of 65536 bytes in 3\.0 s/.test(l)).length).toBeGreaterThanOrEqual(STRIKES_TO_BAN)
    // One download from H at a time, never more.
    expect(mostAtOnce).toBe(1)
    // A's job completes.
    a.open()
    await waitFor('A\'s job to be done', async () => (await a.job()).state === 'done', { timeoutMs: 120_000, everyMs: 200 })
    const chunks = await a.chunks()
    recordTally({
      section: 'Hostile input: uploads and downloads',
      fault: `a hostile originator serves a ${SEGMENT_BYTES}-byte segment one byte a second (idle limit 30 s) to a one-slot worker that also has an honest originator's job`,
      happened: `W encoded 3 of the honest job's chunks ${(threeChunksMs / 1000).toFixed(1)} s after it was announced (was: none, the claim loop awaited the 18-hour download); each of H's downloads was cut at its deadline (2 s + size at 64 KiB/s in this test, 30 s + in swarm join) and its chunk given back; one download from H at a time; H banned after ${STRIKES_TO_BAN} strikes, ${(bannedAfterMs / 1000).toFixed(1)} s into the attack; the honest job completed (${chunks.filter(c => c.encodedBy === W.peerId).length} of ${chunks.length} chunks by W)`,
      lost: 'nothing'
    })
  }, 240_000)
})
