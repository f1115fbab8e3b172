/**
 * The merge keeps every track where it was relative to the video, whatever the source's container
 * did with its start times: a TS that starts at 11.4 s, an MP4 with edit lists.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execa } from 'execa'
import { effectiveSettings, encodeFileLocally, parseX264Settings, probeMedia, timestampFileV2, trackPropertyArgs } from '../../src/media/index.js'
import { ffprobeTrackStarts as trackStarts } from '../helpers/track-starts.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'

let fx: Fixtures
let work: string
beforeAll(async () => {
  fx = await ensureFixtures()
  work = await mkdtemp(join(tmpdir(), 'swarm-merge-'))
})
afterAll(async () => { await rm(work, { recursive: true, force: true }) })

/** Each track's start minus the video's, in file order, per type. */
async function offsets (path: string, o: { everyPacket?: boolean } = {}): Promise<Array<{ type: string, offsetMs: number }>> {
  const starts = await trackStarts(path, o)
  const video = starts.find(t => t.type === 'video')?.start ?? 0
  return starts.filter(t => t.type !== 'video').map(t => ({ type: t.type, offsetMs: (t.start - video) * 1000 }))
}

describe('merge', () => {
  it('keeps the audio 0.4 s after the video for a TS that starts at 11.4 s (it used to come out 11 s apart)', async () => {
    const src = await offsets(fx.offsetTs)
    expect(src).toHaveLength(1)
    expect(src[0]?.offsetMs).toBeGreaterThan(350)
    expect(src[0]?.offsetMs).toBeLessThan(450)
    const report = await encodeFileLocally(fx.offsetTs, parseX264Settings('--preset ultrafast --crf 30'), { workDir: join(work, 'ts'), outputPath: join(work, 'ts.mkv') })
    const out = await offsets(report.output.path)
    expect(out.map(t => t.type)).toEqual(['audio'])
    // Matroska keeps milliseconds.
    expect(Math.abs((out[0]?.offsetMs ?? 0) - (src[0]?.offsetMs ?? 0))).toBeLessThanOrEqual(1)
    // And like a plain mkvmerge of the TS, the output starts at 0, not at 11.4 s.
    expect((await trackStarts(report.output.path)).find(t => t.type === 'video')?.start).toBeLessThan(0.001)
  })

  it('keeps every track\'s offset for the VFR MP4 (edit lists, AAC priming), counting every packet as a remux keeps them', async () => {
    // The AAC priming the edit list discards (23 ms) stays at the start of the track in a copy of
    // it (ffmpeg's and mkvmerge's alike): compared from the first packet, not the first played one.
    const src = await offsets(fx.vfrMp4, { everyPacket: true })
    expect(src[0]?.offsetMs).toBeLessThan(-20)
    const report = await encodeFileLocally(fx.vfrMp4, parseX264Settings('--preset ultrafast --crf 30'), { workDir: join(work, 'mp4'), outputPath: join(work, 'mp4.mkv') })
    const out = await offsets(report.output.path, { everyPacket: true })
    expect(out.map(t => t.type)).toEqual(src.map(t => t.type))
    for (const [i, t] of out.entries()) expect(Math.abs(t.offsetMs - (src[i]?.offsetMs ?? 0))).toBeLessThanOrEqual(1)
  })

  it('carries the colour description and sample aspect ratio into the encode, and every audio track\'s language and default flag', async () => {
    const source = await probeMedia(fx.taggedMp4)
    expect(source.video.colour).toEqual({ range: 'tv', primaries: 'bt709', transfer: 'bt709', matrix: 'bt709', chromaLocation: 'left', sar: '16:15' })
    const report = await encodeFileLocally(fx.taggedMp4, parseX264Settings('--preset ultrafast --crf 30'), { workDir: join(work, 'tagged'), outputPath: join(work, 'tagged.mkv') })
    const out = await probeMedia(report.output.path)
    // It used to read "unknown" for all four, and a square SAR.
    expect(out.video.colour).toEqual(source.video.colour)
    const audio = (info: typeof source): Array<{ language?: string, default: boolean }> => info.streams.filter(x => x.type === 'audio').map(x => ({ language: x.language, default: x.default }))
    expect(audio(out)).toEqual([{ language: 'eng', default: true }, { language: 'jpn', default: false }])
    expect(audio(out)).toEqual(audio(source))
  })

  it('lets the user\'s settings win over the source\'s colour, and leaves unknown values out', () => {
    const video = { colour: { range: 'tv', primaries: 'bt709', transfer: 'gamma28', matrix: 'ycgco', sar: '16:15' } }
    expect(effectiveSettings(parseX264Settings('--crf 18 --colorprim bt470bg --sar 1:1'), video).args).toEqual(
      ['--crf', '18', '--colorprim', 'bt470bg', '--sar', '1:1', '--range', 'tv', '--transfer', 'bt470bg', '--colormatrix', 'YCgCo'])
    expect(effectiveSettings(parseX264Settings('--crf 18'), { colour: {} }).args).toEqual(['--crf', '18'])
  })

  it('names every audio and subtitle track\'s language, name and flags to mkvmerge explicitly', () => {
    const source = {
      video: { streamIndex: 0 },
      streams: [
        { index: 0, type: 'video', default: true, forced: false, attachedPic: false },
        { index: 1, type: 'audio', language: 'eng', title: 'Main', default: true, forced: false, attachedPic: false },
        { index: 2, type: 'subtitle', language: 'und', default: false, forced: true, attachedPic: false },
        { index: 3, type: 'audio', language: 'jpn', default: false, forced: false, attachedPic: false }
      ]
    } as unknown as Parameters<typeof trackPropertyArgs>[0]
    const tracks = [{ id: 0, type: 'video' }, { id: 1, type: 'audio' }, { id: 2, type: 'subtitle' }, { id: 3, type: 'audio' }]
    expect(trackPropertyArgs(source, tracks)).toEqual([
      '--language', '1:eng', '--track-name', '1:Main', '--default-track-flag', '1:yes',
      '--language', '3:jpn', '--default-track-flag', '3:no',
      '--default-track-flag', '2:no', '--forced-display-flag', '2:yes'
    ])
  })

  it('writes a timestamp file moved by a shift, never below 0', () => {
    const source = { video: { frames: [{ time: 11.4 }, { time: 11.4333 }, { time: 11.5 }] } } as unknown as Parameters<typeof timestampFileV2>[0]
    expect(timestampFileV2(source)).toBe('# timestamp format v2\n11400\n11433.3\n11500\n')
    expect(timestampFileV2(source, -11.4)).toBe('# timestamp format v2\n0\n33.3\n100\n')
    expect(timestampFileV2(source, -12)).toBe('# timestamp format v2\n0\n0\n0\n')
  })
})
