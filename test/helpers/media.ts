import { execa } from 'execa'
import { readFile, writeFile } from 'node:fs/promises'

export interface MkvIdentity {
  tracks: Array<{ id: number, type: string, codec: string, properties: { language?: string, track_name?: string, default_track?: boolean, forced_track?: boolean } }>
  attachments: Array<{ file_name: string, content_type?: string, size: number }>
  chapters: Array<{ num_entries: number }>
}

/** mkvmerge's own view of a file: tracks with their properties, attachments and chapters. */
export async function identify (path: string): Promise<MkvIdentity> {
  const { stdout } = await execa('mkvmerge', ['-J', path])
  return JSON.parse(stdout) as MkvIdentity
}

/** Video frame timestamps (seconds) in display order. */
export async function videoTimes (path: string): Promise<number[]> {
  const { stdout } = await execa('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', path])
  return stdout.split('\n').filter(l => l !== '').map(Number).sort((a, b) => a - b)
}

/** Mean luma PSNR of a file's frames against the source's, frame N against frame N. */
export async function psnrAgainst (file: string, source: string): Promise<number> {
  const { stderr } = await execa('ffmpeg', ['-nostdin', '-i', file, '-i', source, '-lavfi', '[0:v]setpts=N[a];[1:v]setpts=N[b];[a][b]psnr', '-f', 'null', '-'])
  const m = /PSNR y:([\d.]+|inf)/.exec(stderr)
  if (m === null) throw new Error(`ffmpeg printed no PSNR for ${file}`)
  return m[1] === 'inf' ? 100 : Number(m[1])
}

/** Frames a decoder really produces (decodes the whole stream). */
export async function decodedFrameCount (path: string): Promise<number> {
  const { stdout } = await execa('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', path])
  // Program streams print an empty side-data column after the count ("150,").
  return Number(stdout.trim().split(/[,\s]/)[0])
}

export async function streamSummary (path: string): Promise<Array<{ codec_type: string, codec_name: string, profile?: string, pix_fmt?: string, duration?: number }>> {
  const { stdout } = await execa('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,codec_name,profile,pix_fmt:format=duration', '-of', 'json', path])
  return (JSON.parse(stdout) as { streams: Array<{ codec_type: string, codec_name: string, profile?: string, pix_fmt?: string }> }).streams
}

/** Duration of each stream in seconds, measured from its packets (container tags can lie). */
export async function streamDurations (path: string): Promise<number[]> {
  const { stdout } = await execa('ffprobe', ['-v', 'error', '-show_entries', 'packet=stream_index,pts_time,duration_time', '-of', 'csv=p=0', path])
  const ends = new Map<number, number>()
  for (const line of stdout.split('\n')) {
    const [idx, pts, dur] = line.split(',')
    if (idx === undefined || pts === undefined || pts === 'N/A') continue
    const end = Number(pts) + (dur === undefined || dur === 'N/A' ? 0 : Number(dur))
    ends.set(Number(idx), Math.max(ends.get(Number(idx)) ?? 0, end))
  }
  return [...ends.entries()].sort((a, b) => a[0] - b[0]).map(e => e[1])
}

/** The first `fraction` of a file's bytes at `out`, as an interrupted download or copy leaves it. */
export async function truncatedCopy (path: string, fraction: number, out: string): Promise<string> {
  const bytes = await readFile(path)
  await writeFile(out, bytes.subarray(0, Math.floor(bytes.length * fraction)))
  return out
}

/** How far any frame of a merged output is from its source frame's time, both counted from their first frame (seconds). */
export function worstFrameTimeOffset (source: { video: { frames: Array<{ time: number }> } }, output: { video: { frames: Array<{ time: number }> } }): number {
  const s0 = source.video.frames[0]?.time ?? 0
  const o0 = output.video.frames[0]?.time ?? 0
  return Math.max(...source.video.frames.map((f, i) => Math.abs((f.time - s0) - ((output.video.frames[i]?.time ?? NaN) - o0))))
}
