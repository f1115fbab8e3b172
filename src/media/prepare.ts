import { mkdir, rename, rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import { lastLine, SourceError, ToolError } from './errors.js'
import { probeMedia, type MediaInfo, type ProbeOptions, type StreamInfo, type VideoFrame } from './probe.js'
import { runTool, type RunOptions } from './tools.js'

/**
 * Codecs whose packets can be cut by stream copy and still decode exactly: each carries its own
 * timestamps into Matroska, and the plan checks that a cut starts where a decode can start.
 * Everything else (MPEG-1/2's open GOPs and untimestamped program streams, packed MPEG-4 Part 2,
 * all-intra MJPEG and DV, RealVideo that Matroska cannot hold, ...) is cut from its decode.
 */
export const COPY_CUT_CODECS = new Set(['h264', 'hevc', 'vp8', 'vp9', 'av1'])

/** A decoded source gets a keyframe every this many seconds: its cut points, when it is planned. */
export const DECODE_CUT_GOP_SECONDS = 2

export interface PrepareOptions extends RunOptions {
  /** Why the copy cut must not be used even for a copy-cut codec (a segment that did not decode cleanly). */
  forceDecode?: string
}

/**
 * Probes a source and decides how its video is cut. Sources whose packets name their frames
 * exactly are cut by stream copy (no loss, no cost). The rest are described by a decode: the frames
 * and their times are what ffmpeg shows, which is what a viewer sees, and segments are made from
 * that same decode (splitByDecoding), so no cut ever depends on the source's GOP structure.
 */
export async function prepareSource (path: string, options: PrepareOptions = {}): Promise<MediaInfo> {
  const probeOptions: ProbeOptions = { lenient: true, ...(options.signal !== undefined ? { signal: options.signal } : {}) }
  const info = await probeMedia(path, probeOptions)
  const reason = options.forceDecode ?? decodeReason(info)
  if (reason === undefined) {
    info.video.cut = { by: 'copy' }
    return info
  }
  const decoded = await decodedFrameTimes(info, options)
  const rate = info.video.frameRate.num / info.video.frameRate.den
  const gop = Math.max(1, Math.round(DECODE_CUT_GOP_SECONDS * rate))
  const { times, retimed, filled } = cleanTimes(decoded, rate)
  const frames: VideoFrame[] = times.map((time, i) => ({ decodeIndex: i, displayIndex: i, pts: i, time, key: i % gop === 0 }))
  delete info.video.timestampIssue
  info.video = {
    ...info.video,
    frames,
    decodeOrder: frames,
    frameCount: frames.length,
    cut: { by: 'decode', reason: filled !== undefined ? `${reason}; ${filled}` : reason, ...(retimed !== undefined ? { retimed } : {}) }
  }
  return info
}

function decodeReason (info: MediaInfo): string | undefined {
  const v = info.video
  if (v.timestampIssue !== undefined) return `its ${v.codec} packets cannot name the frames (${v.timestampIssue})`
  if (!COPY_CUT_CODECS.has(v.codec)) return `${v.codec} is cut from its decode, not by stream copy`
  return undefined
}

/** Every frame ffmpeg's decoder shows, in display order, with the time it shows it at (NaN where it has none). */
async function decodedFrameTimes (info: MediaInfo, options: RunOptions): Promise<number[]> {
  const { stdout } = await runTool('ffprobe', ['-v', 'error', '-select_streams', String(info.video.streamIndex),
    '-show_entries', 'frame=best_effort_timestamp_time', '-of', 'compact=p=1:nk=0', '--', info.path], `decoding the video of ${info.path}`, options)
  const times: number[] = []
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('frame|')) continue
    const m = /best_effort_timestamp_time=([^|]*)/.exec(line)
    times.push(m === null ? Number.NaN : Number(m[1]))
  }
  if (times.length === 0) throw new SourceError(`${info.path}: its video decodes to no frames`)
  return times
}

/**
 * Times a decoder left out are filled from the frame before at the nominal rate; times that do
 * not rise from frame to frame (a packed MPEG-4 stream whose packets share timestamps) cannot be
 * a presentation: the frames are then shown at the nominal rate from the first, and that is said.
 */
