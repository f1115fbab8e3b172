/**
 * The encode protocols as the code on each end sees them: the originator's arbiter (src/jobs)
 * answers, the worker (src/worker) asks, this layer carries. messages.ts holds the same shapes as
 * schemas (and imports them from here, never the other way); docs/protocol.md §4-§6 and §9
 * describe them. This file imports nothing, so the dashboard's build can read it too.
 */

/** A job's states: `splitting` → `encoding` → `merging` → `done`, or `failed` with a reason. Announced, persisted and shown. */
export const JOB_STATES = ['splitting', 'encoding', 'merging', 'done', 'failed'] as const
export type JobState = typeof JOB_STATES[number]

/** A chunk's states. pending: segment not cut yet; open: anyone may claim; leased: one peer holds it; done: verified result kept. */
export const CHUNK_STATES = ['pending', 'open', 'leased', 'done'] as const
export type ChunkState = typeof CHUNK_STATES[number]

/** Refusals of the originator's lease table and result check. */
export type OriginatorRefusalCode =
  | 'unknown-job'
  | 'unknown-chunk'
  | 'not-open'
  | 'already-done'
  | 'not-holder'
  | 'lease-expired'
  | 'job-finished'
  | 'bad-result'
  | 'too-many-leases'
  | 'too-many-uploads'
  | 'duplicate-upload'
  | 'no-space'

/** Refusals of a claim whose signature does not hold (signing.ts). */
export type SignatureRefusalCode = 'bad-signature' | 'wrong-signer' | 'expired' | 'replayed' | 'not-yet-valid'

/** Refusals of the stream layer: a frame that does not parse, a result larger than its chunk can be. */
export type StreamRefusalCode = 'bad-request' | 'too-large'

/**
 * Every code this implementation answers with. `unreachable` never crosses the wire: the node's own
 * gate answers a claim with it when no connection to the originator can be made.
 *
 * The schema admits any code of 1-64 characters of a-z and '-', so another implementation's code
 * still parses; it reaches the worker as a refusal it has no special case for.
 */
export type RefusalCode = OriginatorRefusalCode | SignatureRefusalCode | StreamRefusalCode | 'banned' | 'unreachable'

export interface Refusal { ok: false, code: RefusalCode, message: string }

/**
 * Refusals a healthy swarm answers all the time, because peers act on views a moment old: a chunk
 * someone else claimed first (not-open), a result or heartbeat for a chunk another copy finished
 * (already-done) or a job that ended (job-finished) or was cancelled (unknown-job), a late
 * heartbeat or release for a lease that lapsed or passed on (lease-expired, not-holder), and a
 * peer at its lease limit asking for more (too-many-leases). The lease table logs the events
 * behind them (a lapse, a takeover) itself. Every other code points at a real problem.
 */
const EXPECTED_RACES: ReadonlySet<string> = new Set<RefusalCode>(['not-open', 'already-done', 'job-finished', 'unknown-job', 'lease-expired', 'not-holder', 'too-many-leases'])

/** Whether a refusal is one of the races above, logged at debug on both ends. */
export function isExpectedRace (code: string): boolean { return EXPECTED_RACES.has(code) }

/** Every answer of the protocols, on the wire and in-process: the granted shape, or a refusal. */
export type Answer<T extends object = object> = ({ ok: true } & T) | Refusal

/** What an arbiter's grant must say for the lease to be signed; the jobs layer's LeaseRecord is one. */
export interface LeaseGrant { lease: { id: string, issuedAt: number, expiresAt: number } }

/**
 * A lease as its holder keeps it, and names it in every later request on the chunk: the signed
 * lease (messages.ts Lease) without the holder, who is the keeper itself.
 */
export interface ChunkLease {
  jobId: string
  chunk: number
  leaseId: string
  originator: string
  /** When the originator issued it (its clock); with expiresAt, the lease's length. */
  issuedAt: number
  expiresAt: number
}

/**
 * The encoders a job may name on the wire (media/encoders/types.ts ENCODER_IDS is the same list;
 * this file imports nothing). A job of x264 leaves the field out, so nodes from before the field
 * read its announcements as they always did.
 */
export const WIRE_ENCODER_IDS = ['x264', 'x265', 'svt-av1', 'aomenc'] as const
export type WireEncoderId = typeof WIRE_ENCODER_IDS[number]

/** What a chunk's encode needs besides its segment's bytes; sent with the segment (messages.ts SegmentMeta is its schema). */
export interface SegmentMeta {
  /** Frames to encode, from the first shown at or after selectFromTime. */
  frames: number
  selectFromTime: number
  /** The effective settings: the user's plus the source's colour description and SAR. */
  settings: string
  /** Whose settings they are; absent means x264 (every job before jobs named their encoder). */
  encoder?: WireEncoderId
  frameRate: { num: number, den: number }
  pixFmt: string
  width: number
  height: number
}

/** A segment a leaseholder may fetch: where the arbiter keeps it, and what the encode needs. */
export interface SegmentOffer { path: string, size: number, sha256: string, meta: SegmentMeta }

/**
 * Called with a segment's header before any of its bytes is written: throws to refuse the
 * download (too large for what the job announced, no room on disk). The worker's policy; the
 * swarm layer only calls it.
 */
export type SegmentCheck = (header: { size: number, meta: SegmentMeta }) => Promise<void>

/** A segment as the worker has it: `owned` when it is a downloaded copy the worker deletes. */
export interface FetchedSegment { path: string, owned: boolean, meta: SegmentMeta }

/**
 * A peer caught lying: a result that failed verification, a segment that is not one, requests
 * that keep breaking the protocol. Whoever catches it reports it; the node's block list (bans.ts)
 * bans the peer from the job and, for a while, from the node, and the edge refuses it ('banned').
 */
export interface Offence {
  peer: string
  /** The job it lied about, when there is one: it stays banned from that job after the node-wide ban ends. */
  jobId?: string
  /** What it did, in words: logged and shown in `swarm peers` and `swarm status`. */
  reason: string
}

/** How the parts of a node report a liar (the originator, the worker, the stream handlers). */
export type ReportOffence = (offence: Offence) => void
