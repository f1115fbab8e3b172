import { existsSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { InputError, Originator, type JobRecord } from '../jobs/index.js'
import type { PlanOptions } from '../media/index.js'
import {
  ANNOUNCE_INTERVAL_MS, createSwarmNode, JOBS_TOPIC, DEFAULT_LISTEN, fromRanges, JobBoard, loadOrCreateIdentity,
  type JobAnnouncement, type SwarmNode, type TransferStats
} from '../swarm/index.js'
import { Worker, type ChunkEncoder } from '../worker/index.js'
import { Announcer } from './announcer.js'
import { API_VERSION, type AddJobResponse, type JobStatus, type PeersJson, type StatusJson } from './api.js'
import { ControlError, ControlServer } from './control-server.js'
import { lockHome, writeControlFile } from './home.js'
import { localLink } from './local-link.js'
import { defaultSlots, defaultThreads } from './sizing.js'
import { jobStatus, peers, remoteStatus, status, type ConnectedPeer } from './status-view.js'

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
  swarmKey?: Uint8Array
  leaseMs?: number
  plan?: PlanOptions
  log?: (line: string) => void
  /**
   * A stand-in encoder, for tests and demos: `swarm join` sets one when SWARM_TEST_ENCODER is in its
   * environment. Never chosen by a peer: nothing from the network reaches this option.
   */
  encoder?: ChunkEncoder
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
  metrics: () => { transfer: TransferStats, announcementsPublished: number, announcementsRejected: number }
  stop: () => Promise<void>
}

/** A remote job stops being listed (and worked on) when its originator has been silent this long. */
const REMOTE_JOB_TTL_MS = 6 * ANNOUNCE_INTERVAL_MS
/** How long `swarm peers` waits for a ping answer. */
const PING_TIMEOUT_MS = 2000

/**
 * One swarm node: the libp2p node, the originator of jobs added here, the worker that encodes
 * chunks of every job it hears of, and the local control API for the CLI.
 */
