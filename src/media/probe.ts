import { stat } from 'node:fs/promises'
import { lastLine, SourceError, ToolError } from './errors.js'
import { carriesA53Captions } from './h264.js'
import { runTool, runToolBytes, type RunOptions } from './tools.js'

export interface Rational { num: number, den: number }

export interface StreamInfo {
  index: number
  type: 'video' | 'audio' | 'subtitle' | 'attachment' | 'data' | string
  codec: string
  profile?: string
  language?: string
  title?: string
  default: boolean
  forced: boolean
  attachedPic: boolean
  width?: number
  height?: number
  pixFmt?: string
  channels?: number
  sampleRate?: number
  durationSec?: number
  tags: Record<string, string>
  /** ffprobe's estimate of where the stream starts (seconds); absent when it has none. */
  startTime?: number
  /** The stream's earliest played packet (discarded pre-roll and AAC priming skipped), seconds. */
  firstPlayedTime?: number
  /** Every packet's extent, discarded ones included: first timestamp, end of the last packet, longest packet (seconds). */
  packetSpan?: PacketSpan
}

export interface PacketSpan { first: number, end: number, longest: number }

/** One video packet; `pts` is in the stream's time base, `time` in seconds. */
export interface VideoFrame {
  /** Position in decode (file) order. */
  decodeIndex: number
  /** Position in display order. */
  displayIndex: number
  pts: number
  time: number
  key: boolean
}

export interface VideoInfo {
  streamIndex: number
  codec: string
  profile?: string
  width: number
  height: number
  pixFmt: string
  bitDepth: number
  timeBase: Rational
  /** Average frame rate; for VFR sources only a nominal figure for x264's rate control. */
  frameRate: Rational
  frameCount: number
  /** Frames in display order (sorted by pts). */
  frames: VideoFrame[]
  /** The same frames in decode order. */
  decodeOrder: VideoFrame[]
  language?: string
  title?: string
  default: boolean
  forced: boolean
  /** The colour description and sample aspect ratio as ffprobe names them; absent when unknown. */
  colour: VideoColour
  /** HDR10 static metadata, read only where the transfer is PQ or HLG; absent when the source carries none. */
  hdr?: HdrMetadata
  /** CEA-608/708 captions ride inside the video stream (H.264 SEI). */
  closedCaptions: boolean
  /**
   * Why the packets' timestamps cannot name the frames (some missing, some shared), found by a
   * lenient probe; prepareSource then takes the frames from a decode instead.
   */
  timestampIssue?: string
  /**
   * How segments are made: a stream copy of the source's packets, or (prepareSource) a lossless
   * re-encode of its decoded frames, for codecs and files whose packets cannot be cut exactly.
   */
  cut?: VideoCut
}

export type VideoCut = { by: 'copy' } | {
  by: 'decode'
  reason: string
  /** Set when the source's frame times could not be kept (they do not rise): what was done instead. */
  retimed?: string
}

export interface VideoColour {
  range?: string
  primaries?: string
  transfer?: string
  matrix?: string
  chromaLocation?: string
  /** Sample aspect ratio as `num:den`, only when it is not square (1:1) or undefined (0:1). */
  sar?: string
}

/** HDR10 static metadata, in the form x264's and x265's options take it. */
export interface HdrMetadata {
  /**
   * SMPTE ST 2086 mastering display: `G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)`, chromaticities in
   * units of 0.00002, luminance in units of 0.0001 cd/m².
   */
  masteringDisplay?: string
  /** Content light level: `MaxCLL,MaxFALL` in cd/m². */
  contentLight?: string
}

/** ffprobe's side data (a stream's or a frame's): the two HDR10 kinds, with their fields as ffprobe prints them. */
interface FfprobeSideData {
  side_data_type?: string
  [field: string]: unknown
}

/** A rational ffprobe prints as "35400/50000" (or a plain number), in the given units. */
function inUnits (v: unknown, unit: number): number | undefined {
  const m = /^(\d+)(?:\/(\d+))?$/.exec(String(v ?? ''))
  if (m === null || Number(m[2] ?? 1) === 0) return undefined
  return Math.round(Number(m[1]) / Number(m[2] ?? 1) * unit)
}

