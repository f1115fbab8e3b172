import { ToolError, VerificationError } from './errors.js'
import type { MediaInfo } from './probe.js'
import { runTool, type RunOptions } from './tools.js'

/** Frames looked at from each chunk's first one on: a cut that decodes wrongly shows from its first frame. */
export const CUT_FRAMES_LOOKED_AT = 3

/**
 * A cut frame fails when it is this far below the typical cut frame and below the floor: an honest
 * encode at any settings keeps its frames within a few dB of each other, while a picture decoded
 * from a keyframe that cannot start a decode (green or grey garbage) scores 10-17 dB.
 */
export const CUT_PSNR_DROP_DB = 10
export const CUT_PSNR_FLOOR_DB = 20

export interface CutPictures {
  /** Frame index (display order) and its PSNR (Y, U and V averaged) against the source. */
  frames: Array<{ frame: number, psnr: number }>
  worst: { frame: number, psnr: number } | undefined
  median: number
  /** Frames that fail the rule above. */
  bad: Array<{ frame: number, psnr: number }>
}

/** The frames compared: the first few of every chunk, as indices in display order. */
export function cutFramesOf (chunkStarts: number[], frameCount: number): number[] {
  const frames = new Set<number>()
  for (const start of chunkStarts) {
    for (let i = start; i < Math.min(frameCount, start + CUT_FRAMES_LOOKED_AT); i++) frames.add(i)
  }
  return [...frames].sort((a, b) => a - b)
}

/**
 * Compares the output's pictures where the chunks join with the source's, both decoded
 * continuously from their first frame (the source across the cut, not from it: what a player
 * shows). A chunk cut where a decode cannot start passes every count and timestamp check; only its
 * pictures are wrong. One ffmpeg decodes both files once and scores every frame (a `select` of the
 * cut frames would be cheaper, but ffmpeg's expression parser refuses one that names a long film's
 * hundreds of cuts); only the cut frames are judged.
 */
export async function compareCutPictures (source: MediaInfo, outputPath: string, chunkStarts: number[], options: RunOptions = {}): Promise<CutPictures> {
  const picked = cutFramesOf(chunkStarts, source.video.frameCount)
  const wanted = new Set(picked)
  const { width, height } = source.video
  const graph = [
    `[0:${source.video.streamIndex}]setpts=N/TB,format=yuv444p[src]`,
    // The output may carry a row or column that the container crops (encodedSize); crop after
    // the 4:4:4 conversion, since crop rounds odd sizes of 4:2:0 down.
    `[1:v:0]setpts=N/TB,format=yuv444p,crop=${width}:${height}:0:0[out]`,
    '[out][src]psnr=stats_file=-'
  ].join(';')
  let stdout: string
  try {
    ({ stdout } = await runTool('ffmpeg', ['-v', 'error', '-nostdin', '-i', `file:${source.path}`, '-i', `file:${outputPath}`,
      '-filter_complex', graph, '-f', 'null', '-'], `comparing ${outputPath} with its source where the chunks join`, options))
  } catch (err) {
    if (err instanceof ToolError) throw new VerificationError(err.message)
    throw err
  }
  const frames: Array<{ frame: number, psnr: number }> = []
  for (const line of stdout.split('\n')) {
    const n = /^n:(\d+)/.exec(line)
    const y = /psnr_y:(\S+)/.exec(line)
    const u = /psnr_u:(\S+)/.exec(line)
    const v = /psnr_v:(\S+)/.exec(line)
    if (n === null || y === null || u === null || v === null) continue
    // "inf" for identical planes: a perfect picture.
    const db = (s: string): number => s === 'inf' ? 100 : Math.min(100, Number(s))
    const frame = Number(n[1]) - 1
    if (!wanted.has(frame)) continue
    const psnr = (db(y[1] as string) * 4 + db(u[1] as string) + db(v[1] as string)) / 6
    frames.push({ frame, psnr })
  }
  if (frames.length !== picked.length) {
    throw new VerificationError(`${outputPath}: ${frames.length} of the ${picked.length} frames where the chunks join could be compared with the source`)
  }
  const sorted = frames.map(f => f.psnr).sort((a, b) => a - b)
  const median = sorted[Math.floor(sorted.length / 2)] as number
  const bad = frames.filter(f => f.psnr < CUT_PSNR_FLOOR_DB && f.psnr < median - CUT_PSNR_DROP_DB)
  const worst = frames.reduce<{ frame: number, psnr: number } | undefined>((w, f) => w === undefined || f.psnr < w.psnr ? f : w, undefined)
  return { frames, worst, median, bad }
}
