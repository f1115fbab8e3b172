/**
 * SVT-AV1 and aomenc through the media layer's checks and the merge: real chunks verified
 * (decoded and parsed) and refused as the wrong codec, structure-checked against the job's
 * reference (a 10-bit or 4:4:4 result refused), picture-checked (a negated result refused), merged
 * frame-exact at the VFR fixture's timestamps with its audio and named [AV1], the source's SAR
 * and HDR10 metadata kept.
 */
import { execa } from 'execa'
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  checkFidelity, comparePictures, convicts, cutSegment, describeStructure, effectiveSettings, encodeChunk, encodeFileLocally, encoderFor, extractVideo, joinIvf,
  mergeChunks, planChunks, probeMedia, referenceStructure, structureMismatches, summarizeIvfAv1, VerificationError, verifyEncodedChunk,
  type EncoderSettings, type MediaInfo, type Segment, type StructureJob
} from '../../src/media/index.js'
import { ensureFixtures, ensureHdr10Fixture, HDR10_CONTENT_LIGHT } from '../fixtures.js'
import { worstFrameTimeOffset } from '../helpers/media.js'

type Av1Id = 'svt-av1' | 'aomenc'

/** The quickest settings of each (seconds for a test's clips), and how each says 10 bits. */
const QUICK: Record<Av1Id, string> = { 'svt-av1': '--preset 12 --crf 40', aomenc: '--cpu-used=6 --end-usage=q --cq-level=30' }
/** Settings the picture check's test chunks are made with (aomenc's --rt is refused: aomenc-options.ts says why). */
const CHUNKS: Record<Av1Id, string> = { 'svt-av1': '--preset 12 --crf 40', aomenc: '--cpu-used=6 --end-usage=q --cq-level=40' }
const DEEP: Record<Av1Id, string> = { 'svt-av1': '--input-depth 10', aomenc: '--bit-depth=10' }

let scratch: string
beforeAll(async () => { scratch = await mkdtemp(join(tmpdir(), 'swarm-av1-wire-')) })
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

/** `frames` frames of testsrc2 at 160x90 as y4m in the given pixel format. */
async function clip (name: string, pixFmt: string, frames = 24): Promise<string> {
  const y4m = join(scratch, `${name}.y4m`)
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=25', '-frames:v', String(frames), '-pix_fmt', pixFmt, '-strict', '-1', '-f', 'yuv4mpegpipe', y4m])
  return y4m
}

/** A clip through the real encoder's chunk command line, the file as its input. */
async function av1Encode (id: Av1Id, name: string, settings: string, y4m: string, frames = 24): Promise<string> {
  const encoder = encoderFor(id)
  const out = join(scratch, `${name}.ivf`)
  await execa(encoder.binary, encoder.chunkArgs(encoder.parseSettings(settings), { frameRate: { num: 25, den: 1 }, frameCount: frames, threads: 1, outputPath: out, inputPath: y4m }))
  return out
}

const timings: string[] = []
afterAll(() => { if (timings.length > 0) console.log(`AV1 test chunks: ${timings.join('; ')}`) })

async function timed<T> (what: string, run: () => Promise<T>): Promise<T> {
  const t0 = performance.now()
  const result = await run()
  timings.push(`${what} ${((performance.now() - t0) / 1000).toFixed(2)} s`)
  return result
}

