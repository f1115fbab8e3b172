import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AbortError, cutSegment, EncodeCutoff, encodeChunk, extractVideo, LOW_PRIORITY_NICENESS, parseX264Settings, planChunks, probeMedia, SettingsError, ToolError, VerificationError, verifyEncodedChunk, type EncoderSettings, type EncodeProgress, type MediaInfo, type Segment } from '../../src/media/index.js'
import { ensureFixtures } from '../fixtures.js'

let scratch: string
let source: MediaInfo
let segment: Segment

beforeAll(async () => {
  const fx = await ensureFixtures()
  scratch = await mkdtemp(join(tmpdir(), 'swarm-encode-'))
  source = await probeMedia(fx.openGop10bit)
  const cut = await extractVideo(source, join(scratch, 'v.mkv'))
  // One chunk over the whole file: long enough to abort mid-way.
  const plan = planChunks(source, { gopsPerChunk: 100 })
  segment = await cutSegment(source, cut, plan.chunks[0]!, join(scratch, 'seg.mkv'))
})
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

function base (out: string, settings: string) {
  return {
    segmentPath: segment.path, selectFromTime: segment.selectFromTime, frameCount: segment.frameCount,
    settings: parseX264Settings(settings), frameRate: source.video.frameRate, sourcePixFmt: source.video.pixFmt, outputPath: out, threads: 1
  }
}

async function childrenOf (pid: number): Promise<string[]> {
  const { stdout } = await execa('ps', ['-o', 'comm=', '--ppid', String(pid)], { reject: false })
  return stdout.split('\n').map(s => s.trim()).filter(s => s === 'ffmpeg' || s === 'x264')
}

describe('encodeChunk', () => {
  it('encodes exactly the chunk, reports progress, and keeps 10-bit when asked', async () => {
    const progress: EncodeProgress[] = []
    const out = join(scratch, 'ten.264')
    const result = await encodeChunk({ ...base(out, '--preset superfast --crf 30 --profile high10 --output-depth 10'), onProgress: p => progress.push(p) })
    expect(result.frameCount).toBe(240)
    const verified = await verifyEncodedChunk(out, { frameCount: 240, width: 320, height: 180 })
    expect(verified).toMatchObject({ codec: 'h264', profile: 'High 10', pixFmt: 'yuv420p10le' })
    expect(progress.at(-1)?.framesDone).toBe(240)
    expect(progress.every((p, i) => i === 0 || p.framesDone >= progress[i - 1]!.framesDone)).toBe(true)
  })

  it('ends an encode early at a frame not yet handed to the encoder, exactly there, and both processes go', async () => {
    const out = join(scratch, 'cut-short.264')
    const cutoff = new EncodeCutoff()
    let asked: { piped: number, frames: number, answers: boolean[], frames2?: number } | undefined
    const result = await encodeChunk({
      ...base(out, '--preset superfast --crf 30'), cutoff,
      // At the first progress report: a few frames past what the encoder has been handed.
      onProgress: () => {
        const at = cutoff.progress()
        if (asked !== undefined || at === undefined) return
        const end = at.framesPiped + 5
        asked = {
          piped: at.framesPiped,
          frames: at.frames,
          answers: [
            // Never before what the encoder already has, never the whole chunk or more.
            at.framesPiped >= 2 && cutoff.endAt(at.framesPiped - 1),
            cutoff.endAt(240),
            cutoff.endAt(end),
            // A second cut only shortens: the same end again, or a later one, is refused.
            cutoff.endAt(end),
            cutoff.endAt(end + 1)
          ]
        }
        asked.frames2 = cutoff.progress()?.frames
      }
    })
    expect(asked).toBeDefined()
    const { piped, frames, answers, frames2 } = asked!
    expect(frames).toBe(240)
    expect(answers).toEqual([false, false, true, false, false])
    expect(frames2).toBe(piped + 5)
    expect(piped + 5).toBeLessThan(240)
    expect(result.frameCount).toBe(piped + 5)
    // The bitstream holds exactly those frames, the first ones of the chunk.
    await verifyEncodedChunk(out, { frameCount: piped + 5, width: 320, height: 180 })
    expect(cutoff.progress()).toBeUndefined()
    expect(cutoff.endAt(3)).toBe(false)
    expect(await childrenOf(process.pid)).toEqual([])
  })

  it('encodes every frame through the gate when nobody ends it early', async () => {
    const out = join(scratch, 'gated-whole.264')
    const result = await encodeChunk({ ...base(out, '--preset ultrafast --crf 30'), cutoff: new EncodeCutoff() })
    expect(result.frameCount).toBe(240)
    await verifyEncodedChunk(out, { frameCount: 240, width: 320, height: 180 })
  })

  it('re-checks untrusted settings itself', async () => {
    // Only settings their encoder parsed reach its command line: hostile ones never parse, and the
    // raw string, or a look-alike of parsed settings, is refused before anything runs.
    const hostile = '--preset fast --dump-yuv /tmp/stolen.yuv'
    expect(() => parseX264Settings(hostile)).toThrow(SettingsError)
    const lookalike = { encoder: 'x264', raw: hostile, args: ['--preset', 'fast', '--dump-yuv', '/tmp/stolen.yuv'], outputDepth: 8 }
    await expect(encodeChunk({ ...base(join(scratch, 'x.264'), '--preset fast'), settings: lookalike as EncoderSettings })).rejects.toThrow(SettingsError)
    await expect(encodeChunk({ ...base(join(scratch, 'x.264'), '--preset fast'), settings: hostile as unknown as EncoderSettings })).rejects.toThrow(SettingsError)
    expect(existsSync('/tmp/stolen.yuv')).toBe(false)
  })

  it('reports x264 failures with x264s own words and leaves no file', async () => {
    const out = join(scratch, 'bad.264')
    // Allowed by the allowlist, refused by x264 itself: lossless is not possible in the High profile.
    const err = await encodeChunk(base(out, '--profile high --qp 0')).catch(e => e)
    expect(err).toBeInstanceOf(ToolError)
    expect(String(err.message)).toMatch(/x264 failed/)
    expect(existsSync(out)).toBe(false)
  })

  it('reports a segment ffmpeg cannot decode with ffmpeg\'s own words, and x264 does not wait for it forever', async () => {
    const junk = join(scratch, 'junk-segment.mkv')
    await writeFile(junk, Buffer.alloc(4096, 7))
    const out = join(scratch, 'from-junk.264')
    const err = await encodeChunk({ ...base(out, '--preset ultrafast'), segmentPath: junk }).catch(e => e)
    expect(err).toBeInstanceOf(Error)
    // Either side may notice first (x264 sees an empty y4m stream); both name what failed.
    expect(String(err.message)).toMatch(/(ffmpeg|x264) failed/)
    expect(String(err.message)).toContain('junk-segment.mkv')
    expect(existsSync(out)).toBe(false)
    expect(await childrenOf(process.pid)).toEqual([])
  })

  it('stops both processes at once on abort and leaves no file behind', async () => {
    const out = join(scratch, 'aborted.264')
    const controller = new AbortController()
    const started = encodeChunk({ ...base(out, '--preset veryslow --crf 18'), signal: controller.signal, onProgress: () => controller.abort() })
    await expect(started).rejects.toThrow(AbortError)
    expect(existsSync(out)).toBe(false)
    expect(await childrenOf(process.pid)).toEqual([])
  })

  // From x264's first progress report to the end: the scheduling class and nice value of every
  // thread of this process's ffmpeg and x264 children (chrt and setpriority put them there).
  it.each([
    ['idle', 'IDL -'],
    ['low', `TS ${LOW_PRIORITY_NICENESS}`],
    ['normal', 'TS 0']
  ] as const)('runs the decoder and x264 at priority %s as %s, every thread of them', async (priority, expected) => {
    const out = join(scratch, `priority-${priority}.264`)
    const seen = new Set<string>()
    let encoding = true
    let sampler: Promise<void> | undefined
    const sample = async (): Promise<void> => {
      while (encoding) {
        const { stdout } = await execa('ps', ['-L', '-o', 'comm=,cls=,ni=', '--ppid', String(process.pid)], { reject: false })
        for (const [c, cls, ni] of stdout.split('\n').map(l => l.trim().split(/\s+/))) if (c === 'ffmpeg' || c === 'x264') seen.add(`${c} ${cls ?? ''} ${ni ?? ''}`)
      }
    }
    try {
      await encodeChunk({ ...base(out, '--preset veryslow --crf 18'), threads: 2, priority, onProgress: (p) => { if (p.framesDone < p.frameCount) sampler ??= sample() } })
    } finally {
      encoding = false
      await sampler
    }
    expect(seen).toEqual(new Set([`ffmpeg ${expected}`, `x264 ${expected}`]))
  })
})

