import { describe, expect, it } from 'vitest'
import type { z } from 'zod'
import {
  ChunkHeader, ChunkRequest, Claim, ClaimAnswer, encodeFrame, fromRanges, HeartbeatAnswer, JobAnnouncement, JobWithdrawal, Lease,
  LeaseRequest, parseFrame, PlainAnswer, ProtocolViolation, Refusal, ResultRequest, SegmentMeta, SignedClaim, SignedLease,
  toRanges, TopicMessage
} from '../../src/swarm/messages.js'
import { MAX_ANNOUNCEMENT_BYTES } from '../../src/swarm/protocol.js'
import { recordTally } from '../helpers/tally.js'
import { prng } from '../helpers/random.js'

const PUBSUB = 'Hostile input: pubsub'

// ---- fixtures -----------------------------------------------------------------------------------

const JOB = '0123456789abcdef'.repeat(4)
const PEER = '12D3KooWGRUVh4Nuq8Ypz3LrCkdZp5fCDhzyvGdpNmyMkTZs1xMZ'
const PEER2 = '12D3KooWSoLzampfxc4t3sy9z7yq1Cgzbi7zGXpV7nvt5hfeKUhR'
const SIG = Buffer.alloc(64, 7).toString('base64')
const NONCE = 'f'.repeat(32)
const LEASE_ID = 'abcdef012345abcdef012345'

const announcement = (): JobAnnouncement => ({
  v: 1,
  type: 'job',
  jobId: JOB,
  originator: PEER,
  seq: 17,
  state: 'encoding',
  name: 'Show - 01.mkv',
  settings: '--preset slow --crf 18',
  totalFrames: 34_000,
  chunks: { total: 40, open: 30, leased: 6, done: 4 },
  open: [[0, 10], [14, 34]],
  addrs: ['/ip4/127.0.0.1/tcp/4010']
})
const withdrawal = (): JobWithdrawal => ({ v: 1, type: 'gone', jobId: JOB, originator: PEER, seq: 18 })
const claim = (): Claim => ({ v: 1, jobId: JOB, chunk: 3, claimant: PEER, issuedAt: 1_000, expiresAt: 21_000, nonce: NONCE })
const lease = (): Lease => ({ v: 1, jobId: JOB, chunk: 3, holder: PEER, originator: PEER2, leaseId: LEASE_ID, issuedAt: 1_000, expiresAt: 31_000 })
const meta = (): z.infer<typeof SegmentMeta> => ({ frames: 48, selectFromTime: 1.25, settings: '--crf 20', frameRate: { num: 24000, den: 1001 }, pixFmt: 'yuv420p10le', width: 1920, height: 1080 })

type Sample = Record<string, unknown>
interface Case { name: string, schema: z.ZodTypeAny, sample: () => Sample }

