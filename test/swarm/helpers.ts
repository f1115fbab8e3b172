import { generateKeyPair } from '@libp2p/crypto/keys'
import { createSwarmNode, type LeaseArbiter, type SwarmNode } from '../../src/swarm/index.js'
import type { SwarmEncodeInit } from '../../src/swarm/service.js'

/** A swarm node on 127.0.0.1 with an ephemeral port, no mDNS and no bootstrap list. */
export async function makeNode (encode: SwarmEncodeInit = { arbiter: refusingArbiter() }): Promise<SwarmNode> {
  const privateKey = await generateKeyPair('Ed25519')
  return await createSwarmNode({ privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, encode })
}

/** Polls until `pred` holds; fails with `what` after `ms`. */
export async function waitFor (pred: () => boolean | Promise<boolean>, what: string, ms = 15_000, every = 25): Promise<void> {
  const end = Date.now() + ms
  while (!await pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, every))
  }
}

/** An arbiter for nodes that are never originators in a test: it refuses everything. */
export function refusingArbiter (): LeaseArbiter {
  const no = { ok: false as const, code: 'no-such-job', message: 'this node has no jobs' }
  return {
    requestLease: () => no,
    renewLease: () => no,
    releaseLease: () => no,
    segmentFor: () => no,
    resultSlot: () => no,
    acceptResult: async () => no
  }
}
