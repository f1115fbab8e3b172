import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { mkdir, rename, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

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

/** Mean SSIM ("All") of `distorted` against `reference`, by ffmpeg's ssim filter. */
export async function ssim (distorted: string, reference: string): Promise<number> {
  // Pair frames by position, not timestamp: a raw bitstream carries no timestamps of its own.
  const { stderr } = await execa('ffmpeg', ['-nostdin', '-i', distorted, '-i', reference, '-lavfi', '[0:v:0]setpts=N[a];[1:v:0]setpts=N[b];[a][b]ssim', '-f', 'null', '-'])
  const m = /SSIM .*All:([0-9.]+)/.exec(stderr)
  if (m === null) throw new Error(`ffmpeg printed no SSIM for ${distorted}`)
  return Number(m[1])
}
