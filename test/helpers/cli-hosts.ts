/**
 * `swarm` CLI processes on hosts in network namespaces (test/helpers/netns.ts), as a person would
 * run them on separate machines: each host has its own $HOME (so the default node home), PATH for
 * the tools, and SWARM_TEST_ENCODER (a stand-in encoder that makes chunks last long enough to watch).
 * UPnP is off (`--no-upnp`): no test brings a gateway of its own.
 */
import type { ResultPromise } from 'execa'
import type { StatusJson } from '../../src/daemon/index.js'
import { SWARM_CLI } from '../../scripts/local-swarm.js'
import { waitFor } from './wait.js'
import type { Host } from './netns.js'

export interface HostNode { host: Host, dir: string, proc: ResultPromise, stderr: () => string, stdout: () => string, peerId: string }

export interface HostCli {
  /** Runs `swarm ARGS` on the host to completion. */
  swarm: (host: Host, dir: string, args: string[]) => Promise<{ stdout: string, stderr: string, exitCode: number }>
  /** `swarm join [args]` in the host's namespace, started from `dir` (its $HOME); waits for its peer id. */
  join: (host: Host, dir: string, args: string[]) => Promise<HostNode>
  /** SIGINT, then waits for a clean exit. */
  stop: (n: HostNode) => Promise<void>
  status: (n: HostNode) => Promise<StatusJson>
  peersOf: (n: HostNode) => Promise<string[]>
  /** A long-running `swarm ARGS` (e.g. `add --wait`). */
  spawn: (host: Host, dir: string, args: string[]) => ResultPromise
}

export function hostCli (encoder: string): HostCli {
  const envFor = (dir: string): Record<string, string> => ({ HOME: dir, PATH: process.env.PATH ?? '/usr/bin:/bin', SWARM_TEST_ENCODER: encoder })
  const swarm: HostCli['swarm'] = async (host, dir, args) =>
    await host.run(process.execPath, [SWARM_CLI, ...args], { cwd: dir, env: envFor(dir), extendEnv: false, reject: false })
  const status: HostCli['status'] = async (n) => {
    const r = await swarm(n.host, n.dir, ['status', '--json'])
    if (r.exitCode !== 0) throw new Error(`swarm status on ${n.host.name}: ${r.stderr}`)
    return JSON.parse(r.stdout) as StatusJson
  }
  return {
    swarm,
    status,
    peersOf: async (n) => (await status(n)).peers.map(p => p.id),
    spawn: (host, dir, args) => host.spawn(process.execPath, [SWARM_CLI, ...args], { cwd: dir, env: envFor(dir), extendEnv: false, stdin: 'ignore', reject: false }),
    join: async (host, dir, args) => {
      const proc = host.spawn(process.execPath, [SWARM_CLI, 'join', '--no-upnp', ...args], { cwd: dir, env: envFor(dir), extendEnv: false, buffer: false, stdin: 'ignore', reject: false })
      let stderr = ''
      let stdout = ''
      proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
      proc.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
      const peerId = await waitFor(`swarm join on ${host.name} to start`, () => {
        if (proc.exitCode !== null) throw new Error(`swarm join on ${host.name} exited ${proc.exitCode}: ${stderr}`)
        return /^dashboard: /m.test(stdout) ? /^peer id: (\S+)/m.exec(stdout)?.[1] : undefined
      }, { timeoutMs: 30_000, everyMs: 50, retryErrors: true })
      return { host, dir, proc, stderr: () => stderr, stdout: () => stdout, peerId }
    },
    stop: async (n) => {
      if (n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGINT')
      await n.proc
    }
  }
}
