import { open } from 'node:fs/promises'
import { refusedByTool, VerificationError } from './errors.js'
import { readMatroskaTracks, UnsupportedMatroskaError } from './matroska.js'
import { runTool, type RunOptions } from './tools.js'

/**
 * Files that came from another peer are never handed to ffmpeg or ffprobe to guess at: ffmpeg
 * picks a demuxer from the content, and a DASH or HLS manifest or a concat list names other files
 * (`file:///home/…`), which it would then read. Every run on peer bytes names the format and allows
 * the file protocol only, and the path carries an explicit `file:` so it is never read as a URL.
 */
export function peerInputArgs (format: 'matroska' | 'h264', path: string): string[] {
  return ['-f', format, '-protocol_whitelist', 'file', '-i', `file:${path}`]
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
export async function inspectSegment (path: string, options: RunOptions = {}): Promise<SegmentShape> {
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
    throw refusedByTool(err, path, `segment ${path}: not a readable Matroska file`)
  }
  const [only] = streams
  if (streams.length !== 1 || only === undefined || only.codec_type !== 'video') {
    throw new VerificationError(`segment ${path}: expected exactly one video stream, found ${streams.length === 0 ? 'none' : streams.map(s => s.codec_type ?? '?').join(', ')}`, { file: path })
  }
  return { codec: only.codec_name ?? 'unknown', width: only.width ?? 0, height: only.height ?? 0 }
}
