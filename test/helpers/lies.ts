/**
 * Results that are valid H.264 of the right frame count and size but the wrong pictures, for the
 * picture check's tests: made from a segment the way a lying worker would, with ffmpeg's libx264,
 * or with the real x264 CLI and the job's settings.
 */
import { execa } from 'execa'
import { readFile, writeFile } from 'node:fs/promises'

/** A font every Debian ffmpeg with drawtext can use (fonts-dejavu-core). */
export const ADVERT_FONT = '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf'

export type Lie = 'negate' | 'black' | 'shift-forward' | 'shift-back' | 'negate-chroma' | 'greyscale' | 'advert' | 'blur'

/** The ffmpeg filter of each lie, also what a lying worker's shim x264 runs (test/faults). */
export const LIE_FILTERS: Record<Lie, string> = {
  negate: 'negate',
  black: 'lutyuv=y=16:u=128:v=128',
  // Frame N shows the source's frame N+1; the last is repeated to keep the count.
  'shift-forward': 'trim=start_frame=1,setpts=PTS-STARTPTS,tpad=stop=1:stop_mode=clone',
  // Frame N shows the source's frame N-1; the first is repeated.
  'shift-back': 'tpad=start=1:start_mode=clone',
  'negate-chroma': 'lutyuv=u=negval:v=negval',
  greyscale: 'hue=s=0',
  // A line of 16 px letters in the bottom-left corner of every frame.
  advert: `drawtext=fontfile=${ADVERT_FONT}:text='BUY NOW AT EXAMPLE.COM':fontsize=16:fontcolor=white:borderw=1:bordercolor=black:x=8:y=h-24`,
  // Blurred, then encoded at --crf 51 whatever the job asks (encodeLie appends it).
  blur: 'gblur=sigma=2'
}

/** Settings a lie encodes with on top of the job's (x264 takes the last value of an option). */
const LIE_SETTINGS: Partial<Record<Lie, string>> = { blur: '--crf 51' }

export interface LieOptions {
  /** One frame of the result, at this position, is black; the others are honest. */
  blackFrameAt?: number
}

/**
 * Encodes `frames` frames of a segment from `fromTime` with a lie applied (or none: the source's
 * frames, e.g. another chunk's). With `job`, the way a lying worker would hand it in to an
 * originator: the real x264 CLI with the job's settings at the source's pixel format, so the result
 * has the job's structure (media/structure.ts) and only its pictures lie.
 */
export async function encodeLie (segmentPath: string, fromTime: number, frames: number, lie: Lie | 'none', out: string, job?: { settings: string, pixFmt: string }, o: LieOptions = {}): Promise<string> {
  const from = (fromTime - 0.0005).toFixed(6)
  const filters = [`select='gte(t,${from})'`, `format=${job?.pixFmt ?? 'yuv420p'}`, ...(lie === 'none' ? ['tpad=stop=-1:stop_mode=clone'] : [LIE_FILTERS[lie]])]
  if (o.blackFrameAt !== undefined) filters.push(`drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='eq(n,${o.blackFrameAt})'`)
  const decode = ['-v', 'error', '-nostdin', '-y', '-copyts', '-i', segmentPath, '-map', '0:v:0', '-vf', filters.join(','), '-frames:v', String(frames), '-fps_mode', 'passthrough']
  const extra = lie === 'none' ? [] : (LIE_SETTINGS[lie] ?? '').split(/\s+/).filter(a => a !== '')
  if (job === undefined) {
    await execa('ffmpeg', [...decode, '-c:v', 'libx264', '-preset', 'ultrafast', '-crf', extra.includes('--crf') ? '51' : '20', '-f', 'h264', out])
    return out
  }
  await execa('ffmpeg', [...decode, '-strict', '-1', '-f', 'yuv4mpegpipe', '-'])
    .pipe('x264', [...job.settings.split(/\s+/).filter(a => a !== ''), ...extra, '--stitchable', '--frames', String(frames), '--demuxer', 'y4m', '--quiet', '--output', out, '-'])
  return out
}

/**
 * A copy of an honest result whose last slice is damaged in its middle (16 bytes flipped), as a
 * worker with bad RAM or a liar that hopes the end of a chunk is never looked at would send it.
 */
export async function corruptLastSlice (resultPath: string, out: string): Promise<string> {
  const bytes = Buffer.from(await readFile(resultPath))
  const start = bytes.lastIndexOf(Buffer.from([0, 0, 1]))
  const middle = start + Math.floor((bytes.length - start) / 2)
  for (let i = middle; i < Math.min(bytes.length, middle + 16); i++) bytes[i] = (bytes[i] as number) ^ 0x55
  await writeFile(out, bytes)
  return out
}
