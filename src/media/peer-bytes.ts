import { open } from 'node:fs/promises'
import { refusedByTool, ToolError, VerificationError } from './errors.js'
import { readMatroskaTracks, UnsupportedMatroskaError } from './matroska.js'
import type { ChunkBitstream } from './encoders/index.js'
import { COPY_CUT_CODECS } from './prepare.js'
import { runTool, type RunOptions } from './tools.js'

/**
 * The video codecs a segment from a peer may carry: what a real originator sends. It stream-copies
 * h264, hevc, vp8, vp9 and av1 sources (COPY_CUT_CODECS) and decodes everything else (MPEG-2,
 * MPEG-4 Part 2, MJPEG, DV…) into lossless H.264. Anything else (gif, png, qtrle, msvideo1: any
 * of ffmpeg's ~200 decoders) is a stranger's bytes reaching a decoder no honest peer needs.
 */
export const PEER_SEGMENT_CODECS: ReadonlySet<string> = COPY_CUT_CODECS

/** ffmpeg's software decoders for PEER_SEGMENT_CODECS (AV1 has three), for -codec_whitelist. */
const PEER_SEGMENT_DECODERS = 'h264,hevc,vp8,vp9,libdav1d,libaom-av1,av1'

/** The decoders a result in each chunk bitstream may reach: its codec's, whatever its headers say. */
const RESULT_DECODERS: Record<ChunkBitstream, string> = { h264: 'h264', hevc: 'hevc', ivf: 'libdav1d,libaom-av1,av1' }

/**
 * What a worker lets a peer's segment ask of it, checked on the header before any byte and on the
 * file before any decode. The defaults fit 8K (7680x4320, 8192x4320 DCI, either way up) and
 * 3,000 frames (50 s at 60 fps; the plan's chunks are a few GOPs); the wire schema alone let a
 * few KB ask for 16384x16384 pictures.
 */
export interface SegmentLimits {
  /** Largest width or height. */
  maxSide: number
  /** Most pixels in one picture. */
  maxFramePixels: number
  /** Most frames in one chunk. */
  maxChunkFrames: number
}
export const DEFAULT_SEGMENT_LIMITS: SegmentLimits = { maxSide: 8192, maxFramePixels: 8192 * 4320, maxChunkFrames: 3000 }

/**
 * The most pixels a decoder may allocate for a picture of this declared size: decoders pad the
 * coded size to their block and alignment (160x90 H.264 allocates 192x90), so one alignment step
 * of room each way. A stream whose own headers ask for more than its container said fails in the
 * decoder's buffer allocation (-max_pixels), before it takes the memory.
 */
export function decoderMaxPixels (width: number, height: number): number {
  const pad = (n: number): number => Math.ceil(n / 64) * 64 + 64
  return pad(width) * pad(height)
}

/**
 * Files that came from another peer are never handed to ffmpeg or ffprobe to guess at: ffmpeg
 * picks a demuxer from the content, and a DASH or HLS manifest or a concat list names other files
 * (`file:///home/…`), which it would then read. Every run on peer bytes names the format and allows
 * the file protocol only, and the path carries an explicit `file:` so it is never read as a URL.
 */
export function peerInputArgs (format: 'matroska' | ChunkBitstream, path: string, size?: { width: number, height: number }): string[] {
  // The decoders a segment or result may reach, whatever its headers say (see PEER_SEGMENT_CODECS).
  const decoders = format === 'matroska' ? PEER_SEGMENT_DECODERS : RESULT_DECODERS[format]
  const maxPixels = size !== undefined ? ['-max_pixels', String(decoderMaxPixels(size.width, size.height))] : []
  return ['-f', format, '-protocol_whitelist', 'file', '-codec_whitelist', decoders, ...maxPixels, '-i', `file:${path}`]
}

/** The four bytes every Matroska (EBML) file starts with. */
const EBML_MAGIC = Buffer.from([0x1a, 0x45, 0xdf, 0xa3])

export interface SegmentShape {
  codec: string
  width: number
  height: number
}

/** ffmpeg's names for the Matroska codec ids a segment is likely to carry. */
const CODEC_NAMES: Record<string, string> = {
  'V_MPEG4/ISO/AVC': 'h264', 'V_MPEGH/ISO/HEVC': 'hevc', V_AV1: 'av1', V_VP9: 'vp9', V_VP8: 'vp8', V_MPEG2: 'mpeg2video', 'V_MPEG4/ISO/ASP': 'mpeg4'
}

