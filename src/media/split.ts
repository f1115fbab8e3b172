import { mkdir, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { MediaError, VerificationError } from './errors.js'
import { sha256File } from './hash.js'
import type { ChunkRange } from './plan.js'
import { nalUnits } from './h264.js'
import { readMatroskaFirstVideoPacket, readMatroskaVideoPackets, UnsupportedMatroskaError } from './matroska.js'
import { probeMedia, type MediaInfo, type VideoFrame, type VideoInfo } from './probe.js'
import { runTool, runToolBytes, spawnTool, toToolError, type RunOptions } from './tools.js'

/**
 * A chunk's segment: a stream copy of the source video (no re-encode) that holds every packet
 * needed to decode the chunk's frames, possibly a few more. `selectFromTime` and `frameCount` tell
 * the encoder exactly which decoded frames are the chunk's.
 */
export interface Segment {
  chunkIndex: number
  path: string
  sizeBytes: number
  sha256: string
  /** Timestamp (seconds, as stored in the segment) of the chunk's first frame. */
  selectFromTime: number
  frameCount: number
  /** Packets in the segment, which exceeds frameCount by the pre-roll/tail overlap. */
  packetCount: number
  /** Made from the decoded source (splitByDecoding): its frames are numbered, not the source's packets. */
  decoded?: boolean
  /**
   * Decoding the segment from its first packet shows, by the codec's own rules, exactly what
   * decoding the source across the cut shows: the first chunk, a decoded segment, or a cut at an
   * H.264 IDR or HEVC IRAP picture. The merge compares pictures only at the other cuts.
   */
  cutProven?: boolean
}

/** H.264 NAL unit type of an IDR slice. */
const H264_IDR_SLICE = 5
/** HEVC NAL unit types of IRAP pictures (BLA, IDR, CRA: 16-21); no trailing picture of one references a picture before it. */
const HEVC_IRAP = { min: 16, max: 21 }

/**
 * Whether the segment's first packet is a picture that no later-shown picture decodes through
 * anything before: an H.264 IDR slice, or an HEVC IRAP one (the leading pictures of a CRA are
 * shown before it, in the chunk before). Parsed from the packet's own NAL units, not trusted
 * from the container's keyframe flag (some MP4s flag pictures that cannot start a decode). Other
 * codecs: false (not known), so their cuts are decoded and compared as before.
 */
export async function startsAtRandomAccessPoint (path: string, codec: string, options: RunOptions = {}): Promise<boolean> {
  if (codec !== 'h264' && codec !== 'hevc') return false
  const types = await firstPictureNalTypes(path, codec, options)
  for (const type of types) {
    if (codec === 'h264') {
      if (type === H264_IDR_SLICE) return true
      if (type >= 1 && type <= 4) return false
    } else {
      if (type >= HEVC_IRAP.min && type <= HEVC_IRAP.max) return true
      if (type < 16) return false
    }
  }
  return false
}

/** The NAL unit types of a segment's first packet, in order: read from the Matroska file in-process, else through ffmpeg. */
async function firstPictureNalTypes (path: string, codec: 'h264' | 'hevc', options: RunOptions): Promise<number[]> {
  const typeOf = (header: number): number => codec === 'h264' ? header & 0x1F : (header >> 1) & 0x3F
  try {
    const first = await readMatroskaFirstVideoPacket(path)
    const expected = codec === 'h264' ? 'V_MPEG4/ISO/AVC' : 'V_MPEGH/ISO/HEVC'
    // avcC keeps its NAL length size in byte 4, hvcC in byte 21 (the two low bits: size - 1).
    const at = codec === 'h264' ? 4 : 21
    if (first.codecId === expected && first.codecPrivate !== undefined && first.codecPrivate.length > at) {
      const lengthSize = ((first.codecPrivate[at] as number) & 3) + 1
      const types: number[] = []
      for (let i = 0; i + lengthSize < first.data.length;) {
        let len = 0
        for (let k = 0; k < lengthSize; k++) len = len * 256 + (first.data[i + k] as number)
        i += lengthSize
        if (len === 0 || i + len > first.data.length) break
        types.push(typeOf(first.data[i] as number))
        i += len
      }
      return types
    }
  } catch (err) {
    if (!(err instanceof UnsupportedMatroskaError)) throw err
  }
  const { stdout: data } = await runToolBytes('ffmpeg', ['-v', 'error', '-nostdin', '-i', `file:${path}`, '-map', '0:v:0', '-c', 'copy', '-frames:v', '1',
    '-bsf:v', `${codec}_mp4toannexb`, '-f', codec, 'pipe:1'], `reading the first picture of ${path}`, { ...options, maxBuffer: 64 * 1024 * 1024 })
  return [...nalUnits(data)].map(nal => typeOf(data[nal.start] as number))
}

/**
 * A stream-copied segment that does not decode cleanly from its first packet: the source marks
 * a frame as a keyframe that cannot start a decode (some MP4s do), so the chunk must be made from
 * a continuous decode instead (splitByDecoding), not cut again.
 */
export class UndecodableCutError extends VerificationError {
  override readonly name = 'UndecodableCutError'
}

/**
 * Decoder messages that a clean cut at an open-GOP keyframe prints too: the reference pictures
 * before the cut that its memory commands name are simply not there.
 */
const BENIGN_CUT_MESSAGES = [/mmco: unref short failure/, /number of reference frames .* exceeds max/]

/**
 * Decodes the first GOP of a stream-copied segment (where a bad cut shows) and refuses it when
 * the decoder reports errors: a keyframe that cannot start a decode gives garbage pictures whose
 * count is still right.
 */
async function checkCutDecodes (chunk: ChunkRange, packets: SegmentPacket[], path: string, options: RunOptions): Promise<void> {
  const secondKey = packets.findIndex((p, i) => i > 0 && p.key)
  const frames = secondKey > 0 ? secondKey : packets.length
  const r = await runTool('ffmpeg', ['-v', 'error', '-nostdin', '-i', `file:${path}`, '-map', '0:v:0', '-frames:v', String(frames), '-f', 'null', '-'],
    `decoding the start of chunk ${chunk.index}'s segment`, options)
  const errors = r.stderr.split('\n').filter(l => /^\[(h264|hevc|vp8|vp9|av1|libdav1d) @/.test(l) && !BENIGN_CUT_MESSAGES.some(b => b.test(l)))
  if (errors.length > 0) {
    throw new UndecodableCutError(`chunk ${chunk.index}: the source's keyframe at the cut does not start a clean decode (${errors[0]?.replace(/^\[[^\]]*\] /, '') ?? ''}); it is made from the decoded source instead`)
  }
}

/** Matroska stores milliseconds; a source on a finer time base is rounded by up to half of one. */
export const TIMESTAMP_TOLERANCE = 0.0006

/**
 * ffmpeg 5.x moves an input seek 3/23 s earlier when the video has B-frames (a dts heuristic);
 * aiming this far past the keyframe lands on it with or without that heuristic.
 */
const SEEK_PAST_KEYFRAME = 3 / 23 + 0.001

interface SegmentPacket { time: number, key: boolean }

async function readSegmentPackets (path: string, options: RunOptions): Promise<SegmentPacket[]> {
  try {
    return await readMatroskaVideoPackets(path)
  } catch (err) {
    if (!(err instanceof UnsupportedMatroskaError)) throw err
  }
  const { stdout } = await runTool('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time,flags', '-of', 'compact=p=0:nk=0', '--', path], `reading segment ${path}`, options)
  const packets: SegmentPacket[] = []
  for (const line of stdout.split('\n')) {
    if (line === '') continue
    let time = Number.NaN; let flags = ''
    for (const field of line.split('|')) {
      const eq = field.indexOf('=')
      if (field.slice(0, eq) === 'pts_time') time = Number(field.slice(eq + 1))
      else if (field.slice(0, eq) === 'flags') flags = field.slice(eq + 1)
    }
    packets.push({ time, key: flags.includes('K') })
  }
  return packets
}

function nextKeyframeTime (decodeOrder: VideoFrame[], after: number): number {
  for (let i = after + 1; i < decodeOrder.length; i++) {
    const f = decodeOrder[i] as VideoFrame
    if (f.key) return f.time
  }
  return Number.POSITIVE_INFINITY
}

/** The source's video alone, stream-copied with its timestamps intact: what segments are cut from. */
export interface CutSource {
  path: string
  video: VideoInfo
  /** ffmpeg -map of the video stream in `path` (default 0:v:0). */
  map?: string
}

/**
 * The source itself as a cut source. Always exact for the chunk that starts at the first frame
 * (no seek); for later chunks exact too, but a seek may land early and add pre-roll (see
 * extractVideo), which the caller can see in the segment's packet count.
 */
export function sourceAsCutSource (source: MediaInfo): CutSource {
  return { path: source.path, video: source.video, map: `0:${source.video.streamIndex}` }
}

/**
 * Copies the source's video stream into a video-only Matroska file once per job. Cutting from it
 * rather than from the source keeps ffmpeg's seeks on the chunk's keyframe: with subtitle tracks in
 * the file, the Matroska demuxer seeks further back to catch subtitles still on screen, and some
 * interleavings of other tracks make it land a keyframe early.
 */
export async function extractVideo (source: MediaInfo, outPath: string, options: RunOptions = {}): Promise<CutSource> {
  await mkdir(dirname(outPath), { recursive: true })
  await runTool('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-copyts', '-i', source.path, '-map', `0:${source.video.streamIndex}`,
    '-c', 'copy', '-avoid_negative_ts', 'disabled', '-map_metadata', '-1', '-map_chapters', '-1', '-f', 'matroska', outPath],
  `copying the video of ${source.path}`, options)
  const probed = await probeMedia(outPath, options)
  // A copy keeps frames an MP4 edit list leaves unshown, before or after the shown ones; those are
  // never cut (segments are found by time), so only the shown span must hold the same frames.
  const first = (source.video.frames[0]?.time ?? 0) - TIMESTAMP_TOLERANCE
  const last = (source.video.frames[source.video.frames.length - 1]?.time ?? 0) + TIMESTAMP_TOLERANCE
  const shown = probed.video.frames.filter(f => f.time >= first && f.time <= last).length
  if (shown !== source.video.frameCount) {
    throw new VerificationError(`${source.path}: copying the video stream gave ${shown} frames instead of ${source.video.frameCount}`)
  }
  return { path: outPath, video: probed.video }
}