/** The HDR10 metadata in side data, if any. */
export function hdrMetadataOf (sideData: FfprobeSideData[] | undefined): HdrMetadata {
  const hdr: HdrMetadata = {}
  for (const d of sideData ?? []) {
    if (d.side_data_type === 'Mastering display metadata') {
      const xy = (c: string): string | undefined => {
        const x = inUnits(d[`${c}_x`], 50000)
        const y = inUnits(d[`${c}_y`], 50000)
        return x === undefined || y === undefined ? undefined : `(${x},${y})`
      }
      const max = inUnits(d.max_luminance, 10000)
      const min = inUnits(d.min_luminance, 10000)
      const points = [xy('green'), xy('blue'), xy('red'), xy('white_point')]
      if (points.every(p => p !== undefined) && max !== undefined && min !== undefined && max > 0) {
        hdr.masteringDisplay = `G${points[0] as string}B${points[1] as string}R${points[2] as string}WP${points[3] as string}L(${max},${min})`
      }
    } else if (d.side_data_type === 'Content light level metadata') {
      const cll = Number(d.max_content)
      const fall = Number(d.max_average)
      if (Number.isInteger(cll) && Number.isInteger(fall) && (cll > 0 || fall > 0)) hdr.contentLight = `${cll},${fall}`
    }
  }
  return hdr
}

/** Transfers HDR10 metadata goes with (PQ; HLG sources sometimes carry it too). */
const HDR_TRANSFERS = new Set(['smpte2084', 'arib-std-b67'])

/**
 * The source's HDR10 metadata: from the container (Matroska and MP4 state it for the stream), else
 * from its first frame's side data (raw HEVC and TS carry it in SEI), which costs a decode of one
 * frame: only looked for where the transfer is PQ or HLG.
 */
async function readHdrMetadata (path: string, stream: FfprobeStream, options: RunOptions): Promise<HdrMetadata | undefined> {
  if (!HDR_TRANSFERS.has(stream.color_transfer ?? '')) return undefined
  const fromStream = hdrMetadataOf(stream.side_data_list)
  if (Object.keys(fromStream).length > 0) return fromStream
  const r = await runTool('ffprobe', ['-v', 'error', '-select_streams', String(stream.index), '-read_intervals', '%+#1', '-show_frames', '-of', 'json', '--', path],
    `reading the HDR metadata of ${path}`, options)
  const frames = (JSON.parse(r.stdout) as { frames?: Array<{ side_data_list?: FfprobeSideData[] }> }).frames ?? []
  const fromFrame = hdrMetadataOf(frames[0]?.side_data_list)
  return Object.keys(fromFrame).length > 0 ? fromFrame : undefined
}

/** ffprobe's names for unknown values: nothing to carry over. */
const UNKNOWN_COLOUR = new Set(['unknown', 'unspecified', 'reserved', 'N/A', ''])

export function videoColourOf (s: Pick<FfprobeStream, 'color_range' | 'color_primaries' | 'color_transfer' | 'color_space' | 'chroma_location' | 'sample_aspect_ratio'>): VideoColour {
  const known = (v: string | undefined): string | undefined => v === undefined || UNKNOWN_COLOUR.has(v) ? undefined : v
  const sar = /^(\d+):(\d+)$/.exec(s.sample_aspect_ratio ?? '')
  const colour: VideoColour = {}
  const set = (key: keyof VideoColour, v: string | undefined): void => { if (v !== undefined) colour[key] = v }
  set('range', known(s.color_range))
  set('primaries', known(s.color_primaries))
  set('transfer', known(s.color_transfer))
  set('matrix', known(s.color_space))
  set('chromaLocation', known(s.chroma_location))
  if (sar !== null && Number(sar[1]) > 0 && Number(sar[2]) > 0 && sar[1] !== sar[2]) colour.sar = `${sar[1]}:${sar[2]}`
  return colour
}

export interface MediaInfo {
  path: string
  sizeBytes: number
  formatName: string
  durationSec: number
  /** Set when the container promises more than the file holds: a truncated download or copy. */
  damage?: SourceDamage
  streams: StreamInfo[]
  chapterCount: number
  video: VideoInfo
}

function parseRational (s: unknown): Rational | undefined {
  if (typeof s !== 'string') return undefined
  const m = /^(\d+)\/(\d+)$/.exec(s)
  if (m === null) return undefined
  const num = Number(m[1]); const den = Number(m[2])
  return num > 0 && den > 0 ? { num, den } : undefined
}

