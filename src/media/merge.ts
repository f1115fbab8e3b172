import { createReadStream, createWriteStream } from 'node:fs'
import { access, copyFile, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { basename, dirname, extname, join } from 'node:path'
import { once } from 'node:events'
import { IvfJoiner } from './av1.js'
import { AbortError, SourceError } from './errors.js'
import { crc32File, crcInName, stripCrcTag } from './hash.js'
import { probeMedia, syncStartsOf, type MediaInfo } from './probe.js'
import { captionsTrackName, type CaptionsTrack } from './captions.js'
import { encodedSize } from './encode.js'
import { DEFAULT_ENCODER, encoderFor, type EncoderId } from './encoders/index.js'
import { runTool, spawnTool, toToolError } from './tools.js'

export interface MergeOptions {
  source: MediaInfo
  /** Encoded chunks (the encoder's raw bitstream), in chunk order. */
  chunkPaths: string[]
  /** The encoder that wrote the chunks (default x264): their bitstream, and the output's name. */
  encoder?: EncoderId
  /** Scratch space for the joined video and the timestamp file. */
  workDir: string
  /** Where to write; default beside the source (see defaultOutputName). */
  outputPath?: string
  /**
   * Where the source's other tracks (audio, subtitles, attachments, chapters, tags) are read from:
   * the source itself by default, an ffmpeg remux of them (otherTracksInput), or null when the
   * source has nothing but its video.
   */
  otherTracks?: string | null
  /** The video's range as the encode states it (statedRange), written into the container too. */
  range?: 'tv' | 'pc'
  /** The source's closed captions as SRT with the source's timestamps (extractCaptions), each channel added as a subtitle track. */
  captions?: CaptionsTrack[]
  signal?: AbortSignal
}

export interface MergeResult {
  path: string
  sizeBytes: number
  crc32: string
  /** mkvmerge warnings, if it had any (exit code 1). */
  warnings: string[]
  /** The output's probe (every packet), read once for the track sync here and reused by the checks after. */
  info: MediaInfo
}

/**
 * `NAME [x264].mkv` beside the source: the encoder's name in the brackets (`[x264]`, `[x265]`), or
 * for the AV1 encoders the codec's (`[AV1]`, as AV1 releases are named). The CRC tag, if the
 * source had one, is replaced later.
 */
export function defaultOutputStem (sourcePath: string, encoder: EncoderId = DEFAULT_ENCODER): string {
  const stem = basename(sourcePath, extname(sourcePath))
  return `${stripCrcTag(stem)} [${encoderFor(encoder).codec === 'av1' ? 'AV1' : encoder}]`
}

/** Checks a source whose name carries a CRC32 against it, before any work is spent on it. */
export async function checkSourceCrc (sourcePath: string): Promise<{ expected?: string, actual?: string }> {
  const expected = crcInName(basename(sourcePath))
  if (expected === undefined) return {}
  const actual = await crc32File(sourcePath)
  if (actual !== expected) {
    throw new SourceError(`${sourcePath}: CRC32 is ${actual} but the name says [${expected}]; the file is damaged or incomplete — fetch it again before encoding`)
  }
  return { expected, actual }
}

async function exists (path: string): Promise<boolean> {
  try { await access(path); return true } catch { return false }
}

/** A name that does not overwrite anything already there. */
async function freePath (dir: string, stem: string, ext: string): Promise<string> {
  let candidate = join(dir, `${stem}${ext}`)
  for (let n = 2; await exists(candidate); n++) candidate = join(dir, `${stem} (${n})${ext}`)
  return candidate
}

/** The name an output gets beside its source: `NAME [x264].mkv`, with its own CRC32 where the source's name carries one. */
async function defaultOutputPath (sourcePath: string, crc: string, encoder?: EncoderId): Promise<string> {
  const stem = defaultOutputStem(sourcePath, encoder)
  return await freePath(dirname(sourcePath), crcInName(basename(sourcePath)) !== undefined ? `${stem} [${crc}]` : stem, '.mkv')
}

/**
 * Delivers an output made before to where a new request wants it (`outputPath`, or beside
 * `sourcePath` under the usual name): copied under a temporary name and renamed, like a merge.
 */
export async function copyOutput (existing: string, to: { sourcePath: string, outputPath?: string, encoder?: EncoderId }): Promise<string> {
  const target = to.outputPath ?? await defaultOutputPath(to.sourcePath, await crc32File(existing), to.encoder)
  await mkdir(dirname(target), { recursive: true })
  const tmp = join(dirname(target), `.swarm-copy-${process.pid}-${Date.now()}.mkv`)
  try {
    await copyFile(existing, tmp)
    await rename(tmp, target)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
  return target
}

/**
 * mkvmerge's v2 timestamp file: one line per frame, in display order, in milliseconds, moved by
 * `shiftSec` (never below 0, which Matroska cannot hold).
 */
export function timestampFileV2 (source: MediaInfo, shiftSec = 0): string {
  const lines = ['# timestamp format v2']
  for (const f of source.video.frames) lines.push((Math.max(0, f.time + shiftSec) * 1000).toFixed(6).replace(/\.?0+$/, '') || '0')
  return lines.join('\n') + '\n'
}

/** The source's tracks as mkvmerge numbers them (`mkvmerge -J`), which its track options need. */
async function mkvmergeTracks (path: string, signal?: AbortSignal): Promise<Array<{ id: number, type: string }>> {
  const r = await runTool('mkvmerge', ['-J', path], `identifying the tracks of ${path}`, signal !== undefined ? { signal } : {})
  const tracks = (JSON.parse(r.stdout) as { tracks?: Array<{ id?: number, type?: string }> }).tracks ?? []
  return tracks.filter(t => typeof t.id === 'number').map(t => ({ id: t.id as number, type: t.type === 'subtitles' ? 'subtitle' : t.type ?? 'data' }))
}

/**
 * Language, name, default and forced flags of every other track, passed explicitly: mkvmerge
 * reads some of them differently from the source (an MP4's language can come out `und`), and
 * ffprobe's reading is the one a plain ffmpeg remux keeps. Tracks are paired by type and order.
 */
export function trackPropertyArgs (source: Pick<MediaInfo, 'streams' | 'video'>, tracks: Array<{ id: number, type: string }>, o: { remuxed?: boolean } = {}): string[] {
  const args: string[] = []
  // A remux (otherTracksInput) leaves out declared tracks without a packet.
  const others = source.streams.filter(x => x.index !== source.video.streamIndex && !x.attachedPic && (x.type === 'audio' || x.type === 'subtitle') &&
    (o.remuxed !== true || x.packetSpan !== undefined))
  for (const type of ['audio', 'subtitle']) {
    const ours = others.filter(x => x.type === type)
    const theirs = tracks.filter(t => t.type === type)
    for (let k = 0; k < Math.min(ours.length, theirs.length); k++) {
      const st = ours[k] as MediaInfo['streams'][number]
      const id = (theirs[k] as { id: number }).id
      if (st.language !== undefined && st.language !== 'und') args.push('--language', `${id}:${st.language}`)
      if (st.title !== undefined && st.title !== '') args.push('--track-name', `${id}:${st.title}`)
      args.push('--default-track-flag', `${id}:${st.default ? 'yes' : 'no'}`)
      if (st.forced) args.push('--forced-display-flag', `${id}:yes`)
    }
  }
  return args
}

/** The file the other tracks come from, their properties, and how far mkvmerge moves them (--sync). */
interface OtherTracks { path: string, args: string[], ids: number[], syncMs: number }

function mergeArgs (o: MergeOptions, outPath: string, tcPath: string, videoPath: string, others: OtherTracks | undefined, captions?: { tracks: CaptionsTrack[], shiftSec: number }): string[] {
  const v = o.source.video
  const args = ['--quiet', '--output', outPath]
  if (o.range !== undefined) args.push('--colour-range', `0:${o.range === 'pc' ? 2 : 1}`)
  if (v.language !== undefined) args.push('--language', `0:${v.language}`)
  if (v.title !== undefined) args.push('--track-name', `0:${v.title}`)
  args.push('--default-track-flag', `0:${v.default ? 'yes' : 'no'}`)
  if (v.forced) args.push('--forced-display-flag', '0:yes')
  const encoded = encodedSize(v.width, v.height, v.pixFmt)
  if (encoded.width !== v.width || encoded.height !== v.height) {
    // The column or row the encode added to an odd size (encodedSize): players crop it off.
    args.push('--cropping', `0:0,0,${encoded.width - v.width},${encoded.height - v.height}`)
  }
  const dims = displayDimensions(v)
  if (dims !== undefined) args.push('--display-dimensions', `0:${dims}`)
  args.push('--timestamps', `0:${tcPath}`, videoPath)
  // Everything but the source's video: mkvmerge keeps track properties, attachments, chapters and tags.
  if (others !== undefined) {
    const sync = others.syncMs !== 0 ? others.ids.flatMap(id => ['--sync', `${id}:${others.syncMs}`]) : []
    args.push('--no-video', ...others.args, ...sync, others.path)
  }
  for (const track of captions?.tracks ?? []) {
    // The SRT carries the source's timestamps, like the timestamp file: moved by the same shift.
    args.push('--track-name', `0:${captionsTrackName(track.channel)}`, '--default-track-flag', '0:no', '--sync', `0:${Math.round((captions?.shiftSec ?? 0) * 1000)}`, track.path)
  }
  return args
}

/**
 * Matroska states the aspect ratio as display dimensions; mkvmerge rounds what it reads from the
 * H.264 stream to whole pixels (320x180 at 16:15 becomes 341x180, a SAR of 341:320). Dimensions
 * in the exact ratio keep the source's SAR, and players scale to their ratio, not their size.
 */
export function displayDimensions (v: Pick<MediaInfo['video'], 'width' | 'height' | 'colour'>): string | undefined {
  const m = /^(\d+):(\d+)$/.exec(v.colour?.sar ?? '')
  if (m === null || v.width <= 0 || v.height <= 0) return undefined
  const w = v.width * Number(m[1])
  const h = v.height * Number(m[2])
  const gcd = (a: number, b: number): number => b === 0 ? a : gcd(b, a % b)
  const g = gcd(w, h)
  return `${w / g}x${h / g}`
}

/**
 * Runs mkvmerge; its warnings (exit code 1) are returned, anything worse is thrown. Started with
 * spawnTool, not runTool: mkvmerge's exit code 1 is a success with warnings, and it writes its
 * warnings and errors on stdout, where runTool's error would not look.
 */
async function runMkvmerge (args: string[], outDir: string, signal?: AbortSignal): Promise<string[]> {
  try {
    await spawnTool('mkvmerge', args, { cancelSignal: signal, stdin: 'ignore' })
    return []
  } catch (err) {
    const e = err as { exitCode?: number, stdout?: string }
    if (e.exitCode === 1) return String(e.stdout ?? '').split('\n').filter(l => l.startsWith('Warning'))
    if (signal?.aborted === true) throw new AbortError('merge aborted')
    // mkvmerge tells its reasons on stdout, not stderr.
    const reasons = String(e.stdout ?? '').split('\n').filter(l => l.startsWith('Error')).join('\n')
    throw toToolError('mkvmerge', reasons === '' ? err : { ...(err as object), stderr: reasons }, `merging into ${outDir}`)
  }
}

/**
 * How far the video must move so every other track keeps its offset to it: the shift mkvmerge gave
 * the source's other tracks (the k-th audio of the output against the k-th audio of the source,
 * and so on), minus the shift the video got. 0 when they agree within half a millisecond.
 */
function videoShiftToKeepOffsets (source: MediaInfo, output: MediaInfo): number {
  const src = syncStartsOf(source)
  const out = syncStartsOf(output)
  const srcVideo = src.find(t => t.type === 'video')
  const outVideo = out.find(t => t.type === 'video')
  if (srcVideo === undefined || outVideo === undefined) return 0
  const shifts: number[] = []
  for (const type of new Set(src.filter(t => t.type !== 'video').map(t => t.type))) {
    const a = src.filter(t => t.type === type)
    const b = out.filter(t => t.type === type)
    for (let k = 0; k < Math.min(a.length, b.length); k++) shifts.push((b[k] as { start: number }).start - (a[k] as { start: number }).start)
  }
  if (shifts.length === 0) return 0
  shifts.sort((x, y) => x - y)
  const othersShift = shifts[Math.floor(shifts.length / 2)] as number
  const videoShift = outVideo.start - srcVideo.start
  const drift = othersShift - videoShift
  return Math.abs(drift) < 0.0005 ? 0 : drift
}

/** Raw H.264 and HEVC chunks join end to end: each starts with its own parameter sets. */
async function concatenateChunks (chunkPaths: string[], videoPath: string, signal?: AbortSignal): Promise<void> {
  const out = createWriteStream(videoPath)
  for (const p of chunkPaths) {
    if (signal?.aborted === true) throw new AbortError('merge aborted')
    for await (const buf of createReadStream(p, { highWaterMark: 1 << 20 })) {
      if (!out.write(buf)) await once(out, 'drain')
    }
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => err != null ? reject(err) : resolve()))
}

/**
 * IVF chunks join under one IVF header (IvfJoiner), a chunk in memory at a time: each file's own
 * header would otherwise read as a frame. mkvmerge then builds the track's AV1 header from the
 * first sequence header, which the structure check made every chunk's.
 */
async function joinIvfChunks (chunkPaths: string[], videoPath: string, signal?: AbortSignal): Promise<void> {
  const joiner = new IvfJoiner()
  const out = await open(videoPath, 'w')
  try {
    for (const p of chunkPaths) {
      if (signal?.aborted === true) throw new AbortError('merge aborted')
      await out.write(joiner.push(await readFile(p)))
    }
    const { offset, bytes } = joiner.frameCountField()
    await out.write(bytes, 0, bytes.length, offset)
  } finally {
    await out.close()
  }
}

/**
 * Joins the encoded chunks into one Matroska file: the new video carries the source's exact frame
 * timestamps (so VFR stays VFR and audio stays in sync), and every other track of the source comes
 * along untouched — audio, subtitles, attachments, chapters, tags, names, languages and flags.
 * Written to a temporary name and renamed, so a crash never leaves a half file under the real name.
 */
export async function mergeChunks (o: MergeOptions): Promise<MergeResult> {
  const { source } = o
  if (o.chunkPaths.length === 0) throw new SourceError('nothing to merge: no encoded chunks')
  await mkdir(o.workDir, { recursive: true })
  const encoder = encoderFor(o.encoder ?? DEFAULT_ENCODER)
  // mkvmerge reads the joined chunks by their content; the extension only names them honestly.
  const videoPath = join(o.workDir, `video${encoder.fileExtension}`)
  await (encoder.bitstream === 'ivf' ? joinIvfChunks(o.chunkPaths, videoPath, o.signal) : concatenateChunks(o.chunkPaths, videoPath, o.signal))
  const tcPath = join(o.workDir, 'timestamps.txt')
  // The video starts at 0, as in a plain remux; the other tracks keep their offsets to it (below).
  let videoShift = -(source.video.frames[0]?.time ?? 0)
  await writeFile(tcPath, timestampFileV2(source, videoShift))

  const explicit = o.outputPath !== undefined
  const outDir = explicit ? dirname(o.outputPath as string) : dirname(source.path)
  await mkdir(outDir, { recursive: true })
  const tmpPath = join(outDir, `.swarm-merge-${process.pid}-${Date.now()}.mkv`)
  const warnings: string[] = []
  const othersPath = o.otherTracks === undefined ? source.path : o.otherTracks
  let others: OtherTracks | undefined
  if (othersPath !== null) {
    const tracks = await mkvmergeTracks(othersPath, o.signal)
    others = { path: othersPath, args: trackPropertyArgs(source, tracks, { remuxed: othersPath !== source.path }), ids: tracks.filter(t => t.type !== 'video').map(t => t.id), syncMs: 0 }
  }
  const probeOptions = o.signal !== undefined ? { signal: o.signal } : {}
  let info: MediaInfo
  try {
    const captions = (): { tracks: CaptionsTrack[], shiftSec: number } | undefined => o.captions !== undefined ? { tracks: o.captions, shiftSec: videoShift } : undefined
    warnings.push(...await runMkvmerge(mergeArgs(o, tmpPath, tcPath, videoPath, others, captions()), outDir, o.signal))
    // mkvmerge and ffmpeg move the source's other tracks (a TS that starts at 10 s comes out starting
    // at 0; MP4 edit lists shift audio) while the timestamp file places the video where it says:
    // measure where they landed, and mux again with the later of the two moved so they keep their offsets.
    info = await probeMedia(tmpPath, probeOptions)
    const drift = videoShiftToKeepOffsets(source, info)
    if (drift !== 0) {
      if (drift > 0 || others === undefined) {
        videoShift += drift
        await writeFile(tcPath, timestampFileV2(source, videoShift))
      } else {
        // Moving the video earlier would take it below 0: the other tracks move later instead.
        others.syncMs = Math.round(-drift * 1000)
      }
      warnings.push(...await runMkvmerge(mergeArgs(o, tmpPath, tcPath, videoPath, others, captions()), outDir, o.signal))
      info = await probeMedia(tmpPath, probeOptions)
    }
  } catch (err) {
    await rm(tmpPath, { force: true })
    throw err
  }
  const crc = await crc32File(tmpPath)
  let finalPath: string
  if (explicit) {
    finalPath = o.outputPath as string
  } else {
    finalPath = await defaultOutputPath(source.path, crc, o.encoder)
  }
  await rename(tmpPath, finalPath)
  const { size } = await stat(finalPath)
  await rm(videoPath, { force: true })
  return { path: finalPath, sizeBytes: size, crc32: crc, warnings, info: { ...info, path: finalPath } }
}
