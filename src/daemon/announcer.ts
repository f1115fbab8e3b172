import { basename } from 'node:path'
import type { JobRecord } from '../jobs/index.js'
import { ANNOUNCE_INTERVAL_MS, announcementBatchMs, toRanges, type TopicMessage } from '../swarm/index.js'
import type { JobView } from '../worker/index.js'
import { countChunks } from './status-view.js'

/** What the announcer reads of the jobs this node originates (the Originator's public methods). */
export interface AnnouncedJobs {
  get: (id: string) => JobRecord | undefined
  list: () => JobRecord[]
  backupCandidates: (job: JobRecord) => number[]
  settledRecently: (jobId: string) => number[]
  waitingPeers: (jobId: string) => string[]
}

/** Time as the announcer sees it; the cancel functions stop a timer. Injected so tests need no waiting. */
export interface Clock {
  now: () => number
  setTimeout: (run: () => void, ms: number) => () => void
  /** Does not keep the process alive. */
  setInterval: (run: () => void, ms: number) => () => void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (run, ms) => { const t = setTimeout(run, ms); return () => { clearTimeout(t) } },
  setInterval: (run, ms) => { const t = setInterval(run, ms); t.unref(); return () => { clearInterval(t) } }
}

export interface AnnouncerOptions {
  self: string
  jobs: AnnouncedJobs
  /** Sends a message to the swarm's job topic. */
  publish: (msg: TopicMessage) => Promise<void>
  /** This node's own worker, which hears of our jobs from the announcer rather than the topic. */
  worker: { updateJob: (view: JobView) => void, removeJob: (originator: string, jobId: string) => void }
  /** This node's listen addresses (with or without its /p2p/ suffix). */
  addrs: () => string[]
  /** Peers that encode, this one included: bigger swarms batch changes longer. */
  swarmSize: () => number
  clock?: Clock
}

/** Jobs in these states have chunks to hand out (failed ones reopen their leases, but are not to be claimed). */
const CLAIMABLE = new Set<JobRecord['state']>(['splitting', 'encoding'])
/** The periodic re-announcement also keeps a merging job listed, so its peers do not expire it. */
const REANNOUNCED = new Set<JobRecord['state']>(['splitting', 'encoding', 'merging'])

/**
 * Tells the swarm, and this node's own worker, about the jobs this node originates. A job's first
 * open chunk is announced at once (about 100 ms sooner to the first lease); later changes are
 * batched, longer in a bigger swarm (announcementBatchMs); every live job is announced again each
 * ANNOUNCE_INTERVAL_MS, so peers that missed a message or joined late catch up; a job that
 * disappears is withdrawn ('gone'). Our own worker hears of a chunk when the swarm does, never
 * sooner: with chunks that encode faster than they are cut it would otherwise take every one.
 */
export class Announcer {
  private readonly clock: Clock
  private seq: number
  private readonly pending = new Set<string>()
  private cancelFlush: (() => void) | undefined
  private cancelPeriodic: (() => void) | undefined
  /** Jobs announced at once since this node started; their later changes are batched. */
  private readonly announced = new Set<string>()
  private stopped = false

  constructor (private readonly o: AnnouncerOptions) {
    this.clock = o.clock ?? systemClock
    this.seq = this.clock.now()
  }

  /** Starts the periodic re-announcement and announces the jobs that have chunks to hand out. */
  start (): void {
    this.cancelPeriodic = this.clock.setInterval(() => {
      for (const job of this.o.jobs.list()) if (REANNOUNCED.has(job.state)) this.announce(job)
    }, ANNOUNCE_INTERVAL_MS)
    for (const job of this.o.jobs.list()) if (CLAIMABLE.has(job.state)) this.announce(job)
  }

  stop (): void {
    this.stopped = true
    this.cancelPeriodic?.()
    this.cancelFlush?.()
    this.cancelFlush = undefined
  }

  /** A job was added, changed or removed. */
  changed (id: string): void {
    if (this.stopped) return
    const job = this.o.jobs.get(id)
    if (job !== undefined && !this.announced.has(id) && job.chunks.some(c => c.state === 'open')) {
      this.announced.add(id)
      this.announce(job)
      return
    }
    this.pending.add(id)
    this.cancelFlush ??= this.clock.setTimeout(() => { this.flush() }, announcementBatchMs(this.o.swarmSize()))
  }

  private flush (): void {
    this.cancelFlush = undefined
    for (const jobId of this.pending) {
      const job = this.o.jobs.get(jobId)
      if (job !== undefined) this.announce(job)
      else this.withdraw(jobId)
    }
    this.pending.clear()
  }

  private announce (job: JobRecord): void {
    const open = CLAIMABLE.has(job.state) ? job.chunks.filter(c => c.state === 'open').map(c => c.index) : []
    const counts = countChunks(job)
    const seq = ++this.seq
    const backup = this.o.jobs.backupCandidates(job)
    const settled = this.o.jobs.settledRecently(job.id).slice(-64)
    const waiting = CLAIMABLE.has(job.state) ? this.o.jobs.waitingPeers(job.id) : []
    const self = this.o.self
    // x264's jobs name no encoder, so nodes from before the field still read them.
    const encoder = job.encoder !== undefined ? { encoder: job.encoder } : {}
    this.o.worker.updateJob({ jobId: job.id, originator: self, settings: job.settings, ...encoder, totalChunks: job.chunks.length, open, backup, settled, waiting, seq })
    void this.o.publish({
      v: 1, type: 'job', jobId: job.id, originator: self, seq, state: job.state,
      name: basename(job.sourcePath).slice(0, 512), settings: job.settings, ...encoder, totalFrames: job.totalFrames,
      chunks: { total: counts.total, open: counts.open, leased: counts.leased, done: counts.done },
      // 2,000 ranges stay well under the announcement limit; peers learn the rest as these go.
      open: toRanges(open).slice(0, 2000),
      ...(backup.length > 0 ? { backup } : {}),
      ...(settled.length > 0 ? { settled } : {}),
      ...(waiting.length > 0 ? { waiting } : {}),
      addrs: this.o.addrs().map(a => a.replace(`/p2p/${self}`, '')).slice(0, 16)
    })
  }

  private withdraw (jobId: string): void {
    this.announced.delete(jobId)
    this.o.worker.removeJob(this.o.self, jobId)
    void this.o.publish({ v: 1, type: 'gone', jobId, originator: this.o.self, seq: ++this.seq })
  }
}
