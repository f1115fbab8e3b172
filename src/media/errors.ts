/**
 * Errors of the media layer. Each says which input failed and what to do, because
 * these messages reach users verbatim through `swarm add` and `swarm status`.
 */
export class MediaError extends Error {
  override readonly name: string = 'MediaError'
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** An external tool (ffmpeg, ffprobe, x264, mkvmerge) is missing or failed. */
export class ToolError extends MediaError {
  override readonly name = 'ToolError'
  /** The tool is not on PATH: nothing was run, so nothing was learnt about its input. */
  readonly missing: boolean
  /** The signal that ended the tool, if one did (the OOM killer, a shutdown): not the input's doing. */
  readonly killedBy: string | undefined
  constructor (readonly tool: string, message: string, readonly stderr = '', options?: { cause?: unknown, missing?: boolean, killedBy?: string }) {
    super(message, options)
    this.missing = options?.missing === true
    this.killedBy = options?.killedBy
  }
}

/**
 * An encode needed more memory than the worker's per-encode budget (memory.ts): refused before it
 * started, by the estimate from its settings and picture size (`before: true`), or stopped by the
 * operating system's limit on its processes (`before: false`). Either way the need came from what
 * the originator sent (its settings, its segment), not from this machine.
 */
export class MemoryBudgetError extends MediaError {
  override readonly name = 'MemoryBudgetError'
  constructor (message: string, readonly before: boolean, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** An encoder's settings string was refused. `option` names the offending option. */
export class SettingsError extends MediaError {
  override readonly name = 'SettingsError'
  constructor (message: string, readonly option?: string) {
    super(message)
  }
}

/** A segment or an encoded chunk did not pass verification. */
export class VerificationError extends MediaError {
  override readonly name: string = 'VerificationError'
  /**
   * The file whose bytes the check found wrong, set only where the check ran to a verdict on that
   * file alone: not when a tool was missing, our own segment failed, or the failure could be
   * either side's.
   */
  readonly file: string | undefined
  constructor (message: string, options?: { file?: string, cause?: unknown }) {
    super(message, options)
    this.file = options?.file
  }
}

/**
 * Whether a failed check of a peer's bytes (a result, a segment) convicts the peer: only a
 * VerificationError that says it found that very file wrong. Only then is the peer caught lying,
 * and banned; the message's wording plays no part.
 */
export function convicts (err: unknown, path: string): boolean {
  return err instanceof VerificationError && err.file === path
}

/** The last line of an error's message: what a failed tool said last (its stderr's tail). */
export function lastLine (err: unknown): string {
  return (err as Error).message.split('\n').slice(-1)[0] ?? ''
}

/**
 * A tool's failure on a peer's bytes as a verdict on them (`what (the tool's last line)`): the tool
 * ran and refused the file. A missing tool, a tool killed by a signal, or a stop says nothing about
 * the file and is passed on as it is.
 */
export function refusedByTool (err: unknown, file: string, what: string): Error {
  if ((err as Error).name === 'AbortError' || (err instanceof ToolError && (err.missing || err.killedBy !== undefined))) return err as Error
  return new VerificationError(`${what} (${lastLine(err)})`, { file, cause: err })
}

/** The source file itself cannot be used (missing, unreadable, CRC mismatch, no video). */
export class SourceError extends MediaError {
  override readonly name = 'SourceError'
}

/** A disk has too little room for a transfer or a cut (disk.ts checkFreeSpace): the message names the folder and the bytes. */
export class DiskSpaceError extends MediaError {
  override readonly name = 'DiskSpaceError'
}

/** The operation was aborted through its AbortSignal. */
export class AbortError extends MediaError {
  override readonly name = 'AbortError'
  constructor (message = 'the operation was aborted') {
    super(message)
  }
}
