// The contract alone, not the swarm layer's index: the policy needs no libp2p to read a refusal.
import type { RefusalCode, WireEncoderId } from '../swarm/contract.js'

/** What the worker knows of a job from its announcements. */
export interface JobView {
  jobId: string
  originator: string
  settings: string
  /** The encoder the settings are for; absent: x264. */
  encoder?: WireEncoderId
  totalChunks: number
  /** Frames in the whole source, as announced: no segment of the job holds more. */
  totalFrames?: number
  open: number[]
  /** Chunks this worker may take a backup copy of when nothing is open anywhere. */
  backup?: number[]
  /** Chunks done elsewhere: stop encoding them. */
  settled?: number[]
  /** Peers the originator has told no chunk was left for, longest waiting first: the i-th takes the i-th open chunk. */
  waiting?: string[]
  /** Announce sequence number; older announcements are ignored. */
  seq: number
}

/** Where a chunk the worker holds is: downloading, downloaded and waiting for a slot, encoding, or its result uploading. */
export type TaskStage = 'fetching' | 'queued' | 'encoding' | 'uploading'

/** One originator's job (a lease names its chunk too, so a lease will do). */
export interface JobRef { originator: string, jobId: string }
export interface ChunkRef extends JobRef { chunk: number }

/** A chunk to claim, in the job view it was chosen from (the view a claim's answer trims). */
export interface Pick { view: JobView, chunk: number }

/** How an announcement was taken: older than the one known (ignored), the job's first, or the latest of a job known. */
export type Heard = 'stale' | 'new' | 'update'

export interface ClaimPolicyOptions {
  /** This node's peer id: its own node's chunks need no download, so they are never prefetched. */
  peerId: string
  /** Encodes at once. */
  slots: number
  /** Leases held but not yet encoding (prefetched), beyond the slots (default 1). */
  prefetch?: number
  /** Peers in the swarm that encode, this one included (default 1); with slots, how many encoders may want a job's open chunks. */
  swarmSize?: () => number
  now: () => number
  /** Where a spread claim lands (default Math.random); a test passes a seeded one. */
  random?: () => number
}

/** After losing a claim race, for this long, a worker chooses among the lowest-numbered few open chunks rather than the lowest. */
const CLAIM_SPREAD = 4
const CONTENDED_MS = 2000
/** How long a chunk meant for a waiting peer is left to it before anyone may claim it (that peer may have found work elsewhere). */
const DEFER_MS = 1000
/**
 * A prefetch starts when a running encode has less than twice the last download's time left, plus
 * this much: soon enough for the download to land before the slot frees, late enough not to hold
 * a chunk another peer could start now, and not all at the start of a job, when every peer's first
 * download is still on its way (at 50 nodes, prefetches then doubled the originator's transfers
 * and the first downloads took 1-2.5 s).
 */
const PREFETCH_MARGIN_MS = 1000
/**
 * A download holds one of the worker's places (slots plus prefetch) for this long at least, or
 * three times the last download's time: past that it is stalled, and the worker claims other work
 * beside it. At most one download per originator runs at a time, and each ends at its transfer
 * deadline, so stalled ones are bounded by the originators heard of; before, a worker awaited
 * every download in its claim loop and one originator trickling a segment froze it (issue 26).
 */
const FETCH_STALL_MIN_MS = 5000
/** How long a job whose originator said we hold as many of its leases as we may is left alone (one of ours ends first). */
const TOO_MANY_LEASES_MS = 3000
/** How long a chunk is left alone after a claim on it got no answer. */
const UNANSWERED_BACKOFF_MS = 5000
/** After a refused claim; a chunk already done is not worth asking about again for much longer. */
const REFUSED_BACKOFF_MS = 3000
const ALREADY_DONE_BACKOFF_MS = 600_000
/** After giving a chunk back (its fetch, encode or upload failed). */
const GIVEN_BACK_BACKOFF_MS = 10_000
/** Tool failures on one job before this machine counts as unable to encode it: one may be transient. */
const TOOL_FAILURES_UNABLE = 2

/**
 * A job is its originator's: two originators may announce the same id (the same file and settings
 * added on two nodes, or a peer copying another's id in its own name), and neither may touch the
 * other's job through it. Everything the worker keeps about a job is keyed by both.
 */
export function jobKey (originator: string, jobId: string): string { return `${originator}/${jobId}` }
/** One chunk of one originator's job. */
export function chunkKey (ref: ChunkRef): string { return chunkOf(jobKey(ref.originator, ref.jobId), ref.chunk) }
function chunkOf (jk: string, chunk: number): string { return `${jk}#${chunk}` }
function pickKey ({ view, chunk }: Pick): string { return chunkOf(jobKey(view.originator, view.jobId), chunk) }

