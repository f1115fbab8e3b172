import type { ComponentLogger, Connection, Metrics, PeerId, Startable, Stream } from '@libp2p/interface'
import type { AddressManager, ConnectionManager, Registrar, TransportManager } from '@libp2p/interface-internal'
import { RELAY_V2_HOP_CODEC, RELAY_V2_STOP_CODEC, type CircuitRelayServerInit } from '@libp2p/circuit-relay-v2'
import { isPrivate } from '@libp2p/utils'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { logger, type Logger, type LogSink } from '../log/index.js'

/**
 * Reaching peers beyond the LAN: relayed connections (circuit relay v2), the limits a relay serves
 * with, and how a connection to a peer is described (direct or relayed via whom).
 *
 * js-libp2p marks a relayed connection "limited" whenever the relay set a limit on it; streams open
 * on one only when the protocol's handler and the caller both say `runOnLimitedConnection`. The
 * swarm's relays set their limits large enough for a chunk's segment and result (a relay that
 * applied libp2p's defaults, 128 KiB and 2 minutes per circuit, could not carry a single chunk).
 */

/** What a node started with `--relay` serves; `swarm join` prints these. */
export interface RelayLimits {
  /** Peers that may hold a reservation (be reachable through this relay) at once. */
  maxReservations: number
  /** Relayed connections (circuits) open at once. */
  maxCircuits: number
  /** Bytes one circuit may carry, both directions together, before the relay closes it. */
  maxBytesPerCircuit: bigint
  /** How long one circuit may stay open. */
  maxCircuitMs: number
}

export const DEFAULT_RELAY_LIMITS: RelayLimits = {
  maxReservations: 128,
  maxCircuits: 256,
  maxBytesPerCircuit: 8n * 1024n ** 3n,
  maxCircuitMs: 60 * 60_000
}

/** The limits in words, for `swarm join --relay`'s output and `status`. */
export function describeRelayLimits (l: RelayLimits): string {
  return `up to ${l.maxReservations} reserved peers, ${l.maxCircuits} circuits at once, ` +
    `${Number(l.maxBytesPerCircuit / 1024n ** 2n)} MiB and ${Math.round(l.maxCircuitMs / 60_000)} min per circuit, bandwidth not throttled`
}

/** The circuit relay v2 server's options for these limits. */
export function relayServerInit (l: RelayLimits): CircuitRelayServerInit {
  return {
    reservations: {
      maxReservations: l.maxReservations,
      // The server enforces the duration in milliseconds (it sends the same number, which clients
      // read as seconds, so they see a longer limit than the one that holds).
      defaultDurationLimit: l.maxCircuitMs,
      defaultDataLimit: l.maxBytesPerCircuit
    },
    maxInboundHopStreams: l.maxCircuits,
    maxOutboundStopStreams: l.maxCircuits
  }
}

/** How this node reaches a connected peer. */
export interface PeerPath {
  kind: 'direct' | 'relayed'
  /** The relay's peer id, for a relayed connection. */
  via?: string
}

/** Direct if any open connection is direct, else relayed via the relay of the first one. */
export function pathOf (connections: Connection[]): PeerPath | undefined {
  if (connections.length === 0) return undefined
  const direct = connections.find(c => !isRelayed(c))
  if (direct !== undefined) return { kind: 'direct' }
  const via = relayOf(connections[0] as Connection)
  return { kind: 'relayed', ...(via !== undefined ? { via } : {}) }
}

export function isRelayed (c: Connection): boolean {
  return c.remoteAddr.getComponents().some(x => x.name === 'p2p-circuit')
}

/** The relayed address through the peer at the other end of a direct connection: `<its address>/p2p/RELAY/p2p-circuit`. */
export function circuitVia (c: Connection): Multiaddr {
  return multiaddr(`${c.remoteAddr.decapsulateCode(421).toString()}/p2p/${c.remotePeer.toString()}/p2p-circuit`)
}

/** The peer id just before /p2p-circuit in a relayed connection's address. */
function relayOf (c: Connection): string | undefined {
  const parts = c.remoteAddr.getComponents()
  const at = parts.findIndex(x => x.name === 'p2p-circuit')
  return parts.slice(0, Math.max(0, at)).findLast(x => x.name === 'p2p')?.value
}

