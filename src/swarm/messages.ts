import { z } from 'zod'
import { JOB_STATES, WIRE_ENCODER_IDS, type RefusalCode, type SegmentMeta as SegmentMetaShape } from './contract.js'

/**
 * Every message that crosses the network, as a schema. Anything that does not parse is refused at
 * the edge, before it reaches the job or worker code. docs/protocol.md mirrors this file.
 */

const HexId = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 hex digits')
/** Peer ids as libp2p prints them (base58btc or CIDv1), bounded so nothing huge gets parsed. */
const PeerIdString = z.string().min(32).max(128).regex(/^[1-9A-HJ-NP-Za-km-z]+$|^b[a-z2-7]+$/, 'not a peer id')
const ChunkIndex = z.number().int().min(0).max(1_000_000)
const Millis = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const Nonce = z.string().regex(/^[0-9a-f]{32}$/, 'expected a 128-bit hex nonce')
const Base64Signature = z.string().min(1).max(1024).regex(/^[A-Za-z0-9+/]+={0,2}$/, 'expected base64')
const Reason = z.string().max(2000)
/** Ours are RefusalCode; any code of this shape parses, so another implementation's is no violation (contract.ts). */
const Code = z.custom<RefusalCode>(c => typeof c === 'string' && /^[a-z-]{1,64}$/.test(c), 'expected 1-64 characters of a-z and -')
const Sha256Hex = HexId

// ---- gossipsub: job announcements -------------------------------------------------------------

/**
 * The most chunks a job may have. A 3-hour film cut one GOP per chunk has about 11,000; a bound
 * keeps a 400-byte announcement from making every worker hold a million chunks (it once could).
 */
export const MAX_CHUNKS_PER_JOB = 20_000
const ChunkCount = z.number().int().min(0).max(MAX_CHUNKS_PER_JOB)

/** Open chunks as half-open ranges [start, end), so a 2,000-chunk job stays a few hundred bytes. */
const ChunkRanges = z.array(z.tuple([ChunkCount, ChunkCount]).refine(([a, b]) => b > a, 'empty range')).max(4096)

export const JobAnnouncement = z.object({
  v: z.literal(1),
  type: z.literal('job'),
  jobId: HexId,
  originator: PeerIdString,
  /** Increases with every announcement of this job by its originator; older ones are ignored. */
  seq: Millis,
  state: z.enum(JOB_STATES),
  name: z.string().max(512),
  settings: z.string().max(4096),
  /** The encoder the settings are for; absent: x264. Nodes older than the field refuse an announcement that has it. */
  encoder: z.enum(WIRE_ENCODER_IDS).optional(),
  totalFrames: z.number().int().min(0).max(100_000_000),
  chunks: z.object({ total: ChunkCount, open: ChunkCount, leased: ChunkCount, done: ChunkCount }).strict(),
  open: ChunkRanges,
  /** When nothing is open: leased chunks a second peer may take a backup copy of, furthest from done first. */
  backup: z.array(ChunkIndex).max(64).optional(),
  /** Chunks just done while another peer still held them: that peer should stop encoding them. */
  settled: z.array(ChunkIndex).max(64).optional(),
  /**
   * Peers that asked for a chunk and found none, longest waiting first: the i-th of them claims the
   * i-th lowest open chunk, the others leave those chunks alone for a moment.
   */
  waiting: z.array(PeerIdString).max(64).optional(),
  /** Where the originator listens, so a worker that has never met it can dial it. */
  addrs: z.array(z.string().max(256)).max(16)
}).strict()
export type JobAnnouncement = z.infer<typeof JobAnnouncement>

export const JobWithdrawal = z.object({
  v: z.literal(1),
  type: z.literal('gone'),
  jobId: HexId,
  originator: PeerIdString,
  seq: Millis
}).strict()
export type JobWithdrawal = z.infer<typeof JobWithdrawal>

export const TopicMessage = z.discriminatedUnion('type', [JobAnnouncement, JobWithdrawal])
export type TopicMessage = z.infer<typeof TopicMessage>

// ---- lease protocol -----------------------------------------------------------------------------

export const Claim = z.object({
  v: z.literal(1),
  jobId: HexId,
  chunk: ChunkIndex,
  claimant: PeerIdString,
  issuedAt: Millis,
  expiresAt: Millis,
  nonce: Nonce
}).strict()
export type Claim = z.infer<typeof Claim>

export const SignedClaim = z.object({ claim: Claim, signature: Base64Signature }).strict()
export type SignedClaim = z.infer<typeof SignedClaim>

export const Lease = z.object({
  v: z.literal(1),
  jobId: HexId,
  chunk: ChunkIndex,
  holder: PeerIdString,
  originator: PeerIdString,
  leaseId: z.string().regex(/^[0-9a-f]{24}$/),
  issuedAt: Millis,
  expiresAt: Millis
}).strict()
export type Lease = z.infer<typeof Lease>

