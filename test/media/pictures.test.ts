import { execa } from 'execa'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  comparePictures, convicts, cutSegment, encodeChunk, extractVideo, parseX264Settings, pickPicturePositions, planChunks, probeMedia, segmentTimesFromSource, sourceAsCutSource, PICTURE_NEIGHBOUR_RULE_BELOW_DB, PICTURE_NEIGHBOUR_MARGIN_DB, PICTURE_PSNR_THRESHOLD, ToolError, VerificationError,
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
    segmentPath: seg.path, selectFromTime: seg.selectFromTime, frameCount: seg.frameCount, settings: parseX264Settings('--preset ultrafast --crf 51'),
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
  it('draws one frame anywhere and one just after a keyframe, distinct and sorted', () => {
    const keys = [0, 24, 48, 72, 96]
    for (let i = 0; i < 500; i++) {
      const p = pickPicturePositions(120, keys)
      expect(p.length).toBeGreaterThanOrEqual(1)
      expect(p.length).toBeLessThanOrEqual(2)
      expect(p).toEqual([...new Set(p)].sort((a, b) => a - b))
      // One of them is the first or second frame after a keyframe (its previous neighbour decodes from that keyframe), never an end frame.
      expect(p.some(x => x > 0 && x < 119 && keys.some(k => x - k >= 1 && x - k <= 2))).toBe(true)
      expect(Math.max(...p)).toBeLessThan(120)
    }
    expect(pickPicturePositions(1)).toEqual([0])
    expect(pickPicturePositions(0)).toEqual([])
  })

  it('can land on every frame of the chunk (the worker cannot know which it will be)', () => {
    const seen = new Set<number>()
    for (let i = 0; i < 3000; i++) for (const p of pickPicturePositions(60, [0, 24, 48])) seen.add(p)
    expect(seen.size).toBe(60)
  })

  it('takes its second look after a keyframe at or before the first, never at an end', () => {
    // random(max) returns max - 1: anywhere = the last frame, the last keyframe before it, the second frame after that.
    expect(pickPicturePositions(100, [0, 30, 60], max => max - 1)).toEqual([62, 99])
    // random(max) returns 0: anywhere = frame 0; the second look is still inside, never an end frame.
    expect(pickPicturePositions(100, [0, 30, 60], () => 0)).toEqual([0, 1])
    expect(pickPicturePositions(4, [0], max => max - 1)).toEqual([2, 3])
  })
})

