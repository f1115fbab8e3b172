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

/** One originator's job: what the worker keys its work by. */
export interface JobRef { originator: string, jobId: string }

/**
 * Jobs heard of from other peers, keyed by originator and job id: a peer that announces another
 * peer's job id in its own name is a different job, and can neither replace nor withdraw the one
 * it copies. The worker works on every one of them (it keys its work by both too); under each id
 * one job is current (the first heard, while it lasts): the one status lists under that id.
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
  /** Jobs dropped to make room, for the worker to forget (takeEvicted). */
  private evicted: JobRef[] = []

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

  /** The jobs dropped for room since the last call. */
  takeEvicted (): JobRef[] {
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
      if (e !== undefined && this.forget(e.originator, e.jobId)) this.evicted.push({ originator: e.originator, jobId: e.jobId })
    }
    if (mine.length >= this.limits.perOriginator) drop(mine[0])
    else if (all.length >= this.limits.total) drop(all[0])
  }

  /** Forgets a job its originator withdrew; true when it was held (the worker should drop it). */
  withdraw (originator: string, jobId: string): boolean {
    return this.forget(originator, jobId)
  }

  /** Forgets the jobs whose originator has been silent longer than the TTL, and returns them. */
  expire (now: number): JobRef[] {
    const dropped: JobRef[] = []
    for (const [jobId, byOriginator] of this.jobs) {
      for (const [originator, r] of byOriginator) {
        if (now - r.seen > this.ttlMs && this.forget(originator, jobId)) dropped.push({ originator, jobId })
      }
    }
    return dropped
  }

  /** Forgets every job of an originator (banned from this node), and returns them. */
  forgetOriginator (originator: string): JobRef[] {
    const dropped: JobRef[] = []
    for (const jobId of [...this.jobs.keys()]) if (this.forget(originator, jobId)) dropped.push({ originator, jobId })
    this.addrs.delete(originator)
    return dropped
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
    byOriginator.delete(originator)
    if (byOriginator.size === 0) this.jobs.delete(jobId)
    return true
  }
}

export interface RemoteJobFeedOptions {
  self: string
  jobs: RemoteJobs
  /** This node's worker, which keys its work by originator and job id. */
  worker: { updateJob: (view: JobView) => void, removeJob: (originator: string, jobId: string) => void }
  log: LogSink
  now?: () => number
}

/** What the job topic's handlers and the periodic sweep call. */
export interface RemoteJobFeed {
  onAnnouncement: (ann: JobAnnouncement) => void
  onWithdrawal: (w: JobWithdrawal) => void
  /** Drops the jobs whose originator went silent. */
  expire: () => void
  /** Drops every job of an originator this node banned. */
  dropOriginator: (originator: string) => void
}

/**
 * Records other originators' jobs and tells the worker of them. The worker keys a job by its
 * originator and id, so it works for every originator that announces an id: a peer that copies
 * another's job id (or announces it first: ids are content hashes, anyone with the file can
 * compute one) gets a job of its own, and cannot shadow, change or end the real one.
 */
export function remoteJobFeed (o: RemoteJobFeedOptions): RemoteJobFeed {
  const now = o.now ?? Date.now
  const log = logger('swarm', o.log)
  const drop = (refs: JobRef[]): void => { for (const r of refs) o.worker.removeJob(r.originator, r.jobId) }
  return {
    onAnnouncement: (ann) => {
      if (ann.originator === o.self) return
      const firstHeard = !o.jobs.has(ann.originator, ann.jobId)
      const heard = o.jobs.hear(ann, now())
      drop(o.jobs.takeEvicted())
      if (heard === 'stale') return
      if (heard === 'shadowed' && firstHeard) log.debug(`${jobTag(ann.jobId)} is announced by ${shortPeer(ann.originator)} too: a job of its own, listed under the first originator's`)
      o.worker.updateJob(workerView(ann))
    },
    onWithdrawal: (w) => {
      if (o.jobs.withdraw(w.originator, w.jobId)) o.worker.removeJob(w.originator, w.jobId)
    },
    expire: () => { drop(o.jobs.expire(now())) },
    dropOriginator: (originator) => { drop(o.jobs.forgetOriginator(originator)) }
  }
}

function workerView (ann: JobAnnouncement): JobView {
  return {
    jobId: ann.jobId, originator: ann.originator, settings: ann.settings, totalChunks: ann.chunks.total, totalFrames: ann.totalFrames,
    open: fromRanges(ann.open, ann.chunks.total), backup: ann.backup ?? [], settled: ann.settled ?? [], waiting: ann.waiting ?? [], seq: ann.seq
  }
}
