import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { Originator, type OriginatorOptions, type VerifyMode } from '../jobs/index.js'
import type { LogSink } from '../log/index.js'
import { installedEncoders, type EncodePriority, type EncoderId, type InstalledEncoder, type PlanOptions } from '../media/index.js'
import {
  agentVersionOf, ANNOUNCE_INTERVAL_MS, BanList, BANS_FILE, createSwarmNode, JOBS_TOPIC, DEFAULT_LISTEN, JobBoard, loadOrCreateIdentity,
  describeRelayLimits, pathOf, type RelayLimits, type ReportOffence, type SwarmNode, type BanListOptions, type TransferStats, MAX_CHUNKS_PER_JOB, type NodeEvent
} from '../swarm/index.js'
import { RELAY_V2_HOP_CODEC } from '@libp2p/circuit-relay-v2'
import { Worker, type ChunkEncoder } from '../worker/index.js'
import { API_VERSION, type PeersJson, type StatusJson } from './api.js'
import { Announcer } from './announcer.js'
import { adaptiveInTheOpen, controlHandlers } from './control-handlers.js'
import { EventLog, NodeEvents } from './event-log.js'
import { ControlServer } from './control-server.js'
import { lockHome, prepareHome, writeControlFile } from './home.js'
import { localLink } from './local-link.js'
import { MAX_REMOTE_JOBS, MAX_REMOTE_JOBS_PER_ORIGINATOR, remoteJobFeed, RemoteJobs } from './remote-jobs.js'
import { defaultSlots, defaultThreads } from './sizing.js'
import { defaultMemoryBudget } from '../media/memory.js'
import { encoderPeerCount, jobStatus, peers, status, type ConnectedPeer } from './status-view.js'
import { PeerEncoders } from './peer-encoders.js'
import { SWARM_VERSION } from './version.js'
import type { RemoteJobFeed } from './remote-jobs.js'
import { OriginatorReach } from './originator-reach.js'
import type { NetworkStatus } from './api.js'

export interface DaemonOptions {
  home: string
  listen?: string[]
  bootstrap?: string[]
  /** Multicast DNS discovery on the LAN; on unless turned off. */
  mdns?: boolean
  /** Concurrent encodes; default defaultSlots() in sizing.ts: one per core on a small machine, about four on a bigger one. */
  slots?: number
  /** x264 --threads per encode; default: x264's own choice with one slot, cores / slots with more. */
  threads?: number
  /** Memory one encode may take (`--max-memory`); default defaultMemoryBudget(slots) in media/memory.ts. */
  memoryBudgetBytes?: number
  /** How encodes share the machine (`--encode-priority`); default the worker's DEFAULT_ENCODE_PRIORITY. */
  encodePriority?: EncodePriority
  swarmKey?: Uint8Array
  /** Serve as a circuit relay for the swarm (`swarm join --relay`) with these limits. */
  relay?: RelayLimits
  /** Extra addresses to announce (`--announce`), e.g. a public address whose port is forwarded here. */
  announce?: string[]
  /** UPnP port mapping on the router: off unless asked for (`swarm join` asks unless `--no-upnp`). */
  upnp?: boolean
  /** Swarms without a key meet in the DHT under this name (default `public`, see src/swarm/members.ts). */
  swarmName?: string
  leaseMs?: number
  /** The block list's bounds (MAX_BAN_RECORDS, MAX_ACTIVE_BANS); tests lower them to flood them with a few real peers. */
  banLimits?: Pick<BanListOptions, 'maxRecords' | 'maxActiveBans'>
  /** The fixed part of every transfer's deadline (default TRANSFER_ALLOWANCE_MS, 30 s); tests shorten it. */
  transferAllowanceMs?: number
  /** The originator's limits (leases per peer, deadline floors, results verified at once); tests set them, `swarm join` keeps the defaults. */
  leaseLimits?: Pick<OriginatorOptions, 'maxLeasesPerPeer' | 'minDeadlineMs' | 'noPaceDeadlineMs' | 'verifyConcurrency'>
  plan?: PlanOptions
  /** Bounds of the list of other originators' jobs (remote-jobs.ts); tests lower them to flood it with a few real peers. */
  remoteJobLimits?: { perOriginator: number, total: number, strangerEvictions?: { burst: number, perSecond: number } }
  log?: LogSink
  /**
   * How peers' results of jobs added here are checked unless the job says (`swarm join --verify`):
   * default `adaptive` with a swarm key (machines the user trusts), `all` without.
   */
  verify?: VerifyMode
  /**
   * The draws that pick which results get the picture check in adaptive mode, for tests only:
   * `swarm join` sets scripted ones when SWARM_TEST_VERIFY_DRAWS is in its environment. Default:
   * node:crypto. Never chosen by a peer.
   */
  verifyDraw?: (jobId: string, peer: string) => number
  /**
   * A stand-in encoder, for tests and demos: `swarm join` sets one when SWARM_TEST_ENCODER is in its
   * environment. Never chosen by a peer: nothing from the network reaches this option.
   */
  encoder?: ChunkEncoder
  /** `swarm join --events FILE`: every node event (swarm/events.ts) appended to FILE as a line of JSON. */
  eventsFile?: string
  /** Called with every node event, in order (the scale benchmark takes them in-process). */
  onEvent?: (event: NodeEvent) => void
}

