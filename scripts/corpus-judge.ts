/**
 * Judges one output MKV against its source, independently of swarm's own fidelity check (nothing
 * from src/ is used): what a viewer decodes, and what a plain remux of the source keeps.
 *
 *  - video frames: the decoded frame counts are equal;
 *  - video timestamps: each frame's decoded time relative to the first within 1 ms of the source's
 *    (a source whose decoded times do not rise has no presentation to keep: the output's frames must
 *    then sit at the source's nominal rate, and the row says so);
 *  - tracks: every audio and subtitle track a plain `ffmpeg -map 0 -c copy -f matroska` remux of the
 *    source keeps (mkvmerge's when ffmpeg's fails) is in the output, same codec and language;
 *  - A/V offset: each such track's first packet (every packet counted, discarded priming too)
 *    relative to the first video frame within 2 ms of the remux's;
 *  - colour: every colour tag the source states (primaries, transfer, matrix, range) the same in the output;
 *  - captions: EIA-608 captions in an H.264 or MPEG-2 source's video (field 1 = CC1, field 2 = CC3)
 *    are in a subtitle track of the output;
 *  - picture: the worst frame's PSNR of the output against the source, both decoded from the start
 *    and paired by frame number, is at least 25 dB (the output cropped to the source's size when it
 *    was padded to even dimensions).
 *
 * `node dist/scripts/corpus-judge.js SOURCE OUTPUT` prints a row per check and exits 0 or 1.
 */
import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { extname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface JudgeRow {
  check: string
  ok: boolean
  source: string
  output: string
  /** Why it failed, or what was accepted and why. */
  note?: string
}

export interface Judgement {
  ok: boolean
  rows: JudgeRow[]
  /** One line per failed row. */
  reasons: string[]
  /** Which tool made the reference remux. */
  remuxBy?: 'ffmpeg' | 'mkvmerge'
}

export const TIME_TOLERANCE_S = 0.001
export const OFFSET_TOLERANCE_S = 0.002
export const MIN_PSNR_DB = 25

interface Stream {
  index: number
  codec_type?: string
  codec_name?: string
  width?: number
  height?: number
  r_frame_rate?: string
  avg_frame_rate?: string
  color_range?: string
  color_primaries?: string
  color_transfer?: string
  color_space?: string
  disposition?: { attached_pic?: number }
  tags?: Record<string, string>
}

async function streamsOf (path: string): Promise<Stream[]> {
  const r = await execa('ffprobe', ['-v', 'error', '-show_streams', '-of', 'json', '--', path])
  return (JSON.parse(r.stdout) as { streams?: Stream[] }).streams ?? []
}

const videoOf = (streams: Stream[]): Stream | undefined => streams.find(s => s.codec_type === 'video' && s.disposition?.attached_pic !== 1)
const tagOf = (s: Stream, key: string): string | undefined => Object.entries(s.tags ?? {}).find(([k]) => k.toLowerCase() === key)?.[1]
const languageOf = (s: Stream): string => tagOf(s, 'language') ?? 'und'
const titleOf = (s: Stream): string | undefined => tagOf(s, 'title')
/** The track swarm adds for captions carried in the video: not a track of the source. */
const isCaptionsTrack = (s: Stream): boolean => s.codec_type === 'subtitle' && /closed captions/i.test(titleOf(s) ?? '')

function rate (text: string | undefined): number {
  const m = /^(\d+)\/(\d+)$/.exec(text ?? '')
  return m !== null && Number(m[2]) > 0 ? Number(m[1]) / Number(m[2]) : Number.NaN
}

/** Every frame the decoder gives for one stream, with the time it shows it at (NaN where it has none). */
async function decodedTimes (path: string, stream: number): Promise<number[]> {
  const r = await execa('ffprobe', ['-v', 'error', '-select_streams', String(stream), '-show_entries', 'frame=best_effort_timestamp_time', '-of', 'compact=p=1:nk=0', '--', path], { maxBuffer: 1 << 28 })
  const times: number[] = []
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('frame|')) continue
    const m = /best_effort_timestamp_time=([^|]*)/.exec(line)
    times.push(m === null || m[1] === 'N/A' ? Number.NaN : Number(m[1]))
  }
  return times
}

