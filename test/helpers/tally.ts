import { appendFileSync, existsSync, readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'

/**
 * The reliability tally: fault and hostile-input tests record what they did and what happened;
 * after a whole run started by `npm run reliability`, docs/reliability.md is written from these
 * rows (see test/global-setup.ts), so the document says what the last full run saw, not what
 * someone remembers. A plain test run records nothing and leaves the tracked file alone.
 */
export interface TallyRow {
  /** Section heading, e.g. "Faults" or "Hostile input: claims". */
  section: string
  /** The fault or input, e.g. "worker SIGKILL mid-encode". */
  fault: string
  /** What the swarm did, with measured figures (seconds, counts). */
  happened: string
  /** What was lost: "nothing", unless the test found otherwise (then it fails). */
  lost: string
}

/** Where the rows go during a run; set by the global setup only when the document is to be written. */
export const TALLY_ENV = 'SWARM_TALLY_FILE'

/** `npm run reliability` sets this to 1. */
export const WRITE_RELIABILITY_ENV = 'SWARM_WRITE_RELIABILITY'

/** Whether this run is to rewrite docs/reliability.md (if it runs every test file). */
export function reliabilityRequested (env: NodeJS.ProcessEnv = process.env): boolean {
  return env[WRITE_RELIABILITY_ENV] === '1'
}

export function recordTally (row: TallyRow): void {
  const file = process.env[TALLY_ENV]
  if (file === undefined || file === '') return
  appendFileSync(file, JSON.stringify({ ...row, file: expectFileName() }) + '\n')
}

function expectFileName (): string {
  // vitest sets this for the running test file.
  return (globalThis as { __vitest_worker__?: { filepath?: string } }).__vitest_worker__?.filepath?.replace(/^.*\/test\//, 'test/') ?? ''
}

/** Writes the tally as Markdown; called once after the whole run. Rows keep the order of sections first seen. */
export async function writeReliabilityDoc (tallyFile: string, docPath: string, meta: { command: string, date: string, passed: boolean }): Promise<boolean> {
  if (!existsSync(tallyFile)) return false
  const rows = readFileSync(tallyFile, 'utf8').split('\n').filter(l => l.trim() !== '').map(l => JSON.parse(l) as TallyRow & { file: string })
  if (rows.length === 0) return false
  // A fixed order for the known sections, whatever order the parallel test files finished in.
  const order = ['Faults', 'Hostile input: claims', 'Hostile input: results', 'Hostile input: pubsub', 'Hostile input: DHT', 'Hostile input: settings', 'Hostile input: control API', 'Load']
  const rank = (x: string): number => { const i = order.indexOf(x); return i < 0 ? order.length : i }
  const sections = [...new Set(rows.map(r => r.section))].sort((a, b) => rank(a) - rank(b))
  const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ')
  const lines = [
    '# Reliability tally',
    '',
    'Written by `npm run reliability` (`test/helpers/tally.ts`), not by hand: every row is a fault injected or a',
    'hostile input sent by an automated test against real `swarm join` processes or real libp2p nodes',
    'on 127.0.0.1, and what the test measured. A test fails if anything is lost, so a row that says',
    '"nothing" is an assertion that held.',
    '',
    `Run: \`${meta.command}\` on ${meta.date}${meta.passed ? '' : ' (**some tests failed in this run**)'}.`,
    ''
  ]
  for (const section of sections) {
    lines.push(`## ${section}`, '', '| Fault or input | What happened | Lost | Test |', '|---|---|---|---|')
    for (const r of rows.filter(x => x.section === section)) lines.push(`| ${cell(r.fault)} | ${cell(r.happened)} | ${cell(r.lost)} | \`${cell(r.file)}\` |`)
    lines.push('')
  }
  await writeFile(docPath, lines.join('\n'))
  return true
}