export interface Daemon {
  peerId: string
  addresses: () => string[]
  controlUrl: string
  /** The web dashboard, token included in the URL (loopback only). */
  dashboardUrl: string
  status: () => StatusJson
  /** Connected peers with ping latency and what they encode for this node's jobs. */
  peers: () => Promise<PeersJson>
  /** Counters for benchmarks and the scale simulation: streams served, bytes moved, announcements. */
  metrics: () => { transfer: TransferStats, announcementsPublished: number, announcementsRejected: number, announcementsIgnored: number, remoteJobs: { admitted: number, evicted: number, refused: number } }
  stop: () => Promise<void>
}

/** A remote job stops being listed (and worked on) when its originator has been silent this long. */
const REMOTE_JOB_TTL_MS = 6 * ANNOUNCE_INTERVAL_MS
/** How long the worker may take to connect to an originator before its first claim (see startWorker). */
const GATE_CONNECT_MS = 30_000
/** How long a banned peer's connections stay open after the ban, for the answer that says why to reach it. */
const HANG_UP_GRACE_MS = 1000
/** How long `swarm peers` waits for a ping answer. */
const PING_TIMEOUT_MS = 2000

/** The running parts of a node, as the functions that wire them see them. */
interface Parts {
  self: string
  log: LogSink
  libp2p: SwarmNode
  originator: Originator
  worker: Worker
  remoteJobs: RemoteJobs
  reach: OriginatorReach
  /** Peers caught lying, persisted in the home (swarm/bans.ts). */
  bans: BanList
  /** What the originator, the worker and the block list did, fanned out (event-log.ts). */
  events: NodeEvents
  relayLimits?: RelayLimits
  /** Started with a swarm key. */
  privateSwarm: boolean
  /** What each connected peer says it encodes. */
  peerEncoders: PeerEncoders
}

type OnStop = (cleanup: () => Promise<void>) => void

/**
 * One swarm node: the libp2p node, the originator of jobs added here, the worker that encodes
 * chunks of every job it hears of, and the local control API for the CLI.
 */