const CASES: Case[] = [
  { name: 'JobAnnouncement', schema: JobAnnouncement, sample: announcement },
  { name: 'JobWithdrawal', schema: JobWithdrawal, sample: withdrawal },
  { name: 'TopicMessage(job)', schema: TopicMessage, sample: announcement },
  { name: 'TopicMessage(gone)', schema: TopicMessage, sample: withdrawal },
  { name: 'Claim', schema: Claim, sample: claim },
  { name: 'SignedClaim', schema: SignedClaim, sample: () => ({ claim: claim(), signature: SIG }) },
  { name: 'Lease', schema: Lease, sample: lease },
  { name: 'SignedLease', schema: SignedLease, sample: () => ({ lease: lease(), signature: SIG }) },
  { name: 'LeaseRequest(claim)', schema: LeaseRequest, sample: () => ({ type: 'claim', claim: claim(), signature: SIG }) },
  { name: 'LeaseRequest(heartbeat)', schema: LeaseRequest, sample: () => ({ type: 'heartbeat', jobId: JOB, chunk: 3, leaseId: LEASE_ID, framesDone: 12, fps: 3.5 }) },
  { name: 'LeaseRequest(release)', schema: LeaseRequest, sample: () => ({ type: 'release', jobId: JOB, chunk: 3, leaseId: LEASE_ID, reason: 'shutting down' }) },
  { name: 'Refusal', schema: Refusal, sample: () => ({ ok: false, code: 'not-open', message: 'chunk 3 is leased' }) },
  { name: 'ClaimAnswer(ok)', schema: ClaimAnswer, sample: () => ({ ok: true, lease: lease(), signature: SIG }) },
  { name: 'ClaimAnswer(refusal)', schema: ClaimAnswer, sample: () => ({ ok: false, code: 'not-open', message: 'no' }) },
  { name: 'HeartbeatAnswer', schema: HeartbeatAnswer, sample: () => ({ ok: true, expiresAt: 99_000 }) },
  { name: 'PlainAnswer', schema: PlainAnswer, sample: () => ({ ok: true }) },
  { name: 'ChunkRequest', schema: ChunkRequest, sample: () => ({ jobId: JOB, chunk: 3, leaseId: LEASE_ID }) },
  { name: 'SegmentMeta', schema: SegmentMeta, sample: meta },
  { name: 'ChunkHeader', schema: ChunkHeader, sample: () => ({ ok: true, size: 1234, sha256: JOB, meta: meta() }) },
  { name: 'ResultRequest', schema: ResultRequest, sample: () => ({ jobId: JOB, chunk: 3, leaseId: LEASE_ID, size: 1234, sha256: JOB }) }
]

/** Schemas that are plain unions of an ok shape and a Refusal: zod reports some failures in them as "Invalid input" without a path. */
const UNIONS = new Set(['ClaimAnswer(ok)', 'ClaimAnswer(refusal)', 'HeartbeatAnswer', 'PlainAnswer', 'ChunkHeader'])

function bytes (value: unknown): Uint8Array {
  return encodeFrame(value)
}

function violation (fn: () => unknown): ProtocolViolation {
  let thrown: unknown
  try {
    const value = fn()
    throw new Error(`expected a ProtocolViolation, got a value: ${JSON.stringify(value)?.slice(0, 200)}`)
  } catch (err) {
    thrown = err
  }
  expect(thrown).toBeInstanceOf(ProtocolViolation)
  return thrown as ProtocolViolation
}

/** Sets a value at a dotted path ('chunks.total', 'open.0.1', 'claim.jobId') on a deep copy; `undefined` deletes. */
function mutate (sample: Sample, path: string, value: unknown): Sample {
  const copy = structuredClone(sample)
  const keys = path.split('.')
  let at: any = copy
  for (const k of keys.slice(0, -1)) at = at[k]
  const last = keys[keys.length - 1] as string
  if (value === undefined) delete at[last]
  else at[last] = value
  return copy
}

function fieldsOf (sample: Sample, prefix = ''): string[] {
  return Object.entries(sample).flatMap(([k, v]) => {
    const p = prefix === '' ? k : `${prefix}.${k}`
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? [p, ...fieldsOf(v as Sample, p)] : [p]
  })
}

// ---- per-schema edge checks ---------------------------------------------------------------------

describe.each(CASES)('$name', ({ name, schema, sample }) => {
  const isUnion = UNIONS.has(name)

  it('accepts its valid sample unchanged', () => {
    expect(parseFrame(schema, bytes(sample()), 'x')).toEqual(sample())
  })

  it('rejects an extra top-level key, naming it (schemas are strict)', () => {
    const e = violation(() => parseFrame(schema, bytes({ ...sample(), sneaky: 1 }), 'msg'))
    expect(e.message).toMatch(/^msg: /)
    expect(e.message).toContain('sneaky')
  })

  it('rejects an extra key in every nested object', () => {
    const s = sample()
    for (const path of fieldsOf(s).filter(p => { const v = p.split('.').reduce<any>((o, k) => o[k], s); return v !== null && typeof v === 'object' && !Array.isArray(v) })) {
      const e = violation(() => parseFrame(schema, bytes(mutate(s, `${path}.sneaky`, true)), 'msg'))
      if (!isUnion) expect(e.message).toContain('sneaky')
    }
  })

  it('rejects every missing field, naming it', () => {
    const s = sample()
    for (const path of fieldsOf(s)) {
      const e = violation(() => parseFrame(schema, bytes(mutate(s, path, undefined)), 'msg'))
      if (!isUnion) expect(e.message.startsWith(`msg: ${path}: `), e.message).toBe(true)
    }
  })

  it('rejects every field replaced by a value of the wrong type, naming it', () => {
    const s = sample()
    for (const path of fieldsOf(s)) {
      const current = path.split('.').reduce<any>((o, k) => o[k], s)
      const wrong = typeof current === 'string' ? 12 : typeof current === 'number' ? '12' : typeof current === 'boolean' ? 'true' : 'nope'
      const e = violation(() => parseFrame(schema, bytes(mutate(s, path, wrong)), 'msg'))
      if (!isUnion) expect(e.message.startsWith(`msg: ${path}: `), e.message).toBe(true)
    }
  })

  it('rejects non-objects at the top', () => {
    for (const v of [null, 1, 'claim', [], [sample()], true]) violation(() => parseFrame(schema, bytes(v), 'msg'))
  })
})

