/**
 * Which failed checks ban a peer. The errors come from the real checks (ffprobe, the in-process
 * parsers) run on bad bytes, with and without the tools on PATH; the verdict rests on what the
 * check says it found wrong (VerificationError.file), never on its message's wording.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { convicts, inspectSegment, ToolError, verifyEncodedChunk, VerificationError } from '../../src/media/index.js'

let scratch: string
let garbage: string
/** EBML magic, then nothing a Matroska reader can use: the in-process walk leaves it to ffprobe. */
let brokenMatroska: string
const savedPath = process.env.PATH

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'swarm-convicts-'))
  garbage = join(scratch, 'chunk-3-ab.264')
  await writeFile(garbage, Buffer.from('<?xml version="1.0"?><not-video/>'.repeat(40)))
  brokenMatroska = join(scratch, 'segment-3-Qm.mkv')
  await writeFile(brokenMatroska, Buffer.concat([Buffer.from([0x1a, 0x45, 0xdf, 0xa3]), Buffer.alloc(4096, 0xff)]))
})
afterEach(() => { process.env.PATH = savedPath })
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

async function failureOf (work: Promise<unknown>): Promise<unknown> {
  try { await work } catch (err) { return err }
  throw new Error('expected the check to fail')
}

describe('convicts: does a failed check of a peer\'s bytes prove the peer lied?', () => {
  it('yes, when the check ran and found that file wrong: not H.264 (parsed or decoded), not Matroska, not readable as Matroska', async () => {
    for (const decode of [false, true]) {
      const err = await failureOf(verifyEncodedChunk(garbage, { frameCount: 10, decode }))
      expect(err).toBeInstanceOf(VerificationError)
      expect(convicts(err, garbage)).toBe(true)
      // About that file only: the same error does not convict the sender of another.
      expect(convicts(err, brokenMatroska)).toBe(false)
    }
    const notMkv = await failureOf(inspectSegment(garbage))
    expect((notMkv as Error).message).toMatch(/not a Matroska file/)
    expect(convicts(notMkv, garbage)).toBe(true)
    const unreadable = await failureOf(inspectSegment(brokenMatroska))
    expect((unreadable as Error).message).toMatch(/not a readable Matroska file/)
    expect(convicts(unreadable, brokenMatroska)).toBe(true)
  })

  it('no, when the tool that would judge it is missing: the check never ran', async () => {
    process.env.PATH = join(scratch, 'no-tools-here')
    const decoded = await failureOf(verifyEncodedChunk(garbage, { frameCount: 10, decode: true }))
    expect(decoded).toBeInstanceOf(ToolError)
    expect((decoded as ToolError).missing).toBe(true)
    expect((decoded as Error).message).toMatch(/ffprobe was not found on PATH; install it with: apt-get install -y ffmpeg/)
    expect(convicts(decoded, garbage)).toBe(false)
    const inspected = await failureOf(inspectSegment(brokenMatroska))
    expect(convicts(inspected, brokenMatroska)).toBe(false)
  })

  it('no, when the error does not say it found that file wrong, whatever its message says', () => {
    const result = '/home/n/jobs/j/incoming/chunk-3-ab.264'
    expect(convicts(new VerificationError(`${result}: holds 92 frames, expected 100`), result)).toBe(false)
    expect(convicts(new VerificationError(`${result}: holds 92 frames, expected 100`, { file: result }), result)).toBe(true)
    expect(convicts(new ToolError('ffprobe', `${result}: ffprobe failed`), result)).toBe(false)
    expect(convicts(new Error(`${result}: aborted`), result)).toBe(false)
  })
})
