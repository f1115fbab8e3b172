import { noise } from '@chainsafe/libp2p-noise'
import { autoNAT } from '@libp2p/autonat'
import { circuitRelayServer, circuitRelayTransport, type CircuitRelayService } from '@libp2p/circuit-relay-v2'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { createTopicScoreParams } from '@libp2p/gossipsub/score'
import { identify } from '@libp2p/identify'
import type { ConnectionGater, PrivateKey, PeerDiscovery, ComponentLogger } from '@libp2p/interface'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { mdns } from '@libp2p/mdns'
import { ping, type Ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { uPnPNAT } from '@libp2p/upnp-nat'
import { multiaddr } from '@multiformats/multiaddr'
import { createHash } from 'node:crypto'
import { createLibp2p, type Libp2p, type Libp2pOptions } from 'libp2p'
import type { LogSink } from '../log/index.js'
import { JOBS_TOPIC, KAD_PROTOCOL, MAX_ANNOUNCEMENT_BYTES } from './protocol.js'
import { swarmEncode, type SwarmEncode, type SwarmEncodeInit } from './service.js'
import { DiscoveredPeers, peerDialer, tagDiscovery, type PeerDialer } from './discovery.js'
import { reachabilityReport, RelayMeter, relayReserver, relayServerInit, type ReachabilityReport, type RelayLimits, type RelayReserver } from './reach.js'
import { watchedYamux } from './liveness.js'
import { memberFinder, membersKey, type MemberFinder } from './members.js'
import { dialableAddress, usesLoopback, type DialPolicy } from './dial-filter.js'
import { boundedDhtStore, DEFAULT_DHT_STORE_LIMITS, providerKeyOf } from './dht-store.js'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Datastore } from 'interface-datastore'
import type { CID } from 'multiformats/cid'

export interface SwarmNodeOptions {
  privateKey: PrivateKey
  /** Listen multiaddrs; users default to all interfaces, tests pass /ip4/127.0.0.1/tcp/0. */
  listen: string[]
  /** Peers to dial at start. There is no public bootstrap list. */
  bootstrap: string[]
  /** Find peers on the LAN by multicast DNS. */
  mdns: boolean
  /** A pre-shared key (the `/key/swarm/psk/1.0.0/` file format): only nodes with it can connect. */
  swarmKey?: Uint8Array
  encode: SwarmEncodeInit
  /** Serve circuit relay v2 (`swarm join --relay`) with these limits: peers that cannot dial each other meet through this node. */
  relay?: RelayLimits
  /** Addresses to announce besides the listening ones (`--announce`, e.g. a public address forwarded to this node). */
  announce?: string[]
  /**
   * Ask the LAN's router for a port mapping (UPnP-IGD) so peers elsewhere can dial this node. On for
   * people running `swarm join`; off in tests, demos and benchmarks, which must never talk to the
   * machine's real router.
   */
  upnp?: boolean
  /** The name whose DHT key members meet under when there is no swarm key (members.ts). */
  swarmName?: string
  /** Where connection events and failures to reach a discovered peer are logged. */
  log?: LogSink
  /** Peers banned from this node (bans.ts): never dialled, their connections refused once their key is known. */
  isBanned?: (peer: string) => boolean
  /**
   * What identify tells peers this node is: the swarm's version and the encoders it has
   * (capabilities.ts agentVersionOf). Default: libp2p's own agent string.
   */
  agentVersion?: string
  /** Resolves host names in addresses (`/dns4/`, `/dnsaddr/`); default the system's. Tests pass one that answers without a network. */
  dns?: Libp2pOptions['dns']
}