describe('field rules', () => {
  // [what, schema, sample, path, bad value]
  const bad: Array<[string, z.ZodTypeAny, () => Sample, string, unknown]> = [
    ['job id too short', Claim, claim, 'jobId', JOB.slice(1)],
    ['job id too long', Claim, claim, 'jobId', JOB + '0'],
    ['job id upper case', Claim, claim, 'jobId', JOB.toUpperCase()],
    ['job id not hex', ChunkRequest, () => ({ jobId: JOB, chunk: 3, leaseId: LEASE_ID }), 'jobId', 'g'.repeat(64)],
    ['job id with path bits', JobWithdrawal, withdrawal, 'jobId', '../'.repeat(21) + 'a'],
    ['negative chunk', Claim, claim, 'chunk', -1],
    ['fractional chunk', Claim, claim, 'chunk', 1.5],
    ['chunk beyond the limit', ChunkRequest, () => ({ jobId: JOB, chunk: 3, leaseId: LEASE_ID }), 'chunk', 1_000_001],
    ['chunk as a string', Lease, lease, 'chunk', '3'],
    ['negative seq', JobWithdrawal, withdrawal, 'seq', -5],
    ['seq beyond 2^53', JobWithdrawal, withdrawal, 'seq', 2 ** 53 + 2],
    ['version 2', JobWithdrawal, withdrawal, 'v', 2],
    ['unknown state', JobAnnouncement, announcement, 'state', 'paused'],
    ['peer id with forbidden characters', JobAnnouncement, announcement, 'originator', '0OIl' + PEER.slice(4)],
    ['peer id too short', Claim, claim, 'claimant', '12D3KooW'],
    ['peer id too long', Claim, claim, 'claimant', '1'.repeat(129)],
    ['name too long', JobAnnouncement, announcement, 'name', 'n'.repeat(513)],
    ['settings too long', JobAnnouncement, announcement, 'settings', 's'.repeat(4097)],
    ['too many addresses', JobAnnouncement, announcement, 'addrs', Array.from({ length: 17 }, () => '/ip4/1.2.3.4/tcp/1')],
    ['an address too long', JobAnnouncement, announcement, 'addrs', ['/dns4/' + 'a'.repeat(300)]],
    ['too many ranges', JobAnnouncement, announcement, 'open', Array.from({ length: 4097 }, (_, i) => [i * 2, i * 2 + 1])],
    ['an empty range', JobAnnouncement, announcement, 'open', [[3, 3]]],
    ['a reversed range', JobAnnouncement, announcement, 'open', [[5, 2]]],
    ['a range with three ends', JobAnnouncement, announcement, 'open', [[1, 2, 3]]],
    ['a negative range start', JobAnnouncement, announcement, 'open', [[-1, 2]]],
    ['negative total frames', JobAnnouncement, announcement, 'totalFrames', -1],
    ['chunk count beyond the limit', JobAnnouncement, announcement, 'chunks.total', 2_000_000],
    ['a nonce of the wrong length', Claim, claim, 'nonce', 'f'.repeat(31)],
    ['a nonce that is not hex', Claim, claim, 'nonce', 'z'.repeat(32)],
    ['a lease id of the wrong length', Lease, lease, 'leaseId', 'a'.repeat(25)],
    ['an empty signature', SignedClaim, () => ({ claim: claim(), signature: SIG }), 'signature', ''],
    ['a signature that is not base64', SignedClaim, () => ({ claim: claim(), signature: SIG }), 'signature', 'not base64!'],
    ['an oversized signature', SignedLease, () => ({ lease: lease(), signature: SIG }), 'signature', 'A'.repeat(1028)],
    ['a bad job id inside a signed claim', SignedClaim, () => ({ claim: claim(), signature: SIG }), 'claim.jobId', 'x'],
    ['a negative chunk inside a claim request', LeaseRequest, () => ({ type: 'claim', claim: claim(), signature: SIG }), 'claim.chunk', -3],
    ['an unknown request type', LeaseRequest, () => ({ type: 'heartbeat', jobId: JOB, chunk: 3, leaseId: LEASE_ID, framesDone: 1, fps: 1 }), 'type', 'steal'],
    ['a negative fps', LeaseRequest, () => ({ type: 'heartbeat', jobId: JOB, chunk: 3, leaseId: LEASE_ID, framesDone: 1, fps: 1 }), 'fps', -1],
    ['an enormous fps', LeaseRequest, () => ({ type: 'heartbeat', jobId: JOB, chunk: 3, leaseId: LEASE_ID, framesDone: 1, fps: 1 }), 'fps', 1e308],
    ['a release reason too long', LeaseRequest, () => ({ type: 'release', jobId: JOB, chunk: 3, leaseId: LEASE_ID, reason: 'r' }), 'reason', 'r'.repeat(2001)],
    ['a refusal message too long', Refusal, () => ({ ok: false, code: 'x', message: 'm' }), 'message', 'm'.repeat(2001)],
    ['a refusal code with odd characters', Refusal, () => ({ ok: false, code: 'x', message: 'm' }), 'code', 'Bad Code!'],
    ['a refusal code too long', Refusal, () => ({ ok: false, code: 'x', message: 'm' }), 'code', 'a'.repeat(65)],
    ['a result of zero bytes', ResultRequest, () => ({ jobId: JOB, chunk: 3, leaseId: LEASE_ID, size: 1, sha256: JOB }), 'size', 0],
    ['a sha256 that is not hex', ResultRequest, () => ({ jobId: JOB, chunk: 3, leaseId: LEASE_ID, size: 1, sha256: JOB }), 'sha256', 'Z'.repeat(64)],
    ['a frame rate of zero', SegmentMeta, meta, 'frameRate.den', 0],
    ['a frame rate past 32 bits', SegmentMeta, meta, 'frameRate.num', 2 ** 31],
    ['a null select time', SegmentMeta, meta, 'selectFromTime', null],
    ['a pixel format with a path in it', SegmentMeta, meta, 'pixFmt', '../../etc/passwd'],
    ['a huge width', SegmentMeta, meta, 'width', 16385]
  ]

  it.each(bad)('rejects %s, naming the field', (_what, schema, sample, path, value) => {
    const s = sample()
    expect(() => parseFrame(schema, bytes(s), 'x')).not.toThrow()
    const e = violation(() => parseFrame(schema, bytes(mutate(s, path, value)), 'frame'))
    expect(e.message.startsWith('frame: ')).toBe(true)
    expect(e.message).toContain(path.split('.')[0])
  })

  it('names nested fields by their full path', () => {
    const e = violation(() => parseFrame(SignedClaim, bytes({ claim: { ...claim(), chunk: -1 }, signature: SIG }), 'claim'))
    expect(e.message).toMatch(/^claim: claim\.chunk: /)
    const e2 = violation(() => parseFrame(JobAnnouncement, bytes({ ...announcement(), open: [[0, 2], [7, 7]] }), 'ann'))
    expect(e2.message).toMatch(/^ann: open\.1: /)
  })

  it('accepts the boundaries of each limit', () => {
    expect(parseFrame(Claim, bytes({ ...claim(), chunk: 1_000_000 }), 'x').chunk).toBe(1_000_000)
    expect(parseFrame(Claim, bytes({ ...claim(), chunk: 0 }), 'x').chunk).toBe(0)
    expect(parseFrame(JobAnnouncement, bytes({ ...announcement(), name: 'n'.repeat(512) }), 'x').name).toHaveLength(512)
    expect(parseFrame(JobAnnouncement, bytes({ ...announcement(), addrs: Array.from({ length: 16 }, () => '/ip4/1.2.3.4/tcp/1') }), 'x').addrs).toHaveLength(16)
    expect(parseFrame(JobWithdrawal, bytes({ ...withdrawal(), seq: Number.MAX_SAFE_INTEGER }), 'x').seq).toBe(Number.MAX_SAFE_INTEGER)
    // A job of at most MAX_CHUNKS_PER_JOB chunks; a million, declared in a few hundred bytes, is refused.
    expect(parseFrame(JobAnnouncement, bytes({ ...announcement(), chunks: { total: 20_000, open: 20_000, leased: 0, done: 0 }, open: [[0, 20_000]] }), 'x').chunks.total).toBe(20_000)
    expect(() => parseFrame(JobAnnouncement, bytes({ ...announcement(), chunks: { total: 1_000_000, open: 1_000_000, leased: 0, done: 0 }, open: [[0, 1_000_000]] }), 'x')).toThrow(/chunks\.total/)
    // A screen recorder's frame rate crosses the wire as it is (it used to be refused past 1,000,000).
    expect(parseFrame(SegmentMeta, bytes({ ...meta(), frameRate: { num: 243090000, den: 8111111 } }), 'x').frameRate).toEqual({ num: 243090000, den: 8111111 })
    // A CIDv1 (base32) peer id is accepted as well as a base58 one.
    expect(parseFrame(Claim, bytes({ ...claim(), claimant: 'b' + 'a'.repeat(58) }), 'x').claimant).toBe('b' + 'a'.repeat(58))
  })
})

