/**
 * The benchmarks' small helpers: medians and tables (bench/lib/table.ts), and a process's
 * children's CPU from /proc (bench/lib/proc.ts).
 */
import { execa } from 'execa'
import { describe, expect, it } from 'vitest'
import { childrenCpuSeconds } from '../../bench/lib/proc.js'
import { formatTable, markdownTable, median } from '../../bench/lib/table.js'

describe('median', () => {
  it('is the middle value, or the mean of the two middle ones, whatever the order', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 3, 2])).toBe(2.5)
    expect(median([7])).toBe(7)
    expect(median([])).toBeNaN()
  })
})

describe('tables', () => {
  const rows = [['case', 'speedup'], ['realistic-40s', '1.52'], ['stress | 40s', '1.4']]

  it('pads each column to its widest cell, without trailing blanks', () => {
    expect(formatTable(rows).split('\n')).toEqual(['case           speedup', 'realistic-40s  1.52', 'stress | 40s   1.4'])
  })

  it('writes Markdown with a header rule and escaped bars', () => {
    expect(markdownTable(rows).split('\n')).toEqual(['| case | speedup |', '|---|---|', '| realistic-40s | 1.52 |', '| stress \\| 40s | 1.4 |'])
  })
})

describe('children\'s CPU from /proc', () => {
  it('grows by what a finished child used', async () => {
    const before = await childrenCpuSeconds()
    await execa(process.execPath, ['-e', 'const end = process.cpuUsage().user + 200000; while (process.cpuUsage().user < end) {}'])
    expect(await childrenCpuSeconds() - before).toBeGreaterThanOrEqual(0.15)
  })
})
