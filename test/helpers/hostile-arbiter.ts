/**
 * A hostile originator's side of the lease protocol, for attack tests: it refuses everything
 * except the jobs armed on it, where it plays the originator to the end (grants the lease, serves
 * whatever file and meta it was armed with) so that the victim worker's own checks are what stand
 * in the way. Every call is recorded.
 */
import { multiaddr } from '@multiformats/multiaddr'
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { encodeFrame, JOBS_TOPIC, type JobAnnouncement, type LeaseArbiter, type Refusal, type SegmentMeta, type SwarmNode } from '../../src/swarm/index.js'
import { makeNode } from '../swarm/helpers.js'
import { waitFor } from './wait.js'

const hex = (bytes: number): string => randomBytes(bytes).toString('hex')

export class HostileArbiter implements LeaseArbiter {
  readonly armed = new Map<string, { path: string, size: number, sha256: string, meta: SegmentMeta }>()
  readonly calls: Array<{ fn: string, jobId: string, chunk: number, peer: string, reason?: string }> = []
  private readonly no: Refusal = { ok: false, code: 'unknown-job', message: 'this node has no jobs' }

  callsFor (jobId: string, fn: string): Array<{ fn: string, jobId: string, chunk: number, peer: string, reason?: string }> {
    return this.calls.filter(c => c.jobId === jobId && c.fn === fn)
  }

  requestLease (jobId: string, chunk: number, claimant: string): ReturnType<LeaseArbiter['requestLease']> {
    this.calls.push({ fn: 'requestLease', jobId, chunk, peer: claimant })
    if (!this.armed.has(jobId)) return this.no
    const now = Date.now()
    return { ok: true, lease: { id: hex(12), issuedAt: now, expiresAt: now + 30_000 } }
  }

  renewLease (jobId: string, chunk: number, _leaseId: string, peer: string): ReturnType<LeaseArbiter['renewLease']> {
    this.calls.push({ fn: 'renewLease', jobId, chunk, peer })
    return this.armed.has(jobId) ? { ok: true, expiresAt: Date.now() + 30_000 } : this.no
  }

  releaseLease (jobId: string, chunk: number, _leaseId: string, peer: string, reason: string): ReturnType<LeaseArbiter['releaseLease']> {
    this.calls.push({ fn: 'releaseLease', jobId, chunk, peer, reason })
    return this.armed.has(jobId) ? { ok: true } : this.no
  }

  segmentFor (jobId: string, chunk: number, _leaseId: string, peer: string): ReturnType<LeaseArbiter['segmentFor']> {
    this.calls.push({ fn: 'segmentFor', jobId, chunk, peer })
    const offer = this.armed.get(jobId)
    return offer !== undefined ? { ok: true, ...offer } : this.no
  }

  async uploadFailed (): Promise<void> {}

  async resultSlot (jobId: string, chunk: number, _leaseId: string, peer: string): ReturnType<LeaseArbiter['resultSlot']> {
    this.calls.push({ fn: 'resultSlot', jobId, chunk, peer })
    return this.no
  }

  async acceptResult (jobId: string, chunk: number, peer: string): ReturnType<LeaseArbiter['acceptResult']> {
    this.calls.push({ fn: 'acceptResult', jobId, chunk, peer })
    return this.no
  }
}


/** A hostile originator node: connected to its victim, on the jobs topic, announcing jobs it serves whatever segment it is given. */
export interface HostileOriginator {
  node: SwarmNode
  arbiter: HostileArbiter
  /** Announces a new job of `totalFrames` frames (4 chunks, all open) whose every segment is `file` with `meta`; returns its id. */
  announce: (file: string, meta: SegmentMeta, totalFrames: number) => Promise<string>
  /** Announces the job again every `everyMs` (as an originator does, so workers keep it listed) until the returned function is called. */
  keepAnnouncing: (jobId: string, everyMs: number) => () => void
}

export async function hostileOriginator (victim: { peerId: string, addresses: () => string[] }): Promise<HostileOriginator> {
  const arbiter = new HostileArbiter()
  const node = await makeNode({ arbiter })
  const self = node.peerId.toString()
  await node.dial(multiaddr(victim.addresses()[0] as string))
  node.services.pubsub.subscribe(JOBS_TOPIC)
  await waitFor('the hostile originator to see its victim on the jobs topic', () => node.services.pubsub.getSubscribers(JOBS_TOPIC).some(p => p.toString() === victim.peerId), { timeoutMs: 20_000, everyMs: 50 })
  const announce = async (file: string, meta: SegmentMeta, totalFrames: number): Promise<string> => {
    const bytes = await readFile(file)
    const jobId = hex(32)
    arbiter.armed.set(jobId, { path: file, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), meta })
    const announcement: JobAnnouncement = {
      v: 1, type: 'job', jobId, originator: self, seq: Date.now(), state: 'encoding', name: 'segment.mkv', settings: meta.settings,
      totalFrames, chunks: { total: 4, open: 4, leased: 0, done: 0 }, open: [[0, 4]],
      addrs: node.getMultiaddrs().map(a => a.toString().replace(`/p2p/${self}`, ''))
    }
    announced.set(jobId, announcement)
    await node.services.pubsub.publish(JOBS_TOPIC, encodeFrame(announcement))
    return jobId
  }
  const announced = new Map<string, JobAnnouncement>()
  const keepAnnouncing = (jobId: string, everyMs: number): () => void => {
    const timer = setInterval(() => {
      const last = announced.get(jobId)
      if (last === undefined) return
      const next = { ...last, seq: last.seq + 1 }
      announced.set(jobId, next)
      void node.services.pubsub.publish(JOBS_TOPIC, encodeFrame(next)).catch(() => {})
    }, everyMs)
    return () => { clearInterval(timer) }
  }
  return { node, arbiter, announce, keepAnnouncing }
}
