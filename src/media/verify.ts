import { readFile } from 'node:fs/promises'
import { AbortError, refusedByTool, VerificationError } from './errors.js'
import { codecName, describeStructure, summarizeChunk } from './bitstream.js'
import { DEFAULT_ENCODER, encoderFor, type Encoder, type EncoderId } from './encoders/index.js'
import { peerInputArgs } from './peer-bytes.js'
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
   * IDR or key frame first, parameter sets or sequence header, size from them): for a chunk this
   * machine's own encoder just wrote, whose frame count the encoder already reported.
   */
  decode?: boolean
  /**
   * What the job's own encoder writes (referenceStructure): a peer's result must match it in
   * profile, chroma format, bit depth, field coding and VUI, and use only its encoder's NAL and SEI types.
   */
  structure?: ReferenceStructure
  /**
   * The job's encoder, which says what the chunk must be (its bitstream and codec): by default the
   * structure's, else x264's. A result in any other format is refused.
   */
  encoder?: EncoderId
}

const CHROMA: Record<number, string> = { 0: 'gray', 1: 'yuv420p', 2: 'yuv422p', 3: 'yuv444p' }

/** The file itself is not what the chunk must be: the verdict that convicts whoever sent it. */
function wrongFile (path: string, what: string): VerificationError {
  return new VerificationError(`${path}: ${what}`, { file: path })
}

/** The encoder whose output the chunk must be. */
function expectedEncoder (expect: VerifyExpectations): Encoder {
  return encoderFor(expect.encoder ?? expect.structure?.encoder ?? DEFAULT_ENCODER)
}

async function parseOnly (path: string, expect: VerifyExpectations, options: RunOptions): Promise<VerifiedChunk> {
  if (options.signal?.aborted === true) throw new AbortError(`verifying ${path}: aborted`)
  const { codec } = expectedEncoder(expect)
  const data = await readFile(path)
  const s = summarizeChunk(codec, data)
  if (s.invalid !== undefined) throw wrongFile(path, `not an ${codecName(codec)} stream a chunk can be: ${s.invalid}`)
  if (s.missing !== undefined || s.format === undefined) throw wrongFile(path, `not an ${codecName(codec)} stream with its parameter sets (no ${s.missing ?? 'SPS'} found)`)
  if (s.pictures !== expect.frameCount) throw wrongFile(path, `holds ${s.pictures} frames, expected ${expect.frameCount}`)
  if (!s.startsWithKeyframe) throw wrongFile(path, `does not start with a keyframe`)
  const { width, height, profile, chromaFormatIdc, bitDepth } = s.format
  if ((expect.width !== undefined && width !== expect.width) || (expect.height !== undefined && height !== expect.height)) {
    throw wrongFile(path, `is ${width}x${height}, expected ${expect.width}x${expect.height}`)
  }
  if (expect.structure !== undefined) {
    const problems = structureMismatches(describeStructure(codec, data), expect.structure, s.pictures)
    if (problems.length > 0) throw wrongFile(path, `is not what this job's encoder writes: ${problems.slice(0, 4).join('; ')}`)
  }
  const chroma = CHROMA[chromaFormatIdc] ?? 'unknown'
  return { frameCount: s.pictures, codec, profile, pixFmt: bitDepth > 8 ? `${chroma}${bitDepth}le` : chroma, width, height }
}

/**
 * Checks an encoded chunk before it may count: it must decode without errors, be in its encoder's
 * codec (x264: H.264, x265: HEVC, SVT-AV1 and aomenc: AV1 in IVF), start with a keyframe and hold exactly the range's frame count (and the source's size when given).
 * Results come from other machines, so nothing here trusts what the file claims about itself.
 */
export async function verifyEncodedChunk (path: string, expect: VerifyExpectations, options: RunOptions = {}): Promise<VerifiedChunk> {
  if (expect.decode === false) return await parseOnly(path, expect, options)
  const { bitstream, codec } = expectedEncoder(expect)
  let parsed: { streams?: Array<{ codec_name?: string, profile?: string, pix_fmt?: string, width?: number, height?: number, nb_read_frames?: string }>, packets?: Array<{ flags?: string }> }
  let stderr: string
  try {
    const result = await runTool('ffprobe', [
      // Deblocking cannot fail, so skipping it (a fifth of the decode) still parses and
      // reconstructs every slice: any bitstream error is still reported.
      '-v', 'error', '-skip_loop_filter', 'all',
      // A peer's bytes: the encoder's raw bitstream forced, its decoder and the file protocol only (peer-bytes.ts).
      ...peerInputArgs(bitstream, path), '-count_frames', '-select_streams', 'v:0',
      '-show_entries', 'stream=codec_name,profile,pix_fmt,width,height,nb_read_frames',
      '-show_entries', 'packet=flags',
      '-of', 'json'
    ], `verifying ${path}`, options)
    parsed = JSON.parse(result.stdout)
    stderr = result.stderr
  } catch (err) {
    throw refusedByTool(err, path, `${path}: not a decodable ${codecName(codec)} stream`)
  }
  const stream = parsed.streams?.[0]
  if (stream === undefined || stream.codec_name !== codec) {
    throw wrongFile(path, `expected an ${codecName(codec)} video stream, found ${stream?.codec_name ?? 'none'}`)
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
