import { mkdir, rename, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { Originator } from '../jobs/index.js'
import type { OriginatorLink } from '../worker/index.js'

/**
 * The worker's link to its own node's originator: the same rules as over the network (claims,
 * leases, verified results), without a stream. libp2p cannot dial itself, and a copy of the
 * segment would only cost disk.
 */
export function localLink (originator: Originator, self: string): OriginatorLink {
  return {
    claim: async (jobId, chunk) => {
      const answer = originator.requestLease(jobId, chunk, self)
      if (!answer.ok) return answer
      return { ok: true, lease: { jobId, chunk, leaseId: answer.lease.id, originator: self, expiresAt: answer.lease.expiresAt, issuedAt: answer.lease.issuedAt } }
    },
    heartbeat: async (lease, progress) => originator.renewLease(lease.jobId, lease.chunk, lease.leaseId, self, progress),
    release: async (lease, reason) => originator.releaseLease(lease.jobId, lease.chunk, lease.leaseId, self, reason),
    fetchSegment: async (lease) => {
      const found = originator.segmentFor(lease.jobId, lease.chunk, lease.leaseId, self)
      if (!found.ok) throw new Error(found.message)
      return { path: found.path, owned: false, meta: found.meta }
    },
    uploadResult: async (lease, path, sha256) => {
      const slot = await originator.resultSlot(lease.jobId, lease.chunk, lease.leaseId, self, (await stat(path)).size)
      if (!slot.ok) return slot
      try {
        await mkdir(dirname(slot.tmpPath), { recursive: true })
        await rename(path, slot.tmpPath)
      } catch (err) {
        await originator.uploadFailed(slot.tmpPath)
        throw err
      }
      return await originator.acceptResult(lease.jobId, lease.chunk, self, slot.tmpPath, sha256)
    }
  }
}
