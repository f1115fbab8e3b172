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