/** Checks that every frame of the range is in the segment, in display order from its first frame on, and describes it. */
async function finishSegment (chunk: ChunkRange, rangeTimes: number[], packets: SegmentPacket[], outPath: string, codec: string | undefined, options: RunOptions = {}): Promise<Segment> {
  const chunkStart = rangeTimes[0] as number
  const shown = packets.map(p => p.time).filter(t => t >= chunkStart - TIMESTAMP_TOLERANCE).sort((a, b) => a - b)
  const missing = rangeTimes.findIndex((t, i) => shown[i] === undefined || Math.abs((shown[i] as number) - t) > TIMESTAMP_TOLERANCE)
  if (missing >= 0) {
    await rm(outPath, { force: true })
    throw new VerificationError(`chunk ${chunk.index}: the cut segment lacks frame ${chunk.startFrame + missing} (t=${(rangeTimes[missing] as number).toFixed(3)}s)`)
  }
  // The first chunk is not cut: it decodes from the source's first packet, as a player does. A cut
  // at an IDR or IRAP picture needs no decode to know it is clean; any other is decoded to its
  // second keyframe, and its pictures are compared at the merge.
  let cutProven = chunk.decodeStart === 0
  try {
    if (!cutProven && codec !== undefined) cutProven = await startsAtRandomAccessPoint(outPath, codec, options)
    if (!cutProven) await checkCutDecodes(chunk, packets, outPath, options)
  } catch (err) {
    await rm(outPath, { force: true })
    throw err
  }
  return {
    chunkIndex: chunk.index,
    path: outPath,
    sizeBytes: (await stat(outPath)).size,
    sha256: await sha256File(outPath),
    selectFromTime: shown[0] as number,
    frameCount: chunk.frameCount,
    packetCount: packets.length,
    ...(cutProven ? { cutProven: true } : {})
  }
}

