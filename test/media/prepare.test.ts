/**
 * Sources whose packets cannot be cut by stream copy are described by a decode and cut from it:
 * an open-GOP MPEG-2 program stream (what DVDs, VCDs and broadcast captures are), and a source of
 * odd size, which x264 takes only padded. Both come out frame for frame, with every track.
 */
import { execa } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkFidelity, cleanTimes, encodeFileLocally, formatFidelity, parseX264Settings, planChunks, prepareSource, splitByDecoding, type Segment } from '../../src/media/index.js'
import { decodedFrameCount } from '../helpers/media.js'

let work: string
let mpeg2: string
let oddSize: string
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'swarm-prepare-'))
  mpeg2 = join(work, 'open-gop.mpg')
  // MPEG-2 with B-frames in open GOPs, MP2 audio, in a program stream: a DVD's layout, 150 frames.
  await execa('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=352x288:rate=25:duration=6', '-f', 'lavfi', '-i', 'sine=duration=6',
    '-c:v', 'mpeg2video', '-g', '12', '-bf', '2', '-q:v', '4', '-c:a', 'mp2', '-f', 'vob', mpeg2])
  oddSize = join(work, 'odd-size.mkv')
  // 4:2:0 at 321x181: FFV1 holds it, x264 cannot. (The scale makes the odd size; testsrc2 and crop round to even.)
  await execa('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=322x182:rate=25:duration=3', '-f', 'lavfi', '-i', 'sine=duration=3',
    '-vf', 'scale=321:181,setsar=1,format=yuv420p', '-c:v', 'ffv1', '-c:a', 'flac', oddSize])
})
afterAll(async () => { await rm(work, { recursive: true, force: true }) })

describe('cleanTimes', () => {
  it('keeps rising times, fills a missing one from the frame before, and replaces times that fall back', () => {
    expect(cleanTimes([0, 0.04, 0.08], 25)).toEqual({ times: [0, 0.04, 0.08] })
    const filled = cleanTimes([0.5, Number.NaN, 0.58], 25)
    expect(filled.times[1]).toBeCloseTo(0.54, 9)
    expect(filled.filled).toMatch(/1 frame without a timestamp/)
    const joined = cleanTimes([0, 0.04, 0.08, 0, 0.04], 25)
    expect(joined.times.map(t => Number(t.toFixed(3)))).toEqual([0, 0.04, 0.08, 0.12, 0.16])
    expect(joined.retimed).toMatch(/do not rise \(1 of 5/)
  })
})

describe('an open-GOP MPEG-2 program stream', () => {
  it('is cut from its decode: every chunk exactly its frames, a keyframe first', async () => {
    const source = await prepareSource(mpeg2)
    expect(source.video.cut).toMatchObject({ by: 'decode', reason: expect.stringMatching(/mpeg2video/) })
    expect(source.video.frameCount).toBe(await decodedFrameCount(mpeg2))
    const plan = planChunks(source, { gopsPerChunk: 1 })
    expect(plan.chunks.length).toBeGreaterThanOrEqual(3)
    const segments: Segment[] = []
    await splitByDecoding(source, plan.chunks, join(work, 'split'), {
      pathOf: i => join(work, 'segments', `segment-${i}.mkv`),
      wanted: () => true,
      onSegment: (_, r) => { if (r instanceof Error) throw r; segments.push(r) }
    })
    expect(segments.map(s => s.frameCount)).toEqual(plan.chunks.map(c => c.frameCount))
    for (const s of segments) {
      expect(s.decoded).toBe(true)
      expect(await decodedFrameCount(s.path)).toBe(s.frameCount)
    }
  })

  it('comes out frame for frame with its audio, and passes the fidelity check, pictures at the cuts included', async () => {
    const report = await encodeFileLocally(mpeg2, parseX264Settings('--preset ultrafast --crf 30'), { workDir: join(work, 'w-mpeg2'), outputPath: join(work, 'mpeg2.mkv'), gopsPerChunk: 1 })
    expect(await decodedFrameCount(report.output.path)).toBe(report.source.video.frameCount)
    const fidelity = await checkFidelity(report.source, report.output.path, { chunkStarts: report.plan.chunks.map(c => c.startFrame) })
    expect(fidelity.ok, formatFidelity(fidelity)).toBe(true)
    expect(fidelity.checks.map(c => c.name)).toEqual(expect.arrayContaining(['tracks', 'audio 1 start', 'pictures at cuts']))
  })
})

describe('a 4:2:0 source of odd size (321x181)', () => {
  it('is encoded a row and a column larger, which the container crops off again', async () => {
    const report = await encodeFileLocally(oddSize, parseX264Settings('--preset ultrafast --crf 30'), { workDir: join(work, 'w-odd'), outputPath: join(work, 'odd.mkv') })
    const { stdout } = await execa('mkvmerge', ['-J', report.output.path])
    const video = (JSON.parse(stdout) as { tracks: Array<{ type: string, properties: Record<string, unknown> }> }).tracks.find(t => t.type === 'video')
    expect(video?.properties.pixel_dimensions).toBe('322x182')
    // mkvmerge -J does not show the crop; mkvinfo does.
    const { stdout: elements } = await execa('mkvinfo', [report.output.path])
    expect(elements).toMatch(/Pixel crop right: 1/)
    expect(elements).toMatch(/Pixel crop bottom: 1/)
    const fidelity = await checkFidelity(report.source, report.output.path, { chunkStarts: report.plan.chunks.map(c => c.startFrame) })
    expect(fidelity.ok, formatFidelity(fidelity)).toBe(true)
  })
})
