/**
 * The throughput benchmark's sources. "stress" is bench/clip.ts's clip (test pattern with temporal
 * noise, near-lossless, 1 s GOPs: decoding it costs more than half a `--preset faster` encode).
 * "realistic" decodes like a real distribution file: scenes with camera motion and detail that is
 * not noise, x264 `--preset slow --crf 21` at a few Mbit/s, x264's default GOPs (keyint 250 with
 * scenecut, so keyframes fall at the scene cuts, 5-9 s apart). Both are cached under the OS temp
 * dir; the realistic one takes minutes to make (x264 slow), once.
 */
import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseX264Settings, probeMedia, type MediaInfo, type VideoFrame } from '../src/media/index.js'
import { ensureBenchClip, plainDecoderArgs, plainEncode, type BenchClip } from './clip.js'
import { childrenCpuSeconds } from './lib/proc.js'
import { median } from './lib/table.js'

export type SourceKind = 'realistic' | 'stress'

export interface SourceSpec { kind: SourceKind, seconds: number, height: 720 | 1080 }

/** `realistic-40s`, `realistic-1080p-40s`, `stress-40s` (the stress clip is 720p only). */
export function parseSourceSpec (text: string): SourceSpec {
  const m = /^(realistic|stress)(?:-(720|1080)p)?-(\d+)s$/.exec(text.trim())
  if (m === null) throw new Error(`source "${text}": expected realistic-<seconds>s, realistic-1080p-<seconds>s or stress-<seconds>s`)
  const height = Number(m[2] ?? 720) as 720 | 1080
  const seconds = Number(m[3])
  if (m[1] === 'stress' && height !== 720) throw new Error(`source "${text}": the stress clip is 720p only`)
  if (seconds < 5 || seconds > 3600) throw new Error(`source "${text}": between 5 and 3600 seconds`)
  return { kind: m[1] as SourceKind, seconds, height }
}

export function sourceName (s: SourceSpec): string {
  return `${s.kind}${s.height !== 720 ? `-${s.height}p` : ''}-${s.seconds}s`
}

export const REALISTIC_FPS = 24
/** x264 settings of the realistic source: what a distribution encode uses, x264's GOP defaults spelled out. */
export const REALISTIC_ENCODE = { preset: 'slow', crf: 21, x264Params: 'keyint=250:min-keyint=25:scenecut=40' }

export type SceneKind = 'pan' | 'zoom' | 'objects' | 'inset'

export interface Scene { kind: SceneKind, seconds: number, cycle: number }

/**
 * One cycle of scenes (40 s); longer sources repeat it with other places and seeds. Each scene is
 * under x264's keyint (250 frames, 10.4 s), so keyframes sit at the cuts.
 */
const CYCLE: Array<{ kind: SceneKind, seconds: number }> = [
  { kind: 'pan', seconds: 7 }, { kind: 'zoom', seconds: 5 }, { kind: 'objects', seconds: 9 },
  { kind: 'inset', seconds: 8 }, { kind: 'pan', seconds: 6 }, { kind: 'objects', seconds: 5 }
]

/** The scenes of a `seconds`-long source, the last one cut short. */
export function realisticScenes (seconds: number): Scene[] {
  const out: Scene[] = []
  let total = 0
  for (let i = 0; total < seconds; i++) {
    const s = CYCLE[i % CYCLE.length] as { kind: SceneKind, seconds: number }
    const length = Math.min(s.seconds, seconds - total)
    out.push({ kind: s.kind, seconds: length, cycle: Math.floor(i / CYCLE.length) })
    total += length
  }
  return out
}

/** Places in the Mandelbrot set with detail at every scale (x, y, width of the view). */
const PLACES = [
  { x: -0.7453, y: 0.1127, scale: 0.02 }, { x: -0.1011, y: 0.9563, scale: 0.03 }, { x: -1.25066, y: 0.02012, scale: 0.015 },
  { x: -0.74543, y: 0.11301, scale: 0.004 }, { x: 0.2925, y: 0.0149, scale: 0.01 }, { x: -0.16, y: 1.0405, scale: 0.02 }
]

function place (n: number): { x: number, y: number, scale: number } {
  return PLACES[n % PLACES.length] as { x: number, y: number, scale: number }
}

const SMOOTH = 'outer=normalized_iteration_count'

/** A still of the set at twice the picture's size, repeated at the frame rate: the land a camera pans over. */
function still (w: number, h: number, p: { x: number, y: number, scale: number }): string {
  return `mandelbrot=size=${2 * w}x${2 * h}:rate=${REALISTIC_FPS}:maxiter=600:${SMOOTH}:start_x=${p.x}:start_y=${p.y}:start_scale=${p.scale}:end_scale=${p.scale},` +
    `trim=end_frame=1,loop=loop=-1:size=1,setpts=N/${REALISTIC_FPS}/TB`
}

