import { execa } from 'execa'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { PROJECT_ROOT, SWARM_CLI } from '../scripts/local-swarm.js'
import { ensureFixtures } from './fixtures.js'

function newestSource (dir: string): number {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestSource(p) : statSync(p).mtimeMs)
  }
  return newest
}

// Runs once before any test file: fixtures are made here so parallel workers never race to build
// them, and the CLI the end-to-end tests spawn is rebuilt if a source file is newer than it.
export default async function setup (): Promise<void> {
  const sources = Math.max(...['src', 'cli', 'scripts'].map(d => newestSource(join(PROJECT_ROOT, d))))
  if (!existsSync(SWARM_CLI) || statSync(SWARM_CLI).mtimeMs < sources) {
    await execa('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: PROJECT_ROOT, stdio: 'inherit' })
  }
  await ensureFixtures()
}
