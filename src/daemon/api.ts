import { z } from 'zod'
// Straight from the contract, not swarm/index.ts: the dashboard's build reads this file for its
// types, and the contract imports nothing (the swarm layer's face would pull in libp2p).
import { WIRE_ENCODER_IDS, type ChunkState, type JobState } from '../swarm/contract.js'
import type { EncodePriority } from '../media/priority.js'

/**
 * The local control API between the `swarm` CLI and a running `swarm join`. Bound to 127.0.0.1
 * only, every request carries the bearer token from `<home>/control.json`. These shapes are also
 * what `swarm status --json` prints, so scripts can rely on them.
 */
export const API_VERSION = 1

/** A job's and a chunk's states are the wire contract's (src/swarm/contract.ts). */
export { JOB_STATES } from '../swarm/contract.js'
export type { ChunkState, JobState }

export interface ChunkCounts { total: number, open: number, leased: number, done: number }

export interface ChunkStatus {
  index: number
  state: ChunkState
  frames: number
  /** Peer holding the lease, while leased. */
  holder?: string
  /** Progress the holder reported in its last heartbeat. */
  framesDone?: number
  fps?: number
  /** Peer whose verified result was taken. */
  encodedBy?: string
}

export interface JobStatus {
  id: string
  file: string
  settings: string
  /** The encoder the settings are for (`swarm add --encoder`). */
  encoder: string
  /**
   * Jobs this node originated: connected peers that advertise the job's encoder. 0 means only this
   * node encodes it (status says so); peers that advertise nothing are not counted.
   */
  encoderPeers?: number
  /** What the source loses with the job's settings and encoder (an HDR source written in 8 bits, HDR10 metadata the encoder cannot write). */
  warnings?: string[]
  /** Jobs this node originated: done chunks by the encoder version that made them ("unknown": its peer advertised none). */
  encoderVersions?: Record<string, number>
  state: JobState
  output: string | null
  error?: string
  /** This node is the originator (it added the job). */
  local: boolean
  originator: string
  createdAt: string
  updatedAt: string
  totalFrames: number
  /** Frames of done chunks plus the progress holders reported (0 for other originators' jobs). */
  framesDone: number
  /** Aggregate speed: the sum of the fps the holders of leased chunks last reported (0 for other originators' jobs). */
  fps: number
  chunks: ChunkCounts
  encodedBy: Record<string, number>
  chunkList?: ChunkStatus[]
  /** Peers that gave chunks of this job back with a reason (x264 failed, a segment they refused…): latest reason each. */
  givenBack?: Array<{ peer: string, times: number, reason: string }>
  /** The source was found truncated and encoded anyway (--allow-damaged): what was found. */
  damage?: string
  /** The output compared with its source, once merged (see docs/operations.md). */
  fidelity?: FidelityReport
  /**
   * Jobs this node originated: how peers' results are checked (`all`: structure and pictures, every
   * one; `adaptive`: structure every one, pictures for each peer's first and then a random share),
   * and how the results kept in the job's done chunks were checked: `full`, `structural` (structure
   * only), `own` (encoded by this node: parsed only).
   */
  verification?: { mode: VerifyMode, full: number, structural: number, own: number }
  /**
   * Another originator's job: how this node's worker reaches that originator, once it has tried.
   * `control-only`: the job is heard over gossip but no connection can be made in either direction,
   * directly or through a relay, so this node claims nothing of it (`reason` says why).
   */
  reach?: { kind: 'direct' | 'relayed' | 'control-only', via?: string, reason?: string }
}

export interface FidelityReport {
  ok: boolean
  checks: Array<{ name: string, ok: boolean, source: string, output: string, detail?: string }>
}

/** How a peer was found: by mDNS on the LAN, a --bootstrap address, the DHT, or it dialled us (`inbound`). */
export type FoundBy = 'mdns' | 'bootstrap' | 'dht' | 'inbound'

/** How a connected peer is reached: a direct connection (either side dialled), or relayed via a relay's peer id. */
export interface PeerPathInfo {
  connection: 'direct' | 'relayed'
  via?: string
}