/** Each stream's earliest packet time (pts, else dts), every packet counted, discarded ones included. */
async function firstPackets (path: string): Promise<Map<number, number>> {
  const r = await execa('ffprobe', ['-v', 'error', '-show_entries', 'packet=stream_index,pts_time,dts_time', '-of', 'compact=p=0:nk=0', '--', path], { maxBuffer: 1 << 28 })
  const first = new Map<number, number>()
  for (const line of r.stdout.split('\n')) {
    const idx = /stream_index=(\d+)/.exec(line)
    if (idx === null) continue
    const pts = Number(/pts_time=([^|]*)/.exec(line)?.[1])
    const dts = Number(/dts_time=([^|]*)/.exec(line)?.[1])
    const t = Number.isFinite(pts) ? pts : dts
    if (!Number.isFinite(t)) continue
    const i = Number(idx[1])
    first.set(i, Math.min(first.get(i) ?? Infinity, t))
  }
  return first
}

/**
 * A plain remux of the source into Matroska: ffmpeg's of every stream; when that fails only because
 * of streams Matroska cannot hold (an Ogg skeleton, a TS's ID3), ffmpeg's of the video, audio and
 * subtitles; else mkvmerge's (which takes e.g. RealVideo and MPEG-PS packets without timestamps).
 * ffmpeg's comes first because it keeps a track that starts before the video (Vorbis priming at
 * -2.7 ms) where it is, and mkvmerge moves it to 0.
 */
async function remux (source: string, workDir: string): Promise<{ path: string, by: 'ffmpeg' | 'mkvmerge', ffmpegError?: string }> {
  const path = join(workDir, 'remux.mkv')
  const ffmpeg = async (maps: string[]): Promise<string | undefined> => {
    const f = await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-i', source, ...maps, '-c', 'copy', '-f', 'matroska', path], { reject: false })
    return f.exitCode === 0 ? undefined : f.stderr.trim().split('\n').slice(0, 2).join(' / ')
  }
  const all = await ffmpeg(['-map', '0'])
  if (all === undefined) return { path, by: 'ffmpeg' }
  if (/Only audio, video, and subtitles are supported/.test(all)) {
    const avs = await ffmpeg(['-map', '0:v?', '-map', '0:a?', '-map', '0:s?'])
    if (avs === undefined) return { path, by: 'ffmpeg', ffmpegError: `${all}; remuxed without the data streams` }
  }
  // mkvmerge: 0 ok, 1 warnings (still a file), 2 error.
  const m = await execa('mkvmerge', ['-q', '-o', path, source], { reject: false })
  if (m.exitCode === 0 || m.exitCode === 1) return { path, by: 'mkvmerge', ffmpegError: all }
  throw new Error(`neither ffmpeg (${all}) nor mkvmerge (${m.stdout.trim().split('\n').slice(-1)[0] ?? ''}) could remux the source`)
}

/** SRT text to its cues' lines, without the decoder's styling. */
function srtLines (srt: string): string[] {
  const lines: string[] = []
  for (const block of srt.replace(/\r/g, '').split(/\n\n+/)) {
    const rows = block.split('\n')
    const at = rows.findIndex(r => r.includes('-->'))
    if (at < 0) continue
    for (const row of rows.slice(at + 1)) {
      const clean = row.replace(/<[^>]*>/g, '').replace(/\{\\[^}]*\}/g, '').replace(/\s+/g, ' ').trim()
      if (clean !== '') lines.push(clean)
    }
  }
  return lines
}

/** The EIA-608 captions of one field of the source's video, decoded (field 1 carries CC1/CC2, field 2 CC3/CC4). */
async function captionField (source: string, workDir: string, field: 'first' | 'second'): Promise<string[]> {
  // The movie source takes a file name inside a filtergraph: link the source under a plain name.
  const link = join(workDir, `cc-source-${field}${extname(source).replace(/[^.a-zA-Z0-9]/g, '')}`)
  if (!existsSync(link)) await symlink(resolve(source), link)
  const r = await execa('ffmpeg', ['-v', 'error', '-nostdin', '-data_field', field, '-f', 'lavfi', '-i', `movie=${link.slice(workDir.length + 1)}[out0+subcc]`, '-map', '0:1', '-f', 'srt', '-'], { cwd: workDir, reject: false, maxBuffer: 1 << 26 })
  return r.exitCode === 0 ? srtLines(r.stdout) : []
}

