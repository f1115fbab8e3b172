import { describe, expect, it } from 'vitest'
import type { NetworkStatus, WorkerStatus } from '../../src/daemon/api.js'
import { countChunks, encoderPeerCount, jobStatus, leaseProgress, liveProgress, peers, remoteStatus, status } from '../../src/daemon/status-view.js'
import { announcement, chunk, jobId, jobRecord, lease, PEER_A, PEER_B, PEER_C, result } from '../helpers/records.js'

// The node is PEER_A; PEER_B and PEER_C encode for it.
const self = PEER_A
const idle: WorkerStatus = { slots: 1, encodePriority: 'idle', active: [] }

describe('countChunks', () => {
  it('counts pending chunks as open, and anything neither open nor leased as done', () => {
    const job = jobRecord(jobId('a'), [chunk(0, 'pending'), chunk(1, 'open'), chunk(2, 'leased'), chunk(3, 'done'), chunk(4, 'done')])
    expect(countChunks(job)).toEqual({ total: 5, open: 2, leased: 1, done: 2 })
  })
})

describe('leaseProgress', () => {
  const id = jobId('a')
  it('is zero for a chunk nobody holds', () => {
    expect(leaseProgress(self, id, chunk(0, 'open'), new Map())).toEqual({ framesDone: 0, fps: 0 })
  })
  it("is what another holder last reported, fps to one decimal", () => {
    expect(leaseProgress(self, id, chunk(0, 'leased', { lease: lease(PEER_B, 10, 12.345) }), new Map())).toEqual({ framesDone: 10, fps: 12.3 })
  })
  it("is the own worker's live figures, never below the last report nor above the chunk's frames", () => {
    const c = chunk(1, 'leased', { lease: lease(self, 5, 1) })
    expect(leaseProgress(self, id, c, new Map([[`${id}#1`, { framesDone: 15, fps: 30.06 }]]))).toEqual({ framesDone: 15, fps: 30.1 })
    expect(leaseProgress(self, id, c, new Map([[`${id}#1`, { framesDone: 2, fps: 3 }]]))).toEqual({ framesDone: 5, fps: 3 })
    expect(leaseProgress(self, id, c, new Map([[`${id}#1`, { framesDone: 99, fps: 3 }]]))).toEqual({ framesDone: 24, fps: 3 })
    // Without live figures (the encode has not started yet), the last report.
    expect(leaseProgress(self, id, c, new Map())).toEqual({ framesDone: 5, fps: 1 })
  })
})

describe('jobStatus', () => {
  const id = jobId('a')
  const job = jobRecord(id, [
    chunk(0, 'done', { result: result(PEER_B) }),
    chunk(1, 'done', { result: result(PEER_B) }),
    chunk(2, 'leased', { lease: lease(PEER_C, 10, 20.04) }),
    chunk(3, 'leased', { lease: lease(self, 0, 0) }),
    chunk(4, 'open')
  ])
  const worker: WorkerStatus = { slots: 1, encodePriority: 'idle', active: [{ originator: self, jobId: id, chunk: 3, framesDone: 6, frames: 24, fps: 10.02, stage: 'encoding' }] }

  it('sums done frames and the holders\' progress, and counts who encoded what', () => {
    expect(jobStatus(self, job, worker, false)).toEqual({
      id, file: '/videos/film.mkv', settings: '--crf 20', encoder: 'x264', state: 'encoding', output: null, local: true, originator: self,
      createdAt: new Date(1_700_000_000_000).toISOString(), updatedAt: new Date(1_700_000_001_000).toISOString(),
      totalFrames: 120, framesDone: 24 + 24 + 10 + 6, fps: 30, // each holder's fps is rounded before the sum
      chunks: { total: 5, open: 1, leased: 2, done: 2 }, encodedBy: { [PEER_B]: 2 }, encoderVersions: { unknown: 2 },
      // A record from before adaptive checking: mode all, and a peer's result without a check was checked in full.
      verification: { mode: 'all', full: 2, structural: 0, own: 0 }
    })
  })
  it('lists the chunks only when asked, with holder and progress or who encoded them', () => {
    expect(jobStatus(self, job, worker, false).chunkList).toBeUndefined()
    expect(jobStatus(self, job, worker, true).chunkList).toEqual([
      { index: 0, state: 'done', frames: 24, encodedBy: PEER_B },
      { index: 1, state: 'done', frames: 24, encodedBy: PEER_B },
      { index: 2, state: 'leased', frames: 24, holder: PEER_C, framesDone: 10, fps: 20 },
      { index: 3, state: 'leased', frames: 24, holder: self, framesDone: 6, fps: 10 },
      { index: 4, state: 'open', frames: 24 }
    ])
  })
  it('names the job\'s encoder, and counts the connected peers that advertise it when asked to', () => {
    const peers = [
      { id: PEER_B, addresses: [], foundBy: [], connection: 'direct' as const, encoders: [{ encoder: 'x264', version: '0.164.3095' }, { encoder: 'x265', version: '3.5' }] },
      { id: PEER_C, addresses: [], foundBy: [], connection: 'direct' as const, encoders: [{ encoder: 'x264', version: '0.164.3095' }] },
      // A node from before encoders were advertised: counted for none.
      { id: self, addresses: [], foundBy: [], connection: 'direct' as const }
    ]
    expect(jobStatus(self, job, idle, false, encoderPeerCount(peers)).encoderPeers).toBe(2)
    const x265 = jobStatus(self, { ...job, encoder: 'x265' }, idle, false, encoderPeerCount(peers))
    expect([x265.encoder, x265.encoderPeers]).toEqual(['x265', 1])
    expect(jobStatus(self, { ...job, encoder: 'aomenc' }, idle, false, encoderPeerCount(peers)).encoderPeers).toBe(0)
    expect('encoderPeers' in jobStatus(self, job, idle, false)).toBe(false)
  })
  it('carries an error only when the job has one', () => {
    expect('error' in jobStatus(self, job, idle, false)).toBe(false)
    expect(jobStatus(self, { ...job, state: 'failed', error: 'merge failed' }, idle, false)).toMatchObject({ state: 'failed', error: 'merge failed' })
  })
})