/** An encoder a peer says it has (identify's agent version: swarm/capabilities.ts). */
export interface PeerEncoder { encoder: string, version: string }

export interface PeerStatus extends PeerPathInfo {
  id: string
  addresses: string[]
  foundBy: FoundBy[]
  /** The encoders the peer advertises; absent when it names none (a node from before they were advertised, or not a swarm node). */
  encoders?: PeerEncoder[]
  /** What this peer encodes for jobs we know about: chunk labels like "<jobId prefix>#<chunk>". */
  encoding: string[]
}

/** A connected peer as `swarm peers` shows it (GET /v1/peers). */
export interface PeerInfo extends PeerPathInfo {
  id: string
  /** Remote addresses of the open connections. */
  addresses: string[]
  /** How the peer was found (several when more than one source reported it). */
  foundBy: FoundBy[]
  /** The encoders the peer advertises (see PeerStatus). */
  encoders?: PeerEncoder[]
  /** Round trip of a libp2p ping in milliseconds; null when the peer did not answer in time. */
  latencyMs: number | null
  /** Chunks of this node's jobs the peer holds leases on, with the progress it last reported. */
  encoding: Array<{ jobId: string, chunk: number, framesDone: number, frames: number, fps: number }>
  /** Sum of `encoding[].fps`. */
  fps: number
}

/** A peer that was found (mDNS, bootstrap, DHT) but could not be connected to. */
export interface UnreachablePeerInfo {
  id: string
  foundBy: FoundBy[]
  /** Failed dials in a row; the next one is `retryInMs` away (the delay doubles up to 5 minutes). */
  attempts: number
  /** Why the first failure happened, in words. */
  error: string
  retryInMs: number
}

/**
 * A peer this node caught lying (a result that failed verification, a segment that is not one,
 * requests that kept breaking the protocol): banned from the job it lied about and, until `until`,
 * from this node. `swarm peers unban ID` lifts it.
 */
export interface BannedPeerInfo {
  id: string
  /** What it did, as logged when it was banned. */
  reason: string
  /** When this ban began and ends (ISO 8601). */
  since: string
  until: string
  /** Banned from this node now (false: only the jobs below are still refused to it). */
  active: boolean
  /** Bans so far: each one lasts twice as long as the one before, at most a day. */
  strikes: number
  /** Jobs it lied about: it stays refused on them when the ban ends. */
  jobs: string[]
}

export interface PeersJson {
  peerId: string
  peers: PeerInfo[]
  /** Found but not connected: another swarm's node (a different --swarm-key), a firewall, a node gone. */
  unreachable: UnreachablePeerInfo[]
  /** The block list. */
  banned: BannedPeerInfo[]
}

/**
 * One message of the dashboard's event stream (GET /v1/events): the node's status, with
 * `chunkList` filled in for every job this node originated.
 */
export interface DashboardEvent {
  /** Milliseconds since the epoch when the snapshot was taken. */
  at: number
  status: StatusJson
}

export interface WorkerStatus {
  slots: number
  /** Memory one encode (one slot) may take, in bytes: `swarm join --max-memory`, or its default. */
  memoryBudgetBytes?: number
  /** How encodes share the machine: `swarm join --encode-priority`, or its default ('idle'). */
  encodePriority: EncodePriority
  /** `originator`: whose job the chunk is (two originators may announce one job id). */
  active: Array<{ originator: string, jobId: string, chunk: number, framesDone: number, frames: number, fps: number, stage: 'fetching' | 'queued' | 'encoding' | 'uploading' }>
}

export interface StatusJson {
  peerId: string
  addresses: string[]
  peers: PeerStatus[]
  /** Peers found but not connected (see PeersJson). */
  unreachable: UnreachablePeerInfo[]
  jobs: JobStatus[]
  worker: WorkerStatus
  network: NetworkStatus
  /** The block list (see PeersJson). */
  banned: BannedPeerInfo[]
}

