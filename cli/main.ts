import { readFile, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseX264Settings } from '../src/media/index.js'
// Only `join` and `key` load libp2p (about 0.4 s), and only when they run: see their handlers.
import {
  connectControl, ControlApiError, defaultSlots, NodeNotRunningError, resolveHome,
  type ControlClient, type JobStatus, type StatusJson
} from '../src/daemon/client.js'
import { parseCommandArgs, UsageError, type FlagSpec } from './args.js'
import { formatJob, formatPeers, formatProgressLine, formatStatus } from './format.js'
import { liveCapable, LiveScreen, renderJob, renderStatus } from './live.js'

const VERSION = '0.1.0'

const EXIT_OK = 0
const EXIT_FAILED = 1
const EXIT_USAGE = 2

const HOME_HELP = '  --home DIR          node home (default: $SWARM_HOME, else $XDG_DATA_HOME/swarm or ~/.local/share/swarm)'

const HELP: Record<string, string> = {
  main: `swarm ${VERSION}: encode video with x264 across a peer-to-peer swarm, no central server.

Usage:
  swarm join [options]                 run a node in the foreground
  swarm add FILE "SETTINGS" [options]  encode FILE with x264 SETTINGS across the swarm
  swarm status [JOB] [options]         peers, jobs, chunks and who encodes what (--watch: live)
  swarm peers [options]                connected peers: addresses, latency, what they encode for us
  swarm cancel JOB [options]           stop a job this node originated
  swarm key generate FILE              make a pre-shared key for a private swarm

Run \`swarm COMMAND --help\` for a command's options.
Exit codes: 0 success, 1 the work failed, 2 bad usage or input.`,
  join: `Usage: swarm join [--home DIR] [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--slots N] [--no-mdns] [--relay] [--announce MULTIADDR]...

Runs a node until SIGINT or SIGTERM, then stops cleanly (leases it holds are given back).
It encodes chunks of every job it hears of and originates the jobs added on it. It prints a
"dashboard:" line: open that URL (127.0.0.1 only, token included) in a browser on this machine.

${HOME_HELP}
  --listen MULTIADDR   where to listen (repeatable; default /ip4/0.0.0.0/tcp/4010)
  --bootstrap MULTIADDR  a peer to dial at start, e.g. /ip4/192.168.1.20/tcp/4010/p2p/12D3Koo... (repeatable)
  --slots N            concurrent encodes (default: one per core up to 4 cores, else 4; here ${defaultSlots()})
  --threads N          x264 --threads per encode (default: x264 decides with one slot, cores/slots with more)
  --no-mdns            do not look for peers on the LAN with multicast DNS
  --relay              serve as a circuit relay for the swarm (on a node others can dial): peers
                       behind NAT that cannot dial each other move chunks through this node
  --announce MULTIADDR also announce this address, e.g. /ip4/203.0.113.7/tcp/4010 when that public
                       address's port 4010 is forwarded to this node (repeatable)
  --lease-seconds N    how long a lease on a chunk of a job added here lasts without a heartbeat (default 30)
  --swarm-key FILE     private swarm: only nodes with this pre-shared key can connect
  --verbose            log the protocol story (claims, leases, transfers) to stderr`,
  add: `Usage: swarm add FILE "SETTINGS" [--home DIR] [--output PATH] [--wait] [--json]

Queues FILE on the local node, which becomes the job's originator. SETTINGS is one argument with
x264 options, e.g. "--preset slow --crf 18 --profile high"; no -- separator is needed. Options
that name files or change x264's input/output are refused. Adding the same file with the same
settings again reports the existing job.

${HOME_HELP}
  --output PATH        where to write the result (default: beside FILE, "NAME [x264].mkv")
  --chunk-gops N       keyframe intervals per chunk (default 7; more chunks are cut when the swarm is bigger)
  --chunk-seconds N    target chunk duration in seconds instead of --chunk-gops
  --wait               block until the output is merged and print its path; shows live progress
                       on a terminal (plain lines when stderr is not one or NO_COLOR is set)
  --json               print JSON instead of text`,
  status: `Usage: swarm status [JOB] [--home DIR] [--watch] [--json]

Without JOB: this node's peer id and addresses, its peers, every job it knows and its worker.
With JOB (an id or a unique prefix): that job's chunks and who holds each.

${HOME_HELP}
  --watch              refresh every second until Ctrl-C (with JOB: until the job is done or
                       failed): a live view per job (frames, fps, ETA, per peer) on a terminal,
                       plain lines when something changes when stdout is not one or NO_COLOR is set
  --json               print one JSON object (the shape is documented in docs/operations.md);
                       with --watch one object per line per refresh`,
  peers: `Usage: swarm peers [--home DIR] [--json]

The peers this node is connected to: peer id, addresses, ping latency, and which chunks of this
node's jobs each one encodes, at what speed.

${HOME_HELP}
  --json               print one JSON object {"peerId", "peers": [...]} (see docs/operations.md)`,
  key: `Usage: swarm key generate FILE

Writes a new random pre-shared key (mode 0600; an existing file is never overwritten). Copy it to
every machine of the swarm and start each node with --swarm-key FILE: nodes without the key cannot
connect to nodes with it.`,
  cancel: `Usage: swarm cancel JOB [--home DIR]

Stops a job this node originated: no more leases, its segments and results are removed.

${HOME_HELP}`
}

