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
 * ffmpeg's expression parser refuses a `select` of more than about a hundred terms (its recursion
 * limit), so the judged frames' runs are spread over branches of this many each, joined again in
 * time order.
 */
export const CUTS_PER_SELECT = 60

/**
 * The filters that keep only the judged frames of a stream whose timestamps are frame numbers:
 * one `select` per branch of CUTS_PER_SELECT runs. Runs go to branches in turn (run k to branch
 * k mod n), so every branch passes a frame every few cuts and `interleave` holds a few pictures
 * at a time, not a branch's worth.
 */
export function judgedFramesFilter (input: string, output: string, chunkStarts: number[], frameCount: number): string {
  // Runs of consecutive judged frames, disjoint (cuts closer than CUT_FRAMES_LOOKED_AT share one),
  // so no frame passes two branches.
  const runs: Array<[number, number]> = []
  for (const f of cutFramesOf(chunkStarts, frameCount)) {
    const last = runs[runs.length - 1]
    if (last !== undefined && last[1] === f - 1) last[1] = f
    else runs.push([f, f])
  }
  const ranges = runs.map(([a, b]) => `between(n\\,${a}\\,${b})`)
  const branches = Math.max(1, Math.ceil(ranges.length / CUTS_PER_SELECT))
  if (branches === 1) return `${input}select='${ranges.join('+') || '0'}'${output}`
  const groups = Array.from({ length: branches }, (_, b) => ranges.filter((_, k) => k % branches === b))
  const label = (b: number): string => `${output.slice(1, -1)}_${b}`
  return [
    `${input}split=${branches}${groups.map((_, b) => `[${label(b)}i]`).join('')}`,
    ...groups.map((g, b) => `[${label(b)}i]select='${g.join('+')}'[${label(b)}o]`),
    `${groups.map((_, b) => `[${label(b)}o]`).join('')}interleave=nb_inputs=${branches}${output}`
  ].join(';')
}

/**
 * Compares the output's pictures where the chunks join with the source's, both decoded
 * continuously from their first frame (the source across the cut, not from it: what a player
 * shows). A chunk cut where a decode cannot start passes every count and timestamp check; only its
 * pictures are wrong. One ffmpeg decodes both files once; only the judged frames reach the
 * comparison, so its cost is the two decodes. `output`, the probe of the output, lets it compare
 * the planes as they are when both have the source's pixel format (no 4:4:4 conversion per frame).
 */
export async function compareCutPictures (source: MediaInfo, outputPath: string, chunkStarts: number[], options: RunOptions & { output?: MediaInfo } = {}): Promise<CutPictures> {
  const picked = cutFramesOf(chunkStarts, source.video.frameCount)
  const { width, height, pixFmt } = source.video
  // crop rounds odd sizes of 4:2:0 down, and psnr needs one pixel format: convert only then.
  const asIs = options.output?.video.pixFmt === pixFmt && width % 2 === 0 && height % 2 === 0
  const toCompare = asIs ? '' : 'format=yuv444p,'
  const { output: _probed, ...runOptions } = options
  const graph = [
    `[0:${source.video.streamIndex}]setpts=N/TB[srcall]`,
    judgedFramesFilter('[srcall]', '[srcsel]', chunkStarts, source.video.frameCount),
    `[srcsel]${toCompare.slice(0, -1) || 'null'}[src]`,
    // The output may carry a row or column that the container crops (encodedSize); crop after
    // any 4:4:4 conversion.
    '[1:v:0]setpts=N/TB[outall]',
    judgedFramesFilter('[outall]', '[outsel]', chunkStarts, source.video.frameCount),
    `[outsel]${toCompare}crop=${width}:${height}:0:0[out]`,
    '[out][src]psnr=stats_file=-'
  ].join(';')
  let stdout: string
  try {
    ({ stdout } = await runTool('ffmpeg', ['-v', 'error', '-nostdin', '-i', `file:${source.path}`, '-i', `file:${outputPath}`,
      '-filter_complex', graph, '-f', 'null', '-'], `comparing ${outputPath} with its source where the chunks join`, runOptions))
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
    // The psnr filter numbers the frames it compares: the judged ones, in order.
    const frame = picked[Number(n[1]) - 1]
    if (frame === undefined) continue
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
