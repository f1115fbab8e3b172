import { generateKeyPair } from '@libp2p/crypto/keys'
import { createSwarmNode, type LeaseArbiter, type Refusal, type SwarmNode } from '../../src/swarm/index.js'
import type { SwarmEncodeInit } from '../../src/swarm/service.js'

/** A swarm node on 127.0.0.1 with an ephemeral port, no mDNS and no bootstrap list. */
export async function makeNode (encode: SwarmEncodeInit = { arbiter: refusingArbiter() }): Promise<SwarmNode> {
  const privateKey = await generateKeyPair('Ed25519')
  return await createSwarmNode({ privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, encode })
}

/** An arbiter for nodes that are never originators in a test: it refuses everything. */
export function refusingArbiter (): LeaseArbiter {
  const no: Refusal = { ok: false, code: 'unknown-job', message: 'this node has no jobs' }
  return {
    requestLease: () => no,
    renewLease: () => no,
    releaseLease: () => no,
    segmentFor: () => no,
    resultSlot: async () => no,
    uploadFailed: async () => {},
    acceptResult: async () => no
  }
}
