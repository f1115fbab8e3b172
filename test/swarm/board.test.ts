import { generateKeyPair } from '@libp2p/crypto/keys'
import type { GossipSub, Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { announcementBatchMs, encodeFrame, JobBoard, JOBS_TOPIC, MAX_ANNOUNCEMENT_BYTES, SCORE_THRESHOLDS, type JobAnnouncement, type JobWithdrawal, type SwarmNode } from '../../src/swarm/index.js'
import { recordTally } from '../helpers/tally.js'
import { makeNode } from './helpers.js'
import { waitFor } from '../helpers/wait.js'

const PUBSUB = 'Hostile input: pubsub'

const JOB = '9f'.repeat(32)

let origin: PeerId
let other: PeerId

beforeAll(async () => {
  origin = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  other = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
})

function announcement (originator: string, over: Partial<JobAnnouncement> = {}): JobAnnouncement {
  return {
    v: 1,
    type: 'job',
    jobId: JOB,
    originator,
    seq: 1,
    state: 'encoding',
    name: 'clip.mkv',
    settings: '--crf 20',
    totalFrames: 240,
    chunks: { total: 4, open: 3, leased: 1, done: 0 },
    open: [[1, 4]],
    addrs: ['/ip4/127.0.0.1/tcp/4010'],
    ...over
  }
}

function signed (from: PeerId, data: Uint8Array, topic = JOBS_TOPIC): Message {
  if (from.publicKey === undefined) throw new Error('no key')
  return { type: 'signed', from, topic, data, sequenceNumber: 1n, signature: new Uint8Array(64), key: from.publicKey }
}

/** check() never touches the pubsub, so a bare object will do. */
function offlineBoard (): { board: JobBoard, logs: string[] } {
  const logs: string[] = []
  const board = new JobBoard({} as unknown as GossipSub, { self: origin.toString(), onAnnouncement: () => {}, onWithdrawal: () => {}, log: l => logs.push(l) })
  return { board, logs }
}

describe('JobBoard.check', () => {
  it('accepts an announcement signed by its own originator and returns it parsed', () => {
    const { board } = offlineBoard()
    const a = announcement(origin.toString())
    expect(board.check(signed(origin, encodeFrame(a)))).toEqual(a)
  })

  it('accepts a withdrawal by its own originator', () => {
    const { board } = offlineBoard()
    const w: JobWithdrawal = { v: 1, type: 'gone', jobId: JOB, originator: origin.toString(), seq: 9 }
    expect(board.check(signed(origin, encodeFrame(w)))).toEqual(w)
  })

  it('rejects an announcement or withdrawal in another originator\'s name', () => {
    const { board, logs } = offlineBoard()
    expect(board.check(signed(other, encodeFrame(announcement(origin.toString()))))).toBeUndefined()
    expect(board.check(signed(other, encodeFrame({ v: 1, type: 'gone', jobId: JOB, originator: origin.toString(), seq: 9 })))).toBeUndefined()
    expect(logs.some(l => l.includes('in the name of'))).toBe(true)
    recordTally({ section: PUBSUB, fault: 'announcement signed by one peer in another originator\'s name (JobBoard.check)', happened: 'rejected, logged "in the name of"', lost: 'nothing' })
    recordTally({ section: PUBSUB, fault: 'withdrawal of another originator\'s job, signed by a different peer (JobBoard.check)', happened: 'rejected', lost: 'nothing' })
  })

  it('rejects an unsigned message even if its content is valid', () => {
    const { board, logs } = offlineBoard()
    const unsigned: Message = { type: 'unsigned', topic: JOBS_TOPIC, data: encodeFrame(announcement(origin.toString())) }
    expect(board.check(unsigned)).toBeUndefined()
    expect(logs.at(-1)).toContain('unsigned')
    recordTally({ section: PUBSUB, fault: 'unsigned message with a valid announcement in it', happened: 'rejected, logged "unsigned"', lost: 'nothing' })
  })

  it('rejects a message over MAX_ANNOUNCEMENT_BYTES, and accepts padding up to the limit', () => {
    const { board, logs } = offlineBoard()
    const base = encodeFrame(announcement(origin.toString()))
    // JSON allows trailing whitespace: pad a valid announcement to exactly the limit, then one byte more.
    const pad = (n: number): Uint8Array => { const b = new Uint8Array(n).fill(0x20); b.set(base); return b }
    expect(board.check(signed(origin, pad(MAX_ANNOUNCEMENT_BYTES)))).toBeDefined()
    expect(board.check(signed(origin, pad(MAX_ANNOUNCEMENT_BYTES + 1)))).toBeUndefined()
    expect(logs.at(-1)).toContain(`${MAX_ANNOUNCEMENT_BYTES + 1}-byte`)
    // Even an unsigned oversized one is refused without parsing.
    expect(board.check({ type: 'unsigned', topic: JOBS_TOPIC, data: new Uint8Array(MAX_ANNOUNCEMENT_BYTES * 2) })).toBeUndefined()
    recordTally({ section: PUBSUB, fault: `valid announcement padded to ${MAX_ANNOUNCEMENT_BYTES + 1} bytes (1 over the limit), and an unsigned ${MAX_ANNOUNCEMENT_BYTES * 2}-byte message`, happened: 'both rejected on size before parsing, logged; padded to exactly the limit it is accepted', lost: 'nothing' })
  })

  it.each([
    ['not JSON', () => new TextEncoder().encode('{"v":1,')],
    ['not UTF-8', () => Uint8Array.from([0x7b, 0xff, 0x7d])],
    ['an unknown type', () => encodeFrame({ v: 1, type: 'steal', jobId: JOB, originator: origin.toString(), seq: 1 })],
    ['a bad job id', () => encodeFrame({ v: 1, type: 'gone', jobId: 'xyz', originator: origin.toString(), seq: 1 })],
    ['an extra key', () => encodeFrame({ v: 1, type: 'gone', jobId: JOB, originator: origin.toString(), seq: 1, admin: true })],
    ['a negative chunk count', () => encodeFrame(announcement(origin.toString(), { chunks: { total: -1, open: 0, leased: 0, done: 0 } }))],
    ['an empty payload', () => new Uint8Array(0)]
  ])('rejects a malformed message (%s) from its own originator', (what, raw) => {
    const { board, logs } = offlineBoard()
    expect(board.check(signed(origin, raw()))).toBeUndefined()
    expect(logs.at(-1)).toMatch(/rejected an announcement from .*: announcement: /)
    recordTally({ section: PUBSUB, fault: `signed topic message from its own originator: ${what}`, happened: `rejected, logged "${logs.at(-1)?.replace(/^.*: announcement: /, '') ?? ''}"`, lost: 'nothing' })
  })
})

describe('JobBoard over real gossipsub', () => {
  let a: SwarmNode
  let b: SwarmNode
  let boardA: JobBoard
  let boardB: JobBoard
  const heardA: Array<JobAnnouncement | JobWithdrawal> = []

  beforeAll(async () => {
    [a, b] = await Promise.all([makeNode(), makeNode()])
    boardA = new JobBoard(a.services.pubsub, { self: a.peerId.toString(), onAnnouncement: m => heardA.push(m), onWithdrawal: m => heardA.push(m) })
    boardB = new JobBoard(b.services.pubsub, { self: b.peerId.toString(), onAnnouncement: () => {}, onWithdrawal: () => {} })
    boardA.start()
    boardB.start()
    const addr = a.getMultiaddrs()[0]
    if (addr === undefined) throw new Error('node A has no address')
    await b.dial(addr)
    await waitFor('B to see A subscribed', () => b.services.pubsub.getSubscribers(JOBS_TOPIC).some(p => p.equals(a.peerId)), { timeoutMs: 15_000, everyMs: 25 })
  })

  afterAll(async () => {
    boardA?.stop()
    boardB?.stop()
    await Promise.all([a?.stop(), b?.stop()])
  })

  it('delivers B\'s announcement and withdrawal to A\'s handlers', async () => {
    const ann = announcement(b.peerId.toString(), { seq: 100, addrs: b.getMultiaddrs().map(String) })
    await boardB.publish(ann)
    await waitFor('A to hear the announcement', () => heardA.length >= 1, { timeoutMs: 15_000, everyMs: 25 })
    expect(heardA[0]).toEqual(ann)
    const gone: JobWithdrawal = { v: 1, type: 'gone', jobId: JOB, originator: b.peerId.toString(), seq: 101 }
    await boardB.publish(gone)
    await waitFor('A to hear the withdrawal', () => heardA.length >= 2, { timeoutMs: 15_000, everyMs: 25 })
    expect(heardA[1]).toEqual(gone)
    expect(boardA.rejected).toBe(0)
  })

  it('never puts an announcement over the size limit on the wire', async () => {
    const published: Array<[string, Uint8Array]> = []
    const logs: string[] = []
    const stub = { publish: async (topic: string, data: Uint8Array) => { published.push([topic, data]); return { recipients: [] } } }
    const board = new JobBoard(stub as unknown as GossipSub, { self: b.peerId.toString(), onAnnouncement: () => {}, onWithdrawal: () => {}, log: l => logs.push(l) })
    const huge = announcement(b.peerId.toString(), { name: 'n'.repeat(MAX_ANNOUNCEMENT_BYTES) })
    expect(encodeFrame(huge).byteLength).toBeGreaterThan(MAX_ANNOUNCEMENT_BYTES)
    // Whether publish() reports it by throwing or by logging, nothing may be sent.
    const outcome = await board.publish(huge).then(() => 'resolved', (e: Error) => e.message)
    expect(published).toHaveLength(0)
    expect(outcome === 'resolved' ? logs.join('\n') : outcome).toMatch(new RegExp(String(MAX_ANNOUNCEMENT_BYTES)))
    // A normal one goes out on the jobs topic, byte for byte.
    const ok = announcement(b.peerId.toString())
    await board.publish(ok)
    expect(published).toHaveLength(1)
    expect(published[0]?.[0]).toBe(JOBS_TOPIC)
    expect(Buffer.from(published[0]![1]).equals(Buffer.from(encodeFrame(ok)))).toBe(true)
  })

  it('A\'s validator rejects an announcement B publishes in someone else\'s name, and the handler never sees it', async () => {
    const before = heardA.length
    await boardB.publish(announcement(other.toString(), { seq: 200 }))
    await waitFor('A to reject the forged announcement', () => boardA.rejected >= 1, { timeoutMs: 15_000, everyMs: 25 })
    expect(boardA.rejected).toBe(1)
    // Give the (rejected) message no chance to sneak through after validation.
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(heardA.length).toBe(before)
    recordTally({ section: PUBSUB, fault: 'announcement in a third peer\'s name published over real gossipsub', happened: 'rejected by the receiving node\'s topic validator; its handler never saw it', lost: 'nothing' })
  })

  it('a peer that keeps sending invalid messages is scored below the graylist, and then even its valid announcements are dropped unread', async () => {
    const scoreOfB = (): number => (a.services.pubsub as unknown as { getScore: (peer: string) => number }).getScore(b.peerId.toString())
    expect(scoreOfB()).toBeGreaterThan(SCORE_THRESHOLDS.gossipThreshold)
    const rejectedBefore = boardA.rejected
    // Garbage that is not JSON at all, published raw: the validator rejects each.
    for (let i = 0; i < 6; i++) await b.services.pubsub.publish(JOBS_TOPIC, new TextEncoder().encode(`not an announcement ${i}`))
    await waitFor('A to score B below the graylist threshold', () => scoreOfB() < SCORE_THRESHOLDS.graylistThreshold, { timeoutMs: 15_000, everyMs: 50 })
    expect(boardA.rejected - rejectedBefore).toBeGreaterThanOrEqual(3)
    const score = scoreOfB()
    // Now a well-formed announcement in B's own name is not even validated.
    const heardBefore = heardA.length
    const rejectedNow = boardA.rejected
    await boardB.publish(announcement(b.peerId.toString(), { seq: 300, jobId: 'ab'.repeat(32) }))
    await new Promise(resolve => setTimeout(resolve, 1500))
    expect(heardA.length).toBe(heardBefore)
    expect(boardA.rejected).toBe(rejectedNow)
    recordTally({ section: PUBSUB, fault: 'a peer publishes six invalid messages on the jobs topic over real gossipsub', happened: `each rejected by the validator; the sender's score fell to ${score.toFixed(0)} (graylist below ${SCORE_THRESHOLDS.graylistThreshold}) and its next, valid announcement was dropped unread`, lost: 'nothing' })
  })
})

describe('announcementBatchMs', () => {
  it('gathers changes for 10 ms per peer, at least 100 ms and at most a second', () => {
    expect([1, 2, 10, 11, 50, 100, 5000].map(announcementBatchMs)).toEqual([100, 100, 100, 110, 500, 1000, 1000])
  })
})