/**
 * Cuts one chunk's segment by stream copy. The cut is checked against the source's own frame
 * list: the segment must start on the chunk's keyframe (or an earlier one) and contain every frame
 * of the range, so an open-GOP or B-pyramid source cannot silently lose frames at the cut.
 */
export async function cutSegment (source: MediaInfo, cutSource: CutSource, chunk: ChunkRange, outPath: string, options: RunOptions = {}): Promise<Segment> {
  const rangeTimes = source.video.frames.slice(chunk.startFrame, chunk.endFrame).map(f => f.time)
  const chunkStart = rangeTimes[0] as number
  const { frames, decodeOrder } = cutSource.video
  // The cut source has the same frames; find the chunk in its (possibly ms-rounded) timestamps.
  const startIdx = frames.findIndex(f => Math.abs(f.time - chunkStart) <= TIMESTAMP_TOLERANCE)
  if (startIdx < 0) throw new VerificationError(`chunk ${chunk.index}: frame at ${chunkStart.toFixed(3)}s is missing from the copied video`)
  let decodeEnd = 0
  for (let i = startIdx; i < Math.min(frames.length, startIdx + chunk.frameCount); i++) decodeEnd = Math.max(decodeEnd, (frames[i] as VideoFrame).decodeIndex)
  await mkdir(dirname(outPath), { recursive: true })

  // A chunk that starts between keyframes (planChunks' midGopCuts) is cut from the keyframe before.
  const chunkKey = source.video.decodeOrder[chunk.decodeStart]
  const keyInCopy = chunkKey !== undefined && chunk.decodeStart !== (source.video.frames[chunk.startFrame] as VideoFrame | undefined)?.decodeIndex
    ? decodeOrder.find(f => f.key && Math.abs(f.time - chunkKey.time) <= TIMESTAMP_TOLERANCE)
    : undefined
  const firstDecode = (): number => startIdx === 0 ? 0 : keyInCopy?.decodeIndex ?? (frames[startIdx] as VideoFrame).decodeIndex
  let startDecode = firstDecode()
  const startKey = decodeOrder[startDecode] as VideoFrame
  let seekTo: number | undefined
  if (startDecode > 0) {
    seekTo = startKey.time + SEEK_PAST_KEYFRAME
    if (seekTo >= nextKeyframeTime(decodeOrder, startDecode) - 0.001) seekTo = startKey.time + 0.0005
  }
  const tried = new Set<string>()
  for (let attempt = 0; attempt < 4; attempt++) {
    const packetCount = decodeEnd - startDecode + 1
    const key = `${seekTo ?? 'none'}/${packetCount}`
    if (tried.has(key)) break
    tried.add(key)
    const args = ['-v', 'error', '-nostdin', '-y']
    if (seekTo !== undefined) args.push('-ss', seekTo.toFixed(6))
    args.push('-copyts', '-i', cutSource.path,
      '-map', cutSource.map ?? '0:v:0', '-c', 'copy', '-copypriorss', '1', '-frames:v', String(packetCount),
      '-avoid_negative_ts', 'disabled', '-map_metadata', '-1', '-map_chapters', '-1', '-f', 'matroska', outPath)
    await runTool('ffmpeg', args, `cutting chunk ${chunk.index} of ${source.path}`, options)
    const packets = await readSegmentPackets(outPath, options)
    const first = packets[0]
    if (first === undefined) {
      await rm(outPath, { force: true })
      throw new VerificationError(`chunk ${chunk.index}: the cut segment is empty`)
    }
    const expectedFirst = decodeOrder[startDecode] as VideoFrame
    if (Math.abs(first.time - expectedFirst.time) > TIMESTAMP_TOLERANCE) {
      if (first.time < expectedFirst.time) {
        // Landed on an earlier keyframe: keep that pre-roll and take correspondingly more packets.
        const landed = decodeOrder.find(f => f.key && Math.abs(f.time - first.time) <= TIMESTAMP_TOLERANCE)
        if (landed !== undefined && landed.decodeIndex < startDecode) { startDecode = landed.decodeIndex; continue }
      }
      seekTo = startKey.time + 0.0005
      startDecode = firstDecode()
      continue
    }
    return await finishSegment(chunk, rangeTimes, packets, outPath, source.video.codec, options)
  }
  await rm(outPath, { force: true })
  throw new VerificationError(`chunk ${chunk.index}: ffmpeg could not seek to the keyframe at ${startKey.time.toFixed(3)}s of ${source.path}`)
}