export async function startDaemon (o: DaemonOptions): Promise<Daemon> {
  const log = o.log ?? (() => {})
  await prepareHome(o.home, log)
  const unlock = await lockHome(o.home)
  const cleanups: Array<() => Promise<void>> = [unlock]
  const onStop: OnStop = (cleanup) => { cleanups.push(cleanup) }
  const undo = async (): Promise<void> => { for (const c of cleanups.reverse()) await c().catch(() => {}) }
  try {
    const { privateKey } = await loadOrCreateIdentity(o.home)
    const self = peerIdFromPrivateKey(privateKey).toString()
    const events = await startEvents(o, self, onStop)
    // Before anything listens: a peer banned before a restart is still banned at the first dial.
    const bans = new BanList({ file: join(o.home, BANS_FILE), log, ...o.banLimits })
    await bans.load()
    onStop(async () => { await bans.flush() })
    bans.on('banned', (ban) => { events.publish({ type: 'peer:banned', at: ban.since, peer: ban.peer, reason: ban.reason, until: ban.until, jobIds: ban.jobs }) })
    const reportOffence: ReportOffence = (offence) => { if (offence.peer !== self) bans.report(offence) }
    const reportStrike: ReportOffence = (offence) => { if (offence.peer !== self) bans.strike(offence) }
    let node: SwarmNode | undefined
    let peerEncoders: PeerEncoders | undefined
    const swarmSize = swarmSizeOf(() => node, () => peerEncoders)
    const slots = o.slots ?? defaultSlots()
    // Asked once: what the worker claims, what admission accepts and what peers are told.
    const installed = await installedEncoders()
    const installedIds = new Set(installed.map(e => e.encoder))
    // Bound late: the worker is made after the list it reads its jobs from, and after the originator it encodes for.
    let workerRef: Worker | undefined
    const originator = new Originator({
      ...originatorOptions(o, log),
      shortenOwnEncode: (jobId, chunk, leaseId, choose) => workerRef?.shortenOwnEncode(jobId, chunk, leaseId, choose),
      home: o.home, peerId: self, log, swarmSize, slotsPerPeer: slots, maxChunks: MAX_CHUNKS_PER_JOB, reportOffence,
      isBanned: (peer, jobId) => bans.isBanned(peer, jobId),
      installedEncoders: installedIds,
      encoderVersionOf: encoderVersions(self, installed, () => peerEncoders),
      isPresent: (peer) => node?.services.pubsub.getSubscribers(JOBS_TOPIC).some(p => p.toString() === peer) ?? false
    })
    // Before start: resuming a job is the first thing that may happen.
    originator.on('event', events.publish)
    await originator.start()
    onStop(async () => { await originator.stop() })

    node = await createSwarmNode({
      privateKey,
      listen: o.listen ?? DEFAULT_LISTEN,
      bootstrap: o.bootstrap ?? [],
      mdns: o.mdns ?? true,
      ...(o.swarmKey !== undefined ? { swarmKey: o.swarmKey } : {}),
      ...(o.relay !== undefined ? { relay: o.relay } : {}),
      ...(o.announce !== undefined ? { announce: o.announce } : {}),
      ...(o.upnp !== undefined ? { upnp: o.upnp } : {}),
      ...(o.swarmName !== undefined ? { swarmName: o.swarmName } : {}),
      encode: { arbiter: originator, log, ...(o.transferAllowanceMs !== undefined ? { transferAllowanceMs: o.transferAllowanceMs } : {}), bans: { isBanned: (peer, jobId) => bans.isBanned(peer, jobId), violation: (peer, message) => { bans.violation(peer, message) } } },
      isBanned: (peer) => bans.isBanned(peer),
      agentVersion: agentVersionOf(SWARM_VERSION, installed),
      log
    })
    const libp2p = node
    onStop(async () => { await libp2p.stop() })
    log(`encoders: ${installed.length > 0 ? installed.map(e => `${e.encoder} ${e.version}`).join(', ') : 'none found: this node encodes nothing (apt-get install -y x264)'}`, 'info', 'node')
    const remoteJobs = new RemoteJobs(REMOTE_JOB_TTL_MS, remoteJobLimits(o), {
      isBusy: (originatorId, jobId) => workerRef?.holds(originatorId, jobId) ?? false,
      ...(o.remoteJobLimits?.strangerEvictions !== undefined ? { strangerEvictions: o.remoteJobLimits.strangerEvictions } : {})
    })
    peerEncoders = new PeerEncoders(libp2p)
    onStop(async () => { peerEncoders?.stop() })
    const beforeWorker = {
      self, log, libp2p, originator, bans, events, remoteJobs, reach: new OriginatorReach({ log }), privateSwarm: o.swarmKey !== undefined, peerEncoders, installedIds,
      ...(o.relay !== undefined ? { relayLimits: o.relay } : {})
    }
    const workerStopping = new AbortController()
    const worker = await startWorker(o, beforeWorker, slots, swarmSize, { reportOffence, reportStrike }, workerStopping.signal)
    workerRef = worker
    worker.on('event', events.publish)
    // An originator that took a result of ours is one this node works for: room is kept for its jobs.
    events.add((e) => { if (e.type === 'upload:accepted' && e.originator !== self) remoteJobs.workedFor(e.originator, e.at) })
    onStop(async () => { await worker.stop() })
    // Stops run in reverse: connections the worker is still making are given up before it stops.
    onStop(async () => { workerStopping.abort() })
    const parts: Parts = { ...beforeWorker, worker }

    const { board, feed } = listenForJobs(parts, onStop)
    enforceBans(parts, feed, onStop)
    const announcer = new Announcer({
      self, jobs: originator, worker, swarmSize,
      publish: async (msg) => { await board.publish(msg) },
      addrs: () => ownAddrs(libp2p)
    })
    originator.on('changed', (id) => { announcer.changed(id) })
    announcer.start()
    onStop(async () => { announcer.stop() })

    const control = await startControl(o.home, parts, onStop)
    let stopping: Promise<void> | undefined
    return {
      peerId: self,
      addresses: () => ownAddrs(libp2p),
      controlUrl: control.url,
      dashboardUrl: control.dashboardUrl,
      status: () => statusOf(parts, false),
      peers: async () => await peersOf(parts),
      metrics: () => ({ transfer: libp2p.services.encode.stats, announcementsPublished: board.published, announcementsRejected: board.rejected, announcementsIgnored: board.ignored, remoteJobs: { ...parts.remoteJobs.stats } }),
      stop: async () => { stopping ??= undo(); await stopping }
    }
  } catch (err) {
    await undo()
    throw err
  }
}

