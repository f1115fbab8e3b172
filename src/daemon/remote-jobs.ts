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
  /** A new job with no room for it: the list is full of jobs that may not make way for it now (see RemoteJobs). */
  | 'refused'

/** One originator's job: what the worker keys its work by. */
export interface JobRef { originator: string, jobId: string }

/** Jobs kept from one originator: a person adds a handful at a time. */
export const MAX_REMOTE_JOBS_PER_ORIGINATOR = 16
/** Jobs kept from all originators together. */
export const MAX_REMOTE_JOBS = 256
/**
 * How fast strangers' new jobs may push others out of a full list: a burst, then one a second.
 * Peer ids cost nothing, so without a rate a flood of fresh ids (100 announcements a second from
 * 16+ of them) churned the whole list and an honest job was listed half the time; at one a second
 * the jobs heard in the last few announce intervals (every honest originator repeats its own every
 * 5 s) are never the least recently heard. An empty place costs no token: a swarm that is not
 * flooded never waits.
 */
export const STRANGER_EVICTIONS = { burst: 32, perSecond: 1 }
/** Originators remembered as ones this node delivered a result to (see RemoteJobs.workedFor). */
export const MAX_WORKED_FOR = 64

export interface RemoteJobsPolicy {
  /** Whether this node has running work on a job (a lease, a download, an encode, an upload): such a job is never dropped for room. */
  isBusy?: (originator: string, jobId: string) => boolean
  /** Token bucket on evictions made for jobs of originators this node has not worked for (default STRANGER_EVICTIONS). */
  strangerEvictions?: { burst: number, perSecond: number }
}

/**
 * Jobs heard of from other peers, keyed by originator and job id: a peer that announces another
 * peer's job id in its own name is a different job, and can neither replace nor withdraw the one
 * it copies. The worker works on every one of them (it keys its work by both too); under each id
 * one job is current (the first heard, while it lasts): the one status lists under that id.
 *
 * The list is bounded (an announcement costs a peer a few hundred bytes), and which job makes way
 * for a new one is chosen so that identities, which cost nothing, cannot push out the work that
 * matters: a job this node has running work on is never dropped; a stranger's new job (from an
 * originator this node has not delivered a result to) may only push out other strangers' jobs,
 * and only at STRANGER_EVICTIONS' rate; the jobs of originators this node works for make way only
 * for each other.
 */
export class RemoteJobs {
  /** Job id → originator → the job; a map keeps insertion order, so the first entry is current. */
  private readonly jobs = new Map<string, Map<string, RemoteJob>>()
  /** Where each originator said it listens, for dialing one we have not met. */
  private readonly addrs = new Map<string, string[]>()
  /** Jobs dropped to make room, for the worker to forget (takeEvicted). */
  private evicted: JobRef[] = []
  /** Originators this node delivered a result to → when last; oldest first (bounded by MAX_WORKED_FOR). */
  private readonly worked = new Map<string, number>()
  private readonly bucket: { tokens: number, at: number }
  private readonly strangerEvictions: { burst: number, perSecond: number }
  /** New jobs recorded, jobs dropped for room, and new jobs refused for want of it. */
  readonly stats = { admitted: 0, evicted: 0, refused: 0 }

  /**
   * @param ttlMs a job stops being listed (and worked on) when its originator has been silent this long
   * @param limits how many jobs are kept from one originator and in all: an announcement costs a
   *   peer a few hundred bytes, so without a bound one peer could fill this node's memory
   */
  constructor (private readonly ttlMs: number, private readonly limits = { perOriginator: MAX_REMOTE_JOBS_PER_ORIGINATOR, total: MAX_REMOTE_JOBS }, private readonly policy: RemoteJobsPolicy = {}) {
    this.strangerEvictions = policy.strangerEvictions ?? STRANGER_EVICTIONS
    this.bucket = { tokens: this.strangerEvictions.burst, at: Number.NEGATIVE_INFINITY }
  }

  hear (ann: JobAnnouncement, now: number): Heard {
    const byOriginator = this.jobs.get(ann.jobId) ?? new Map<string, RemoteJob>()
    const known = byOriginator.get(ann.originator)
    if (known !== undefined && known.ann.seq > ann.seq) return 'stale'
    if (known === undefined) {
      if (!this.makeRoomFor(ann.originator, now)) { this.stats.refused++; return 'refused' }
      this.stats.admitted++
    }
    byOriginator.set(ann.originator, { ann, seen: now })
    this.jobs.set(ann.jobId, byOriginator)
    this.addrs.set(ann.originator, ann.addrs)
    return this.isCurrent(ann.originator, ann.jobId) ? 'current' : 'shadowed'
  }

