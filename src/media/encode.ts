import { mkdir, rm, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { AbortError, MemoryBudgetError, VerificationError } from './errors.js'
import { formatMemorySize } from './memory.js'
import type { Rational } from './probe.js'
import { inspectSegment, peerInputArgs, type SegmentLimits } from './peer-bytes.js'
import { parseX264Settings, type X264Settings } from './settings.js'
import { lowerPriority, ranOutOfMemory, spawnTool, startPipeSource, toToolError } from './tools.js'

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
  /** Untrusted settings are re-checked here, whatever the caller checked before. */
  settings: string | X264Settings
  /** Nominal rate of the source, so every chunk's rate control sees the same frame rate. */
  frameRate: Rational
  /** The segment came from another peer: check it is a one-stream Matroska video of an allowed codec and the declared size before decoding it. */
  segmentFromPeer?: boolean
  /** What a peer's segment may ask of this worker (default DEFAULT_SEGMENT_LIMITS). */
  segmentLimits?: SegmentLimits
  /** Pixel format of the source video; chooses the y4m format fed to x264. */
  sourcePixFmt: string
  /** The source's frame size: an odd one is padded to what x264 takes (encodedSize). */
  width?: number
  height?: number
  outputPath: string
  /** x264 --threads; default lets x264 pick. */
  threads?: number
  /** Nice value for the decoder and x264 (0 or unset: the caller's priority). */
  niceness?: number
  signal?: AbortSignal
  onProgress?: (progress: EncodeProgress) => void
  /**
   * The decoder and x264 each run under this limit on their private memory (prlimit --data,
   * memory.ts); one that runs out fails with a MemoryBudgetError. Unset: no limit.
   */
  memoryLimitBytes?: number
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

const PROGRESS_RE = /(\d+)(?:\/\d+)? frames[:,] ([\d.]+) fps/g

/** The decoder half of the pipe: exactly the chunk's frames, in display order, as y4m. */
export function decoderArgs (o: Pick<EncodeChunkOptions, 'segmentPath' | 'selectFromTime' | 'frameCount' | 'sourcePixFmt' | 'width' | 'height' | 'segmentFromPeer'>): string[] {
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
    '-pix_fmt', y4mPixFmt(o.sourcePixFmt),
    '-strict', '-1', '-f', 'yuv4mpegpipe', '-'
  ]
}

export function encoderArgs (settings: X264Settings, o: { frameRate: Rational, frameCount: number, threads?: number, outputPath: string }): string[] {
  return [
    ...settings.args,
    ...(o.threads !== undefined ? ['--threads', String(o.threads)] : []),
    // Chunks are concatenated, so every one must carry the same self-contained headers.
    '--stitchable',
    '--fps', `${o.frameRate.num}/${o.frameRate.den}`,
    '--frames', String(o.frameCount),
    '--demuxer', 'y4m',
    '--output', o.outputPath,
    '-'
  ]
}

/**
 * Encodes one chunk: ffmpeg decodes the segment and selects exactly the chunk's frames, x264
 * encodes them from a y4m pipe. The result starts with an IDR frame and is raw H.264 (Annex B),
 * ready to be concatenated. On failure or abort both processes are stopped and the output removed.
 */
