/**
 * Finding members beyond the LAN (src/swarm/members.ts) and the reachability verdict
 * (src/swarm/reach.ts): the DHT key's derivation as docs/protocol.md states it, and three nodes on
 * loopback where C knows only B yet finds A through A's provider record.
 */
import { createHash } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createSwarmNode, judgeReachability, membersKey, parseSwarmKey, type SwarmNode } from '../../src/swarm/index.js'
import { waitFor } from '../helpers/wait.js'
import { EARLY_ROUNDS_BELOW_MEMBERS, MemberFinder } from '../../src/swarm/members.js'
import { DiscoveredPeers } from '../../src/swarm/discovery.js'
import { refusingArbiter } from './helpers.js'

const KEY_HEX = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff'
const keyFile = parseSwarmKey(new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${KEY_HEX}\n`), 'test')

describe('the members key', () => {
  it('is a CIDv1 (raw, sha2-256) of the documented bytes, for a key and for a name', () => {
    const expected = (kind: string, value: Uint8Array): string => {
      const digest = createHash('sha256').update(Buffer.concat([Buffer.from('swarm-encode/members/1\0'), Buffer.from(`${kind}\0`), value])).digest('hex')
      return `01 55 12 20 ${digest}`
    }
    const bytesOf = (cid: CID): string => { const hex = Buffer.from(cid.bytes).toString('hex'); return `${hex.slice(0, 2)} ${hex.slice(2, 4)} ${hex.slice(4, 6)} ${hex.slice(6, 8)} ${hex.slice(8)}` }
    expect(bytesOf(membersKey({ swarmKey: keyFile }))).toBe(expected('psk', Buffer.from(KEY_HEX, 'hex')))
    // The raw 32 bytes and the key file give the same key.
    expect(membersKey({ swarmKey: Buffer.from(KEY_HEX, 'hex') }).equals(membersKey({ swarmKey: keyFile }))).toBe(true)
    expect(bytesOf(membersKey({}))).toBe(expected('name', Buffer.from('public')))
    expect(bytesOf(membersKey({ name: 'fansubs' }))).toBe(expected('name', Buffer.from('fansubs')))
    // The vectors docs/protocol.md §1.1 quotes.
    expect(membersKey({}).toString()).toBe('bafkreiaqqehx2poxcmiaqnpxiplj5plxndhg5aegiftymuslsnuyae7f44')
    expect(membersKey({ swarmKey: keyFile }).toString()).toBe(membersKey({ swarmKey: keyFile }).toString())
  })

  it('never carries the key itself, and differs between keys and from every name', () => {
    const k = membersKey({ swarmKey: keyFile })
    expect(Buffer.from(k.bytes).toString('hex')).not.toContain(KEY_HEX.slice(0, 16))
    const other = membersKey({ swarmKey: Buffer.alloc(32, 7) })
    expect(k.equals(other)).toBe(false)
    // A name that spells the key's hex still lands elsewhere: the kind is hashed too.
    expect(k.equals(membersKey({ name: KEY_HEX }))).toBe(false)
  })
})

describe('judgeReachability', () => {
  const addr = (a: string, verified: boolean, type = 'transport'): { multiaddr: ReturnType<typeof multiaddr>, verified: boolean, type: string } => ({ multiaddr: multiaddr(a), verified, type })
  const base = { inboundDirect: 0, reservedOn: [] as string[], upnp: false }

  it('public when AutoNAT confirmed a public address; private and relayed addresses are not counted', () => {
    const r = judgeReachability({ ...base, addresses: [addr('/ip4/192.168.1.2/tcp/4010', true), addr('/ip4/8.8.4.4/tcp/4010', true), addr('/ip4/10.80.0.2/tcp/4010/p2p/12D3KooWRj4EA75sgH5ZAx3WnKkSAjjUxEw3iLy1m8uM8tB5YNXR/p2p-circuit', true)] })
    expect(r).toMatchObject({ verdict: 'public', confirmed: ['/ip4/8.8.4.4/tcp/4010'], unconfirmed: [] })
  })

  it('an untested public address is listed as unconfirmed; a peer that dialled in beats a relay slot, which beats nothing', () => {
    const untested = [addr('/ip4/8.8.4.4/tcp/4010', false)]
    expect(judgeReachability({ ...base, addresses: untested })).toMatchObject({ verdict: 'unknown', unconfirmed: ['/ip4/8.8.4.4/tcp/4010'] })
    expect(judgeReachability({ ...base, addresses: untested, reservedOn: ['r'] }).verdict).toBe('relay-only')
    expect(judgeReachability({ ...base, addresses: untested, reservedOn: ['r'], inboundDirect: 2 }).verdict).toBe('dialled-in')
  })

  it('lists addresses a router mapped by UPnP, confirmed or not', () => {
    const r = judgeReachability({ ...base, upnp: true, addresses: [addr('/ip4/8.8.4.4/tcp/4010', false, 'ip-mapping')] })
    expect(r).toMatchObject({ verdict: 'unknown', upnp: true, mapped: ['/ip4/8.8.4.4/tcp/4010'] })
  })
})

describe('members find each other through the DHT', () => {
  const nodes: SwarmNode[] = []
  afterEach(async () => { await Promise.all(nodes.splice(0).map(async n => { await n.stop() })) })

  async function node (bootstrap: string[]): Promise<SwarmNode> {
    const n = await createSwarmNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, mdns: false, encode: { arbiter: refusingArbiter() }, swarmName: `test-${process.pid}` })
    nodes.push(n)
    return n
  }

  it('C, which knows only B, finds A by its provider record and connects to it', async () => {
    const a = await node([])
    const b = await node([a.getMultiaddrs()[0]?.toString() as string])
    await waitFor('A to provide its record', () => a.services.members.stats.provided ? true : undefined, { timeoutMs: 20_000, everyMs: 100 })
    const c = await node([b.getMultiaddrs()[0]?.toString() as string])
    await waitFor('C to find A through the DHT and connect', () => c.getConnections(a.peerId).length > 0 ? true : undefined, { timeoutMs: 20_000, everyMs: 100 })
    expect(c.services.dialer.foundBy(a.peerId.toString())).toContain('dht')
    // The DHT's own routing-table walk may name A first; the provider records name both members too.
    await waitFor('C to find A and B by their provider records', () => c.services.members.stats.found >= 2 ? true : undefined, { timeoutMs: 20_000, everyMs: 100 })
  }, 60_000)
})

/** libp2p's component logger, saying nothing. */
const silentLogger = { forComponent: () => Object.assign(() => {}, { error: () => {}, trace: () => {}, newScope: () => silentLogger, enabled: false }) } as never

describe('MemberFinder rounds', () => {
  afterEach(() => { vi.useRealTimers() })

  it('runs once the first connection settles, retries a lookup that found nobody with a growing delay, looks again soon (without storing its record again) and then every 10 min once it found others, and starts over after the node lost every connection', async () => {
    vi.useFakeTimers()
    const self = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    let providers: Array<{ id: typeof other, multiaddrs: ReturnType<typeof multiaddr>[], routing: string }> = []
    const calls: string[] = []
    const contentRouting = {
      provide: async () => { calls.push('provide') },
      findProviders: async function * () { calls.push('find'); yield * providers },
      cancelReprovide: async () => {},
      put: async () => {},
      get: async () => new Uint8Array()
    }
    const events = new EventTarget()
    const peers = new DiscoveredPeers()
    const finder = new MemberFinder({ peerId: self, contentRouting, events, logger: silentLogger }, { key: membersKey({}), peers, settleMs: 1000, retryMs: 5000, earlyIntervalMs: 60_000, intervalMs: 600_000 })
    finder.start()
    await vi.advanceTimersByTimeAsync(60_000)
    expect(calls, 'nothing before a connection').toEqual([])
    events.dispatchEvent(new Event('connection:open'))
    await vi.advanceTimersByTimeAsync(1000)
    expect(calls).toEqual(['provide', 'find'])
    // Nobody else yet: again after 5 s, then 10 s.
    await vi.advanceTimersByTimeAsync(5000)
    expect(calls).toHaveLength(4)
    providers = [{ id: other, multiaddrs: [multiaddr('/ip4/192.168.1.3/tcp/4010')], routing: 'kad-dht' }]
    await vi.advanceTimersByTimeAsync(10_000)
    expect(calls).toHaveLength(6)
    expect(peers.foundBy(other.toString())).toEqual(['dht'])
    expect(finder.stats).toMatchObject({ rounds: 3, provided: true, found: 1 })
    // Found someone: the next rounds come after 1 min, 2, 4, 8, and only look (the record is
    // stored), then every 10 min, storing it again each time...
    for (const [wait, total] of [[59_000, 6], [1000, 7], [119_000, 7], [1000, 8], [240_000, 9], [480_000, 10], [599_000, 10], [1000, 12], [600_000, 14]] as const) {
      await vi.advanceTimersByTimeAsync(wait)
      expect(calls).toHaveLength(total)
    }
    expect(calls.slice(6)).toEqual(['find', 'find', 'find', 'find', 'provide', 'find', 'provide', 'find'])
    // ...unless the node loses every connection and gets one again (the peers holding the record may be gone).
    events.dispatchEvent(new Event('connection:close'))
    events.dispatchEvent(new Event('connection:open'))
    await vi.advanceTimersByTimeAsync(1000)
    expect(calls.slice(14)).toEqual(['provide', 'find'])
    // ...and then soon again: the record may have been missing where the lookup looked.
    await vi.advanceTimersByTimeAsync(60_000)
    expect(calls.slice(16)).toEqual(['find'])
    // A large swarm: once a round finds that many others, the next is 10 min away.
    const many = await Promise.all(Array.from({ length: EARLY_ROUNDS_BELOW_MEMBERS }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
    providers = many.map(id => ({ id, multiaddrs: [multiaddr('/ip4/192.168.1.4/tcp/4010')], routing: 'kad-dht' }))
    await vi.advanceTimersByTimeAsync(120_000)
    expect(calls).toHaveLength(18)
    await vi.advanceTimersByTimeAsync(599_000)
    expect(calls).toHaveLength(18)
    await vi.advanceTimersByTimeAsync(1000)
    expect(calls.slice(18)).toEqual(['provide', 'find'])
    finder.stop()
  })

  it('keeps storing its record in the early rounds until a store has worked since the connection', async () => {
    vi.useFakeTimers()
    const self = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const calls: string[] = []
    let storeWorks = false
    const contentRouting = {
      provide: async () => { calls.push('provide'); if (!storeWorks) throw new Error('no peer took the record') },
      findProviders: async function * () { calls.push('find'); yield { id: other, multiaddrs: [multiaddr('/ip4/192.168.1.3/tcp/4010')], routing: 'kad-dht' } },
      cancelReprovide: async () => {},
      put: async () => {},
      get: async () => new Uint8Array()
    }
    const events = new EventTarget()
    const finder = new MemberFinder({ peerId: self, contentRouting, events, logger: silentLogger }, { key: membersKey({}), peers: new DiscoveredPeers(), settleMs: 1000, earlyIntervalMs: 60_000, intervalMs: 600_000 })
    finder.start()
    events.dispatchEvent(new Event('connection:open'))
    await vi.advanceTimersByTimeAsync(1000)
    await vi.advanceTimersByTimeAsync(60_000)
    expect(calls).toEqual(['provide', 'find', 'provide', 'find'])
    expect(finder.stats.provided).toBe(false)
    storeWorks = true
    await vi.advanceTimersByTimeAsync(120_000)
    await vi.advanceTimersByTimeAsync(240_000)
    expect(calls.slice(4)).toEqual(['provide', 'find', 'find'])
    expect(finder.stats.provided).toBe(true)
    finder.stop()
  })
})
