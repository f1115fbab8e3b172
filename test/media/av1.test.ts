/**
 * The AV1 encoders end to end (a real encode of a tiny clip through encodeChunk) and the IVF/AV1
 * reader on what they write: its picture count against what ffprobe decodes, and its bounds
 * against truncated, mutated and made-up bytes.
 */
import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rename } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { Av1BitstreamError, encodeChunk, encoderFor, SettingsError, summarizeIvfAv1, type EncoderId, type IvfAv1Summary } from '../../src/media/index.js'
import { decodedFrameCount } from '../helpers/media.js'
import { prng } from '../helpers/random.js'

const DIR = join(tmpdir(), 'swarm-av1-v1')
const FRAMES = 40
/** 320x180 at 24 fps, 40 frames of moving test pattern in one x264 GOP: a segment as split.ts cuts them. */
const SOURCE = join(DIR, 'source.mkv')

beforeAll(async () => {
  await mkdir(DIR, { recursive: true })
  if (!existsSync(SOURCE)) {
    const part = `${SOURCE}.${process.pid}.part`
    await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', `testsrc2=size=320x180:rate=24,trim=end_frame=${FRAMES}`,
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '250', '-pix_fmt', 'yuv420p', '-f', 'matroska', part])
    await rename(part, SOURCE)
  }
})

/** Settings quick enough for a test that still code hidden alt-ref frames (shown later by show_existing_frame). */
const QUICK: Record<'svt-av1' | 'aomenc', string> = { 'svt-av1': '--preset 12 --crf 45', aomenc: '--cpu-used=6 --end-usage=q --cq-level=45' }
/** 10-bit output from the 8-bit source, and BT.709 studio range with left chroma as the source could state it. */
const DEEP: Record<'svt-av1' | 'aomenc', string> = { 'svt-av1': '--input-depth 10', aomenc: '--bit-depth=10' }

async function encode (id: 'svt-av1' | 'aomenc', raw: string, name: string, sourcePixFmt = 'yuv420p'): Promise<string> {
  const encoder = encoderFor(id)
  const outputPath = join(DIR, `${name}${encoder.fileExtension}`)
  const result = await encodeChunk({
    segmentPath: SOURCE, selectFromTime: 0, frameCount: FRAMES, settings: encoder.parseSettings(raw),
    frameRate: { num: 24, den: 1 }, sourcePixFmt, outputPath, threads: 1
  })
  expect(result.frameCount).toBe(FRAMES)
  return outputPath
}

async function ffprobeStream (path: string): Promise<Record<string, string>> {
  const { stdout } = await execa('ffprobe', ['-v', 'error', '-f', 'ivf', '-show_entries', 'stream=codec_name,width,height,pix_fmt,color_range,color_primaries,color_transfer,color_space,chroma_location', '-of', 'json', path])
  return (JSON.parse(stdout) as { streams: Array<Record<string, string>> }).streams[0] as Record<string, string>
}

const outputs = new Map<EncoderId, Uint8Array>()