export interface RelayReserverComponents {
  peerId: PeerId
  registrar: Registrar
  transportManager: TransportManager
  connectionManager: ConnectionManager
  logger: ComponentLogger
}

export interface RelayReserverInit {
  /** Relays to hold a reservation on at once. */
  maxRelays?: number
  log?: LogSink
}

/**
 * Reserves a slot on the relays this node meets (any connected peer that serves the circuit relay
 * hop protocol: a bootstrap node started with --relay, or one the DHT named), so that peers that
 * cannot dial it can reach it through the relay; the relayed /p2p-circuit addresses then appear
 * among the node's own and go out in identify and in job announcements. js-libp2p's own way,
 * listening on `/p2p-circuit`, also walks the DHT at random looking for relays for as long as it has
 * none, which on a LAN without a relay would never stop.
 */
export class RelayReserver implements Startable {
  private topologyId: string | undefined
  private readonly relays = new Set<string>()
  private readonly log: Logger

  constructor (private readonly components: RelayReserverComponents, private readonly init: RelayReserverInit) {
    this.log = logger('relay', init.log)
  }

  readonly [Symbol.toStringTag] = 'swarm:relay-reserver'

  async start (): Promise<void> {
    this.topologyId = await this.components.registrar.register(RELAY_V2_HOP_CODEC, {
      onConnect: (peer, conn) => { this.reserve(peer, conn) },
      onDisconnect: (peer) => { this.relays.delete(peer.toString()) }
    })
  }

  stop (): void {
    if (this.topologyId !== undefined) this.components.registrar.unregister(this.topologyId)
  }

  /** Relays this node holds (or is making) a reservation on. */
  current (): string[] { return [...this.relays] }

  private reserve (peer: PeerId, conn: Connection): void {
    const id = peer.toString()
    if (this.relays.has(id) || this.relays.size >= (this.init.maxRelays ?? 2) || isRelayed(conn)) return
    this.relays.add(id)
    const addr = circuitVia(conn)
    this.components.transportManager.listen([addr]).then(() => {
      this.log.info(`reserved a slot on relay ${id}; peers that cannot dial this node reach it at ${addr.toString()}/p2p/${this.components.peerId.toString()}`)
    }, (err: Error) => {
      this.relays.delete(id)
      this.log.info(`could not reserve a slot on relay ${id}: ${err.message}`)
    })
  }
}

export function relayReserver (init: RelayReserverInit = {}): (components: RelayReserverComponents) => RelayReserver {
  return (components) => new RelayReserver(components, init)
}

/**
 * What this node knows about whether others can dial it. AutoNAT (v1) asks connected peers to dial
 * back an address, but only public ones: private, loopback and documentation addresses are never
 * tested (libp2p treats them as verified for the LAN), and js-libp2p drops TCP addresses observed
 * by peers (a dial leaves from a fresh port, so what a peer sees is not where we listen). A node
 * behind NAT therefore usually learns nothing from AutoNAT; the facts that remain are whether a
 * peer ever dialled in directly and whether a relay holds a slot for it.
 */
export type ReachVerdict = 'public' | 'dialled-in' | 'relay-only' | 'unknown'

export interface Reachability {
  verdict: ReachVerdict
  /** Public addresses AutoNAT confirmed that peers can dial (or the user announced). */
  confirmed: string[]
  /** Public addresses not (yet) confirmed: waiting for a peer to test them, or the test failed. */
  unconfirmed: string[]
  /** Peers connected to this node by dialling it directly (not through a relay), now. */
  inboundDirect: number
  /** Whether this node asks the LAN's router for a port mapping (UPnP-IGD). */
  upnp: boolean
  /** Public addresses a router mapped to this node by UPnP, confirmed or not. */
  mapped: string[]
}

export interface AddressFacts {
  addresses: Array<{ multiaddr: Multiaddr, verified: boolean, type: string }>
  inboundDirect: number
  reservedOn: string[]
  upnp: boolean
}

