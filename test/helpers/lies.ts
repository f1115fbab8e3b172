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

/** Luma of every frame of an H.264 file, 8 bits, and whether ffmpeg decoded it without a word. */
async function decodeLuma (path: string): Promise<{ clean: boolean, frames: Buffer[], width: number }> {
  const probe = await execa('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', '-f', 'h264', path])
  const [width, height] = probe.stdout.trim().split(',').map(Number) as [number, number]
  const run = await execa('ffmpeg', ['-v', 'error', '-nostdin', '-f', 'h264', '-i', path, '-map', '0:v:0', '-fps_mode', 'passthrough', '-pix_fmt', 'gray', '-f', 'rawvideo', '-'], { encoding: 'buffer', reject: false })
  const all = Buffer.from(run.stdout)
  const size = width * height
  const frames: Buffer[] = []
  for (let at = 0; at + size <= all.length; at += size) frames.push(all.subarray(at, at + size))
  return { clean: run.exitCode === 0 && Buffer.from(run.stderr).length === 0, frames, width }
}

/** How far the mean of an 8x8 luma block moved between two decodes, at most, over every frame. */
function worstBlockShift (a: Buffer[], b: Buffer[], width: number): number {
  let worst = 0
  for (let f = 0; f < Math.min(a.length, b.length); f++) {
    const [x, y] = [a[f] as Buffer, b[f] as Buffer]
    const height = x.length / width
    for (let by = 0; by + 8 <= height; by += 8) {
      for (let bx = 0; bx + 8 <= width; bx += 8) {
        let sum = 0
        for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) { const i = (by + r) * width + bx + c; sum += (x[i] as number) - (y[i] as number) }
        worst = Math.max(worst, Math.abs(sum / 64))
      }
    }
  }
  return worst
}

/**
 * Damage a viewer sees: some 8x8 block of a frame shows another shade altogether (its mean luma
 * this many levels off, of 255). Smaller concealed damage can pass the picture check where its
 * frame is not drawn (docs/security.md); this is the damage the check promises to catch.
 */
const VISIBLE_BLOCK_SHIFT = 96

/**
 * A copy of an honest result whose last slice is damaged (16 bytes flipped), as a worker with bad
 * RAM or a liar that hopes the end of a chunk is never looked at would send it: damage the decoder
 * conceals without a word (its bits still parse) and a viewer sees. What 16 flipped bytes do
 * depends on where they land in the bitstream, which is not the same on every machine (each makes
 * the fixture anew; its 10-bit pictures come through swscale, whose SIMD code differs by CPU): 16
 * bytes mid-slice gave a block 1.21 times the check's bound on one machine, 0.23 on another. So
 * places are tried from the slice's middle outwards until one gives such damage; none is an error.
 */
export async function corruptLastSlice (resultPath: string, out: string): Promise<string> {
  const honest = await readFile(resultPath)
  const reference = await decodeLuma(resultPath)
  const start = honest.lastIndexOf(Buffer.from([0, 0, 1]))
  const span = honest.length - start
  for (const share of [0.5, 0.375, 0.625, 0.25, 0.75, 0.125, 0.875, 0.3125, 0.6875, 0.1875, 0.8125]) {
    const bytes = Buffer.from(honest)
    const at = start + Math.floor(span * share)
    for (let i = at; i < Math.min(bytes.length, at + 16); i++) bytes[i] = (bytes[i] as number) ^ 0x55
    await writeFile(out, bytes)
    const damaged = await decodeLuma(out)
    if (damaged.clean && damaged.frames.length === reference.frames.length && worstBlockShift(reference.frames, damaged.frames, reference.width) >= VISIBLE_BLOCK_SHIFT) return out
  }
  throw new Error(`no place in the last slice of ${resultPath} where 16 flipped bytes decode without an error and a block shows another shade`)
}
