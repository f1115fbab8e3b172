import { open } from 'node:fs/promises'
import { VerificationError } from './errors.js'
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

/**
 * Checks a segment a peer sent before anything decodes it: a Matroska file holding exactly one
 * stream, a video stream (segments carry the chunk's video and nothing else), read with the
 * Matroska demuxer forced and no protocol but `file`. Says what it found when it is not that.
 */
export async function inspectSegment (path: string, options: RunOptions = {}): Promise<SegmentShape> {
  const head = Buffer.alloc(4)
  const file = await open(path, 'r')
  try { await file.read(head, 0, 4, 0) } finally { await file.close() }
  if (!head.equals(EBML_MAGIC)) {
    throw new VerificationError(`segment ${path}: not a Matroska file (it starts with ${JSON.stringify(head.toString('latin1').replace(/[^\x20-\x7e]/g, '.'))}); refusing to decode it`)
  }
  let streams: Array<{ codec_type?: string, codec_name?: string, width?: number, height?: number }>
  try {
    const r = await runTool('ffprobe', ['-v', 'error', ...peerInputArgs('matroska', path), '-show_entries', 'stream=codec_type,codec_name,width,height', '-of', 'json'], `inspecting segment ${path}`, options)
    streams = (JSON.parse(r.stdout) as { streams?: typeof streams }).streams ?? []
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err
    throw new VerificationError(`segment ${path}: not a readable Matroska file (${(err as Error).message.split('\n').slice(-1)[0] ?? ''})`)
  }
  const [only] = streams
  if (streams.length !== 1 || only === undefined || only.codec_type !== 'video') {
    throw new VerificationError(`segment ${path}: expected exactly one video stream, found ${streams.length === 0 ? 'none' : streams.map(s => s.codec_type ?? '?').join(', ')}`)
  }
  return { codec: only.codec_name ?? 'unknown', width: only.width ?? 0, height: only.height ?? 0 }
}
