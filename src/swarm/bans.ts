import { EventEmitter } from 'node:events'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { z } from 'zod'
import { logger, shortJob, shortPeer, type Logger, type LogSink } from '../log/index.js'
import type { Offence } from './contract.js'

/** The block list's file in the node's home. */
export const BANS_FILE = 'bans.json'
/** A first offence bans for an hour; each one after a ban doubles it, up to a day. */
export const FIRST_BAN_MS = 60 * 60_000
export const MAX_BAN_MS = 24 * 60 * 60_000
/** A peer's record (its strikes, the jobs it lied about) is forgotten this long after its ban ended. */
export const FORGET_AFTER_MS = 7 * 24 * 60 * 60_000
/**
 * Finished bans kept at most (the jobs they still refuse the peer): an identity costs nothing to
 * make, so a peer that gets each of a thousand banned must not grow the file without bound. The
 * oldest finished bans go first. Active bans are not counted here: a ban is never ended early to
 * make room, or a liar could flush its own ban with 1,024 fresh ids banned after it (issue 26.6).
 */
export const MAX_BAN_RECORDS = 1024
/**
 * Active bans kept at most, a hard bound on memory and on bans.json (about 300 bytes each). Past
 * it the most recent bans with the fewest strikes go first, never the one just made: fresh ids
 * banned in a flood push out each other, not the peers banned before them.
 */
export const MAX_ACTIVE_BANS = 4096
export const MAX_JOBS_PER_RECORD = 32
/**
 * Requests that break the protocol (frames that do not parse, break the schema, bytes that do not
 * match the SHA-256 announced) ban a peer once this many arrive within VIOLATION_WINDOW_MS. One is
 * refused and explained: a peer running another version may send it in good faith. Many are abuse.
 */
export const VIOLATIONS_TO_BAN = 10
export const VIOLATION_WINDOW_MS = 10 * 60_000
/**
 * Transfers that missed their deadline (TRANSFER_ALLOWANCE_MS plus 64 KiB/s) ban a peer once this
 * many fall within STRIKE_WINDOW_MS. One can be a bad link; three in an hour is a peer holding
 * workers' downloads on purpose (issue 26: one byte every 20 s, just under the idle limit).
 */
export const STRIKES_TO_BAN = 3
export const STRIKE_WINDOW_MS = 60 * 60_000
/** Peers with violations or strikes counted, at most (each counter apart): fresh ids must not grow them without bound. */
export const MAX_COUNTED_PEERS = 1024

/**
 * Offences of one kind per peer within a window, for at most MAX_COUNTED_PEERS peers (the peer
 * counted longest ago goes first). Counting starts again once the window since the first is over.
 */
class WindowCounts {
  private readonly counts = new Map<string, { count: number, first: number }>()
  constructor (private readonly windowMs: number) {}

  /** Counts one more for the peer at `now` and returns how many are in its window. */
  add (peer: string, now: number): number {
    const seen = this.counts.get(peer)
    const fresh = seen === undefined || now - seen.first >= this.windowMs
    const entry = fresh ? { count: 1, first: now } : { count: seen.count + 1, first: seen.first }
    this.counts.delete(peer)
    this.counts.set(peer, entry)
    if (this.counts.size > MAX_COUNTED_PEERS) this.counts.delete(this.counts.keys().next().value as string)
    return entry.count
  }

  delete (peer: string): void { this.counts.delete(peer) }
  get size (): number { return this.counts.size }
}

const BAN_FILE_VERSION = 1

const BanRecordSchema = z.object({
  peer: z.string().min(1).max(128),
  reason: z.string().max(1000),
  since: z.number(),
  until: z.number(),
  strikes: z.number().int().min(1),
  jobs: z.array(z.string().max(64)).max(MAX_JOBS_PER_RECORD)
})

/** One peer on the block list. */
export type BanRecord = z.infer<typeof BanRecordSchema>

const BanFile = z.object({ version: z.literal(BAN_FILE_VERSION), bans: z.array(z.unknown()) })