/** 4:2:0 pictures have even sides. */
const even = (n: number): number => 2 * Math.round(n / 2)

/** Into the set's edge, where detail is endless: from the whole set (width 3) to 1/30 of it over `frames`, as slow as a camera's zoom. */
function zoomInto (p: { x: number, y: number }, w: number, h: number, frames: number): string {
  return `mandelbrot=size=${w}x${h}:rate=${REALISTIC_FPS}:maxiter=250:${SMOOTH}:start_x=${p.x}:start_y=${p.y}:start_scale=3:end_scale=0.1:end_pts=${frames}`
}

/** A camera move over a still twice the picture's size: eased left to right, drifting down. */
function pan (w: number, h: number, seconds: number, flip: boolean): string {
  const x = flip ? `(iw-ow)*(0.5+0.5*cos(PI*t/${seconds}))` : `(iw-ow)*(0.5-0.5*cos(PI*t/${seconds}))`
  return `crop=${w}:${h}:x='${x}':y='(ih-oh)*(0.2+0.6*t/${seconds})'`
}

/** The filter chain of one scene, ending in `[s<index>]`: exactly its frames, square pixels, 4:2:0. */
export function sceneFilter (scene: Scene, index: number, w: number, h: number): string {
  const frames = Math.round(scene.seconds * REALISTIC_FPS)
  const n = index + scene.cycle
  const tail = `trim=end_frame=${frames},setpts=PTS-STARTPTS,setsar=1,format=yuv420p[s${index}]`
  switch (scene.kind) {
    case 'pan':
      return `${still(w, h, place(n))},${pan(w, h, scene.seconds, n % 2 === 1)},${tail}`
    case 'zoom':
      return `${zoomInto(place(n), w, h, frames)},${tail}`
    case 'objects':
      // A zoom into the set moving on its own path over a panning background: two motions at once.
      return `${still(w, h, place(n + 2))},${pan(w, h, scene.seconds, n % 2 === 0)}[bg${index}];` +
        `${zoomInto(place(n + 3), even(w * 3 / 8), even(h * 3 / 8), frames)}[fg${index}];` +
        `[bg${index}][fg${index}]overlay=x='(W-w)*(0.5+0.45*sin(t*0.9))':y='(H-h)*(0.5+0.4*sin(t*1.3))',${tail}`
    case 'inset':
      // Soft colour fields drifting (the whole set, tiny, blown up and slowly zoomed; ffmpeg 5.1's
      // gradients source draws other colours each run, seed or not) with a zoom into the set crossing them.
      return `mandelbrot=size=64x36:rate=${REALISTIC_FPS}:maxiter=60:${SMOOTH}:start_x=${place(n).x}:start_y=${place(n).y}:start_scale=4:end_scale=1.5:end_pts=${frames},scale=${w}:${h}:flags=bicubic[g${index}];` +
        `${zoomInto(place(n + 1), even(w / 2), even(h / 2), frames)}[m${index}];` +
        `[g${index}][m${index}]overlay=x='(W-w)*t/${scene.seconds}':y='(H-h)*(0.5+0.5*sin(t))',${tail}`
  }
}

/** The size of the realistic source at a height (16:9). */
export function realisticSize (height: 720 | 1080): { width: number, height: number } {
  return { width: height * 16 / 9, height }
}

/**
 * ffmpeg's arguments that make the realistic source: the scenes concatenated, a tone for audio,
 * x264 at distribution settings with its default GOP structure, two threads (x264's output
 * depends on its thread count: fixed, and every source drawn the same way each run, two runs
 * make the same video).
 */
export function realisticClipArgs (seconds: number, height: 720 | 1080, outputPath: string): string[] {
  const { width } = realisticSize(height)
  const scenes = realisticScenes(seconds)
  const graph = [
    ...scenes.map((s, i) => sceneFilter(s, i, width, height)),
    `${scenes.map((_, i) => `[s${i}]`).join('')}concat=n=${scenes.length}:v=1:a=0[v]`
  ].join(';')
  return ['-v', 'error', '-nostdin', '-y', '-filter_complex', graph,
    '-f', 'lavfi', '-i', `sine=frequency=330:duration=${seconds}`,
    '-map', '[v]', '-map', '0:a', '-t', String(seconds),
    '-c:v', 'libx264', '-preset', REALISTIC_ENCODE.preset, '-crf', String(REALISTIC_ENCODE.crf), '-x264-params', REALISTIC_ENCODE.x264Params,
    '-threads', '2', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '128k', outputPath]
}

/** Bump when the recipe changes: the cached file's name carries it. */
const REALISTIC_VERSION = 2

