import type { JobRecord } from '../jobs/index.js'
import { shortChunk } from '../log/index.js'
import type { JobAnnouncement } from '../swarm/index.js'
import type { BannedPeerInfo, ChunkCounts, JobStatus, NetworkStatus, PeerInfo, PeersJson, PeerStatus, StatusJson, UnreachablePeerInfo, WorkerStatus } from './api.js'

/**
 * What the control API and `swarm status --json` show, computed from plain data: the node's job
 * records, what its worker does, the jobs heard from other peers and the peers libp2p knows. No
 * clock, no network: the daemon gathers the data, these functions only shape it.
 */

/** A job another peer originated, as this node last heard of it. */
export interface RemoteJob { ann: JobAnnouncement, seen: number }

/** A peer on the block list as swarm/bans.ts keeps it (times in ms since the epoch). */
export interface BanEntry { peer: string, reason: string, since: number, until: number, active: boolean, strikes: number, jobs: string[] }

export function bannedPeers (bans: BanEntry[]): BannedPeerInfo[] {
  return bans.map(b => ({
    id: b.peer, reason: b.reason, since: new Date(b.since).toISOString(), until: new Date(b.until).toISOString(), active: b.active, strikes: b.strikes, jobs: b.jobs
  }))
}

/** A connected peer as libp2p and the dialer describe it. */
export type ConnectedPeer = Pick<PeerStatus, 'id' | 'addresses' | 'foundBy' | 'connection' | 'via' | 'encoders'>

type Chunk = JobRecord['chunks'][number]
type Progress = { framesDone: number, fps: number }
/** This node's own encodes by `<jobId>#<chunk>`. */
type LiveProgress = Map<string, Progress>

export interface StatusInput {
  self: string
  addresses: string[]
  /** The jobs this node originated. */
  jobs: JobRecord[]
  /** Other originators' jobs; any whose id is also a local job's is left out. */
  remoteJobs: RemoteJob[]
  peers: ConnectedPeer[]
  unreachable: UnreachablePeerInfo[]
  worker: WorkerStatus
  network: NetworkStatus
  /** How the worker reaches another originator (see JobStatus.reach). */
  reachOf?: (originator: string) => JobStatus['reach']
  /** Fill in every local job's chunk list (the dashboard's snapshot). */
  withChunks?: boolean
  /** The block list. */
  banned?: BanEntry[]
}

export interface PeersInput {
  self: string
  jobs: JobRecord[]
  peers: Array<ConnectedPeer & { latencyMs: number | null }>
  unreachable: UnreachablePeerInfo[]
  worker: WorkerStatus
  banned?: BanEntry[]
}

export function countChunks (job: JobRecord): ChunkCounts {
  const counts = { total: job.chunks.length, open: 0, leased: 0, done: 0 }
  for (const c of job.chunks) {
    if (c.state === 'open' || c.state === 'pending') counts.open++
    else if (c.state === 'leased') counts.leased++
    else counts.done++
  }
  return counts
}

/** This node's own encodes of its own jobs: a remote job may carry the same id, and its chunks are not ours. */
export function liveProgress (worker: WorkerStatus, self: string): LiveProgress {
  return new Map(worker.active.filter(a => a.originator === self).map(a => [`${a.jobId}#${a.chunk}`, a]))
}

/**
 * Progress of a lease: what the holder last reported in a heartbeat (every few seconds), or,
 * for a chunk this node's own worker encodes, its live figures.
 */
export function leaseProgress (self: string, jobId: string, c: Chunk, live: LiveProgress): Progress {
  const lease = c.lease
  if (lease === undefined) return { framesDone: 0, fps: 0 }
  const own = lease.holder === self ? live.get(`${jobId}#${c.index}`) : undefined
  if (own === undefined) return { framesDone: lease.framesDone, fps: Math.round(lease.fps * 10) / 10 }
  return { framesDone: Math.max(lease.framesDone, Math.min(c.frames, own.framesDone)), fps: Math.round(own.fps * 10) / 10 }
}

/** Connected peers that advertise an encoder. */
export type EncoderPeerCount = (encoder: string) => number

/** Counts the peers among `peers` that advertise each encoder. */
export function encoderPeerCount (peers: ConnectedPeer[]): EncoderPeerCount {
  return (encoder) => peers.filter(p => p.encoders?.some(e => e.encoder === encoder) === true).length
}

export function jobStatus (self: string, job: JobRecord, worker: WorkerStatus, withChunks: boolean, encoderPeers?: EncoderPeerCount): JobStatus {
  const encodedBy: Record<string, number> = {}
  const live = liveProgress(worker, self)
  let framesDone = 0
  let fps = 0
  for (const c of job.chunks) {
    if (c.result !== undefined) { encodedBy[c.result.encodedBy] = (encodedBy[c.result.encodedBy] ?? 0) + 1; framesDone += c.frames }
    else if (c.lease !== undefined) { const p = leaseProgress(self, job.id, c, live); framesDone += p.framesDone; fps += p.fps }
  }
  return {
    id: job.id, file: job.sourcePath, settings: job.settings, encoder: job.encoder ?? 'x264',
    ...(encoderPeers !== undefined ? { encoderPeers: encoderPeers(job.encoder ?? 'x264') } : {}),
    ...encoderVersions(job),
    ...(job.warnings !== undefined ? { warnings: job.warnings } : {}),
    state: job.state, output: job.output,
    ...(job.error !== undefined ? { error: job.error } : {}),
    local: true, originator: self, createdAt: new Date(job.createdAt).toISOString(), updatedAt: new Date(job.updatedAt).toISOString(),
    totalFrames: job.totalFrames, framesDone, fps: Math.round(fps * 10) / 10, chunks: countChunks(job), encodedBy,
    ...givenBack(job),
    ...(job.damage !== undefined ? { damage: job.damage } : {}),
    ...(job.fidelity !== undefined ? { fidelity: job.fidelity } : {}),
    verification: verification(job),
    ...(withChunks
      ? {
          chunkList: job.chunks.map(c => ({
            index: c.index, state: c.state, frames: c.frames,
            ...(c.lease !== undefined ? { holder: c.lease.holder, ...leaseProgress(self, job.id, c, live) } : {}),
            ...(c.result !== undefined ? { encodedBy: c.result.encodedBy } : {})
          }))
        }
      : {})
  }
}

