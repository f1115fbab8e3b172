/**
 * The README's install step makes `swarm` a command in any new shell, not only in the one that ran
 * setup: `bash scripts/link.sh` links bin/swarm, which brings the Node.js 22 setup used, into a
 * directory a login shell has on PATH. Tested as a person would meet it: a fresh login shell with
 * an empty environment, whose PATH is the system's (with the system's older node, if it has one).
 */
import { execa } from 'execa'
import { existsSync, readFileSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readlink, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PROJECT_ROOT } from '../../scripts/local-swarm.js'

const VERSION = (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version
/** Debian's default ~/.profile puts ~/.local/bin on PATH when it exists; the same lines where there is none. */
const SKEL_PROFILE = '/etc/skel/.profile'
const PROFILE_FALLBACK = 'if [ -d "$HOME/.local/bin" ] ; then PATH="$HOME/.local/bin:$PATH"; fi\n'

let home: string
let binDir: string

/** A new login shell for a user whose home is `home`: nothing inherited from this process. */
async function loginShell (script: string): Promise<{ exitCode: number, stdout: string, stderr: string }> {
  const r = await execa('bash', ['-lc', script], { cwd: home, env: { HOME: home, TERM: 'dumb' }, extendEnv: false, reject: false })
  return { exitCode: r.exitCode ?? 1, stdout: r.stdout, stderr: r.stderr }
}

/** The install step, run with the system PATH only: link.sh needs no Node.js of its own. */
async function link (): Promise<{ exitCode: number, stderr: string }> {
  const r = await execa('bash', [join(PROJECT_ROOT, 'scripts', 'link.sh'), binDir], { env: { HOME: home, PATH: '/usr/bin:/bin' }, extendEnv: false, reject: false })
  return { exitCode: r.exitCode ?? 1, stderr: r.stderr }
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'swarm-install-'))
  if (existsSync(SKEL_PROFILE)) await copyFile(SKEL_PROFILE, join(home, '.profile'))
  else await writeFile(join(home, '.profile'), PROFILE_FALLBACK)
  // ~/.local/bin, not the root default /usr/local/bin: a test must not touch the machine's commands.
  binDir = join(home, '.local', 'bin')
})
afterAll(async () => { await rm(home, { recursive: true, force: true }) })

describe('installing the swarm command', () => {
  it('after scripts/link.sh, a fresh login shell runs swarm --version with Node.js 22 whatever node its PATH has', async () => {
    const linked = await link()
    expect(linked.stderr).toContain(`${join(binDir, 'swarm')} -> ${join(PROJECT_ROOT, 'bin', 'swarm')}`)
    expect(linked.exitCode).toBe(0)
    expect(await readlink(join(binDir, 'swarm'))).toBe(join(PROJECT_ROOT, 'bin', 'swarm'))

    const shell = await loginShell('command -v swarm; swarm --version; echo "exit $?"; node --version 2>/dev/null || echo "no node"')
    const [found, version, exit, pathNode] = shell.stdout.split('\n')
    expect(shell.stderr).toBe('')
    expect(found).toBe(join(binDir, 'swarm'))
    expect(version).toBe(VERSION)
    expect(exit).toBe('exit 0')
    // What the issue was about: the shell's own node is the system's, older than 22, and swarm
    // still runs. (On a machine whose system node is 22 this only shows that it runs.)
    expect(pathNode).toMatch(/^(v\d+\.|no node)/)
  })

  it('a command that talks to a node gets as far as the node: no node runs for that home', async () => {
    const r = await loginShell(`swarm status --home "$HOME/no-node"; echo "exit $?"`)
    expect(r.stdout.trim()).toBe('exit 1')
    expect(r.stderr).toMatch(/^swarm: no swarm node is running for home .*no-node/)
    expect(r.stderr).not.toMatch(/needs Node\.js 22/)
  })

  it('linking again changes nothing, and a file that is not a link is never overwritten', async () => {
    expect((await link()).exitCode).toBe(0)
    expect(await readlink(join(binDir, 'swarm'))).toBe(join(PROJECT_ROOT, 'bin', 'swarm'))
    const otherDir = join(home, 'other-bin')
    await mkdir(otherDir)
    await writeFile(join(otherDir, 'swarm'), '#!/bin/sh\necho someone else\n')
    const r = await execa('bash', [join(PROJECT_ROOT, 'scripts', 'link.sh'), otherDir], { env: { HOME: home, PATH: '/usr/bin:/bin' }, extendEnv: false, reject: false })
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(/exists and is not a link/)
  })
})