/** A chunk the worker holds a lease on, as far as claiming more is concerned. */
interface Held {
  originator: string
  stage: TaskStage
  /** When the lease was granted (its download began). */
  grantedAt: number
  /** Its encode is close enough to its end that the next chunk should be fetched (see prefetchDue). */
  nearEnd: boolean
}

/** One pass over the jobs for a claim: open chunks or backups, and whether the slots are full (a claim would be a prefetch). */
interface Round { open: boolean, full: boolean, due: boolean, encoders: number, now: number }

/**
 * Which chunk of which job a worker claims, and when: the claim rules of protocol §8.2, with no
 * I/O. The worker tells it what it hears and what became of its claims and tasks, and asks it
 * what to claim next. Like the lease table, it reads time only from the clock it is given.
 */
export class ClaimPolicy {
  /** jobKey → the job as its originator last announced it. */
  private readonly jobs = new Map<string, JobView>()
  /** chunkKey → the chunk held, while the worker holds it. */
  private readonly held = new Map<string, Held>()
  /** chunkKey → time until which we do not try it again (it was refused to us). */
  private readonly backoff = new Map<string, number>()
  /** jobKey → when a claim of ours last lost to another peer's. */
  private readonly lostRace = new Map<string, number>()
  /** jobKey → chunk → when we first saw it open (for chunks open now). */
  private readonly openSince = new Map<string, Map<number, number>>()
  /** jobKey → time until which we claim nothing of it (its originator said we hold as many leases as we may). */
  private readonly jobBackoff = new Map<string, number>()
  /** Jobs (jobKey) whose settings this machine cannot encode, with why: stop claiming them. */
  private readonly unable = new Map<string, string>()
  /** Tool failures per job (jobKey). */
  private readonly toolFailures = new Map<string, number>()
  /** How long our last segment download from another node took (ms); 0 before the first. */
  private lastFetchMs = 0
  /** Where the next round-robin pass over the jobs starts. */
  private rr = 0
  private readonly now: () => number
  private readonly random: () => number

  constructor (private readonly o: ClaimPolicyOptions) {
    this.now = o.now
    this.random = o.random ?? Math.random
  }

  /** Takes an announcement, unless an older one than the job's last (sequence numbers are one originator's). */
  updateJob (view: JobView): Heard {
    const jk = jobKey(view.originator, view.jobId)
    const known = this.jobs.get(jk)
    if (known !== undefined && known.seq > view.seq) return 'stale'
    this.jobs.set(jk, { ...view })
    const now = this.now()
    const before = this.openSince.get(jk)
    this.openSince.set(jk, new Map(view.open.map(c => [c, before?.get(c) ?? now])))
    return known === undefined ? 'new' : 'update'
  }

  /** Forgets a job (withdrawn, or its announcements stopped); what was refused to us stays refused. */
  removeJob (ref: JobRef): void {
    const jk = jobKey(ref.originator, ref.jobId)
    this.jobs.delete(jk)
    this.lostRace.delete(jk)
    this.jobBackoff.delete(jk)
    this.openSince.delete(jk)
  }

  /** Whether to claim more: fewer chunks hold or wait for a slot than the slots and the prefetch. */
  wantsMore (): boolean {
    return this.busyCount() < this.o.slots + (this.o.prefetch ?? 1)
  }

  /** Whether any job has a chunk on offer (open, or a backup copy): one to claim now, or once its pause is over. */
  hasOffers (): boolean {
    for (const v of this.jobs.values()) if (v.open.length > 0 || (v.backup?.length ?? 0) > 0) return true
    return false
  }

  /** Picks a chunk to claim: jobs in turn (fair sharing), and within a job the one pickOpen gives (this peer's share of the waiting queue, else low), so peers rarely collide. */
  next (): Pick | undefined {
    // Open chunks of any job come before backup copies of anyone's stragglers.
    return this.pickFrom(true) ?? this.pickFrom(false)
  }

  /**
   * Whether a running encode is near enough its end to fetch the next chunk now: less than twice
   * the last download's time plus PREFETCH_MARGIN_MS left, at its current speed.
   */
  prefetchDue (): boolean {
    for (const h of this.held.values()) if (h.stage === 'encoding' && h.nearEnd) return true
    return false
  }

  isUnable (ref: JobRef): boolean { return this.unable.has(jobKey(ref.originator, ref.jobId)) }

