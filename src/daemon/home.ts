import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { logger, type LogSink } from '../log/index.js'
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

/**
 * Creates the home 0700, or tightens an existing one to 0700: it holds the identity key, the
 * control token and every job's video, and a home made by hand (or by mkdir -p) was left 0755, so
 * other accounts could list and read the jobs. Refuses, saying why, a home it cannot tighten.
 */
export async function prepareHome (home: string, log?: LogSink): Promise<void> {
  await mkdir(home, { recursive: true, mode: 0o700 })
  const mode = (await stat(home)).mode & 0o777
  if ((mode & 0o077) === 0) return
  try {
    await chmod(home, 0o700)
  } catch (err) {
    throw new Error(`the home ${home} is open to other users (mode ${mode.toString(8).padStart(4, '0')}) and could not be made private: ${(err as Error).message}; run chmod 700 on it, or use another --home`)
  }
  logger('control', log).info(`tightened the home ${home} from mode ${mode.toString(8).padStart(4, '0')} to 0700: it holds the node's key, its control token and its jobs`)
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
