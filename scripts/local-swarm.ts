/**
 * Runs `swarm` CLI processes on this machine: what the demo, the end-to-end tests and the
 * benchmark use to start a local swarm on 127.0.0.1 with mDNS and UPnP off.
 */
import { execa, type ResultPromise } from 'execa'
import { readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { NodeEvent } from '../src/swarm/events.js'

const here = dirname(fileURLToPath(import.meta.url))
/** The project root, whether this runs from scripts/ (tests) or dist/scripts/ (demo). */
export const PROJECT_ROOT = /[/\\]dist[/\\]scripts$/.test(here) ? resolve(here, '..', '..') : resolve(here, '..')
export const SWARM_CLI = join(PROJECT_ROOT, 'dist', 'cli', 'swarm.js')

export interface LocalNode {
  home: string
  proc: ResultPromise<{ buffer: false, stdin: 'ignore', reject: false }>
  peerId: string
  addresses: string[]
  controlUrl: string
  /** The web dashboard's URL with its token, from the `dashboard:` line. */
  dashboardUrl: string
  /** Everything the node wrote to stderr so far. */
  stderr: () => string
  /** SIGINT (clean stop) and wait; resolves with the exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | undefined>
}

export interface StartNodeOptions {
  bootstrap?: string[]
  slots?: number
  extraArgs?: string[]
  env?: Record<string, string>
  onStderr?: (text: string) => void
  /** How long to wait for the node to print its addresses. */
  timeoutMs?: number
  /** A command put in front of the node, e.g. ['taskset', '-c', '1'] to pin it to a core; none by default. */
  wrapper?: string[]
  /** `--events FILE`: the node appends its events there (read them with readEventLog). */
  events?: string
}

/** Starts `swarm join` on 127.0.0.1 with mDNS off and waits until it prints its peer id, addresses and control URL. */
export async function startLocalNode (home: string, o: StartNodeOptions = {}): Promise<LocalNode> {
  // --no-upnp: the demo, tests and benchmarks run in the machine's own network and must never ask
  // its real router for a port mapping.
  const args = ['join', '--home', home, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--no-upnp', '--slots', String(o.slots ?? 1), ...(o.extraArgs ?? [])]
  for (const b of o.bootstrap ?? []) args.push('--bootstrap', b)
  if (o.events !== undefined) args.push('--events', o.events)
  const [file, ...pre] = o.wrapper !== undefined && o.wrapper.length > 0 ? [...o.wrapper, process.execPath] : [process.execPath]
  const proc = execa(file as string, [...pre, SWARM_CLI, ...args], { buffer: false, stdin: 'ignore', reject: false, env: { ...o.env } })
  let stderr = ''
  proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); o.onStderr?.(d.toString()) })
  const addresses: string[] = []
  let peerId = ''
  let controlUrl = ''
  let dashboardUrl = ''
  await new Promise<void>((resolvePromise, reject) => {
    let text = ''
    const timer = setTimeout(() => { reject(new Error(`swarm join did not start within ${o.timeoutMs ?? 30_000} ms: ${stderr}`)) }, o.timeoutMs ?? 30_000)
    const onData = (data: Buffer): void => {
      text += data.toString()
      // Complete lines only: a line cut between two reads would give a truncated URL.
      for (const line of text.split('\n').slice(0, -1)) {
        const m = /^listening: (\S+)/.exec(line)
        if (m !== null && !addresses.includes(m[1] as string)) addresses.push(m[1] as string)
        const p = /^peer id: (\S+)/.exec(line)
        if (p !== null) peerId = p[1] as string
        const c = /^control: (\S+)/.exec(line)
        if (c !== null) controlUrl = c[1] as string
        const d = /^dashboard: (\S+)/.exec(line)
        if (d !== null) dashboardUrl = d[1] as string
      }
      if (addresses.length > 0 && peerId !== '' && controlUrl !== '' && dashboardUrl !== '') { clearTimeout(timer); proc.stdout?.off('data', onData); resolvePromise() }
    }
    proc.stdout?.on('data', onData)
    void proc.then((r) => { clearTimeout(timer); reject(new Error(`swarm join exited early (${r.exitCode ?? r.signal}): ${stderr}`)) })
  })
  return {
    home,
    proc,
    peerId,
    addresses,
    controlUrl,
    dashboardUrl,
    stderr: () => stderr,
    stop: async (signal: NodeJS.Signals = 'SIGINT') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      return (await proc).exitCode
    }
  }
}

/** Runs one `swarm` command to completion; never throws on a non-zero exit. */
export async function runSwarm (args: string[], env: Record<string, string> = {}): Promise<{ exitCode: number, stdout: string, stderr: string }> {
  const r = await execa(process.execPath, [SWARM_CLI, ...args], { reject: false, env, stdin: 'ignore' })
  return { exitCode: r.exitCode ?? 1, stdout: r.stdout, stderr: r.stderr }
}

/** The events a node wrote with `--events FILE`, in order; a line that is not JSON throws (the node writes whole lines). */
export async function readEventLog (file: string): Promise<NodeEvent[]> {
  const text = await readFile(file, 'utf8')
  return text.split('\n').filter(line => line !== '').map((line, i) => {
    try { return JSON.parse(line) as NodeEvent } catch (err) { throw new Error(`${file} line ${i + 1} is not JSON: ${(err as Error).message}`) }
  })
}
