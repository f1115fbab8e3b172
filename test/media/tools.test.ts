import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runTool, runToolBytes } from '../../src/media/tools.js'
import { ToolError } from '../../src/media/index.js'

let scratch: string
beforeAll(async () => { scratch = await mkdtemp(join(tmpdir(), 'swarm-tools-')) })
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

describe('the tool runner', () => {
  it('returns a tool\'s bytes as it wrote them: a final 0x0A (a picture\'s last pixel of value 10) is kept', async () => {
    // The picture check used to read ffmpeg's raw pictures through execa's default, which drops a
    // final newline byte: a result whose last sampled pixel was 10 came out a byte short.
    const file = join(scratch, 'pixels.bin')
    const pixels = Buffer.from([16, 235, 128, 10])
    await writeFile(file, pixels)
    const { stdout } = await runToolBytes('cat', [file], 'reading pixels')
    expect(stdout).toEqual(pixels)
    const text = join(scratch, 'lines.txt')
    await writeFile(text, 'a line\n')
    expect((await runTool('cat', [text], 'reading a line')).stdout).toBe('a line\n')
  })

  it('names a missing tool and how to install it', async () => {
    const err = await runToolBytes('x264-not-installed', [], 'encoding').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ToolError)
    expect((err as ToolError).missing).toBe(true)
  })
})