/** The verdict from plain facts (pure, for tests): a confirmed public address beats a peer that dialled in, which beats a relay slot. */
export function judgeReachability (f: AddressFacts): Reachability {
  const confirmed: string[] = []
  const unconfirmed: string[] = []
  const mapped: string[] = []
  for (const a of f.addresses) {
    if (a.multiaddr.getComponents().some(c => c.name === 'p2p-circuit') || isPrivate(a.multiaddr)) continue
    const text = a.multiaddr.toString()
    if (a.type === 'ip-mapping') mapped.push(text)
    if (a.verified) confirmed.push(text)
    else unconfirmed.push(text)
  }
  const verdict: ReachVerdict = confirmed.length > 0 ? 'public' : f.inboundDirect > 0 ? 'dialled-in' : f.reservedOn.length > 0 ? 'relay-only' : 'unknown'
  return { verdict, confirmed: unique(confirmed), unconfirmed: unique(unconfirmed), inboundDirect: f.inboundDirect, upnp: f.upnp, mapped: unique(mapped) }
}

function unique (xs: string[]): string[] { return [...new Set(xs)] }

export interface ReachabilityComponents {
  addressManager: AddressManager
  connectionManager: ConnectionManager
}

/** Reads what AutoNAT, UPnP and the open connections say about this node, for `status`. */
export class ReachabilityReport {
  constructor (private readonly components: ReachabilityComponents, private readonly init: { upnp: boolean }) {}

  readonly [Symbol.toStringTag] = 'swarm:reachability'

  report (reservedOn: string[]): Reachability {
    const inbound = new Set<string>()
    for (const c of this.components.connectionManager.getConnections()) {
      if (c.direction === 'inbound' && !isRelayed(c)) inbound.add(c.remotePeer.toString())
    }
    return judgeReachability({ addresses: this.components.addressManager.getAddressesWithMetadata(), inboundDirect: inbound.size, reservedOn, upnp: this.init.upnp })
  }
}

export function reachabilityReport (init: { upnp: boolean }): (components: ReachabilityComponents) => ReachabilityReport {
  return (components) => new ReachabilityReport(components, init)
}

/** What a `--relay` node has carried since it started, for `status`. */
export interface RelayCounters {
  /** Circuits opened through this relay (one per relayed connection). */
  circuitsServed: number
  /** Bytes the relay received on circuits and passed on, both directions together (a few bytes of each circuit's handshake included). */
  bytesRelayed: number
}

/**
 * Metric objects that do nothing: libp2p's parts register their metrics with whatever `metrics`
 * component there is. `then` stays undefined so nothing mistakes one for a promise.
 */
const NOOP_METRIC: unknown = new Proxy(function () {}, {
  get: (_t, p) => p === 'then' ? undefined : NOOP_METRIC,
  apply: () => NOOP_METRIC
})

/**
 * Counts what a relay carries. The circuit relay server joins each circuit's two streams (the
 * source's hop stream, the destination's stop stream) without telling anyone how much went
 * through; js-libp2p hands every negotiated protocol stream to its `metrics` component, so this
 * meter is that component on a `--relay` node and listens to the bytes arriving on those two
 * kinds of stream. Every other metric libp2p registers goes nowhere.
 */
export class RelayMeter {
  private readonly counters: RelayCounters = { circuitsServed: 0, bytesRelayed: 0 }

  get stats (): RelayCounters { return { ...this.counters } }

  /** The `metrics` component for createLibp2p. */
  metrics (): () => Metrics {
    const count = (evt: Event): void => { this.counters.bytesRelayed += (evt as Event & { data: { byteLength: number } }).data.byteLength }
    const metrics = {
      trackMultiaddrConnection: () => {},
      trackProtocolStream: (stream: Stream) => {
        const hop = stream.protocol === RELAY_V2_HOP_CODEC && stream.direction === 'inbound'
        const stop = stream.protocol === RELAY_V2_STOP_CODEC && stream.direction === 'outbound'
        if (stop) this.counters.circuitsServed++
        if (hop || stop) stream.addEventListener('message', count)
      },
      registerMetric: () => NOOP_METRIC,
      registerMetricGroup: () => NOOP_METRIC,
      registerCounter: () => NOOP_METRIC,
      registerCounterGroup: () => NOOP_METRIC,
      registerHistogram: () => NOOP_METRIC,
      registerHistogramGroup: () => NOOP_METRIC,
      registerSummary: () => NOOP_METRIC,
      registerSummaryGroup: () => NOOP_METRIC,
      traceFunction: <F>(_name: string, fn: F): F => fn,
      createTrace: () => undefined
    }
    return () => metrics as unknown as Metrics
  }
}
