/**
 * x265 through the media layer: its allowlist and chunk command line, real x265 chunks of the VFR
 * fixture encoded, parsed (hevc.ts), verified, structure-checked, picture-checked and merged
 * frame-exact, and an HDR10 source whose mastering display and content light level survive.
 */
import { execa } from 'execa'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  comparePictures, convicts, cutSegment, describeHevcStructure, describeStructure, effectiveSettings, encodeChunk, encodeFileLocally, encoderFor, extractVideo,
  mergeChunks, parseX264Settings, parseX265Settings, planChunks, probeMedia, referenceStructure, SettingsError, structureMismatches, summarizeHevc,
  VerificationError, verifyEncodedChunk, type MediaInfo, type Segment, type StructureJob
} from '../../src/media/index.js'
import { ensureFixtures, ensureHdr10Fixture, HDR10_CONTENT_LIGHT, HDR10_MASTERING_DISPLAY } from '../fixtures.js'
import { worstFrameTimeOffset } from '../helpers/media.js'

const x265 = encoderFor('x265')
let scratch: string

beforeAll(async () => { scratch = await mkdtemp(join(tmpdir(), 'swarm-x265-')) })
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

/** The error a settings string is refused with. */
function refusal (raw: string): SettingsError {
  try { parseX265Settings(raw) } catch (err) { return err as SettingsError }
  throw new Error(`"${raw}" was accepted`)
}