describe.each(['svt-av1', 'aomenc'] as const)('%s through encodeChunk', (id) => {
  it('encodes exactly the chunk\'s frames into IVF, and the reader counts what a decoder outputs', async () => {
    const path = await encode(id, QUICK[id], `quick-${id}`)
    const bytes = await readFile(path)
    outputs.set(id, bytes)
    const summary = summarizeIvfAv1(bytes)
    expect(summary.pictures).toBe(FRAMES)
    expect(await decodedFrameCount(path)).toBe(FRAMES)
    // Hidden frames there are, so counting frame headers would overcount: the reader counts shown ones.
    expect(summary.hiddenFrames).toBeGreaterThan(0)
    // One key frame, the first: the chunk args place no other.
    expect(summary).toMatchObject({ firstIsKey: true, keyFrames: 1, width: 320, height: 180, bitDepth: 8, chroma: '420', profile: 0 })
    expect(summary.ivf).toMatchObject({ width: 320, height: 180 })
  })

  it('writes 10 bits from an 8-bit source when its settings say so, with the source\'s colour as sourceColourArgs state it', async () => {
    const encoder = encoderFor(id)
    const colour = encoder.sourceColourArgs({ primaries: 'bt709', transfer: 'bt709', matrix: 'bt709', chromaLocation: 'left', range: 'tv' }, encoder.parseSettings(DEEP[id]))
    const path = await encode(id, `${QUICK[id]} ${DEEP[id]} ${colour.join(' ')}`, `deep-${id}`)
    const summary = summarizeIvfAv1(await readFile(path))
    expect(summary).toMatchObject({ pictures: FRAMES, bitDepth: 10, chroma: '420' })
    // aomenc takes the chroma position from the y4m, which has no word for it at 10 bits.
    const left = id === 'svt-av1'
    expect(summary.colour).toEqual({ primaries: 1, transfer: 1, matrix: 1, fullRange: false, chromaSamplePosition: left ? 1 : 0 })
    const stream = await ffprobeStream(path)
    expect(stream).toMatchObject({ pix_fmt: 'yuv420p10le', color_primaries: 'bt709', color_transfer: 'bt709', color_space: 'bt709' })
    expect(stream.chroma_location).toBe(left ? 'left' : undefined)
  })

  it('refuses a 4:2:2 source before running anything', async () => {
    const err = await encode(id, QUICK[id], `refused-${id}`, 'yuv422p').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SettingsError)
    expect(String((err as Error).message)).toMatch(/encodes 4:2:0 only in swarm, and this source is 4:2:2/)
    expect(existsSync(join(DIR, `refused-${id}.ivf`))).toBe(false)
  })
})

/** Byte offsets where each IVF frame (temporal unit) starts, and the file's end. */
function frameStarts (bytes: Uint8Array): number[] {
  const starts: number[] = []
  for (let at = 32; at < bytes.length;) {
    starts.push(at)
    at += 12 + ((bytes[at] as number) | ((bytes[at + 1] as number) << 8) | ((bytes[at + 2] as number) << 16)) + (bytes[at + 3] as number) * 0x1000000
  }
  return [...starts, bytes.length]
}

/** The reader either summarises the bytes or throws its own error: never another error, never a hang. */
function readOrRefuse (bytes: Uint8Array): IvfAv1Summary | Av1BitstreamError {
  try {
    return summarizeIvfAv1(bytes)
  } catch (err) {
    if (err instanceof Av1BitstreamError) return err
    throw err
  }
}

