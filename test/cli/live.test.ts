import { describe, expect, it } from 'vitest'
import type { JobStatus } from '../../src/daemon/index.js'
import { etaSeconds, fit, formatDuration, liveCapable, LiveScreen, renderJob } from '../../cli/live.js'

const job = (over: Partial<JobStatus> = {}): JobStatus => ({
  id: 'ab'.repeat(32), file: '/media/a.mkv', settings: '--crf 20', encoder: 'x264', state: 'encoding', output: null, local: true,
  originator: '12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', createdAt: '', updatedAt: '',
  totalFrames: 1000, framesDone: 400, fps: 20,
  chunks: { total: 4, open: 1, leased: 2, done: 1 }, encodedBy: {},
  chunkList: [
    { index: 0, state: 'done', frames: 250, encodedBy: '12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB' },
    { index: 1, state: 'leased', frames: 250, holder: '12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', framesDone: 100, fps: 12.5 },
    { index: 2, state: 'leased', frames: 250, holder: '12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB', framesDone: 50, fps: 7.5 },
    { index: 3, state: 'open', frames: 250 }
  ],
  ...over
})

describe('live progress rendering', () => {
  it('computes the ETA from frames left and the aggregate fps, and formats durations', () => {
    expect(etaSeconds(job())).toBe(30)
    expect(etaSeconds(job({ fps: 0 }))).toBeUndefined()
    expect(etaSeconds(job({ framesDone: 1000, fps: 0 }))).toBe(0)
    expect(formatDuration(30)).toBe('0:30')
    expect(formatDuration(3725)).toBe('1:02:05')
    expect(formatDuration(undefined)).toBe('--:--')
  })

  it('draws a job: bar, frames, fps, ETA, and one row per peer with its chunks and speed', () => {
    const lines = renderJob(job(), { color: false, self: '12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })
    expect(lines[0]).toMatch(/^job abababababab encoding {2}█{10}░{14} {2}40% {2}400\/1000 frames {2}20\.0 fps {2}ETA 0:30$/)
    expect(lines[1]).toContain('1 done, 2 encoding, 1 open of 4')
    expect(lines[2]).toMatch(/^ {2}AAAAAAAA \(this node\)\s+12\.5 fps {2}#1 100\/250$/)
    expect(lines[3]).toMatch(/^ {2}BBBBBBBB\s+7\.5 fps {2}#2 50\/250$/)
    expect(lines).toHaveLength(4)
    const failed = renderJob(job({ state: 'failed', error: 'chunk 2 failed on 3 peers', chunkList: [] }), { color: false })
    expect(failed[0]).toContain('chunk 2 failed on 3 peers')
  })

  it('cuts lines to the terminal width without breaking colour codes', () => {
    expect(fit('abcdef', 3)).toBe('abc\x1b[0m')
    expect(fit('\x1b[32mabcdef\x1b[0m', 4)).toBe('\x1b[32mabcd\x1b[0m')
    expect(fit('█░█', 10)).toBe('█░█')
  })

  it('is live only on a terminal without NO_COLOR', () => {
    const tty = { isTTY: true } as NodeJS.WriteStream
    expect(liveCapable(tty, {})).toBe(true)
    expect(liveCapable(tty, { NO_COLOR: '1' })).toBe(false)
    expect(liveCapable({ isTTY: false } as unknown as NodeJS.WriteStream, {})).toBe(false)
  })

  it('redraws in place: moves up over the last block, and cuts a block taller than the screen', () => {
    const writes: string[] = []
    const stream = { columns: 30, rows: 6, write: (t: string) => { writes.push(t); return true } } as unknown as NodeJS.WriteStream
    const screen = new LiveScreen(stream)
    screen.draw(['one', 'two'])
    screen.draw(['x'.repeat(50), 'b', 'c', 'd', 'e', 'f', 'g', 'h'])
    screen.draw(['last'])
    expect(writes[0]).toBe('one\ntwo\n')
    const second = writes[1] as string
    expect(second.startsWith('\x1b[2A\r\x1b[J')).toBe(true)
    const lines = second.slice('\x1b[2A\r\x1b[J'.length).split('\n').slice(0, -1)
    expect(lines).toHaveLength(5)
    expect(lines[0]).toBe(`${'x'.repeat(29)}\x1b[0m`)
    expect(lines[4]).toMatch(/^… 4 more lines/)
    expect(writes[2]).toBe('\x1b[5A\r\x1b[Jlast\n')
  })
})