/**
 * Whether one sequential pass can cut this plan: the chunks are the whole plan in order and none
 * needs packets past the next chunk's keyframe. Open-GOP sources do (the next keyframe's leading
 * B-frames belong to the chunk before it), and their segments must overlap: cut those one by one.
 */
export function splitsInOnePass (chunks: ChunkRange[]): boolean {
  if (chunks.length < 2 || chunks[0]?.decodeStart !== 0) return false
  return chunks.every((c, i) => c.index === i && c.decodeEnd < (chunks[i + 1]?.decodeStart ?? Number.POSITIVE_INFINITY))
}

export interface OnePassSplitOptions extends RunOptions {
  /** Where a kept segment goes. */
  pathOf: (chunkIndex: number) => string
  /** Which chunks' segments to keep (the pass writes every chunk's; a restarted job has some already). */
  wanted: (chunkIndex: number) => boolean
  /** Called in chunk order as each kept segment is written and checked; an Error means its check failed (cut that chunk another way). */
  onSegment: (chunkIndex: number, result: Segment | Error) => void | Promise<void>
  /**
   * Resolves when the next segment may be cut. Until then ffmpeg is stopped (SIGSTOP): it reads
   * the source far faster than a swarm encodes it, and would otherwise write every segment at once.
   */
  room?: () => Promise<void>
}

