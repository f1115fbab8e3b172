import { readFile, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { defaultSlots, defaultThreads } from '../../src/daemon/client.js'
import { defaultMemoryBudget, formatMemorySize, parseMemorySize } from '../../src/media/memory.js'
import { ENCODE_PRIORITIES, type EncodePriority } from '../../src/media/priority.js'
import { debugEnabled, type LogSink } from '../../src/log/index.js'
import { InputProblem, UsageError } from '../args.js'
// Its own file, not the jobs layer's face, which loads libp2p (as memory.ts above is media's).
import { parseDraws, scriptedDraws } from '../../src/jobs/verification-policy.js'
import { EXIT_FAILED, EXIT_OK, HOME_HELP, rejectExtraArguments, shareInWords, verifyMode, type Command } from '../command.js'
import { err, out, printable } from '../output.js'

/** An environment switch is on when set to anything but empty, 0 or false. */
function isSet (v: string | undefined): boolean { return v !== undefined && !['', '0', 'false'].includes(v.toLowerCase()) }

/** `swarm join`: runs a node in the foreground until SIGINT or SIGTERM. */
export const join: Command = {
  help: `Usage: swarm join [--home DIR] [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--slots N] [--max-memory SIZE] [--encode-priority idle|low|normal] [--no-mdns] [--no-upnp] [--relay] [--announce MULTIADDR]... [--swarm-key FILE] [--verify all|adaptive] [--events FILE]

Runs a node until SIGINT or SIGTERM, then stops cleanly (leases it holds are given back).
It encodes chunks of every job it hears of and originates the jobs added on it. It prints a
"dashboard:" line: open that URL (127.0.0.1 only, token included) in a browser on this machine.

${HOME_HELP}
  --listen MULTIADDR   where to listen (repeatable; default /ip4/0.0.0.0/tcp/4010)
  --bootstrap MULTIADDR  a peer to dial at start, e.g. /ip4/192.168.1.20/tcp/4010/p2p/12D3Koo...
                       (repeatable; host names too: /dns4/HOST/tcp/4010/p2p/ID, /dnsaddr/HOST/p2p/ID)
  --slots N            concurrent encodes (default: one per core below 8 cores, else 4 or 5; here ${defaultSlots()})
  --threads N          threads per encode (x264 --threads, x265 --pools, SVT-AV1 --lp, aomenc
                       --threads; default: the encoder decides with one slot, cores/slots with more)
  --max-memory SIZE    memory one encode (one slot) may take, e.g. 2G or 1500M: a chunk whose
                       settings and picture size need more is refused, and the decoder and x264
                       each run under this limit, so a chunk built to exhaust memory fails alone
                       (default: what an honest 4K --preset placebo encode needs with this
                       node's x264 threads, about 6 GiB; lower it on a machine without that
                       much per slot: such chunks are then refused up front; here ${formatMemorySize(defaultMemoryBudget(defaultThreads(defaultSlots())))})
  --encode-priority idle|low|normal  how encodes share this machine. idle (default): only CPU
                       nothing else wants (Linux's idle scheduling class), so the machine's own
                       work never waits; a machine kept busy by other work encodes nothing and
                       its chunks go to other peers. low: nice 10, a small share even then.
                       normal: the same priority as everything else
  --no-mdns            do not look for peers on the LAN with multicast DNS
  --no-upnp            do not ask the router to forward a port to this node (UPnP-IGD); on by
                       default; SWARM_NO_UPNP=1 in the environment does the same
  --relay              serve as a circuit relay for the swarm (on a node others can dial): peers
                       behind NAT that cannot dial each other move chunks through this node
  --announce MULTIADDR also announce this address, e.g. /ip4/203.0.113.7/tcp/4010 when that public
                       address's port 4010 is forwarded to this node (repeatable)
  --lease-seconds N    how long a lease on a chunk of a job added here lasts without a heartbeat (default 30)
  --swarm-key FILE     private swarm: only nodes with this pre-shared key can connect
  --verify all|adaptive  how peers' results of jobs added here are checked (swarm add --verify
                       overrides it per job). all: every result's structure and pictures.
                       adaptive: every result's structure; the pictures of each peer's first
                       result in a job and of a random ${shareInWords()} of its others, drawn
                       after each upload; one wrong result bans the peer and sends every chunk it
                       encoded for the job back to be encoded again. Default: adaptive with
                       --swarm-key (your own machines: a fault, not a liar, is the risk), all
                       without; adaptive without a key works but trusts every peer, and says so
  --events FILE        append what the node does (leases granted, chunks done, merges, claims,
                       encodes, uploads, bans) to FILE, one JSON object a line with its "type"
                       and "at" (ms since the epoch); created readable by you only. For scripts
                       and benchmarks: the log lines may be reworded, the events keep their fields
  --verbose            log the protocol story (claims, leases, transfers) to stderr`,
  flags: { verify: { type: 'string' }, 'encode-priority': { type: 'string' }, listen: { type: 'string', multiple: true }, bootstrap: { type: 'string', multiple: true }, slots: { type: 'number' }, threads: { type: 'number' }, 'max-memory': { type: 'string' }, 'lease-seconds': { type: 'number' }, 'no-mdns': { type: 'boolean' }, 'no-upnp': { type: 'boolean' }, 'swarm-key': { type: 'string' }, events: { type: 'string' }, verbose: { type: 'boolean' }, relay: { type: 'boolean' }, announce: { type: 'string', multiple: true } },
  takesHome: true,
  maxPositionals: 0,
  run: async ({ home, flags, positionals }) => {
    rejectExtraArguments('swarm join', positionals, join.maxPositionals, 'no positional arguments')
    const verbose = flags.verbose === true
    const debugging = debugEnabled(process.env.DEBUG)
    // Quiet by default: info lines are what a person watching the terminal wants to know.
    const log: LogSink = (line, level, component) => {
      if (level === 'info' || verbose || debugging(component)) process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${printable(line)}\n`)
    }
    let swarmKey: Uint8Array | undefined
    if (typeof flags['swarm-key'] === 'string') {
      let bytes: Buffer
      try { bytes = await readFile(resolve(flags['swarm-key'])) } catch (e) { throw new UsageError(`cannot read swarm key ${flags['swarm-key']}: ${(e as Error).message}`) }
      // libp2p loads here, not at the top: the other commands start faster without it.
      const { looseKeyWarning, parseSwarmKey } = await import('../../src/swarm/index.js')
      try { swarmKey = parseSwarmKey(bytes, flags['swarm-key']) } catch (e) { throw new UsageError((e as Error).message) }
      const loose = looseKeyWarning(flags['swarm-key'], (await stat(resolve(flags['swarm-key']))).mode)
      if (loose !== undefined) log(`warning: ${loose}`, 'info', 'swarm')
    }
    const verify = verifyMode(flags.verify, 'swarm join')
    const encodePriority = encodePriorityOf(flags['encode-priority'])
    let memoryBudgetBytes: number | undefined
    if (typeof flags['max-memory'] === 'string') {
      try { memoryBudgetBytes = parseMemorySize(flags['max-memory']) } catch (e) { throw new UsageError(`--max-memory: ${(e as Error).message}`) }
    }
    const { startDaemon, standInEncoder } = await import('../../src/daemon/index.js')
    // For tests only: which results get the picture check in adaptive mode, in a fixed order.
    const drawsText = process.env.SWARM_TEST_VERIFY_DRAWS
    let testDraws: ((jobId: string, peer: string) => number) | undefined
    if (drawsText !== undefined && drawsText !== '') {
      try { testDraws = scriptedDraws(parseDraws(drawsText)) } catch (e) { throw new UsageError(`SWARM_TEST_VERIFY_DRAWS: ${(e as Error).message}`) }
    }
    const { DEFAULT_RELAY_LIMITS, describeRelayLimits } = await import('../../src/swarm/index.js')
    let daemon
    try {
      daemon = await startDaemon({
        home,
        ...(flags.listen !== undefined ? { listen: flags.listen as string[] } : {}),
        bootstrap: (flags.bootstrap as string[] | undefined) ?? [],
        mdns: flags['no-mdns'] !== true,
        upnp: flags['no-upnp'] !== true && !isSet(process.env.SWARM_NO_UPNP),
        ...(flags.relay === true ? { relay: DEFAULT_RELAY_LIMITS } : {}),
        ...(flags.announce !== undefined ? { announce: flags.announce as string[] } : {}),
        ...(flags.slots !== undefined ? { slots: flags.slots as number } : {}),
        ...(flags.threads !== undefined ? { threads: flags.threads as number } : {}),
        ...(memoryBudgetBytes !== undefined ? { memoryBudgetBytes } : {}),
        ...(encodePriority !== undefined ? { encodePriority } : {}),
        ...(swarmKey !== undefined ? { swarmKey } : {}),
        ...(verify !== undefined ? { verify } : {}),
        ...(testDraws !== undefined ? { verifyDraw: testDraws } : {}),
        ...(flags['lease-seconds'] !== undefined ? { leaseMs: (flags['lease-seconds'] as number) * 1000 } : {}),
        ...(process.env.SWARM_TEST_ENCODER !== undefined && process.env.SWARM_TEST_ENCODER !== '' ? { encoder: standInEncoder(process.env.SWARM_TEST_ENCODER) } : {}),
        ...(typeof flags.events === 'string' ? { eventsFile: resolve(flags.events) } : {}),
        log
      })
    } catch (e) {
      const message = (e as Error).message
      if ((e as Error).name === 'EventLogError') throw new InputProblem(message)
      const inUse = portsInUse(message)
      if (inUse.length > 0) throw new InputProblem(describePortsInUse(inUse))
      if (/multiaddr|another swarm node/i.test(message)) throw new UsageError(message)
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
}

/**
 * The listen addresses libp2p could not bind because something else holds the port. Its error
 * lists each failed address with the system's error and a stack trace, and advises a libp2p
 * setting (`transportManager.faultTolerance`) that means nothing to someone running `swarm join`.
 */
export function portsInUse (libp2pMessage: string): Array<{ address: string, port: string }> {
  const found: Array<{ address: string, port: string }> = []
  for (const m of libp2pMessage.matchAll(/(\/ip[46]\/[^\s/]+\/tcp\/(\d+))[^\n]*EADDRINUSE/g)) {
    if (!found.some(f => f.address === m[1])) found.push({ address: m[1] as string, port: m[2] as string })
  }
  // A message without the address (another transport, another libp2p version) still names the error.
  if (found.length === 0 && /EADDRINUSE/.test(libp2pMessage)) {
    const port = /EADDRINUSE[^\n]*:(\d+)/.exec(libp2pMessage)?.[1] ?? '?'
    found.push({ address: `/ip4/0.0.0.0/tcp/${port}`, port })
  }
  return found
}

/** One line: which port, and the --listen option that picks another. */
export function describePortsInUse (inUse: Array<{ address: string, port: string }>): string {
  const ports = [...new Set(inUse.map(u => u.port))]
  const example = (inUse[0]?.address ?? '/ip4/0.0.0.0/tcp/4010').replace(/\/tcp\/\d+$/, '/tcp/PORT')
  return `${ports.length === 1 ? `port ${ports[0] ?? ''} is` : `ports ${ports.join(', ')} are`} in use by another program (or another swarm node); choose another with --listen ${example}, or stop what uses it`
}

function encodePriorityOf (value: unknown): EncodePriority | undefined {
  if (value === undefined) return undefined
  const known = ENCODE_PRIORITIES.find(p => p === value)
  if (known === undefined) throw new UsageError(`swarm join: --encode-priority is ${ENCODE_PRIORITIES.join(', ')}, not ${JSON.stringify(value)}`)
  return known
}