describe('parseFrame at the byte level', () => {
  it.each([
    ['empty', ''],
    ['plain text', 'hello'],
    ['truncated JSON', JSON.stringify(announcement()).slice(0, 50)],
    ['trailing garbage', JSON.stringify(withdrawal()) + 'x'],
    ['two objects', JSON.stringify(withdrawal()) + JSON.stringify(withdrawal())],
    ['single quotes', '{\'v\':1}'],
    ['NaN', 'NaN'],
    ['unclosed nesting', '['.repeat(100_000)]
  ])('rejects non-JSON (%s) as not UTF-8 JSON', (_what, text) => {
    const e = violation(() => parseFrame(TopicMessage, new TextEncoder().encode(text), 'announcement'))
    expect(e.message).toBe('announcement: not UTF-8 JSON')
  })

  it('rejects bytes that are not UTF-8, even inside an otherwise valid message', () => {
    for (const raw of [
      Uint8Array.from([0xff, 0xfe, 0xfd]),
      Uint8Array.from([0xc0, 0x80]), // overlong NUL
      Uint8Array.from([0xed, 0xa0, 0x80]) // lone surrogate
    ]) {
      expect(violation(() => parseFrame(TopicMessage, raw, 'a')).message).toBe('a: not UTF-8 JSON')
    }
    // A valid withdrawal with one byte of its originator replaced by 0xff: a lenient decoder would turn it into U+FFFD.
    const good = Buffer.from(JSON.stringify(withdrawal()))
    const at = good.indexOf(PEER) + 5
    const broken = Uint8Array.from(good)
    broken[at] = 0xff
    expect(violation(() => parseFrame(TopicMessage, broken, 'a')).message).toBe('a: not UTF-8 JSON')
  })

  it('rejects deeply nested JSON without blowing the stack', () => {
    for (const text of ['['.repeat(200_000) + ']'.repeat(200_000), JSON.stringify(withdrawal()).replace('"seq":18', '"seq":' + '['.repeat(100_000) + ']'.repeat(100_000))]) {
      violation(() => parseFrame(TopicMessage, new TextEncoder().encode(text), 'a'))
    }
  })

  it('rejects numbers that JSON turns into Infinity', () => {
    const text = JSON.stringify({ ok: true, size: 1, sha256: JOB, meta: meta() }).replace('"selectFromTime":1.25', '"selectFromTime":1e400')
    expect(text).toContain('1e400')
    violation(() => parseFrame(ChunkHeader, new TextEncoder().encode(text), 'h'))
    const e = violation(() => parseFrame(SegmentMeta, new TextEncoder().encode(JSON.stringify(meta()).replace('1.25', '-1e999')), 'm'))
    expect(e.message).toMatch(/^m: selectFromTime: /)
  })

  it('does not let a __proto__ key through or pollute Object.prototype', () => {
    const text = JSON.stringify(withdrawal()).replace(/}$/, ',"__proto__":{"polluted":true}}')
    const e = violation(() => parseFrame(TopicMessage, new TextEncoder().encode(text), 'a'))
    expect(e.message).toContain('__proto__')
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    // Inside a nested object as well.
    const text2 = JSON.stringify({ ...announcement() }).replace('"chunks":{', '"chunks":{"__proto__":{"polluted":true},')
    violation(() => parseFrame(TopicMessage, new TextEncoder().encode(text2), 'a'))
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('a maximal announcement still fits in MAX_ANNOUNCEMENT_BYTES', () => {
    const big = { ...announcement(), name: 'n'.repeat(512), settings: 's'.repeat(4096), addrs: Array.from({ length: 16 }, () => 'a'.repeat(256)), open: Array.from({ length: 1000 }, (_, i) => [i * 2, i * 2 + 1]) }
    const b = bytes(big)
    expect(b.byteLength).toBeLessThan(MAX_ANNOUNCEMENT_BYTES)
    expect(parseFrame(TopicMessage, b, 'a')).toEqual(big)
  })
})

// ---- ranges ------------------------------------------------------------------------------------

describe('toRanges / fromRanges', () => {
  it('handles the simple cases', () => {
    expect(toRanges([])).toEqual([])
    expect(toRanges([5])).toEqual([[5, 6]])
    expect(toRanges([3, 1, 2, 2, 7, 9, 8, 0])).toEqual([[0, 4], [7, 10]])
    expect(fromRanges([[0, 4], [7, 10]], 100)).toEqual([0, 1, 2, 3, 7, 8, 9])
    expect(fromRanges([], 10)).toEqual([])
    // Overlapping and repeated ranges yield each index once: a hostile announcement of 4,096 copies
    // of [0, 1000000) costs at most `total` numbers.
    expect(fromRanges([[2, 5], [0, 3], [2, 5], [4, 6]], 100)).toEqual([0, 1, 2, 3, 4, 5])
    expect(fromRanges(Array.from({ length: 4096 }, () => [0, 1_000_000] as [number, number]), 1000)).toHaveLength(1000)
  })

  it('round-trips random index sets, producing sorted, disjoint, non-adjacent, non-empty ranges', () => {
    const rnd = prng(0x5eed)
    for (let round = 0; round < 500; round++) {
      const total = 1 + Math.floor(rnd() * 3000)
      const density = rnd()
      const xs: number[] = []
      for (let i = 0; i < total; i++) if (rnd() < density) xs.push(i)
      // Shuffle and duplicate some, as an originator's open list might.
      const input = [...xs, ...xs.filter(() => rnd() < 0.1)].sort(() => rnd() - 0.5)
      const ranges = toRanges(input)
      const bad = ranges.filter(([a, b], i) => !(b > a) || (i > 0 && !(a > (ranges[i - 1] as [number, number])[1])))
      expect(bad).toEqual([])
      expect(fromRanges(ranges, total)).toEqual(xs)
      // And the ranges pass the announcement schema.
      if (ranges.length <= 4096) expect(parseFrame(JobAnnouncement, bytes({ ...announcement(), chunks: { total, open: xs.length, leased: 0, done: 0 }, open: ranges }), 'a').open).toEqual(ranges)
    }
  })

  it('never yields an index at or beyond the total, whatever the ranges say', () => {
    expect(fromRanges([[0, 1_000_000]], 5)).toEqual([0, 1, 2, 3, 4])
    expect(fromRanges([[10, 20], [2, 4]], 5)).toEqual([2, 3])
    expect(fromRanges([[0, 3]], 0)).toEqual([])
    const rnd = prng(42)
    for (let round = 0; round < 2000; round++) {
      const total = Math.floor(rnd() * 50)
      const ranges = Array.from({ length: Math.floor(rnd() * 8) }, (): [number, number] => {
        const a = Math.floor(rnd() * 80)
        return [a, a + 1 + Math.floor(rnd() * 1000)]
      })
      const out = fromRanges(ranges, total)
      expect(out.filter(i => !Number.isInteger(i) || i < 0 || i >= total), JSON.stringify({ ranges, total })).toEqual([])
      // Every index it does yield was inside one of the ranges.
      expect(out.every(i => ranges.some(([a, b]) => i >= a && i < b))).toBe(true)
    }
  })
})

// ---- fuzz --------------------------------------------------------------------------------------

describe('fuzz: parseFrame(TopicMessage, …)', () => {
  function expectOnlyViolation (payload: Uint8Array, label: string): void {
    let result: unknown
    try {
      result = parseFrame(TopicMessage, payload, 'announcement')
    } catch (err) {
      if (!(err instanceof ProtocolViolation)) throw new Error(`${label}: threw ${(err as Error)?.name}: ${(err as Error)?.message}`)
      expect(err.message.startsWith('announcement: ')).toBe(true)
      return
    }
    throw new Error(`${label}: returned a value for a random payload: ${JSON.stringify(result).slice(0, 300)}`)
  }

  it('random byte payloads only ever raise ProtocolViolation', () => {
    const rnd = prng(1)
    const alphabet = Buffer.from('{}[]":,0123456789-.eE truefalsnul\\"vtypejobgone')
    for (let i = 0; i < 3000; i++) {
      const len = Math.floor(rnd() * (i % 10 === 0 ? 4000 : 200))
      const b = new Uint8Array(len)
      // Half pure noise, half noise drawn from JSON-ish characters so the parser gets further.
      const jsonish = i % 2 === 0
      for (let j = 0; j < len; j++) b[j] = jsonish ? alphabet[Math.floor(rnd() * alphabet.length)] as number : Math.floor(rnd() * 256)
      expectOnlyViolation(b, `bytes #${i}`)
    }
    recordTally({ section: PUBSUB, fault: 'fuzz: 3,000 random byte payloads (half pure noise, half JSON-ish characters, up to 4,000 bytes) parsed as topic messages', happened: 'all 3,000 rejected with a ProtocolViolation; no other exception, nothing accepted', lost: 'nothing' })
  })

  it('random JSON-ish objects only ever raise ProtocolViolation', () => {
    const rnd = prng(2)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T
    const KEYS = ['v', 'type', 'jobId', 'originator', 'seq', 'state', 'name', 'settings', 'totalFrames', 'chunks', 'open', 'addrs', 'total', 'leased', 'done', '__proto__', 'constructor', 'x', '']
    const STRINGS = ['', 'job', 'gone', JOB, PEER, 'encoding', '\u0000', '\ud800', 'a'.repeat(5000), '../', '0']
    const NUMBERS = [0, 1, -1, 1.5, 2 ** 53, -0, 1e308, 4096, 1_000_001]
    const value = (depth: number): unknown => {
      const r = rnd()
      if (r < 0.1) return null
      if (r < 0.2) return rnd() < 0.5
      if (r < 0.4) return pick(NUMBERS)
      if (r < 0.6) return pick(STRINGS)
      if (depth > 4) return 0
      if (r < 0.8) return Array.from({ length: Math.floor(rnd() * 5) }, () => value(depth + 1))
      const o: Record<string, unknown> = {}
      for (let k = Math.floor(rnd() * 8); k > 0; k--) o[pick(KEYS)] = value(depth + 1)
      return o
    }
    for (let i = 0; i < 3000; i++) {
      const v = i % 3 === 0 ? { type: pick(['job', 'gone', 'x']), v: 1, ...(value(0) as object) } : value(0)
      expectOnlyViolation(bytes(v), `object #${i}`)
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    recordTally({ section: PUBSUB, fault: 'fuzz: 3,000 random JSON objects built from the announcement\'s own keys (plus __proto__, constructor), nested up to 5 deep', happened: 'all 3,000 rejected with a ProtocolViolation; Object.prototype not polluted', lost: 'nothing' })
  })

  it('valid announcements with one field made invalid are always refused, naming that field', () => {
    const rnd = prng(3)
    const INVALID: Record<string, unknown[]> = {
      v: [0, 2, '1', null],
      type: ['jobs', '', null, 1],
      jobId: ['', JOB.slice(2), JOB.toUpperCase(), 7],
      originator: ['', 'x', '0'.repeat(40), 'O'.repeat(40), 'b' + 'a'.repeat(20) + '-', 'l'.repeat(129)],
      seq: [-1, 0.5, '1', 2 ** 60],
      state: ['', 'ENCODING', 'paused'],
      name: ['n'.repeat(513), 0, null],
      settings: ['s'.repeat(4097), [], {}],
      totalFrames: [-1, 100_000_001, 0.1],
      chunks: [null, [], { total: 1, open: 1, leased: 1 }, { total: 1, open: 1, leased: 1, done: -1 }, { total: 1, open: 1, leased: 1, done: 1, more: 1 }],
      open: [null, [[1, 1]], [[2, 1]], [[0]], [[0, 1, 2]], [['0', 1]], [[0, 1_000_001]]],
      addrs: [null, 'a', [1], Array.from({ length: 17 }, () => 'a'), ['a'.repeat(257)]]
    }
    for (let i = 0; i < 2000; i++) {
      const field = pick(Object.keys(INVALID))
      const bad = pick(INVALID[field] as unknown[])
      const msg = { ...announcement(), seq: Math.floor(rnd() * 1e9), [field]: bad }
      let thrown: unknown
      try { parseFrame(TopicMessage, bytes(msg), 'announcement') } catch (err) { thrown = err }
      expect(thrown, `${field}=${JSON.stringify(bad)?.slice(0, 40)}`).toBeInstanceOf(ProtocolViolation)
      expect((thrown as Error).message, field).toContain(field)
    }
    recordTally({ section: PUBSUB, fault: 'fuzz: 2,000 valid announcements with one field made invalid (wrong type, out of range, too long, extra key)', happened: 'all 2,000 rejected with a ProtocolViolation naming the bad field', lost: 'nothing' })
    function pick<T> (xs: readonly T[]): T { return xs[Math.floor(rnd() * xs.length)] as T }
  })

  it('byte-flipped valid announcements either parse faithfully or raise ProtocolViolation', () => {
    const rnd = prng(4)
    const base = Buffer.from(JSON.stringify(announcement()))
    let refused = 0
    for (let i = 0; i < 3000; i++) {
      const b = Uint8Array.from(base)
      for (let flips = 1 + Math.floor(rnd() * 3); flips > 0; flips--) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256)
      let parsed: unknown
      try {
        parsed = parseFrame(TopicMessage, b, 'announcement')
      } catch (err) {
        expect(err).toBeInstanceOf(ProtocolViolation)
        refused++
        continue
      }
      // If it was accepted, it must be exactly what the bytes say and valid by the schema.
      expect(parsed).toEqual(JSON.parse(Buffer.from(b).toString('utf8')))
      expect(TopicMessage.safeParse(parsed).success).toBe(true)
    }
    expect(refused).toBeGreaterThan(2000)
    recordTally({ section: PUBSUB, fault: 'fuzz: 3,000 valid announcements with 1–3 random bytes overwritten', happened: `${refused.toLocaleString('en-US')} rejected with a ProtocolViolation; the other ${(3000 - refused).toLocaleString('en-US')} parsed to exactly what their bytes say and pass the schema`, lost: 'nothing' })
  })
})