const COMMON: Record<string, FlagSpec> = { home: { type: 'string' }, help: { type: 'boolean' } }
const SPECS: Record<string, Record<string, FlagSpec>> = {
  join: { ...COMMON, listen: { type: 'string', multiple: true }, bootstrap: { type: 'string', multiple: true }, slots: { type: 'number' }, threads: { type: 'number' }, 'lease-seconds': { type: 'number' }, 'no-mdns': { type: 'boolean' }, 'swarm-key': { type: 'string' }, verbose: { type: 'boolean' }, relay: { type: 'boolean' }, announce: { type: 'string', multiple: true } },
  add: { ...COMMON, output: { type: 'string' }, wait: { type: 'boolean' }, json: { type: 'boolean' }, 'chunk-gops': { type: 'number' }, 'chunk-seconds': { type: 'number' } },
  status: { ...COMMON, json: { type: 'boolean' }, watch: { type: 'boolean' } },
  peers: { ...COMMON, json: { type: 'boolean' } },
  cancel: { ...COMMON },
  key: { help: { type: 'boolean' } }
}

/** Positional arguments each command takes at most. */
const MAX_POSITIONALS: Record<string, number> = { join: 0, add: 2, status: 1, peers: 0, cancel: 1, key: 2 }

/**
 * Checks a command line as the docs show it, without running it: the command exists, every option
 * is one of its own, and it has no extra arguments. Placeholders like N stand in for numbers. The
 * docs test runs every `swarm` line of README.md and docs/ through this, so the docs cannot rot.
 */
export function checkCommandLine (argv: string[]): string | undefined {
  const [command, ...rest] = argv
  if (command === undefined) return 'no command'
  if (['--help', '-h', 'help', '--version', '-v'].includes(command)) return undefined
  const spec = SPECS[command]
  if (spec === undefined) return `unknown command "${command}"`
  const args = rest.map((a, i) => {
    const flag = /^--([a-z-]+)$/.exec(rest[i - 1] ?? '')?.[1]
    return flag !== undefined && spec[flag]?.type === 'number' && /^[A-Z_]+$/.test(a) ? '1' : a
  })
  try {
    const { positionals } = parseCommandArgs(args, spec, `swarm ${command}`)
    const max = MAX_POSITIONALS[command] ?? 0
    if (positionals.length > max) return `swarm ${command} takes at most ${max} arguments; extra: ${positionals.slice(max).join(' ')}`
  } catch (e) {
    return (e as Error).message
  }
  return undefined
}

function out (text: string): void { process.stdout.write(text.endsWith('\n') ? text : `${text}\n`) }
function err (text: string): void { process.stderr.write(`swarm: ${text}\n`) }

