import { DEFAULT_ENCODER, encoderFor, type EncoderId, type EncoderSettings } from '../media/index.js'
import type { JobRecord } from './types.js'

/**
 * A job's settings, parsed. The record keeps the strings (job.json, the announcement, the
 * segment's meta); the code below admission takes these values.
 */
export interface JobSettings {
  /** As the user gave them: the job's id is made of them, and the fidelity check leaves alone what they set. */
  user: EncoderSettings
  /** What every chunk is encoded with: the user's plus the source's colour (media/colour.ts effectiveSettings). */
  encode: EncoderSettings
}

/** The encoder a job's settings are for: records from before jobs named theirs are x264's. */
export function encoderOf (job: Pick<JobRecord, 'encoder'>): EncoderId {
  return job.encoder ?? DEFAULT_ENCODER
}

/** Per record: its parsed settings, or why this version refuses the strings it holds. */
const parsed = new WeakMap<JobRecord, JobSettings | Error>()

/** A new job's settings, as admission parsed them: kept with its record, never parsed again. */
export function keepSettings (job: JobRecord, settings: JobSettings): void {
  parsed.set(job, settings)
}

/**
 * The job's parsed settings. A record loaded from job.json (this node's own file, written when
 * admission had parsed them) is parsed on its first use, once; a refusal then (this version's
 * allowlist has changed) is thrown at each use, as the parse itself would.
 */
export function settingsOf (job: JobRecord): JobSettings {
  let settings = parsed.get(job)
  if (settings === undefined) {
    try {
      const encoder = encoderFor(encoderOf(job))
      const user = encoder.parseSettings(job.settings)
      settings = { user, encode: job.encodeSettings !== undefined ? encoder.parseSettings(job.encodeSettings) : user }
    } catch (err) {
      settings = err as Error
    }
    parsed.set(job, settings)
  }
  if (settings instanceof Error) throw settings
  return settings
}
