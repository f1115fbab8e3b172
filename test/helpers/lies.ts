/**
 * Results that are valid H.264 of the right frame count and size but the wrong pictures, for the
 * picture check's tests: made from a segment the way a lying worker would, with ffmpeg's libx264.
 */
import { execa } from 'execa'

export type Lie = 'negate' | 'black' | 'shift-forward' | 'shift-back'

const FILTERS: Record<Lie, string> = {
  negate: 'negate',
  black: 'lutyuv=y=16:u=128:v=128',
  // Frame N shows the source's frame N+1; the last is repeated to keep the count.
  'shift-forward': 'trim=start_frame=1,setpts=PTS-STARTPTS,tpad=stop=1:stop_mode=clone',
  // Frame N shows the source's frame N-1; the first is repeated.
  'shift-back': 'tpad=start=1:start_mode=clone'
}

/**
 * Encodes `frames` frames of a segment from `fromTime` with a lie applied (or none: the source's
 * frames, e.g. another chunk's). With `job`, the way a lying worker would hand it in to an
 * originator: the real x264 CLI with the job's settings at the source's pixel format, so the result
 * has the job's structure (media/structure.ts) and only its pictures lie.
 */
export async function encodeLie (segmentPath: string, fromTime: number, frames: number, lie: Lie | 'none', out: string, job?: { settings: string, pixFmt: string }): Promise<string> {
  const from = (fromTime - 0.0005).toFixed(6)
  const vf = [`select='gte(t,${from})'`, `format=${job?.pixFmt ?? 'yuv420p'}`, ...(lie === 'none' ? ['tpad=stop=-1:stop_mode=clone'] : [FILTERS[lie]])].join(',')
  const decode = ['-v', 'error', '-nostdin', '-y', '-copyts', '-i', segmentPath, '-map', '0:v:0', '-vf', vf, '-frames:v', String(frames), '-fps_mode', 'passthrough']
  if (job === undefined) {
    await execa('ffmpeg', [...decode, '-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '20', '-f', 'h264', out])
    return out
  }
  await execa('ffmpeg', [...decode, '-strict', '-1', '-f', 'yuv4mpegpipe', '-'])
    .pipe('x264', [...job.settings.split(/\s+/).filter(a => a !== ''), '--stitchable', '--frames', String(frames), '--demuxer', 'y4m', '--quiet', '--output', out, '-'])
  return out
}