  /** This node delivered a result to the originator: its jobs are no longer a stranger's. */
  workedFor (originator: string, now: number): void {
    this.worked.delete(originator)
    this.worked.set(originator, now)
    if (this.worked.size > MAX_WORKED_FOR) this.worked.delete(this.worked.keys().next().value as string)
  }

  /** The jobs dropped for room since the last call. */
  takeEvicted (): JobRef[] {
    const ids = this.evicted
    this.evicted = []
    return ids
  }

  /** Every (originator, job) held that may make way for another (no running work on it), least recently heard first. */
  private evictable (): Array<{ originator: string, jobId: string, seen: number }> {
    const all: Array<{ originator: string, jobId: string, seen: number }> = []
    for (const [jobId, byOriginator] of this.jobs) {
      for (const [originator, r] of byOriginator) {
        if (this.policy.isBusy?.(originator, jobId) !== true) all.push({ originator, jobId, seen: r.seen })
      }
    }
    return all.sort((a, b) => a.seen - b.seen)
  }

  private size (): number {
    let n = 0
    for (const byOriginator of this.jobs.values()) n += byOriginator.size
    return n
  }

  /**
   * Before a new job is recorded: makes room for it if a limit is reached, and says whether there
   * is room now. At its own limit an originator's least recently heard job makes way (that costs
   * no one else anything). At the total limit a stranger's least recently heard job makes way, if
   * the stranger bucket has a token (for a stranger's job) or for a job of an originator this node
   * works for, which may also push out the least recently heard of those. Never a busy job.
   */
  private makeRoomFor (originator: string, now: number): boolean {
    const ownCount = (): number => { let n = 0; for (const b of this.jobs.values()) if (b.has(originator)) n++; return n }
    if (ownCount() >= this.limits.perOriginator) {
      const own = this.evictable().find(e => e.originator === originator)
      if (own === undefined) return false
      this.drop(own)
    }
    if (this.size() < this.limits.total) return true
    const candidates = this.evictable()
    const stranger = candidates.find(e => !this.worked.has(e.originator))
    if (!this.worked.has(originator)) {
      if (stranger === undefined || !this.takeToken(now)) return false
      this.drop(stranger)
      return true
    }
    const victim = stranger ?? candidates[0]
    if (victim === undefined) return false
    this.drop(victim)
    return true
  }

  private takeToken (now: number): boolean {
    const b = this.bucket
    const { burst, perSecond } = this.strangerEvictions
    if (b.at !== Number.NEGATIVE_INFINITY) b.tokens = Math.min(burst, b.tokens + Math.max(0, now - b.at) * perSecond / 1000)
    b.at = now
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  private drop (e: JobRef): void {
    if (!this.forget(e.originator, e.jobId)) return
    this.evicted.push({ originator: e.originator, jobId: e.jobId })
    this.stats.evicted++
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

/** A flood of refusals is logged once in this many. */
const REFUSALS_LOGGED_EVERY = 100

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
      const evicted = o.jobs.takeEvicted()
      for (const r of evicted) log.debug(`dropped ${jobTag(r.jobId)} of ${shortPeer(r.originator)} to make room for ${jobTag(ann.jobId)} of ${shortPeer(ann.originator)}`)
      drop(evicted)
      if (heard === 'stale') return
      if (heard === 'refused') {
        if (o.jobs.stats.refused % REFUSALS_LOGGED_EVERY === 1) log.debug(`no room for ${jobTag(ann.jobId)} of ${shortPeer(ann.originator)}: the job list is full of jobs that may not make way now (${o.jobs.stats.refused} refused so far)`)
        return
      }
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
    jobId: ann.jobId, originator: ann.originator, settings: ann.settings, ...(ann.encoder !== undefined ? { encoder: ann.encoder } : {}), totalChunks: ann.chunks.total, totalFrames: ann.totalFrames,
    open: fromRanges(ann.open, ann.chunks.total), backup: ann.backup ?? [], settled: ann.settled ?? [], waiting: ann.waiting ?? [], seq: ann.seq
  }
}