describe.each(['svt-av1', 'aomenc'] as const)('%s results: verified and structure-checked', (id) => {
  const job = (): StructureJob => ({ settings: encoderFor(id).parseSettings(QUICK[id]), width: 160, height: 90, sourcePixFmt: 'yuv420p', frameRate: { num: 25, den: 1 } })

  it('accepts an honest chunk, decoded and parsed, and refuses H.264 offered as AV1 and AV1 offered as H.264 or HEVC', async () => {
    const y4m = await clip('420', 'yuv420p')
    const av1 = await timed(`${id} encode of 24 frames at 160x90`, async () => await av1Encode(id, `honest-${id}`, QUICK[id], y4m))
    const decoded = await timed(`${id} verify (decode)`, async () => await verifyEncodedChunk(av1, { frameCount: 24, width: 160, height: 90, encoder: id }))
    expect(decoded).toMatchObject({ codec: 'av1', frameCount: 24, pixFmt: 'yuv420p', width: 160, height: 90 })
    expect(await verifyEncodedChunk(av1, { frameCount: 24, width: 160, height: 90, encoder: id, decode: false })).toMatchObject({ codec: 'av1', profile: 'Main', pixFmt: 'yuv420p' })
    await expect(verifyEncodedChunk(av1, { frameCount: 23, encoder: id, decode: false })).rejects.toThrow(/holds 24 frames, expected 23/)
    const h264 = join(scratch, 'h264.264')
    await execa('x264', ['--preset', 'ultrafast', '--crf', '30', '--stitchable', '--quiet', '--output', h264, y4m])
    for (const decode of [true, false]) {
      const asAv1 = await verifyEncodedChunk(h264, { frameCount: 24, encoder: id, decode }).then(() => undefined, (err: unknown) => err)
      expect(asAv1, `H.264 as ${id}, decode ${decode}`).toBeInstanceOf(VerificationError)
      expect(convicts(asAv1, h264)).toBe(true)
      for (const other of ['x264', 'x265'] as const) {
        const asOther = await verifyEncodedChunk(av1, { frameCount: 24, encoder: other, decode }).then(() => undefined, (err: unknown) => err)
        expect(asOther, `AV1 as ${other}, decode ${decode}`).toBeInstanceOf(VerificationError)
        expect(convicts(asOther, av1)).toBe(true)
      }
    }
    await expect(verifyEncodedChunk(h264, { frameCount: 24, encoder: id, decode: false })).rejects.toThrow(/not an AV1 stream a chunk can be: not an IVF file/)
  })

  it('passes an honest encode of the job and refuses a 10-bit result in an 8-bit job, a 4:4:4 one and an H.264 stream', async () => {
    const reference = await timed(`${id} reference structure`, async () => await referenceStructure(job()))
    expect(reference).toMatchObject({ codec: 'av1', encoder: id, format: { profile: 0, bitDepth: 8, chroma: '420' }, metadataTypes: [] })
    expect(reference.codec === 'av1' ? reference.sequence?.['film_grain_params_present'] : undefined).toBe(0)
    const honest = await readFile(await av1Encode(id, `structure-${id}`, QUICK[id], await clip('420', 'yuv420p')))
    expect(structureMismatches(describeStructure('av1', honest), reference, 24)).toEqual([])
    // A liar's 10 bits, from its own encoder fed 10-bit pictures.
    const deep = await av1Encode(id, `deep-${id}`, `${QUICK[id]} ${DEEP[id]}`, await clip('420p10', 'yuv420p10le'))
    expect(structureMismatches(describeStructure('av1', await readFile(deep)), reference, 24)).toContain('bit depth 10, expected 8')
    await expect(verifyEncodedChunk(deep, { frameCount: 24, width: 160, height: 90, decode: false, structure: reference })).rejects.toThrow(/is not what this job's encoder writes: bit depth 10, expected 8/)
    // 4:4:4 is AV1's High profile, which only aomenc writes (SvtAv1EncApp 1.4.1 encodes 4:2:0 alone).
    const full = join(scratch, `444-${id}.ivf`)
    await execa('aomenc', ['--ivf', '--passes=1', '--rt', '--cpu-used=9', '--profile=1', '--limit=24', '--quiet', '-o', full, await clip('444', 'yuv444p')])
    expect(summarizeIvfAv1(await readFile(full))).toMatchObject({ chroma: '444', profile: 1 })
    expect(structureMismatches(describeStructure('av1', await readFile(full)), reference, 24)).toEqual(expect.arrayContaining(['seq_profile 1, expected 0', 'chroma 444, expected 420']))
    await expect(verifyEncodedChunk(full, { frameCount: 24, width: 160, height: 90, decode: false, structure: reference })).rejects.toThrow(/seq_profile 1, expected 0/)
    const h264 = join(scratch, 'h264b.264')
    await execa('x264', ['--preset', 'ultrafast', '--quiet', '--output', h264, await clip('420', 'yuv420p')])
    expect(structureMismatches(describeStructure('h264', await readFile(h264)), reference, 24)).toEqual(['a h264 stream, expected av1'])
  })

  it('refuses OBU types and metadata its encoder does not write, and padding', async () => {
    const reference = await referenceStructure(job())
    const honest = describeStructure('av1', await readFile(await av1Encode(id, `obu-${id}`, QUICK[id], await clip('420', 'yuv420p'))))
    expect(structureMismatches({ ...honest, obuTypes: [...honest.obuTypes, 15], paddingBytes: 4000 }, reference, 24)).toEqual([`OBU types ${id} does not write: 15`])
    expect(structureMismatches({ ...honest, metadataTypes: [4], metadataBytes: 100_000 }, reference, 24)).toEqual([
      'metadata types this job\'s encoder does not write: 4', '100000 bytes of metadata OBUs for 24 pictures (at most 10496)'])
  })
})

describe.each(['svt-av1', 'aomenc'] as const)('%s chunks of the VFR fixture', (id) => {
  let source: MediaInfo
  let segments: Segment[]
  let chunks: string[]
  let chunkStarts: number[]
  // As a job encodes: the user's settings with the source's colour (effectiveSettings).
  const settingsOf = (): EncoderSettings => effectiveSettings(encoderFor(id).parseSettings(CHUNKS[id]), source.video)
  const job = (): StructureJob => ({ settings: settingsOf(), width: source.video.width, height: source.video.height, sourcePixFmt: source.video.pixFmt, frameRate: source.video.frameRate })

  beforeAll(async () => {
    const fx = await ensureFixtures()
    // A copy beside the scratch files, so the merge's default name lands there.
    const copy = join(scratch, `vfr-${id}.mp4`)
    await copyFile(fx.vfrMp4, copy)
    source = await probeMedia(copy)
    const cut = await extractVideo(source, join(scratch, `vfr-video-${id}.mkv`))
    const plan = planChunks(source, { gopsPerChunk: 2 })
    chunkStarts = plan.chunks.map(c => c.startFrame)
    segments = []
    for (const c of plan.chunks) segments.push(await cutSegment(source, cut, c, join(scratch, `vfr-seg-${id}-${c.index}.mkv`)))
    chunks = []
    for (const seg of segments) {
      const settings = settingsOf()
      const encoded = await timed(`${id} encodeChunk of ${seg.frameCount} frames at 320x180`, async () => await encodeChunk({
        segmentPath: seg.path, selectFromTime: seg.selectFromTime, frameCount: seg.frameCount, settings, frameRate: source.video.frameRate,
        sourcePixFmt: source.video.pixFmt, width: source.video.width, height: source.video.height, outputPath: join(scratch, `vfr-chunk-${id}-${seg.chunkIndex}.ivf`), threads: 1
      }))
      chunks.push(encoded.path)
    }
  })

  it('verifies and structure-checks each chunk, and merges them frame-exact at the source\'s timestamps with its audio, named [AV1]', async () => {
    expect(segments.length).toBeGreaterThanOrEqual(2)
    const reference = await referenceStructure(job())
    for (const [i, chunk] of chunks.entries()) {
      const frameCount = (segments[i] as Segment).frameCount
      await timed(`${id} verify of ${frameCount} frames (decode)`, async () => await verifyEncodedChunk(chunk, { frameCount, width: 320, height: 180, encoder: id }))
      await verifyEncodedChunk(chunk, { frameCount, width: 320, height: 180, decode: false, structure: reference })
    }
    const merged = await mergeChunks({ source, chunkPaths: chunks, encoder: id, workDir: join(scratch, `merge-${id}`) })
    expect(basename(merged.path)).toBe(`vfr-${id} [AV1].mkv`)
    const out = merged.info
    expect(out.video.codec).toBe('av1')
    expect(out.video.frameCount).toBe(source.video.frameCount)
    // Matroska keeps milliseconds: the 24 fps half and the 12 fps half both land within one.
    expect(worstFrameTimeOffset(source, out)).toBeLessThanOrEqual(0.001)
    expect(out.streams.filter(s => s.type === 'audio')).toHaveLength(1)
    // Every frame decodes, and the pictures where the chunks join are the source's.
    const report = await checkFidelity(source, merged.path, { settings: encoderFor(id).parseSettings(CHUNKS[id]), output: out, chunkStarts })
    expect(report.checks.find(c => c.name === 'pictures at cuts')).toMatchObject({ ok: true })
    // aomenc 3.6 codes no chroma location (chroma_sample_position 0) for the source's "left": the
    // default a player takes for 4:2:0, which the fidelity check accepts (fidelity.ts colourCheck).
    if (id === 'aomenc') expect(out.video.colour.chromaLocation).toBeUndefined()
    expect(report.checks.filter(c => !c.ok)).toEqual([])
  })

  it('passes the honest chunk\'s pictures and refuses a negated one made with the job\'s own encoder', async () => {
    const seg = segments[1] as Segment
    const honest = await timed(`${id} picture check of ${seg.frameCount} frames`, async () => await comparePictures(chunks[1] as string, seg, seg.frameCount, { job: job() }))
    expect(honest.frames).toHaveLength(seg.frameCount)
    expect(Math.max(...Object.values(honest.scores))).toBeLessThan(0.8)
    const encoder = encoderFor(id)
    const negated = join(scratch, `negated-${id}.ivf`)
    const from = (seg.selectFromTime - 0.0005).toFixed(6)
    await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-copyts', '-i', seg.path, '-map', '0:v:0', '-vf', `select='gte(t,${from})',negate`, '-frames:v', String(seg.frameCount),
      '-fps_mode', 'passthrough', '-pix_fmt', 'yuv420p', '-strict', '-1', '-f', 'yuv4mpegpipe', '-'])
      .pipe(encoder.binary, encoder.chunkArgs(job().settings, { frameRate: source.video.frameRate, frameCount: seg.frameCount, outputPath: negated }))
    await verifyEncodedChunk(negated, { frameCount: seg.frameCount, width: 320, height: 180, encoder: id })
    const refused = await comparePictures(negated, seg, seg.frameCount, { job: job() }).then(() => undefined, (err: unknown) => err)
    expect(refused).toBeInstanceOf(VerificationError)
    expect(convicts(refused, negated)).toBe(true)
    expect((refused as Error).message).toMatch(/does not show the source's picture|further from the source/)
  })
})