export interface BanListOptions {
  /** Where the list is kept: `<home>/bans.json`. */
  file: string
  now?: () => number
  log?: LogSink
  /** Tests lower the bounds (MAX_BAN_RECORDS, MAX_ACTIVE_BANS) to flood them with a few real peers. */
  maxRecords?: number
  maxActiveBans?: number
}

/**
 * Peers caught lying, remembered: a result that failed verification, a segment that is not one,
 * requests that keep breaking the protocol. An offence bans the peer from the job it lied about
 * (for as long as this node remembers it) and from this whole node for an hour, twice as long
 * after each later ban, at most a day. The list is written to the home after every change
 * (atomically: a temporary file renamed over the old one), so a restart does not forgive anyone.
 * The edge asks isBanned: the connection gater, the stream handlers, the job topic's validator.
 */
export class BanList extends EventEmitter<{ banned: [BanRecord], lifted: [string] }> {
  private readonly records = new Map<string, BanRecord>()
  private readonly violations = new WindowCounts(VIOLATION_WINDOW_MS)
  private readonly strikes = new WindowCounts(STRIKE_WINDOW_MS)
  private readonly now: () => number
  private readonly log: Logger
  private saving: Promise<void> = Promise.resolve()

  constructor (private readonly o: BanListOptions) {
    super()
    this.now = o.now ?? Date.now
    this.log = logger('swarm', o.log)
  }