export async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    const topic = command === 'help' && rest[0] !== undefined ? rest[0] : 'main'
    out(HELP[topic] ?? HELP.main as string)
    return command === undefined ? EXIT_USAGE : EXIT_OK
  }
  if (command === '--version' || command === '-v') { out(VERSION); return EXIT_OK }
  const spec = SPECS[command]
  if (spec === undefined) { err(`unknown command "${command}"; run \`swarm --help\``); return EXIT_USAGE }
  try {
    const { flags, positionals } = parseCommandArgs(rest, spec, `swarm ${command}`)
    if (flags.help === true) { out(HELP[command] as string); return EXIT_OK }
    const home = resolveHome(flags.home as string | undefined)
    switch (command) {
      case 'join': return await join(home, flags, positionals)
      case 'add': return await add(home, flags, positionals)
      case 'status': return await status(home, flags, positionals)
      case 'peers': return await peers(home, flags, positionals)
      case 'cancel': return await cancel(home, positionals)
      case 'key': return await key(positionals)
    }
    return EXIT_USAGE
  } catch (e) {
    if (e instanceof UsageError) { err(`${e.message}\nrun \`swarm ${command} --help\` for usage`); return EXIT_USAGE }
    if (e instanceof NodeNotRunningError) { err(e.message); return EXIT_FAILED }
    if (e instanceof ControlApiError) { err(e.message); return e.kind === 'input' ? EXIT_USAGE : EXIT_FAILED }
    err((e as Error).message)
    return EXIT_FAILED
  }
}

function noExtra (command: string, positionals: string[], takes: string): void {
  const max = MAX_POSITIONALS[command.split(' ')[1] as string] ?? 0
  if (positionals.length > max) {
    const extra = positionals[max] as string
    throw new UsageError(extra.startsWith('-')
      ? `unknown option ${extra} for ${command} (it takes ${takes})`
      : `unexpected argument ${JSON.stringify(extra)} (${command} takes ${takes})`)
  }
}