async function subtitleLines (path: string, stream: number): Promise<string[]> {
  const r = await execa('ffmpeg', ['-v', 'error', '-nostdin', '-i', path, '-map', `0:${stream}`, '-f', 'srt', '-'], { reject: false, maxBuffer: 1 << 26 })
  return r.exitCode === 0 ? srtLines(r.stdout) : []
}

/** Share of `wanted`'s distinct lines found in `have`. */
function coverage (wanted: string[], have: string[]): number {
  const w = [...new Set(wanted)]
  const h = new Set(have)
  return w.length === 0 ? 1 : w.filter(l => h.has(l)).length / w.length
}

const ms = (s: number): string => `${(s * 1000).toFixed(1)} ms`

function frameRows (sv: Stream, src: number[], out: number[]): JudgeRow[] {
  const rows: JudgeRow[] = [{ check: 'video frames', ok: src.length === out.length && src.length > 0, source: `${src.length} decoded`, output: `${out.length} decoded` }]
  const n = Math.min(src.length, out.length)
  if (n === 0) { rows.push({ check: 'video timestamps', ok: false, source: `${src.length} frames`, output: `${out.length} frames`, note: 'nothing to compare' }); return rows }
  const finite = src.map((t, i) => [t, i] as const).filter(([t]) => Number.isFinite(t))
  const rising = finite.length > 0 && finite.every(([t], k) => k === 0 || t > (finite[k - 1] as readonly [number, number])[0])
  const o0 = out[0] as number
  if (!Number.isFinite(o0) || out.slice(0, n).some(t => !Number.isFinite(t))) {
    rows.push({ check: 'video timestamps', ok: false, source: `${src.length} frames`, output: 'a frame without a time', note: 'the output has frames the decoder gives no time' })
    return rows
  }
  if (rising) {
    const [s0, i0] = finite[0] as readonly [number, number]
    const oBase = out[i0] as number
    let worst = 0
    let worstAt = 0
    for (const [t, i] of finite) {
      if (i >= n) break
      const d = Math.abs(((out[i] as number) - oBase) - (t - s0))
      if (d > worst) { worst = d; worstAt = i }
    }
    const skipped = src.length - finite.length
    const ok = worst <= TIME_TOLERANCE_S + 1e-6
    rows.push({
      check: 'video timestamps', ok,
      source: `${src.length} frames over ${((finite.at(-1)?.[0] ?? s0) - s0).toFixed(3)} s`,
      output: `largest difference ${(worst * 1000).toFixed(3)} ms (frame ${worstAt})`,
      ...(ok ? (skipped > 0 ? { note: `${skipped} source frames without a decoded time not compared` } : {}) : { note: `frame ${worstAt} is shown ${(worst * 1000).toFixed(3)} ms away from the source's time (tolerance 1 ms)` })
    })
    return rows
  }
  // A source whose decoded times do not rise: the output's frames at the nominal rate are accepted.
  const falling = finite.filter(([t], k) => k > 0 && t <= (finite[k - 1] as readonly [number, number])[0]).length
  const candidates = [['r_frame_rate', rate(sv.r_frame_rate)], ['avg_frame_rate', rate(sv.avg_frame_rate)]] as const
  let best: { name: string, fps: number, worst: number, at: number } | undefined
  for (const [name, fps] of candidates) {
    if (!Number.isFinite(fps) || fps <= 0) continue
    let worst = 0
    let at = 0
    for (let i = 0; i < n; i++) {
      const d = Math.abs(((out[i] as number) - o0) - i / fps)
      if (d > worst) { worst = d; at = i }
    }
    if (best === undefined || worst < best.worst) best = { name, fps, worst, at }
  }
  const ok = best !== undefined && best.worst <= TIME_TOLERANCE_S + 1e-6
  rows.push({
    check: 'video timestamps', ok,
    source: `decoded times do not rise (${falling} of ${src.length} frames at or before the one before)`,
    output: best === undefined ? 'no nominal rate to compare with' : `largest difference from the nominal ${best.fps.toFixed(3)} fps (${best.name}) ${(best.worst * 1000).toFixed(3)} ms (frame ${best.at})`,
    note: ok ? 'source has no presentation to keep: the output\'s frames at the nominal rate are accepted' : 'the source\'s times do not rise and the output\'s frames are not at its nominal rate either'
  })
  return rows
}