export type SwarmServices = {
  identify: ReturnType<ReturnType<typeof identify>>
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
  encode: SwarmEncode
  /** Dials what mDNS, bootstrap and the DHT find; knows how each peer was found. */
  dialer: PeerDialer
  /** Holds reservations on the relays the node meets, so peers that cannot dial it reach it through one. */
  reserver: RelayReserver
  /** Present on a node started with `--relay`. */
  relay?: CircuitRelayService
  /** On a `--relay` node: circuits served and bytes carried. */
  relayMeter?: RelayMeter
  /** AutoNAT v1: asks connected peers to dial back our public addresses, so those can be announced. */
  autoNAT: unknown
  /** UPnP-IGD port mapping, when on. */
  upnp?: unknown
  /** What AutoNAT, UPnP and the connections say about whether peers can dial this node. */
  reachability: ReachabilityReport
  /** Stores and looks up the swarm's provider record in the DHT, so members find each other beyond the LAN. */
  members: MemberFinder
}

export type SwarmNode = Libp2p<SwarmServices>

/**
 * Turns off the relay transport's own relay discovery (its topology sees every peer as already
 * seen), which raced RelayReserver for the same relay and made its reservation fail: the reserver
 * alone decides which relays to hold a slot on.
 */
const NO_RELAY_DISCOVERY = { has: (): boolean => true, add: (): void => {}, remove: (): void => {} }

export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/4010']

/**
 * Inbound connections from this machine skip libp2p's per-address limits (5 new connections a
 * second from one IP, 10 handshakes pending), which guard against a flood from one remote host.
 * Every node on one machine shares 127.0.0.1: when a job was announced to 50 nodes there, the
 * originator refused all but a few of their connections, and each refused worker waited 10 s
 * before trying again. Only local processes can connect from loopback.
 */
export const LOOPBACK_ALLOW = ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']

/** mDNS service name: our own, so a node dials only swarm nodes, not every libp2p program on the LAN. */
export const MDNS_SERVICE_TAG = '_swarm-encode._udp.local'

/**
 * Only one thing is scored on the jobs topic: messages our validator rejects (malformed, oversized,
 * forged). P4 grows with the square of their count, so a few honest mistakes cost little while a
 * peer that keeps sending them falls below the graylist threshold within a handful (3 reach -90)
 * and its messages are then dropped unread, until the count decays (1% a second). The delivery
 * terms (P2, P3) are off: announcements are sparse, and an honest quiet peer must never be punished.
 */
export const JOBS_TOPIC_SCORE = createTopicScoreParams({
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1000,
  timeInMeshCap: 100,
  firstMessageDeliveriesWeight: 0,
  meshMessageDeliveriesWeight: 0,
  meshFailurePenaltyWeight: 0,
  invalidMessageDeliveriesWeight: -10,
  invalidMessageDeliveriesDecay: 0.99
})
export const SCORE_THRESHOLDS = { gossipThreshold: -10, publishThreshold: -50, graylistThreshold: -80, acceptPXThreshold: 10, opportunisticGraftThreshold: 20 }

/**
 * Gossipsub checks a message's signature before it looks the message up among those it has seen,
 * unless it is given a cheap id to look up first; each node hears every message from several mesh
 * peers, so without one it verified every copy (at 50 nodes on one host, a sixth of all their CPU).
 * The id covers every field, so two messages that differ anywhere never share it; it is remembered
 * only for a message whose signature checked out.
 */
export function gossipFastMessageId (msg: { from?: Uint8Array, seqno?: Uint8Array, topic: string, data?: Uint8Array, signature?: Uint8Array, key?: Uint8Array }): string {
  const h = createHash('sha256')
  for (const field of [msg.from, msg.seqno, Buffer.from(msg.topic), msg.data, msg.signature, msg.key]) {
    // Length-prefixed, absent fields apart from empty ones, so fields cannot run into each other.
    const length = Buffer.alloc(4)
    length.writeInt32BE(field === undefined ? -1 : field.byteLength)
    h.update(length)
    if (field !== undefined) h.update(field)
  }
  return h.digest('base64')
}

/**
 * Keeps banned peers off the node: no dial to one, and an inbound connection is dropped as soon as
 * the handshake says whose it is (the first point a peer id is known). Dials only addresses
 * dial-filter.ts allows. Everything else is allowed, as with js-libp2p's default gater.
 */
