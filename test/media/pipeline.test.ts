import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { crc32File, encodeFileLocally, parseX264Settings, SourceError, type LocalEncodeReport } from '../../src/media/index.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { decodedFrameCount, identify, streamDurations, streamSummary, videoTimes } from '../helpers/media.js'

// superfast keeps CABAC and 8x8dct, so x264 signals High (ultrafast would signal Constrained Baseline).
const SETTINGS = '--preset superfast --crf 30 --profile high'
let fx: Fixtures
let scratch: string

beforeAll(async () => {
  fx = await ensureFixtures()
  scratch = await mkdtemp(join(tmpdir(), 'swarm-pipeline-'))
})
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

async function run (source: string, name: string, gopsPerChunk = 1): Promise<LocalEncodeReport> {
  return await encodeFileLocally(source, parseX264Settings(SETTINGS), { workDir: join(scratch, `work-${name}`), outputPath: join(scratch, `${name}.mkv`), gopsPerChunk })
}

/** Frame times from the first frame on: where the video starts follows the other tracks (the merge keeps their offsets). */
async function expectSameTimestamps (source: string, output: string): Promise<void> {
  const [a, b] = await Promise.all([videoTimes(source), videoTimes(output)])
  expect(b.length).toBe(a.length)
  const worst = Math.max(...a.map((t, i) => Math.abs((t - (a[0] as number)) - ((b[i] as number) - (b[0] as number)))))
  expect(worst).toBeLessThanOrEqual(0.001)
}

describe('open-GOP B-pyramid High 10 MKV with two audio tracks, ASS, a font and chapters', () => {
  let report: LocalEncodeReport
  beforeAll(async () => { report = await run(fx.openGop10bit, 'open-gop') })

  it('is cut into several chunks', () => {
    expect(report.plan.chunks.length).toBeGreaterThanOrEqual(4)
  })
  it('keeps every frame', async () => {
    expect(await decodedFrameCount(report.output.path)).toBe(await decodedFrameCount(fx.openGop10bit))
    expect(report.outputInfo.video.frameCount).toBe(240)
  })
  it('comes out 8-bit High as the settings ask', async () => {
    const video = (await streamSummary(report.output.path)).find(s => s.codec_type === 'video')
    expect(video).toMatchObject({ codec_name: 'h264', profile: 'High', pix_fmt: 'yuv420p' })
  })
  it('keeps both audio tracks, the subtitles, the font and the chapters with their properties', async () => {
    const id = await identify(report.output.path)
    const audio = id.tracks.filter(t => t.type === 'audio')
    expect(audio.map(t => t.codec)).toEqual(['Opus', 'AAC'])
    expect(audio.map(t => [t.properties.language, t.properties.track_name, t.properties.default_track])).toEqual([
      ['jpn', 'Japanese 2.0', true], ['eng', 'English commentary', false]
    ])
    const subs = id.tracks.filter(t => t.type === 'subtitles')
    expect(subs).toHaveLength(1)
    expect(subs[0]?.properties).toMatchObject({ track_name: 'Signs & Songs', forced_track: true, language: 'eng' })
    const video = id.tracks.find(t => t.type === 'video')
    expect(video?.properties).toMatchObject({ track_name: 'Main video', language: 'jpn' })
    expect(id.attachments.map(a => a.file_name)).toHaveLength(1)
    expect(id.attachments[0]?.content_type).toBe('font/ttf')
    expect(id.chapters[0]?.num_entries).toBe(3)
  })
  it('keeps each stream duration within one frame of the source', async () => {
    const [src, out] = await Promise.all([streamDurations(fx.openGop10bit), streamDurations(report.output.path)])
    expect(out.length).toBe(src.length)
    for (let i = 0; i < src.length; i++) expect(Math.abs((out[i] as number) - (src[i] as number))).toBeLessThanOrEqual(1 / 24 + 1e-6)
  })
  it('keeps the source timestamps', async () => { await expectSameTimestamps(fx.openGop10bit, report.output.path) })
})

describe('variable frame rate MP4', () => {
  let report: LocalEncodeReport
  beforeAll(async () => { report = await run(fx.vfrMp4, 'vfr') })

  it('keeps every frame and its timestamp within 1 ms, so VFR stays VFR', async () => {
    expect(report.plan.chunks.length).toBeGreaterThanOrEqual(3)
    expect(await decodedFrameCount(report.output.path)).toBe(120)
    await expectSameTimestamps(fx.vfrMp4, report.output.path)
    const times = await videoTimes(report.output.path)
    const gaps = new Set(times.slice(1).map((t, i) => Math.round((t - (times[i] as number)) * 1000)))
    expect(gaps.has(42) || gaps.has(41)).toBe(true)
    expect(gaps.has(83) || gaps.has(84)).toBe(true)
  })
  it('keeps the audio track in sync (same length within one frame)', async () => {
    const id = await identify(report.output.path)
    expect(id.tracks.filter(t => t.type === 'audio').map(t => t.codec)).toEqual(['AAC'])
    const [src, out] = await Promise.all([streamDurations(fx.vfrMp4), streamDurations(report.output.path)])
    expect(Math.abs((out[1] as number) - (src[1] as number))).toBeLessThanOrEqual(1 / 12)
  })
})

describe('a clip shorter than one GOP', () => {
  it('is one chunk and comes out whole', async () => {
    const report = await run(fx.shortClip, 'short', 7)
    expect(report.plan.chunks).toHaveLength(1)
    expect(await decodedFrameCount(report.output.path)).toBe(18)
    expect((await identify(report.output.path)).tracks.map(t => t.type)).toEqual(['video', 'audio'])
  })
})

describe('output naming', () => {
  it('puts the output beside a source with spaces, brackets and quotes, with its own CRC32 in the name', async () => {
    const report = await encodeFileLocally(fx.awkwardName, parseX264Settings(SETTINGS), { workDir: join(scratch, 'work-awkward'), gopsPerChunk: 1 })
    try {
      expect(dirname(report.output.path)).toBe(dirname(fx.awkwardName))
      const crc = await crc32File(report.output.path)
      expect(basename(report.output.path)).toBe(`Show's "Best" - 01 [v2] [x264] [${crc}].mkv`)
      expect(report.output.crc32).toBe(crc)
      expect(await decodedFrameCount(report.output.path)).toBe(48)
    } finally {
      await rm(report.output.path, { force: true })
    }
  })
  it('refuses a source whose CRC32 does not match its name, before doing any work', async () => {
    const work = join(scratch, 'work-wrong-crc')
    const before = await readdir(dirname(fx.wrongCrc))
    await expect(encodeFileLocally(fx.wrongCrc, parseX264Settings(SETTINGS), { workDir: work })).rejects.toThrow(SourceError)
    await expect(encodeFileLocally(fx.wrongCrc, parseX264Settings(SETTINGS), { workDir: work })).rejects.toThrow(/CRC32 is [0-9A-F]{8} but the name says \[DEADBEEF\]/)
    expect(existsSync(work)).toBe(false)
    expect(await readdir(dirname(fx.wrongCrc))).toEqual(before)
  })
  it('says which file is missing', async () => {
    await expect(encodeFileLocally(join(scratch, 'nope.mkv'), parseX264Settings(SETTINGS), { workDir: join(scratch, 'w') })).rejects.toThrow(/nope\.mkv: cannot read the file \(ENOENT\)/)
  })
})