/** The node's event fan-out, with the event log (`--events FILE`) and the caller's listener as its first sinks. */
async function startEvents (o: DaemonOptions, self: string, onStop: OnStop): Promise<NodeEvents> {
  const events = new NodeEvents(o.log)
  if (o.eventsFile !== undefined) {
    const file = await EventLog.open(o.eventsFile, o.log)
    events.add(file.write)
    onStop(async () => { await file.close() })
  }
  if (o.onEvent !== undefined) events.add(o.onEvent)
  events.publish({ type: 'node:started', at: Date.now(), peer: self })
  return events
}

function remoteJobLimits (o: DaemonOptions): { perOriginator: number, total: number } {
  return { perOriginator: o.remoteJobLimits?.perOriginator ?? MAX_REMOTE_JOBS_PER_ORIGINATOR, total: o.remoteJobLimits?.total ?? MAX_REMOTE_JOBS }
}

/**
 * This node and the peers that listen for jobs; given an encoder, those of them that can run it
 * (a peer that advertises no encoders counts: it claims and fails like any, as before they were
 * advertised). What plans a job's chunks and decides when nobody is left to finish it.
 */
function swarmSizeOf (node: () => SwarmNode | undefined, peerEncoders: () => PeerEncoders | undefined): (encoder?: EncoderId) => number {
  return (encoder) => {
    const listening = node()?.services.pubsub.getSubscribers(JOBS_TOPIC) ?? []
    if (encoder === undefined) return 1 + listening.length
    return 1 + listening.filter(p => peerEncoders()?.of(p.toString())?.some(e => e.encoder === encoder) ?? true).length
  }
}

/** The version of an encoder a peer advertises, or this node's own: what a job records with each result. */
function encoderVersions (self: string, installed: InstalledEncoder[], peers: () => PeerEncoders | undefined): (peer: string, encoder: EncoderId) => string | undefined {
  return (peer, encoder) => (peer === self ? installed : peers()?.of(peer))?.find(e => e.encoder === encoder)?.version
}

/** The originator's options that follow from the node's own (`swarm join`'s flags). */
function originatorOptions (o: DaemonOptions, log: LogSink): Partial<OriginatorOptions> {
  const verify = o.verify ?? (o.swarmKey !== undefined ? 'adaptive' : 'all')
  if (verify === 'adaptive' && o.swarmKey === undefined) log(`warning: ${adaptiveInTheOpen()}`, 'info', 'jobs')
  return {
    // This node's worker encodes its own jobs too: it is the one that tries a chunk others gave back.
    ownWorker: true,
    verify,
    ...(o.verifyDraw !== undefined ? { checks: { draw: o.verifyDraw } } : {}),
    ...o.leaseLimits,
    ...(o.leaseMs !== undefined ? { leaseMs: o.leaseMs } : {}),
    ...(o.plan !== undefined ? { plan: o.plan } : {})
  }
}