export function bitDepthOf (pixFmt: string): number {
  const m = /p(9|10|12|14|16)(le|be)?$/.exec(pixFmt)
  return m === null ? 8 : Number(m[1])
}

interface FfprobeStream {
  index: number
  codec_type?: string
  codec_name?: string
  profile?: string
  width?: number
  height?: number
  pix_fmt?: string
  channels?: number
  sample_rate?: string
  time_base?: string
  avg_frame_rate?: string
  r_frame_rate?: string
  duration?: string
  start_time?: string
  tags?: Record<string, string>
  disposition?: Record<string, number>
  color_range?: string
  color_primaries?: string
  color_transfer?: string
  color_space?: string
  chroma_location?: string
  sample_aspect_ratio?: string
  closed_captions?: number
  side_data_list?: FfprobeSideData[]
}

/** A stream's duration: ffprobe's, or Matroska's DURATION tag (HH:MM:SS.nnnnnnnnn) where ffprobe has none. */
function streamDuration (s: Pick<FfprobeStream, 'duration' | 'tags'>): number | undefined {
  if (s.duration !== undefined && Number.isFinite(Number(s.duration))) return Number(s.duration)
  const m = /^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(tag(s.tags, 'duration') ?? '')
  return m === null ? undefined : Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3])
}

function tag (tags: Record<string, string> | undefined, key: string): string | undefined {
  if (tags === undefined) return undefined
  const found = Object.keys(tags).find(k => k.toLowerCase() === key)
  return found === undefined ? undefined : tags[found]
}

/**
 * Describes a media file: every stream, and the first real video stream frame by frame.
 * Frames come from packets (no decode), which is fast and matches what a decoder outputs for the
 * progressive H.264/HEVC/etc. sources swarm targets; verification later counts decoded frames.
 */
export interface ProbeOptions extends RunOptions {
  /**
   * Note video packets without a timestamp, or sharing one, in `video.timestampIssue` rather than
   * refusing the file: the caller takes the frames from a decode (prepareSource).
   */
  lenient?: boolean
}

