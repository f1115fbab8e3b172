/**
 * Protocol identifiers and limits. Every id carries a version: a change that an older node could
 * misread gets a new id, and docs/protocol.md describes each one byte for byte.
 */
export const PROTOCOL_PREFIX = '/swarm-encode'

/** Claims, heartbeats and releases: one request frame, one answer frame. */
export const LEASE_PROTOCOL = `${PROTOCOL_PREFIX}/lease/1.0.0`
/** A leaseholder downloads its chunk's segment from the originator. */
export const CHUNK_PROTOCOL = `${PROTOCOL_PREFIX}/chunk/1.0.0`
/** A worker uploads an encoded chunk to the originator. */
export const RESULT_PROTOCOL = `${PROTOCOL_PREFIX}/result/1.0.0`
/** Our own DHT, never the public IPFS one. */
export const KAD_PROTOCOL = `${PROTOCOL_PREFIX}/kad/1.0.0`
/** Gossipsub topic for job announcements. */
export const JOBS_TOPIC = 'swarm-encode/jobs/1'

/** Largest JSON frame on any stream (requests, answers, headers). */
export const MAX_CONTROL_FRAME = 16 * 1024
/** Largest announcement; a 2,000-chunk job needs far less because open chunks travel as ranges. */
export const MAX_ANNOUNCEMENT_BYTES = 64 * 1024
/** File bytes travel in frames of at most this size, exactly as many bytes as the header announced. */
export const DATA_FRAME_BYTES = 256 * 1024
/** Largest segment or result we accept. */
export const MAX_TRANSFER_BYTES = 8 * 1024 * 1024 * 1024

/** No byte for this long on a stream → it is aborted. */
export const STREAM_IDLE_TIMEOUT_MS = 30_000
/**
 * Every segment or result transfer must end within this allowance plus its size at
 * TRANSFER_FLOOR_BYTES_PER_S. The idle limit alone is restarted by every frame, so a peer that sends
 * one byte every 20 s held a transfer (and, before downloads ran beside the claim loop, a whole
 * worker) for as long as it liked. 64 KiB/s is far below any LAN or home uplink: an honest 50 MB
 * segment gets 30 s + 13 min.
 */
export const TRANSFER_ALLOWANCE_MS = 30_000
export const TRANSFER_FLOOR_BYTES_PER_S = 64 * 1024

/** How long a transfer of `size` bytes may take in all (see TRANSFER_ALLOWANCE_MS). */
export function transferDeadlineMs (size: number, allowanceMs = TRANSFER_ALLOWANCE_MS): number {
  return allowanceMs + Math.ceil(size / TRANSFER_FLOOR_BYTES_PER_S * 1000)
}

/** A request/answer exchange (claim, heartbeat, release) must finish within this. */
export const REQUEST_TIMEOUT_MS = 15_000

/** How far in the future a claim's issue time may be (clock skew between peers). */
export const CLAIM_MAX_SKEW_MS = 30_000
/** A claim is valid for at most this long after it was issued. */
export const CLAIM_MAX_LIFETIME_MS = 60_000
/** How long a claim a worker makes stays valid. */
export const CLAIM_LIFETIME_MS = 20_000

/** Originators re-announce their jobs this often, so peers that join late learn of them. */
export const ANNOUNCE_INTERVAL_MS = 5_000

/**
 * How long an originator gathers a job's changes into one announcement (a job's first open chunk
 * goes out at once): 10 ms per peer, between 100 ms and 1 s. Every node relays every announcement,
 * so what the swarm spends on one grows with its size; workers claim from what they last heard and
 * the originator arbitrates, so a view a few hundred ms old costs a refused claim at most. At 50
 * nodes on one host, 100 ms batches kept every host busy relaying during the split and the first
 * downloads took 0.7-2.5 s; with 400 ms, 0.17-0.34 s.
 */
export function announcementBatchMs (swarmSize: number): number {
  return Math.min(1000, Math.max(100, 10 * swarmSize))
}
