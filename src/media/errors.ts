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
  constructor (readonly tool: string, message: string, readonly stderr = '', options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** The x264 settings string was refused. `option` names the offending option. */
export class SettingsError extends MediaError {
  override readonly name = 'SettingsError'
  constructor (message: string, readonly option?: string) {
    super(message)
  }
}

/** A segment or an encoded chunk did not pass verification. */
export class VerificationError extends MediaError {
  override readonly name = 'VerificationError'
}

/**
 * Whether a failed check of a peer's bytes (a result, a segment) convicts the peer: a
 * VerificationError that names the file it checked, unless the check itself could not run here
 * (a tool missing from PATH) or cannot say which side failed (the picture comparison decodes the
 * result and this node's own segment together). Only then is the peer caught lying, and banned.
 */
export function convicts (err: unknown, path: string): boolean {
  if (!(err instanceof VerificationError)) return false
  const m = err.message
  if (!m.startsWith(`${path}:`) && !m.startsWith(`segment ${path}:`)) return false
  return !m.includes('was not found on PATH') && !m.includes('could not be compared with the source')
}

/** The source file itself cannot be used (missing, unreadable, CRC mismatch, no video). */
export class SourceError extends MediaError {
  override readonly name = 'SourceError'
}

/** The operation was aborted through its AbortSignal. */
export class AbortError extends MediaError {
  override readonly name = 'AbortError'
  constructor (message = 'the operation was aborted') {
    super(message)
  }
}