export async function probeMedia (path: string, options: ProbeOptions = {}): Promise<MediaInfo> {
  const sizeBytes = await sourceSize(path)
  // The packet listing needs nothing from the description, so both ffprobes start at once: each
  // start loads 215 libraries, and this is the time from swarm add to the first lease.
  const stopListing = new AbortController()
  const packetListing = runTool('ffprobe', [
    // Every stream's packets (the demuxer reads them all anyway): the video's make the frame list,
    // the others only tell where the file's content really ends (a truncated file, see below).
    '-v', 'error', '-show_entries', 'packet=stream_index,pts,pts_time,duration_time,flags', '-of', 'compact=p=0:nk=0', '--', path
  ], `reading video packets of ${path}`, { ...options, signal: options.signal !== undefined ? AbortSignal.any([options.signal, stopListing.signal]) : stopListing.signal })
  // Awaited once the description is in: a file ffprobe cannot read is reported by that, not by this.
  packetListing.catch(() => {})
  let parsed: { streams?: FfprobeStream[], format?: { format_name?: string, duration?: string }, chapters?: unknown[] }
  try {
    const { stdout } = await runTool('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', '-show_chapters', '--', path], `probing ${path}`, options)
    parsed = JSON.parse(stdout)
  } catch (err) {
    stopListing.abort()
    if (err instanceof ToolError && !err.missing) {
      throw new SourceError(`${path}: ffprobe cannot read it as a media file: ${lastLine(err)}`)
    }
    throw err
  }
  const streams = (parsed.streams ?? []).map(streamInfoOf)
  const videoStream = (parsed.streams ?? []).find(s => s.codec_type === 'video' && s.disposition?.attached_pic !== 1)
  const timeBase = parseRational(videoStream?.time_base)
  if (videoStream === undefined || timeBase === undefined) {
    stopListing.abort()
    throw new SourceError(videoStream === undefined ? `${path}: has no video stream to encode` : `${path}: video stream has no usable time base`)
  }

  // The caption check needs only the stream's description: it runs beside the packet listing.
  const captions = videoStream.closed_captions === 1 ? Promise.resolve(true) : carriesCaptions(path, videoStream, options)
  captions.catch(() => {}) // awaited below; only keeps a failure before then from going unhandled
  // Metadata that cannot be read is metadata not carried, not a source refused.
  const hdr = readHdrMetadata(path, videoStream, options).catch(() => undefined)
  const listing = readPacketListing((await packetListing).stdout, { path, videoStreamIndex: videoStream.index, timeBase, streams, lenient: options.lenient === true })
  const ordered = displayOrder(listing.decodeOrder, path, options.lenient === true)
  const frames = ordered.frames
  const timestampIssue = listing.timestampIssue ?? ordered.timestampIssue

  // A lenient probe of a file without video timestamps may list no frames: a decode lists them.
  const first = frames[0] ?? { time: 0 }
  const last = frames[frames.length - 1] ?? first
  const span = last.time - first.time
  const frameRate = parseRational(videoStream.avg_frame_rate) ??
    parseRational(videoStream.r_frame_rate) ??
    (span > 0 ? { num: Math.round(((frames.length - 1) / span) * 1000), den: 1000 } : { num: 25, den: 1 })
  const pixFmt = videoStream.pix_fmt ?? 'yuv420p'
  const video: VideoInfo = {
    streamIndex: videoStream.index,
    codec: videoStream.codec_name ?? 'unknown',
    ...(videoStream.profile !== undefined ? { profile: videoStream.profile } : {}),
    width: videoStream.width ?? 0,
    height: videoStream.height ?? 0,
    pixFmt,
    bitDepth: bitDepthOf(pixFmt),
    timeBase,
    frameRate,
    frameCount: frames.length,
    frames,
    decodeOrder: listing.decodeOrder,
    ...(tag(videoStream.tags, 'language') !== undefined ? { language: tag(videoStream.tags, 'language') } : {}),
    ...(tag(videoStream.tags, 'title') !== undefined ? { title: tag(videoStream.tags, 'title') } : {}),
    default: videoStream.disposition?.default === 1,
    forced: videoStream.disposition?.forced === 1,
    colour: videoColourOf(videoStream),
    ...await hdr.then(h => h !== undefined ? { hdr: h } : {}),
    closedCaptions: await captions,
    ...(timestampIssue !== undefined ? { timestampIssue } : {})
  }
  const durationSec = Number(parsed.format?.duration ?? span)
  const damage = truncation(durationSec, listing.contentEnd, first.time)
  return {
    path,
    sizeBytes,
    formatName: parsed.format?.format_name ?? 'unknown',
    durationSec,
    ...(damage !== undefined ? { damage } : {}),
    streams,
    chapterCount: parsed.chapters?.length ?? 0,
    video
  }
}

async function sourceSize (path: string): Promise<number> {
  try {
    const st = await stat(path)
    if (!st.isFile()) throw new SourceError(`${path}: not a regular file`)
    return st.size
  } catch (err) {
    if (err instanceof SourceError) throw err
    throw new SourceError(`${path}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)}); check the path`)
  }
}

function streamInfoOf (s: FfprobeStream): StreamInfo {
  return {
    index: s.index,
    type: s.codec_type ?? 'data',
    codec: s.codec_name ?? 'unknown',
    ...(s.profile !== undefined ? { profile: s.profile } : {}),
    ...(tag(s.tags, 'language') !== undefined ? { language: tag(s.tags, 'language') } : {}),
    ...(tag(s.tags, 'title') !== undefined ? { title: tag(s.tags, 'title') } : {}),
    default: s.disposition?.default === 1,
    forced: s.disposition?.forced === 1,
    attachedPic: s.disposition?.attached_pic === 1,
    ...(s.width !== undefined ? { width: s.width } : {}),
    ...(s.height !== undefined ? { height: s.height } : {}),
    ...(s.pix_fmt !== undefined ? { pixFmt: s.pix_fmt } : {}),
    ...(s.channels !== undefined ? { channels: s.channels } : {}),
    ...(s.sample_rate !== undefined ? { sampleRate: Number(s.sample_rate) } : {}),
    ...(streamDuration(s) !== undefined ? { durationSec: streamDuration(s) } : {}),
    tags: s.tags ?? {},
    ...(Number.isFinite(Number(s.start_time ?? 'N/A')) ? { startTime: Number(s.start_time) } : {})
  }
}

interface PacketListing { decodeOrder: VideoFrame[], contentEnd: number, timestampIssue?: string }

