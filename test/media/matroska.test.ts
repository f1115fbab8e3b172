import { execa } from 'execa'
import { appendFile, copyFile, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readMatroskaFirstVideoPacket, readMatroskaTracks, readMatroskaVideoPackets, UnsupportedMatroskaError } from '../../src/media/matroska.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'

let fx: Fixtures
let scratch: string
beforeAll(async () => {
  fx = await ensureFixtures()
  scratch = await mkdtemp(join(tmpdir(), 'swarm-mkv-'))
})
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

async function ffprobePackets (path: string): Promise<Array<{ time: number, key: boolean }>> {
  const { stdout } = await execa('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time,flags', '-of', 'csv=p=0', path])
  return stdout.trim().split('\n').map(l => { const [t, f] = l.split(','); return { time: Number(t), key: (f ?? '').includes('K') } })
}

describe('readMatroskaVideoPackets', () => {
  it('reads the same video packets as ffprobe: B-frames, open GOPs, audio, subtitles and attachments around them', async () => {
    const ours = await readMatroskaVideoPackets(fx.openGop10bit)
    const theirs = await ffprobePackets(fx.openGop10bit)
    expect(ours).toHaveLength(240)
    expect(ours.map(p => p.key)).toEqual(theirs.map(p => p.key))
    ours.forEach((p, i) => { expect(p.time).toBeCloseTo(theirs[i]!.time, 6) })
  })

  it('reads block groups (keyframe = no reference block) and a non-default timestamp scale, VFR times intact', async () => {
    const out = join(scratch, 'groups.mkv')
    await execa('mkvmerge', ['--quiet', '-o', out, '--engage', 'no_simpleblocks', '--timestamp-scale', '1000', fx.vfrMp4])
    const { stdout } = await execa('mkvinfo', ['-v', out])
    expect(stdout).toMatch(/Block group/)
    expect(stdout).toMatch(/Reference block/)
    const ours = await readMatroskaVideoPackets(out)
    const theirs = await ffprobePackets(out)
    expect(ours).toHaveLength(120)
    expect(ours.map(p => p.key)).toEqual(theirs.map(p => p.key))
    ours.forEach((p, i) => { expect(p.time).toBeCloseTo(theirs[i]!.time, 6) })
  })

  it('leaves what it does not read to ffprobe: another container, a truncated file', async () => {
    await expect(readMatroskaVideoPackets(fx.vfrMp4)).rejects.toBeInstanceOf(UnsupportedMatroskaError)
    const cut = join(scratch, 'truncated.mkv')
    await copyFile(fx.openGop10bit, cut)
    await truncate(cut, Math.floor((await stat(cut)).size / 2))
    await expect(readMatroskaVideoPackets(cut)).rejects.toBeInstanceOf(UnsupportedMatroskaError)
  })
})

async function ffprobeStreams (path: string): Promise<Array<{ codec_type: string, width?: number, height?: number }>> {
  const { stdout } = await execa('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,width,height', '-of', 'json', path])
  return (JSON.parse(stdout) as { streams: Array<{ codec_type: string, width?: number, height?: number }> }).streams
}

/** A segment as the originator cuts it: the video alone, stream-copied into Matroska by ffmpeg. */
async function segmentOf (source: string, name: string, extra: string[] = []): Promise<string> {
  const out = join(scratch, name)
  await execa('ffmpeg', ['-v', 'error', '-y', '-i', source, '-map', '0:v:0', ...extra, '-c', 'copy', '-map_metadata', '-1', '-map_chapters', '-1', '-f', 'matroska', out])
  return out
}

