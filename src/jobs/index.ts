// The jobs layer's public face: the originator's state machine, leases and persistence.
export { Originator, InputError, DEFAULT_LEASE_MS, type OriginatorOptions } from './originator.js'
export type { JobRecord, ChunkRecord, ChunkState, JobState, LeaseRecord, LeaseGrant, Refusal, RefusalCode, ChunkEncodeMeta, SegmentRecord } from './types.js'