/**
 * The video's frames in decode order, from ffprobe's compact packet listing; on the way, every
 * stream's first played packet and extent (noted on `streams`), so that comparing an output with
 * its source (fidelity.ts) and keeping tracks in sync (merge.ts) need no more reads.
 */
function readPacketListing (text: string, o: { path: string, videoStreamIndex: number, timeBase: Rational, streams: StreamInfo[], lenient: boolean }): PacketListing {
  const decodeOrder: VideoFrame[] = []
  let contentEnd = -Infinity
  const byIndex = new Map(o.streams.map(s => [s.index, s]))
  let timestampIssue: string | undefined
  for (const line of text.split('\n')) {
    if (line === '') continue
    const p = packetFields(line)
    if (Number.isFinite(p.ptsTime)) {
      contentEnd = Math.max(contentEnd, p.ptsTime + p.durationTime)
      noteStreamPacket(byIndex.get(p.stream), p.ptsTime, p.durationTime, p.flags.includes('D'))
    }
    if (p.stream !== o.videoStreamIndex) continue
    // Packets the demuxer marks discardable (edit-list pre-roll) are never displayed.
    if (p.flags.includes('D')) continue
    if (p.pts === undefined || !Number.isFinite(p.pts)) {
      if (o.lenient) { timestampIssue ??= `video packet ${decodeOrder.length} has no timestamp`; continue }
      throw new SourceError(`${o.path}: video packet ${decodeOrder.length} has no timestamp`)
    }
    decodeOrder.push({ decodeIndex: decodeOrder.length, displayIndex: -1, pts: p.pts, time: (p.pts * o.timeBase.num) / o.timeBase.den, key: p.flags.includes('K') })
  }
  if (decodeOrder.length === 0 && timestampIssue === undefined) throw new SourceError(`${o.path}: the video stream has no frames`)
  return { decodeOrder, contentEnd, ...(timestampIssue !== undefined ? { timestampIssue } : {}) }
}

function packetFields (line: string): { pts?: number, flags: string, stream: number, ptsTime: number, durationTime: number } {
  const p: { pts?: number, flags: string, stream: number, ptsTime: number, durationTime: number } = { flags: '', stream: -1, ptsTime: NaN, durationTime: 0 }
  for (const field of line.split('|')) {
    const eq = field.indexOf('=')
    const k = field.slice(0, eq); const v = field.slice(eq + 1)
    if (k === 'pts' && v !== 'N/A') p.pts = Number(v)
    else if (k === 'flags') p.flags = v
    else if (k === 'stream_index') p.stream = Number(v)
    else if (k === 'pts_time') p.ptsTime = Number(v)
    else if (k === 'duration_time') p.durationTime = Number.isFinite(Number(v)) ? Number(v) : 0
  }
  return p
}

/** Frames in display order (numbered so); two sharing a timestamp are an error unless lenient. */
function displayOrder (decodeOrder: VideoFrame[], path: string, lenient: boolean): { frames: VideoFrame[], timestampIssue?: string } {
  const frames = [...decodeOrder].sort((a, b) => a.pts - b.pts || a.decodeIndex - b.decodeIndex)
  frames.forEach((f, i) => { f.displayIndex = i })
  for (let i = 1; i < frames.length; i++) {
    if ((frames[i] as VideoFrame).pts === (frames[i - 1] as VideoFrame).pts) {
      const issue = `two video frames share timestamp ${(frames[i] as VideoFrame).time.toFixed(6)}s`
      if (lenient) return { frames, timestampIssue: issue }
      throw new SourceError(`${path}: ${issue}`)
    }
  }
  return { frames }
}

function noteStreamPacket (s: StreamInfo | undefined, time: number, duration: number, discarded: boolean): void {
  if (s === undefined) return
  const span = s.packetSpan
  if (span === undefined) s.packetSpan = { first: time, end: time + duration, longest: duration }
  else { span.first = Math.min(span.first, time); span.end = Math.max(span.end, time + duration); span.longest = Math.max(span.longest, duration) }
  if (!discarded) s.firstPlayedTime = Math.min(s.firstPlayedTime ?? Infinity, time)
}

/**
 * Where each track starts, per type in file order: its earliest played packet (edit lists applied,
 * discarded pre-roll skipped), or ffprobe's estimate for a stream without packets. Attachments and
 * cover pictures are not tracks that play.
 */
