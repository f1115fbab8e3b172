// The jobs layer's public face: the originator's state machine, leases and persistence.
export { Originator, type OriginatorOptions } from './originator.js'
export { InputError, type AddJobRequest } from './admission.js'
export { maxResultBytes } from './result-intake.js'
export { DEFAULT_LEASE_MS } from './lease-table.js'
export { ADAPTIVE_RULE, VERIFY_MODES, escapeProbability, parseDraws, scriptedDraws, type AdaptiveRule, type CheckDepth, type VerifyMode } from './verification-policy.js'
export type { JobRecord, ChunkRecord, ChunkState, JobState, LeaseRecord, SegmentRecord } from './types.js'
