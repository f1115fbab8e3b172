import { mkdir, rm, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { encoderFor, type ChunkArgsOptions, type EncoderSettings } from './encoders/index.js'
import { AbortError, MemoryBudgetError, SettingsError, VerificationError } from './errors.js'
import { formatMemorySize } from './memory.js'
import type { Rational } from './probe.js'
import { inspectSegment, peerInputArgs, type SegmentLimits } from './peer-bytes.js'
import { isParsedSettings } from './settings.js'
import { LOW_PRIORITY_NICENESS, type EncodePriority } from './priority.js'
import { lowerPriority, ranOutOfMemory, spawnTool, startPipeSource, toToolError, type PipeSource } from './tools.js'
import { Y4mFrameGate, type EncodeCutoff } from './cutoff.js'

export interface EncodeProgress {
  framesDone: number
  frameCount: number
  fps: number
}

export interface EncodeChunkOptions {
  segmentPath: string
  /** From the segment: decoded frames before this timestamp are pre-roll, not the chunk's. */
  selectFromTime: number
  frameCount: number
  /**
   * Settings as their encoder parsed them where they crossed a trust boundary (the worker's edge);
   * they choose the encoder. Any other value is refused (isParsedSettings).
   */
  settings: EncoderSettings
  /** Nominal rate of the source, so every chunk's rate control sees the same frame rate. */
  frameRate: Rational
  /** The segment came from another peer: check it is a one-stream Matroska video of an allowed codec and the declared size before decoding it. */
  segmentFromPeer?: boolean
  /** What a peer's segment may ask of this worker (default DEFAULT_SEGMENT_LIMITS). */
  segmentLimits?: SegmentLimits
  /** Pixel format of the source video; chooses the y4m format fed to the encoder. */
  sourcePixFmt: string
  /** The source's frame size: an odd one is padded to what x264 takes (encodedSize). */
  width?: number
  height?: number
  outputPath: string
  /** The encoder's threads; default lets it pick. */
  threads?: number
  /** How the decoder and the encoder share the machine with everything else (EncodePriority); unset: 'normal'. */
  priority?: EncodePriority
  signal?: AbortSignal
  onProgress?: (progress: EncodeProgress) => void
  /**
   * The decoder and the encoder each run under this limit on their private memory (prlimit --data,
   * memory.ts); one that runs out fails with a MemoryBudgetError. Unset: no limit.
   */
  memoryLimitBytes?: number
  /**
   * Lets the caller end the encode before its last frame (EncodeCutoff.endAt): the result then has
   * the frames it was cut to. Its frames pass through this process, a little CPU per frame.
   */
  cutoff?: EncodeCutoff
}

export interface EncodedChunk {
  path: string
  sizeBytes: number
  frameCount: number
  seconds: number
}

/** y4m carries planar YUV only; other formats are converted at the source's depth. */
export function y4mPixFmt (sourcePixFmt: string): string {
  const m = /^yuv(420|422|444)p(9|10|12|14|16)?(le|be)?$/.exec(sourcePixFmt)
  if (m !== null) return m[2] === undefined ? `yuv${m[1]}p` : `yuv${m[1]}p${m[2]}le`
  if (/^yuvj4(20|22|44)p$/.test(sourcePixFmt)) return sourcePixFmt
  const deep = /(9|10|12|14|16)(le|be)$/.test(sourcePixFmt)
  return deep ? 'yuv420p10le' : 'yuv420p'
}

/**
 * The size frames are encoded at: x264 takes subsampled chroma only at even sizes, so an odd
 * width or height (720x405 from a phone or a DVD rip's crop) gets one more column or row, which
 * the merge crops off again in the container (mergeChunks).
 */
export function encodedSize (width: number, height: number, sourcePixFmt: string): { width: number, height: number } {
  const fmt = y4mPixFmt(sourcePixFmt)
  const halfWidth = /^yuvj?4(20|22)p/.test(fmt)
  const halfHeight = /^yuvj?420p/.test(fmt)
  return { width: halfWidth ? width + (width % 2) : width, height: halfHeight ? height + (height % 2) : height }
}

// A function, so TypeScript does not carry a narrowing of `aborted` across awaits.
function isAborted (signal?: AbortSignal): boolean { return signal?.aborted === true }

/**
 * The decoder half of the pipe: exactly the chunk's frames, in display order, as y4m (of the
 * source's pixel format, y4mPixFmt, unless the encoder wants another: Encoder.inputPixFmt).
 */
export function decoderArgs (o: Pick<EncodeChunkOptions, 'segmentPath' | 'selectFromTime' | 'frameCount' | 'sourcePixFmt' | 'width' | 'height' | 'segmentFromPeer'>, pixFmt = y4mPixFmt(o.sourcePixFmt)): string[] {
  const from = (o.selectFromTime - 0.0005).toFixed(6)
  const size = o.width !== undefined && o.height !== undefined ? encodedSize(o.width, o.height, o.sourcePixFmt) : undefined
  const pad = size !== undefined && (size.width !== o.width || size.height !== o.height) ? `,pad=${size.width}:${size.height}` : ''
  return [
    '-v', 'error', '-nostdin',
    // Keep the segment's own timestamps so the select below can name the first frame by time.
    '-copyts',
    // Segments are Matroska, and may come from a peer: never let ffmpeg guess (peer-bytes.ts).
    // A peer's segment may not make its decoder allocate more than the size it declared.
    ...peerInputArgs('matroska', o.segmentPath, o.segmentFromPeer === true && o.width !== undefined && o.height !== undefined ? { width: o.width, height: o.height } : undefined), '-map', '0:v:0',
    '-vf', `select='gte(t,${from})'${pad}`,
    '-frames:v', String(o.frameCount),
    // Never duplicate or drop frames to fit a rate: VFR timestamps are restored at merge.
    '-fps_mode', 'passthrough',
    '-pix_fmt', pixFmt,
    '-strict', '-1', '-f', 'yuv4mpegpipe', '-'
  ]
}

/** The encoder's command line for one chunk (Encoder.chunkArgs): y4m on stdin, the raw bitstream to `outputPath`. */
export function encoderArgs (settings: EncoderSettings, o: ChunkArgsOptions): string[] {
  return encoderFor(settings.encoder).chunkArgs(settings, o)
}

/**
 * Encodes one chunk: ffmpeg decodes the segment and selects exactly the chunk's frames, the
 * settings' encoder encodes them from a y4m pipe. The result is its raw bitstream (x264: H.264
 * Annex B starting with an IDR frame), ready to be concatenated. On failure or abort both
 * processes are stopped and the output removed.
 */
export async function encodeChunk (o: EncodeChunkOptions): Promise<EncodedChunk> {
  // Never a look-alike: only what an encoder's parser made reaches its command line.
  if (!isParsedSettings(o.settings)) throw new SettingsError(`encoding ${o.segmentPath}: the settings were not parsed by their encoder`)
  const settings = o.settings
  const encoder = encoderFor(settings.encoder)
  const tool = encoder.binary
  if (o.signal?.aborted === true) throw new AbortError(`encoding ${o.segmentPath}: aborted`)
  const sourceY4m = y4mPixFmt(o.sourcePixFmt)
  const refused = encoder.refuseSource(sourceY4m)
  if (refused !== undefined) throw new SettingsError(`encoding ${o.segmentPath}: ${refused}`)
  if (o.segmentFromPeer === true) {
    const declared = o.width !== undefined && o.height !== undefined ? { width: o.width, height: o.height, ...(o.segmentLimits !== undefined ? { limits: o.segmentLimits } : {}) } : undefined
    await inspectSegment(o.segmentPath, o.signal !== undefined ? { signal: o.signal } : {}, declared)
  }
  await mkdir(dirname(o.outputPath), { recursive: true })
  const started = Date.now()
  const { decoder, encoding, gate } = startEncodePipe(o, settings, sourceY4m)
  // Abort means stop now: SIGKILL both, rather than SIGTERM and a grace period.
  const killBoth = (): void => { decoder.kill(); encoding.kill('SIGKILL') }
  o.signal?.addEventListener('abort', killBoth, { once: true })
  let lastReport = 0
  // The last two pieces of stderr: a line the encoder printed may come in two.
  let recent = ''
  encoding.stderr?.on('data', (data: Buffer) => {
    const text = data.toString()
    recent = recent.slice(-512) + text
    if (encoder.hangsAfter?.test(recent) === true) killBoth()
    if (o.onProgress === undefined) return
    const latest = encoder.parseProgress(text)
    const now = Date.now()
    if (latest !== undefined && now - lastReport >= 200) { lastReport = now; o.onProgress({ ...latest, frameCount: gate?.limit ?? o.frameCount }) }
  })
  // Once the encoder has failed, the decoder is of no use.
  encoding.catch(() => { decoder.kill() })
  const [dec, enc] = await Promise.allSettled([decoder.done, encoding])
  o.signal?.removeEventListener('abort', killBoth)
  o.cutoff?.detach()
  // A decoder stopped because the encode was ended early (EncodeCutoff) did what it was asked.
  const decoded = gate?.ended === true && dec.status === 'rejected' && !isAborted(o.signal) ? { status: 'fulfilled' as const, value: undefined } : dec
  if (decoded.status === 'rejected' || enc.status === 'rejected') {
    await rm(o.outputPath, { force: true })
    throw encodeFailure(o, tool, decoded, enc)
  }
  const frameCount = gate?.limit ?? o.frameCount
  // The encoder reports what it wrote; a short count (a decoder that stopped early) is not a chunk.
  const encoded = encoder.encodedFrames(enc.value.stderr)
  if (encoded !== frameCount) {
    await rm(o.outputPath, { force: true })
    throw new VerificationError(`encoding ${o.segmentPath}: ${tool} encoded ${encoded ?? 'an unknown number of'} frames, expected ${frameCount}`)
  }
  const sizeBytes = (await stat(o.outputPath)).size
  o.onProgress?.({ framesDone: frameCount, frameCount, fps: frameCount / Math.max(0.001, (Date.now() - started) / 1000) })
  return { path: o.outputPath, sizeBytes, frameCount, seconds: (Date.now() - started) / 1000 }
}

/**
 * Starts the decoder and the encoder with the decoder's y4m on the encoder's stdin: straight from
 * process to process, or through a Y4mFrameGate when the caller may end the encode early.
 */
function startEncodePipe (o: EncodeChunkOptions, settings: EncoderSettings, sourceY4m: string): { decoder: PipeSource, encoding: ReturnType<typeof spawnTool>, gate?: Y4mFrameGate } {
  const encoder = encoderFor(settings.encoder)
  const idle = o.priority === 'idle'
  const decoder = startPipeSource('ffmpeg', decoderArgs(o, encoder.inputPixFmt(settings, sourceY4m)), `decoding ${o.segmentPath}`, o.signal, o.memoryLimitBytes, idle)
  // Failures are read from the settled promises; this only keeps an early one from going unhandled.
  decoder.done.catch(() => {})
  const gate = o.cutoff !== undefined ? new Y4mFrameGate() : undefined
  const encoding = spawnTool(encoder.binary, encoder.chunkArgs(settings, { ...o, outputPath: o.outputPath }), {
    cancelSignal: o.signal, stdin: gate !== undefined ? 'pipe' : decoder.stdout, forceKillAfterDelay: 2000, idle,
    ...(o.memoryLimitBytes !== undefined ? { memoryLimitBytes: o.memoryLimitBytes } : {})
  })
  if (o.priority === 'low') {
    lowerPriority(decoder.pid, LOW_PRIORITY_NICENESS)
    lowerPriority(encoding.pid, LOW_PRIORITY_NICENESS)
  }
  if (gate === undefined) {
    // The encoder holds its own end now. Without ours, a decoder whose encoder died gets EPIPE and stops
    // rather than blocking on a pipe nobody reads.
    decoder.release()
    return { decoder, encoding }
  }
  // An encoder that exits early closes its stdin under the gate: its own failure is the story.
  encoding.stdin?.on('error', () => { decoder.kill() })
  gate.on('end', () => { if (gate.ended) { decoder.stdout.unpipe(gate); decoder.kill() } })
  decoder.stdout.pipe(gate).pipe(encoding.stdin as NodeJS.WritableStream)
  o.cutoff?.attach(gate, o.frameCount)
  return { decoder, encoding, gate }
}

/** The error an encode that failed ends with: the encoder's own, unless the decoder's (or the memory limit) tells more. */
function encodeFailure (o: EncodeChunkOptions, tool: string, dec: PromiseSettledResult<unknown>, enc: PromiseSettledResult<unknown>): Error {
  if (isAborted(o.signal)) return new AbortError(`encoding ${o.segmentPath}: aborted`)
  // The encoder may exit first (bad settings); the decoder then sees EPIPE, which is not the story to tell.
  const failure = enc.status === 'rejected' ? toToolError(tool, enc.reason, `encoding ${o.segmentPath}`) : (dec as PromiseRejectedResult).reason as Error
  // Either one running out under the limit: the decoder's own failure first (the encoder then only saw its input end).
  if (o.memoryLimitBytes !== undefined) {
    const [outOf, err] = dec.status === 'rejected' && ranOutOfMemory(dec.reason) ? ['ffmpeg', dec.reason] : ranOutOfMemory(failure) ? [tool, failure] : []
    if (outOf !== undefined) {
      return new MemoryBudgetError(`${outOf as string} ran out of this worker's memory budget of ${formatMemorySize(o.memoryLimitBytes)} an encode (${(err as Error).message.split('\n').slice(-1)[0] ?? ''})`, false, { cause: err })
    }
  }
  return failure
}