export function trackStartsOf (info: Pick<MediaInfo, 'streams'>): Array<{ type: string, start: number }> {
  return info.streams
    .filter(s => s.type !== 'attachment' && !s.attachedPic)
    .map(s => ({ type: s.type, start: s.firstPlayedTime ?? s.startTime ?? Number.NaN }))
    .filter(t => Number.isFinite(t.start))
}

/**
 * Where each track starts for keeping them in sync, per type in file order: the video's first
 * shown frame; every other track's first packet, discarded ones included. An MP4's AAC priming and
 * edit-list pre-roll stay at the start of the track when it is copied (by ffmpeg or mkvmerge), so
 * only every packet compares a source with its copy; a stream without packets has no start.
 */
export function syncStartsOf (info: Pick<MediaInfo, 'streams' | 'video'>): Array<{ type: string, start: number }> {
  return info.streams
    .filter(s => s.type !== 'attachment' && !s.attachedPic && (s.index === info.video.streamIndex || s.type !== 'video' || s.packetSpan !== undefined))
    .map(s => ({ type: s.type, start: s.index === info.video.streamIndex ? info.video.frames[0]?.time ?? Number.NaN : s.packetSpan?.first ?? Number.NaN }))
    .filter(t => Number.isFinite(t.start))
}

/** The file names of a file's attachments (fonts, cover art), in stream order. */
export function attachmentNamesOf (info: Pick<MediaInfo, 'streams'>): string[] {
  return info.streams.filter(s => s.type === 'attachment').map(s => s.tags.filename ?? '?')
}

export interface SourceDamage {
  /** What the container's header says the file lasts. */
  containerSec: number
  /** How far its packets actually go (from the first video frame). */
  contentSec: number
  message: string
}

/**
 * A container that states a duration (Matroska, MP4) and packets that stop well short of it: the
 * file was cut off. A second and 2% of slack cover trailing audio and rounding.
 */
function truncation (containerSec: number, contentEnd: number, start: number): SourceDamage | undefined {
  const contentSec = contentEnd - start
  if (!Number.isFinite(containerSec) || !Number.isFinite(contentSec) || containerSec <= 0) return undefined
  if (containerSec - contentSec <= Math.max(1, containerSec * 0.02)) return undefined
  return {
    containerSec,
    contentSec,
    message: `the container says it lasts ${containerSec.toFixed(3)} s but its packets end at ${contentSec.toFixed(3)} s: the file looks truncated (an incomplete download or copy)`
  }
}

/** Codecs whose streams carry CEA-608/708 captions in their pictures' user data. */
const CAPTION_CODECS = new Set(['h264', 'hevc', 'mpeg2video'])
/** How much of the video is decoded to look for captions: a caption service sends data in every frame. */
const CAPTION_PROBE_SECONDS = 2

/**
 * ffprobe sets closed_captions only when its probing decode happened to see them (it does not for
 * Matroska, whose headers already say all it needs): the first seconds are looked at. H.264's
 * are parsed from the stream, copied out as Annex B (no decode); other codecs' are decoded.
 */
async function carriesCaptions (path: string, video: FfprobeStream, options: RunOptions): Promise<boolean> {
  if (!CAPTION_CODECS.has(video.codec_name ?? '')) return false
  if (video.codec_name === 'h264') {
    // Any failure of the copy (a stream ffmpeg cannot copy out) leaves it to the decode below.
    const copied = await runToolBytes('ffmpeg', ['-v', 'error', '-nostdin', '-i', `file:${path}`, '-map', `0:${video.index}`, '-c', 'copy', '-t', String(CAPTION_PROBE_SECONDS), '-f', 'h264', '-'],
      `copying the first seconds of ${path}`, { signal: options.signal }).catch(() => undefined)
    if (copied !== undefined) return carriesA53Captions(copied.stdout)
  }
  const { stdout } = await runTool('ffprobe', ['-v', 'error', '-select_streams', String(video.index), '-read_intervals', `%+${CAPTION_PROBE_SECONDS}`,
    '-show_entries', 'frame_side_data=side_data_type', '-of', 'compact=p=0:nk=1', '--', path], `looking for captions in ${path}`, options)
  return /Closed Captions/i.test(stdout)
}
