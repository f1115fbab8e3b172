// The worker layer's public face: the claimant that encodes chunks for any originator.
export { Worker, ENCODE_NICENESS, maxSegmentBytes, type WorkerOptions, type OriginatorLink, type JobView, type ChunkEncoder } from './worker.js'
export { standInEncoder } from './stand-in.js'
