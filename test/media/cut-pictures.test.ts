/**
 * The picture check where chunks join compares only the judged frames (the first few of every
 * chunk), even with more cuts than one ffmpeg `select` can name, and finds a wrong picture at the
 * frame where it is, with or without a pixel-format conversion.
 */
import { execa } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { compareCutPictures, cutFramesOf, probeMedia, type MediaInfo } from '../../src/media/index.js'
import { CUTS_PER_SELECT, judgedFramesFilter } from '../../src/media/cut-pictures.js'

let work: string
let source: MediaInfo
const FRAMES = 500
/** A chunk every 4 frames: 125 runs of 3 judged frames, more than two selects' worth. */
const starts = Array.from({ length: FRAMES / 4 }, (_, k) => k * 4)

async function encode (out: string, extra: string[] = [], pixFmt = 'yuv420p'): Promise<string> {
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-i', source.path, ...extra, '-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '18', '-pix_fmt', pixFmt, out])
  return out
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarm-cut-pictures-'))
  const src = join(work, 'source.mkv')
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', `testsrc2=size=96x64:rate=25,trim=end_frame=${FRAMES}`,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-qp', '0', '-g', '50', '-pix_fmt', 'yuv420p', src])
  source = await probeMedia(src)
})
afterAll(async () => { await rm(work, { recursive: true, force: true }) })

describe('judgedFramesFilter', () => {
  it('names each judged frame once, in branches of at most CUTS_PER_SELECT runs, however close the cuts', () => {
    const one = judgedFramesFilter('[a]', '[b]', [0, 10, 11], 100)
    expect(one).toBe("[a]select='between(n\\,0\\,2)+between(n\\,10\\,13)'[b]")
    const many = judgedFramesFilter('[a]', '[b]', starts, FRAMES)
    const selects = [...many.matchAll(/select='([^']*)'/g)].map(m => m[1] as string)
    expect(selects).toHaveLength(Math.ceil(starts.length / CUTS_PER_SELECT))
    const named = selects.flatMap(s => [...s.matchAll(/between\(n\\,(\d+)\\,(\d+)\)/g)].flatMap(m => {
      const frames: number[] = []
      for (let f = Number(m[1]); f <= Number(m[2]); f++) frames.push(f)
      return frames
    })).sort((x, y) => x - y)
    expect(named).toEqual(cutFramesOf(starts, FRAMES))
    expect(many).toMatch(/interleave=nb_inputs=3\[b\]$/)
  })
})

describe('compareCutPictures', () => {
  it('scores exactly the judged frames of an honest output, across several selects, and passes it', async () => {
    const out = await encode(join(work, 'honest.mkv'))
    const r = await compareCutPictures(source, out, starts, { output: await probeMedia(out) })
    expect(r.frames.map(f => f.frame)).toEqual(cutFramesOf(starts, FRAMES))
    expect(r.bad).toEqual([])
    expect(r.worst?.psnr).toBeGreaterThan(30)
  })

  it('finds one wrong picture at a judged frame, at its own index, as it is and through the 4:4:4 conversion', async () => {
    // Frame 401 (the second frame of the chunk at 400) drawn over in grey.
    const wrong = ['-vf', "drawbox=x=0:y=0:w=iw:h=ih:color=gray:t=fill:enable='eq(n,401)'"]
    for (const [name, pixFmt] of [['same-format', 'yuv420p'], ['other-format', 'yuv444p']] as const) {
      const out = await encode(join(work, `${name}.mkv`), wrong, pixFmt)
      const r = await compareCutPictures(source, out, starts, { output: await probeMedia(out) })
      expect(r.bad.map(f => f.frame), name).toEqual([401])
      expect(r.frames).toHaveLength(cutFramesOf(starts, FRAMES).length)
    }
  })

  it('does not judge a wrong picture between the cuts', async () => {
    const out = await encode(join(work, 'between.mkv'), ['-vf', "drawbox=x=0:y=0:w=iw:h=ih:color=gray:t=fill:enable='eq(n,403)'"])
    const r = await compareCutPictures(source, out, starts, { output: await probeMedia(out) })
    expect(r.bad).toEqual([])
    expect(r.frames.some(f => f.frame === 403)).toBe(false)
  })
})
