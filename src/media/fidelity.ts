import { basename } from 'node:path'
import { captionsTrackName, isCaptionsTrackName, type CaptionsChannel } from './captions.js'
import { compareCutPictures } from './cut-pictures.js'
import { attachmentNamesOf, probeMedia, syncStartsOf, type MediaInfo, type PacketSpan, type StreamInfo, type VideoColour } from './probe.js'
import { colourSetBy } from './colour.js'
import type { EncoderSettings } from './encoders/index.js'

/**
 * The one place where "nothing lost" is decided: the merged output against its source, from
 * metadata and packet times, and (with chunkStarts) the pictures where the chunks join. Every check says what the source had and what the
 * output has, so a failed job can print the table.
 */
export interface FidelityCheck {
  name: string
  ok: boolean
  source: string
  output: string
  /** Why it failed, or what was deliberately not carried. */
  detail?: string
}

export interface FidelityReport {
  ok: boolean
  checks: FidelityCheck[]
}

/** Matroska stores times in milliseconds; half of one is rounding, a whole one is the promise. */
const OFFSET_TOLERANCE_S = 0.001

const COLOUR_FIELDS: Array<keyof VideoColour> = ['range', 'primaries', 'transfer', 'matrix', 'chromaLocation', 'sar']

function describeTrack (s: StreamInfo): string {
  const flags = [s.default ? 'default' : '', s.forced ? 'forced' : ''].filter(Boolean).join('+')
  // Matroska writes "und" for a track without a language; other containers leave it out.
  return `${s.type} ${s.codec}${s.language !== undefined && s.language !== 'und' ? ` ${s.language}` : ''}${s.title !== undefined ? ` "${s.title}"` : ''}${flags !== '' ? ` (${flags})` : ''}`
}

/** Audio and subtitle tracks: what the output must carry, in order (the captions track swarm adds is checked on its own). */
const carriedTracks = (info: MediaInfo): StreamInfo[] => info.streams.filter(s => (s.type === 'audio' || s.type === 'subtitle') && !s.attachedPic && !isCaptionsTrackName(s.title) && s.packetSpan !== undefined)

/** What prepareSource did to a source's frame times that do not rise, if it had to. */
const retimedNote = (source: MediaInfo): string | undefined => source.video.cut?.by === 'decode' ? source.video.cut.retimed : undefined

function frameChecks (source: MediaInfo, output: MediaInfo): FidelityCheck[] {
  const sf = source.video.frames
  const of = output.video.frames
  const frames: FidelityCheck = { name: 'video frames', ok: sf.length === of.length, source: String(sf.length), output: String(of.length) }
  let worst = 0
  let worstAt = 0
  const s0 = sf[0]?.time ?? 0
  const o0 = of[0]?.time ?? 0
  for (let i = 0; i < Math.min(sf.length, of.length); i++) {
    const d = Math.abs(((of[i]?.time ?? 0) - o0) - ((sf[i]?.time ?? 0) - s0))
    if (d > worst) { worst = d; worstAt = i }
  }
  const times: FidelityCheck = {
    name: 'video timestamps',
    ok: frames.ok && worst <= OFFSET_TOLERANCE_S,
    source: `${sf.length} frames over ${((sf[sf.length - 1]?.time ?? 0) - s0).toFixed(3)} s`,
    output: `largest difference ${(worst * 1000).toFixed(3)} ms (frame ${worstAt})`,
    ...(worst > OFFSET_TOLERANCE_S ? { detail: 'a frame is shown at another time than in the source (more than 1 ms)' } : retimedNote(source) !== undefined ? { detail: retimedNote(source) } : {})
  }
  return [frames, times]
}

function trackChecks (source: MediaInfo, output: MediaInfo): FidelityCheck[] {
  const st = carriedTracks(source).map(describeTrack)
  const ot = carriedTracks(output).map(describeTrack)
  const checks: FidelityCheck[] = [{
    name: 'tracks', ok: st.length === ot.length && st.every((t, i) => t === ot[i]), source: st.join('; ') || 'none', output: ot.join('; ') || 'none'
  }]
  const empty = source.streams.filter(s => (s.type === 'audio' || s.type === 'subtitle') && !s.attachedPic && s.packetSpan === undefined)
  if (empty.length > 0) {
    checks.push({
      name: 'empty tracks', ok: true, source: empty.map(describeTrack).join('; '), output: 'none',
      detail: 'declared by the source but holding no packets: nothing to carry'
    })
  }
  const others = source.streams.filter(s => s.type !== 'video' && s.type !== 'audio' && s.type !== 'subtitle' && s.type !== 'attachment')
  if (others.length > 0) {
    checks.push({
      name: 'data streams', ok: true, source: others.map(s => `${s.type} ${s.codec}`).join('; '), output: 'none',
      detail: 'not carried: Matroska holds audio, video and subtitles only (a plain mkvmerge of the source drops them too)'
    })
  }
  return checks
}

