/**
 * A hostile originator's side of the lease protocol, for attack tests: it refuses everything
 * except the jobs armed on it, where it plays the originator to the end (grants the lease, serves
 * whatever file and meta it was armed with) so that the victim worker's own checks are what stand
 * in the way. Every call is recorded.
 */
import { randomBytes } from 'node:crypto'
import type { LeaseArbiter, SegmentMeta } from '../../src/swarm/index.js'

const hex = (bytes: number): string => randomBytes(bytes).toString('hex')

export class HostileArbiter implements LeaseArbiter {
  readonly armed = new Map<string, { path: string, size: number, sha256: string, meta: SegmentMeta }>()
  readonly calls: Array<{ fn: string, jobId: string, chunk: number, peer: string, reason?: string }> = []
  private readonly no = { ok: false as const, code: 'no-such-job', message: 'this node has no jobs' }

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

