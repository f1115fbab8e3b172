/**
 * Test material made with ffmpeg's lavfi sources, once per machine and fixture version, cached under
 * the OS temp dir. Small on purpose (≤ 320x180, ≤ 10 s) so the whole suite stays fast.
 */
import { execa } from 'execa'
import { existsSync, readdirSync } from 'node:fs'
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { crc32File } from '../src/media/index.js'
import { makeOpenGop10bit, x264FromLavfi } from '../scripts/sample.js'

/** Bump when a fixture's recipe changes, so stale caches are not reused. */
const FIXTURE_VERSION = 8
export const FIXTURE_DIR = join(tmpdir(), `swarm-fixtures-v${FIXTURE_VERSION}`)

export interface Fixtures {
  /** Open-GOP, B-pyramid, High 10 MKV: two audio tracks, ASS subtitles, a font, chapters. 240 frames at 24 fps. */
  openGop10bit: string
  /** Variable frame rate MP4 with AAC audio: 60 frames at 24 fps then 60 at 12 fps. */
  vfrMp4: string
  /** 18 frames, less than one GOP. */
  shortClip: string
  /** A name with spaces, brackets, quotes and a correct CRC32 tag. */
  awkwardName: string
  /** Same content as awkwardName but a CRC32 tag that does not match. */
  wrongCrc: string
  /**
   * A broadcast-style MPEG-TS that does not start at 0: video from about 11.4 s (10 s of
   * output_ts_offset plus the muxer's own 1.4 s), audio 0.4 s after it. 6 s at 30000/1001 fps.
   */
  offsetTs: string
  /**
   * An MP4 whose video states its colour (tv range, BT.709 primaries, transfer and matrix, chroma
   * left) and a 16:15 sample aspect ratio, with two audio tracks: eng (default) and jpn (not default).
   */
  taggedMp4: string
  /**
   * A broadcast-style TS starting at 11.4 s whose H.264 carries CEA-608 closed captions in its SEI
   * (ATSC A/53 user data): "HELLO CAPTIONS" shown from frame 8 on, repeated every 60 frames; 4 s at
   * 30000/1001 with an audio track.
   */
  captionsTs: string
  /** A screen-recorder MP4 at 243090000/8111111 fps (time base 1/243090000): 90 frames. */
  oddRateMp4: string
}

function paths (): Fixtures {
  return {
    openGop10bit: join(FIXTURE_DIR, 'open-gop-10bit.mkv'),
    vfrMp4: join(FIXTURE_DIR, 'vfr.mp4'),
    shortClip: join(FIXTURE_DIR, 'short.mkv'),
    awkwardName: join(FIXTURE_DIR, 'names', 'Show\'s "Best" - 01 [v2] [CRC].mkv'),
    wrongCrc: join(FIXTURE_DIR, 'names', 'Broken - 02 [DEADBEEF].mkv'),
    offsetTs: join(FIXTURE_DIR, 'offset-10s.ts'),
    taggedMp4: join(FIXTURE_DIR, 'tagged-bt709.mp4'),
    captionsTs: join(FIXTURE_DIR, 'captions-608.ts'),
    oddRateMp4: join(FIXTURE_DIR, 'odd-rate.mp4')
  }
}

async function makeOffsetTs (_work: string, out: string): Promise<void> {
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=30000/1001:duration=6', '-itsoffset', '0.4', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=5',
    '-map', '0:v', '-map', '1:a', '-c:v', 'libx264', '-preset', 'veryfast', '-g', '48', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '64k',
    '-output_ts_offset', '10', '-f', 'mpegts', out])
}

async function makeTaggedMp4 (_work: string, out: string): Promise<void> {
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25:duration=3', '-f', 'lavfi', '-i', 'sine=duration=3', '-f', 'lavfi', '-i', 'sine=frequency=880:duration=3',
    '-map', '0:v', '-map', '1:a', '-map', '2:a', '-vf', 'setsar=16/15', '-c:v', 'libx264', '-preset', 'veryfast', '-g', '25', '-pix_fmt', 'yuv420p',
    '-color_range', 'tv', '-color_primaries', 'bt709', '-color_trc', 'bt709', '-colorspace', 'bt709', '-chroma_sample_location', 'left',
    '-c:a', 'aac', '-b:a', '64k', '-metadata:s:a:0', 'language=eng', '-metadata:s:a:1', 'language=jpn',
    '-disposition:a:0', 'default', '-disposition:a:1', '0', '-f', 'mp4', out])
}

