import { execa } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  cutSegment, defaultMemoryBudget, encodeChunk, encoderFor, estimateEncodeMemory, extractVideo, formatMemorySize, honest4kPlaceboBytes, MemoryBudgetError,
  parseMemorySize, parseX264Settings, planChunks, probeMedia, type MediaInfo, type Segment
} from '../../src/media/index.js'
import { ensureFixtures } from '../fixtures.js'

const MIB = 1024 * 1024
const GIB = 1024 * MIB
/** x264 settings a hostile originator picks for memory: every picture buffer at its largest the allowlist takes. */
const BOMB = '--preset ultrafast --ref 16 --bframes 16 --rc-lookahead 60'

let scratch: string
let honestSource: MediaInfo
let honestSegment: Segment
/** 100 frames of 1080p in a few KB: a flat picture, as a hostile originator would serve. */
let bomb1080: string

beforeAll(async () => {
  const fx = await ensureFixtures()
  scratch = await mkdtemp(join(tmpdir(), 'swarm-memory-'))
  honestSource = await probeMedia(fx.openGop10bit)
  const cut = await extractVideo(honestSource, join(scratch, 'v.mkv'))
  honestSegment = await cutSegment(honestSource, cut, planChunks(honestSource, { gopsPerChunk: 100 }).chunks[0]!, join(scratch, 'seg.mkv'))
  bomb1080 = join(scratch, 'bomb-1080.mkv')
  await execa('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'color=c=gray:size=1920x1080:rate=25', '-frames:v', '100', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-f', 'matroska', bomb1080])
})
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

describe('parseMemorySize', () => {
  it('takes bytes and binary K, M, G, T, and refuses nonsense and sizes too small for an encode', () => {
    expect(parseMemorySize('2G')).toBe(2 * GIB)
    expect(parseMemorySize('1500M')).toBe(1500 * MIB)
    expect(parseMemorySize('1.5GiB')).toBe(1.5 * GIB)
    expect(parseMemorySize(String(300 * MIB))).toBe(300 * MIB)
    expect(() => parseMemorySize('lots')).toThrow(/not a size/)
    expect(() => parseMemorySize('-2G')).toThrow(/not a size/)
    expect(() => parseMemorySize('64M')).toThrow(/too little memory.*at least 128 MiB/)
  })
})

describe('estimateEncodeMemory', () => {
  it('stays below what x264 was measured to take (docs/reliability.md), and grows with the pictures x264 must hold', () => {
    const est = (settings: string, w: number, h: number, threads: number): number => estimateEncodeMemory(parseX264Settings(settings), w, h, threads).bytes
    // Measured peaks of private memory (VmData) with the same settings, size and threads.
    expect(est(BOMB, 1920, 1080, 1)).toBeLessThan(407 * MIB)
    expect(est(BOMB, 1920, 1080, 3)).toBeLessThan(781 * MIB)
    expect(est('--preset slow', 1920, 1080, 3)).toBeLessThan(730 * MIB)
    expect(est('--preset placebo', 3840, 2160, 3)).toBeLessThan(5279 * MIB)
    // Explicit options win over their preset; 10-bit and 4:4:4 pictures are larger.
    expect(est('--preset placebo --ref 1 --bframes 0 --rc-lookahead 0', 1920, 1080, 1)).toBeLessThan(est('--preset placebo', 1920, 1080, 1) / 10)
    expect(est('--preset slow --output-depth 10', 1920, 1080, 1)).toBe(2 * est('--preset slow', 1920, 1080, 1))
    expect(est('--preset slow --output-csp i444', 1920, 1080, 1)).toBe(2 * est('--preset slow', 1920, 1080, 1))
    expect(estimateEncodeMemory(parseX264Settings(BOMB), 3840, 2160, 1).explain).toMatch(/96 pictures of 3840x2160 \(lookahead 60 \+ B-frames 16 \+ references 16 \+ threads 1 \+ 3\)/)
  })

  it('lets an honest 4K placebo encode through the default budget, and refuses 8K placebo and a 4K bomb on a 300 MiB one', () => {
    const placebo4k = estimateEncodeMemory(parseX264Settings('--preset placebo'), 3840, 2160, 3).bytes
    // The default is the measured need (5,279 MiB of data with 3 threads) with headroom.
    expect(defaultMemoryBudget(3)).toBe(honest4kPlaceboBytes(3))
    expect(defaultMemoryBudget(3)).toBeGreaterThan(5279 * MIB * 1.15)
    expect(placebo4k).toBeLessThan(defaultMemoryBudget(3))
    expect(estimateEncodeMemory(parseX264Settings('--preset placebo'), 8192, 4320, 3).bytes).toBeGreaterThan(defaultMemoryBudget(3))
    expect(estimateEncodeMemory(parseX264Settings(BOMB), 3840, 2160, 1).bytes).toBeGreaterThan(300 * MIB)
  })
})