describe('remoteStatus', () => {
  it('shows what the announcement says, with no progress of its own', () => {
    expect(remoteStatus({ ann: announcement(PEER_B, jobId('b'), 7), seen: 1_700_000_002_000 })).toEqual({
      id: jobId('b'), file: 'film.mkv', settings: '--crf 20', encoder: 'x264', state: 'encoding', output: null, local: false, originator: PEER_B,
      createdAt: '', updatedAt: new Date(1_700_000_002_000).toISOString(), totalFrames: 96, framesDone: 0, fps: 0,
      chunks: { total: 4, open: 2, leased: 1, done: 1 }, encodedBy: {}
    })
  })
})

describe('status', () => {
  const network: NetworkStatus = {
    reservedOn: [],
    reachability: { verdict: 'dialled-in', confirmed: [], unconfirmed: [], inboundDirect: 1, upnp: false, mapped: [] },
    members: { key: 'bafkrei', rounds: 1, provided: true, found: 1 },
    transfer: { segmentBytesOut: 0, segmentBytesOutRelayed: 0, resultBytesIn: 0, resultBytesInRelayed: 0 }
  }
  const own = jobRecord(jobId('a'), [chunk(0, 'leased', { lease: lease(PEER_B) }), chunk(1, 'leased', { lease: lease(PEER_B) }), chunk(2, 'open')])
  const input = {
    self,
    addresses: ['/ip4/127.0.0.1/tcp/4001'],
    jobs: [own],
    remoteJobs: [
      { ann: announcement(PEER_B, jobId('b'), 1), seen: 0 },
      // Another originator's job with the same id as our own: ours is the one listed.
      { ann: announcement(PEER_C, jobId('a'), 1), seen: 0 }
    ],
    peers: [
      { id: PEER_B, addresses: ['/ip4/10.0.0.2/tcp/4001'], foundBy: ['mdns' as const], connection: 'direct' as const },
      { id: PEER_C, addresses: [], foundBy: ['inbound' as const], connection: 'direct' as const }
    ],
    unreachable: [{ id: PEER_C, foundBy: ['dht' as const], attempts: 2, error: 'refused', retryInMs: 4000 }],
    worker: idle,
    network
  }

  it("lists own jobs, then other originators' jobs whose id is not also one of ours", () => {
    const s = status(input)
    expect(s.jobs.map(j => [j.id, j.local])).toEqual([[jobId('a'), true], [jobId('b'), false]])
    expect(s.jobs[0]?.chunkList).toBeUndefined()
    expect(status({ ...input, withChunks: true }).jobs[0]?.chunkList).toHaveLength(3)
  })
  it('labels what each connected peer holds, and passes the rest through', () => {
    expect(status(input)).toMatchObject({
      peerId: self,
      addresses: input.addresses,
      peers: [
        { id: PEER_B, addresses: ['/ip4/10.0.0.2/tcp/4001'], foundBy: ['mdns'], encoding: ['aaaaaaaa#0', 'aaaaaaaa#1'] },
        { id: PEER_C, addresses: [], foundBy: ['inbound'], encoding: [] }
      ],
      unreachable: input.unreachable,
      worker: idle,
      network
    })
  })
})