export function banGater (isBanned: (peer: string) => boolean, dial: DialPolicy = { loopback: true }): ConnectionGater {
  return {
    // Peers say where to dial them: only what dial-filter.ts allows (no /unix/, no loopback unless we use it).
    denyDialMultiaddr: (ma) => !dialableAddress(ma, dial),
    denyDialPeer: (peer) => isBanned(peer.toString()),
    denyInboundEncryptedConnection: (peer) => isBanned(peer.toString()),
    denyOutboundEncryptedConnection: (peer) => isBanned(peer.toString())
  }
}

/**
 * Gives kad-dht a bounded view of the node's datastore (dht-store.ts): provider records only for
 * the swarm's members key, a few per peer, 4,096 in all, and 256 values. Without it every node, a
 * DHT server, kept whatever any peer sent it: 30,000 ADD_PROVIDER messages on one stream left
 * 30,000 records and 19 MB of heap for a day or two.
 */
function withBoundedStore<C extends { datastore: Datastore }, S> (factory: (components: C) => S, privateKey: PrivateKey, members: CID): (components: C) => S {
  return (components) => {
    const { store } = boundedDhtStore(components.datastore, peerIdFromPrivateKey(privateKey).toString(), { ...DEFAULT_DHT_STORE_LIMITS, providerKeys: new Set([providerKeyOf(members)]) })
    const view = new Proxy(components, { get: (target, prop, receiver) => prop === 'datastore' ? store : Reflect.get(target, prop, receiver) as unknown })
    return factory(view)
  }
}

/**
 * Refuses, with a hint, listen, bootstrap and announce addresses that are not multiaddrs, and
 * bootstrap addresses without the peer's id. Host names are fine: `/dns4/HOST/tcp/4010/p2p/ID`,
 * `/dns/…`, and `/dnsaddr/HOST/p2p/ID` (libp2p resolves the TXT records `_dnsaddr.HOST` when it
 * dials, and keeps the addresses that end in that id). Nothing here resolves a name.
 */
export function checkAddresses (o: Pick<SwarmNodeOptions, 'listen' | 'bootstrap' | 'announce'>): void {
  for (const a of [...o.listen, ...o.bootstrap, ...(o.announce ?? [])]) {
    try { multiaddr(a) } catch (err) { throw new Error(`${a} is not a multiaddr (${(err as Error).message}); try /ip4/127.0.0.1/tcp/4010`) }
  }
  for (const a of o.bootstrap) {
    // Without the peer id the dialer could not tell whom it reached, nor keep that peer connected.
    if (/\/p2p\/[1-9A-HJ-NP-Za-km-z]+$/.test(a)) continue
    if (a.startsWith('/dnsaddr/')) throw new Error(`bootstrap address ${a} must name the peer too: /dnsaddr/HOST/p2p/PEERID (the peer id that swarm join printed on that machine)`)
    throw new Error(`bootstrap address ${a} is not a multiaddr ending in /p2p/PEERID; copy a whole "listening:" line that swarm join printed on that machine`)
  }
}

/**
 * A swarm node: TCP, Noise, Yamux, identify, ping, our own kad-dht, gossipsub and the encode
 * protocols, and a dialer that connects to every swarm node mDNS, bootstrap or the DHT finds (js-libp2p
 * does not dial discovered peers by itself). Circuit relay v2: every node can dial through a relay
 * and reserves a slot on the relays it meets; with `relay` it serves as one. AutoNAT tells it which
 * of its public addresses peers can dial; with `upnp` it asks the router for a port mapping. Members
 * find each other through a provider record in the swarm's own DHT. Nothing here talks to a public
 * bootstrap list or the public IPFS DHT.
 */
