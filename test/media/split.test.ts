import { execa } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cutSegment, decoderArgs, extractVideo, planChunks, probeMedia, sha256File, sourceAsCutSource, type CutSource, type MediaInfo } from '../../src/media/index.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'

let fx: Fixtures
let scratch: string
beforeAll(async () => {
  fx = await ensureFixtures()
  scratch = await mkdtemp(join(tmpdir(), 'swarm-split-'))
})
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

/** MD5 of every decoded frame, in display order. */
async function frameHashes (args: string[]): Promise<string[]> {
  const { stdout } = await execa('ffmpeg', [...args.slice(0, -3), '-f', 'framemd5', '-'])
  return stdout.split('\n').filter(l => l !== '' && !l.startsWith('#')).map(l => l.split(',').at(-1)?.trim() ?? '')
}

describe('cutSegment on an open-GOP source', () => {
  let source: MediaInfo
  let cut: CutSource
  beforeAll(async () => {
    source = await probeMedia(fx.openGop10bit)
    cut = await extractVideo(source, join(scratch, 'video-only.mkv'))
  })

  it('the fixture really has open-GOP leading B-frames decoded after their keyframe', () => {
    const { decodeOrder } = source.video
    const leading = decodeOrder.filter((f, i) => i > 0 && decodeOrder[i - 1]?.key === true && decodeOrder[i - 1]!.decodeIndex > 0 && f.pts < decodeOrder[i - 1]!.pts)
    expect(leading.length).toBeGreaterThan(0)
  })

  /** Cuts every chunk from `from` and decodes each piece: together they must be the whole file's frames. */
  async function expectExactPieces (info: MediaInfo, from: CutSource, tag: string): Promise<void> {
    const plan = planChunks(info, { gopsPerChunk: 1 })
    expect(plan.chunks.length).toBe(5)
    const whole = await frameHashes(['-v', 'error', '-i', info.path, '-map', `0:${info.video.streamIndex}`, '-fps_mode', 'passthrough', '-f', 'null', '-'])
    expect(whole).toHaveLength(240)
    const pieces: string[] = []
    for (const chunk of plan.chunks) {
      const segment = await cutSegment(info, from, chunk, join(scratch, `seg-${tag}-${chunk.index}.mkv`))
      expect(segment.frameCount).toBe(chunk.frameCount)
      expect(segment.sha256).toBe(await sha256File(segment.path))
      // Pre-roll/tail overlap stays small: at most one GOP's worth of extra packets.
      expect(segment.packetCount - segment.frameCount).toBeLessThan(50)
      const args = decoderArgs({ segmentPath: segment.path, selectFromTime: segment.selectFromTime, frameCount: segment.frameCount, sourcePixFmt: source.video.pixFmt })
      // Decode to the source's own pixel format so the hashes compare like for like.
      pieces.push(...await frameHashes(args))
    }
    expect(pieces).toEqual(whole)
  }

  it('gives each chunk exactly its frames, bit-identical to decoding the whole file', async () => {
    await expectExactPieces(source, cut, 'copy')
  })

  it('cuts the first chunk straight from the source as exactly as from the copy (no seek, so subtitles cannot pull it back)', async () => {
    expect(source.streams.some(st => st.type === 'subtitle')).toBe(true)
    const first = planChunks(source, { gopsPerChunk: 1 }).chunks[0]!
    const direct = await cutSegment(source, sourceAsCutSource(source), first, join(scratch, 'seg-first-direct.mkv'))
    const copied = await cutSegment(source, cut, first, join(scratch, 'seg-first-copy.mkv'))
    expect(direct.packetCount).toBe(copied.packetCount)
    expect(direct.selectFromTime).toBeCloseTo(copied.selectFromTime, 3)
    const hashes = async (seg: typeof direct): Promise<string[]> => await frameHashes(decoderArgs({ segmentPath: seg.path, selectFromTime: seg.selectFromTime, frameCount: seg.frameCount, sourcePixFmt: source.video.pixFmt }))
    expect(await hashes(direct)).toEqual(await hashes(copied))
  })

  it('a plain keyframe split (what mkvmerge --split does) would lose frames here', async () => {
    const out = join(scratch, 'naive.mkv')
    await execa('mkvmerge', ['--quiet', '-o', out, '--split', 'timestamps:2.1s,4.2s,6.3s,8.4s', fx.openGop10bit]).catch(() => {})
    let total = 0
    for (let i = 1; i <= 5; i++) {
      const { stdout } = await execa('ffprobe', ['-v', 'quiet', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', join(scratch, `naive-00${i}.mkv`)]).catch(() => ({ stdout: '0' }))
      total += Number(stdout.trim())
    }
    expect(total).toBeLessThan(240)
  })
})
