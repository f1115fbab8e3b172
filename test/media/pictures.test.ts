import { execa } from 'execa'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  comparePictures, convicts, cutSegment, discardSourceReference, prepareSourceReference, encodeChunk, extractVideo, parseX264Settings, pickSampledFrames, planChunks, probeMedia, sourceAsCutSource, ToolError, VerificationError,
  type MediaInfo, type PictureCheck, type PictureScores, type Segment, type StructureJob
} from '../../src/media/index.js'
import { ensureFixtures } from '../fixtures.js'
import { corruptLastSlice, encodeLie, type Lie } from '../helpers/lies.js'

let scratch: string
/** Worst score of each rule over every honest result here, and the case it came from (printed at the end). */
const honestWorst = new Map<keyof PictureScores, { score: number, what: string }>()
/** The score each attack got from the rule that refused it. */
const attackScores: string[] = []

function noteHonest (what: string, r: PictureCheck): void {
  for (const [rule, score] of Object.entries(r.scores) as Array<[keyof PictureScores, number]>) {
    if (score > (honestWorst.get(rule)?.score ?? -1)) honestWorst.set(rule, { score, what })
  }
}

beforeAll(async () => { scratch = await mkdtemp(join(tmpdir(), 'swarm-pictures-')) })
afterAll(async () => {
  const honest = [...honestWorst.entries()].map(([rule, w]) => `${rule} ${w.score.toFixed(2)} (${w.what})`)
  console.log(`picture check scores (a rule's figure over its bound; above 1 refuses):\n  worst honest, per rule:\n    ${honest.join('\n    ')}\n  attacks, the rule that refused them:\n    ${attackScores.join('\n    ')}`)
  await rm(scratch, { recursive: true, force: true })
})

describe('pickSampledFrames', () => {
  it('draws distinct frames, sorted, each frame equally likely to be one of them', () => {
    const seen = new Map<number, number>()
    for (let i = 0; i < 6000; i++) {
      const p = pickSampledFrames(60, 2)
      expect(p).toHaveLength(2)
      expect(p).toEqual([...new Set(p)].sort((a, b) => a - b))
      for (const x of p) seen.set(x, (seen.get(x) ?? 0) + 1)
    }
    expect(seen.size).toBe(60)
    // 200 draws a frame expected; every frame within a generous band of it.
    for (const n of seen.values()) expect(n).toBeGreaterThan(120)
    expect(pickSampledFrames(1, 2)).toEqual([0])
    expect(pickSampledFrames(0, 2)).toEqual([])
  })

  it('ends with a random source that always answers the same', () => {
    expect(pickSampledFrames(10, 3, () => 0)).toEqual([0, 1, 2])
    expect(pickSampledFrames(10, 3, max => max - 1)).toEqual([7, 8, 9])
  })
})

/** A job's encoding as the originator's check sees it. */
function jobOf (source: MediaInfo, settings: string): StructureJob {
  return { settings: parseX264Settings(settings), width: source.video.width, height: source.video.height, sourcePixFmt: source.video.pixFmt, frameRate: source.video.frameRate }
}

async function honestEncode (source: MediaInfo, seg: Segment, settings: string, out: string): Promise<string> {
  return (await encodeChunk({
    segmentPath: seg.path, selectFromTime: seg.selectFromTime, frameCount: seg.frameCount, settings: parseX264Settings(settings),
    frameRate: source.video.frameRate, sourcePixFmt: source.video.pixFmt, width: source.video.width, height: source.video.height, outputPath: out, threads: 1
  })).path
}

