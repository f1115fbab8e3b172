import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  comparePictures, cutSegment, encodeChunk, extractVideo, pickPicturePositions, planChunks, probeMedia, PICTURE_NEIGHBOUR_MARGIN_DB, PICTURE_PSNR_THRESHOLD, VerificationError,
  type MediaInfo, type SampledFrame, type Segment
} from '../../src/media/index.js'
import { ensureFixtures } from '../fixtures.js'
import { encodeLie, type Lie } from '../helpers/lies.js'

let scratch: string
let source: MediaInfo
let segments: Segment[]
/** The chunk under test: not the first, so its segment carries pre-roll on the open-GOP source. */
let seg: Segment
let honest: string
const figures: string[] = []

beforeAll(async () => {
  const fx = await ensureFixtures()
  scratch = await mkdtemp(join(tmpdir(), 'swarm-pictures-'))
  source = await probeMedia(fx.openGop10bit)
  const cut = await extractVideo(source, join(scratch, 'v.mkv'))
  const plan = planChunks(source, { gopsPerChunk: 2 })
  segments = []
  for (const c of plan.chunks) segments.push(await cutSegment(source, cut, c, join(scratch, `seg-${c.index}.mkv`)))
  seg = segments[1]!
  honest = (await encodeChunk({
    segmentPath: seg.path, selectFromTime: seg.selectFromTime, frameCount: seg.frameCount, settings: '--preset ultrafast --crf 51',
    frameRate: source.video.frameRate, sourcePixFmt: source.video.pixFmt, outputPath: join(scratch, 'honest.264'), threads: 1
  })).path
})
afterAll(async () => {
  console.log(`picture check on ${seg?.frameCount} frames of the open-GOP 10-bit fixture (chunk 1, pre-roll from ${seg?.selectFromTime}s), luma PSNR at a quarter size:\n  ${figures.join('\n  ')}`)
  await rm(scratch, { recursive: true, force: true })
})

const every = (): number[] => Array.from({ length: seg.frameCount }, (_, i) => i)
const size = { width: 320, height: 180 }
/** Frames whose both neighbours are in the chunk (a shift repeats a frame at one end). */
const inner = (frames: SampledFrame[]): SampledFrame[] => frames.filter(f => f.position > 0 && f.position < seg.frameCount - 1)
const show = (name: string, frames: SampledFrame[]): void => {
  const v = frames.map(f => f.psnr)
  const d = inner(frames).map(f => f.neighbourPsnr - f.psnr)
  figures.push(`${name}: PSNR against its own frame ${Math.min(...v).toFixed(1)} to ${Math.max(...v).toFixed(1)} dB; best neighbour minus own ${Math.min(...d).toFixed(1)} to ${Math.max(...d).toFixed(1)} dB`)
}
const measureOnly = { ...size, threshold: -1e9, neighbourMargin: 1e9 }

describe('pickPicturePositions', () => {
  it('always takes one frame near the start and one near the end, the rest anywhere, distinct and sorted', () => {
    for (let i = 0; i < 200; i++) {
      const p = pickPicturePositions(120, 4)
      expect(p.length).toBe(4)
      expect(new Set(p).size).toBe(4)
      expect(p).toEqual([...p].sort((a, b) => a - b))
      expect(p[0]).toBeLessThan(6)
      expect(p[3]).toBeGreaterThanOrEqual(114)
    }
    expect(pickPicturePositions(1, 4)).toEqual([0])
    expect(pickPicturePositions(3, 8)).toEqual([0, 1, 2])
  })
})

describe('comparePictures', () => {
  it('passes an honest --crf 51 --preset ultrafast result on every frame, with margin', async () => {
    const r = await comparePictures(honest, seg, seg.frameCount, every(), size)
    show('honest --crf 51 --preset ultrafast', r.frames)
    expect(r.frames.length).toBe(seg.frameCount)
    expect(r.min).toBeGreaterThan(PICTURE_PSNR_THRESHOLD + 3)
    expect(Math.max(...r.frames.map(f => f.neighbourPsnr - f.psnr))).toBeLessThan(PICTURE_NEIGHBOUR_MARGIN_DB - 1)
    // Sampled the way the originator does it.
    const sampled = await comparePictures(honest, seg, seg.frameCount, pickPicturePositions(seg.frameCount), size)
    expect(sampled.frames.length).toBe(4)
  })

  for (const lie of ['negate', 'black', 'shift-forward', 'shift-back'] as Lie[]) {
    it(`refuses a result whose frames are ${lie === 'negate' ? 'negated' : lie === 'black' ? 'black' : `shifted by one (${lie})`}, on every frame`, async () => {
      const out = await encodeLie(seg.path, seg.selectFromTime, seg.frameCount, lie, join(scratch, `${lie}.264`))
      const r = await comparePictures(out, seg, seg.frameCount, every(), measureOnly)
      show(lie, r.frames)
      // Every frame of this moving clip fails one test or the other (a shift repeats a frame at one end: not those).
      for (const f of inner(r.frames)) expect(f.psnr < PICTURE_PSNR_THRESHOLD || f.neighbourPsnr > f.psnr + PICTURE_NEIGHBOUR_MARGIN_DB).toBe(true)
      // A shifted frame's own PSNR lands on either side of the threshold (23-26 dB), so either rule may refuse it first.
      const why = lie.startsWith('shift') ? /frame \d+ (shows a neighbouring frame of the source|does not show the source's picture) \(PSNR [\d.]+ dB/ : /frame \d+ does not show the source's picture \(PSNR -?[\d.]+ dB/
      await expect(comparePictures(out, seg, seg.frameCount, pickPicturePositions(seg.frameCount), size)).rejects.toThrow(why)
    })
  }

  it('refuses another chunk\'s frames', async () => {
    const other = segments[2]!
    const out = await encodeLie(other.path, other.selectFromTime, seg.frameCount, 'none', join(scratch, 'other.264'))
    const r = await comparePictures(out, seg, seg.frameCount, every(), measureOnly)
    show('another chunk', r.frames)
    expect(r.frames.every(f => f.psnr < PICTURE_PSNR_THRESHOLD - 2)).toBe(true)
    await expect(comparePictures(out, seg, seg.frameCount, [0, seg.frameCount - 1], size)).rejects.toBeInstanceOf(VerificationError)
  })
})