function offsetChecks (source: MediaInfo, output: MediaInfo): FidelityCheck[] {
  // Every packet, priming included, on both sides: what a copy of the track keeps (syncStartsOf).
  const ss = syncStartsOf(source)
  const os = syncStartsOf(output)
  const sv = ss.find(t => t.type === 'video')?.start ?? 0
  const ov = os.find(t => t.type === 'video')?.start ?? 0
  const checks: FidelityCheck[] = []
  for (const type of ['audio', 'subtitle']) {
    const a = ss.filter(t => t.type === type)
    const b = os.filter(t => t.type === type)
    for (let k = 0; k < Math.min(a.length, b.length); k++) {
      const so = (a[k]?.start ?? 0) - sv
      const oo = (b[k]?.start ?? 0) - ov
      const ok = Math.abs(so - oo) <= OFFSET_TOLERANCE_S
      checks.push({
        name: `${type} ${k + 1} start`, ok, source: `${(so * 1000).toFixed(1)} ms from video`, output: `${(oo * 1000).toFixed(1)} ms from video`,
        ...(ok ? {} : { detail: `out of sync by ${((oo - so) * 1000).toFixed(1)} ms` })
      })
    }
  }
  // Durations from packet times (first timestamp to the end of the last packet): containers'
  // own figures are estimates (a TS's can be off by a tenth of a second). An edit list or AAC
  // priming may trim part of one frame, which mkvmerge keeps whole: one frame is the tolerance.
  const sd = audioSpans(source)
  const od = audioSpans(output)
  if (retimedNote(source) !== undefined) {
    // Timestamps that fall back (a file joined from two without rewriting them) give no span to compare.
    if (sd.length > 0) checks.push({ name: 'audio duration', ok: true, source: 'timestamps that do not rise', output: `${od.map(a => `${a.span.toFixed(3)} s`).join(', ')}`, detail: 'not compared: the source\'s frame times were replaced (see video timestamps)' })
    return checks
  }
  for (let k = 0; k < Math.min(sd.length, od.length); k++) {
    const a = sd[k] as { span: number, frame: number }
    const b = od[k] as { span: number, frame: number }
    const tolerance = Math.max(OFFSET_TOLERANCE_S, a.frame, b.frame)
    const ok = Math.abs(a.span - b.span) <= tolerance + 1e-6
    checks.push({
      name: `audio ${k + 1} duration`, ok, source: `${a.span.toFixed(3)} s`, output: `${b.span.toFixed(3)} s`,
      ...(ok ? {} : { detail: `differs by more than one audio frame (${(tolerance * 1000).toFixed(1)} ms)` })
    })
  }
  return checks
}

/** Each audio track's span from its packets (first timestamp to the end of the last packet) and its longest packet. */
function audioSpans (info: MediaInfo): Array<{ span: number, frame: number }> {
  // Discarded packets (AAC priming) count here: mkvmerge and ffmpeg keep them, whole, when they
  // copy such a track, so the span compared is the packets', not the trimmed play time.
  return info.streams.filter(s => s.type === 'audio' && s.packetSpan !== undefined)
    .map(s => s.packetSpan as PacketSpan)
    .map(p => ({ span: p.end - p.first, frame: p.longest }))
}

function colourCheck (source: MediaInfo, output: MediaInfo, settings: EncoderSettings | undefined): FidelityCheck {
  const setBy = colourSetBy(settings)
  const fields = COLOUR_FIELDS.filter(k => !setBy.has(k))
  const show = (c: VideoColour): string => fields.map(k => `${k} ${c[k] ?? 'unknown'}`).join(', ')
  // An H.264 stream that states no chroma location is read by ffmpeg as "left", the standard's
  // default: a source that states none has nothing the output could have kept or lost. Likewise
  // x265 and the AV1 encoders always code a range, limited unless told: what every player takes
  // a YUV source that states none to be. The other way round, "left" is what a player takes 4:2:0
  // that states no chroma location to be: aomenc 3.6 codes none (chroma_sample_position 0) from
  // any y4m but an 8-bit one that says so, which loses nothing a viewer sees.
  const same = (k: keyof VideoColour): boolean => source.video.colour[k] === output.video.colour[k] ||
    (k === 'chromaLocation' && source.video.colour.chromaLocation === undefined && output.video.colour.chromaLocation === 'left') ||
    (k === 'chromaLocation' && source.video.colour.chromaLocation === 'left' && output.video.colour.chromaLocation === undefined) ||
    (k === 'range' && source.video.colour.range === undefined && output.video.colour.range === 'tv' && !source.video.pixFmt.startsWith('yuvj'))
  const ok = fields.every(same)
  return {
    name: 'colour and aspect', ok, source: show(source.video.colour), output: show(output.video.colour),
    ...(fields.length < 6 ? { detail: `${6 - fields.length} set by the settings, not compared` } : {})
  }
}