describe('verifyEncodedChunk', () => {
  it('refuses bytes that are not H.264', async () => {
    const junk = join(scratch, 'junk.264')
    await writeFile(junk, Buffer.from(Array.from({ length: 50_000 }, (_, i) => (i * 7919) % 251)))
    await expect(verifyEncodedChunk(junk, { frameCount: 10 })).rejects.toThrow(VerificationError)
  })
  it('refuses a chunk with the wrong frame count', async () => {
    const out = join(scratch, 'count.264')
    await encodeChunk(base(out, '--preset ultrafast'))
    await expect(verifyEncodedChunk(out, { frameCount: 239 })).rejects.toThrow(/holds 240 frames, expected 239/)
  })
  it('refuses a truncated chunk', async () => {
    const out = join(scratch, 'count.264')
    const { readFile } = await import('node:fs/promises')
    const bytes = await readFile(out)
    const cut = join(scratch, 'truncated.264')
    await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length / 2)))
    await expect(verifyEncodedChunk(cut, { frameCount: 240 })).rejects.toThrow(VerificationError)
  })
  it('decodes every slice of a peer\'s chunk: damage inside a frame is caught, also without deblocking', async () => {
    const out = join(scratch, 'count.264')
    const { readFile } = await import('node:fs/promises')
    const bytes = Buffer.from(await readFile(out))
    // Flip bits well inside the stream, away from any start code (0x000001), keeping the length.
    for (let i = Math.floor(bytes.length * 0.6), n = 0; n < 64; i++) {
      if (bytes[i] !== 0 && bytes[i] !== 1 && bytes[i - 1] !== 0 && bytes[i + 1] !== 0) { bytes[i] = (bytes[i] as number) ^ 0x5a; n++ }
    }
    const damaged = join(scratch, 'damaged.264')
    await writeFile(damaged, bytes)
    await expect(verifyEncodedChunk(damaged, { frameCount: 240 })).rejects.toThrow(/decoding reported errors/)
  })
  it('only parses this node\'s own chunk when asked, and still checks its frame count and keyframe', async () => {
    const out = join(scratch, 'count.264')
    const parsed = await verifyEncodedChunk(out, { frameCount: 240, width: 320, height: 180, decode: false })
    expect(parsed).toMatchObject({ frameCount: 240, codec: 'h264', width: 320, height: 180 })
    await expect(verifyEncodedChunk(out, { frameCount: 239, decode: false })).rejects.toThrow(/holds 240 frames, expected 239/)
  })
})