export async function ensureRealisticClip (seconds: number, height: 720 | 1080 = 720): Promise<BenchClip> {
  const dir = join(tmpdir(), 'swarm-bench')
  const path = join(dir, `realistic-${height}p-${seconds}s-v${REALISTIC_VERSION}.mkv`)
  if (!existsSync(path)) {
    await mkdir(dir, { recursive: true })
    const tmp = `${path}.partial.mkv`
    await rm(tmp, { force: true })
    console.log(`making ${path} (x264 --preset slow, takes minutes, once)`)
    await execa('ffmpeg', realisticClipArgs(seconds, height, tmp))
    await rename(tmp, path)
  }
  return { path, seconds, ...realisticSize(height) }
}

export async function ensureSource (s: SourceSpec): Promise<BenchClip> {
  return s.kind === 'stress' ? await ensureBenchClip(s.seconds) : await ensureRealisticClip(s.seconds, s.height)
}

// ---- what the source costs ----------------------------------------------------------------------

/** Seconds between keyframes, in display order: the GOPs a chunk plan has to cut at. */
export function keyframeIntervals (frames: Array<Pick<VideoFrame, 'key' | 'time'>>, endTime: number): number[] {
  const keys = frames.filter(f => f.key).map(f => f.time)
  return keys.map((t, i) => (keys[i + 1] ?? endTime) - t)
}

export interface SourceCost {
  file: string
  frames: number
  megabitsPerSecond: number
  gopSeconds: { min: number, median: number, max: number, count: number }
  /** CPU ms a frame on one core: the plain encode's decoder (to y4m); x264 --preset faster --crf 20 --threads 1 (the decoder subtracted). */
  decodeMsPerFrame: number
  fasterEncodeMsPerFrame: number
  decodeShareOfFasterEncode: number
  measuredAt: string
  loadAverageAtStart: number
}

const FASTER = '--preset faster --crf 20'

/** CPU seconds of this process's children while `run` runs. */
async function childCpuOf (run: () => Promise<unknown>): Promise<number> {
  const before = await childrenCpuSeconds()
  await run()
  return await childrenCpuSeconds() - before
}

/**
 * What decoding the source costs against a `--preset faster` encode of it, in CPU time on core 0:
 * the plain encode's decoder alone (y4m to /dev/null), then plain ffmpeg | x264 --threads 1
 * (bench/clip.ts), whose CPU less the decoder's is x264's. The decode runs before and after the
 * encode and counts with its mean: on a busy machine one CPU figure moves by 10%. Cached beside
 * the clip; `remeasure` measures again.
 */
export async function sourceCost (clip: BenchClip, remeasure = false): Promise<SourceCost> {
  const cachePath = `${clip.path}.cost.json`
  if (!remeasure && existsSync(cachePath)) return JSON.parse(await readFile(cachePath, 'utf8')) as SourceCost
  const info = await probeMedia(clip.path)
  const frames = info.video.frameCount
  const load = loadavg()[0] as number
  const decode = async (): Promise<number> => await childCpuOf(async () => await execa('taskset', ['-c', '0', 'ffmpeg', '-y', ...plainDecoderArgs(clip.path, info, '/dev/null')]))
  const out = join(tmpdir(), `swarm-bench-cost-${process.pid}.264`)
  const decodeBefore = await decode()
  const pipeline = await childCpuOf(async () => await plainEncode(clip.path, info, parseX264Settings(FASTER), 1, out, 0)).finally(async () => await rm(out, { force: true }))
  const decodeCpu = (decodeBefore + await decode()) / 2
  const encodeCpu = pipeline - decodeCpu
  const cost: SourceCost = {
    file: clip.path,
    frames,
    megabitsPerSecond: await videoMegabits(info),
    gopSeconds: summariseGops(keyframeIntervals(info.video.frames, frames / frameRateOf(info))),
    decodeMsPerFrame: 1000 * decodeCpu / frames,
    fasterEncodeMsPerFrame: 1000 * encodeCpu / frames,
    decodeShareOfFasterEncode: decodeCpu / encodeCpu,
    measuredAt: new Date().toISOString(),
    loadAverageAtStart: load
  }
  await writeFile(cachePath, JSON.stringify(cost, null, 2) + '\n')
  return cost
}

function frameRateOf (info: MediaInfo): number {
  return info.video.frameRate.num / info.video.frameRate.den
}

/** The video stream's bit rate, from its packets (the file also holds the audio). */
async function videoMegabits (info: MediaInfo): Promise<number> {
  const { stdout } = await execa('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=size', '-of', 'csv=p=0', info.path])
  const bytes = stdout.split('\n').reduce((sum, l) => sum + (Number(l.trim()) || 0), 0)
  return bytes * 8 / (info.video.frameCount / frameRateOf(info)) / 1e6
}

export function summariseGops (intervals: number[]): SourceCost['gopSeconds'] {
  return { min: Math.min(...intervals), median: median(intervals), max: Math.max(...intervals), count: intervals.length }
}