describe('IVF files joined', () => {
  it('keeps one header and counts the frames and their timestamps on', async () => {
    const y4m = await clip('420', 'yuv420p', 6)
    const a = await readFile(await av1Encode('svt-av1', 'join-a', QUICK['svt-av1'], y4m, 6))
    const b = await readFile(await av1Encode('svt-av1', 'join-b', QUICK['svt-av1'], y4m, 6))
    const joined = joinIvf([a, b])
    expect(summarizeIvfAv1(joined)).toMatchObject({ pictures: 12, keyFrames: 2 })
    expect(joined.readUInt32LE(24)).toBe(12)
    // The second file's first frame (after the first file's 6) is stamped 6.
    const at = (n: number): number => { let p = 32; for (let i = 0; i < n; i++) p += 12 + joined.readUInt32LE(p); return p }
    expect(Number(joined.readBigUInt64LE(at(6) + 4))).toBe(6)
    expect(joined.length).toBe(a.length + b.length - 32)
  })
})

describe('the source\'s aspect ratio and HDR10 through SVT-AV1', () => {
  it('states a 16:15 SAR in the container (AV1 has none in its bitstream) and keeps the colour and audio', async () => {
    const fx = await ensureFixtures()
    const report = await encodeFileLocally(fx.taggedMp4, encoderFor('svt-av1').parseSettings(QUICK['svt-av1']), { workDir: join(scratch, 'sar-work'), outputPath: join(scratch, 'tagged [AV1].mkv') })
    expect(report.outputInfo.video).toMatchObject({ codec: 'av1', colour: { sar: '16:15', primaries: 'bt709', transfer: 'bt709', matrix: 'bt709', range: 'tv' } })
    const fidelity = await checkFidelity(report.source, report.output.path, { output: report.outputInfo })
    expect(fidelity.checks.filter(c => !c.ok)).toEqual([])
  })

  it('keeps its mastering display and content light level (metadata OBUs) through the encode and the merge', async () => {
    const hdr10 = await ensureHdr10Fixture()
    const source = await probeMedia(hdr10)
    const user = encoderFor('svt-av1').parseSettings(`${QUICK['svt-av1']} --input-depth 10`)
    const settings = effectiveSettings(user, source.video)
    expect(settings.args).toEqual(expect.arrayContaining(['--mastering-display', 'G(0.265,0.69)B(0.15,0.06)R(0.68,0.32)WP(0.3127,0.329)L(1000,0.005)', '--content-light', HDR10_CONTENT_LIGHT, '--enable-hdr', '1']))
    const reference = await referenceStructure({ settings, width: 320, height: 180, sourcePixFmt: source.video.pixFmt, frameRate: source.video.frameRate })
    // HDR_CLL and HDR_MDCV: what the structure check then lets a result of the job carry.
    expect(reference.codec === 'av1' ? reference.metadataTypes : undefined).toEqual([1, 2])
    const report = await encodeFileLocally(hdr10, user, { workDir: join(scratch, 'hdr-work'), outputPath: join(scratch, 'hdr [AV1].mkv'), gopsPerChunk: 1 })
    expect(report.plan.chunks.length).toBeGreaterThanOrEqual(2)
    expect(report.outputInfo.video).toMatchObject({ codec: 'av1', pixFmt: 'yuv420p10le', frameCount: 48, colour: { primaries: 'bt2020', transfer: 'smpte2084', matrix: 'bt2020nc' } })
    expect(report.outputInfo.video.hdr).toEqual(source.video.hdr)
  })
})
