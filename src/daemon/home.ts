import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import type { ControlFile } from './api.js'

/**
 * Where a node keeps its key, jobs and control file: `--home`, else $SWARM_HOME, else the per-user
 * data directory ($XDG_DATA_HOME/swarm, normally ~/.local/share/swarm).
 */
export function resolveHome (flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag !== undefined && flag !== '') return resolve(flag)
  if (env.SWARM_HOME !== undefined && env.SWARM_HOME !== '') return resolve(env.SWARM_HOME)
  const data = env.XDG_DATA_HOME !== undefined && env.XDG_DATA_HOME !== '' ? env.XDG_DATA_HOME : join(homedir(), '.local', 'share')
  return join(data, 'swarm')
}

export const CONTROL_FILE = 'control.json'
export const LOCK_FILE = 'node.lock'

/** Takes the home's lock, or says which process holds it. */
export async function lockHome (home: string): Promise<() => Promise<void>> {
  const file = join(home, LOCK_FILE)
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(file, String(process.pid), { flag: 'wx', mode: 0o600 })
      return async () => { await rm(file, { force: true }) }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim())
      let alive = false
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
        try { process.kill(pid, 0); alive = true } catch (e) { alive = (e as NodeJS.ErrnoException).code === 'EPERM' }
      }
      if (alive) throw new Error(`another swarm node (pid ${pid}) is running with home ${home}; stop it, or give this one its own --home`)
      await rm(file, { force: true })
    }
  }
  throw new Error(`could not lock ${file}`)
}

/**
 * Writes `<home>/control.json` (it holds the control token) so that no one else can read it or
 * have it written through a link they planted: a fresh file created exclusively with mode 0600,
 * renamed into place so a reader never sees half of it. Call with the home locked: a temporary
 * file left by an earlier run that died is then ours to remove.
 */
export async function writeControlFile (home: string, contents: ControlFile): Promise<string> {
  const file = join(home, CONTROL_FILE)
  const tmp = `${file}.tmp`
  await rm(tmp, { force: true })
  await writeFile(tmp, JSON.stringify(contents), { flag: 'wx', mode: 0o600 })
  await rename(tmp, file)
  return file
}