export const SignedLease = z.object({ lease: Lease, signature: Base64Signature }).strict()
export type SignedLease = z.infer<typeof SignedLease>

const LeaseRef = { jobId: HexId, chunk: ChunkIndex, leaseId: z.string().regex(/^[0-9a-f]{24}$/) }

export const LeaseRequest = z.discriminatedUnion('type', [
  z.object({ type: z.literal('claim'), ...SignedClaim.shape }).strict(),
  z.object({ type: z.literal('heartbeat'), ...LeaseRef, framesDone: z.number().int().min(0).max(100_000_000), fps: z.number().min(0).max(1_000_000) }).strict(),
  z.object({ type: z.literal('release'), ...LeaseRef, reason: Reason }).strict()
])
export type LeaseRequest = z.infer<typeof LeaseRequest>

export const Refusal = z.object({ ok: z.literal(false), code: Code, message: Reason }).strict()

// Discriminated on `ok`, so a bad answer's error names the field that is wrong.
export const ClaimAnswer = z.discriminatedUnion('ok', [z.object({ ok: z.literal(true), ...SignedLease.shape }).strict(), Refusal])
export const HeartbeatAnswer = z.discriminatedUnion('ok', [z.object({ ok: z.literal(true), expiresAt: Millis }).strict(), Refusal])
export const PlainAnswer = z.discriminatedUnion('ok', [z.object({ ok: z.literal(true) }).strict(), Refusal])

// ---- chunk and result protocols -----------------------------------------------------------------

export const ChunkRequest = z.object(LeaseRef).strict()
export type ChunkRequest = z.infer<typeof ChunkRequest>

/**
 * Any rational ffprobe reports and x264's --fps takes (32-bit signed terms): screen recorders and
 * phones give rates like 243090000/8111111, which a tighter bound made every peer refuse.
 */
const Rational = z.object({ num: z.number().int().min(1).max(0x7fffffff), den: z.number().int().min(1).max(0x7fffffff) }).strict()

/** The schema of contract.ts's SegmentMeta, which owns the type. */
export const SegmentMeta = z.object({
  frames: z.number().int().min(1).max(10_000_000),
  selectFromTime: z.number().finite(),
  settings: z.string().max(4096),
  encoder: z.enum(WIRE_ENCODER_IDS).optional(),
  frameRate: Rational,
  pixFmt: z.string().regex(/^[a-z0-9_]{1,32}$/),
  width: z.number().int().min(1).max(16384),
  height: z.number().int().min(1).max(16384)
}).strict() satisfies z.ZodType<SegmentMetaShape>

export const ChunkHeader = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), size: z.number().int().min(0), sha256: Sha256Hex, meta: SegmentMeta }).strict(),
  Refusal
])
export type ChunkHeader = z.infer<typeof ChunkHeader>

export const ResultRequest = z.object({ ...LeaseRef, size: z.number().int().min(1), sha256: Sha256Hex }).strict()
export type ResultRequest = z.infer<typeof ResultRequest>

/** Parses a JSON frame against a schema; a message that does not fit throws a ProtocolViolation naming the field. */
export function parseFrame<T extends z.ZodTypeAny> (schema: T, bytes: Uint8Array, what: string): z.infer<T> {
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch {
    throw new ProtocolViolation(`${what}: not UTF-8 JSON`)
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue?.path.join('.') ?? ''
    throw new ProtocolViolation(`${what}: ${where !== '' ? `${where}: ` : ''}${issue?.message ?? 'invalid'}`)
  }
  return parsed.data
}

export function encodeFrame (value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}

export class ProtocolViolation extends Error {
  override name = 'ProtocolViolation'
}

/** Open chunk indexes → sorted half-open ranges. */
export function toRanges (indexes: number[]): Array<[number, number]> {
  const sorted = [...new Set(indexes)].sort((a, b) => a - b)
  const ranges: Array<[number, number]> = []
  for (const i of sorted) {
    const last = ranges[ranges.length - 1]
    if (last !== undefined && last[1] === i) last[1] = i + 1
    else ranges.push([i, i + 1])
  }
  return ranges
}

/**
 * Ranges → indexes, each at most once and below `total`, so a hostile announcement (overlapping
 * ranges repeated thousands of times) cannot make us allocate more than `total` numbers.
 */
export function fromRanges (ranges: Array<[number, number]>, total: number): number[] {
  const out: number[] = []
  let next = 0
  for (const [a, b] of [...ranges].sort((x, y) => x[0] - y[0])) {
    for (let i = Math.max(a, next); i < Math.min(b, total); i++) out.push(i)
    next = Math.max(next, b)
  }
  return out
}