export async function encodeChunk (o: EncodeChunkOptions): Promise<EncodedChunk> {
  const settings = typeof o.settings === 'string' ? parseX264Settings(o.settings) : parseX264Settings(o.settings.raw)
  if (o.signal?.aborted === true) throw new AbortError(`encoding ${o.segmentPath}: aborted`)
  if (o.segmentFromPeer === true) {
    const declared = o.width !== undefined && o.height !== undefined ? { width: o.width, height: o.height, ...(o.segmentLimits !== undefined ? { limits: o.segmentLimits } : {}) } : undefined
    await inspectSegment(o.segmentPath, o.signal !== undefined ? { signal: o.signal } : {}, declared)
  }
  await mkdir(dirname(o.outputPath), { recursive: true })
  const started = Date.now()
  const decoder = startPipeSource('ffmpeg', decoderArgs(o), `decoding ${o.segmentPath}`, o.signal, o.memoryLimitBytes)
  // Failures are read from the settled promises below; this only keeps an early one from going unhandled.
  decoder.done.catch(() => {})
  const encoder = spawnTool('x264', encoderArgs(settings, { ...o, outputPath: o.outputPath }), {
    cancelSignal: o.signal, stdin: decoder.stdout, forceKillAfterDelay: 2000,
    ...(o.memoryLimitBytes !== undefined ? { memoryLimitBytes: o.memoryLimitBytes } : {})
  })
  lowerPriority(decoder.pid, o.niceness)
  lowerPriority(encoder.pid, o.niceness)
  // x264 holds its own end now. Without ours, a decoder whose x264 died gets EPIPE and stops
  // rather than blocking on a pipe nobody reads.
  decoder.release()
  // Abort means stop now: SIGKILL both, rather than SIGTERM and a grace period.
  const killBoth = (): void => { decoder.kill(); encoder.kill('SIGKILL') }
  o.signal?.addEventListener('abort', killBoth, { once: true })
  let lastReport = 0
  encoder.stderr?.on('data', (data: Buffer) => {
    if (o.onProgress === undefined) return
    let match: RegExpExecArray | null
    let latest: EncodeProgress | undefined
    PROGRESS_RE.lastIndex = 0
    while ((match = PROGRESS_RE.exec(data.toString())) !== null) {
      latest = { framesDone: Number(match[1]), frameCount: o.frameCount, fps: Number(match[2]) }
    }
    const now = Date.now()
    if (latest !== undefined && now - lastReport >= 200) { lastReport = now; o.onProgress(latest) }
  })
  // Once x264 has failed, the decoder is of no use.
  encoder.catch(() => { decoder.kill() })
  const [dec, enc] = await Promise.allSettled([decoder.done, encoder])
  o.signal?.removeEventListener('abort', killBoth)
  if (dec.status === 'rejected' || enc.status === 'rejected') {
    await rm(o.outputPath, { force: true })
    if (isAborted(o.signal)) throw new AbortError(`encoding ${o.segmentPath}: aborted`)
    // x264 may exit first (bad settings); the decoder then sees EPIPE, which is not the story to tell.
    const failure = enc.status === 'rejected' ? toToolError('x264', enc.reason, `encoding ${o.segmentPath}`) : (dec as PromiseRejectedResult).reason as Error
    // Either one running out under the limit: the decoder's own failure first (x264 then only saw its input end).
    if (o.memoryLimitBytes !== undefined) {
      const [tool, err] = dec.status === 'rejected' && ranOutOfMemory(dec.reason) ? ['ffmpeg', dec.reason] : ranOutOfMemory(failure) ? ['x264', failure] : []
      if (tool !== undefined) {
        throw new MemoryBudgetError(`${tool as string} ran out of this worker's memory budget of ${formatMemorySize(o.memoryLimitBytes)} an encode (${(err as Error).message.split('\n').slice(-1)[0] ?? ''})`, false, { cause: err })
      }
    }
    throw failure
  }
  // x264 reports what it wrote; a short count (a decoder that stopped early) is not a chunk.
  const encoded = /encoded (\d+) frames/.exec(enc.value.stderr)
  if (encoded === null || Number(encoded[1]) !== o.frameCount) {
    await rm(o.outputPath, { force: true })
    throw new VerificationError(`encoding ${o.segmentPath}: x264 encoded ${encoded?.[1] ?? 'an unknown number of'} frames, expected ${o.frameCount}`)
  }
  const sizeBytes = (await stat(o.outputPath)).size
  o.onProgress?.({ framesDone: o.frameCount, frameCount: o.frameCount, fps: o.frameCount / Math.max(0.001, (Date.now() - started) / 1000) })
  return { path: o.outputPath, sizeBytes, frameCount: o.frameCount, seconds: (Date.now() - started) / 1000 }
}