/**
 * Whether peers can dial this node. `public`: AutoNAT confirmed a public address (or one was
 * announced); `dialled-in`: no public address confirmed, but peers are connected that dialled this
 * node directly (a LAN, or a forwarded port on a private address); `relay-only`: neither, and a relay
 * holds a slot for it; `unknown`: none of these.
 */
export interface ReachabilityStatus {
  verdict: 'public' | 'dialled-in' | 'relay-only' | 'unknown'
  /** Public addresses AutoNAT confirmed (or announced with --announce). */
  confirmed: string[]
  /** Public addresses not confirmed yet, or whose test failed. */
  unconfirmed: string[]
  /** Peers connected now that dialled this node directly. */
  inboundDirect: number
  /** UPnP port mapping on (swarm join without --no-upnp). */
  upnp: boolean
  /** Public addresses the router mapped by UPnP. */
  mapped: string[]
}

/** Relays, and how much of this node's transfers went through one. */
export interface NetworkStatus {
  /** Relays this node holds a reservation on: peers that cannot dial it reach it through these. */
  reservedOn: string[]
  /** Whether peers can dial this node, from AutoNAT, UPnP and the connections peers made to it (src/swarm/reach.ts). */
  reachability: ReachabilityStatus
  /** The swarm's DHT rendezvous (src/swarm/members.ts): its key, lookups run, whether our record went out, members found through it. */
  members: { key: string, rounds: number, provided: boolean, found: number }
  /** As an originator: segment bytes sent and result bytes received, and the part of each that was relayed. */
  transfer: { segmentBytesOut: number, segmentBytesOutRelayed: number, resultBytesIn: number, resultBytesInRelayed: number }
  /** On a node started with --relay: its limits, peers holding a reservation, circuits open now, and what it carried since it started. */
  relay?: {
    limits: string, reservations: number, circuits: number
    /** Circuits opened through this relay since it started. */
    circuitsServed: number
    /** Bytes carried on circuits since it started, both directions together. */
    bytesRelayed: number
  }
}

/** How an originator checks peers' results (src/jobs/verification-policy.ts; spelled here because this file imports nothing of the jobs layer). */
export const VerifyModeSchema = z.enum(['all', 'adaptive'])
export type VerifyMode = z.infer<typeof VerifyModeSchema>

export const AddJobRequest = z.object({
  file: z.string().min(1).max(4096),
  settings: z.string().max(4096),
  /** The encoder the settings are for; default x264. */
  encoder: z.enum(WIRE_ENCODER_IDS).optional(),
  output: z.string().min(1).max(4096).optional(),
  /** Chunk size for this job: keyframe intervals per chunk, or a target duration. Default: the node's (7 GOPs). */
  gopsPerChunk: z.number().int().min(1).max(100_000).optional(),
  chunkSeconds: z.number().positive().max(86_400).optional(),
  /** Encode a source the probe found truncated. */
  allowDamaged: z.boolean().optional(),
  /** Encode a source whose video carries closed captions, without them. */
  dropCaptions: z.boolean().optional(),
  /** How peers' results of this job are checked; default the node's (`swarm join --verify`). */
  verify: VerifyModeSchema.optional()
}).strict()
export type AddJobRequest = z.infer<typeof AddJobRequest>

export interface AddJobResponse {
  job: JobStatus
  /** True when the same file with the same settings was already a job: nothing new was queued. */
  existing: boolean
  /** Something the user should know about the request, e.g. adaptive checking on a node without a swarm key. */
  warning?: string
}

export interface ApiError {
  error: string
  /** HTTP-ish category the CLI maps to an exit code: 'input' → 2, anything else → 1. */
  kind: 'input' | 'not-found' | 'auth' | 'internal'
}

/** What `swarm join` writes to `<home>/control.json` (mode 0600) for the other commands. */
export const ControlFile = z.object({
  url: z.string().url(),
  token: z.string().min(32),
  pid: z.number().int(),
  peerId: z.string(),
  apiVersion: z.number().int()
})
export type ControlFile = z.infer<typeof ControlFile>
