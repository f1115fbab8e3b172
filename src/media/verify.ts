import { readFile } from 'node:fs/promises'
import { AbortError, refusedByTool, VerificationError } from './errors.js'
import { describeH264Structure, summarizeAnnexB } from './h264.js'
import { structureMismatches, type ReferenceStructure } from './structure.js'
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
   * Decode every frame (default). Off, only the bitstream is parsed, in this process (pictures,
   * IDR first, SPS and PPS, size from the SPS): for a chunk this machine's own x264 just wrote,
   * whose frame count x264 already reported.
   */
  decode?: boolean
  /**
   * What the job's own encoder writes (referenceStructure): a peer's result must match it in
   * profile, chroma format, bit depth, field coding and VUI, and use only x264's NAL and SEI types.
   */
  structure?: ReferenceStructure
}

const PROFILE_NAMES: Record<number, string> = { 66: 'Constrained Baseline', 77: 'Main', 88: 'Extended', 100: 'High', 110: 'High 10', 122: 'High 4:2:2', 244: 'High 4:4:4 Predictive' }
const CHROMA: Record<number, string> = { 0: 'gray', 1: 'yuv420p', 2: 'yuv422p', 3: 'yuv444p' }

/** The file itself is not what the chunk must be: the verdict that convicts whoever sent it. */
function wrongFile (path: string, what: string): VerificationError {
  return new VerificationError(`${path}: ${what}`, { file: path })
}

async function parseOnly (path: string, expect: VerifyExpectations, options: RunOptions): Promise<VerifiedChunk> {
  if (options.signal?.aborted === true) throw new AbortError(`verifying ${path}: aborted`)
  const data = await readFile(path)
  const s = summarizeAnnexB(data)
  if (s.sps === undefined || !s.hasPps) throw wrongFile(path, `not an H.264 stream with its parameter sets (no ${s.sps === undefined ? 'SPS' : 'PPS'} found)`)
  if (s.pictures !== expect.frameCount) throw wrongFile(path, `holds ${s.pictures} frames, expected ${expect.frameCount}`)
  if (!s.startsWithIdr) throw wrongFile(path, `does not start with a keyframe`)
  const { width, height, profileIdc, chromaFormatIdc, bitDepth } = s.sps
  if ((expect.width !== undefined && width !== expect.width) || (expect.height !== undefined && height !== expect.height)) {
    throw wrongFile(path, `is ${width}x${height}, expected ${expect.width}x${expect.height}`)
  }
  if (expect.structure !== undefined) {
    const problems = structureMismatches(describeH264Structure(data), expect.structure, s.pictures)
    if (problems.length > 0) throw wrongFile(path, `is not what this job's encoder writes: ${problems.slice(0, 4).join('; ')}`)
  }
  const chroma = CHROMA[chromaFormatIdc] ?? 'unknown'
  return { frameCount: s.pictures, codec: 'h264', profile: PROFILE_NAMES[profileIdc] ?? `profile ${profileIdc}`, pixFmt: bitDepth > 8 ? `${chroma}${bitDepth}le` : chroma, width, height }
}

/**
 * Checks an encoded chunk before it may count: it must decode without errors, be H.264, start
 * with a keyframe and hold exactly the range's frame count (and the source's size when given).
 * Results come from other machines, so nothing here trusts what the file claims about itself.
 */
export async function verifyEncodedChunk (path: string, expect: VerifyExpectations, options: RunOptions = {}): Promise<VerifiedChunk> {
  if (expect.decode === false) return await parseOnly(path, expect, options)
  let parsed: { streams?: Array<{ codec_name?: string, profile?: string, pix_fmt?: string, width?: number, height?: number, nb_read_frames?: string }>, packets?: Array<{ flags?: string }> }
  let stderr: string
  try {
    const result = await runTool('ffprobe', [
      // Deblocking cannot fail, so skipping it (a fifth of the decode) still parses and
      // reconstructs every slice: any bitstream error is still reported.
      '-v', 'error', '-skip_loop_filter', 'all',
      // A peer's bytes: raw H.264 forced, the file protocol only (peer-bytes.ts).
      '-f', 'h264', '-protocol_whitelist', 'file', '-count_frames', '-select_streams', 'v:0',
      '-show_entries', 'stream=codec_name,profile,pix_fmt,width,height,nb_read_frames',
      '-show_entries', 'packet=flags',
      '-of', 'json', `file:${path}`
    ], `verifying ${path}`, options)
    parsed = JSON.parse(result.stdout)
    stderr = result.stderr
  } catch (err) {
    throw refusedByTool(err, path, `${path}: not a decodable H.264 stream`)
  }
  const stream = parsed.streams?.[0]
  if (stream === undefined || stream.codec_name !== 'h264') {
    throw wrongFile(path, `expected an H.264 video stream, found ${stream?.codec_name ?? 'none'}`)
  }
  if (stderr.trim() !== '') {
    throw wrongFile(path, `decoding reported errors: ${stderr.trim().split('\n').slice(0, 3).join('; ')}`)
  }
  const frames = Number(stream.nb_read_frames ?? '0')
  if (frames !== expect.frameCount) {
    throw wrongFile(path, `holds ${frames} frames, expected ${expect.frameCount}`)
  }
  const firstFlags = parsed.packets?.[0]?.flags ?? ''
  if (!firstFlags.includes('K')) throw wrongFile(path, `does not start with a keyframe`)
  if ((expect.width !== undefined && stream.width !== expect.width) || (expect.height !== undefined && stream.height !== expect.height)) {
    throw wrongFile(path, `is ${stream.width}x${stream.height}, expected ${expect.width}x${expect.height}`)
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
