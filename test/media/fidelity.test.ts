/**
 * The fidelity check passes the outputs of every fixture (each with a quirk: open GOP and 10-bit
 * with fonts and chapters, VFR MP4, a TS starting at 11.4 s, BT.709 with 16:15 SAR and two
 * languages), and fails, naming the check, on outputs doctored to lose one thing each.
 */
import { execa } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CAPTIONS_TRACK_NAME, checkFidelity, encodeFileLocally, formatFidelity, mergeChunks, parseX264Settings, probeMedia, type FidelityReport } from '../../src/media/index.js'
import { ffprobeTrackStarts as trackStarts } from '../helpers/track-starts.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'

let fx: Fixtures
let work: string
const outputs = new Map<string, string>()
beforeAll(async () => {
  fx = await ensureFixtures()
  work = await mkdtemp(join(tmpdir(), 'swarm-fidelity-'))
})
afterAll(async () => { await rm(work, { recursive: true, force: true }) })

async function encoded (name: keyof Fixtures): Promise<string> {
  const known = outputs.get(name)
  if (known !== undefined) return known
  const report = await encodeFileLocally(fx[name], parseX264Settings('--preset ultrafast --crf 30'), { workDir: join(work, `w-${name}`), outputPath: join(work, `${name}.mkv`) })
  outputs.set(name, report.output.path)
  return report.output.path
}

const failed = (r: FidelityReport): string[] => r.checks.filter(c => !c.ok).map(c => c.name)

