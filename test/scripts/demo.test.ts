/**
 * The demo writes its generated sample and its output into demo-output/ of the checkout; both
 * change from run to run, so that folder must be ignored and nothing in it tracked, or a demo run
 * leaves a fresh clone's `git status` dirty.
 */
import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { PROJECT_ROOT } from '../../scripts/local-swarm.js'

/** scripts/demo.ts's default --out, and the files it writes there. */
const DEMO_OUT = 'demo-output'
const DEMO_FILES = ['Demo Sample - 01.mkv', 'Demo Sample - 01 [x264].mkv']

describe.runIf(existsSync(join(PROJECT_ROOT, '.git')))('the demo in a git checkout', () => {
  it('writes only where git ignores, and nothing there is tracked', async () => {
    for (const file of DEMO_FILES) {
      const ignored = await execa('git', ['check-ignore', '--quiet', '--no-index', join(DEMO_OUT, file)], { cwd: PROJECT_ROOT, reject: false })
      expect(ignored.exitCode, `${DEMO_OUT}/${file} is not ignored`).toBe(0)
    }
    expect((await execa('git', ['ls-files', '--', DEMO_OUT], { cwd: PROJECT_ROOT })).stdout).toBe('')
  })

  it('the demo still defaults to that folder', async () => {
    const { readFile } = await import('node:fs/promises')
    expect(await readFile(join(PROJECT_ROOT, 'scripts', 'demo.ts'), 'utf8')).toMatch(new RegExp(`out: \\{ type: 'string', default: '${DEMO_OUT}' \\}`))
  })
})