/**
 * A segment laid out as a stream copy writes it, with one video track, read from its element
 * headers in-process: an ffprobe start cost 0.13 s of CPU and as much wall time on the worker's
 * core before every encode. Undefined when the file is anything else, for ffprobe to judge.
 */
async function plainVideoSegment (path: string): Promise<SegmentShape | undefined> {
  try {
    const tracks = await readMatroskaTracks(path)
    const [only] = tracks
    if (tracks.length !== 1 || only === undefined || only.type !== 1 || only.width <= 0 || only.height <= 0) return undefined
    return { codec: CODEC_NAMES[only.codecId] ?? only.codecId, width: only.width, height: only.height }
  } catch (err) {
    if (err instanceof UnsupportedMatroskaError) return undefined
    throw err
  }
}

/**
 * Checks a segment a peer sent before anything decodes it: a Matroska file holding exactly one
 * stream, a video stream (segments carry the chunk's video and nothing else), read with the
 * Matroska demuxer forced and no protocol but `file`. Says what it found when it is not that.
 * The plain layout is recognised in-process (plainVideoSegment); only other files cost an ffprobe.
 */
export async function inspectSegment (path: string, options: RunOptions = {}, declared?: { width: number, height: number, limits?: SegmentLimits }): Promise<SegmentShape> {
  const shape = await segmentShape(path, options)
  const refuse = (why: string): never => { throw new VerificationError(`segment ${path}: ${why}; refusing to decode it`, { file: path }) }
  if (!PEER_SEGMENT_CODECS.has(shape.codec)) refuse(`its video is ${shape.codec}, not a codec an originator sends (${[...PEER_SEGMENT_CODECS].join(', ')})`)
  if (declared !== undefined) {
    const limits = declared.limits ?? DEFAULT_SEGMENT_LIMITS
    if (shape.width !== declared.width || shape.height !== declared.height) refuse(`its video is ${shape.width}x${shape.height}, not the ${declared.width}x${declared.height} its originator declared`)
    if (shape.width > limits.maxSide || shape.height > limits.maxSide || shape.width * shape.height > limits.maxFramePixels) refuse(`its ${shape.width}x${shape.height} pictures are over this worker's limit (${limits.maxSide} a side, ${limits.maxFramePixels} pixels)`)
  }
  return shape
}

/** The one video stream of a Matroska file from a peer (see inspectSegment). */
async function segmentShape (path: string, options: RunOptions): Promise<SegmentShape> {
  const head = Buffer.alloc(4)
  const file = await open(path, 'r')
  try { await file.read(head, 0, 4, 0) } finally { await file.close() }
  if (!head.equals(EBML_MAGIC)) {
    throw new VerificationError(`segment ${path}: not a Matroska file (it starts with ${JSON.stringify(head.toString('latin1').replace(/[^\x20-\x7e]/g, '.'))}); refusing to decode it`, { file: path })
  }
  const plain = await plainVideoSegment(path)
  if (plain !== undefined) return plain
  let streams: Array<{ codec_type?: string, codec_name?: string, width?: number, height?: number }>
  try {
    const r = await runTool('ffprobe', ['-v', 'error', ...peerInputArgs('matroska', path), '-show_entries', 'stream=codec_type,codec_name,width,height', '-of', 'json'], `inspecting segment ${path}`, options)
    streams = (JSON.parse(r.stdout) as { streams?: typeof streams }).streams ?? []
  } catch (err) {
    // ffprobe opens a decoder per stream to fill in what the container leaves out; the allowlist
    // (peerInputArgs) stops it at the first stream of another codec, before any decode.
    const refused = /Codec \(([\w-]+)\) not on whitelist/.exec(err instanceof ToolError ? err.stderr : '')
    if (refused !== null) throw new VerificationError(`segment ${path}: expected exactly one video stream of a codec an originator sends (${[...PEER_SEGMENT_CODECS].join(', ')}), found one of ${refused[1] ?? '?'}; refusing to decode it`, { file: path })
    throw refusedByTool(err, path, `segment ${path}: not a readable Matroska file`)
  }
  const [only] = streams
  if (streams.length !== 1 || only === undefined || only.codec_type !== 'video') {
    throw new VerificationError(`segment ${path}: expected exactly one video stream, found ${streams.length === 0 ? 'none' : streams.map(s => s.codec_type ?? '?').join(', ')}`, { file: path })
  }
  return { codec: only.codec_name ?? 'unknown', width: only.width ?? 0, height: only.height ?? 0 }
}