describe('peers', () => {
  it("lists each peer's leased chunks with progress and their summed fps, sorted by peer id", () => {
    const id = jobId('a')
    const job = jobRecord(id, [
      chunk(0, 'leased', { lease: lease(PEER_C, 4, 10.04) }),
      chunk(1, 'leased', { lease: lease(PEER_C, 8, 5.02) }),
      // A done chunk keeps no lease worth showing, even if one is still recorded.
      chunk(2, 'done', { lease: lease(PEER_B), result: result(PEER_B) })
    ])
    const json = peers({
      self,
      jobs: [job],
      peers: [
        { id: PEER_C, addresses: ['/ip4/10.0.0.3/tcp/4001'], foundBy: ['bootstrap'], connection: 'relayed', via: PEER_A, latencyMs: 3 },
        { id: PEER_B, addresses: ['/ip4/10.0.0.2/tcp/4001'], foundBy: ['mdns'], connection: 'direct', latencyMs: null }
      ],
      unreachable: [],
      worker: idle
    })
    expect(json).toEqual({
      peerId: self,
      peers: [
        { id: PEER_B, addresses: ['/ip4/10.0.0.2/tcp/4001'], foundBy: ['mdns'], connection: 'direct', latencyMs: null, encoding: [], fps: 0 },
        {
          id: PEER_C,
          addresses: ['/ip4/10.0.0.3/tcp/4001'],
          foundBy: ['bootstrap'],
          connection: 'relayed',
          via: PEER_A,
          latencyMs: 3,
          encoding: [{ jobId: id, chunk: 0, frames: 24, framesDone: 4, fps: 10 }, { jobId: id, chunk: 1, frames: 24, framesDone: 8, fps: 5 }],
          fps: 15
        }
      ],
      unreachable: [],
      banned: []
    })
  })
  it('uses the live figures of chunks this node encodes itself', () => {
    const id = jobId('a')
    const live = liveProgress({ slots: 1, encodePriority: 'idle', active: [{ originator: self, jobId: id, chunk: 0, framesDone: 12, frames: 24, fps: 7, stage: 'encoding' }] }, self)
    expect(live.get(`${id}#0`)).toMatchObject({ framesDone: 12, fps: 7 })
  })

  it('never counts a chunk of another originator\'s job with the same id as this node\'s own', () => {
    const id = jobId('a')
    const live = liveProgress({ slots: 1, encodePriority: 'idle', active: [{ originator: PEER_B, jobId: id, chunk: 0, framesDone: 12, frames: 24, fps: 7, stage: 'encoding' }] }, self)
    expect(live.get(`${id}#0`)).toBeUndefined()
  })
})

describe('jobStatus: what the user must be told', () => {
  it('lists peers that gave chunks back with their latest reason, most frequent first, so a job nobody else can encode never stalls silently', () => {
    const job = jobRecord(jobId('g'), [
      chunk(0, 'open', { failures: [{ peer: PEER_B, reason: 'fetch failed: meta.frameRate.num too big', at: 1 }, { peer: PEER_C, reason: 'x264 failed', at: 2 }] }),
      chunk(1, 'open', { failures: [{ peer: PEER_B, reason: 'fetch failed: segment refused', at: 3 }] })
    ])
    expect(jobStatus(self, job, idle, false).givenBack).toEqual([
      { peer: PEER_B, times: 2, reason: 'fetch failed: segment refused' },
      { peer: PEER_C, times: 1, reason: 'x264 failed' }
    ])
    expect(jobStatus(self, jobRecord(jobId('h'), [chunk(0, 'open')]), idle, false).givenBack).toBeUndefined()
  })

  it('says how peers\' results are checked, and how the kept ones were: in full, on structure only, or encoded here', () => {
    const job = jobRecord(jobId('v'), [
      chunk(0, 'done', { result: { ...result(PEER_B), check: 'full' } }),
      chunk(1, 'done', { result: { ...result(PEER_B), check: 'structural' } }),
      chunk(2, 'done', { result: { ...result(PEER_C), check: 'structural' } }),
      chunk(3, 'done', { result: result(self) }),
      // Sent back to be encoded again (its peer was caught lying): it counts for nothing.
      chunk(4, 'pending'),
      chunk(5, 'leased', { lease: lease(PEER_C) })
    ], { verify: 'adaptive' })
    expect(jobStatus(self, job, idle, false).verification).toEqual({ mode: 'adaptive', full: 1, structural: 2, own: 1 })
    expect(jobStatus(self, { ...job, verify: 'all' }, idle, false).verification?.mode).toBe('all')
    // Other originators' jobs: this node does not check their results.
    expect(remoteStatus({ ann: announcement(PEER_B, jobId('b'), 7), seen: 1 }).verification).toBeUndefined()
  })

  it('carries the damage a job was allowed to encode and its fidelity report', () => {
    const fidelity = { ok: true, checks: [{ name: 'video frames', ok: true, source: '24', output: '24' }] }
    const s = jobStatus(self, jobRecord(jobId('d'), [chunk(0, 'done', { result: result(PEER_B) })], { damage: 'looks truncated', fidelity }), idle, false)
    expect(s).toMatchObject({ damage: 'looks truncated', fidelity })
  })
})