export async function startDaemon (o: DaemonOptions): Promise<Daemon> {
  const log = o.log ?? (() => {})
  await mkdir(o.home, { recursive: true, mode: 0o700 })
  const unlock = await lockHome(o.home)
  const cleanups: Array<() => Promise<void>> = [unlock]
  const undo = async (): Promise<void> => { for (const c of cleanups.reverse()) await c().catch(() => {}) }
  try {
    const { privateKey } = await loadOrCreateIdentity(o.home)
    const self = peerIdFromPrivateKey(privateKey).toString()
    let node: SwarmNode | undefined
    const encodePeers = (): number => node?.services.pubsub.getSubscribers(JOBS_TOPIC).length ?? 0
    /** This node and the peers that listen for jobs. */
    const swarmSize = (): number => 1 + encodePeers()
    const slots = o.slots ?? defaultSlots()
    const threads = o.threads ?? defaultThreads(slots)
    const originator = new Originator({
      home: o.home, peerId: self, log, swarmSize, slotsPerPeer: slots,
      ...(o.leaseMs !== undefined ? { leaseMs: o.leaseMs } : {}),
      ...(o.plan !== undefined ? { plan: o.plan } : {})
    })
    await originator.start()
    cleanups.push(async () => { await originator.stop() })

    node = await createSwarmNode({
      privateKey,
      listen: o.listen ?? DEFAULT_LISTEN,
      bootstrap: o.bootstrap ?? [],
      mdns: o.mdns ?? true,
      ...(o.swarmKey !== undefined ? { swarmKey: o.swarmKey } : {}),
      encode: { arbiter: originator, log },
      log
    })
    const libp2p = node
    cleanups.push(async () => { await libp2p.stop() })
    const ownAddrs = (): string[] => libp2p.getMultiaddrs().map(a => a.toString())
    const remoteJobs = new Map<string, { ann: JobAnnouncement, seen: number }>()
    /** Where each originator said it listens, for dialing one we have not met. */
    const originatorAddrs = new Map<string, string[]>()
    const workDir = join(o.home, 'work')
    // Anything here is from a previous run that did not stop cleanly: its leases are long gone.
    await rm(workDir, { recursive: true, force: true })
    const worker = new Worker({
      peerId: self, slots, workDir, log, swarmSize,
      ...(threads !== undefined ? { threads } : {}),
      ...(o.encoder !== undefined ? { encoder: o.encoder } : {}),
      linkFor: (originatorId) => originatorId === self
        ? localLink(originator, self)
        : libp2p.services.encode.linkTo(originatorId, originatorAddrs.get(originatorId) ?? [])
    })
    worker.start()
    cleanups.push(async () => { await worker.stop() })

    const board = new JobBoard(libp2p.services.pubsub, {
      self,
      log,
      onAnnouncement: (ann) => {
        if (ann.originator === self) return
        const known = remoteJobs.get(ann.jobId)
        if (known !== undefined && known.ann.seq > ann.seq) return
        remoteJobs.set(ann.jobId, { ann, seen: Date.now() })
        originatorAddrs.set(ann.originator, ann.addrs)
        worker.updateJob({
          jobId: ann.jobId, originator: ann.originator, settings: ann.settings, totalChunks: ann.chunks.total,
          open: fromRanges(ann.open, ann.chunks.total), backup: ann.backup ?? [], settled: ann.settled ?? [], waiting: ann.waiting ?? [], seq: ann.seq
        })
      },
      onWithdrawal: (w) => {
        const known = remoteJobs.get(w.jobId)
        if (known === undefined || known.ann.originator !== w.originator) return
        remoteJobs.delete(w.jobId)
        worker.removeJob(w.jobId)
      }
    })
    board.start()
    cleanups.push(async () => { board.stop() })

    // ---- announcing our own jobs, forgetting silent originators' ----
    const announcer = new Announcer({
      self, jobs: originator, worker, swarmSize,
      publish: async (msg) => { await board.publish(msg) },
      addrs: ownAddrs
    })
    originator.on('changed', (id) => { announcer.changed(id) })
    announcer.start()
    cleanups.push(async () => { announcer.stop() })
    const sweep = setInterval(() => {
      const now = Date.now()
      for (const [id, r] of remoteJobs) {
        if (now - r.seen > REMOTE_JOB_TTL_MS) { remoteJobs.delete(id); worker.removeJob(id) }
      }
    }, ANNOUNCE_INTERVAL_MS)
    sweep.unref()
    cleanups.push(async () => { clearInterval(sweep) })

    // ---- status and control ----
    const ownJobStatus = (job: JobRecord, withChunks: boolean): JobStatus => jobStatus(self, job, worker.status(), withChunks)
    const connectedPeer = (peer: PeerId): ConnectedPeer => ({
      id: peer.toString(),
      addresses: libp2p.getConnections(peer).map(c => c.remoteAddr.toString()),
      foundBy: libp2p.services.dialer.foundBy(peer.toString())
    })
    const statusOf = (withChunks = false): StatusJson => status({
      self,
      addresses: ownAddrs(),
      jobs: originator.list(),
      remoteJobs: [...remoteJobs.values()],
      peers: libp2p.getPeers().map(connectedPeer),
      unreachable: libp2p.services.dialer.unreachable(),
      worker: worker.status(),
      withChunks
    })
    /** Pings every connected peer (a silent one within PING_TIMEOUT_MS) for `swarm peers`. */
    const peersOf = async (): Promise<PeersJson> => {
      const pinged = await Promise.all(libp2p.getPeers().map(async (peer) => {
        let latencyMs: number | null = null
        try {
          latencyMs = await libp2p.services.ping.ping(peer, { signal: AbortSignal.timeout(PING_TIMEOUT_MS) })
        } catch {}
        return { ...connectedPeer(peer), latencyMs }
      }))
      return peers({ self, jobs: originator.list(), peers: pinged, unreachable: libp2p.services.dialer.unreachable(), worker: worker.status() })
    }
    const findJob = (prefix: string): JobStatus => {
      const local = originator.list().filter(j => j.id.startsWith(prefix))
      const remote = [...remoteJobs.values()].filter(r => r.ann.jobId.startsWith(prefix) && originator.get(r.ann.jobId) === undefined)
      if (local.length + remote.length > 1) throw new ControlError(400, 'input', `job id ${prefix} is ambiguous: give more characters`)
      if (local[0] !== undefined) return ownJobStatus(local[0], true)
      if (remote[0] !== undefined) return remoteStatus(remote[0])
      throw new ControlError(404, 'not-found', `no job ${prefix} is known to this node`)
    }
    const control = new ControlServer({
      status: () => statusOf(),
      snapshot: () => statusOf(true),
      peers: peersOf,
      job: findJob,
      addJob: async (req): Promise<AddJobResponse> => {
        try {
          const { gopsPerChunk, chunkSeconds, ...rest } = req
          const plan = { ...(gopsPerChunk !== undefined ? { gopsPerChunk } : {}), ...(chunkSeconds !== undefined ? { chunkSeconds } : {}) }
          const { job, existing } = await originator.addJob({ ...rest, plan })
          return { job: ownJobStatus(job, false), existing }
        } catch (err) {
          if (err instanceof InputError) throw new ControlError(400, 'input', err.message)
          throw err
        }
      },
      cancelJob: async (prefix) => {
        const matches = originator.list().filter(j => j.id.startsWith(prefix))
        if (matches.length > 1) throw new ControlError(400, 'input', `job id ${prefix} is ambiguous: give more characters`)
        if (matches[0] === undefined) return false
        return await originator.cancelJob(matches[0].id)
      }
    }, log)
    await control.start()
    cleanups.push(async () => { await control.stop() })
    const controlFile = await writeControlFile(o.home, { url: control.url, token: control.token, pid: process.pid, peerId: self, apiVersion: API_VERSION })
    cleanups.push(async () => { if (existsSync(controlFile)) await rm(controlFile, { force: true }) })

    let stopping: Promise<void> | undefined
    return {
      peerId: self,
      addresses: ownAddrs,
      controlUrl: control.url,
      dashboardUrl: control.dashboardUrl,
      status: () => statusOf(),
      peers: peersOf,
      metrics: () => ({ transfer: libp2p.services.encode.stats, announcementsPublished: board.published, announcementsRejected: board.rejected }),
      stop: async () => { stopping ??= undo(); await stopping }
    }
  } catch (err) {
    await undo()
    throw err
  }
}