  /** Reads the list from the home. A missing file is an empty list; an unreadable one is logged and replaced on the next change. */
  async load (): Promise<void> {
    let text: string
    try {
      text = await readFile(this.o.file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    try {
      const parsed = BanFile.parse(JSON.parse(text))
      for (const raw of parsed.bans) {
        const r = BanRecordSchema.safeParse(raw)
        if (r.success) this.records.set(r.data.peer, r.data)
      }
    } catch (err) {
      this.log.info(`ignoring ${this.o.file}: ${(err as Error).message.split('\n')[0] ?? ''}`)
    }
    this.prune()
  }

  /**
   * A peer was caught: banned from the job and, unless it is banned already, from the node (logged
   * once, with the reason). An offence during a ban adds the job but not a strike: a liar's uploads
   * that were already on their way must not stretch its ban to a day at once.
   */
  report (offence: Offence): BanRecord {
    const now = this.now()
    const known = this.records.get(offence.peer)
    const reason = offence.reason.slice(0, 1000)
    if (known !== undefined && known.until > now) {
      if (offence.jobId !== undefined && this.addJob(known, offence.jobId)) void this.save()
      this.log.debug(`${shortPeer(offence.peer)} (banned) again: ${reason}`)
      return known
    }
    const strikes = (known?.strikes ?? 0) + 1
    const lasts = Math.min(MAX_BAN_MS, FIRST_BAN_MS * 2 ** (strikes - 1))
    const record: BanRecord = { peer: offence.peer, reason, since: now, until: now + lasts, strikes, jobs: known?.jobs ?? [] }
    if (offence.jobId !== undefined) this.addJob(record, offence.jobId)
    this.records.delete(offence.peer)
    this.records.set(offence.peer, record)
    this.violations.delete(offence.peer)
    this.strikes.delete(offence.peer)
    this.prune(offence.peer)
    this.log.info(`banned ${shortPeer(offence.peer)} for ${describeMs(lasts)}${offence.jobId !== undefined ? ` and from ${shortJob(offence.jobId)}` : ''}: ${reason}`)
    this.emit('banned', record)
    void this.save()
    return record
  }

  /** A request from the peer broke the protocol; enough of them within the window are an offence. */
  violation (peer: string, message: string): void {
    if (this.isBanned(peer)) return
    const count = this.violations.add(peer, this.now())
    if (count >= VIOLATIONS_TO_BAN) this.report({ peer, reason: `${count} requests that broke the protocol within ${describeMs(VIOLATION_WINDOW_MS)}; the last: ${message}` })
  }

  /**
   * A transfer from the peer missed its deadline (a segment trickled in): a strike, and
   * STRIKES_TO_BAN of them within STRIKE_WINDOW_MS are an offence, banned like a lie.
   */
  strike (offence: Offence): void {
    if (this.isBanned(offence.peer)) return
    const count = this.strikes.add(offence.peer, this.now())
    this.log.info(`strike ${count} of ${STRIKES_TO_BAN} against ${shortPeer(offence.peer)}: ${offence.reason.slice(0, 300)}`)
    if (count >= STRIKES_TO_BAN) this.report({ ...offence, reason: `${count} transfers slower than the deadline within ${describeMs(STRIKE_WINDOW_MS)}; the last: ${offence.reason}` })
  }

  /** Whether the peer is banned from this node now, or (with a job id) from that job. */
  isBanned (peer: string, jobId?: string): boolean {
    const r = this.records.get(peer)
    if (r === undefined) return false
    return r.until > this.now() || (jobId !== undefined && r.jobs.includes(jobId))
  }

  /** Every peer still refused somewhere: banned from the node now, or from a job; longest banned first. */
  list (): Array<BanRecord & { active: boolean }> {
    const now = this.now()
    return [...this.records.values()]
      .filter(r => r.until > now || r.jobs.length > 0)
      .map(r => ({ ...r, jobs: [...r.jobs], active: r.until > now }))
      .sort((a, b) => b.until - a.until)
  }

  /** Forgives a peer (the user said so): its ban, its jobs and its strikes go. */
  lift (peer: string): boolean {
    this.violations.delete(peer)
    this.strikes.delete(peer)
    if (!this.records.delete(peer)) return false
    this.log.info(`lifted the ban on ${shortPeer(peer)}`)
    this.emit('lifted', peer)
    void this.save()
    return true
  }

  /** Waits for the writes under way. */
  async flush (): Promise<void> { await this.saving }

  private addJob (r: BanRecord, jobId: string): boolean {
    if (r.jobs.includes(jobId)) return false
    r.jobs.push(jobId)
    if (r.jobs.length > MAX_JOBS_PER_RECORD) r.jobs.shift()
    return true
  }

  /**
   * Drops records long over, then the oldest finished bans beyond MAX_BAN_RECORDS. Active bans go
   * only past MAX_ACTIVE_BANS, most recent and fewest strikes first, never `keep` (the ban just made).
   */
  private prune (keep?: string): void {
    const now = this.now()
    for (const [peer, r] of this.records) if (r.until + FORGET_AFTER_MS < now) this.records.delete(peer)
    const finished = [...this.records.values()].filter(r => r.until <= now).sort((a, b) => a.until - b.until)
    for (const r of finished.slice(0, Math.max(0, finished.length - (this.o.maxRecords ?? MAX_BAN_RECORDS)))) this.records.delete(r.peer)
    const active = [...this.records.values()].filter(r => r.until > now && r.peer !== keep)
    const keepActive = keep !== undefined && (this.records.get(keep)?.until ?? 0) > now
    const room = (this.o.maxActiveBans ?? MAX_ACTIVE_BANS) - (keepActive ? 1 : 0)
    if (active.length <= room) return
    active.sort((a, b) => a.strikes - b.strikes || b.since - a.since)
    for (const r of active.slice(0, active.length - room)) this.records.delete(r.peer)
  }

  /** Writes the whole list, one write at a time, through a temporary file renamed into place. */
  private async save (): Promise<void> {
    this.saving = this.saving.then(async () => {
      const tmp = `${this.o.file}.tmp`
      await mkdir(dirname(this.o.file), { recursive: true, mode: 0o700 })
      await writeFile(tmp, JSON.stringify({ version: BAN_FILE_VERSION, bans: [...this.records.values()] }, null, 1), { mode: 0o600 })
      await rename(tmp, this.o.file)
    }).catch((err: Error) => { this.log.info(`could not save the block list ${this.o.file}: ${err.message}`) })
    await this.saving
  }
}

/** "1 h", "16 h", "30 min": how long a ban lasts, in the words the log and the CLI use. */
export function describeMs (ms: number): string {
  return ms >= 60 * 60_000 ? `${Math.round(ms / (60 * 60_000))} h` : `${Math.round(ms / 60_000)} min`
}