describe('x265 settings', () => {
  it('accepts pure encoding options, long, short and --name=value, and normalises them', () => {
    const s = parseX265Settings('-p slow --crf=20 -D 10 --profile main10 --tune grain --psy-rd 1.5 --aq-mode 3 --aq-strength 0.8 -b 8 --ref 4 --rc-lookahead 60 ' +
      '--me star --subme 5 --merange 57 --deblock -1:-1 --no-sao --no-strong-intra-smoothing --no-open-gop --keyint 240 --level-idc 5.1 --vbv-maxrate 8000 --vbv-bufsize 16000')
    expect(s.encoder).toBe('x265')
    expect(s.outputDepth).toBe(10)
    expect(s.profile).toBe('main10')
    expect(s.args.slice(0, 6)).toEqual(['--preset', 'slow', '--crf', '20', '--output-depth', '10'])
    expect(parseX265Settings('--crf 28').outputDepth).toBe(8)
    expect(parseX265Settings('--master-display "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)" --max-cll 1000,400 --hdr10-opt').args)
      .toContain('G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)')
  })

  it('refuses options that name files, feed or time the input, or take the worker\'s threads, naming the option and why', () => {
    const cases: Array<[string, RegExp]> = [
      ['--csv stats.csv', /option --csv is not allowed: it names a file on disk/],
      ['--recon /tmp/r.yuv', /option --recon is not allowed: it names a file on disk/],
      ['-r /tmp/r.yuv', /option -r \(--recon\) is not allowed: it names a file on disk/],
      ['--recon-y4m-exec "ffplay -"', /option --recon-y4m-exec is not allowed: it runs a program/],
      ['--analysis-save a.dat', /option --analysis-save is not allowed: it names a file on disk/],
      ['--dhdr10-info meta.json', /option --dhdr10-info is not allowed: it names a file on disk/],
      ['--qpfile q.txt', /option --qpfile is not allowed: it names a file on disk/],
      ['--zonefile z.txt', /option --zonefile is not allowed: it names a file on disk/],
      ['--pools 64', /option --pools is not allowed: the worker sets threads to fit its cores/],
      ['--numa-pools 4', /option --numa-pools is not allowed/],
      ['-o out.hevc', /option -o \(--output\) is not allowed/],
      ['--input clip.y4m', /option --input is not allowed: the worker feeds x265 itself/],
      ['--frames 10', /option --frames is not allowed/],
      ['--log-level none', /option --log-level is not allowed: the worker reads x265's log/],
      ['--pass 2', /option --pass is not allowed: multi-pass/],
      ['--interlace tff', /option --interlace is not allowed/],
      ['--display-window 0,0,8,8', /option --display-window is not allowed: cropping/],
      ['--svt-hme', /option --svt-hme is not allowed: it is not on the list of x265 encoding options swarm accepts/]
    ]
    for (const [raw, why] of cases) {
      const err = refusal(raw)
      expect(err, raw).toBeInstanceOf(SettingsError)
      expect(err.message, raw).toMatch(/^x265 settings: /)
      expect(err.message, raw).toMatch(why)
    }
  })

  it('bounds what holds memory and checks values, naming the option', () => {
    expect(refusal('--rc-lookahead 120').message).toBe('x265 settings: value "120" of --rc-lookahead must be between 0 and 60')
    expect(refusal('--frame-threads 64').message).toBe('x265 settings: value "64" of --frame-threads must be between 1 and 16')
    expect(refusal('-D 12').message).toMatch(/value "12" of -D must be one of 8, 10/)
    expect(refusal('--scaling-list /etc/passwd').message).toMatch(/value "\/etc\/passwd" of --scaling-list must be one of default, off/)
    expect(refusal('--crf 60').message).toMatch(/--crf must be between 0 and 51/)
    expect(refusal('--output-depth 10 --profile main').message).toMatch(/--profile main cannot carry 10-bit output/)
    expect(refusal('--opt-qp-pps').message).toMatch(/option --opt-qp-pps is not allowed/)
    expect(refusal('clip.y4m').message).toMatch(/unexpected argument "clip.y4m": x265 would take it as an input or output file name/)
  })
})

describe('the x265 encoder', () => {
  it('writes a chunk from y4m on stdin to raw HEVC, at the source\'s rate and frame count, on the worker\'s threads', () => {
    const args = x265.chunkArgs(parseX265Settings('--preset fast --crf 22'), { frameRate: { num: 24000, den: 1001 }, frameCount: 48, threads: 2, outputPath: '/w/chunk-3.hevc' })
    expect(args).toEqual(['--preset', 'fast', '--crf', '22', '--pools', '2', '--fps', '24000/1001', '--frames', '48', '--y4m', '--output', '/w/chunk-3.hevc', '-'])
    expect([x265.binary, x265.bitstream, x265.codec, x265.fileExtension]).toEqual(['x265', 'hevc', 'hevc', '.hevc'])
    expect(x265.parseVersion('x265 [info]: HEVC encoder version 3.5+1-f0c1022b6\nx265 [info]: build info')).toBe('3.5+1-f0c1022b6')
  })

  it('reads its progress and its closing count, and its presets\' frames', () => {
    expect(x265.parseProgress('[12.5%] 6/48 frames, 3.10 fps, 812.00 kb/s, eta 0:00:13\r[25.0%] 12/48 frames, 4.25 fps, 700.10 kb/s, eta 0:00:08')).toEqual({ framesDone: 12, fps: 4.25 })
    expect(x265.encodedFrames('x265 [info]: frame I: 1\n\nencoded 48 frames in 2.31s (20.78 fps), 310.44 kb/s, Avg QP:30.12\n')).toBe(48)
    expect(x265.memoryInputs(parseX265Settings('--crf 20'))).toEqual({ ref: 3, bframes: 4, lookahead: 20, samplesPerPixel: 3, bytesPerSample: 1 })
    expect(x265.memoryInputs(parseX265Settings('--preset placebo --ref 6 -D 10'))).toMatchObject({ ref: 6, bframes: 8, lookahead: 60, bytesPerSample: 2 })
  })

  it('states the source\'s colour in x265\'s words, HDR10 metadata with it, and leaves what the settings set', () => {
    const colour = { range: 'tv', primaries: 'bt2020', transfer: 'smpte2084', matrix: 'bt2020nc', chromaLocation: 'topleft', sar: '16:15' }
    const hdr = { masteringDisplay: HDR10_MASTERING_DISPLAY, contentLight: HDR10_CONTENT_LIGHT }
    expect(x265.sourceColourArgs(colour, parseX265Settings('-D 10 --range full'), hdr)).toEqual([
      '--colorprim', 'bt2020', '--transfer', 'smpte2084', '--colormatrix', 'bt2020nc', '--chromaloc', '2', '--sar', '16:15',
      '--master-display', HDR10_MASTERING_DISPLAY, '--max-cll', HDR10_CONTENT_LIGHT, '--hdr10-opt'])
    // 8-bit output gets the metadata, not the 10-bit-only QP optimisation.
    expect(x265.sourceColourArgs(colour, parseX265Settings('--crf 20'), hdr)).not.toContain('--hdr10-opt')
    expect(x265.statedRange(parseX265Settings('--range full'))).toBe('pc')
    expect(x265.statedRange(parseX265Settings('--range limited'))).toBe('tv')
    expect([...x265.colourSetBy(parseX265Settings('--range full --colorprim bt709'))].sort()).toEqual(['primaries', 'range'])
    // x264 carries the same metadata in its own options.
    expect(encoderFor('x264').sourceColourArgs({}, parseX264Settings('--crf 20'), hdr)).toEqual(['--mastering-display', HDR10_MASTERING_DISPLAY, '--cll', HDR10_CONTENT_LIGHT])
  })
})

/** `frames` frames of testsrc2 at 320x180 as y4m in the given pixel format. */
async function clip (name: string, pixFmt: string, frames = 24): Promise<string> {
  const y4m = join(scratch, `${name}.y4m`)
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25', '-frames:v', String(frames), '-pix_fmt', pixFmt, '-strict', '-1', '-f', 'yuv4mpegpipe', y4m])
  return y4m
}

/** A clip through the real x265 (the chunk command line, the file in place of stdin). */
async function x265Encode (name: string, settings: string, y4m: string, frames = 24): Promise<string> {
  const out = join(scratch, `${name}.hevc`)
  const args = x265.chunkArgs(parseX265Settings(settings), { frameRate: { num: 25, den: 1 }, frameCount: frames, threads: 1, outputPath: out })
  args[args.length - 1] = y4m
  await execa('x265', args)
  return out
}

async function x264Encode (name: string, y4m: string): Promise<string> {
  const out = join(scratch, `${name}.264`)
  await execa('x264', ['--preset', 'ultrafast', '--crf', '30', '--stitchable', '--quiet', '--output', out, y4m])
  return out
}

const job8bit: StructureJob = { settings: parseX265Settings('--preset ultrafast --crf 30'), width: 320, height: 180, sourcePixFmt: 'yuv420p', frameRate: { num: 25, den: 1 } }

describe('x265 results: parsed, verified and structure-checked', () => {
  it('parses real x265 output: every picture counted, an IDR first, VPS, SPS and PPS, size and format from the SPS', async () => {
    const s = summarizeHevc(await readFile(await x265Encode('plain', '--preset ultrafast --crf 30', await clip('420', 'yuv420p'))))
    expect(s).toMatchObject({ pictures: 24, startsWithIdr: true, hasVps: true, hasPps: true })
    expect(s.sps).toMatchObject({ profileIdc: 1, chromaFormatIdc: 1, bitDepth: 8, width: 320, height: 180, fieldSeq: false })
    const deep = summarizeHevc(await readFile(await x265Encode('deep', '--preset ultrafast --crf 30 -D 10 --colorprim bt709 --transfer bt709 --colormatrix bt709 --range full --sar 16:15', await clip('444', 'yuv444p'))))
    expect(deep.sps).toMatchObject({ profileIdc: 4, chromaFormatIdc: 3, bitDepth: 10, vui: { sar: '16:15', fullRange: true, primaries: 1, transfer: 1, matrix: 1 } })
  })

  it('refuses H.264 offered as an x265 result and HEVC offered as an x264 one, decoded or only parsed', async () => {
    const y4m = await clip('420', 'yuv420p')
    const h264 = await x264Encode('h264', y4m)
    const hevc = await x265Encode('hevc', '--preset ultrafast --crf 30', y4m)
    expect(await verifyEncodedChunk(hevc, { frameCount: 24, width: 320, height: 180, encoder: 'x265' })).toMatchObject({ codec: 'hevc', frameCount: 24, pixFmt: 'yuv420p' })
    expect(await verifyEncodedChunk(hevc, { frameCount: 24, width: 320, height: 180, encoder: 'x265', decode: false })).toMatchObject({ codec: 'hevc', profile: 'Main' })
    for (const decode of [true, false]) {
      const asHevc = await verifyEncodedChunk(h264, { frameCount: 24, encoder: 'x265', decode }).then(() => undefined, (err: unknown) => err)
      expect(asHevc, `H.264 as x265, decode ${decode}`).toBeInstanceOf(VerificationError)
      expect(convicts(asHevc, h264)).toBe(true)
      const asH264 = await verifyEncodedChunk(hevc, { frameCount: 24, encoder: 'x264', decode }).then(() => undefined, (err: unknown) => err)
      expect(asH264, `HEVC as x264, decode ${decode}`).toBeInstanceOf(VerificationError)
      expect(convicts(asH264, hevc)).toBe(true)
    }
    await expect(verifyEncodedChunk(h264, { frameCount: 24, encoder: 'x265', decode: false })).rejects.toThrow(/not an HEVC stream with its parameter sets \(no VPS found\)/)
  })

  it('passes an honest x265 encode of the job and refuses 10-bit 4:4:4 in an 8-bit 4:2:0 job, and an H.264 stream', async () => {
    const reference = await referenceStructure(job8bit)
    expect(reference).toMatchObject({ codec: 'hevc', encoder: 'x265', distinctVps: 1, distinctSps: 1, distinctPps: 1, otherLayers: 0 })
    expect(reference.codec === 'hevc' ? reference.seiTypes : undefined).toEqual([5])
    const honest = await readFile(await x265Encode('honest', '--preset ultrafast --crf 30', await clip('420', 'yuv420p')))
    expect(structureMismatches(describeHevcStructure(honest), reference, 24)).toEqual([])
    const deep = await x265Encode('deep444', '--preset ultrafast --crf 30 -D 10', await clip('444', 'yuv444p'))
    expect(structureMismatches(describeStructure('hevc', await readFile(deep)), reference, 24)).toEqual(expect.arrayContaining([
      'general_profile_idc 4, expected 1', 'chroma format 3, expected 1', 'bit depth 10, expected 8']))
    await expect(verifyEncodedChunk(deep, { frameCount: 24, width: 320, height: 180, decode: false, structure: reference })).rejects.toThrow(/is not what this job's encoder writes: general_profile_idc 4, expected 1/)
    const h264 = await readFile(await x264Encode('h264b', await clip('420', 'yuv420p')))
    expect(structureMismatches(describeStructure('h264', h264), reference, 24)).toEqual(['a h264 stream, expected hevc'])
  })
})

describe('x265 chunks of the VFR fixture', () => {
  const settings = '--preset ultrafast --crf 28'
  let source: MediaInfo
  let segments: Segment[]
  let chunks: string[]

  beforeAll(async () => {
    const fx = await ensureFixtures()
    source = await probeMedia(fx.vfrMp4)
    const cut = await extractVideo(source, join(scratch, 'vfr-video.mkv'))
    const plan = planChunks(source, { gopsPerChunk: 2 })
    segments = []
    for (const c of plan.chunks) segments.push(await cutSegment(source, cut, c, join(scratch, `vfr-seg-${c.index}.mkv`)))
    chunks = []
    for (const seg of segments) {
      chunks.push((await encodeChunk({
        segmentPath: seg.path, selectFromTime: seg.selectFromTime, frameCount: seg.frameCount, settings: parseX265Settings(settings), frameRate: source.video.frameRate,
        sourcePixFmt: source.video.pixFmt, width: source.video.width, height: source.video.height, outputPath: join(scratch, `vfr-chunk-${seg.chunkIndex}.hevc`), threads: 1
      })).path)
    }
  })

  it('encodes each chunk whole, each one starting with an IDR and carrying its own parameter sets, and merges them frame-exact at the source\'s timestamps', async () => {
    expect(segments.length).toBeGreaterThanOrEqual(2)
    for (const [i, chunk] of chunks.entries()) {
      const s = summarizeHevc(await readFile(chunk))
      expect(s, `chunk ${i}`).toMatchObject({ pictures: (segments[i] as Segment).frameCount, startsWithIdr: true, hasVps: true, hasPps: true })
      await verifyEncodedChunk(chunk, { frameCount: (segments[i] as Segment).frameCount, width: 320, height: 180, encoder: 'x265' })
    }
    const merged = await mergeChunks({ source, chunkPaths: chunks, encoder: 'x265', workDir: join(scratch, 'merge'), outputPath: join(scratch, 'vfr [x265].mkv') })
    const out = merged.info
    expect(out.video.codec).toBe('hevc')
    expect(out.video.frameCount).toBe(source.video.frameCount)
    // Matroska keeps milliseconds: the 24 fps half and the 12 fps half both land within one.
    expect(worstFrameTimeOffset(source, out)).toBeLessThanOrEqual(0.001)
    expect(out.streams.filter(s => s.type === 'audio')).toHaveLength(1)
  })

  it('passes the honest chunk\'s pictures and refuses a negated one made with the job\'s own x265 settings', async () => {
    const seg = segments[1] as Segment
    const job: StructureJob = { settings: parseX265Settings(settings), width: source.video.width, height: source.video.height, sourcePixFmt: source.video.pixFmt, frameRate: source.video.frameRate }
    const honest = await comparePictures(chunks[1] as string, seg, seg.frameCount, { job })
    expect(honest.frames).toHaveLength(seg.frameCount)
    expect(Math.max(...Object.values(honest.scores))).toBeLessThan(0.8)
    // A liar's result: the segment's frames negated, through the real x265 with the job's settings.
    const negated = join(scratch, 'negated.hevc')
    const from = (seg.selectFromTime - 0.0005).toFixed(6)
    await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-copyts', '-i', seg.path, '-map', '0:v:0', '-vf', `select='gte(t,${from})',negate`, '-frames:v', String(seg.frameCount),
      '-fps_mode', 'passthrough', '-pix_fmt', 'yuv420p', '-strict', '-1', '-f', 'yuv4mpegpipe', '-'])
      .pipe('x265', [...x265.chunkArgs(job.settings, { frameRate: source.video.frameRate, frameCount: seg.frameCount, outputPath: negated })])
    await verifyEncodedChunk(negated, { frameCount: seg.frameCount, width: 320, height: 180, encoder: 'x265' })
    const refused = await comparePictures(negated, seg, seg.frameCount, { job }).then(() => undefined, (err: unknown) => err)
    expect(refused).toBeInstanceOf(VerificationError)
    expect(convicts(refused, negated)).toBe(true)
    expect((refused as Error).message).toMatch(/does not show the source's picture|further from the source/)
  })
})

describe('an HDR10 source through x265', () => {
  it('keeps its mastering display and content light level through the encode and the merge', async () => {
    const hdr10 = await ensureHdr10Fixture()
    const source = await probeMedia(hdr10)
    expect(source.video.hdr).toEqual({ masteringDisplay: HDR10_MASTERING_DISPLAY, contentLight: HDR10_CONTENT_LIGHT })
    const settings = effectiveSettings(parseX265Settings('--preset ultrafast --crf 30 --output-depth 10'), source.video)
    expect(settings.args).toEqual(expect.arrayContaining(['--master-display', HDR10_MASTERING_DISPLAY, '--max-cll', HDR10_CONTENT_LIGHT, '--transfer', 'smpte2084']))
    const report = await encodeFileLocally(hdr10, parseX265Settings('--preset ultrafast --crf 30 --output-depth 10'), { workDir: join(scratch, 'hdr-work'), outputPath: join(scratch, 'hdr [x265].mkv'), gopsPerChunk: 1 })
    expect(report.plan.chunks.length).toBeGreaterThanOrEqual(2)
    expect(report.outputInfo.video).toMatchObject({ codec: 'hevc', pixFmt: 'yuv420p10le', frameCount: 48, colour: { primaries: 'bt2020', transfer: 'smpte2084', matrix: 'bt2020nc' } })
    // ffprobe's own reading of the output's first frame.
    const { stdout } = await execa('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-read_intervals', '%+#1', '-show_frames', '-of', 'json', report.output.path])
    const sideData = (JSON.parse(stdout) as { frames: Array<{ side_data_list?: Array<Record<string, unknown>> }> }).frames[0]?.side_data_list ?? []
    expect(sideData.find(d => d.side_data_type === 'Mastering display metadata')).toMatchObject({
      green_x: '13250/50000', green_y: '34500/50000', blue_x: '7500/50000', blue_y: '3000/50000', red_x: '34000/50000', red_y: '16000/50000',
      white_point_x: '15635/50000', white_point_y: '16450/50000', max_luminance: '10000000/10000', min_luminance: '50/10000'
    })
    expect(sideData.find(d => d.side_data_type === 'Content light level metadata')).toMatchObject({ max_content: 1000, max_average: 400 })
  })

  it('has x264 write the same metadata as mastering display and content light level SEI', async () => {
    const source = await probeMedia(await ensureHdr10Fixture())
    const settings = effectiveSettings(parseX264Settings('--preset ultrafast --crf 30 --output-depth 10'), source.video)
    const out = join(scratch, 'hdr.264')
    const args = encoderFor('x264').chunkArgs(settings, { frameRate: { num: 25, den: 1 }, frameCount: 2, threads: 1, outputPath: out })
    args[args.length - 1] = await clip('hdr-10bit', 'yuv420p10le', 2)
    await execa('x264', args)
    // ffmpeg 5.1's H.264 decoder does not export these as side data: read from the SEI itself.
    expect(describeStructure('h264', await readFile(out)).seiTypes).toEqual(expect.arrayContaining([137, 144]))
  })
})