describe('summarizeIvfAv1 on hostile bytes', () => {
  /** The first encoder's output (the describe above ran it), or a fresh encode when run alone. */
  async function realOutput (id: 'svt-av1' | 'aomenc'): Promise<Uint8Array> {
    return outputs.get(id) ?? await readFile(await encode(id, QUICK[id], `quick-${id}`))
  }

  it.each(['svt-av1', 'aomenc'] as const)('counts whole temporal units of a truncated %s file, and refuses every cut inside one', async (id) => {
    const bytes = await realOutput(id)
    const starts = frameStarts(bytes)
    expect(starts.length - 1).toBe(FRAMES)
    // Every cut near a frame boundary, and 400 more spread over the file.
    const rand = prng(7)
    const cuts = new Set<number>([0, 1, 31, 32, 33, 43, 44])
    for (const s of starts) for (const d of [-2, -1, 0, 1, 2, 12, 13]) cuts.add(s + d)
    for (let i = 0; i < 400; i++) cuts.add(Math.floor(rand() * bytes.length))
    for (const cut of [...cuts].filter(c => c >= 0 && c < bytes.length)) {
      const result = readOrRefuse(bytes.subarray(0, cut))
      const whole = starts.indexOf(cut)
      if (whole > 0) {
        expect(result, `cut at ${cut}`).not.toBeInstanceOf(Error)
        expect((result as IvfAv1Summary).pictures).toBe(whole)
      } else {
        expect(result, `cut at ${cut}`).toBeInstanceOf(Av1BitstreamError)
      }
    }
  })

  it.each(['svt-av1', 'aomenc'] as const)('either reads or refuses %s output with random bytes changed, never failing otherwise', async (id) => {
    const bytes = await realOutput(id)
    const rand = prng(11)
    let refused = 0
    for (let i = 0; i < 1500; i++) {
      const mutated = Uint8Array.from(bytes)
      const changes = 1 + Math.floor(rand() * 4)
      for (let c = 0; c < changes; c++) mutated[Math.floor(rand() * mutated.length)] = Math.floor(rand() * 256)
      const result = readOrRefuse(mutated)
      if (result instanceof Error) refused++
      else expect(result.pictures).toBeLessThanOrEqual(FRAMES)
    }
    // Most changes land in tile data, which the reader does not look into; those in headers and sizes are refused.
    expect(refused).toBeGreaterThan(0)
  })

  it.each(['svt-av1', 'aomenc'] as const)('refuses %s output whose first frame is made an inter frame, or shown late', async (id) => {
    const bytes = await realOutput(id)
    // The first temporal unit's OBUs: its frame OBU (type 6) or frame header (type 3) opens with show_existing_frame, frame_type, show_frame.
    let at = 32 + 12
    let frameHeader = -1
    while (frameHeader < 0) {
      const type = ((bytes[at] as number) >> 3) & 0x0f
      let size = 0; let shift = 0; let q = at + 1
      for (;;) { const b = bytes[q++] as number; size += (b & 0x7f) * 2 ** shift; shift += 7; if ((b & 0x80) === 0) break }
      if (type === 6 || type === 3) frameHeader = q
      at = q + size
    }
    const inter = Uint8Array.from(bytes)
    inter[frameHeader] = ((inter[frameHeader] as number) & 0x9f) | 0x20
    expect(() => summarizeIvfAv1(inter)).toThrow(/the first frame is not a shown key frame/)
    const hidden = Uint8Array.from(bytes)
    hidden[frameHeader] = (hidden[frameHeader] as number) & 0xef
    expect(() => summarizeIvfAv1(hidden)).toThrow(/the first frame is not a shown key frame/)
  })

  it('refuses made-up bytes, lying sizes and overlong size fields with its own clear error', () => {
    const rand = prng(3)
    const header = (fourcc = 'AV01', length = 32): Uint8Array => {
      const h = new Uint8Array(32)
      h.set(Buffer.from('DKIF')); h[6] = length; h.set(Buffer.from(fourcc), 8)
      return h
    }
    const ivf = (...parts: Uint8Array[]): Uint8Array => Buffer.concat(parts)
    const frame = (payload: number[], size = payload.length): Uint8Array => {
      const f = new Uint8Array(12 + payload.length)
      new DataView(f.buffer).setUint32(0, size, true)
      f.set(payload, 12)
      return f
    }
    for (let i = 0; i < 300; i++) {
      const noise = Uint8Array.from({ length: Math.floor(rand() * 400) }, () => Math.floor(rand() * 256))
      expect(readOrRefuse(ivf(header(), noise))).toBeInstanceOf(Av1BitstreamError)
      expect(readOrRefuse(noise)).toBeInstanceOf(Av1BitstreamError)
    }
    const refusal = (bytes: Uint8Array): string => String((readOrRefuse(bytes) as Error).message)
    expect(refusal(new Uint8Array(10))).toMatch(/shorter than an IVF header/)
    expect(refusal(ivf(header('VP90')))).toMatch(/holds "VP90", not AV1/)
    expect(refusal(ivf(header('AV01', 64)))).toMatch(/says it is 64 bytes long/)
    expect(refusal(ivf(header()))).toMatch(/holds no temporal unit/)
    expect(refusal(ivf(header(), frame([0x12, 0x00], 0xffffffff)))).toMatch(/says 4294967295 bytes but 2 remain/)
    // A temporal delimiter, then an OBU whose size field never ends, then one whose size is past the frame.
    expect(refusal(ivf(header(), frame([0x12, 0x00, 0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])))).toMatch(/size field is longer than 8 bytes/)
    expect(refusal(ivf(header(), frame([0x12, 0x00, 0x0a, 0xff, 0x7f, 0x00])))).toMatch(/runs past the end of its frame/)
    expect(refusal(ivf(header(), frame([0x32, 0x00])))).toMatch(/must open with a temporal delimiter/)
    expect(refusal(ivf(header(), frame([0x12, 0x00, 0x32, 0x00])))).toMatch(/a frame before any sequence header/)
    expect(refusal(ivf(header(), frame([0x12, 0x00, 0x0a, 0x01, 0x00])))).toMatch(/the sequence header ends early/)
  })
})