export function cleanTimes (raw: number[], rate: number): { times: number[], retimed?: string, filled?: string } {
  const step = rate > 0 && Number.isFinite(rate) ? 1 / rate : 0.04
  const times: number[] = []
  let filled = 0
  for (const t of raw) {
    if (Number.isFinite(t)) { times.push(t); continue }
    filled++
    times.push(times.length === 0 ? 0 : (times[times.length - 1] as number) + step)
  }
  const rising = times.every((t, i) => i === 0 || t > (times[i - 1] as number))
  if (rising) return { times, ...(filled > 0 ? { filled: `${filled} frame${filled === 1 ? '' : 's'} without a timestamp placed one frame after the one before` } : {}) }
  const first = times[0] as number
  let falling = 0
  for (let i = 1; i < times.length; i++) if ((times[i] as number) <= (times[i - 1] as number)) falling++
  return {
    times: times.map((_, i) => first + i * step),
    retimed: `the source's frame times do not rise (${falling} of ${times.length} frames at or before the one before): every frame placed at the nominal ${rate.toFixed(3)} fps`
  }
}

/** Audio, subtitle and attachment streams a merge carries: those with packets (attachments have none). */
export function carriedStreams (info: MediaInfo): StreamInfo[] {
  return info.streams.filter(s => s.index !== info.video.streamIndex && !s.attachedPic &&
    ((s.type === 'audio' || s.type === 'subtitle') ? s.packetSpan !== undefined : s.type === 'attachment'))
}

/** Declared audio and subtitle streams without a single packet: there is nothing of them to carry. */
export function emptyStreams (info: MediaInfo): StreamInfo[] {
  return info.streams.filter(s => s.index !== info.video.streamIndex && !s.attachedPic && (s.type === 'audio' || s.type === 'subtitle') && s.packetSpan === undefined)
}

/**
 * Whether the merge reads the source's other tracks through an ffmpeg remux: mkvmerge reads
 * Matroska as well as anything, but not raw DV or ASF, reads MP2 in MOV as A_QUICKTIME, misses a
 * TS's audio whose PMT comes mid-stream and ignores edit lists that trim audio; ffmpeg reads them
 * all, and what it keeps is what a plain `ffmpeg -map 0 -c copy` keeps.
 */
export function tracksNeedRemux (info: MediaInfo): boolean {
  return !/matroska|webm/.test(info.formatName) || emptyStreams(info).length > 0
}

/**
 * The file the merge takes the source's other tracks from: the source itself when mkvmerge reads
 * it faithfully, else an ffmpeg remux of them (written to `remuxPath`); undefined when the source
 * has nothing but its video.
 */
export async function otherTracksInput (info: MediaInfo, remuxPath: string, options: RunOptions = {}): Promise<string | undefined> {
  if (!tracksNeedRemux(info)) return info.path
  return await remuxOtherTracks(info, remuxPath, options)
}

/**
 * Copies every audio, subtitle and attachment stream of the source (with chapters and tags) into
 * a Matroska file that mkvmerge reads as well as the source's own container. Written under a
 * temporary name and renamed. Throws SourceError when ffmpeg cannot: the message names the track.
 */
export async function remuxOtherTracks (info: MediaInfo, outPath: string, options: RunOptions = {}): Promise<string | undefined> {
  const streams = carriedStreams(info)
  if (streams.length === 0) return undefined
  await mkdir(dirname(outPath), { recursive: true })
  const tmp = `${outPath}.part`
  const args = ['-v', 'error', '-nostdin', '-y', '-i', `file:${info.path}`, '-map_chapters', '0']
  for (const s of streams) args.push('-map', `0:${s.index}`)
  args.push('-c', 'copy', '-f', 'matroska', tmp)
  try {
    await runTool('ffmpeg', args, `copying the audio and subtitles of ${info.path}`, options)
  } catch (err) {
    await rm(tmp, { force: true })
    if (err instanceof ToolError && !err.missing && options.signal?.aborted !== true) {
      throw new SourceError(`${info.path}: ffmpeg cannot copy its audio and subtitle tracks into Matroska (${lastLine(err)}); the output could not keep them. Convert the tracks named there (e.g. ffmpeg -i SOURCE -map 0 -c:v copy -c:a flac -c:s ass fixed.mkv) and add fixed.mkv`)
    }
    throw err
  }
  await rename(tmp, outPath)
  return outPath
}
