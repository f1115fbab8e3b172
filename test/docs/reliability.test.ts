import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { reliabilityRequested, WRITE_RELIABILITY_ENV, writeReliabilityDoc } from '../helpers/tally.js'

let root: string | undefined
afterAll(async () => { if (root !== undefined) await rm(root, { recursive: true, force: true }) })

describe('the reliability tally', () => {
  it('is written only when the run asks for it (npm run reliability), so a plain test run leaves docs/reliability.md alone', () => {
    expect(reliabilityRequested({})).toBe(false)
    expect(reliabilityRequested({ [WRITE_RELIABILITY_ENV]: '' })).toBe(false)
    expect(reliabilityRequested({ [WRITE_RELIABILITY_ENV]: '0' })).toBe(false)
    expect(reliabilityRequested({ [WRITE_RELIABILITY_ENV]: '1' })).toBe(true)
  })

  it('writes the rows as tables per section, known sections first, and names the command that ran', async () => {
    root = await mkdtemp(join(tmpdir(), 'swarm-tally-test-'))
    const rows = join(root, 'tally.jsonl')
    const doc = join(root, 'reliability.md')
    await writeFile(rows, [
      { section: 'Load', fault: 'many jobs', happened: 'all done', lost: 'nothing', file: 'test/load/load.test.ts' },
      { section: 'Faults', fault: 'worker | SIGKILL', happened: 'reassigned in 2 s', lost: 'nothing', file: 'test/faults/workers.test.ts' }
    ].map(r => JSON.stringify(r)).join('\n') + '\n')
    expect(await writeReliabilityDoc(rows, doc, { command: 'npm run reliability', date: '2026-01-02', passed: false })).toBe(true)
    const text = await readFile(doc, 'utf8')
    expect(text).toContain('Run: `npm run reliability` on 2026-01-02 (**some tests failed in this run**).')
    expect(text.indexOf('## Faults')).toBeLessThan(text.indexOf('## Load'))
    expect(text).toContain('| worker \\| SIGKILL | reassigned in 2 s | nothing | `test/faults/workers.test.ts` |')
  })

  it('writes nothing when no test recorded a row', async () => {
    expect(await writeReliabilityDoc(join(tmpdir(), 'swarm-no-such-tally.jsonl'), join(tmpdir(), 'swarm-never-written.md'), { command: 'x', date: 'd', passed: true })).toBe(false)
  })
})