  /** This machine cannot encode the job (its settings, its memory, or its originator banned us): claim nothing more of it. */
  markUnable (ref: JobRef, reason: string): void { this.unable.set(jobKey(ref.originator, ref.jobId), reason) }

  /** A claim was granted: the chunk is held, downloading, and no longer ours to ask for. */
  granted (pick: Pick): void {
    this.held.set(pickKey(pick), { originator: pick.view.originator, stage: 'fetching', grantedAt: this.now(), nearEnd: false })
    dropFromView(pick)
  }

  /** A claim got no answer (the originator out of reach, or slow): the chunk is left alone for a while. */
  unanswered (pick: Pick): void {
    this.backoff.set(pickKey(pick), this.now() + UNANSWERED_BACKOFF_MS)
  }

  /** A claim was refused. Returns whether the refusal is news that this node is banned from the job. */
  refused (pick: Pick, code: RefusalCode, message: string): boolean {
    const jk = jobKey(pick.view.originator, pick.view.jobId)
    const now = this.now()
    this.backoff.set(pickKey(pick), now + (code === 'already-done' ? ALREADY_DONE_BACKOFF_MS : REFUSED_BACKOFF_MS))
    // Asking a job's originator that banned this node again only costs both sides.
    const banned = code === 'banned' && !this.unable.has(jk)
    if (banned) this.unable.set(jk, message)
    if (code === 'not-open') this.lostRace.set(jk, now)
    // Every other chunk of the job would be refused too, until one of our leases on it ends.
    if (code === 'too-many-leases') this.jobBackoff.set(jk, now + TOO_MANY_LEASES_MS)
    // Dropped from our view right away, so we do not ask again before the next announcement.
    dropFromView(pick)
    return banned
  }

  /** A held chunk moved on (downloaded, encoding, uploading). */
  staged (ref: ChunkRef, stage: TaskStage): void {
    const h = this.held.get(chunkKey(ref))
    if (h !== undefined) h.stage = stage
  }

  /** A segment download from another node took this long: it times prefetches and says when a download is stalled. */
  downloaded (tookMs: number): void { this.lastFetchMs = tookMs }

  /** An encode's progress. Returns true when it has just come near enough its end that a prefetch is due. */
  progressed (ref: ChunkRef, framesLeft: number, fps: number): boolean {
    const h = this.held.get(chunkKey(ref))
    if (h === undefined || h.nearEnd || fps <= 0) return false
    if (framesLeft / fps * 1000 > 2 * this.lastFetchMs + PREFETCH_MARGIN_MS) return false
    h.nearEnd = true
    return true
  }

  /** The worker gave a chunk back (its fetch, encode or upload failed): not tried again for a while. */
  gaveUp (ref: ChunkRef): void { this.backoff.set(chunkKey(ref), this.now() + GIVEN_BACK_BACKOFF_MS) }

  /** A held chunk is done with (delivered, given back or stopped): its place is free. */
  ended (ref: ChunkRef): void { this.held.delete(chunkKey(ref)) }

  /**
   * An encode failed with this error. Settings this machine cannot encode, or a second failure of
   * its tools on the job, and it claims nothing more of the job.
   */
  encodeFailed (ref: JobRef, errorName: string, reason: string): void {
    const jk = jobKey(ref.originator, ref.jobId)
    const failures = (this.toolFailures.get(jk) ?? 0) + (errorName === 'ToolError' || errorName === 'VerificationError' ? 1 : 0)
    this.toolFailures.set(jk, failures)
    if (errorName === 'SettingsError' || failures >= TOOL_FAILURES_UNABLE) this.unable.set(jk, reason)
  }

  private pickFrom (open: boolean): Pick | undefined {
    const round = this.round(open)
    const views = [...this.jobs.values()].filter(v => this.eligible(v, round))
    for (let n = 0; n < views.length; n++) {
      const view = views[(this.rr + n) % views.length] as JobView
      const chunk = this.chunkIn(view, round)
      if (chunk === undefined) continue
      this.rr = (this.rr + n + 1) % views.length
      return { view, chunk }
    }
    return undefined
  }

  private round (open: boolean): Round {
    const full = this.busyCount() >= this.o.slots
    const encoders = Math.max(1, this.o.swarmSize?.() ?? 1) * this.o.slots
    return { open, full, due: full && this.prefetchDue(), encoders, now: this.now() }
  }