/** The worker, encoding for this node's own jobs through a local link and for other originators' over libp2p. */
async function startWorker (o: DaemonOptions, p: Omit<Parts, 'worker'> & { installedIds: ReadonlySet<EncoderId> }, slots: number, swarmSize: () => number, reports: { reportOffence: ReportOffence, reportStrike: ReportOffence }, stopping: AbortSignal): Promise<Worker> {
  const threads = o.threads ?? defaultThreads(slots)
  const workDir = join(o.home, 'work')
  // Anything here is from a previous run that did not stop cleanly: its leases are long gone.
  await rm(workDir, { recursive: true, force: true })
  const worker = new Worker({
    peerId: p.self, slots, workDir, log: p.log, swarmSize, ...reports, installedEncoders: p.installedIds,
    ...(threads !== undefined ? { threads } : {}),
    memoryBudgetBytes: o.memoryBudgetBytes ?? defaultMemoryBudget(threads),
    ...(o.encodePriority !== undefined ? { encodePriority: o.encodePriority } : {}),
    ...(o.encoder !== undefined ? { encoder: o.encoder } : {}),
    linkFor: (originatorId) => {
      if (originatorId === p.self) return localLink(p.originator, p.self)
      const link = p.libp2p.services.encode.linkTo(originatorId, p.remoteJobs.addrsOf(originatorId))
      // No claim without a way to move the chunk: see OriginatorReach.
      return {
        ...link,
        claim: async (jobId, chunk, signal) => {
          // Its own time, not the claim's: the first connection to an originator in another home
          // waits out each of its private addresses (libp2p tries them one by one, 6 s each)
          // before the relayed one, which can take longer than a claim may. Once connected, a claim
          // whose own time ran out meanwhile is tried again over that connection.
          const connected = p.libp2p.getConnections().some(c => c.remotePeer.toString() === originatorId && c.status === 'open')
          const gate = await p.reach.gate(originatorId, p.remoteJobs.addrsOf(originatorId), link.connect, AbortSignal.any([AbortSignal.timeout(GATE_CONNECT_MS), stopping]), connected)
          return gate.ok ? await link.claim(jobId, chunk, signal) : gate
        }
      }
    }
  })
  worker.start()
  return worker
}

/** Other originators' jobs: heard on the job topic, handed to the worker, dropped when their originator goes silent. */
function listenForJobs (p: Parts, onStop: OnStop): { board: JobBoard, feed: RemoteJobFeed } {
  const feed = remoteJobFeed({ self: p.self, jobs: p.remoteJobs, worker: p.worker, log: p.log })
  const board = new JobBoard(p.libp2p.services.pubsub, {
    self: p.self, log: p.log, onAnnouncement: feed.onAnnouncement, onWithdrawal: feed.onWithdrawal,
    isBanned: (peer, jobId) => p.bans.isBanned(peer, jobId)
  })
  board.start()
  onStop(async () => { board.stop() })
  const sweep = setInterval(() => { feed.expire() }, ANNOUNCE_INTERVAL_MS)
  sweep.unref()
  onStop(async () => { clearInterval(sweep) })
  return { board, feed }
}

/**
 * What a ban does beyond refusing the peer at the edge: its open connections are closed (the gater
 * only sees new ones), and its jobs are dropped from the list and from the worker, which gives back
 * any chunk of theirs it holds.
 */
function enforceBans (p: Parts, feed: RemoteJobFeed, onStop: OnStop): void {
  const hangUps = new Set<NodeJS.Timeout>()
  const onBanned = (ban: { peer: string, until: number }): void => {
    if (ban.until <= Date.now()) return
    feed.dropOriginator(ban.peer)
    // Not at once: the ban is decided while the answer that says why (bad-result, bad-request) is
    // still to be written on the peer's stream. Its new streams are refused meanwhile.
    const t = setTimeout(() => {
      hangUps.delete(t)
      // Unless the user lifted the ban meanwhile.
      if (p.bans.isBanned(ban.peer)) void p.libp2p.hangUp(peerIdFromString(ban.peer)).catch(() => {})
    }, HANG_UP_GRACE_MS)
    hangUps.add(t)
  }
  p.bans.on('banned', onBanned)
  onStop(async () => {
    p.bans.off('banned', onBanned)
    for (const t of hangUps) clearTimeout(t)
  })
}

