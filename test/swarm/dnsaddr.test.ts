/**
 * Bootstrap addresses with host names: `/dnsaddr/HOST/p2p/ID` is accepted and dialled through the
 * TXT records `_dnsaddr.HOST`, answered here by a stand-in resolver, so no query leaves the
 * machine (the name is under `.invalid`, which no real resolver answers either).
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { afterEach, describe, expect, it } from 'vitest'
import { checkAddresses, createSwarmNode, type SwarmNode } from '../../src/swarm/index.js'
import { waitFor } from '../helpers/wait.js'
import { refusingArbiter } from './helpers.js'

const ID = '12D3KooWRj4EA75sgH5ZAx3WnKkSAjjUxEw3iLy1m8uM8tB5YNXR'

describe('bootstrap addresses with host names', () => {
  it('accepts /dns4/ and /dnsaddr/ addresses that name the peer; a /dnsaddr/ without it is refused with the form to use', () => {
    expect(() => { checkAddresses({ listen: [], bootstrap: [`/dns4/meet.swarm.invalid/tcp/4010/p2p/${ID}`, `/dnsaddr/meet.swarm.invalid/p2p/${ID}`] }) }).not.toThrow()
    expect(() => { checkAddresses({ listen: [], bootstrap: ['/dnsaddr/meet.swarm.invalid'] }) }).toThrow(/must name the peer too: \/dnsaddr\/HOST\/p2p\/PEERID/)
  })

  const nodes: SwarmNode[] = []
  afterEach(async () => { await Promise.all(nodes.splice(0).map(async n => { await n.stop() })) })

  it('dials a /dnsaddr/ bootstrap address through its TXT records', async () => {
    const base = async (): Promise<Parameters<typeof createSwarmNode>[0]> => ({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, encode: { arbiter: refusingArbiter() } })
    const meet = await createSwarmNode(await base())
    nodes.push(meet)
    const asked: string[] = []
    const dns = {
      query: async (domain: string) => {
        asked.push(domain)
        const records = domain === '_dnsaddr.meet.swarm.invalid' ? meet.getMultiaddrs().map(a => `dnsaddr=${a.toString()}`) : []
        return { Status: 0, TC: false, RD: true, RA: true, AD: false, CD: false, Question: [{ name: domain, type: 16 }], Answer: records.map(data => ({ name: domain, type: 16, TTL: 60, data })) }
      }
    }
    const ann = await createSwarmNode({ ...await base(), bootstrap: [`/dnsaddr/meet.swarm.invalid/p2p/${meet.peerId.toString()}`], dns: dns as never })
    nodes.push(ann)
    await waitFor('ann to connect to meet found through _dnsaddr', () => ann.getConnections(meet.peerId).length > 0 ? true : undefined, { timeoutMs: 15_000, everyMs: 100 })
    expect(asked).toContain('_dnsaddr.meet.swarm.invalid')
  }, 30_000)
})
