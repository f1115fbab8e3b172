import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { logger, shortJob, type Logger, type LogSink } from '../log/index.js'
import { JOB_RECORD_VERSION, type JobRecord } from './types.js'
import { JobFolder } from './job-folder.js'

/**
 * Reads a job.json. Records written before the format had a version are version 1. A record in
 * another version, or in another job's folder, is refused rather than guessed at.
 */
export function parseJobRecord (text: string, folder: string): JobRecord {
  const record = JSON.parse(text) as Omit<JobRecord, 'version'> & { version?: number }
  const version = record.version ?? 1
  if (version !== JOB_RECORD_VERSION) throw new Error(`unexpected version ${version}`)
  if (record.id !== folder) throw new Error(`holds job ${shortJob(String(record.id))}, not ${shortJob(folder)}`)
  return { ...record, version }
}

/**
 * The jobs this node originates, in memory and in `<dir>/<id>/job.json`. Every change is written
 * soon after it is made (touch), atomically (a temp file renamed over the old one), one write at a
 * time per job, so a node killed at any moment restarts from a whole record.
 */
/** How long a change that may wait (touchLazily) stays unwritten at most; a restart within it loses only progress figures. */
export const LAZY_WRITE_MS = 2000

export class JobStore {
  private readonly records = new Map<string, JobRecord>()
  private readonly saving = new Map<string, Promise<void>>()
  private readonly dirty = new Set<string>()
  private readonly lazyWrites = new Map<string, ReturnType<typeof setTimeout>>()

  private readonly log: Logger

  constructor (readonly dir: string, private readonly now: () => number, log: LogSink = () => {}) {
    this.log = logger('jobs', log)
  }

  /** The live records, by id: what the lease table reads and writes. */
  get jobs (): ReadonlyMap<string, JobRecord> { return this.records }
  get (id: string): JobRecord | undefined { return this.records.get(id) }
  list (): JobRecord[] { return [...this.records.values()].sort((a, b) => a.createdAt - b.createdAt) }
  jobDir (id: string): string { return join(this.dir, id) }
  /** The job's folder and the files in it (job-folder.ts). */
  folder (id: string): JobFolder { return new JobFolder(this.jobDir(id)) }

  /** Loads every readable job.json; one that is not is logged and skipped, the others still load. */
  async load (): Promise<JobRecord[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    for (const name of await readdir(this.dir)) {
      const file = this.folder(name).record
      if (!existsSync(file)) continue
      try {
        const job = parseJobRecord(await readFile(file, 'utf8'), name)
        this.records.set(job.id, job)
      } catch (err) {
        this.log.debug(`skipping ${file}: ${(err as Error).message}`)
      }
    }
    return [...this.records.values()]
  }

  /** A new job: kept, and on disk before this returns. */
  async create (job: JobRecord): Promise<void> {
    this.records.set(job.id, job)
    this.dirty.add(job.id)
    await this.save(job.id)
  }

  /** The record changed: stamp it and write it once the current turn of the event loop is over. */
  touch (job: JobRecord): void {
    job.updatedAt = this.now()
    this.dirty.add(job.id)
    queueMicrotask(() => { void this.save(job.id) })
  }

  /**
   * A change that may wait (a heartbeat's progress and new expiry): written within LAZY_WRITE_MS,
   * or with the next change that may not. Every heartbeat used to rewrite the whole record: at 50
   * peers on a 200-chunk job, tens of writes a second of a record that grows with the job.
   */
  touchLazily (job: JobRecord): void {
    job.updatedAt = this.now()
    this.dirty.add(job.id)
    if (this.lazyWrites.has(job.id)) return
    const timer = setTimeout(() => { this.lazyWrites.delete(job.id); void this.save(job.id) }, LAZY_WRITE_MS)
    timer.unref()
    this.lazyWrites.set(job.id, timer)
  }

  /** Writes job.json atomically if it changed; overlapping saves are serialised per job. */
  async save (id: string): Promise<void> {
    const previous = this.saving.get(id) ?? Promise.resolve()
    const next = previous.then(async () => {
      const job = this.records.get(id)
      if (job === undefined || !this.dirty.has(id)) return
      this.dirty.delete(id)
      const file = this.folder(id).record
      const tmp = `${file}.tmp`
      await mkdir(this.jobDir(id), { recursive: true, mode: 0o700 })
      await writeFile(tmp, JSON.stringify(job, null, 1), { mode: 0o600 })
      await rename(tmp, file)
    }).catch((err: Error) => { this.log.debug(`could not save ${shortJob(id)}: ${err.message}`) })
    this.saving.set(id, next)
    await next
  }

  /** Writes every change still unwritten and waits for writes under way. */
  async flush (): Promise<void> {
    for (const id of [...this.dirty]) await this.save(id)
    await Promise.allSettled([...this.saving.values()])
  }

  /** Forgets a job and deletes its folder, whatever is in it. */
  async remove (id: string): Promise<void> {
    this.records.delete(id)
    this.dirty.delete(id)
    const lazy = this.lazyWrites.get(id)
    if (lazy !== undefined) { clearTimeout(lazy); this.lazyWrites.delete(id) }
    // A write under way would put job.json back into the folder being deleted.
    await this.saving.get(id)
    await rm(this.jobDir(id), { recursive: true, force: true })
  }
}
