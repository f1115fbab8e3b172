import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { limitedCommand, runTool, runToolBytes, spawnTool, startPipeSource, withoutRealtime } from '../../src/media/tools.js'
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

/** Each thread's scheduling policy number (0 normal, 1 FIFO, 2 RR, 5 idle), read from /proc. */
async function threadPolicies (pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [])
  const policies = await Promise.all(tasks.map(async t => await readFile(`/proc/${pid}/task/${t}/sched`, 'utf8').then(s => Number(/^policy\s*:\s*(\d+)/m.exec(s)?.[1]), () => Number.NaN)))
  return policies.filter(p => !Number.isNaN(p))
}

describe('the priority of encodes', () => {
  it('runs an encoder in the idle class under its memory limit, with chrt and prlimit exec\'ing in turn', () => {
    expect(limitedCommand('x264', ['-o', 'x'], 1000, true)).toEqual({ file: 'chrt', args: ['--idle', '0', 'prlimit', '--data=1000', '--', 'x264', '-o', 'x'] })
    expect(limitedCommand('x264', ['-o', 'x'])).toEqual({ file: 'x264', args: ['-o', 'x'] })
    expect(withoutRealtime('x264', ['a'])).toEqual(['x264', 'a'])
  })

  it('keeps SVT-AV1, which as root asks for SCHED_FIFO 99 on every thread, in the class it was started in', async () => {
    // 200 frames from lavfi, so SVT-AV1 starts its threads and is still encoding when they are read.
    const frames = startPipeSource('ffmpeg', ['-v', 'error', '-nostdin', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=25,trim=end_frame=200', '-f', 'yuv4mpegpipe', '-'], 'making frames')
    frames.done.catch(() => {})
    const encoder = spawnTool('SvtAv1EncApp', ['-i', 'stdin', '--preset', '10', '--lp', '1', '-b', join(scratch, 'out.ivf')], { stdin: frames.stdout, idle: true, stderr: 'ignore', stdout: 'ignore' })
    frames.release()
    const pid = encoder.pid as number
    let exited = false
    const ended = encoder.finally(() => { exited = true })
    let policies: number[] = []
    // Until SVT-AV1 has started its threads (tens of them), read while it encodes.
    while (!exited && policies.length < 4) {
      policies = await threadPolicies(pid)
      await new Promise(resolve => setTimeout(resolve, 5))
    }
    await ended
    expect(policies.length).toBeGreaterThanOrEqual(4)
    expect(new Set(policies)).toEqual(new Set([5]))
  })
})