/**
 * Compares a merged output with its source: frame count and per-frame timestamps; every audio and
 * subtitle track (type, codec, language, name, flags), its start relative to the video (1 ms) and
 * duration; colour description and SAR (except what the settings set); chapters, attachments, and
 * captions carried inside the video.
 */
export async function checkFidelity (source: MediaInfo, outputPath: string, o: { settings?: EncoderSettings, captionsDropped?: boolean, captionChannels?: CaptionsChannel[], output?: MediaInfo | Promise<MediaInfo>, chunkStarts?: number[], cutsProven?: number, signal?: AbortSignal } = {}): Promise<FidelityReport> {
  // Everything compared comes from the two probes (every packet of each file): no other read.
  // The caller may have probed the output already (the merge does).
  const output = await (o.output ?? probeMedia(outputPath))
  const sa = attachmentNamesOf(source)
  const oa = attachmentNamesOf(output)
  const checks: FidelityCheck[] = [
    ...frameChecks(source, output),
    ...trackChecks(source, output),
    ...offsetChecks(source, output),
    colourCheck(source, output, o.settings),
    { name: 'chapters', ok: source.chapterCount === output.chapterCount, source: String(source.chapterCount), output: String(output.chapterCount) },
    { name: 'attachments', ok: sa.join('\n') === oa.join('\n'), source: sa.join(', ') || 'none', output: oa.join(', ') || 'none' }
  ]
  if (o.chunkStarts !== undefined && o.chunkStarts.length > 0) checks.push(await cutPicturesCheck(source, outputPath, output, o.chunkStarts, o.cutsProven ?? 0, o.signal))
  else if ((o.cutsProven ?? 0) > 0) {
    checks.push({ name: 'pictures at cuts', ok: true, source: `${o.cutsProven} cuts, each at an IDR or IRAP picture`, output: 'not decoded: by the codec\'s rules a decode from such a picture shows what a decode across it does' })
  }
  if (source.video.closedCaptions) {
    const tracks = output.streams.filter(s => s.type === 'subtitle' && isCaptionsTrackName(s.title))
    // Each channel the source's captions hold (CC1, CC3) comes out as a track of its own.
    const missing = (o.captionChannels ?? ['CC1']).filter(c => !tracks.some(t => t.title === captionsTrackName(c)))
    const carried = output.video.closedCaptions || (tracks.length > 0 && missing.length === 0)
    checks.push({
      name: 'closed captions', ok: carried || o.captionsDropped === true, source: `CEA-608/708 in the video${o.captionChannels !== undefined ? ` (${o.captionChannels.join(', ') || 'no cue'})` : ''}`,
      output: output.video.closedCaptions ? 'in the video' : tracks.length > 0 ? tracks.map(t => `subtitle track "${t.title ?? ''}" (${t.codec})`).join(', ') : 'none',
      ...(carried ? {} : { detail: o.captionsDropped === true ? 'left out at the user\'s request (--drop-captions)' : `the captions were lost${missing.length > 0 ? `: ${missing.join(', ')}` : ''}` })
    })
  }
  return { ok: checks.every(c => c.ok), checks }
}

/** The pictures where the chunks join, against the source decoded across each cut (cut-pictures.ts). */
async function cutPicturesCheck (source: MediaInfo, outputPath: string, output: MediaInfo, chunkStarts: number[], cutsProven: number, signal?: AbortSignal): Promise<FidelityCheck> {
  const r = await compareCutPictures(source, outputPath, chunkStarts, { output, ...(signal !== undefined ? { signal } : {}) })
  const worst = r.worst !== undefined ? `worst ${r.worst.psnr.toFixed(1)} dB (frame ${r.worst.frame})` : 'none compared'
  return {
    name: 'pictures at cuts',
    ok: r.bad.length === 0,
    source: `${r.frames.length} frames where ${chunkStarts.length} chunks start, decoded across the cut${cutsProven > 0 ? ` (${cutsProven} more cuts at IDR or IRAP pictures, not decoded)` : ''}`,
    output: `median ${r.median.toFixed(1)} dB, ${worst}`,
    ...(r.bad.length > 0 ? { detail: `${r.bad.length} frame${r.bad.length === 1 ? '' : 's'} (first: ${r.bad[0]?.frame}) far from the source's picture: a chunk did not decode from its cut` } : {})
  }
}

/** The checks as a table for a terminal or an error message. */
export function formatFidelity (report: FidelityReport, outputPath?: string): string {
  const rows = report.checks.map(c => `${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: source ${c.source}; output ${c.output}${c.detail !== undefined ? ` (${c.detail})` : ''}`)
  return [`fidelity ${report.ok ? 'ok' : 'FAILED'}${outputPath !== undefined ? ` for ${basename(outputPath)}` : ''}`, ...rows.map(r => `  ${r}`)].join('\n')
}
