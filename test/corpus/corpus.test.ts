import { beforeAll, describe, expect, it } from 'vitest'
import { CORPUS } from '../../scripts/corpus.js'
import { formatCorpusTable, runCorpus, type CorpusRow } from '../../scripts/corpus-run.js'

/**
 * Every file of the real-file corpus (scripts/corpus.ts; fetched on first use, then cached under
 * the OS temp dir) through a real two-node swarm on 127.0.0.1, each output judged against its source
 * (scripts/corpus-judge.ts). A file must end done and right, or be refused at `swarm add` with a
 * message; done-wrong and failed are bugs. About 5 minutes on 2 cores.
 */
const rows = new Map<string, CorpusRow>()

beforeAll(async () => {
  // Each file waits on its own `swarm add --wait` (180 s at most, then it is cancelled and counts as failed).
  const run = await runCorpus({ timeoutMs: 180_000, log: (line) => { if (line.startsWith('corpus:') || line.startsWith('  =>')) process.stderr.write(`${line}\n`) } })
  for (const r of run.rows) rows.set(r.name, r)
  process.stderr.write(`${formatCorpusTable(run.rows)}\n${run.rows.length} files in ${run.seconds.toFixed(0)} s\n`)
}, 30 * 60_000)

describe('real-file corpus through a two-node swarm', () => {
  it.each(CORPUS.map(e => e.name))('%s ends done-right, or refused with a message', (name) => {
    const row = rows.get(name)
    expect(row, `${name} was not run`).toBeDefined()
    const r = row as CorpusRow
    const why = `${name}: ${r.result}: ${r.reasons.join('; ')}`
    expect(['done-right', 'refused'], why).toContain(r.result)
    if (r.result === 'refused') expect(r.reasons.join('').trim(), why).not.toBe('')
  })
})