/**
 * Cuts every chunk's segment in one sequential read of the source with ffmpeg's segment muxer,
 * splitting at each chunk's keyframe by packet count. One ffmpeg start instead of one per chunk
 * (each cut cost ~0.1 s of CPU plus a seek, and a 200-chunk job waited on them), and no seek can
 * land early, so subtitle tracks in the source do not matter. Each segment is checked as a cut
 * one is and handed over as soon as ffmpeg moves on to the next. Only for plans where
 * splitsInOnePass holds.
 */
export async function splitInOnePass (source: MediaInfo, chunks: ChunkRange[], tempDir: string, o: OnePassSplitOptions): Promise<void> {
  if (!splitsInOnePass(chunks)) throw new Error('this plan cannot be split in one pass (overlapping or incomplete chunks)')
  const { decodeOrder } = source.video
  const args = ['-v', 'error', '-nostdin', '-y', '-copyts', '-i', source.path, '-map', `0:${source.video.streamIndex}`, '-c', 'copy',
    '-break_non_keyframes', '0', '-avoid_negative_ts', 'disabled', ...segmentMuxerArgs(chunks, tempDir)]
  await runSegmentPass(source, chunks, tempDir, o, args, `splitting ${source.path}`, async (chunk, packets, path) => {
    const expected = decodeOrder[chunk.decodeStart] as VideoFrame
    const first = packets[0]
    if (first === undefined || !first.key || Math.abs(first.time - expected.time) > TIMESTAMP_TOLERANCE) {
      throw new VerificationError(`chunk ${chunk.index}: the segment starts at ${first?.time.toFixed(3) ?? 'nothing'} instead of the keyframe at ${expected.time.toFixed(3)}s`)
    }
    return await finishSegment(chunk, source.video.frames.slice(chunk.startFrame, chunk.endFrame).map(f => f.time), packets, path, source.video.codec, o)
  })
}

/**
 * Frames of a decoded source are numbered in its segments, not timed: frame n sits at n × 40 ms,
 * exact in Matroska's milliseconds whatever the source's rate or timestamps were (the source's
 * own times are applied at the merge, as for every source).
 */
export const DECODED_FRAME_STEP_MS = 40

/** The pixel format a decoded source's segments keep: the source's where x264 can store it losslessly. */
export function losslessPixFmt (pixFmt: string, width: number, height: number): string {
  const deep = /(9|10|12|14|16)(le|be)$/.test(pixFmt)
  const m = /^yuv(j?)(420|422|444)p(?:(9|10|12|14|16)(le|be)?)?$/.exec(pixFmt)
  let sub = m?.[2] ?? (/^yuvj?411p$/.test(pixFmt) ? '422' : /^yuvj?410p$/.test(pixFmt) ? '420' : /^gray/.test(pixFmt) ? '420' : '444')
  // x264 needs even sizes for subsampled chroma; 4:4:4 holds any size.
  if ((sub === '420' && (width % 2 === 1 || height % 2 === 1)) || (sub === '422' && width % 2 === 1)) sub = '444'
  if (deep) return `yuv${sub}p10le`
  return `yuv${m?.[1] === 'j' ? 'j' : ''}${sub}p`
}

/**
 * Makes every chunk's segment from one continuous decode of the source: each segment holds the
 * chunk's frames exactly, losslessly encoded (x264 --qp 0) with a keyframe on its first frame.
 * For sources whose packets cannot be cut by stream copy (prepareSource): open-GOP MPEG-2, keyframes
 * that cannot start a decode, packets without timestamps, codecs Matroska cannot hold. The
 * decode runs across every cut, so every frame is what a player shows. Costs the originator one
 * decode and a fast lossless encode, and segments several times the source's size.
 */
