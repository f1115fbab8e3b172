import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encoderArgs, encoderFor, startPipeSource, y4mPixFmt, type MediaInfo, type EncoderSettings } from '../src/media/index.js'

export interface BenchClip { path: string, seconds: number, width: number, height: number }

/**
 * A CPU-heavy 720p source (moving test pattern plus temporal noise, so x264 has real work),
 * encoded near-losslessly with 1 s GOPs and cached under the OS temp dir.
 */
export async function ensureBenchClip (seconds = 30): Promise<BenchClip> {
  const dir = join(tmpdir(), 'swarm-bench')
  const path = join(dir, `clip-720p-${seconds}s-v2.mkv`)
  if (!existsSync(path)) {
    await mkdir(dir, { recursive: true })
    const tmp = `${path}.partial.mkv`
    await rm(tmp, { force: true })
    await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=24,noise=alls=4:allf=t`,
      '-f', 'lavfi', '-i', `sine=frequency=440:duration=${seconds}`, '-t', String(seconds),
      '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '14', '-g', '24', '-bf', '3', '-pix_fmt', 'yuv420p',
      '-c:a', 'aac', '-b:a', '96k', tmp])
    await rename(tmp, path)
  }
  return { path, seconds, width: 1280, height: 720 }
}

/**
 * Mean SSIM ("All") of `distorted` against `reference`, frame by frame in display order. Each file
 * is decoded on its own with frames passed through untouched (no rate conversion) into a FIFO.
 * y4m carries a frame rate that ffmpeg guesses from the container (a merged MKV with a timestamp
 * file reads as 500/21 fps, the source as 24/1), and the ssim filter pairs frames by timestamp, so
 * both inputs are restamped as 0, 1, 2, … in one time base: frame N is paired with frame N.
 */
export async function ssim (distorted: string, reference: string): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'swarm-ssim-'))
  const fifos = [join(dir, 'a.y4m'), join(dir, 'b.y4m')]
  try {
    await execa('mkfifo', fifos)
    const decode = (input: string, fifo: string) => execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-i', input, '-map', '0:v:0', '-fps_mode', 'passthrough', '-pix_fmt', 'yuv420p', '-f', 'yuv4mpegpipe', fifo])
    const decoders = [decode(distorted, fifos[0]!), decode(reference, fifos[1]!)]
    const measure = execa('ffmpeg', ['-nostdin', '-i', fifos[0]!, '-i', fifos[1]!, '-lavfi', '[0:v]settb=AVTB,setpts=N[a];[1:v]settb=AVTB,setpts=N[b];[a][b]ssim', '-f', 'null', '-'])
    const [{ stderr }] = await Promise.all([measure, ...decoders])
    const m = /SSIM .*All:([0-9.]+)/.exec(stderr)
    if (m === null) throw new Error(`ffmpeg printed no SSIM for ${distorted}`)
    return Number(m[1])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** The command, prefixed with `taskset -c CORE` when pinned. */
function pinned (core: number | undefined, file: string, args: string[]): [string, string[]] {
  return core === undefined ? [file, args] : ['taskset', ['-c', String(core), file, ...args]]
}

/** The baseline's decoder: every frame as it is, y4m (of the source's pixel format unless `pixFmt` says another) to `output`. */
export function plainDecoderArgs (clip: string, source: MediaInfo, output: string, pixFmt = y4mPixFmt(source.video.pixFmt)): string[] {
  return ['-v', 'error', '-nostdin', '-i', clip, '-map', '0:v:0', '-fps_mode', 'passthrough', '-pix_fmt', pixFmt, '-strict', '-1', '-f', 'yuv4mpegpipe', output]
}

/**
 * The baseline: one plain decoder piped into one encoder (the settings') over the whole file (an
 * OS pipe between the two, as a shell's `ffmpeg | x264` and as the product's encoder does), both
 * pinned to `core` when given. Its command line is the one a chunk gets (Encoder.chunkArgs, with
 * `threads` as the encoder counts them) for one chunk of the whole file, which needs no
 * --stitchable; its decoder feeds the encoder the pixel format a chunk's would. Returns wall seconds.
 */
export async function plainEncode (clip: string, source: MediaInfo, settings: EncoderSettings, threads: number, outputPath: string, core?: number): Promise<number> {
  const encoder = encoderFor(settings.encoder)
  const decArgs = plainDecoderArgs(clip, source, '-', encoder.inputPixFmt(settings, y4mPixFmt(source.video.pixFmt)))
  const encArgs = encoderArgs(settings, { frameRate: source.video.frameRate, frameCount: source.video.frameCount, threads, outputPath }).filter(a => a !== '--stitchable')
  const t0 = performance.now()
  const dec = startPipeSource(...pinned(core, 'ffmpeg', decArgs), 'baseline decode')
  const enc = execa(...pinned(core, encoder.binary, encArgs), { stdin: dec.stdout })
  dec.release()
  await Promise.all([dec.done, enc])
  return (performance.now() - t0) / 1000
}
