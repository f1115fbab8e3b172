import { execa } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { judge, type Judgement } from '../../scripts/corpus-judge.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'

/**
 * The corpus judge against outputs made wrong on purpose from small lavfi sources: each fault must
 * fail the row that owns it, and an honest re-encode must pass every row (so a judge that fails
 * everything cannot pass these tests either).
 */
let dir: string
let source: string
let fx: Fixtures

const ffmpeg = async (args: string[]): Promise<void> => { await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', ...args]) }
const COLOUR = ['-color_primaries', 'bt709', '-color_trc', 'bt709', '-colorspace', 'bt709', '-color_range', 'tv']
const X264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '26', '-pix_fmt', 'yuv420p']

/** An output made from the source with `args` between the inputs and the MKV. */
async function output (name: string, args: string[], inputs: string[] = ['-i', source]): Promise<string> {
  const path = join(dir, `${name}.mkv`)
  await ffmpeg([...inputs, ...args, '-f', 'matroska', path])
  return path
}

const failed = (j: Judgement): string[] => j.rows.filter(r => !r.ok).map(r => r.check)
const row = (j: Judgement, check: string): Judgement['rows'][number] | undefined => j.rows.find(r => r.check === check)

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swarm-judge-test-'))
  source = join(dir, 'source.mkv')
  // 3 s at 25 fps, BT.709 tags, two audio tracks (eng, jpn) starting with the video. FLAC, not
  // AAC: ffmpeg's re-encode would move AAC's priming (and the video with it) by part of a frame.
  await ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25:duration=3', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=3', '-f', 'lavfi', '-i', 'sine=frequency=880:duration=3',
    '-map', '0:v', '-map', '1:a', '-map', '2:a', '-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '12', '-g', '25', '-pix_fmt', 'yuv420p', ...COLOUR,
    '-c:a', 'flac', '-metadata:s:a:0', 'language=eng', '-metadata:s:a:1', 'language=jpn', '-f', 'matroska', source])
  fx = await ensureFixtures()
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

describe('corpus judge', () => {
  it('passes an honest re-encode on every row', async () => {
    const j = await judge(source, await output('honest', ['-map', '0', ...X264, ...COLOUR, '-c:a', 'copy']))
    expect(failed(j)).toEqual([])
    expect(j.ok).toBe(true)
    expect(j.rows.map(r => r.check)).toEqual(['video frames', 'video timestamps', 'reference remux', 'audio 1 track', 'audio 1 offset', 'audio 2 track', 'audio 2 offset', 'colour tags', 'captions', 'picture (PSNR)'])
    expect(row(j, 'picture (PSNR)')?.output).toMatch(/over 75 frames/)
  })

  it('catches a run of green frames by their PSNR', async () => {
    const j = await judge(source, await output('green', ['-map', '0', '-vf', 'drawbox=color=green:t=fill:enable=\'between(n,30,40)\'', ...X264, ...COLOUR, '-c:a', 'copy']))
    expect(failed(j)).toEqual(['picture (PSNR)'])
    expect(j.reasons.join('\n')).toMatch(/frame (3\d|40) is [\d.]+ dB from the source's/)
  })

  it('catches audio 40 ms late', async () => {
    const j = await judge(source, await output('late-audio', ['-map', '0:v', '-map', '1:a', ...X264, ...COLOUR, '-c:a', 'copy'], ['-i', source, '-itsoffset', '0.04', '-i', source]))
    expect(failed(j)).toEqual(['audio 1 offset', 'audio 2 offset'])
    expect(j.reasons[0]).toMatch(/out of sync by 40\.0 ms/)
  })

  it('catches a dropped audio track', async () => {
    const j = await judge(source, await output('one-audio', ['-map', '0:v', '-map', '0:a:0', ...X264, ...COLOUR, '-c:a', 'copy']))
    expect(failed(j)).toEqual(['audio 2 track'])
    expect(j.reasons[0]).toMatch(/audio 2 \(audio flac jpn\) was lost/)
  })

  it('catches a track whose language was lost', async () => {
    const j = await judge(source, await output('no-language', ['-map', '0', ...X264, ...COLOUR, '-c:a', 'copy', '-metadata:s:a:1', 'language=und']))
    expect(failed(j)).toEqual(['audio 2 track'])
  })

  it('catches a dropped colour tag', async () => {
    // The encode keeps the rest; h264_metadata rewrites the VUI to say "unspecified" primaries.
    const j = await judge(source, await output('no-primaries', ['-map', '0', ...X264, '-color_trc', 'bt709', '-colorspace', 'bt709', '-color_range', 'tv', '-c:a', 'copy', '-bsf:v', 'h264_metadata=colour_primaries=2']))
    expect(failed(j)).toEqual(['colour tags'])
    expect(j.reasons[0]).toMatch(/primaries not as the source states/)
  })

  it('catches a dropped frame (count and times)', async () => {
    const j = await judge(source, await output('dropped-frame', ['-map', '0', '-vf', 'select=\'not(eq(n\\,10))\'', '-fps_mode', 'passthrough', ...X264, ...COLOUR, '-c:a', 'copy']))
    expect(failed(j)).toContain('video frames')
    expect(failed(j)).toContain('video timestamps')
    expect(row(j, 'video frames')).toMatchObject({ source: '75 decoded', output: '74 decoded' })
  })

  describe('EIA-608 captions in the video', () => {
    let srt: string
    beforeAll(async () => {
      srt = join(dir, 'captions.srt')
      await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', `movie=${fx.captionsTs.replace(/([:\\'[\],;])/g, '\\$1')}[out0+subcc]`, '-map', '0:1', srt])
    })
    it('are found missing when the output has no subtitle track for them', async () => {
      // -a53cc 0: libx264 would otherwise copy them into the new video's SEI.
      const j = await judge(fx.captionsTs, await output('no-captions', ['-map', '0', ...X264, '-a53cc', '0', '-c:a', 'copy'], ['-i', fx.captionsTs]))
      // Only the captions row is asserted: ffmpeg's re-encode of this TS also moves its audio.
      expect(row(j, 'captions')).toMatchObject({ ok: false, note: expect.stringMatching(/CC1 \(field 1\) captions of the source are not in the output/) })
    })
    it('are found as a subtitle track', async () => {
      const j = await judge(fx.captionsTs, await output('captions', ['-map', '0:v', '-map', '0:a', '-map', '1:s', ...X264, '-a53cc', '0', '-c:a', 'copy', '-c:s', 'srt', '-metadata:s:s:0', 'title=Closed captions (CC1)'], ['-i', fx.captionsTs, '-i', srt]))
      expect(row(j, 'captions')).toMatchObject({ ok: true, source: expect.stringMatching(/^CC1 \(field 1\): \d+ distinct lines$/), output: expect.stringMatching(/^CC1 \(field 1\) in "Closed captions \(CC1\)"/) })
    })
  })
})