const COLOUR_FIELDS = [['primaries', 'color_primaries'], ['transfer', 'color_transfer'], ['matrix', 'color_space'], ['range', 'color_range']] as const
const stated = (v: string | undefined): v is string => v !== undefined && v !== '' && !['unknown', 'unspecified', 'reserved'].includes(v)

function colourRow (sv: Stream, ov: Stream): JudgeRow {
  const fields = COLOUR_FIELDS.filter(([, key]) => stated(sv[key]))
  const show = (s: Stream): string => fields.length === 0 ? 'none stated' : fields.map(([name, key]) => `${name} ${s[key] ?? 'unknown'}`).join(', ')
  const lost = fields.filter(([, key]) => ov[key] !== sv[key]).map(([name]) => name)
  return {
    check: 'colour tags', ok: lost.length === 0, source: show(sv), output: show(ov),
    ...(lost.length > 0 ? { note: `${lost.join(', ')} not as the source states` } : {})
  }
}

const describe = (s: Stream): string => `${s.codec_type ?? '?'} ${s.codec_name ?? '?'} ${languageOf(s)}${titleOf(s) !== undefined ? ` "${titleOf(s)}"` : ''}`

function trackRows (remuxStreams: Stream[], remuxFirst: Map<number, number>, outStreams: Stream[], outFirst: Map<number, number>): JudgeRow[] {
  const rows: JudgeRow[] = []
  const rv = videoOf(remuxStreams)
  const ov = videoOf(outStreams)
  const rv0 = rv === undefined ? undefined : remuxFirst.get(rv.index)
  const ov0 = ov === undefined ? undefined : outFirst.get(ov.index)
  for (const type of ['audio', 'subtitle']) {
    // A track the remux declares but holds no packet has nothing to carry.
    const want = remuxStreams.filter(s => s.codec_type === type && s.disposition?.attached_pic !== 1 && remuxFirst.has(s.index))
    const have = outStreams.filter(s => s.codec_type === type && s.disposition?.attached_pic !== 1 && !isCaptionsTrack(s))
    want.forEach((w, k) => {
      const h = have[k]
      const label = `${type} ${k + 1}`
      if (h === undefined) { rows.push({ check: `${label} track`, ok: false, source: describe(w), output: 'missing', note: `${label} (${describe(w)}) was lost` }); return }
      const ok = h.codec_name === w.codec_name && languageOf(h) === languageOf(w)
      rows.push({ check: `${label} track`, ok, source: describe(w), output: describe(h), ...(ok ? {} : { note: `${label} is ${describe(h)}, the remux has ${describe(w)}` }) })
      const wf = remuxFirst.get(w.index)
      const hf = outFirst.get(h.index)
      if (wf === undefined || rv0 === undefined) return
      if (hf === undefined || ov0 === undefined) { rows.push({ check: `${label} offset`, ok: false, source: `${ms(wf - rv0)} from video`, output: 'no packets', note: `${label} holds no packet in the output` }); return }
      const so = wf - rv0
      const oo = hf - ov0
      const offOk = Math.abs(so - oo) <= OFFSET_TOLERANCE_S + 1e-6
      rows.push({ check: `${label} offset`, ok: offOk, source: `${ms(so)} from video`, output: `${ms(oo)} from video`, ...(offOk ? {} : { note: `${label} is out of sync by ${ms(oo - so)} against the remux (tolerance 2 ms)` }) })
    })
    if (have.length > want.length) {
      rows.push({ check: `${type} extra`, ok: true, source: `${want.length} tracks`, output: `${have.length} tracks`, note: `the output has ${have.length - want.length} ${type} track(s) the remux does not: ${have.slice(want.length).map(describe).join('; ')}` })
    }
  }
  return rows
}

const CAPTION_CODECS = new Set(['h264', 'mpeg2video'])