describe('checkFidelity', () => {
  it('carries closed captions out of the source video into a subtitle track, in time with the pictures', async () => {
    const out = await encoded('captionsTs')
    const info = await probeMedia(out)
    const track = info.streams.find(s => s.type === 'subtitle' && s.title === CAPTIONS_TRACK_NAME)
    expect(track?.codec).toBe('subrip')
    // The caption appears with picture 8 (8 / 29.97 s after the first), in the source and in the output.
    const starts = await trackStarts(out)
    const video = starts.find(t => t.type === 'video')?.start ?? NaN
    const sub = starts.find(t => t.type === 'subtitle')?.start ?? NaN
    expect(Math.abs((sub - video) - 8 * 1001 / 30000)).toBeLessThanOrEqual(0.002)
    const text = (await execa('ffmpeg', ['-v', 'error', '-i', out, '-map', '0:s:0', '-f', 'srt', '-'])).stdout
    expect(text).toContain('HELLO CAPTIONS')
    const report = await checkFidelity(await probeMedia(fx.captionsTs), out)
    expect(report.checks.find(c => c.name === 'closed captions')).toMatchObject({ ok: true, output: expect.stringContaining(CAPTIONS_TRACK_NAME) })
  })

  it.each(['openGop10bit', 'vfrMp4', 'offsetTs', 'taggedMp4', 'captionsTs'] as const)('passes the swarm\'s output of %s', async (name) => {
    const out = await encoded(name)
    const report = await checkFidelity(await probeMedia(fx[name]), out, { settings: parseX264Settings('--preset ultrafast --crf 30') })
    expect(failed(report), formatFidelity(report, out)).toEqual([])
    expect(report.ok).toBe(true)
    const names = report.checks.map(c => c.name)
    for (const n of ['video frames', 'video timestamps', 'tracks', 'colour and aspect', 'chapters', 'attachments']) expect(names).toContain(n)
  })

  it('fails on a lost audio track, a shifted audio track, lost chapters and lost fonts, naming each', async () => {
    const out = await encoded('openGop10bit')
    const source = await probeMedia(fx.openGop10bit)
    const doctor = async (tag: string, args: string[]): Promise<FidelityReport> => {
      const bad = join(work, `bad-${tag}.mkv`)
      await execa('mkvmerge', ['-q', '-o', bad, ...args, out], { reject: false })
      return await checkFidelity(source, bad)
    }
    expect(failed(await doctor('no-audio2', ['--audio-tracks', '1']))).toContain('tracks')
    expect(failed(await doctor('late-audio', ['--sync', '1:40']))).toEqual(['audio 1 start'])
    expect(failed(await doctor('no-chapters', ['--no-chapters']))).toEqual(['chapters'])
    expect(failed(await doctor('no-fonts', ['--no-attachments']))).toEqual(['attachments'])
    const table = formatFidelity(await doctor('late-audio2', ['--sync', '1:40']))
    expect(table).toMatch(/FAIL audio 1 start: source .* ms from video; output .* ms from video \(out of sync by 40\.0 ms\)/)
  })

  it('looks at the pictures where the chunks join: a chunk of green garbage fails it, the honest output passes', async () => {
    // What a keyframe that cannot start a decode gives: the right frame count, wrong pictures.
    const report = await encodeFileLocally(fx.vfrMp4, parseX264Settings('--preset ultrafast --crf 30'), { workDir: join(work, 'w-cuts'), outputPath: join(work, 'cuts.mkv'), keepWork: true, gopsPerChunk: 1 })
    const starts = report.plan.chunks.map(c => c.startFrame)
    expect(starts.length).toBeGreaterThanOrEqual(3)
    const honest = await checkFidelity(report.source, report.output.path, { chunkStarts: starts })
    expect(honest.checks.find(c => c.name === 'pictures at cuts'), formatFidelity(honest)).toMatchObject({ ok: true })
    const victim = report.plan.chunks[1] as { index: number, frameCount: number }
    const green = join(work, 'green.264')
    await execa('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', `color=c=green:size=${report.source.video.width}x${report.source.video.height}:rate=24`,
      '-frames:v', String(victim.frameCount), '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-bsf:v', 'h264_mp4toannexb', '-f', 'h264', green])
    const chunkPaths = report.plan.chunks.map(c => c.index === victim.index ? green : join(work, 'w-cuts', `chunk-${c.index}.264`))
    const bad = await mergeChunks({ source: report.source, chunkPaths, workDir: join(work, 'w-cuts-bad'), outputPath: join(work, 'cuts-bad.mkv') })
    const caught = await checkFidelity(report.source, bad.path, { chunkStarts: starts, output: bad.info })
    expect(failed(caught), formatFidelity(caught)).toEqual(['pictures at cuts'])
    expect(caught.checks.find(c => c.name === 'pictures at cuts')?.detail).toMatch(/did not decode from its cut/)
  })

  it('counts every packet of an audio track: dropping the AAC priming an edit list discards shows as lag', async () => {
    // The VFR MP4's AAC starts with 23 ms of priming; a copy that drops it starts the audio late.
    const out = await encoded('vfrMp4')
    const source = await probeMedia(fx.vfrMp4)
    const audioFirst = source.streams.find(x => x.type === 'audio')?.packetSpan?.first ?? 0
    expect(audioFirst).toBeLessThan(-0.02)
    const late = join(work, 'bad-priming.mkv')
    await execa('mkvmerge', ['-q', '-o', late, '--sync', '1:23', out], { reject: false })
    expect(failed(await checkFidelity(source, late))).toContain('audio 1 start')
  })

  it('takes a limited range stated where the source states none, and no chroma location where it says left, as kept (x265 and AV1 always code a range, aomenc no location); not other values', async () => {
    const out = await encoded('vfrMp4')
    const source = await probeMedia(fx.vfrMp4)
    expect(source.video.colour.range).toBeUndefined()
    const probed = await probeMedia(out)
    const withRange = (range: 'tv' | 'pc'): typeof probed => ({ ...probed, video: { ...probed.video, colour: { ...probed.video.colour, range } } })
    expect(failed(await checkFidelity(source, out, { output: withRange('tv') }))).toEqual([])
    expect(failed(await checkFidelity(source, out, { output: withRange('pc') }))).toEqual(['colour and aspect'])
    // A chroma location left unstated where the source says "left" (aomenc) is what players assume; another one is not.
    expect(source.video.colour.chromaLocation).toBe('left')
    const withSiting = (chromaLocation: string | undefined): typeof probed => ({ ...probed, video: { ...probed.video, colour: { ...probed.video.colour, chromaLocation } } })
    expect(failed(await checkFidelity(source, out, { output: withSiting(undefined) }))).toEqual([])
    expect(failed(await checkFidelity(source, out, { output: withSiting('topleft') }))).toEqual(['colour and aspect'])
    // A JPEG-range source stating nothing is full range: limited is not what it was.
    const jpegRange = { ...source, video: { ...source.video, pixFmt: 'yuvj420p' } }
    expect(failed(await checkFidelity(jpegRange, out, { output: withRange('tv') }))).toEqual(['colour and aspect'])
  })

  it('compares the colour the settings left to the source, and skips what they set', async () => {
    const out = join(work, 'overridden.mkv')
    await encodeFileLocally(fx.taggedMp4, parseX264Settings('--preset ultrafast --colorprim bt470bg'), { workDir: join(work, 'w-over'), outputPath: out })
    const source = await probeMedia(fx.taggedMp4)
    expect(failed(await checkFidelity(source, out))).toEqual(['colour and aspect'])
    const told = await checkFidelity(source, out, { settings: parseX264Settings('--preset ultrafast --colorprim bt470bg') })
    expect(told.ok).toBe(true)
    expect(told.checks.find(c => c.name === 'colour and aspect')?.detail).toMatch(/1 set by the settings/)
  })
})