export async function splitByDecoding (source: MediaInfo, chunks: ChunkRange[], tempDir: string, o: OnePassSplitOptions): Promise<void> {
  if (!chunks.every((c, i) => c.index === i && c.startFrame === (i === 0 ? 0 : chunks[i - 1]?.endFrame))) throw new Error('a decoded source is split in one pass: the plan must be every chunk in order')
  const { video } = source
  const keyframes = chunks.map(c => `eq(n,${c.startFrame})`).join('+')
  const args = ['-v', 'error', '-nostdin', '-y', '-i', `file:${source.path}`, '-map', `0:${video.streamIndex}`,
    // Frame n at n × 40 ms: numbered, so that no timestamp of the source (missing, shared, rounded) can move a frame.
    '-vf', `settb=1/1000,setpts=N*${DECODED_FRAME_STEP_MS}`, '-fps_mode', 'passthrough', '-enc_time_base:v', '1/1000',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-qp', '0', '-pix_fmt', losslessPixFmt(video.pixFmt, video.width, video.height),
    '-force_key_frames', `expr:${keyframes}`, '-x264-params', 'keyint=infinite:scenecut=0',
    ...segmentMuxerArgs(chunks.map(c => ({ ...c, decodeStart: c.startFrame })), tempDir)]
  await runSegmentPass(source, chunks, tempDir, o, args, `decoding ${source.path} into segments`, async (chunk, packets, path) => {
    const first = packets[0]
    const expected = chunk.startFrame * DECODED_FRAME_STEP_MS / 1000
    if (first === undefined || !first.key || Math.abs(first.time - expected) > TIMESTAMP_TOLERANCE || packets.length !== chunk.frameCount) {
      throw new VerificationError(`chunk ${chunk.index}: the decoded segment holds ${packets.length} frames from ${first?.time.toFixed(3) ?? 'nothing'} s, expected ${chunk.frameCount} from frame ${chunk.startFrame}`)
    }
    return {
      chunkIndex: chunk.index,
      path,
      sizeBytes: (await stat(path)).size,
      sha256: await sha256File(path),
      selectFromTime: first.time,
      frameCount: chunk.frameCount,
      packetCount: packets.length,
      decoded: true,
      cutProven: true
    }
  })
}

function segmentMuxerArgs (chunks: Array<Pick<ChunkRange, 'decodeStart'>>, tempDir: string): string[] {
  // One chunk: a split point past any frame, since the muxer's default would cut every 2 s.
  const splits = chunks.length > 1 ? chunks.slice(1).map(c => c.decodeStart).join(',') : String(2 ** 31 - 2)
  return ['-f', 'segment', '-segment_format', 'matroska', '-segment_frames', splits,
    '-segment_list', 'pipe:1', '-segment_list_type', 'flat', '-reset_timestamps', '0',
    '-map_metadata', '-1', '-map_chapters', '-1', join(tempDir, 'segment-%d.mkv')]
}

/**
 * Runs one ffmpeg that writes every chunk's segment in order (segmentMuxerArgs) and hands each
 * over, checked, as soon as ffmpeg moves on to the next. With `room`, ffmpeg is stopped between
 * segments until there is room for the next.
 */
async function runSegmentPass (source: MediaInfo, chunks: ChunkRange[], tempDir: string, o: OnePassSplitOptions, args: string[], what: string,
  check: (chunk: ChunkRange, packets: SegmentPacket[], path: string) => Promise<Segment>): Promise<void> {
  await mkdir(tempDir, { recursive: true })
  const proc = spawnTool('ffmpeg', args, { cancelSignal: o.signal, stdin: 'ignore', lines: true })
  let n = 0
  try {
    for await (const line of proc) {
      if (String(line).trim() === '') continue
      const chunk = chunks[n]
      const written = join(tempDir, `segment-${n}.mkv`)
      n++
      if (chunk === undefined) throw new VerificationError(`ffmpeg wrote more segments than the plan has chunks (${n})`)
      if (!o.wanted(chunk.index)) { await rm(written, { force: true }); continue }
      let result: Segment | Error
      const path = o.pathOf(chunk.index)
      try {
        const packets = await readSegmentPackets(written, o)
        await mkdir(dirname(path), { recursive: true })
        await rename(written, path)
        result = await check(chunk, packets, path)
      } catch (err) {
        if (o.signal?.aborted === true) throw err
        await Promise.all([rm(written, { force: true }), rm(path, { force: true })])
        result = err as Error
      }
      await o.onSegment(chunk.index, result)
      if (o.room !== undefined && n < chunks.length) {
        proc.kill('SIGSTOP')
        try { await o.room() } finally { proc.kill('SIGCONT') }
      }
    }
    await proc
  } catch (err) {
    if (err instanceof MediaError) throw err
    throw toToolError('ffmpeg', err, what)
  }
  if (n !== chunks.length) throw new VerificationError(`${what}: ffmpeg wrote ${n} segments for ${chunks.length} chunks`)
}