/** A byte with CEA-608's odd parity in its top bit. */
function oddParity (b: number): number {
  const v = b & 0x7f
  let ones = 0
  for (let x = v; x !== 0; x >>= 1) ones += x & 1
  return ones % 2 === 1 ? v : v | 0x80
}

/** An SEI NAL unit (ATSC A/53 user_data_registered_itu_t_t35) carrying one CEA-608 field-1 byte pair. */
function captionSei (pair: [number, number]): Buffer {
  const payload = Buffer.from([0xb5, 0x00, 0x31, ...Buffer.from('GA94'), 0x03, 0xc0 | 1, 0xff, 0xfc, oddParity(pair[0]), oddParity(pair[1]), 0xff])
  return Buffer.from([0x06, 4, payload.length, ...payload, 0x80])
}

/**
 * CEA-608 captions written into an x264 stream by hand (no tool makes them from nothing): every
 * picture gets an SEI with the next byte pair of "resume caption loading, HELLO CAPTIONS, end of
 * caption" (twice), then padding; the cycle repeats every 60 pictures.
 */
async function makeCaptionsTs (work: string, out: string): Promise<void> {
  const plain = join(work, 'cc-plain.264')
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=30000/1001:duration=4',
    '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '0', '-g', '30', '-pix_fmt', 'yuv420p', '-x264-params', 'aud=1', '-f', 'h264', plain])
  const text = [...Buffer.from('HELLO CAPTIONS')]
  const pairs: Array<[number, number]> = [[0x14, 0x20]]
  for (let i = 0; i < text.length; i += 2) pairs.push([text[i] as number, text[i + 1] ?? 0x20])
  pairs.push([0x14, 0x2f], [0x14, 0x2f])
  const data = await readFile(plain)
  const starts: number[] = []
  for (let i = data.indexOf(Buffer.from([0, 0, 1])); i >= 0; i = data.indexOf(Buffer.from([0, 0, 1]), i + 3)) starts.push(i)
  const parts: Buffer[] = []
  let picture = 0
  for (const [k, s] of starts.entries()) {
    let nal = data.subarray(s + 3, starts[k + 1] ?? data.length)
    while (nal.length > 0 && nal[nal.length - 1] === 0) nal = nal.subarray(0, nal.length - 1)
    const type = (nal[0] ?? 0) & 0x1f
    if (type === 1 || type === 5) {
      parts.push(Buffer.from([0, 0, 0, 1]), captionSei(pairs[picture % 60] ?? [0x80, 0x80]))
      picture++
    }
    parts.push(Buffer.from([0, 0, 0, 1]), nal)
  }
  const withCaptions = join(work, 'cc.264')
  await writeFile(withCaptions, Buffer.concat(parts))
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-r', '30000/1001', '-f', 'h264', '-i', withCaptions, '-f', 'lavfi', '-i', 'sine=frequency=550:duration=4',
    '-map', '0:v', '-map', '1:a', '-c:v', 'copy', '-c:a', 'aac', '-b:a', '64k', '-output_ts_offset', '10', '-f', 'mpegts', out])
}

async function makeOddRateMp4 (_work: string, out: string): Promise<void> {
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=30', '-frames:v', '90',
    '-c:v', 'libx264', '-preset', 'veryfast', '-g', '30', '-r', '243090000/8111111', '-video_track_timescale', '243090000', '-pix_fmt', 'yuv420p', '-f', 'mp4', out])
}

async function makeVfrMp4 (work: string, out: string): Promise<void> {
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y',
    '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=24', '-f', 'lavfi', '-i', 'sine=frequency=330:duration=7.5',
    '-frames:v', '120', '-vf', "setpts='if(lt(N,60),N/24,2.5+(N-60)/12)/TB'", '-fps_mode', 'vfr',
    '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '3', '-g', '36', '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-b:a', '64k', '-shortest', '-video_track_timescale', '90000', out])
}

async function makeShortClip (work: string, out: string): Promise<void> {
  const video = join(work, 'short.264')
  await x264FromLavfi(work, video, { seconds: 0.75, pixFmt: 'yuv420p', x264: ['--preset', 'veryfast', '--keyint', '250', '--bframes', '2'] })
  const audio = join(work, 'short.flac')
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'sine=frequency=550:duration=0.75', '-c:a', 'flac', audio])
  await execa('mkvmerge', ['--quiet', '-o', out, '--default-duration', '0:24fps', video, audio])
}