  /**
   * Whether a job has chunks of the round's kind worth looking at. With every slot busy a claim is
   * a prefetch, which must not take work an idle peer could start now: never our own node's chunks
   * (they need no download), never a backup copy, nothing while idle peers wait for this job's
   * chunks, and only while the job has more open chunks than the swarm has encoders. Near the end
   * a prefetched chunk waits a whole encode for its holder while another encoder runs dry: with
   * 200 equal chunks on 50 peers, some did 5 and some 3.
   */
  private eligible (v: JobView, round: Round): boolean {
    const jk = jobKey(v.originator, v.jobId)
    const chunks = chunksOf(v, round.open)
    if (this.unable.has(jk) || this.downloading(v.originator) || (this.jobBackoff.get(jk) ?? 0) > round.now || chunks.length === 0) return false
    if (!round.full) return true
    return round.due && round.open && chunks.length > round.encoders && v.originator !== this.o.peerId && (v.waiting?.length ?? 0) === 0
  }

  /** The chunk of this job to claim in this round, if any: a backup, the furthest behind; an open chunk, see pickOpen. */
  private chunkIn (view: JobView, round: Round): number | undefined {
    const chunks = chunksOf(view, round.open)
    const jk = jobKey(view.originator, view.jobId)
    const candidates = chunks.filter(chunk => {
      const k = chunkOf(jk, chunk)
      return !this.held.has(k) && (this.backoff.get(k) ?? 0) <= round.now
    })
    if (candidates.length === 0 || !round.open) return candidates[0]
    const ascending = candidates.sort((a, b) => a - b)
    // A prefetch leaves the job's last `encoders` open chunks (its smallest: the plan shrinks
    // them so the encoders end together) to be taken last and in order: with two nodes, a
    // prefetch spread over the whole tail once took the 14-frame last chunk early and left a
    // 46-frame one for the end, while the other node waited.
    const pool = round.full ? ascending.slice(0, Math.max(1, chunks.length - round.encoders)) : ascending
    return this.pickOpen(view, pool, round.now, round.full ? 2 * round.encoders : 0)
  }

  /**
   * Which open chunk to claim (candidates ascending), or none for now. In order, because a job's
   * last chunks are its smallest and the tail ends together only if they are taken last. When the
   * originator lists peers waiting for chunks, the i-th of them takes the i-th open chunk and peers
   * further back (or not listed, if the queue covers every open chunk) leave them alone: one claim
   * per chunk rather than one per idle peer. A chunk nobody took within DEFER_MS is anyone's.
   * Right after losing a claim race, a random one of the first few, so racing peers stop colliding;
   * a prefetch (prefetchSpread > 0), a random one of the first prefetchSpread (twice the encoders).
   */
  private pickOpen (view: JobView, candidates: number[], now: number, prefetchSpread: number): number | undefined {
    const jk = jobKey(view.originator, view.jobId)
    const queue = view.waiting ?? []
    if (queue.length > 0) {
      const place = queue.indexOf(this.o.peerId)
      const share = place >= 0 ? place : queue.length
      if (share < candidates.length) return candidates[share]
      const since = this.openSince.get(jk)
      return candidates.find(c => now - (since?.get(c) ?? now) >= DEFER_MS)
    }
    // A prefetch is for after the current encode, so any of the next few will do: busy peers all
    // asking for the lowest one at once made 50-60 refused claims a second at 50 nodes. Twice the
    // swarm's encoders, because the lowest ones go first and a view can be half a second old.
    const contended = now - (this.lostRace.get(jk) ?? Number.NEGATIVE_INFINITY) < CONTENDED_MS
    const spread = Math.max(prefetchSpread, contended ? CLAIM_SPREAD : 1)
    return candidates[Math.floor(this.random() * Math.min(candidates.length, spread))]
  }

  /** Leases that hold or wait for a slot; a chunk being uploaded no longer does, nor a stalled download (see FETCH_STALL_MIN_MS). */
  private busyCount (): number {
    const now = this.now()
    const stallMs = Math.max(FETCH_STALL_MIN_MS, 3 * this.lastFetchMs)
    let n = 0
    for (const h of this.held.values()) {
      if (h.stage === 'uploading') continue
      if (h.stage === 'fetching' && now - h.grantedAt > stallMs) continue
      n++
    }
    return n
  }

  /** Whether a segment download from this originator is under way: one at a time per originator. */
  private downloading (originator: string): boolean {
    for (const h of this.held.values()) if (h.stage === 'fetching' && h.originator === originator) return true
    return false
  }
}

function chunksOf (view: JobView, open: boolean): number[] { return open ? view.open : view.backup ?? [] }

/** A claimed chunk leaves the view it was picked from (not a newer one heard meanwhile), granted or refused. */
function dropFromView ({ view, chunk }: Pick): void {
  view.open = view.open.filter(c => c !== chunk)
  view.backup = view.backup?.filter(c => c !== chunk)
}
