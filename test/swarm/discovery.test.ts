/**
 * The peer dialer on real libp2p nodes over 127.0.0.1. What reports peers is a scripted discovery
 * module (the layer below: mDNS itself is exercised in test/cli/lan.test.ts, inside namespaces).
 */
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerDiscoverySymbol, type PeerDiscovery, type PeerInfo, type PrivateKey } from '@libp2p/interface'
import { identify } from '@libp2p/identify'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { createServer } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { DiscoveredPeers, describeDialError, peerDialer, tagDiscovery, type DiscoverySource, type PeerDialer } from '../../src/swarm/index.js'
import { waitFor } from '../helpers/wait.js'

/** A discovery module whose `peer` events the test fires. */
class ScriptedDiscovery extends EventTarget {
  readonly [peerDiscoverySymbol] = this as unknown as PeerDiscovery
  readonly [Symbol.toStringTag] = 'scripted-discovery'
  report (info: PeerInfo): void { this.dispatchEvent(new CustomEvent('peer', { detail: info })) }
}

type DialerNode = Libp2p<{ dialer: PeerDialer }>
const started: Libp2p[] = []
afterEach(async () => { await Promise.all(started.splice(0).map(async n => { await n.stop() })) })

async function plainNode (privateKey?: PrivateKey, port = 0): Promise<Libp2p> {
  const node = await createLibp2p({
    ...(privateKey !== undefined ? { privateKey } : {}),
    addresses: { listen: [`/ip4/127.0.0.1/tcp/${port}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
  started.push(node)
  return node
}

async function dialerNode (o: { bootstrap?: string[], minBackoffMs?: number, redialIntervalMs?: number, aloneRetryMs?: number, log?: string[], source?: DiscoverySource, relays?: boolean } = {}): Promise<{ node: DialerNode, discovery: ScriptedDiscovery, peers: DiscoveredPeers }> {
  const peers = new DiscoveredPeers()
  const discovery = new ScriptedDiscovery()
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: o.relays === true ? [tcp(), circuitRelayTransport()] : [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [tagDiscovery(o.source ?? 'mdns', peers, () => discovery as unknown as PeerDiscovery)],
    services: {
      ...(o.relays === true ? { identify: identify() } : {}),
      dialer: peerDialer({
        peers,
        bootstrap: o.bootstrap ?? [],
        ...(o.minBackoffMs !== undefined ? { minBackoffMs: o.minBackoffMs } : {}),
        ...(o.redialIntervalMs !== undefined ? { redialIntervalMs: o.redialIntervalMs } : {}),
        ...(o.aloneRetryMs !== undefined ? { aloneRetryMs: o.aloneRetryMs } : {}),
        log: (line) => { o.log?.push(line) }
      })
    }
  })
  started.push(node)
  return { node, discovery, peers }
}

const infoOf = (n: Libp2p): PeerInfo => ({ id: n.peerId, multiaddrs: n.getMultiaddrs().map(a => a.decapsulateCode(421)) })
const connected = (a: Libp2p, b: Libp2p): boolean => a.getConnections(b.peerId).length > 0

/** A port where nothing listens: bound and closed again. */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>(resolve => server.close(() => { resolve() }))
  return port
}

describe('PeerDialer', () => {
  it('dials a peer as soon as discovery reports it, and records how it was found', async () => {
    const log: string[] = []
    const { node, discovery } = await dialerNode({ log })
    const other = await plainNode()
    expect(connected(node, other)).toBe(false)
    discovery.report(infoOf(other))
    await waitFor('the dialer to connect', () => connected(node, other), { timeoutMs: 5000, everyMs: 20, retryErrors: true })
    expect(node.services.dialer.foundBy(other.peerId.toString())).toEqual(['mdns'])
    // A peer that dialled us and was never reported is "inbound".
    const caller = await plainNode()
    await caller.dial(node.getMultiaddrs()[0] as never)
    expect(node.services.dialer.foundBy(caller.peerId.toString())).toEqual(['inbound'])
    expect(log.some(l => l.startsWith(`connected to peer ${other.peerId.toString()} (found by mdns)`))).toBe(true)
  })

  it('never dials itself, nor a peer it is already connected to', async () => {
    const { node, discovery } = await dialerNode()
    const other = await plainNode()
    discovery.report(infoOf(node))
    discovery.report(infoOf(other))
    await waitFor('the dialer to connect', () => connected(node, other), { timeoutMs: 5000, everyMs: 20, retryErrors: true })
    const dials = node.services.dialer.stats.dials
    for (let i = 0; i < 10; i++) discovery.report(infoOf(other))
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(node.services.dialer.stats.dials).toBe(dials)
    expect(node.getConnections(node.peerId)).toEqual([])
  })

  it('backs off from a peer that cannot be reached: one dial per backoff period, logged once, listed as unreachable', async () => {
    const log: string[] = []
    const { node, discovery } = await dialerNode({ minBackoffMs: 400, log })
    const ghost = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const port = await closedPort()
    const report = (): void => { discovery.report({ id: ghost, multiaddrs: [multiaddr(`/ip4/127.0.0.1/tcp/${port}`)] }) }
    report()
    await waitFor('the first dial to fail', () => node.services.dialer.stats.failed === 1, { timeoutMs: 5000, everyMs: 10, retryErrors: true })
    // mDNS answers every few seconds; reports inside the backoff do not dial.
    for (let i = 0; i < 20; i++) report()
    await new Promise(resolve => setTimeout(resolve, 100))
    expect(node.services.dialer.stats.dials).toBe(1)
    const [u] = node.services.dialer.unreachable()
    expect(u?.id).toBe(ghost.toString())
    expect(u?.attempts).toBe(1)
    expect(u?.error).toMatch(/connection refused/)
    expect(u?.retryInMs).toBeGreaterThan(0)
    // After the backoff the next report dials again, and the delay doubles.
    await new Promise(resolve => setTimeout(resolve, 500))
    report()
    await waitFor('the second dial to fail', () => node.services.dialer.stats.failed === 2, { timeoutMs: 5000, everyMs: 10, retryErrors: true })
    expect(node.services.dialer.unreachable()[0]?.retryInMs).toBeGreaterThan(600)
    expect(log.filter(l => l.includes(`could not connect to peer ${ghost.toString()}`))).toHaveLength(1)
  })

  it('dials a peer again when it comes back (a restart on another port) and discovery reports it anew', async () => {
    const { node, discovery } = await dialerNode()
    const key = await generateKeyPair('Ed25519')
    const first = await plainNode(key)
    discovery.report(infoOf(first))
    await waitFor('the first connection', () => connected(node, first), { timeoutMs: 5000, everyMs: 20, retryErrors: true })
    await first.stop()
    await waitFor('the connection to close', () => node.getConnections(first.peerId).length === 0, { timeoutMs: 5000, everyMs: 20, retryErrors: true })
    const again = await plainNode(key)
    expect(again.peerId.equals(first.peerId)).toBe(true)
    discovery.report(infoOf(again))
    await waitFor('the connection to the restarted peer', () => connected(node, again), { timeoutMs: 5000, everyMs: 20, retryErrors: true })
  })

  it('keeps bootstrap peers connected: redials one that hung up', async () => {
    const other = await plainNode()
    const addr = other.getMultiaddrs()[0]?.toString() as string
    const { node } = await dialerNode({ bootstrap: [addr], redialIntervalMs: 100 })
    // Both ends: the dialler's side is open a moment before the other's, and a hang-up in between closes nothing.
    await waitFor('the bootstrap dial', () => connected(node, other) && connected(other, node), { timeoutMs: 5000, everyMs: 20, retryErrors: true })
    expect(node.services.dialer.foundBy(other.peerId.toString())).toEqual(['bootstrap'])
    await other.hangUp(node.peerId)
    await waitFor('the hang-up', () => !connected(node, other), { timeoutMs: 5000, everyMs: 10, retryErrors: true })
    await waitFor('the redial', () => connected(node, other), { timeoutMs: 5000, everyMs: 20, retryErrors: true })
  })
})

/** A relay on 127.0.0.1, and peers that hold a slot on it. */
async function relayNode (): Promise<Libp2p> {
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), relay: circuitRelayServer() }
  })
  started.push(node)
  return node
}

async function reservedOn (relay: Libp2p): Promise<Libp2p> {
  const node = await createLibp2p({
    addresses: { listen: [`${relay.getMultiaddrs()[0]?.toString() as string}/p2p-circuit`] },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  })
  started.push(node)
  await waitFor('a reservation on the relay', () => node.getMultiaddrs().some(a => a.toString().includes('/p2p-circuit')), { timeoutMs: 10_000, everyMs: 20, retryErrors: true })
  return node
}

describe('PeerDialer, peers found by the DHT', () => {
  it('reaches a peer listed only at an address that leads nowhere through a relay it is connected to: at once when the relay connects, and on the first dial after', async () => {
    const relay = await relayNode()
    const ann = await reservedOn(relay)
    const dan = await reservedOn(relay)
    const { node, discovery } = await dialerNode({ source: 'dht', relays: true, minBackoffMs: 60_000 })
    // As a DHT record from someone who knew ann before she held a slot: her home address only.
    const nowhere = async (peer: Libp2p): Promise<PeerInfo> => ({ id: peer.peerId, multiaddrs: [multiaddr(`/ip4/127.0.0.1/tcp/${await closedPort()}`)] })
    discovery.report(await nowhere(ann))
    await waitFor('the dial of the dead address to fail', () => node.services.dialer.stats.failed === 1, { timeoutMs: 5000, everyMs: 10, retryErrors: true })
    expect(connected(node, ann)).toBe(false)
    // A minute's backoff; the relay coming is what makes the dialer try again, through it.
    await node.dial(relay.getMultiaddrs()[0] as never)
    await waitFor('ann through the relay', () => connected(node, ann), { timeoutMs: 10_000, everyMs: 20, retryErrors: true })
    expect(node.getConnections(ann.peerId)[0]?.remoteAddr.toString()).toContain(`/p2p/${relay.peerId.toString()}/p2p-circuit`)
    // Found once the relay is known: the first dial goes through it, after the dead address.
    const before = node.services.dialer.stats
    discovery.report(await nowhere(dan))
    await waitFor('dan through the relay', () => connected(node, dan), { timeoutMs: 10_000, everyMs: 20, retryErrors: true })
    expect(node.services.dialer.stats).toEqual({ dials: before.dials + 1, connected: before.connected + 1, failed: before.failed })
    expect(node.getConnections(dan.peerId)[0]?.remoteAddr.toString()).toContain('/p2p-circuit')
  })

  it('does not route peers found on the LAN through a relay', async () => {
    const relay = await relayNode()
    const ann = await reservedOn(relay)
    const { node, discovery } = await dialerNode({ source: 'mdns', relays: true, minBackoffMs: 60_000 })
    await node.dial(relay.getMultiaddrs()[0] as never)
    await waitFor('identify with the relay', async () => (await node.peerStore.get(relay.peerId)).protocols.length > 0, { timeoutMs: 5000, everyMs: 20, retryErrors: true })
    discovery.report({ id: ann.peerId, multiaddrs: [multiaddr(`/ip4/127.0.0.1/tcp/${await closedPort()}`)] })
    await waitFor('the dial to fail', () => node.services.dialer.stats.failed === 1, { timeoutMs: 8000, everyMs: 10, retryErrors: true })
    expect(connected(node, ann)).toBe(false)
  })
})

describe('PeerDialer, alone', () => {
  it('tries its bootstrap node again soon while it has no connection at all, and waits out the backoff once it has one', async () => {
    const port = await closedPort()
    const ghost = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const { node, discovery } = await dialerNode({ bootstrap: [`/ip4/127.0.0.1/tcp/${port}/p2p/${ghost.toString()}`], minBackoffMs: 60_000, redialIntervalMs: 50, aloneRetryMs: 300 })
    // A minute's backoff, yet alone the node tries every 300 ms.
    await waitFor('three failed dials', () => node.services.dialer.stats.failed >= 3, { timeoutMs: 5000, everyMs: 20, retryErrors: true })
    const other = await plainNode()
    discovery.report(infoOf(other))
    await waitFor('a connection', () => connected(node, other), { timeoutMs: 5000, everyMs: 20, retryErrors: true })
    const failed = node.services.dialer.stats.failed
    await new Promise(resolve => setTimeout(resolve, 1000))
    expect(node.services.dialer.stats.failed).toBeLessThanOrEqual(failed + 1)
  })
})

describe('describeDialError', () => {
  it('says what a failure means to someone running swarm join', () => {
    expect(describeDialError(new Error('connect ECONNREFUSED 10.0.0.2:4010'))).toMatch(/nothing listens there/)
    expect(describeDialError(Object.assign(new Error('The operation was aborted due to timeout'), { name: 'TimeoutError' }))).toMatch(/no answer in time.*--swarm-key/)
    expect(describeDialError(new Error('Unexpected EOF - stream closed while reading 0/24 bytes'))).toMatch(/not in this swarm/)
  })
})

describe('DiscoveredPeers addresses', () => {
  it('drops the loopback address a DHT record or mDNS answer lists beside others (from another machine it is our own), keeps it when it is all there is, and takes bootstrap addresses as given', async () => {
    const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const peers = new DiscoveredPeers()
    const addrsOf = (): string[] => (peers.get(id.toString())?.addrs ?? []).map(a => a.toString())
    const both = { id, multiaddrs: [multiaddr('/ip4/127.0.0.1/tcp/4010'), multiaddr('/ip4/192.168.1.3/tcp/4010')] }
    peers.found('dht', both)
    expect(addrsOf()).toEqual([`/ip4/192.168.1.3/tcp/4010/p2p/${id.toString()}`])
    peers.found('dht', { id, multiaddrs: [multiaddr('/ip4/127.0.0.1/tcp/4010')] })
    expect(addrsOf()).toEqual([`/ip4/127.0.0.1/tcp/4010/p2p/${id.toString()}`])
    peers.found('bootstrap', both)
    expect(addrsOf()).toHaveLength(2)
  })

  it('makes every address end in the peer\'s id: a relayed one from a DHT record gets it after /p2p-circuit, one naming another peer is dropped, duplicates go', async () => {
    const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const relay = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const peers = new DiscoveredPeers()
    const circuit = `/ip4/10.80.0.2/tcp/4010/p2p/${relay.toString()}/p2p-circuit`
    peers.found('dht', { id, multiaddrs: [multiaddr(circuit), multiaddr(`${circuit}/p2p/${id.toString()}`), multiaddr(`/ip4/10.80.0.2/tcp/4010/p2p/${relay.toString()}`)] })
    expect((peers.get(id.toString())?.addrs ?? []).map(a => a.toString())).toEqual([`${circuit}/p2p/${id.toString()}`])
  })
})
