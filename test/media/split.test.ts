import { execa } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cutSegment, decoderArgs, startsAtRandomAccessPoint, extractVideo, planChunks, probeMedia, sha256File, sourceAsCutSource, splitInOnePass, splitsInOnePass, type CutSource, type MediaInfo, type Segment } from '../../src/media/index.js'
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
      // x264's open-GOP keyframes after the first are I pictures, not IDR: their cuts are not
      // proven clean by the bitstream, so the merge compares their pictures with the source's.
      expect(segment.cutProven === true, `chunk ${chunk.index}`).toBe(chunk.index === 0)
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

  it('gives chunks that start between keyframes exactly their frames too: each segment starts at the keyframe before', async () => {
    const plan = planChunks(source, { minChunks: 12, midGopCuts: true, minTailChunkSeconds: 0.5 })
    expect(plan.chunks).toHaveLength(12)
    const between = plan.chunks.filter(c => c.decodeStart !== source.video.frames[c.startFrame]?.decodeIndex)
    expect(between.length).toBeGreaterThanOrEqual(6)
    const whole = await frameHashes(['-v', 'error', '-i', source.path, '-map', `0:${source.video.streamIndex}`, '-fps_mode', 'passthrough', '-f', 'null', '-'])
    const pieces: string[] = []
    for (const chunk of plan.chunks) {
      const segment = await cutSegment(source, cut, chunk, join(scratch, `seg-midgop-${chunk.index}.mkv`))
      expect(segment.frameCount).toBe(chunk.frameCount)
      // The pre-roll from the keyframe is in the segment, and skipped by selectFromTime.
      if (between.includes(chunk)) expect(segment.packetCount).toBeGreaterThan(chunk.frameCount)
      expect(segment.selectFromTime).toBeCloseTo(chunk.startTime, 3)
      pieces.push(...await frameHashes(decoderArgs({ segmentPath: segment.path, selectFromTime: segment.selectFromTime, frameCount: segment.frameCount, sourcePixFmt: source.video.pixFmt })))
    }
    expect(pieces).toEqual(whole)
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

describe('startsAtRandomAccessPoint', () => {
  it('tells HEVC IDR and CRA pictures and an H.264 IDR from an H.264 I picture that is not one, and knows no other codec', async () => {
    const make = async (name: string, args: string[]): Promise<string> => {
      const out = join(scratch, name)
      await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=128x96:rate=25,trim=end_frame=20', ...args, out])
      return out
    }
    /** Whether each chunk's segment (one GOP each) starts at a random access point, by the parse. */
    const proven = async (path: string): Promise<boolean[]> => {
      const info = await probeMedia(path)
      const plan = planChunks(info, { gopsPerChunk: 1 })
      expect(plan.chunks.length).toBeGreaterThan(1)
      const from = await extractVideo(info, `${path}.video.mkv`)
      const out: boolean[] = []
      for (const chunk of plan.chunks) {
        const seg = await cutSegment(info, from, chunk, `${path}.${chunk.index}.mkv`)
        expect(await startsAtRandomAccessPoint(seg.path, info.video.codec)).toBe(seg.cutProven === true || chunk.index === 0)
        out.push(await startsAtRandomAccessPoint(seg.path, info.video.codec))
      }
      return out
    }
    const gop = 'keyint=5:min-keyint=5:scenecut=0'
    expect(await proven(await make('idr.mkv', ['-c:v', 'libx264', '-preset', 'ultrafast', '-x264-params', gop]))).toEqual([true, true, true, true])
    // After the first, the keyframes of an open-GOP x264 stream are plain I pictures.
    expect(await proven(await make('open.mkv', ['-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '2', '-x264-params', `${gop}:open-gop=1:bframes=2`]))).toEqual([true, false, false, false])
    expect(await proven(await make('idr.hevc.mkv', ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', `log-level=error:${gop}`]))).toEqual([true, true, true, true])
    // HEVC's CRA: no picture shown after it references one before it, by the standard.
    expect(await proven(await make('cra.hevc.mkv', ['-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', `log-level=error:${gop}:open-gop=1`]))).toEqual([true, true, true, true])
    expect(await startsAtRandomAccessPoint(join(scratch, 'idr.mkv'), 'mpeg2video')).toBe(false)
  })
})

describe('splitInOnePass on a closed-GOP source', () => {
  let source: MediaInfo
  beforeAll(async () => {
    // The VFR B-frame video with the open-GOP fixture's audio and subtitles around it: one read
    // of the file must still give every chunk exactly its frames.
    const withTracks = join(scratch, 'vfr-with-tracks.mkv')
    await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-i', fx.vfrMp4, '-i', fx.openGop10bit, '-map', '0:v', '-map', '1:a', '-map', '1:s', '-c', 'copy', withTracks])
    source = await probeMedia(withTracks)
    expect(source.streams.some(st => st.type === 'subtitle')).toBe(true)
  })

  it('cuts every chunk in one pass, in order, each decoding to exactly its frames and nothing more', async () => {
    const plan = planChunks(source, { gopsPerChunk: 1 })
    expect(plan.chunks.length).toBeGreaterThan(2)
    expect(splitsInOnePass(plan.chunks)).toBe(true)
    const order: number[] = []
    const segments: Segment[] = []
    await splitInOnePass(source, plan.chunks, join(scratch, 'onepass-tmp'), {
      pathOf: (i) => join(scratch, `onepass-${i}.mkv`),
      wanted: () => true,
      onSegment: (i, r) => { order.push(i); if (r instanceof Error) throw r; segments.push(r) }
    })
    expect(order).toEqual(plan.chunks.map(c => c.index))
    const copy = await extractVideo(source, join(scratch, 'onepass-video-only.mkv'))
    const whole = await frameHashes(['-v', 'error', '-i', source.path, '-map', `0:${source.video.streamIndex}`, '-fps_mode', 'passthrough', '-f', 'null', '-'])
    const pieces: string[] = []
    for (const seg of segments) {
      const chunk = plan.chunks[seg.chunkIndex]!
      expect(seg.path).toBe(join(scratch, `onepass-${chunk.index}.mkv`))
      expect(seg.sha256).toBe(await sha256File(seg.path))
      // Every keyframe of x264's closed GOPs is an IDR picture: each cut is proven clean.
      expect(seg.cutProven).toBe(true)
      // Closed GOPs: a segment is its chunk's packets, no overlap with the next.
      expect(seg.packetCount).toBe(chunk.frameCount)
      // The same segment a seek-and-cut from the copied video gives, to the packet.
      const cut = await cutSegment(source, copy, chunk, join(scratch, `onepass-cut-${chunk.index}.mkv`))
      expect(seg.selectFromTime).toBeCloseTo(cut.selectFromTime, 6)
      expect(seg.packetCount).toBe(cut.packetCount)
      pieces.push(...await frameHashes(decoderArgs({ segmentPath: seg.path, selectFromTime: seg.selectFromTime, frameCount: seg.frameCount, sourcePixFmt: source.video.pixFmt })))
    }
    expect(pieces).toEqual(whole)
  })

  it('keeps only the wanted segments (a restarted job has the others)', async () => {
    const plan = planChunks(source, { gopsPerChunk: 1 })
    const got: number[] = []
    await splitInOnePass(source, plan.chunks, join(scratch, 'wanted-tmp'), {
      pathOf: (i) => join(scratch, `wanted-${i}.mkv`),
      wanted: (i) => i % 2 === 1,
      onSegment: (i) => { got.push(i) }
    })
    expect(got).toEqual(plan.chunks.filter(c => c.index % 2 === 1).map(c => c.index))
    const { readdir } = await import('node:fs/promises')
    const left = (await readdir(scratch)).filter(f => f.startsWith('wanted-') && f.endsWith('.mkv')).sort()
    expect(left).toEqual(got.map(i => `wanted-${i}.mkv`).sort())
    expect(await readdir(join(scratch, 'wanted-tmp'))).toEqual([])
  })

  it('reports a segment that does not start on its chunk\'s keyframe, and fails the pass when segments go missing', async () => {
    const plan = planChunks(source, { gopsPerChunk: 1 })
    // A doctored plan: chunk 1 "starts" one frame after its keyframe, where ffmpeg cannot split.
    const doctored = plan.chunks.map(c => c.index === 1 ? { ...c, decodeStart: c.decodeStart + 1, startFrame: c.startFrame + 1, frameCount: c.frameCount - 1 } : c)
    doctored[0] = { ...doctored[0]!, endFrame: doctored[0]!.endFrame + 1, frameCount: doctored[0]!.frameCount + 1, decodeEnd: doctored[0]!.decodeEnd + 1 }
    expect(splitsInOnePass(doctored)).toBe(true)
    const results = new Map<number, Segment | Error>()
    await expect(splitInOnePass(source, doctored, join(scratch, 'bad-tmp'), {
      pathOf: (i) => join(scratch, `bad-${i}.mkv`),
      wanted: () => true,
      onSegment: (i, r) => { results.set(i, r) }
    })).rejects.toThrow(/segments for \d+ chunks/)
    // Chunk 0's segment runs on to the next keyframe ffmpeg could split at: more packets, still exact.
    const first = results.get(0) as Segment
    expect(first.packetCount).toBeGreaterThan(first.frameCount)
    expect((results.get(1) as Error).message).toMatch(/chunk 1: the segment starts at [\d.]+ instead of the keyframe/)
  })

  it('is refused for an open-GOP plan, whose segments must overlap', async () => {
    const open = await probeMedia(fx.openGop10bit)
    expect(splitsInOnePass(planChunks(open, { gopsPerChunk: 1 }).chunks)).toBe(false)
  })
})
