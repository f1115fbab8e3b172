import { execa } from 'execa'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { carriesA53Captions, summarizeAnnexB } from '../../src/media/h264.js'
import { probeMedia, verifyEncodedChunk } from '../../src/media/index.js'
import { ensureFixtures } from '../fixtures.js'

let scratch: string
beforeAll(async () => { scratch = await mkdtemp(join(tmpdir(), 'swarm-h264-')) })
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

/** 20 frames of a 200x100 test pattern (not a whole number of macroblocks: the SPS crops) through x264. */
async function encode (name: string, pixFmt: string, x264: string[]): Promise<string> {
  const y4m = join(scratch, `${name}.y4m`)
  const out = join(scratch, `${name}.264`)
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=200x100:rate=24', '-frames:v', '20', '-pix_fmt', pixFmt, '-strict', '-1', '-f', 'yuv4mpegpipe', y4m])
  await execa('x264', ['--quiet', '--preset', 'veryfast', '--keyint', '8', ...x264, '-o', out, y4m])
  return out
}

async function ffprobeView (path: string): Promise<{ frames: number, width: number, height: number, pixFmt: string }> {
  const { stdout } = await execa('ffprobe', ['-v', 'error', '-f', 'h264', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=width,height,pix_fmt,nb_read_frames', '-of', 'json', path])
  const s = JSON.parse(stdout).streams[0] as { width: number, height: number, pix_fmt: string, nb_read_frames: string }
  return { frames: Number(s.nb_read_frames), width: s.width, height: s.height, pixFmt: s.pix_fmt }
}

describe('summarizeAnnexB', () => {
  const shapes: Array<[string, string, string[]]> = [
    ['8-bit 4:2:0 with B-frames', 'yuv420p', ['--bframes', '3']],
    ['four slices per picture', 'yuv420p', ['--slices', '4']],
    ['scaling matrices in the SPS (--cqm jvt)', 'yuv420p', ['--cqm', 'jvt']],
    ['interlaced (MBAFF: height in field pairs)', 'yuv420p', ['--tff']],
    ['10-bit', 'yuv420p10le', ['--output-depth', '10']],
    ['10-bit 4:2:2', 'yuv422p10le', ['--output-depth', '10', '--output-csp', 'i422']],
    ['4:4:4', 'yuv444p', ['--output-csp', 'i444']]
  ]
  for (const [what, pixFmt, args] of shapes) {
    it(`counts pictures and reads size and format as ffprobe's decode does: ${what}`, async () => {
      const path = await encode(what.replace(/\W+/g, '-'), pixFmt, args)
      const ours = summarizeAnnexB(await readFile(path))
      const theirs = await ffprobeView(path)
      expect(ours.pictures).toBe(20)
      expect(theirs.frames).toBe(20)
      expect(ours.startsWithIdr).toBe(true)
      expect(ours.hasPps).toBe(true)
      expect(ours.sps).toMatchObject({ width: theirs.width, height: theirs.height })
      const parsed = await verifyEncodedChunk(path, { frameCount: 20, width: 200, height: 100, decode: false })
      expect(parsed.pixFmt).toBe(theirs.pixFmt)
    })
  }

  it('counts short when the stream is cut, and finds nothing in bytes that are not H.264', async () => {
    const path = await encode('cut', 'yuv420p', [])
    const bytes = await readFile(path)
    const half = summarizeAnnexB(bytes.subarray(0, Math.floor(bytes.length / 2)))
    expect(half.pictures).toBeGreaterThan(0)
    expect(half.pictures).toBeLessThan(20)
    const junk = Buffer.from(Array.from({ length: 50_000 }, (_, i) => (i * 7919) % 251))
    expect(summarizeAnnexB(junk)).toMatchObject({ pictures: 0, hasPps: false })
    expect(summarizeAnnexB(junk).sps).toBeUndefined()
  })

  it('a parse-only check refuses a stream that does not start with an IDR picture', async () => {
    const path = await encode('no-idr', 'yuv420p', [])
    const bytes = await readFile(path)
    // Drop everything up to the second picture's parameter sets: the stream now starts mid-GOP
    // with a P picture (keyint 8, so picture 2 is not an IDR), its SPS and PPS kept in front.
    const s = summarizeAnnexB(bytes)
    expect(s.startsWithIdr).toBe(true)
    const idrAt = bytes.indexOf(Buffer.from([0, 0, 1, 0x65]))
    const nextSlice = bytes.indexOf(Buffer.from([0, 0, 1, 0x41]), idrAt + 4)
    expect(nextSlice).toBeGreaterThan(idrAt)
    const headers = bytes.subarray(0, idrAt)
    const damaged = join(scratch, 'no-idr-damaged.264')
    const { writeFile } = await import('node:fs/promises')
    await writeFile(damaged, Buffer.concat([headers, bytes.subarray(nextSlice)]))
    const left = summarizeAnnexB(await readFile(damaged))
    expect(left.startsWithIdr).toBe(false)
    await expect(verifyEncodedChunk(damaged, { frameCount: left.pictures, decode: false })).rejects.toThrow(/does not start with a keyframe/)
  })
})

describe('carriesA53Captions', () => {
  const annexB = async (file: string): Promise<Buffer> => {
    const r = await execa('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-map', '0:v:0', '-c', 'copy', '-t', '2', '-f', 'h264', '-'], { encoding: 'buffer' })
    return Buffer.from(r.stdout)
  }

  it('finds the CEA-608 captions of the captions fixture in its SEI, and none where there are none', async () => {
    const fx = await ensureFixtures()
    expect(carriesA53Captions(await annexB(fx.captionsTs))).toBe(true)
    for (const name of ['openGop10bit', 'vfrMp4', 'offsetTs', 'taggedMp4'] as const) expect(carriesA53Captions(await annexB(fx[name]))).toBe(false)
    // x264's own SEI (its version and settings, user data unregistered) is not mistaken for captions.
    expect(carriesA53Captions(await readFile(await encode('sei', 'yuv420p', [])))).toBe(false)
  })

  it('lets probeMedia see captions in a Matroska copy, where ffprobe\'s own probe does not', async () => {
    const fx = await ensureFixtures()
    const mkv = join(scratch, 'captions.mkv')
    await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-i', fx.captionsTs, '-map', '0:v:0', '-c', 'copy', mkv])
    const { stdout } = await execa('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=closed_captions', '-of', 'csv=p=0', mkv])
    expect(stdout.trim()).toBe('0')
    expect((await probeMedia(mkv)).video.closedCaptions).toBe(true)
  })
})
