import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { lstat, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { API_VERSION } from '../../src/daemon/api.js'
import { CONTROL_FILE, LOCK_FILE, lockHome, prepareHome, writeControlFile } from '../../src/daemon/home.js'
import { looseKeyWarning } from '../../src/swarm/index.js'

let root: string
beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'swarm-home-')) })
afterAll(async () => { await rm(root, { recursive: true, force: true }) })

async function freshHome (name: string): Promise<string> {
  const home = join(root, name)
  await mkdir(home, { recursive: true })
  return home
}

describe('lockHome', () => {
  it('writes this process id to node.lock (mode 0600), and removes it on release', async () => {
    const home = await freshHome('lock')
    const unlock = await lockHome(home)
    const file = join(home, LOCK_FILE)
    expect((await readFile(file, 'utf8')).trim()).toBe(String(process.pid))
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    await unlock()
    expect(existsSync(file)).toBe(false)
  })

  it('refuses a home whose lock a running process holds, naming it', async () => {
    const home = await freshHome('held')
    const holder = spawn('sleep', ['30'], { stdio: 'ignore' })
    try {
      await writeFile(join(home, LOCK_FILE), String(holder.pid))
      await expect(lockHome(home)).rejects.toThrow(`another swarm node (pid ${holder.pid}) is running with home ${home}`)
      expect((await readFile(join(home, LOCK_FILE), 'utf8')).trim()).toBe(String(holder.pid))
    } finally {
      holder.kill()
    }
  })

  it('takes over a stale lock: a process that is gone, or a file that names none', async () => {
    const home = await freshHome('stale')
    const gone = spawn('true', [], { stdio: 'ignore' })
    await once(gone, 'exit')
    for (const stale of [String(gone.pid), 'not a pid', '']) {
      await writeFile(join(home, LOCK_FILE), stale)
      const unlock = await lockHome(home)
      expect((await readFile(join(home, LOCK_FILE), 'utf8')).trim()).toBe(String(process.pid))
      await unlock()
    }
  })
})

describe('writeControlFile', () => {
  const contents = { url: 'http://127.0.0.1:1234', token: 'f'.repeat(64), pid: process.pid, peerId: '12D3KooWtest', apiVersion: API_VERSION }

  it('writes control.json with mode 0600, replacing an older one whatever its mode', async () => {
    const home = await freshHome('control')
    await writeFile(join(home, CONTROL_FILE), '{"old":true}', { mode: 0o644 })
    const file = await writeControlFile(home, contents)
    expect(file).toBe(join(home, CONTROL_FILE))
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(contents)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(existsSync(`${file}.tmp`)).toBe(false)
  })

  it('never writes through a file or link left at its temporary name', async () => {
    const home = await freshHome('planted')
    const elsewhere = join(root, 'elsewhere.txt')
    await writeFile(elsewhere, 'untouched', { mode: 0o644 })
    await symlink(elsewhere, join(home, `${CONTROL_FILE}.tmp`))
    const file = await writeControlFile(home, contents)
    expect(await readFile(elsewhere, 'utf8')).toBe('untouched')
    expect((await lstat(file)).isFile()).toBe(true)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(contents)
  })
})

/** Issue 26, item 7: a home that already existed kept its 0755, and a world-readable swarm key was taken without a word. */
describe('a home and a swarm key open to other users', () => {
  it('an existing home of mode 0755 is tightened to 0700 and says so; a new one is made 0700', async () => {
    const open = join(root, 'open-home')
    await mkdir(open, { mode: 0o755 })
    const { chmod } = await import('node:fs/promises')
    await chmod(open, 0o755)
    const log: string[] = []
    await prepareHome(open, (line) => { log.push(line) })
    expect((await stat(open)).mode & 0o777).toBe(0o700)
    expect(log).toEqual([`control: tightened the home ${open} from mode 0755 to 0700: it holds the node's key, its control token and its jobs`])
    const fresh = join(root, 'new-home', 'nested')
    await prepareHome(fresh)
    expect((await stat(fresh)).mode & 0o777).toBe(0o700)
  })

  it('a swarm key readable by group or others gets a warning naming the fix; a 0600 one none', () => {
    expect(looseKeyWarning('swarm.key', 0o100644)).toBe('swarm key swarm.key is readable by other users (mode 0644): anyone who can read it can join your swarm; run chmod 600 swarm.key')
    expect(looseKeyWarning('swarm.key', 0o100640)).toMatch(/mode 0640/)
    expect(looseKeyWarning('swarm.key', 0o100600)).toBeUndefined()
    expect(looseKeyWarning('swarm.key', 0o100400)).toBeUndefined()
  })
})
