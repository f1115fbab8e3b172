// The worker layer's public face: the claimant that encodes chunks for any originator.
export { Worker, ENCODE_NICENESS, type WorkerOptions, type OriginatorLink, type HeldLease, type JobView, type SegmentMeta, type ClaimAnswer, type PlainAnswer, type ChunkEncoder } from './worker.js'
export { standInEncoder } from './stand-in.js'
