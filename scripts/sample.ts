/**
 * Sample material made with ffmpeg's lavfi sources: what the demo encodes and what the tests'
 * fixtures are built from. An open-GOP, B-pyramid, High 10 Matroska file with two audio tracks,
 * ASS subtitles, a font attachment and chapters: the kind of file fansubbers feed swarm.
 */
import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export interface SampleOptions { seconds: number, size: string }

const ASS = `[Script Info]
ScriptType: v4.00+
PlayResX: 320
PlayResY: 180

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,DejaVu Sans,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:01.00,0:00:03.00,Default,,0,0,0,,First line
Dialogue: 0,0:00:05.00,0:00:08.00,Default,,0,0,0,,Second line
`

const CHAPTERS_10S = `CHAPTER01=00:00:00.000
CHAPTER01NAME=Opening
CHAPTER02=00:00:04.000
CHAPTER02NAME=Middle
CHAPTER03=00:00:08.000
CHAPTER03NAME=End
`

const FONT_CANDIDATES = ['/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf']

export async function x264FromLavfi (work: string, out: string, o: { seconds: number, pixFmt: string, x264: string[], size?: string, rate?: number, src?: string }): Promise<void> {
  const ff = execa('ffmpeg', ['-v', 'error', '-nostdin', '-f', 'lavfi', '-i', `${o.src ?? 'testsrc2'}=size=${o.size ?? '320x180'}:rate=${o.rate ?? 24}`,
    '-t', String(o.seconds), '-pix_fmt', o.pixFmt, '-strict', '-1', '-f', 'yuv4mpegpipe', '-'], { buffer: { stdout: false }, cwd: work })
  const enc = execa('x264', ['--quiet', '--no-progress', '--demuxer', 'y4m', ...o.x264, '-o', out, '-'], { stdin: 'pipe', cwd: work })
  ff.stdout?.pipe(enc.stdin as NodeJS.WritableStream)
  await Promise.all([ff, enc])
}

export async function makeOpenGop10bit (work: string, out: string, o: SampleOptions = { seconds: 10, size: '320x180' }): Promise<void> {
  const video = join(work, 'v10.264')
  // keyint 50 with 3 B-frames puts open-GOP leading B-frames after each I-frame: the case a naive cut loses.
  await x264FromLavfi(work, video, {
    seconds: o.seconds, size: o.size, pixFmt: 'yuv420p10le',
    x264: ['--profile', 'high10', '--output-depth', '10', '--preset', 'veryfast', '--open-gop', '--b-pyramid', 'normal', '--bframes', '3',
      '--b-adapt', '0', '--keyint', '50', '--min-keyint', '50', '--no-scenecut', '--crf', '24']
  })
  const a1 = join(work, 'a1.opus'); const a2 = join(work, 'a2.m4a')
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', `sine=frequency=440:duration=${o.seconds}`, '-c:a', 'libopus', '-b:a', '48k', a1])
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', `sine=frequency=880:duration=${o.seconds}`, '-ac', '2', '-c:a', 'aac', '-b:a', '64k', a2])
  const subs = join(work, 'subs.ass'); const chapters = join(work, 'chapters.txt')
  await writeFile(subs, ASS); await writeFile(chapters, CHAPTERS_10S)
  const font = FONT_CANDIDATES.find(f => existsSync(f))
  let fontPath = font
  if (fontPath === undefined) {
    // No system font: attach a stand-in so the attachment path is still exercised.
    fontPath = join(work, 'StandIn.ttf'); await writeFile(fontPath, Buffer.alloc(4096, 7))
  }
  await execa('mkvmerge', ['--quiet', '-o', out,
    '--track-name', '0:Main video', '--language', '0:jpn', '--default-duration', '0:24fps', video,
    '--language', '0:jpn', '--track-name', '0:Japanese 2.0', '--default-track-flag', '0:yes', a1,
    '--language', '0:eng', '--track-name', '0:English commentary', '--default-track-flag', '0:no', a2,
    '--language', '0:eng', '--track-name', '0:Signs & Songs', '--forced-display-flag', '0:yes', subs,
    '--attachment-mime-type', 'font/ttf', '--attach-file', fontPath,
    '--chapters', chapters])
}

