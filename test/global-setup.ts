import { execa } from 'execa'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { PROJECT_ROOT, SWARM_CLI } from '../scripts/local-swarm.js'
import { ensureFixtures } from './fixtures.js'
import { reliabilityRequested, TALLY_ENV, writeReliabilityDoc } from './helpers/tally.js'

function newestSource (dir: string): number {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestSource(p) : statSync(p).mtimeMs)
  }
  return newest
}

function countTestFiles (dir: string): number {
  let n = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) n += countTestFiles(join(dir, entry.name))
    else if (entry.name.endsWith('.test.ts')) n++
  }
  return n
}

// Runs once before any test file: fixtures are made here so parallel workers never race to build
// them, and the CLI the end-to-end tests spawn (and the benchmarks, whose --help a test runs) is
// rebuilt if a source file is newer than it.
export default async function setup (project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const sources = Math.max(...['src', 'cli', 'scripts', 'bench'].map(d => newestSource(join(PROJECT_ROOT, d))))
  if (!existsSync(SWARM_CLI) || statSync(SWARM_CLI).mtimeMs < sources) {
    await execa('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: PROJECT_ROOT, stdio: 'inherit' })
  }
  await ensureFixtures()
  // docs/reliability.md is tracked: only `npm run reliability` rewrites it, so a test run leaves the tree clean.
  return reliabilityRequested() ? await startTally(project) : undefined
}

/** Collects the tally rows of this run; the returned teardown writes docs/reliability.md from them. */
async function startTally (project: TestProject): Promise<() => Promise<void>> {
  const tally = join(tmpdir(), `swarm-tally-${process.pid}.jsonl`)
  await rm(tally, { force: true })
  process.env[TALLY_ENV] = tally
  return async () => {
    // Only a run of the whole suite rewrites the document; a filtered run would leave rows out.
    const whole = project.vitest.state.getFiles().length === countTestFiles(join(PROJECT_ROOT, 'test'))
    const failed = project.vitest.state.getCountOfFailedTests() > 0
    if (whole) {
      await writeReliabilityDoc(tally, join(PROJECT_ROOT, 'docs', 'reliability.md'), {
        command: 'npm run reliability',
        date: new Date().toISOString().slice(0, 10),
        passed: !failed
      })
    } else {
      process.stderr.write('docs/reliability.md not rewritten: this run left out some test files\n')
    }
    await rm(tally, { force: true })
  }
}