async function captionsRow (source: string, sv: Stream, outPath: string, outStreams: Stream[], remuxSubtitles: number, workDir: string): Promise<JudgeRow | undefined> {
  if (!CAPTION_CODECS.has(sv.codec_name ?? '')) return undefined
  const [cc1, cc3] = await Promise.all([captionField(source, workDir, 'first'), captionField(source, workDir, 'second')])
  const channels = [['CC1 (field 1)', cc1], ['CC3 (field 2)', cc3]] as const
  const present = channels.filter(([, lines]) => lines.length > 0)
  const subs = outStreams.filter(s => s.codec_type === 'subtitle')
  // The output's candidate caption tracks: those named so, and any subtitle track beyond the remux's.
  const candidates = subs.filter((s, k) => isCaptionsTrack(s) || k >= remuxSubtitles)
  if (present.length === 0) {
    return { check: 'captions', ok: true, source: 'no EIA-608 captions in the video', output: candidates.length === 0 ? 'no caption track' : candidates.map(describe).join('; ') }
  }
  const tracks = await Promise.all(candidates.map(async s => ({ s, lines: await subtitleLines(outPath, s.index) })))
  const found: string[] = []
  const lost: string[] = []
  const seen: string[] = []
  for (const [name, lines] of present) {
    const match = tracks.find(t => coverage([...lines], t.lines) >= 0.9)
    if (match !== undefined) { found.push(name); seen.push(`${name} in "${titleOf(match.s) ?? `track ${match.s.index}`}" (${match.s.codec_name ?? '?'})`) } else lost.push(name)
  }
  for (const t of tracks) if (!seen.some(x => x.includes(titleOf(t.s) ?? `track ${t.s.index}`))) seen.push(`"${titleOf(t.s) ?? `track ${t.s.index}`}" matches no source channel (${t.lines.length} lines)`)
  return {
    check: 'captions', ok: lost.length === 0,
    source: present.map(([name, lines]) => `${name}: ${new Set(lines).size} distinct lines`).join(', '),
    output: seen.length > 0 ? seen.join('; ') : 'no caption track',
    ...(lost.length > 0 ? { note: `${lost.join(' and ')} captions of the source are not in the output${found.length > 0 ? ` (${found.join(', ')} are)` : ''}` } : {})
  }
}

async function psnrRow (source: string, sv: Stream, output: string, ov: Stream, workDir: string): Promise<JudgeRow> {
  const sw = sv.width ?? 0
  const sh = sv.height ?? 0
  const ow = ov.width ?? 0
  const oh = ov.height ?? 0
  const fit = ow === sw && oh === sh ? '' : ow >= sw && oh >= sh ? `crop=${sw}:${sh}:0:0:exact=1,` : `scale=${sw}:${sh},`
  // Paired by frame number: both renumbered 0, 1, 2… in one time base, so the psnr filter's frame
  // sync takes frame i of each.
  // Converted to 4:4:4 before the crop: crop rounds a 4:2:0 picture's height down to an even one.
  const graph = `[0:${ov.index}]format=yuv444p,${fit}settb=AVTB,setpts=N[o];[1:${sv.index}]settb=AVTB,setpts=N,format=yuv444p[s];[o][s]psnr=stats_file=psnr.log`
  const r = await execa('ffmpeg', ['-v', 'error', '-nostdin', '-i', output, '-i', source, '-an', '-sn', '-dn', '-filter_complex', graph, '-fps_mode', 'passthrough', '-f', 'null', '-'], { cwd: workDir, reject: false })
  const log = await readFile(join(workDir, 'psnr.log'), 'utf8').catch(() => '')
  let worst = Infinity
  let worstAt = -1
  let frames = 0
  for (const line of log.split('\n')) {
    const m = /^n:(\d+) .*psnr_avg:(\S+)/.exec(line)
    if (m === null) continue
    frames++
    const v = m[2] === 'inf' ? Infinity : Number(m[2])
    if (v < worst) { worst = v; worstAt = Number(m[1]) - 1 }
  }
  if (frames === 0) return { check: 'picture (PSNR)', ok: false, source: `${sw}x${sh}`, output: `${ow}x${oh}`, note: `ffmpeg compared no frame: ${r.stderr.trim().split('\n').slice(-2).join(' / ')}` }
  const ok = worst >= MIN_PSNR_DB
  return {
    check: 'picture (PSNR)', ok, source: `${sw}x${sh}, decoded from the start`,
    output: `${ow}x${oh}${fit !== '' ? ` (${fit.startsWith('crop') ? 'cropped' : 'scaled'} to ${sw}x${sh})` : ''}, worst frame ${worstAt} at ${Number.isFinite(worst) ? worst.toFixed(2) : 'inf'} dB over ${frames} frames`,
    ...(ok ? {} : { note: `frame ${worstAt} is ${worst.toFixed(2)} dB from the source's (at least ${MIN_PSNR_DB} dB wanted)` })
  }
}

