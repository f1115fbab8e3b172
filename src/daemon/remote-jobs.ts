import { jobTag, logger, shortPeer, type LogSink } from '../log/index.js'
import { fromRanges, type JobAnnouncement, type JobWithdrawal } from '../swarm/index.js'
import type { JobView } from '../worker/index.js'
import type { RemoteJob } from './status-view.js'

/** What hearing an announcement did. */
export type Heard =
  /** Recorded; it is the job this node lists and works on under that id. */
  | 'current'
  /** Recorded, but another originator announced a job with the same id first: that one stays current. */
  | 'shadowed'
  /** Older than what this originator last said about the job: ignored. */
  | 'stale'

/**
 * Jobs heard of from other peers, keyed by originator and job id: a peer that announces another
 * peer's job id in its own name is a different job, and can neither replace nor withdraw the one
 * it copies. The worker knows a job by its id alone, so under each id one job is current (the
 * first heard, while it lasts): the one this node lists and, through remoteJobFeed, works on.
 */
/** Jobs kept from one originator: a person adds a handful at a time. */
export const MAX_REMOTE_JOBS_PER_ORIGINATOR = 16
/** Jobs kept from all originators together. */
export const MAX_REMOTE_JOBS = 256

export class RemoteJobs {
  /** Job id → originator → the job; a map keeps insertion order, so the first entry is current. */
  private readonly jobs = new Map<string, Map<string, RemoteJob>>()
  /** Where each originator said it listens, for dialing one we have not met. */
  private readonly addrs = new Map<string, string[]>()
  /** Ids whose current job was dropped to make room, for the worker to forget (takeEvicted). */
  private evicted: string[] = []

  /**
   * @param ttlMs a job stops being listed (and worked on) when its originator has been silent this long
   * @param limits how many jobs are kept from one originator and in all: an announcement costs a
   *   peer a few hundred bytes, so without a bound one peer could fill this node's memory
   */
  constructor (private readonly ttlMs: number, private readonly limits = { perOriginator: MAX_REMOTE_JOBS_PER_ORIGINATOR, total: MAX_REMOTE_JOBS }) {}

  hear (ann: JobAnnouncement, now: number): Heard {
    const byOriginator = this.jobs.get(ann.jobId) ?? new Map<string, RemoteJob>()
    const known = byOriginator.get(ann.originator)
    if (known !== undefined && known.ann.seq > ann.seq) return 'stale'
    if (known === undefined) this.makeRoomFor(ann.originator)
    byOriginator.set(ann.originator, { ann, seen: now })
    this.jobs.set(ann.jobId, byOriginator)
    this.addrs.set(ann.originator, ann.addrs)
    return this.isCurrent(ann.originator, ann.jobId) ? 'current' : 'shadowed'
  }

  /** The ids whose current job was dropped for room since the last call. */
  takeEvicted (): string[] {
    const ids = this.evicted
    this.evicted = []
    return ids
  }

  /** Every (originator, job) held, least recently heard first. */
  private byAge (): Array<{ originator: string, jobId: string, seen: number }> {
    const all: Array<{ originator: string, jobId: string, seen: number }> = []
    for (const [jobId, byOriginator] of this.jobs) for (const [originator, r] of byOriginator) all.push({ originator, jobId, seen: r.seen })
    return all.sort((a, b) => a.seen - b.seen)
  }

  /** Before a new job is recorded: the originator's, then anyone's, least recently heard job goes when a limit is reached. */
  private makeRoomFor (originator: string): void {
    const all = this.byAge()
    const mine = all.filter(e => e.originator === originator)
    const drop = (e: { originator: string, jobId: string } | undefined): void => {
      if (e !== undefined && this.forget(e.originator, e.jobId)) this.evicted.push(e.jobId)
    }
    if (mine.length >= this.limits.perOriginator) drop(mine[0])
    else if (all.length >= this.limits.total) drop(all[0])
  }

  /** Forgets a job its originator withdrew; true when it was current (the worker should drop the id). */
  withdraw (originator: string, jobId: string): boolean {
    return this.forget(originator, jobId)
  }

