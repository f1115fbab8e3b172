import type { EncoderId, FidelityReport, PlanOptions, Rational } from '../media/index.js'
import type { ChunkState, JobState, OriginatorRefusalCode, Refusal } from '../swarm/index.js'
import type { CheckDepth, VerifyMode } from './verification-policy.js'

/** On-disk format version of job.json; bump with a migration when the shape changes. */
export const JOB_RECORD_VERSION = 1

/** The states are the wire contract's (swarm/contract.ts): announced, persisted and shown alike. */
export type { ChunkState, JobState }

export interface SegmentRecord {
  /** File name inside the job's segments/ folder. */
  file: string
  size: number
  sha256: string
  selectFromTime: number
  packetCount: number
  /** Made from the decoded source: its frames are numbered (media's splitByDecoding), not timed as the source's. */
  decoded?: boolean
  /** Cut at an IDR or IRAP picture (media's Segment.cutProven): the merge need not compare its pictures with the source's. */
  cutProven?: boolean
}

export interface LeaseRecord {
  id: string
  holder: string
  issuedAt: number
  expiresAt: number
  framesDone: number
  fps: number
  /** Last heartbeat; absent until the first. */
  renewedAt?: number
  /** A backup copy of a straggling chunk rather than the first lease on it. */
  backup?: boolean
}

export interface ChunkFailure { peer: string, reason: string, at: number }

export interface ResultRecord {
  file: string
  size: number
  sha256: string
  encodedBy: string
  at: number
  /**
   * How a peer's result was checked (verification-policy.ts): `full` (structure and pictures) or
   * `structural` (structure only, adaptive mode). Absent for this node's own results (parsed only)
   * and in records written before adaptive checking existed (every peer's result was checked in full).
   */
  check?: CheckDepth
  /**
   * The version of the job's encoder that made it, as its peer advertised it (this node's own for
   * its own results): which build encoded what. A peer's word, kept for the record; absent when
   * the peer advertised none, and in records written before versions were kept.
   */
  encoderVersion?: string
}

export interface ChunkRecord {
  index: number
  startFrame: number
  frames: number
  state: ChunkState
  segment?: SegmentRecord
  lease?: LeaseRecord
  /** A second copy of a straggling chunk, given out when nothing is open; first verified result wins. */
  backup?: LeaseRecord
  /** Peers whose lease on this chunk lapsed, was released or ended otherwise (the last 16). */
  pastHolders: string[]
  /**
   * The lease that ended last: its holder's late result is still welcome under that lease for a
   * while (LeaseTable.beginUpload); older leases' are not.
   */
  formerLease?: { id: string, holder: string, endedAt: number }
  /** Peers whose lease on this chunk reached its deadline without a result: they may not claim it again. */
  overdue?: string[]
  /** Given back by enough peers that only this peer (the originator's own worker) may claim it now. */
  reservedFor?: string
  failures: ChunkFailure[]
  result?: ResultRecord
}

export interface JobRecord {
  version: typeof JOB_RECORD_VERSION
  id: string
  sourcePath: string
  sourceSha256: string
  sourceSize: number
  settings: string
  /** The encoder the settings are for (`swarm add --encoder`); absent: x264, as every job before the option. */
  encoder?: EncoderId
  /** Output path the user asked for, if any. */
  requestedOutput?: string
  /** Final output path once merged. */
  output: string | null
  state: JobState
  error?: string
  originator: string
  createdAt: number
  updatedAt: number
  totalFrames: number
  video: { frameRate: Rational, pixFmt: string, width: number, height: number }
  /** How the job was planned (chunk size): for the record; a resumed split cuts the chunks' own ranges (startFrame, frames). */
  plan?: PlanOptions
  chunks: ChunkRecord[]
  /** Counters for status and the benchmark. */
  stats?: JobStats
  /**
   * The settings every chunk is encoded with: the user's plus the source's colour description and
   * SAR where the user set none. Absent in records written before it existed (the user's are used).
   */
  encodeSettings?: string
  /** What the source loses with this job's settings and encoder, said when it was added (media/colour.ts hdrLosses). */
  warnings?: string[]
  /** Damage the user chose to encode anyway (`--allow-damaged`): what the probe found. */
  damage?: string
  /** The source's CEA-608/708 captions are left out at the user's request (`--drop-captions`). */
  dropCaptions?: boolean
  /** The merged output compared with its source; the job fails when a check fails. */
  fidelity?: FidelityReport
  /** How peers' results are checked (verification-policy.ts); absent in records written before it existed: `all`. */
  verify?: VerifyMode
}

export interface JobStats {
  /** First leases and re-leases after a lapse or release (not backups). */
  leases: number
  backupLeases: number
  /** Verified results that arrived for a chunk already done. */
  droppedResults: number
  /** Kept results thrown away because their peer was later caught with a wrong one (absent until the first). */
  requeuedResults?: number
  /** Chunks this node's own encode ended early so that an idle peer took the rest (jobs/straggler.ts; absent until the first). */
  splits?: number
}

export function refusal (code: OriginatorRefusalCode, message: string): Refusal {
  return { ok: false, code, message }
}