async function join (home: string, flags: Record<string, unknown>, positionals: string[]): Promise<number> {
  noExtra('swarm join', positionals, 'no positional arguments')
  const verbose = flags.verbose === true || /(^|,)swarm(:\*|\b)/.test(process.env.DEBUG ?? '')
  // Quiet by default: what a person watching the terminal wants to know.
  const important = /(added|resuming| done →|failed|refused|expired|released|connected to peer|could not connect|relay:|control only|reachable again)/
  const log = (line: string): void => {
    if (verbose || important.test(line)) process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`)
  }
  let swarmKey: Uint8Array | undefined
  if (typeof flags['swarm-key'] === 'string') {
    let bytes: Buffer
    try { bytes = await readFile(resolve(flags['swarm-key'])) } catch (e) { throw new UsageError(`cannot read swarm key ${flags['swarm-key']}: ${(e as Error).message}`) }
    const { parseSwarmKey } = await import('../src/swarm/index.js')
    try { swarmKey = parseSwarmKey(bytes, flags['swarm-key']) } catch (e) { throw new UsageError((e as Error).message) }
  }
  const { startDaemon, standInEncoder } = await import('../src/daemon/index.js')
  const { DEFAULT_RELAY_LIMITS, describeRelayLimits } = await import('../src/swarm/index.js')
  let daemon
  try {
    daemon = await startDaemon({
      home,
      ...(flags.listen !== undefined ? { listen: flags.listen as string[] } : {}),
      bootstrap: (flags.bootstrap as string[] | undefined) ?? [],
      mdns: flags['no-mdns'] !== true,
      ...(flags.relay === true ? { relay: DEFAULT_RELAY_LIMITS } : {}),
      ...(flags.announce !== undefined ? { announce: flags.announce as string[] } : {}),
      ...(flags.slots !== undefined ? { slots: flags.slots as number } : {}),
      ...(flags.threads !== undefined ? { threads: flags.threads as number } : {}),
      ...(swarmKey !== undefined ? { swarmKey } : {}),
      ...(flags['lease-seconds'] !== undefined ? { leaseMs: (flags['lease-seconds'] as number) * 1000 } : {}),
      ...(process.env.SWARM_TEST_ENCODER !== undefined && process.env.SWARM_TEST_ENCODER !== '' ? { encoder: standInEncoder(process.env.SWARM_TEST_ENCODER) } : {}),
      log
    })
  } catch (e) {
    const message = (e as Error).message
    if (/multiaddr|EADDRINUSE|another swarm node/i.test(message)) throw new UsageError(message)
    throw e
  }
  const running = daemon
  // Handlers first: whoever reads the lines below may signal at once (tests, service managers).
  const stopped = new Promise<void>((resolveStop) => {
    let stopping = false
    const onSignal = (sig: string): void => {
      if (stopping) { err(`${sig} again: exiting without a clean stop`); process.exit(EXIT_FAILED) }
      stopping = true
      err(`${sig}: stopping (giving leases back)…`)
      void running.stop().then(resolveStop, (e: Error) => { err(`stop failed: ${e.message}`); resolveStop() })
    }
    process.on('SIGINT', () => { onSignal('SIGINT') })
    process.on('SIGTERM', () => { onSignal('SIGTERM') })
  })
  out(`swarm node started (home ${home})`)
  out(`peer id: ${daemon.peerId}`)
  for (const a of daemon.addresses()) out(`listening: ${a}`)
  if (flags.relay === true) out(`relay: serving circuit relay v2 for the swarm: ${describeRelayLimits(DEFAULT_RELAY_LIMITS)}`)
  out(`control: ${daemon.controlUrl}`)
  out(`dashboard: ${daemon.dashboardUrl}`)
  await stopped
  return EXIT_OK
}

async function add (home: string, flags: Record<string, unknown>, positionals: string[]): Promise<number> {
  const [file, settings] = positionals
  if (file === undefined || settings === undefined) throw new UsageError('swarm add needs FILE and "SETTINGS", e.g. swarm add movie.mkv "--preset slow --crf 18"')
  noExtra('swarm add', positionals, 'FILE and "SETTINGS"')
  const path = resolve(file)
  // Checked here first so bad input fails fast and nothing is queued.
  let info
  try { info = await stat(path) } catch { throw new UsageError(`${file}: no such file`) }
  if (!info.isFile()) throw new UsageError(`${file}: not a regular file`)
  try { parseX264Settings(settings) } catch (e) { throw new UsageError(`settings ${JSON.stringify(settings)}: ${(e as Error).message}`) }
  const client = await connectControl(home)
  const json = flags.json === true
  if (flags['chunk-gops'] !== undefined && flags['chunk-seconds'] !== undefined) throw new UsageError('give --chunk-gops or --chunk-seconds, not both')
  const { job, existing } = await client.addJob({
    file: path,
    settings,
    ...(typeof flags.output === 'string' ? { output: resolve(flags.output) } : {}),
    ...(flags['chunk-gops'] !== undefined ? { gopsPerChunk: flags['chunk-gops'] as number } : {}),
    ...(flags['chunk-seconds'] !== undefined ? { chunkSeconds: flags['chunk-seconds'] as number } : {})
  })
  if (!json) out(`${existing ? 'already known' : 'queued'}: job ${job.id} (${job.chunks.total} chunks, ${job.totalFrames} frames)`)
  if (flags.wait !== true) {
    if (json) out(JSON.stringify({ job, existing }))
    return EXIT_OK
  }
  const final = await waitForJob(client, job.id, json ? 'quiet' : liveCapable(process.stderr) ? 'live' : 'plain')
  if (json) out(JSON.stringify({ job: final, existing }))
  if (final.state === 'failed') { if (!json) err(`job ${final.id.slice(0, 12)} failed: ${final.error ?? 'unknown error'}`); return EXIT_FAILED }
  if (!json) out(final.output ?? '')
  return EXIT_OK
}

type ProgressMode = 'quiet' | 'plain' | 'live'
const REFRESH_MS = 1000
/** `add --wait` asks this often, so it returns within a fifth of a second of the job ending (a status request costs the node ~1 ms). */
const WAIT_POLL_MS = 200

async function waitForJob (client: ControlClient, id: string, mode: ProgressMode): Promise<JobStatus> {
  let last = ''
  let lastState = ''
  let drawnAt = 0
  const screen = mode === 'live' ? new LiveScreen(process.stderr) : undefined
  for (;;) {
    const job = await client.job(id)
    const ended = job.state === 'done' || job.state === 'failed'
    // The screen and the log keep their once-a-second pace; only the end is seen sooner.
    const due = ended || job.state !== lastState || Date.now() - drawnAt >= REFRESH_MS
    if (due) {
      drawnAt = Date.now()
      lastState = job.state
      if (screen !== undefined) {
        screen.draw(renderJob(job, { color: true, self: job.originator }))
      } else if (mode === 'plain') {
        const line = formatProgressLine(job)
        if (line !== last) { process.stderr.write(`${line}\n`); last = line }
      }
    }
    if (ended) return job
    await new Promise(r => setTimeout(r, WAIT_POLL_MS))
  }
}

async function status (home: string, flags: Record<string, unknown>, positionals: string[]): Promise<number> {
  noExtra('swarm status', positionals, 'at most one JOB')
  const client = await connectControl(home)
  const json = flags.json === true
  if (flags.watch === true) return await watch(client, positionals[0], json ? 'json' : liveCapable(process.stdout) ? 'live' : 'plain')
  if (positionals[0] !== undefined) {
    const job = await client.job(positionals[0])
    out(json ? JSON.stringify(job) : formatJob(job))
    return EXIT_OK
  }
  const s: StatusJson = await client.status()
  out(json ? JSON.stringify(s) : formatStatus(s))
  return EXIT_OK
}

/**
 * `swarm status --watch`: refreshes every second until Ctrl-C, or with JOB until that job is done
 * (exit 0) or failed (exit 1). 'json' prints one object per refresh, 'plain' a job's progress line
 * when it changes, 'live' redraws a view of every job on the terminal.
 */
async function watch (client: ControlClient, jobId: string | undefined, mode: 'json' | 'plain' | 'live'): Promise<number> {
  const interrupted = new AbortController()
  const onSigint = (): void => { interrupted.abort() }
  process.once('SIGINT', onSigint)
  const screen = mode === 'live' ? new LiveScreen(process.stdout) : undefined
  const lastLines = new Map<string, string>()
  const plain = (jobs: JobStatus[]): void => {
    for (const job of jobs) {
      const line = formatProgressLine(job)
      if (lastLines.get(job.id) !== line) { out(line); lastLines.set(job.id, line) }
    }
    for (const id of [...lastLines.keys()]) {
      if (!jobs.some(j => j.id === id)) { out(`job ${id.slice(0, 12)} is gone`); lastLines.delete(id) }
    }
  }
  try {
    while (!interrupted.signal.aborted) {
      if (jobId !== undefined) {
        const job = await client.job(jobId)
        if (mode === 'json') out(JSON.stringify(job))
        else if (screen !== undefined) screen.draw(renderJob(job, { color: true, ...(job.local ? { self: job.originator } : {}) }))
        else plain([job])
        if (job.state === 'done') return EXIT_OK
        if (job.state === 'failed') return EXIT_FAILED
      } else {
        const s = await client.status()
        if (mode === 'json') out(JSON.stringify(s))
        else if (screen !== undefined) {
          // Chunk lists (who encodes what, at what speed) for the jobs added here that are still running.
          const running = s.jobs.filter(j => j.local && j.state !== 'done' && j.state !== 'failed')
          const detailed = new Map((await Promise.all(running.map(async j => await client.job(j.id).catch(() => j)))).map(j => [j.id, j]))
          screen.draw(renderStatus(s, detailed, { color: true, self: s.peerId }))
        } else plain(s.jobs)
      }
      await sleep(REFRESH_MS, undefined, { signal: interrupted.signal }).catch(() => {})
    }
    return EXIT_OK
  } finally {
    process.off('SIGINT', onSigint)
  }
}

async function peers (home: string, flags: Record<string, unknown>, positionals: string[]): Promise<number> {
  noExtra('swarm peers', positionals, 'no positional arguments')
  const client = await connectControl(home)
  const p = await client.peers()
  out(flags.json === true ? JSON.stringify(p) : formatPeers(p))
  return EXIT_OK
}

async function key (positionals: string[]): Promise<number> {
  if (positionals[0] !== 'generate' || positionals[1] === undefined) throw new UsageError('usage: swarm key generate FILE')
  noExtra('swarm key generate', positionals, 'one FILE')
  const path = resolve(positionals[1])
  try {
    const { generateSwarmKey } = await import('../src/swarm/index.js')
    await generateSwarmKey(path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`${positionals[1]} already exists; a key is never overwritten (delete it first if you mean to replace it)`)
    throw e
  }
  out(`wrote ${path}: copy it to every node and start each with --swarm-key ${JSON.stringify(path)}`)
  return EXIT_OK
}

async function cancel (home: string, positionals: string[]): Promise<number> {
  if (positionals[0] === undefined) throw new UsageError('swarm cancel needs a JOB id (see swarm status)')
  noExtra('swarm cancel', positionals, 'one JOB')
  const client = await connectControl(home)
  await client.cancelJob(positionals[0])
  out(`cancelled ${positionals[0]}`)
  return EXIT_OK
}