/** Done chunks by the encoder version that made them; nothing when no chunk is done. */
function encoderVersions (job: JobRecord): Pick<JobStatus, 'encoderVersions'> {
  const counts: Record<string, number> = {}
  for (const c of job.chunks) if (c.state === 'done' && c.result !== undefined) counts[c.result.encoderVersion ?? 'unknown'] = (counts[c.result.encoderVersion ?? 'unknown'] ?? 0) + 1
  return Object.keys(counts).length > 0 ? { encoderVersions: counts } : {}
}

/**
 * The job's mode, and how the results of its done chunks were checked. A peer's result recorded
 * before adaptive checking existed has no `check`: every such result was checked in full.
 */
export function verification (job: JobRecord): NonNullable<JobStatus['verification']> {
  const counts = { mode: job.verify ?? 'all', full: 0, structural: 0, own: 0 }
  for (const c of job.chunks) {
    const r = c.result
    if (c.state !== 'done' || r === undefined) continue
    if (r.encodedBy === job.originator) counts.own++
    else if (r.check === 'structural') counts.structural++
    else counts.full++
  }
  return counts
}

/** Who gave chunks back and why, latest reason per peer: a job a peer cannot encode must not stall silently. */
function givenBack (job: JobRecord): Pick<JobStatus, 'givenBack'> {
  const byPeer = new Map<string, { times: number, at: number, reason: string }>()
  for (const c of job.chunks) {
    for (const f of c.failures) {
      const known = byPeer.get(f.peer)
      if (known === undefined) byPeer.set(f.peer, { times: 1, at: f.at, reason: f.reason })
      else { known.times++; if (f.at >= known.at) { known.at = f.at; known.reason = f.reason } }
    }
  }
  if (byPeer.size === 0) return {}
  return { givenBack: [...byPeer.entries()].map(([peer, v]) => ({ peer, times: v.times, reason: v.reason })).sort((a, b) => b.times - a.times) }
}

export function remoteStatus (r: RemoteJob, reach?: JobStatus['reach']): JobStatus {
  return {
    ...(reach !== undefined ? { reach } : {}),
    id: r.ann.jobId, file: r.ann.name, settings: r.ann.settings, encoder: r.ann.encoder ?? 'x264', state: r.ann.state, output: null, local: false,
    originator: r.ann.originator, createdAt: '', updatedAt: new Date(r.seen).toISOString(), totalFrames: r.ann.totalFrames,
    framesDone: 0, fps: 0, chunks: r.ann.chunks, encodedBy: {}
  }
}

/** Other originators' jobs worth listing: those whose id is not also one of this node's own. */
export function remoteOnly (remoteJobs: RemoteJob[], jobs: JobRecord[]): RemoteJob[] {
  const local = new Set(jobs.map(j => j.id))
  return remoteJobs.filter(r => !local.has(r.ann.jobId))
}

export function status (s: StatusInput): StatusJson {
  const holders = new Map<string, string[]>()
  for (const job of s.jobs) {
    for (const c of job.chunks) {
      if (c.lease === undefined) continue
      const list = holders.get(c.lease.holder) ?? []
      list.push(shortChunk(job.id, c.index))
      holders.set(c.lease.holder, list)
    }
  }
  return {
    peerId: s.self,
    addresses: s.addresses,
    peers: s.peers.map(p => ({ ...p, encoding: holders.get(p.id) ?? [] })),
    unreachable: s.unreachable,
    jobs: [...s.jobs.map(j => jobStatus(s.self, j, s.worker, s.withChunks ?? false, encoderPeerCount(s.peers))), ...remoteOnly(s.remoteJobs, s.jobs).map(r => remoteStatus(r, s.reachOf?.(r.ann.originator)))],
    worker: s.worker,
    network: s.network,
    banned: bannedPeers(s.banned ?? [])
  }
}

/** `swarm peers`: each connected peer with what it encodes for this node's jobs, sorted by id. */
export function peers (s: PeersInput): PeersJson {
  const encoding = new Map<string, PeerInfo['encoding']>()
  const live = liveProgress(s.worker, s.self)
  for (const job of s.jobs) {
    for (const c of job.chunks) {
      if (c.lease === undefined || c.state !== 'leased') continue
      const list = encoding.get(c.lease.holder) ?? []
      list.push({ jobId: job.id, chunk: c.index, frames: c.frames, ...leaseProgress(s.self, job.id, c, live) })
      encoding.set(c.lease.holder, list)
    }
  }
  const list = s.peers.map((p): PeerInfo => {
    const chunks = encoding.get(p.id) ?? []
    return { id: p.id, addresses: p.addresses, foundBy: p.foundBy, connection: p.connection, ...(p.via !== undefined ? { via: p.via } : {}), ...(p.encoders !== undefined ? { encoders: p.encoders } : {}), latencyMs: p.latencyMs, encoding: chunks, fps: Math.round(chunks.reduce((sum, c) => sum + c.fps, 0) * 10) / 10 }
  })
  return { peerId: s.self, peers: list.sort((a, b) => a.id.localeCompare(b.id)), unreachable: s.unreachable, banned: bannedPeers(s.banned ?? []) }
}