/** Generates whatever is missing; safe to call from several processes (each fixture is renamed into place). */
export async function ensureFixtures (): Promise<Fixtures> {
  const p = paths()
  const marker = join(FIXTURE_DIR, 'complete')
  if (existsSync(marker)) return resolveAwkward(p)
  const work = join(FIXTURE_DIR, `work-${process.pid}`)
  await mkdir(join(FIXTURE_DIR, 'names'), { recursive: true })
  await mkdir(work, { recursive: true })
  const build = async (target: string, make: (w: string, o: string) => Promise<void>): Promise<void> => {
    if (existsSync(target)) return
    const tmp = join(work, `out-${Math.random().toString(16).slice(2)}${target.slice(target.lastIndexOf('.'))}`)
    await make(work, tmp)
    await rename(tmp, target)
  }
  await build(p.openGop10bit, makeOpenGop10bit)
  await build(p.vfrMp4, makeVfrMp4)
  await build(p.shortClip, makeShortClip)
  await build(p.offsetTs, makeOffsetTs)
  await build(p.taggedMp4, makeTaggedMp4)
  await build(p.captionsTs, makeCaptionsTs)
  await build(p.oddRateMp4, makeOddRateMp4)
  // The awkward name carries the real CRC32 of its content.
  const awkwardTmp = join(work, 'awkward.mkv')
  await x264FromLavfi(work, join(work, 'aw.264'), { seconds: 2, pixFmt: 'yuv420p', x264: ['--preset', 'veryfast', '--keyint', '24'] })
  await execa('mkvmerge', ['--quiet', '-o', awkwardTmp, '--default-duration', '0:24fps', join(work, 'aw.264')])
  const crc = await crc32File(awkwardTmp)
  await copyFile(awkwardTmp, p.wrongCrc)
  await rename(awkwardTmp, p.awkwardName.replace('[CRC]', `[${crc}]`))
  await rm(work, { recursive: true, force: true })
  await writeFile(marker, new Date().toISOString())
  return resolveAwkward(p)
}

function resolveAwkward (p: Fixtures): Fixtures {
  const names = readdirSync(join(FIXTURE_DIR, 'names'))
  const awkward = names.find(n => n.startsWith('Show\'s'))
  if (awkward === undefined) throw new Error(`fixture with an awkward name is missing from ${FIXTURE_DIR}/names`)
  return { ...p, awkwardName: join(FIXTURE_DIR, 'names', awkward) }
}

/** The HDR10 fixture's mastering display and content light level, as x265 was told them. */
export const HDR10_MASTERING_DISPLAY = 'G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)'
export const HDR10_CONTENT_LIGHT = '1000,400'

/**
 * An HDR10 Matroska made with x265 (10-bit, BT.2020, PQ, limited range, mastering display and
 * content light level SEI): 48 frames of testsrc2 at 24 fps, 320x180. Cached beside the other
 * fixtures under its own name (made apart from ensureFixtures, whose version it leaves alone).
 */
export async function ensureHdr10Fixture (): Promise<string> {
  const target = join(tmpdir(), 'swarm-fixtures-hdr10-v1', 'hdr10.mkv')
  if (existsSync(target)) return target
  const work = join(tmpdir(), 'swarm-fixtures-hdr10-v1', `work-${process.pid}`)
  await mkdir(work, { recursive: true })
  const y4m = join(work, 'hdr.y4m')
  const hevc = join(work, 'hdr.hevc')
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=24', '-frames:v', '48', '-pix_fmt', 'yuv420p10le', '-strict', '-1', '-f', 'yuv4mpegpipe', y4m])
  await execa('x265', ['--preset', 'ultrafast', '--crf', '24', '--output-depth', '10', '--range', 'limited', '--colorprim', 'bt2020', '--transfer', 'smpte2084', '--colormatrix', 'bt2020nc',
    '--master-display', HDR10_MASTERING_DISPLAY, '--max-cll', HDR10_CONTENT_LIGHT, '--keyint', '24', '--y4m', '--output', hevc, y4m])
  const tmp = join(work, 'hdr10.mkv')
  await execa('mkvmerge', ['--quiet', '-o', tmp, '--default-duration', '0:24fps', hevc])
  await rename(tmp, target)
  await rm(work, { recursive: true, force: true })
  return target
}
