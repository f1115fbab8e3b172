// The worker layer's public face: the claimant that encodes chunks for any originator.
export { Worker, DEFAULT_ENCODE_PRIORITY, maxSegmentBytes, type OwnEncodeProgress, type WorkerOptions, type OriginatorLink, type ChunkEncoder } from './worker.js'
export { ClaimPolicy, type ClaimPolicyOptions, type ChunkRef, type JobRef, type JobView, type Pick, type TaskStage } from './claim-policy.js'
export { standInEncoder } from './stand-in.js'