describe('comparePictures', () => {
  it('passes an honest --crf 51 --preset ultrafast result on every frame, with margin', async () => {
    const r = await comparePictures(honest, seg, seg.frameCount, { ...size, positions: every() })
    show('honest --crf 51 --preset ultrafast', r.frames)
    expect(r.frames.length).toBe(seg.frameCount)
    expect(r.min).toBeGreaterThan(PICTURE_PSNR_THRESHOLD + 3)
    expect(Math.max(...r.frames.map(f => f.neighbourPsnr - f.psnr))).toBeLessThan(PICTURE_NEIGHBOUR_MARGIN_DB - 1)
    // Sampled the way the originator does it.
    const sampled = await comparePictures(honest, seg, seg.frameCount, size)
    expect(sampled.frames.length).toBeGreaterThanOrEqual(1)
  })

  for (const lie of ['negate', 'black', 'shift-forward', 'shift-back'] as Lie[]) {
    it(`refuses a result whose frames are ${lie === 'negate' ? 'negated' : lie === 'black' ? 'black' : `shifted by one (${lie})`}, on every frame`, async () => {
      const out = await encodeLie(seg.path, seg.selectFromTime, seg.frameCount, lie, join(scratch, `${lie}.264`))
      const r = await comparePictures(out, seg, seg.frameCount, { ...measureOnly, positions: every() })
      show(lie, r.frames)
      // Every frame of this moving clip fails one test or the other (a shift repeats a frame at one end: not those).
      for (const f of inner(r.frames)) expect(f.psnr < PICTURE_PSNR_THRESHOLD || f.neighbourPsnr > f.psnr + PICTURE_NEIGHBOUR_MARGIN_DB).toBe(true)
      // A shifted frame's own PSNR lands on either side of the threshold (23-26 dB), so either rule may refuse it first.
      const why = lie.startsWith('shift') ? /frame \d+ (shows a neighbouring frame of the source|does not show the source's picture) \(PSNR [\d.]+ dB/ : /frame \d+ does not show the source's picture \(PSNR -?[\d.]+ dB/
      await expect(comparePictures(out, seg, seg.frameCount, size)).rejects.toThrow(why)
    })
  }

  it('refuses another chunk\'s frames', async () => {
    const other = segments[2]!
    const out = await encodeLie(other.path, other.selectFromTime, seg.frameCount, 'none', join(scratch, 'other.264'))
    const r = await comparePictures(out, seg, seg.frameCount, { ...measureOnly, positions: every() })
    show('another chunk', r.frames)
    expect(r.frames.every(f => f.psnr < PICTURE_PSNR_THRESHOLD - 2)).toBe(true)
    await expect(comparePictures(out, seg, seg.frameCount, { ...size, positions: [0, seg.frameCount - 1] })).rejects.toBeInstanceOf(VerificationError)
  })

  it('refuses a result that does not decode cleanly up to its sampled frames (the only decode a peer\'s result gets)', async () => {
    const bytes = await readFile(honest)
    // Damage the middle of the stream: slice data the decoder reaches before the last frame.
    for (let i = Math.floor(bytes.length / 2); i < Math.floor(bytes.length / 2) + 64; i++) bytes[i] = (bytes[i] as number) ^ 0x5a
    const damaged = join(scratch, 'damaged.264')
    await writeFile(damaged, bytes)
    await expect(comparePictures(damaged, seg, seg.frameCount, { ...size, positions: [seg.frameCount - 2] })).rejects.toThrow(/decoding reported errors/)
  })

  it('convicts the result for what its own decode showed, never for our segment or a missing ffmpeg', async () => {
    const failureOf = async (work: Promise<unknown>): Promise<unknown> => { try { await work } catch (err) { return err } throw new Error('expected the check to fail') }
    const negated = await encodeLie(seg.path, seg.selectFromTime, seg.frameCount, 'negate', join(scratch, 'negate-convicts.264'))
    expect(convicts(await failureOf(comparePictures(negated, seg, seg.frameCount, size)), negated)).toBe(true)
    // Bytes that ffmpeg refuses outright (it exits with an error): the result's, when its decode runs apart.
    const junk = join(scratch, 'junk.264')
    await writeFile(junk, Buffer.alloc(20_000, 0x00))
    const refused = await failureOf(comparePictures(junk, seg, seg.frameCount, { ...size, positions: [1] }))
    expect(refused).toBeInstanceOf(VerificationError)
    expect(convicts(refused, junk)).toBe(true)
    // Our own segment gone: the honest result is refused for now, and its sender is not blamed.
    const chunk = planChunks(source, { gopsPerChunk: 2 }).chunks[1]!
    const times = segmentTimesFromSource(source.video, chunk.startFrame, chunk.frameCount)
    const gone = await failureOf(comparePictures(honest, { path: join(scratch, 'no-such-segment.mkv'), selectFromTime: seg.selectFromTime }, seg.frameCount, { ...size, positions: [1], segmentTimes: times }))
    expect((gone as Error).message).toMatch(/could not be compared with the source/)
    expect(convicts(gone, honest)).toBe(false)
    const path = process.env.PATH
    process.env.PATH = join(scratch, 'no-tools-here')
    try {
      const missing = await failureOf(comparePictures(negated, seg, seg.frameCount, { ...size, positions: [1], segmentTimes: times }))
      expect(missing).toBeInstanceOf(ToolError)
      expect(convicts(missing, negated)).toBe(false)
    } finally { process.env.PATH = path }
  })

  it('compares the same frames with the source probe\'s times as with the segment\'s own (no ffprobe of the segment)', async () => {
    const chunk = planChunks(source, { gopsPerChunk: 2 }).chunks[1]!
    const segmentTimes = segmentTimesFromSource(source.video, chunk.startFrame, chunk.frameCount)
    expect(segmentTimes.reordered).toBe(true)
    const positions = [1, 30, 57, seg.frameCount - 2]
    const fromProbe = await comparePictures(honest, seg, seg.frameCount, { ...size, positions, segmentTimes })
    const fromSegment = await comparePictures(honest, seg, seg.frameCount, { ...size, positions })
    expect(fromProbe.frames).toEqual(fromSegment.frames)
    // Every seek landed on the keyframe it aimed at: nothing was read again from the start.
    expect([fromProbe.rereads, fromSegment.rereads]).toEqual([0, 0])
    // And a lie is still caught with them.
    const out = await encodeLie(seg.path, seg.selectFromTime, seg.frameCount, 'shift-forward', join(scratch, 'shift-times.264'))
    await expect(comparePictures(out, seg, seg.frameCount, { ...size, positions: [30], segmentTimes })).rejects.toBeInstanceOf(VerificationError)
  })

  it('passes an honest result of a picture that hardly moves, where coding noise makes a neighbour score higher', async () => {
    // The originator test's tiny clip (64x36, 20-frame GOPs): at a quarter size neighbouring frames
    // are nearly alike, and an honest frame scored 54.0 dB against a neighbour, 52.7 against its own.
    const clip = join(scratch, 'tiny.mkv')
    await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=64x36:rate=25', '-frames:v', '40',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '20', '-keyint_min', '20', '-sc_threshold', '0', '-bf', '0', clip])
    const tiny = await probeMedia(clip)
    const chunk = planChunks(tiny, { gopsPerChunk: 1 }).chunks[0]!
    const tinySeg = await cutSegment(tiny, sourceAsCutSource(tiny), chunk, join(scratch, 'tiny-seg.mkv'))
    const out = (await encodeChunk({
      segmentPath: tinySeg.path, selectFromTime: tinySeg.selectFromTime, frameCount: tinySeg.frameCount, settings: parseX264Settings('--preset ultrafast --crf 30'),
      frameRate: tiny.video.frameRate, sourcePixFmt: tiny.video.pixFmt, outputPath: join(scratch, 'tiny.264'), threads: 1
    })).path
    const all = Array.from({ length: tinySeg.frameCount }, (_, i) => i)
    const r = await comparePictures(out, tinySeg, tinySeg.frameCount, { width: 64, height: 36, positions: all, threshold: -1e9, neighbourMargin: 1e9 })
    // Frames that the neighbour rule alone would refuse: all of them far above PICTURE_NEIGHBOUR_RULE_BELOW_DB.
    const closer = r.frames.filter(f => f.neighbourPsnr > f.psnr + PICTURE_NEIGHBOUR_MARGIN_DB)
    figures.push(`tiny still-ish clip: ${closer.length} of ${r.frames.length} honest frames match a neighbour better by over ${PICTURE_NEIGHBOUR_MARGIN_DB} dB, own PSNR ${Math.min(...r.frames.map(f => f.psnr)).toFixed(1)} dB at least`)
    expect(closer.every(f => f.psnr >= PICTURE_NEIGHBOUR_RULE_BELOW_DB)).toBe(true)
    await expect(comparePictures(out, tinySeg, tinySeg.frameCount, { width: 64, height: 36, positions: all })).resolves.toBeDefined()
  })
})