/** Judges `output` against `source`; see the module comment for the checks. */
export async function judge (sourcePath: string, outputPath: string, o: { workDir?: string } = {}): Promise<Judgement> {
  const source = resolve(sourcePath)
  const output = resolve(outputPath)
  const workDir = o.workDir ?? await mkdtemp(join(tmpdir(), 'swarm-judge-'))
  try {
    const [srcStreams, outStreams] = await Promise.all([streamsOf(source), streamsOf(output)])
    const sv = videoOf(srcStreams)
    const ov = videoOf(outStreams)
    if (sv === undefined || ov === undefined) {
      const rows: JudgeRow[] = [{ check: 'video', ok: false, source: sv === undefined ? 'no video stream' : describe(sv), output: ov === undefined ? 'no video stream' : describe(ov) }]
      return { ok: false, rows, reasons: ['no video stream to compare'] }
    }
    const rows: JudgeRow[] = []
    const [srcTimes, outTimes] = await Promise.all([decodedTimes(source, sv.index), decodedTimes(output, ov.index)])
    rows.push(...frameRows(sv, srcTimes, outTimes))
    let remuxBy: Judgement['remuxBy']
    let remuxSubtitles = 0
    try {
      const ref = await remux(source, workDir)
      remuxBy = ref.by
      const [remuxStreams, remuxFirst, outFirst] = await Promise.all([streamsOf(ref.path), firstPackets(ref.path), firstPackets(output)])
      remuxSubtitles = remuxStreams.filter(s => s.codec_type === 'subtitle').length
      const trackRowsFound = trackRows(remuxStreams, remuxFirst, outStreams, outFirst)
      rows.push({ check: 'reference remux', ok: true, source: `by ${ref.by}`, output: `${remuxStreams.filter(s => s.codec_type === 'audio' || s.codec_type === 'subtitle').length} audio/subtitle tracks in it`, ...(ref.ffmpegError !== undefined ? { note: ref.by === 'ffmpeg' ? `ffmpeg's remux of every stream failed (${ref.ffmpegError})` : `ffmpeg's remux failed (${ref.ffmpegError}); mkvmerge's used` } : {}) })
      rows.push(...trackRowsFound)
    } catch (e) {
      rows.push({ check: 'reference remux', ok: false, source: 'none', output: 'none', note: (e as Error).message })
    }
    rows.push(colourRow(sv, ov))
    const cc = await captionsRow(source, sv, output, outStreams, remuxSubtitles, workDir)
    if (cc !== undefined) rows.push(cc)
    rows.push(await psnrRow(source, sv, output, ov, workDir))
    const reasons = rows.filter(r => !r.ok).map(r => `${r.check}: ${r.note ?? `source ${r.source}; output ${r.output}`}`)
    return { ok: reasons.length === 0, rows, reasons, ...(remuxBy !== undefined ? { remuxBy } : {}) }
  } finally {
    if (o.workDir === undefined) await rm(workDir, { recursive: true, force: true })
  }
}

/** A row per check, as the corpus run prints them. */
export function formatJudgement (j: Judgement): string {
  return j.rows.map(r => `${r.ok ? 'ok  ' : 'FAIL'} ${r.check}: source ${r.source}; output ${r.output}${r.note !== undefined ? ` (${r.note})` : ''}`).join('\n')
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [source, output] = process.argv.slice(2)
  if (source === undefined || output === undefined) {
    process.stderr.write('usage: node dist/scripts/corpus-judge.js SOURCE OUTPUT.mkv\n')
    process.exit(2)
  }
  judge(source, output).then((j) => {
    process.stdout.write(`${formatJudgement(j)}\n${j.ok ? 'right' : 'WRONG'}\n`)
    process.exitCode = j.ok ? 0 : 1
  }, (err: unknown) => { process.stderr.write(`${(err as Error).message}\n`); process.exit(2) })
}