describe('readMatroskaTracks', () => {
  it('reads a stream-copied segment\'s one video track as ffprobe does', async () => {
    for (const source of [fx.openGop10bit, fx.vfrMp4, fx.shortClip]) {
      const seg = await segmentOf(source, 'seg-tracks.mkv')
      const ours = await readMatroskaTracks(seg)
      const theirs = await ffprobeStreams(seg)
      expect(ours).toHaveLength(1)
      expect(theirs).toHaveLength(1)
      expect(ours[0]).toMatchObject({ type: 1, width: theirs[0]!.width, height: theirs[0]!.height })
    }
  })

  it('counts every track of a plain file: a video with audio is two tracks, as ffprobe says', async () => {
    const both = join(scratch, 'av.mkv')
    await execa('ffmpeg', ['-v', 'error', '-y', '-i', fx.vfrMp4, '-map', '0:v:0', '-map', '0:a:0', '-c', 'copy', '-map_metadata', '-1', '-f', 'matroska', both])
    expect((await readMatroskaTracks(both)).map(t => t.type)).toEqual([1, 2])
    expect((await ffprobeStreams(both)).map(s => s.codec_type)).toEqual(['video', 'audio'])
  })

  it('leaves to ffprobe what a walk of the elements could see otherwise: attachments, a second segment, a seek entry into other data', async () => {
    // Attachments are streams to ffmpeg, and chapters are not tracks: neither is a plain segment.
    await expect(readMatroskaTracks(fx.openGop10bit)).rejects.toBeInstanceOf(UnsupportedMatroskaError)
    const seg = await segmentOf(fx.shortClip, 'seg-base.mkv')
    const twice = join(scratch, 'two-segments.mkv')
    await copyFile(seg, twice)
    const bytes = await readFile(seg)
    await appendFile(twice, bytes.subarray(bytes.indexOf(Buffer.from([0x18, 0x53, 0x80, 0x67]))))
    await expect(readMatroskaTracks(twice)).rejects.toBeInstanceOf(UnsupportedMatroskaError)
    // Move the seek head's pointer to the Tracks element by one byte: ffmpeg would read whatever is there.
    const moved = Buffer.from(bytes)
    const seekId = moved.indexOf(Buffer.from([0x53, 0xab, 0x84, 0x16, 0x54, 0xae, 0x6b]))
    expect(seekId).toBeGreaterThan(0)
    const position = moved.indexOf(Buffer.from([0x53, 0xac]), seekId)
    const sizeByte = moved[position + 2]! & 0x7f
    moved[position + 2 + sizeByte]! += 1
    const misled = join(scratch, 'seek-moved.mkv')
    await writeFile(misled, moved)
    await expect(readMatroskaTracks(misled)).rejects.toThrow(/seek entry for 0x1654ae6b points at no such element/)
    await expect(readMatroskaTracks(seg)).resolves.toHaveLength(1)
  })

  it('stops walking a file of countless tiny elements and leaves it to ffprobe', async () => {
    const seg = await segmentOf(fx.shortClip, 'seg-voids.mkv')
    const padded = join(scratch, 'voids.mkv')
    await copyFile(seg, padded)
    // 150,000 empty Void elements after the segment: two bytes each, all of them legal.
    await appendFile(padded, Buffer.alloc(300_000).fill(Buffer.from([0xec, 0x80])))
    await expect(readMatroskaTracks(padded)).rejects.toThrow(/more than 100000 elements/)
  })
})

describe('readMatroskaFirstVideoPacket', () => {
  /** The first video packet's bytes as ffmpeg's demuxer gives them. */
  async function ffmpegFirstPacket (path: string): Promise<Buffer> {
    const { stdout } = await execa('ffmpeg', ['-v', 'error', '-nostdin', '-i', path, '-map', '0:v:0', '-c', 'copy', '-frames:v', '1', '-f', 'data', '-'], { encoding: 'buffer', stripFinalNewline: false })
    return Buffer.from(stdout)
  }

  it('reads the first video packet as ffmpeg does, with its codec and avcC, past audio, subtitles and attachments', async () => {
    const first = await readMatroskaFirstVideoPacket(fx.openGop10bit)
    expect(first.codecId).toBe('V_MPEG4/ISO/AVC')
    expect(first.codecPrivate?.[0]).toBe(1)
    expect(first.data.equals(await ffmpegFirstPacket(fx.openGop10bit))).toBe(true)
  })

  it('reads a block group\'s block, and HEVC with its hvcC', async () => {
    const hevc = join(scratch, 'first-hevc.mkv')
    await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=128x96:rate=25,trim=end_frame=5', '-c:v', 'libx265', '-x265-params', 'log-level=error', hevc])
    const first = await readMatroskaFirstVideoPacket(hevc)
    expect(first.codecId).toBe('V_MPEGH/ISO/HEVC')
    expect(first.data.equals(await ffmpegFirstPacket(hevc))).toBe(true)
    const groups = join(scratch, 'first-groups.mkv')
    await execa('mkvmerge', ['--quiet', '-o', groups, '--disable-lacing', '--engage', 'no_simpleblocks', fx.openGop10bit])
    expect((await readMatroskaFirstVideoPacket(groups)).data.equals(await ffmpegFirstPacket(groups))).toBe(true)
  })

  it('leaves another container to ffmpeg', async () => {
    await expect(readMatroskaFirstVideoPacket(fx.vfrMp4)).rejects.toThrow(UnsupportedMatroskaError)
  })
})