describe('encodeChunk under a memory limit', () => {
  it('encodes an honest chunk under the default budget, through prlimit', async () => {
    const budget = defaultMemoryBudget(1)
    const out = join(scratch, 'honest.264')
    const result = await encodeChunk({
      segmentPath: honestSegment.path, selectFromTime: honestSegment.selectFromTime, frameCount: honestSegment.frameCount, settings: parseX264Settings('--preset slow --crf 24'),
      frameRate: honestSource.video.frameRate, sourcePixFmt: honestSource.video.pixFmt, outputPath: out, threads: 1, memoryLimitBytes: budget
    })
    expect(result.frameCount).toBe(honestSegment.frameCount)
    expect(formatMemorySize(budget)).toMatch(/GiB$/)
  })

  it('stops x264 alone when a chunk needs more than the limit, and says it ran out of the budget', async () => {
    const out = join(scratch, 'bomb.264')
    const err = await encodeChunk({
      segmentPath: bomb1080, selectFromTime: 0, frameCount: 100, settings: parseX264Settings(BOMB), frameRate: { num: 25, den: 1 }, sourcePixFmt: 'yuv420p',
      width: 1920, height: 1080, segmentFromPeer: true, outputPath: out, threads: 1, memoryLimitBytes: 200 * MIB
    }).catch(e => e)
    expect(err).toBeInstanceOf(MemoryBudgetError)
    expect((err as MemoryBudgetError).before).toBe(false)
    expect((err as Error).message).toMatch(/x264 ran out of this worker's memory budget of 200 MiB an encode/)
    // Without the limit the same chunk encodes: it is the limit that stopped it, not the chunk's bytes.
    const free = await encodeChunk({
      segmentPath: bomb1080, selectFromTime: 0, frameCount: 100, settings: parseX264Settings(BOMB), frameRate: { num: 25, den: 1 }, sourcePixFmt: 'yuv420p',
      width: 1920, height: 1080, segmentFromPeer: true, outputPath: out, threads: 1
    })
    expect(free.frameCount).toBe(100)
  })

  it('stops SVT-AV1, which waits for ever once an allocation fails, and says it ran out of the budget', async () => {
    // SvtAv1EncApp 1.4 under 100-150 MiB on 320x240 prints "SvtMalloc[fatal]" and never exits.
    const small = join(scratch, 'small-320.mkv')
    await execa('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=24', '-frames:v', '24', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-f', 'matroska', small])
    const chunk = {
      segmentPath: small, selectFromTime: 0, frameCount: 24, settings: encoderFor('svt-av1').parseSettings('--preset 8 --crf 35'), frameRate: { num: 24, den: 1 }, sourcePixFmt: 'yuv420p',
      width: 320, height: 240, outputPath: join(scratch, 'small.ivf'), threads: 1
    }
    const err = await encodeChunk({ ...chunk, memoryLimitBytes: 128 * MIB }).catch(e => e)
    expect(err).toBeInstanceOf(MemoryBudgetError)
    expect((err as Error).message).toMatch(/SvtAv1EncApp ran out of this worker's memory budget of 128 MiB an encode/)
    // Without the limit it encodes.
    expect((await encodeChunk(chunk)).frameCount).toBe(24)
  })
})
