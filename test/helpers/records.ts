import type { ChunkRecord, JobRecord } from '../../src/jobs/index.js'
import type { JobAnnouncement } from '../../src/swarm/index.js'

/** Peer ids as libp2p prints them: the daemon's pure parts only compare and slice them. */
export const PEER_A = '12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
export const PEER_B = '12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB'
export const PEER_C = '12D3KooWCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC'

export const jobId = (digit: string): string => digit.repeat(64)

/** A chunk of 24 frames in the given state. */
export function chunk (index: number, state: ChunkRecord['state'], extra: Partial<ChunkRecord> = {}): ChunkRecord {
  return { index, startFrame: index * 24, frames: 24, state, pastHolders: [], failures: [], ...extra }
}

export function lease (holder: string, framesDone = 0, fps = 0): NonNullable<ChunkRecord['lease']> {
  return { id: `lease-${holder.slice(-4)}`, holder, issuedAt: 0, expiresAt: 60_000, framesDone, fps }
}

export function result (encodedBy: string): NonNullable<ChunkRecord['result']> {
  return { file: 'chunk.mkv', size: 1, sha256: '0'.repeat(64), encodedBy, at: 0 }
}

/** A job record as the Originator keeps it, with what the daemon reads filled in. */
export function jobRecord (id: string, chunks: ChunkRecord[], extra: Partial<JobRecord> = {}): JobRecord {
  return {
    version: 1, id, sourcePath: '/videos/film.mkv', sourceSha256: '1'.repeat(64), sourceSize: 1000, settings: '--crf 20',
    output: null, state: 'encoding', originator: PEER_A, createdAt: 1_700_000_000_000, updatedAt: 1_700_000_001_000,
    totalFrames: chunks.length * 24, video: { frameRate: { num: 24, den: 1 }, pixFmt: 'yuv420p', width: 64, height: 64 }, chunks,
    ...extra
  }
}

/** An announcement as another originator sends it. */
export function announcement (originator: string, id: string, seq: number, extra: Partial<JobAnnouncement> = {}): JobAnnouncement {
  return {
    v: 1, type: 'job', jobId: id, originator, seq, state: 'encoding', name: 'film.mkv', settings: '--crf 20', totalFrames: 96,
    chunks: { total: 4, open: 2, leased: 1, done: 1 }, open: [[2, 4]], addrs: [`/ip4/10.0.0.1/tcp/4001/${originator.slice(-4)}`], ...extra
  }
}