export async function createSwarmNode (o: SwarmNodeOptions): Promise<SwarmNode> {
  checkAddresses(o)
  const discovered = new DiscoveredPeers()
  const peerDiscovery: Array<(components: { logger: ComponentLogger }) => PeerDiscovery> = []
  // Bootstrap addresses need no discovery module: the dialer reports them as found at start and
  // keeps them connected.
  if (o.mdns) peerDiscovery.push(tagDiscovery('mdns', discovered, mdns({ serviceTag: MDNS_SERVICE_TAG }) as never))
  // Only a relay counts (see RelayMeter): elsewhere libp2p keeps no metrics at all, as before.
  const meter = o.relay !== undefined ? new RelayMeter() : undefined
  const members = membersKey({ ...(o.swarmKey !== undefined ? { swarmKey: o.swarmKey } : {}), ...(o.swarmName !== undefined ? { name: o.swarmName } : {}) })
  return await createLibp2p({
    ...(meter !== undefined ? { metrics: meter.metrics() } : {}),
    ...(o.dns !== undefined ? { dns: o.dns } : {}),
    privateKey: o.privateKey,
    ...(o.agentVersion !== undefined ? { nodeInfo: { userAgent: o.agentVersion } } : {}),
    connectionManager: { allow: LOOPBACK_ALLOW },
    // Each connection is watched by its muxer's own ping instead (liveness.ts): far cheaper than a ping stream.
    connectionMonitor: { enabled: false },
    addresses: { listen: o.listen, ...(o.announce !== undefined && o.announce.length > 0 ? { appendAnnounce: o.announce } : {}) },
    transports: [tcp(), circuitRelayTransport({ reservationCompletionTimeout: 10_000, discoveryFilter: NO_RELAY_DISCOVERY })],
    connectionEncrypters: [noise()],
    streamMuxers: [watchedYamux()],
    ...(o.swarmKey !== undefined ? { connectionProtector: preSharedKey({ psk: o.swarmKey }) } : {}),
    connectionGater: banGater(o.isBanned ?? (() => false), { loopback: usesLoopback([...o.listen, ...o.bootstrap].map(a => multiaddr(a))) }),
    peerDiscovery,
    services: {
      identify: identify(),
      ping: ping(),
      dht: tagDiscovery('dht', discovered, withBoundedStore(kadDHT({ protocol: KAD_PROTOCOL, clientMode: false, peerInfoMapper: passthroughMapper }), o.privateKey, members) as never) as unknown as (components: unknown) => KadDHT,
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        // Gossipsub batches several messages into one RPC (IWANT replies); the 64 KiB limit per
        // announcement is the JobBoard's. A tighter cap here drops honest peers from the mesh.
        maxInboundDataLength: 4 * 1024 * 1024,
        D: 6,
        fastMsgIdFn: gossipFastMessageId,
        // IDONTWANT (gossipsub 1.2) asks mesh peers not to forward a message we already have. For an
        // announcement of a few KiB it costs a frame to each mesh peer, about what the duplicate it
        // might spare would cost, and on a LAN the duplicate is usually on its way already; at 50
        // nodes it was a tenth of each node's CPU. Larger announcements still send it.
        idontwantMinDataSize: 16 * 1024,
        // Gossipsub scores down peers that share an IP address beyond ten of them, an anti-Sybil
        // measure for public networks. Here many nodes on one host (containers, a test or the scale
        // simulation on 127.0.0.1) are normal, and every message is authenticated anyway: without
        // this, an eleventh node on one address never hears of any job.
        scoreParams: { IPColocationFactorWeight: 0, topics: { [JOBS_TOPIC]: JOBS_TOPIC_SCORE } },
        scoreThresholds: SCORE_THRESHOLDS
      }),
      encode: swarmEncode(o.encode),
      dialer: peerDialer({ peers: discovered, bootstrap: o.bootstrap, ...(o.log !== undefined ? { log: o.log } : {}) }),
      reserver: relayReserver(o.log !== undefined ? { log: o.log } : {}),
      ...(o.relay !== undefined ? { relay: circuitRelayServer(relayServerInit(o.relay)) } : {}),
      ...(meter !== undefined ? { relayMeter: () => meter } : {}),
      autoNAT: autoNAT(),
      // UPnP needs AutoNAT to confirm a mapped address before announcing it (a router may map a port
      // that its upstream, a second NAT, never lets through).
      ...(o.upnp === true ? { upnp: uPnPNAT() } : {}),
      reachability: reachabilityReport({ upnp: o.upnp === true }),
      members: memberFinder({ key: members, peers: discovered, ...(o.log !== undefined ? { log: o.log } : {}) })
    }
  }) as SwarmNode
}