describe('comparePictures on a chunk of the open-GOP 10-bit fixture (pre-roll, B-pyramid), job --preset veryfast --crf 20', () => {
  const settings = '--preset veryfast --crf 20'
  let source: MediaInfo
  let segments: Segment[]
  /** The chunk under test: not the first, so its segment carries pre-roll. */
  let seg: Segment
  let job: StructureJob
  let honest: string

  beforeAll(async () => {
    const fx = await ensureFixtures()
    source = await probeMedia(fx.openGop10bit)
    const cut = await extractVideo(source, join(scratch, 'v.mkv'))
    segments = []
    for (const c of planChunks(source, { gopsPerChunk: 2 }).chunks) segments.push(await cutSegment(source, cut, c, join(scratch, `seg-${c.index}.mkv`)))
    seg = segments[1] as Segment
    job = jobOf(source, settings)
    honest = await honestEncode(source, seg, settings, join(scratch, 'honest.264'))
  })

  /** A lie as a worker with a shim x264 makes it: the job's settings on the real x264 CLI, pictures changed first. */
  const lie = async (kind: Lie | 'none', name: string, from: Segment = seg, o: { blackFrameAt?: number } = {}): Promise<string> =>
    await encodeLie(from.path, from.selectFromTime, seg.frameCount, kind, join(scratch, `${name}.264`), { settings, pixFmt: source.video.pixFmt }, o)

  /** Refused as the result's own fault, by the rule expected; its score is kept for the report. */
  const expectRefused = async (what: string, file: string, rule: keyof PictureScores, why: RegExp): Promise<void> => {
    const measured = await comparePictures(file, seg, seg.frameCount, { job, measureOnly: true })
    expect(measured.scores[rule], `${what}: ${JSON.stringify(measured.scores)}`).toBeGreaterThan(1)
    attackScores.push(`${what}: ${rule} ${measured.scores[rule].toFixed(2)}; every rule ${Object.entries(measured.scores).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`)
    const refused = await comparePictures(file, seg, seg.frameCount, { job }).then(() => undefined, (err: unknown) => err)
    expect(refused).toBeInstanceOf(VerificationError)
    expect(convicts(refused, file)).toBe(true)
    expect((refused as Error).message).toMatch(why)
  }

  it('passes the honest result, whichever frames are drawn, with every rule well inside its bound', async () => {
    for (const samples of [[0, seg.frameCount - 1], [37, 38], undefined]) {
      const r = await comparePictures(honest, seg, seg.frameCount, { job, ...(samples !== undefined ? { samples } : {}) })
      noteHonest(`10-bit fixture, ${settings}, frames ${r.samples.map(s => s.position).join('+')}`, r)
      expect(r.frames).toHaveLength(seg.frameCount)
      expect(r.samples).toHaveLength(2)
      expect(Math.max(...Object.values(r.scores))).toBeLessThan(0.8)
    }
  })

  it('judges alike with the source\'s side prepared before the result came, which keeps only its reductions and serves one check', async () => {
    const samples = [5, 41]
    const inline = await comparePictures(honest, seg, seg.frameCount, { job, samples })
    const reference = await prepareSourceReference(seg, seg.frameCount, { job, samples, under: join(scratch, 'checks') })
    expect(reference.samples).toEqual(samples)
    expect((await readdir(reference.dir)).sort()).toEqual(['own-halves.raw', 'own-signatures.raw', 'source-halves.raw', 'source-signatures.raw'])
    const prepared = await comparePictures(honest, seg, seg.frameCount, { job, reference })
    expect(prepared.scores).toEqual(inline.scores)
    expect(prepared.samples).toEqual(inline.samples)
    // A lie is refused the same way, for the same rule.
    const advert = await lie('advert', 'advert-prepared')
    const refused = await comparePictures(advert, seg, seg.frameCount, { job, reference }).then(() => undefined, (err: unknown) => err)
    expect(convicts(refused, advert)).toBe(true)
    expect((refused as Error).message).toMatch(/an 8x8 block's luma is [\d.]+ levels off/)
    await expect(comparePictures(honest, seg, seg.frameCount - 1, { job, reference })).rejects.toThrow(/prepared reference is of \d+ frames/)
    await discardSourceReference(reference)
    expect(await readdir(join(scratch, 'checks'))).toEqual([])
    // Drawn with the CSPRNG when not given: two distinct frames of the chunk.
    const drawn = await prepareSourceReference(seg, seg.frameCount, { job })
    expect(drawn.samples).toHaveLength(2)
    for (const p of drawn.samples) expect(p).toBeLessThan(seg.frameCount)
    await discardSourceReference(drawn)
  })

  it('refuses negated chroma and greyscale in every frame', async () => {
    // Every frame alike: no frame stands out of the chunk, the drawn frames show it.
    await expectRefused('negated chroma', await lie('negate-chroma', 'negate-chroma'), 'local', /frame \d+ is further from the source than an encode with the job's settings: an 8x8 block's (U|V) is [\d.]+ levels off/)
    await expectRefused('greyscale', await lie('greyscale', 'greyscale'), 'local', /frame \d+ is further from the source than an encode with the job's settings: an 8x8 block's (U|V) is [\d.]+ levels off/)
  })

  it('refuses a line of 16 px advert text in a corner of every frame', async () => {
    await expectRefused('advert text', await lie('advert', 'advert'), 'local', /frame \d+ is further from the source than an encode with the job's settings: an 8x8 block's luma is [\d.]+ levels off/)
  })

  it('refuses blur then --crf 51 on this --crf 20 job', async () => {
    await expectRefused('blur + crf 51', await lie('blur', 'blur'), 'detail', /is further from the source than an encode with the job's settings|luma error at half size [\d.]+ dB above/)
  })

  it('refuses one black frame at a position drawn at random, naming it', async () => {
    const at = 1 + Math.floor(Math.random() * (seg.frameCount - 2))
    await expectRefused(`one black frame (frame ${at})`, await lie('none', 'black-frame', seg, { blackFrameAt: at }), 'frameMean', new RegExp(`frame ${at} does not show the source's picture: its luma is [\\d.]+ levels off`))
  })

  it('refuses a corrupted last slice, wherever the last frame is shown', async () => {
    const damaged = await corruptLastSlice(honest, join(scratch, 'corrupt.264'))
    // The decoder conceals this one without a word (its bits still parse): the frame it lands in is what shows it.
    await expectRefused('corrupted last slice', damaged, 'frameMax', /frame \d+ does not show the source's picture in part/)
  })

  it('refuses another chunk\'s frames, black and negated pictures', async () => {
    await expectRefused('another chunk', await lie('none', 'other', segments[2]), 'local', /frame \d+ is further from the source than an encode with the job's settings: an 8x8 block's (luma|U|V) is [\d.]+ levels off/)
    await expectRefused('black', await lie('black', 'black'), 'local', /frame \d+ is further from the source than an encode with the job's settings: an 8x8 block's (luma|U|V) is [\d.]+ levels off/)
    await expectRefused('negated', await lie('negate', 'negate'), 'local', /frame \d+ is further from the source than an encode with the job's settings: an 8x8 block's (luma|U|V) is [\d.]+ levels off/)
  })

  it('refuses a shift by one, either way', async () => {
    await expectRefused('shifted forward', await lie('shift-forward', 'shift-forward'), 'shift', /its frames show the source's next frames, not their own \(shifted by one\)/)
    await expectRefused('shifted back', await lie('shift-back', 'shift-back'), 'shift', /its frames show the source's previous frames, not their own \(shifted by one\)/)
  })

  it('refuses a result that does not decode cleanly to its end, as the result\'s fault', async () => {
    const bytes = await readFile(honest)
    for (let i = Math.floor(bytes.length * 0.6); i < Math.floor(bytes.length * 0.6) + 64; i++) bytes[i] = (bytes[i] as number) ^ 0x5a
    const damaged = join(scratch, 'damaged.264')
    await writeFile(damaged, bytes)
    const err = await comparePictures(damaged, seg, seg.frameCount, { job, samples: [1, 2] }).then(() => undefined, (e: unknown) => e)
    expect((err as Error).message).toMatch(/could not all be decoded|decoding reported errors/)
    expect(convicts(err, damaged)).toBe(true)
  })

  it('convicts the result for what its own decode showed, never for our segment, our encode or a missing tool', async () => {
    const failureOf = async (work: Promise<unknown>): Promise<unknown> => { try { await work } catch (err) { return err } throw new Error('expected the check to fail') }
    const junk = join(scratch, 'junk.264')
    await writeFile(junk, Buffer.alloc(20_000, 0x00))
    const refused = await failureOf(comparePictures(junk, seg, seg.frameCount, { job }))
    expect(refused).toBeInstanceOf(VerificationError)
    expect(convicts(refused, junk)).toBe(true)
    // Our own segment gone: the honest result is refused for now, and its sender is not blamed.
    const gone = await failureOf(comparePictures(honest, { path: join(scratch, 'no-such-segment.mkv'), selectFromTime: seg.selectFromTime }, seg.frameCount, { job }))
    expect((gone as Error).message).toMatch(/could not be compared with the source/)
    expect(convicts(gone, honest)).toBe(false)
    // Settings our x264 refuses (this node's side of the comparison fails): not the peer's doing either.
    const ownFails = await failureOf(comparePictures(honest, seg, seg.frameCount, { job: { ...job, frameRate: { num: 0, den: 0 } } }))
    expect(convicts(ownFails, honest)).toBe(false)
    const path = process.env.PATH
    process.env.PATH = join(scratch, 'no-tools-here')
    try {
      const missing = await failureOf(comparePictures(honest, seg, seg.frameCount, { job }))
      expect(missing).toBeInstanceOf(ToolError)
      expect(convicts(missing, honest)).toBe(false)
    } finally { process.env.PATH = path }
  })
})

/**
 * No false refusals: honest results of tiny clips (160x96, 20 frames, one chunk each) at every
 * preset and the extremes of rate control, depth and chroma format, on still, moving and noisy
 * high-motion pictures. Each must pass every rule.
 */
describe('honest results pass at every setting', () => {
  const CONTENTS: Record<string, string> = {
    still: 'testsrc2=size=160x96:rate=24,trim=end_frame=1,loop=loop=-1:size=1',
    moving: 'testsrc2=size=160x96:rate=24',
    // A fast pan over a bigger picture, with temporal grain: most of each frame is new.
    'high-motion grain': "testsrc2=size=640x360:rate=24,crop=160:96:'mod(n*29\\,480)':'mod(n*17\\,264)',noise=alls=24:allf=t+u"
  }
  const SETTINGS = [
    '--preset ultrafast --crf 51',
    '--preset superfast --crf 30',
    '--preset veryfast --crf 18',
    '--preset faster --crf 0',
    '--preset fast --qp 0',
    '--preset medium --crf 23',
    '--preset slow --crf 51',
    '--preset slower --crf 40',
    '--preset veryslow --crf 26',
    '--preset placebo --crf 18',
    '--preset fast --crf 20 --output-depth 10',
    '--preset medium --crf 22 --output-csp i444',
    '--preset medium --crf 24 --output-csp i422 --output-depth 10',
    '--preset faster --tune grain --crf 16',
    '--preset medium --bitrate 150 --vbv-maxrate 200 --vbv-bufsize 400',
    '--preset veryfast --crf 23 --tff',
    '--preset medium --crf 30 --range pc'
  ]
  const clips = new Map<string, { source: MediaInfo, seg: Segment }>()

  beforeAll(async () => {
    for (const [name, lavfi] of Object.entries(CONTENTS)) {
      const clip = join(scratch, `${name.replace(/\W+/g, '-')}.mkv`)
      await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', lavfi, '-frames:v', '20', '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '16', '-g', '20', '-pix_fmt', 'yuv420p', clip])
      const source = await probeMedia(clip)
      const chunk = planChunks(source, { gopsPerChunk: 1 }).chunks[0]
      if (chunk === undefined) throw new Error(`${clip}: no chunk`)
      clips.set(name, { source, seg: await cutSegment(source, sourceAsCutSource(source), chunk, join(scratch, `${name.replace(/\W+/g, '-')}-seg.mkv`)) })
    }
  })

  for (const settings of SETTINGS) {
    it(`${settings}: still, moving and high-motion grain all pass`, async () => {
      await Promise.all([...clips].map(async ([name, { source, seg }]) => {
        const out = await honestEncode(source, seg, settings, join(scratch, `m-${name.replace(/\W+/g, '-')}.264`))
        const r = await comparePictures(out, seg, seg.frameCount, { job: jobOf(source, settings), measureOnly: true })
        noteHonest(`${name}, ${settings}`, r)
        expect(r.failure, `${name}, ${settings}: ${JSON.stringify(r.scores)}`).toBeUndefined()
      }))
    })
  }
})
