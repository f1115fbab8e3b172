import { randomBytes } from 'node:crypto'
import { join } from 'node:path'

/**
 * A job's folder, `<home>/jobs/<id>/`, and every file the originator keeps in it: the one place
 * its layout is spelled (docs/architecture.md, "Originator").
 *
 * - `job.json`: the record (job-store.ts).
 * - `segments/segment-<index>.mkv`: the source cut into chunks (splitter.ts); a chunk's record
 *   keeps the file's name, deleted once the chunk is verified.
 * - `incoming/chunk-<index>-<random>.264`: a result being received and checked, then moved to
 *   results/ or deleted (result-intake.ts).
 * - `results/chunk-<index>.264`: verified chunks; a chunk's record keeps the file's name.
 * - `merge/`: the merge's work: the joined video, the timestamp file, extracted captions, and
 *   `tracks.mkv`, the source's other tracks when mkvmerge cannot read them from the source.
 * - `work/`: the splitter's scratch, removed when the split ends.
 * - `checks/reference-<random>/`: the source's side of a picture check, made while a peer encodes
 *   the chunk and removed once used (result-intake.ts).
 *
 * All but job.json are removed once the output is verified (`scratch`).
 */
export class JobFolder {
  constructor (readonly dir: string) {}

  get record (): string { return join(this.dir, 'job.json') }
  get segments (): string { return join(this.dir, 'segments') }
  get incoming (): string { return join(this.dir, 'incoming') }
  get results (): string { return join(this.dir, 'results') }
  get merge (): string { return join(this.dir, 'merge') }
  get work (): string { return join(this.dir, 'work') }
  get checks (): string { return join(this.dir, 'checks') }

  /** Where the splitter writes chunk `index`'s segment. */
  segmentFor (index: number): string { return join(this.segments, `segment-${index}.mkv`) }
  /** A segment by the file name its chunk's record keeps. */
  segment (file: string): string { return join(this.segments, file) }

  /** A fresh name in incoming/ for an upload of chunk `index` (several copies of one chunk may arrive at once). */
  newIncoming (index: number): string { return join(this.incoming, `chunk-${index}-${randomBytes(6).toString('hex')}.264`) }

  /** The name a verified result of chunk `index` is kept under in results/. */
  resultName (index: number): string { return `chunk-${index}.264` }
  /** A result by the file name its chunk's record keeps. */
  result (file: string): string { return join(this.results, file) }

  /** The source's other tracks copied out at add (otherTracksInput). */
  get tracks (): string { return join(this.merge, 'tracks.mkv') }

  /** Everything the job's output no longer needs once it is verified: all but job.json. */
  get scratch (): string[] { return [this.segments, this.results, this.merge, this.incoming, this.checks] }
}
