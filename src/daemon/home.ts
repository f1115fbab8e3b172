import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

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
