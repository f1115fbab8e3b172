import { VerificationError } from './errors.js'
import { runTool, type RunOptions } from './tools.js'

export interface VerifiedChunk {
  frameCount: number
  codec: string
  profile: string
  pixFmt: string
  width: number
  height: number
}

export interface VerifyExpectations {
  frameCount: number
  width?: number
  height?: number
  /**
   * Decode every frame (default). Off, only the bitstream is parsed (access units, keyframe, SPS):
   * for a chunk this machine's own x264 just wrote, whose frame count x264 already reported.
   */
  decode?: boolean
}

/**
 * Checks an encoded chunk before it may count: it must decode without errors, be H.264, start
 * with a keyframe and hold exactly the range's frame count (and the source's size when given).
 * Results come from other machines, so nothing here trusts what the file claims about itself.
 */
export async function verifyEncodedChunk (path: string, expect: VerifyExpectations, options: RunOptions = {}): Promise<VerifiedChunk> {
  let parsed: { streams?: Array<{ codec_name?: string, profile?: string, pix_fmt?: string, width?: number, height?: number, nb_read_frames?: string, nb_read_packets?: string }>, packets?: Array<{ flags?: string }> }
  let stderr: string
  try {
    const decode = expect.decode !== false
    const result = await runTool('ffprobe', [
      // Deblocking cannot fail, so skipping it (a fifth of the decode) still parses and
      // reconstructs every slice: any bitstream error is still reported.
      '-v', 'error', ...(decode ? ['-skip_loop_filter', 'all'] : []),
      '-f', 'h264', decode ? '-count_frames' : '-count_packets', '-select_streams', 'v:0',
      '-show_entries', `stream=codec_name,profile,pix_fmt,width,height,${decode ? 'nb_read_frames' : 'nb_read_packets'}`,
      '-show_entries', 'packet=flags',
      '-of', 'json', '--', path
    ], `verifying ${path}`, options)
    parsed = JSON.parse(result.stdout)
    stderr = result.stderr
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err
    throw new VerificationError(`${path}: not a decodable H.264 stream (${(err as Error).message.split('\n').slice(-1)[0] ?? ''})`)
  }
  const stream = parsed.streams?.[0]
  if (stream === undefined || stream.codec_name !== 'h264') {
    throw new VerificationError(`${path}: expected an H.264 video stream, found ${stream?.codec_name ?? 'none'}`)
  }
  if (stderr.trim() !== '') {
    throw new VerificationError(`${path}: decoding reported errors: ${stderr.trim().split('\n').slice(0, 3).join('; ')}`)
  }
  const frames = Number(stream.nb_read_frames ?? stream.nb_read_packets ?? '0')
  if (frames !== expect.frameCount) {
    throw new VerificationError(`${path}: holds ${frames} frames, expected ${expect.frameCount}`)
  }
  const firstFlags = parsed.packets?.[0]?.flags ?? ''
  if (!firstFlags.includes('K')) throw new VerificationError(`${path}: does not start with a keyframe`)
  if ((expect.width !== undefined && stream.width !== expect.width) || (expect.height !== undefined && stream.height !== expect.height)) {
    throw new VerificationError(`${path}: is ${stream.width}x${stream.height}, expected ${expect.width}x${expect.height}`)
  }
  return {
    frameCount: frames,
    codec: stream.codec_name,
    profile: stream.profile ?? 'unknown',
    pixFmt: stream.pix_fmt ?? 'unknown',
    width: stream.width ?? 0,
    height: stream.height ?? 0
  }
}
