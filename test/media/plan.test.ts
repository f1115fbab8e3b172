import { planOptionsFor } from '../../src/jobs/admission.js'
import { describe, expect, it } from 'vitest'
import { AV1_MIN_TAIL_CHUNK_SECONDS, chunkRanges, cutPoints, MAX_PREROLL_FRAMES, MIN_TAIL_CHUNK_SECONDS, planChunks, type MediaInfo, type VideoFrame } from '../../src/media/index.js'

/** A synthetic stream: frames in decode order given as [pts, key]. */
function fakeInfo (decode: Array<[number, boolean]>): MediaInfo {
  const decodeOrder: VideoFrame[] = decode.map(([pts, key], i) => ({ decodeIndex: i, displayIndex: -1, pts, time: pts / 1000, key }))
  const frames = [...decodeOrder].sort((a, b) => a.pts - b.pts)
  frames.forEach((f, i) => { f.displayIndex = i })
  return {
    path: 'fake', sizeBytes: 0, formatName: 'fake', durationSec: 0, streams: [], chapterCount: 0,
    video: { streamIndex: 0, codec: 'h264', width: 16, height: 16, pixFmt: 'yuv420p', bitDepth: 8, timeBase: { num: 1, den: 1000 }, frameRate: { num: 25, den: 1 }, frameCount: frames.length, frames, decodeOrder, default: true, forced: false, colour: {}, closedCaptions: false }
  }
}

/** Closed GOPs of `gop` frames, no reordering. */
function closedGops (count: number, gop: number): MediaInfo {
  return fakeInfo(Array.from({ length: count }, (_, i) => [i * 40, i % gop === 0]))
}

/** When the last of `parallel` encoders of equal speed ends, taking chunks lowest first, over the even share (frames / parallel). */
function makespan (sizes: number[], parallel: number): number {
  const free = new Array<number>(parallel).fill(0)
  for (const size of sizes) {
    const first = free.indexOf(Math.min(...free))
    free[first] = (free[first] ?? 0) + size
  }
  return Math.max(...free) / (sizes.reduce((a, b) => a + b, 0) / parallel)
}

function assertExactCover (info: MediaInfo, plan: ReturnType<typeof planChunks>): void {
  expect(plan.chunks[0]?.startFrame).toBe(0)
  for (let i = 1; i < plan.chunks.length; i++) expect(plan.chunks[i]?.startFrame).toBe(plan.chunks[i - 1]?.endFrame)
  expect(plan.chunks.at(-1)?.endFrame).toBe(info.video.frameCount)
  expect(plan.chunks.reduce((n, c) => n + c.frameCount, 0)).toBe(info.video.frameCount)
}