/** The control API on loopback, and `<home>/control.json` that tells the CLI where it is and its token. */
async function startControl (home: string, p: Parts, onStop: OnStop): Promise<ControlServer> {
  const control = new ControlServer(controlHandlers({
    jobs: p.originator,
    remoteJobs: () => p.remoteJobs.current(),
    jobStatus: (job, withChunks) => jobStatus(p.self, job, p.worker.status(), withChunks, encoderPeerCount(connectedPeers(p))),
    status: (withChunks) => statusOf(p, withChunks),
    peers: async () => await peersOf(p),
    banned: () => p.bans.list().map(b => b.peer),
    unban: (peer) => p.bans.lift(peer),
    privateSwarm: p.privateSwarm
  }), p.log)
  await control.start()
  onStop(async () => { await control.stop() })
  p.events.add((e) => { control.event(e) })
  const controlFile = await writeControlFile(home, { url: control.url, token: control.token, pid: process.pid, peerId: p.self, apiVersion: API_VERSION })
  onStop(async () => { if (existsSync(controlFile)) await rm(controlFile, { force: true }) })
  return control
}

function ownAddrs (libp2p: SwarmNode): string[] {
  return libp2p.getMultiaddrs().map(a => a.toString())
}

function connectedPeers (p: Parts): ConnectedPeer[] {
  return p.libp2p.getPeers().map(peer => connectedPeer(p, peer))
}

function connectedPeer (p: Parts, peer: PeerId): ConnectedPeer {
  const libp2p = p.libp2p
  const encoders = p.peerEncoders.of(peer.toString())
  const connections = libp2p.getConnections(peer)
  const path = pathOf(connections)
  return {
    id: peer.toString(),
    addresses: connections.map(c => c.remoteAddr.toString()),
    foundBy: libp2p.services.dialer.foundBy(peer.toString()),
    connection: path?.kind ?? 'direct',
    ...(path?.via !== undefined ? { via: path.via } : {}),
    ...(encoders !== undefined ? { encoders } : {})
  }
}

function networkOf (p: Parts): NetworkStatus {
  const t = p.libp2p.services.encode.stats
  const relay = p.libp2p.services.relay
  const reservedOn = p.libp2p.services.reserver.current()
  return {
    reservedOn,
    reachability: p.libp2p.services.reachability.report(reservedOn),
    members: p.libp2p.services.members.stats,
    transfer: { segmentBytesOut: t.segmentBytesOut, segmentBytesOutRelayed: t.segmentBytesOutRelayed, resultBytesIn: t.resultBytesIn, resultBytesInRelayed: t.resultBytesInRelayed },
    ...(relay !== undefined && p.relayLimits !== undefined
      ? {
          relay: {
            limits: describeRelayLimits(p.relayLimits),
            reservations: relay.reservations.size,
            // A circuit is an open inbound hop stream: it stays open for as long as the relayed connection.
            circuits: p.libp2p.getConnections().reduce((n, c) => n + c.streams.filter(s => s.protocol === RELAY_V2_HOP_CODEC && s.direction === 'inbound').length, 0),
            ...(p.libp2p.services.relayMeter?.stats ?? { circuitsServed: 0, bytesRelayed: 0 })
          }
        }
      : {})
  }
}

function statusOf (p: Parts, withChunks: boolean): StatusJson {
  return status({
    self: p.self,
    addresses: ownAddrs(p.libp2p),
    jobs: p.originator.list(),
    remoteJobs: p.remoteJobs.current(),
    peers: connectedPeers(p),
    unreachable: p.libp2p.services.dialer.unreachable(),
    worker: p.worker.status(),
    network: networkOf(p),
    reachOf: (originator) => p.reach.pathTo(originator),
    withChunks,
    banned: p.bans.list()
  })
}

/** Pings every connected peer (a silent one within PING_TIMEOUT_MS) for `swarm peers`. */
async function peersOf (p: Parts): Promise<PeersJson> {
  const pinged = await Promise.all(p.libp2p.getPeers().map(async (peer) => {
    let latencyMs: number | null = null
    try {
      latencyMs = await p.libp2p.services.ping.ping(peer, { signal: AbortSignal.timeout(PING_TIMEOUT_MS) })
    } catch {}
    return { ...connectedPeer(p, peer), latencyMs }
  }))
  return peers({ self: p.self, jobs: p.originator.list(), peers: pinged, unreachable: p.libp2p.services.dialer.unreachable(), worker: p.worker.status(), banned: p.bans.list() })
}