  /** Forgets the jobs whose originator has been silent longer than the TTL; returns the ids whose current job went. */
  expire (now: number): string[] {
    const dropped = new Set<string>()
    for (const [jobId, byOriginator] of this.jobs) {
      for (const [originator, r] of byOriginator) {
        if (now - r.seen > this.ttlMs && this.forget(originator, jobId)) dropped.add(jobId)
      }
    }
    return [...dropped]
  }

  /** The current job under each id, in the order the ids were first heard. */
  current (): RemoteJob[] {
    const list: RemoteJob[] = []
    for (const byOriginator of this.jobs.values()) {
      const first = byOriginator.values().next()
      if (first.done !== true) list.push(first.value)
    }
    return list
  }

  has (originator: string, jobId: string): boolean {
    return this.jobs.get(jobId)?.has(originator) === true
  }

  /** Where an originator last said it listens (empty if it never announced). */
  addrsOf (originator: string): string[] {
    return this.addrs.get(originator) ?? []
  }

  private isCurrent (originator: string, jobId: string): boolean {
    return this.jobs.get(jobId)?.keys().next().value === originator
  }

  private forget (originator: string, jobId: string): boolean {
    const byOriginator = this.jobs.get(jobId)
    if (byOriginator?.has(originator) !== true) return false
    const wasCurrent = this.isCurrent(originator, jobId)
    byOriginator.delete(originator)
    if (byOriginator.size === 0) this.jobs.delete(jobId)
    return wasCurrent
  }
}

export interface RemoteJobFeedOptions {
  self: string
  jobs: RemoteJobs
  /** This node's worker, which knows a job by its id alone. */
  worker: { updateJob: (view: JobView) => void, removeJob: (jobId: string) => void }
  /** This node originates a job with this id: the worker works on that one, and no announcement may replace it. */
  isOwnJob: (jobId: string) => boolean
  log: LogSink
  now?: () => number
}

/** What the job topic's handlers and the periodic sweep call. */
export interface RemoteJobFeed {
  onAnnouncement: (ann: JobAnnouncement) => void
  onWithdrawal: (w: JobWithdrawal) => void
  /** Drops the jobs whose originator went silent. */
  expire: () => void
}

/**
 * Records other originators' jobs and tells the worker of them. The worker only ever hears of one
 * job under an id: this node's own if it has one, else the one RemoteJobs holds current (first come,
 * first served). Another originator's job with the same id (a copy, or the same file and settings
 * added there too) waits, unlisted, until the first is gone.
 */
export function remoteJobFeed (o: RemoteJobFeedOptions): RemoteJobFeed {
  const now = o.now ?? Date.now
  const log = logger('swarm', o.log)
  const dropFromWorker = (jobId: string): void => { if (!o.isOwnJob(jobId)) o.worker.removeJob(jobId) }
  return {
    onAnnouncement: (ann) => {
      if (ann.originator === o.self) return
      const firstHeard = !o.jobs.has(ann.originator, ann.jobId)
      const heard = o.jobs.hear(ann, now())
      for (const jobId of o.jobs.takeEvicted()) dropFromWorker(jobId)
      if (heard === 'stale') return
      if (heard === 'shadowed' || o.isOwnJob(ann.jobId)) {
        if (firstHeard) log.debug(`not taking chunks of ${jobTag(ann.jobId)} from ${shortPeer(ann.originator)}: the worker already has a job with that id from another originator (it takes one job per id)`)
        return
      }
      o.worker.updateJob(workerView(ann))
    },
    onWithdrawal: (w) => {
      if (o.jobs.withdraw(w.originator, w.jobId)) dropFromWorker(w.jobId)
    },
    expire: () => {
      for (const jobId of o.jobs.expire(now())) dropFromWorker(jobId)
    }
  }
}

function workerView (ann: JobAnnouncement): JobView {
  return {
    jobId: ann.jobId, originator: ann.originator, settings: ann.settings, totalChunks: ann.chunks.total, totalFrames: ann.totalFrames,
    open: fromRanges(ann.open, ann.chunks.total), backup: ann.backup ?? [], settled: ann.settled ?? [], waiting: ann.waiting ?? [], seq: ann.seq
  }
}