describe('planChunks', () => {
  it('groups 7 GOPs per chunk by default, the last chunk takes the rest', () => {
    const info = closedGops(24 * 20, 24)
    const plan = planChunks(info)
    expect(plan.chunks.map(c => c.frameCount)).toEqual([168, 168, 144])
    assertExactCover(info, plan)
  })
  it('honours gopsPerChunk and chunkSeconds', () => {
    const info = closedGops(240, 24)
    expect(planChunks(info, { gopsPerChunk: 1 }).chunks).toHaveLength(10)
    const bySeconds = planChunks(info, { chunkSeconds: 2 })
    expect(bySeconds.chunks.map(c => c.startFrame)).toEqual([0, 72, 144, 216])
    assertExactCover(info, bySeconds)
  })
  it('always has at least one chunk, even for a clip shorter than one GOP', () => {
    const info = closedGops(10, 250)
    const plan = planChunks(info, { gopsPerChunk: 1 })
    expect(plan.chunks).toHaveLength(1)
    expect(plan.chunks[0]).toMatchObject({ startFrame: 0, endFrame: 10, frameCount: 10 })
  })
  it('shrinks the last chunks for the swarm\'s parallelism so encoders run out of work together', () => {
    // 30 one-second GOPs (24 frames of 40 ms), 8 chunks of 3 GOPs for 2 encoders: the tail goes down to two GOPs (1.5 s at least).
    const info = closedGops(24 * 30, 24)
    const uniform = planChunks(info, { minChunks: 8 })
    const guided = planChunks(info, { minChunks: 8, tailParallelism: 2 })
    assertExactCover(info, guided)
    expect(guided.chunks.length).toBeGreaterThan(uniform.chunks.length)
    // Never larger than the uniform chunks; but for the last two, never more than a quarter of what is left (down to the minimum).
    for (const c of guided.chunks) expect(c.frameCount).toBeLessThanOrEqual(Math.max(...uniform.chunks.map(u => u.frameCount)))
    for (const c of guided.chunks.slice(0, -2)) expect(c.frameCount).toBeLessThanOrEqual(Math.max(48, Math.ceil((720 - c.startFrame) / 4)))
    // Sizes go down, and both encoders end together (a balanced tail, 72 48, would end them no
    // sooner, so the plan keeps the sizes that only go down).
    const sizes = guided.chunks.map(c => c.frameCount)
    for (let i = 1; i < sizes.length; i++) expect(sizes[i]).toBeLessThanOrEqual(sizes[i - 1]!)
    expect(makespan(sizes, 2), sizes.join(' ')).toBe(1)
    // The shortest tail chunks are two GOPs (one, 0.96 s, is under MIN_TAIL_CHUNK_SECONDS); only what is left at the very end may be less.
    expect(guided.chunks.at(-2)?.frameCount).toBe(48)
    expect(Math.min(...guided.chunks.slice(0, -1).map(c => c.frameCount * 0.04))).toBeGreaterThanOrEqual(MIN_TAIL_CHUNK_SECONDS)
    // The head keeps the uniform size: only the tail is finer.
    expect(guided.chunks[0]?.frameCount).toBe(uniform.chunks[0]?.frameCount)
    // Deterministic, and parallelism 1 changes nothing.
    expect(planChunks(info, { minChunks: 8, tailParallelism: 2 })).toEqual(guided)
    expect(planChunks(info, { minChunks: 8, tailParallelism: 1 })).toEqual(uniform)
  })

  it('keeps an AV1 job\'s tail chunks at least AV1_MIN_TAIL_CHUNK_SECONDS long (each pays for its one key frame), and planOptionsFor asks it for the AV1 encoders only', () => {
    const info = closedGops(24 * 60, 24)
    const av1 = planChunks(info, { minChunks: 8, tailParallelism: 2, minTailChunkSeconds: AV1_MIN_TAIL_CHUNK_SECONDS })
    assertExactCover(info, av1)
    expect(Math.min(...av1.chunks.slice(0, -1).map(c => c.frameCount * 0.04))).toBeGreaterThanOrEqual(AV1_MIN_TAIL_CHUNK_SECONDS)
    const x264 = planChunks(info, { minChunks: 8, tailParallelism: 2 })
    expect(Math.min(...x264.chunks.map(c => c.frameCount))).toBeLessThan(Math.min(...av1.chunks.slice(0, -1).map(c => c.frameCount)))
    const opts = (encoder?: 'x264' | 'x265' | 'svt-av1' | 'aomenc'): number | undefined => planOptionsFor({ file: '/f.mkv', settings: '', ...(encoder !== undefined ? { encoder } : {}) }, undefined, { peers: 2 }).minTailChunkSeconds
    expect([opts(), opts('x264'), opts('x265'), opts('svt-av1'), opts('aomenc')]).toEqual([undefined, undefined, undefined, AV1_MIN_TAIL_CHUNK_SECONDS, AV1_MIN_TAIL_CHUNK_SECONDS])
  })

  it('keeps the tail non-increasing but for its last chunks, which even the encoders out, when GOPs are uneven (the benchmark clip\'s 23-frame GOPs with an 18 at each 5th)', () => {
    // Keyframes every 23 frames, every fifth GOP 18 frames: the pattern of bench/clip.ts's 40 s clip, which gave 92 23 69 46.
    const keys = new Set<number>()
    for (let f = 0, g = 0; f < 960; f += g % 5 === 4 ? 18 : 23, g++) keys.add(f)
    const info = fakeInfo(Array.from({ length: 960 }, (_, i) => [i * 1000 / 24, keys.has(i)]))
    const plan = planChunks(info, { minChunks: 8, tailParallelism: 2, absorbShortTail: true })
    assertExactCover(info, plan)
    const sizes = plan.chunks.map(c => c.frameCount)
    const firstTail = sizes.findIndex((n, i) => i > 0 && n < sizes[0]! - 30)
    for (let i = firstTail + 1; i < sizes.length - 2; i++) expect(sizes[i]).toBeLessThanOrEqual(sizes[i - 1]!)
    // Keyframes 18 or 23 frames apart leave the two encoders at most a few frames apart.
    expect(makespan(sizes, 2), sizes.join(' ')).toBeLessThanOrEqual(1 + 12 / 480)
  })

  it('keeps the unbalanced tail where balancing would end later: four encoders, 5 s chunks at least, GOPs of 23 and 18 frames', () => {
    // The even share (240 frames) is twice the shortest AV1 chunk: shares of about 100 frames at
    // keyframes 18-23 apart ended the last encoder at 1.133 of it, the guided chunks at 1.100.
    const keys = new Set<number>()
    for (let f = 0, g = 0; f < 960; f += g % 5 === 4 ? 18 : 23, g++) keys.add(f)
    const info = fakeInfo(Array.from({ length: 960 }, (_, i) => [i * 1000 / 24, keys.has(i)]))
    const sizes = planChunks(info, { minChunks: 16, tailParallelism: 4, absorbShortTail: true, minTailChunkSeconds: AV1_MIN_TAIL_CHUNK_SECONDS }).chunks.map(c => c.frameCount)
    expect(makespan(sizes, 4), sizes.join(' ')).toBeLessThanOrEqual(1.1)
  })

  it('joins a last chunk of a few frames to the one before it, when asked', () => {
    // 10 GOPs of 24 frames, then a keyframe 4 frames before the end.
    const info = fakeInfo(Array.from({ length: 244 }, (_, i) => [i * 40, i % 24 === 0]))
    const plain = planChunks(info, { gopsPerChunk: 1 })
    expect(plain.chunks.at(-1)?.frameCount).toBe(4)
    const absorbed = planChunks(info, { gopsPerChunk: 1, absorbShortTail: true })
    assertExactCover(info, absorbed)
    expect(absorbed.chunks).toHaveLength(plain.chunks.length - 1)
    expect(absorbed.chunks.at(-1)?.frameCount).toBe(28)
    // A last GOP of half the usual length or more stays a chunk of its own.
    const half = fakeInfo(Array.from({ length: 252 }, (_, i) => [i * 40, i % 24 === 0]))
    expect(planChunks(half, { gopsPerChunk: 1, absorbShortTail: true }).chunks.at(-1)?.frameCount).toBe(12)
  })

  describe('with midGopCuts, for sources whose keyframes are too far apart', () => {
    // The benchmark's realistic source: 40 s at 24 fps, six GOPs of 4-9 s (an x264 default encode's).
    const gops = [120, 216, 156, 168, 180, 120]
    const keys = new Set(gops.map((_, i) => gops.slice(0, i).reduce((a, b) => a + b, 0)))
    const info = fakeInfo(Array.from({ length: 960 }, (_, i) => [i * 1000 / 24, keys.has(i)]))
    const preroll = (c: { startFrame: number, decodeStart: number }): number => info.video.frames[c.startFrame]!.decodeIndex - c.decodeStart

    it('reaches minChunks with chunks of about equal length, at a keyframe when one is near, else from the keyframe before', () => {
      expect(planChunks(info, { minChunks: 8 }).chunks).toHaveLength(6)
      const plan = planChunks(info, { minChunks: 8, midGopCuts: true })
      assertExactCover(info, plan)
      expect(plan.chunks.length).toBeGreaterThanOrEqual(8)
      // About 960 / 8 frames each: a keyframe within a quarter of that is taken instead.
      for (const c of plan.chunks.slice(0, -1)) expect(Math.abs(c.frameCount - 120)).toBeLessThanOrEqual(30)
      // Its segment starts at the keyframe the chunk's frames decode from, never more than MAX_PREROLL_FRAMES before.
      for (const c of plan.chunks) {
        expect(info.video.decodeOrder[c.decodeStart]?.key).toBe(true)
        expect(preroll(c)).toBeGreaterThanOrEqual(0)
        expect(preroll(c)).toBeLessThanOrEqual(MAX_PREROLL_FRAMES)
      }
      expect(plan.chunks.some(c => preroll(c) > 0)).toBe(true)
      expect(plan.chunks.filter(c => preroll(c) === 0).length).toBeGreaterThanOrEqual(3)
      // Not cut in one pass: the segments overlap.
      expect(plan.chunks.slice(1).some((c, i) => c.decodeStart <= plan.chunks[i]!.decodeEnd)).toBe(true)
    })

    it('shrinks the tail below one GOP, so two encoders run out of work together', () => {
      const plan = planChunks(info, { minChunks: 8, tailParallelism: 2, midGopCuts: true, absorbShortTail: true })
      assertExactCover(info, plan)
      const sizes = plan.chunks.map(c => c.frameCount)
      // Each chunk aims at a quarter of what is left (1/(2P)), within 240 frames (twice 960 / 8)
      // and at least 1.5 s: it ends at a keyframe within half of that either way, else between
      // keyframes within a quarter; the last one takes what is left.
      for (const c of plan.chunks.slice(0, -1)) {
        const target = Math.max(36, Math.min(240, (960 - c.startFrame) / 4))
        const end = c.startFrame + c.frameCount
        const window = keys.has(end) ? 0.5 : 0.25
        expect(c.frameCount, `chunk ${c.index}`).toBeGreaterThanOrEqual(Math.min(Math.floor((1 - window) * target), 36))
        expect(c.frameCount, `chunk ${c.index}`).toBeLessThanOrEqual(Math.ceil((1 + window) * target))
      }
      // Only the small chunks of the tail start between keyframes.
      expect(plan.chunks.filter(c => preroll(c) > 0).every(c => c.frameCount <= 60)).toBe(true)
      expect(sizes.at(-1)).toBeGreaterThanOrEqual(18)
      expect(sizes.at(-1)).toBeLessThanOrEqual(60)
      expect(Math.min(...sizes)).toBeLessThan(Math.min(...gops))
      expect(Math.min(...sizes.slice(0, -1)) / 24).toBeGreaterThanOrEqual(0.75 * MIN_TAIL_CHUNK_SECONDS)
      for (const c of plan.chunks) expect(preroll(c)).toBeLessThanOrEqual(MAX_PREROLL_FRAMES)
    })

    it('balances the tail: encoders of equal speed taking chunks lowest first all end at the even share', () => {
      for (const [parallel, minTailChunkSeconds] of [[2, MIN_TAIL_CHUNK_SECONDS], [3, MIN_TAIL_CHUNK_SECONDS], [2, AV1_MIN_TAIL_CHUNK_SECONDS], [3, AV1_MIN_TAIL_CHUNK_SECONDS]] as const) {
        const plan = planChunks(info, { minChunks: 4 * parallel, tailParallelism: parallel, midGopCuts: true, absorbShortTail: true, minTailChunkSeconds })
        assertExactCover(info, plan)
        const sizes = plan.chunks.map(c => c.frameCount)
        // Whole frames and the frames a chunk may start at leave a frame or two.
        expect(makespan(sizes, parallel), `${parallel} encoders, ${minTailChunkSeconds} s: ${sizes.join(' ')}`).toBeLessThanOrEqual(1.01)
        // No chunk but the last is under the shortest a tail chunk may be; the last at least half of it.
        const shortest = Math.min(2 * 960 / (4 * parallel), 24 * minTailChunkSeconds)
        for (const size of sizes.slice(0, -1)) expect(size).toBeGreaterThanOrEqual(Math.floor(0.75 * shortest))
        expect(sizes.at(-1)).toBeGreaterThanOrEqual(shortest / 2)
      }
    })

    it('makes the same chunks from their starts alone (chunkRanges, what a resumed job is cut by), and refuses starts the source cannot have', () => {
      const plan = planChunks(info, planOptionsFor({ file: '/f.mkv', settings: '', encoder: 'svt-av1' }, undefined, { peers: 2 }))
      expect(chunkRanges(info, plan.chunks.map(c => c.startFrame))).toEqual(plan)
      expect(() => chunkRanges(info, [5, 100])).toThrow(/chunk 0 of 2 cannot start at frame 5/)
      expect(() => chunkRanges(info, [0, 100, 100])).toThrow(/chunk 1 of 3 cannot start at frame 100/)
      expect(() => chunkRanges(info, [0, 960])).toThrow(/cannot start at frame 960 of a video of 960 frames/)
      // One GOP of 2000 frames: 301 pictures past its cut point is beyond any pre-roll.
      expect(() => chunkRanges(closedGops(2000, 2000), [0, 301])).toThrow(/more than 300 pictures after the cut point before it \(frame 0\)/)
    })

    it('plans a clip of one, two or a few frames as one chunk or a few (a one-frame DV file looped forever)', () => {
      for (const frames of [1, 2, 3, 10]) {
        for (const parallel of [1, 2, 8]) {
          const tiny = closedGops(frames, 250)
          const plan = planChunks(tiny, { minChunks: 4 * parallel, tailParallelism: parallel, midGopCuts: true, absorbShortTail: true })
          assertExactCover(tiny, plan)
          expect(plan.chunks.length).toBeLessThanOrEqual(frames)
        }
      }
    })

    it('never starts a chunk more than MAX_PREROLL_FRAMES after its keyframe, even in one GOP of 2000 frames', () => {
      const long = closedGops(2000, 2000)
      const plan = planChunks(long, { minChunks: 8, tailParallelism: 2, midGopCuts: true })
      assertExactCover(long, plan)
      for (const c of plan.chunks) expect(c.startFrame).toBeLessThanOrEqual(MAX_PREROLL_FRAMES)
      // Sources whose keyframes are close change nothing.
      const short = closedGops(24 * 30, 24)
      expect(planChunks(short, { minChunks: 8, tailParallelism: 2, midGopCuts: true })).toEqual(planChunks(short, { minChunks: 8, tailParallelism: 2 }))
    })
  })

  it('splits finer to reach minChunks when keyframes allow', () => {
    const info = closedGops(240, 24)
    expect(planChunks(info, { minChunks: 5 }).chunks.length).toBeGreaterThanOrEqual(5)
  })
  it('is deterministic', () => {
    const info = closedGops(1000, 37)
    expect(planChunks(info, { gopsPerChunk: 3 })).toEqual(planChunks(info, { gopsPerChunk: 3 }))
  })
  it('refuses nonsense options', () => {
    expect(() => planChunks(closedGops(10, 5), { gopsPerChunk: 0 })).toThrow(/GOPs per chunk/)
    expect(() => planChunks(closedGops(10, 5), { chunkSeconds: -1 })).toThrow(/positive/)
  })

  it('includes open-GOP leading B-frames of the next keyframe in the chunk they are shown in', () => {
    // Display: I0 B1 B2 P3 | I4 ... ; decode order puts B2,B3-like leading frames after the next I.
    // decode: I(0) P(3) B(1) B(2) I(6) B(4) B(5) P(9) B(7) B(8)
    const info = fakeInfo([[0, true], [120, false], [40, false], [80, false], [240, true], [160, false], [200, false], [360, false], [280, false], [320, false]])
    const plan = planChunks(info, { gopsPerChunk: 1 })
    expect(plan.chunks.map(c => [c.startFrame, c.endFrame])).toEqual([[0, 6], [6, 10]])
    // Chunk 0 shows frames 160 and 200, which are decoded after the keyframe at 240.
    expect(plan.chunks[0]?.decodeEnd).toBe(6)
    expect(plan.chunks[1]?.decodeStart).toBe(4)
  })

  it('does not cut at a keyframe that a later-shown frame was decoded before', () => {
    // The key at display 2 is decoded after a frame shown at display 3: not a safe cut.
    const info = fakeInfo([[0, true], [120, false], [80, true], [40, false], [160, true], [200, false]])
    expect(cutPoints(info.video.frames)).toEqual([0, 4])
  })
})
