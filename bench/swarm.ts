/**
 * `npm run bench` (second half): the swarm against plain `ffmpeg | x264` on the generated clip
 * (`--encoder NAME`: x265, SVT-AV1 or aomenc instead, the plain runs and the swarm alike; its
 * "--threads T" is that encoder's threads: x265 --pools, SVT-AV1 --lp, aomenc --threads).
 *
 *   1. baseline-T   one plain ffmpeg|x264 over the whole file, x264 --threads T (T = cores)
 *   2. swarm-1      one `swarm join` node sized as the product sizes it for T cores (--slots S --threads T/S,
 *                   the same T threads in all); `swarm add --wait` from spawn to exit. Also, for reference,
 *                   one `swarm join --slots 1 --threads T` node (one encode with T frame threads).
 *   3. baseline-1   plain ffmpeg|x264, --threads 1, both processes pinned to core 0 (taskset)
 *   4. swarm-k      k nodes, node i pinned to core i, --slots 1 --threads 1, nodes 2..k bootstrapped to node 1
 *      then, with --bracket, baseline-1 again (the VM's speed drifts between minutes), and with
 *      --ceiling also two baseline-1 at once, one per core: what the machine's cores give with no swarm;
 *      with --tool-cpu every tool of swarm-k's nodes runs under GNU time, and its CPU is given by purpose
 *   5. from swarm-k: wire bytes of the originator's TCP connections (kernel counters via `ss`) against
 *      segment + result bytes, time from `swarm add` to the first lease, merge time as a share of the whole
 *   6. video size and SSIM of swarm-k's output against baseline-1
 *
 * Prints a table and writes <out>/swarm.json (plus every node's stderr and event log under <out>/swarm-logs/).
 * Real `swarm join` processes on 127.0.0.1 with mDNS off; every node is stopped (SIGINT) at the end.
 * What happened in a swarm run (leases, segments sent, merge) comes from the nodes' event logs
 * (`swarm join --events FILE`), never from their log text.
 */
import { execa } from 'execa'
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { defaultSlots, type JobStatus, type StatusJson } from '../src/daemon/client.js'
import type { JobRecord } from '../src/jobs/index.js'
import { encoderFor, installedEncoders, probeMedia, type EncoderSettings, type MediaInfo } from '../src/media/index.js'
import { readEventLog, runSwarm, startLocalNode, type LocalNode, type StartNodeOptions } from '../scripts/local-swarm.js'
import type { NodeEvent, NodeEventOf, NodeEventType } from '../src/swarm/index.js'
import { ensureBenchClip, plainEncode, ssim, type BenchClip } from './clip.js'
import { BENCH_ENCODERS, encoderNamed } from './lib/encoders.js'
import { ensureSource, parseSourceSpec } from './sources.js'
import { readToolCpu, writeToolShims, type ToolCpu } from './tool-cpu.js'

const { values } = parseArgs({
  options: {
    encoder: { type: 'string', default: 'x264' },
    // Without it, the encoder's medium preset and quality (bench/lib/encoders.ts): x264 "--preset medium --crf 20".
    settings: { type: 'string' },
    seconds: { type: 'string', default: '30' },
    nodes: { type: 'string', default: String(availableParallelism()) },
    out: { type: 'string', default: 'bench-results' },
    quick: { type: 'boolean', default: false },
    // Only baseline-1 and the pinned k-node swarm (the throughput issue's comparison): skips steps 1-2.
    'pinned-only': { type: 'boolean', default: false },
    // baseline-1 again after swarm-k: this VM's speed drifts by 10-20% between minutes, and a
    // speedup measured against one plain run minutes earlier moves with it.
    bracket: { type: 'boolean', default: false },
    // Then two plain encodes at once, one per core: what two cores of this machine give with no
    // swarm at all (they share caches and memory bandwidth, two real machines do not).
    ceiling: { type: 'boolean', default: false },
    // Every tool swarm-k's nodes run goes through GNU time: CPU by what it was for (bench/tool-cpu.ts).
    'tool-cpu': { type: 'boolean', default: false },
    // A source of bench/sources.ts (realistic-40s, stress-120s, …) instead of the --seconds clip.
    source: { type: 'string' },
    // Passed to swarm-k's nodes as `swarm join --verify`: how the originator checks peers' results.
    verify: { type: 'string' }
  }
})

const CORES = availableParallelism()
const live = new Set<LocalNode>()

// ---- small helpers ------------------------------------------------------------------------------

const sleep = async (ms: number): Promise<void> => { await new Promise(r => setTimeout(r, ms)) }
const round = (n: number, digits = 3): number => Math.round(n * 10 ** digits) / 10 ** digits

/** Sum of the video stream's packet sizes, as ffprobe reads them from a container. */
async function videoPacketBytes (path: string): Promise<number> {
  const { stdout } = await execa('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=size', '-of', 'csv=p=0', path])
  return stdout.split('\n').reduce((sum, l) => sum + (Number(l.trim()) || 0), 0)
}

async function nodeStatus (home: string): Promise<StatusJson | undefined> {
  const r = await runSwarm(['status', '--home', home, '--json'])
  if (r.exitCode !== 0) return undefined
  try { return JSON.parse(r.stdout) as StatusJson } catch { return undefined }
}

async function waitForPeers (home: string, want: number, timeoutMs = 60_000): Promise<number> {
  const t0 = performance.now()
  for (;;) {
    const s = await nodeStatus(home)
    if (s !== undefined && s.peers.length >= want) return (performance.now() - t0) / 1000
    if (performance.now() - t0 > timeoutMs) throw new Error(`node at ${home} sees ${s?.peers.length ?? 0} peers after ${timeoutMs} ms, wanted ${want}`)
    await sleep(200)
  }
}

/** One node's stderr, kept to be saved with the results (what the bench measures comes from events). */
class LineLog {
  readonly lines: string[] = []
  private partial = ''
  feed = (text: string): void => {
    const parts = (this.partial + text).split('\n')
    this.partial = parts.pop() ?? ''
    this.lines.push(...parts)
  }
}

/** Starts a node that writes its event log to `events` (a file left over from an earlier run is removed first). */
async function startNode (home: string, o: StartNodeOptions, log: LineLog, events: string): Promise<LocalNode> {
  await rm(events, { force: true })
  const node = await startLocalNode(home, { ...o, onStderr: log.feed, events })
  live.add(node)
  return node
}

/** A node's events of these types at or after `since` (ms since the epoch), in order. */
async function eventsOf<T extends NodeEventType> (file: string, since: number, ...types: T[]): Promise<Array<NodeEventOf<T>>> {
  const all: NodeEvent[] = await readEventLog(file)
  return all.filter((e): e is NodeEventOf<T> => e.at >= since && (types as string[]).includes(e.type))
}

/** Seconds from `since` (ms since the epoch) to an event. */
const secondsAfter = (since: number, e: { at: number } | undefined): number | undefined => e === undefined ? undefined : round((e.at - since) / 1000)

async function stopNodes (nodes: LocalNode[]): Promise<void> {
  await Promise.allSettled(nodes.map(async n => { await n.stop('SIGINT'); live.delete(n) }))
}

// ---- CPU from /proc ------------------------------------------------------------------------------

/**
 * How often the wire and disk samplers look during swarm-k. Every 200 ms (an `ss` spawn and a walk
 * of the job folder) the bench process itself took 11-16 s of CPU beside a 217 s swarm run, at
 * nice 0 against the encoders' nice 10: 3-4% of the two cores, counted as the swarm's idle time.
 * Counters only grow while a socket lives and the job folder's peak holds until chunks are
 * verified, so a second loses nothing but sockets that open and close within it.
 */
const SAMPLE_EVERY_MS = 1000

interface CpuSeconds { self: number, children: number }

/** CPU seconds of a process (utime + stime) and of its children it has waited for (cutime + cstime). */
async function processCpu (pid: number | undefined): Promise<CpuSeconds> {
  if (pid === undefined) return { self: 0, children: 0 }
  try {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? []
    const tick = (i: number): number => Number(fields[i] ?? 0) / 100
    return { self: tick(11) + tick(12), children: tick(13) + tick(14) }
  } catch { return { self: 0, children: 0 } }
}

const cpuSince = (a: CpuSeconds, b: CpuSeconds): CpuSeconds => ({ self: b.self - a.self, children: b.children - a.children })

/** The whole machine's CPU seconds from /proc/stat: busy (every non-idle state but steal), and stolen by the hypervisor. */
interface MachineCpu { busy: number, steal: number }

async function machineCpu (): Promise<MachineCpu> {
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice (USER_HZ = 100; guest time is inside user)
  const f = (await readFile('/proc/stat', 'utf8')).split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? []
  const at = (i: number): number => (f[i] ?? 0) / 100
  return { busy: at(0) + at(1) + at(2) + at(5) + at(6), steal: at(7) }
}

interface Beside { otherCpu: number, steal: number }

/**
 * What ran beside a measured step: the machine's busy CPU minus the step's own (the bench process's
 * sampling included), and what the hypervisor stole. Either makes the step's wall time say less:
 * the swarm's idle core-seconds are 2 × time − its CPU, so CPU taken by anything else counts as idle.
 */
function besideStep (a: MachineCpu, b: MachineCpu, stepCpu: number): Beside {
  return { otherCpu: Math.max(0, b.busy - a.busy - stepCpu), steal: b.steal - a.steal }
}

// ---- disk ---------------------------------------------------------------------------------------

/** Bytes of every file under `dir` (missing files, e.g. deleted while listed, count as 0). */
async function treeBytes (dir: string): Promise<number> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  const sizes = await Promise.all(entries.filter(e => e.isFile()).map(async e => (await stat(join(e.parentPath, e.name)).catch(() => ({ size: 0 }))).size))
  return sizes.reduce((a, b) => a + b, 0)
}

/** The largest a folder got while sampled every `everyMs`. */
function sampleTreePeak (dir: string, everyMs = SAMPLE_EVERY_MS): { stop: () => Promise<number> } {
  let peak = 0
  let running = true
  const loop = (async () => {
    while (running) { peak = Math.max(peak, await treeBytes(dir)); await sleep(everyMs) }
  })()
  return { stop: async () => { running = false; await loop; return peak } }
}

// ---- wire bytes from the kernel -----------------------------------------------------------------

interface SocketSample { local: string, peer: string, pid?: number, acked: number, sent: number, received: number }

/** `ss -tinpH state established`: a header line per socket, then an indented line of counters. */
function parseSs (text: string): SocketSample[] {
  const out: SocketSample[] = []
  let current: Omit<SocketSample, 'acked' | 'sent' | 'received'> | undefined
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    if (!/^\s/.test(line)) {
      const cols = line.trim().split(/\s+/)
      const pid = /pid=(\d+)/.exec(line)?.[1]
      current = { local: cols[2] ?? '', peer: cols[3] ?? '', ...(pid !== undefined ? { pid: Number(pid) } : {}) }
      continue
    }
    if (current === undefined) continue
    const num = (name: string): number => Number(new RegExp(`\\b${name}:(\\d+)`).exec(line)?.[1] ?? 0)
    out.push({ ...current, acked: num('bytes_acked'), sent: num('bytes_sent'), received: num('bytes_received') })
    current = undefined
  }
  return out
}

/**
 * Samples the originator's established TCP sockets every `everyMs` and keeps, per socket, the first
 * and the largest counters seen (they only grow while the socket lives). Its sockets: local address
 * 127.0.0.1:<listen port> (inbound connections), or owned by its pid (outbound ones), never the
 * control API's port.
 */
class WireSampler {
  private readonly first = new Map<string, SocketSample>()
  private readonly max = new Map<string, SocketSample>()
  private readonly baseline = new Set<string>()
  private timer?: NodeJS.Timeout
  private running?: Promise<void>
  samples = 0

  constructor (private readonly listen: string, private readonly pid: number | undefined, private readonly controlPort: string, private readonly everyMs = SAMPLE_EVERY_MS) {}

  private mine (s: SocketSample): boolean {
    if (s.local.endsWith(`:${this.controlPort}`) || s.peer.endsWith(`:${this.controlPort}`)) return false
    return s.local === this.listen || (this.pid !== undefined && s.pid === this.pid)
  }

  async sample (): Promise<void> {
    const { stdout } = await execa('ss', ['-tinpH', 'state', 'established'], { reject: false })
    this.samples++
    for (const s of parseSs(stdout)) {
      if (!this.mine(s)) continue
      const key = `${s.local} ${s.peer}`
      if (!this.first.has(key)) this.first.set(key, s)
      const m = this.max.get(key)
      this.max.set(key, { ...s, acked: Math.max(s.acked, m?.acked ?? 0), sent: Math.max(s.sent, m?.sent ?? 0), received: Math.max(s.received, m?.received ?? 0) })
    }
  }

  /** Takes the snapshot that is subtracted later (connections already open, with their setup traffic), then samples on. */
  async start (): Promise<void> {
    await this.sample()
    for (const k of this.max.keys()) this.baseline.add(k)
    const loop = async (): Promise<void> => {
      await this.sample()
      this.timer = setTimeout(() => { this.running = loop() }, this.everyMs)
    }
    this.timer = setTimeout(() => { this.running = loop() }, this.everyMs)
  }

  async stop (): Promise<void> {
    if (this.timer !== undefined) clearTimeout(this.timer)
    await this.running
    if (this.timer !== undefined) clearTimeout(this.timer)
    await this.sample()
  }

  /** Bytes since start(): sockets open at start count from their snapshot, sockets opened later from zero. */
  totals (): { sentAcked: number, sentIncludingRetransmits: number, received: number, connections: Array<{ local: string, peer: string, sentAcked: number, received: number, openAtStart: boolean }> } {
    const connections = [...this.max.entries()].map(([key, m]) => {
      const base = this.baseline.has(key) ? this.first.get(key) : undefined
      return { local: m.local, peer: m.peer, openAtStart: base !== undefined, sentAcked: m.acked - (base?.acked ?? 0), sent: m.sent - (base?.sent ?? 0), received: m.received - (base?.received ?? 0) }
    })
    return {
      sentAcked: connections.reduce((a, c) => a + c.sentAcked, 0),
      sentIncludingRetransmits: connections.reduce((a, c) => a + c.sent, 0),
      received: connections.reduce((a, c) => a + c.received, 0),
      connections: connections.map(({ sent: _sent, ...c }) => c)
    }
  }
}

// ---- one swarm job ------------------------------------------------------------------------------

interface SwarmRun {
  seconds: number
  /** When `swarm add` was spawned, in ms since the epoch: the nodes' events are stamped on the same clock. */
  startedAt: number
  job: JobStatus
  record: JobRecord
  output: string
}

/** `swarm add FILE SETTINGS --encoder NAME --wait --json` on `home`, timed from spawn to exit; reads the job's record afterwards. */
async function addAndWait (home: string, clip: string, settings: EncoderSettings, output: string): Promise<SwarmRun> {
  const startedAt = Date.now()
  const t0 = performance.now()
  const r = await runSwarm(['add', clip, settings.raw, '--encoder', settings.encoder, '--home', home, '--output', output, '--wait', '--json'])
  const seconds = (performance.now() - t0) / 1000
  if (r.exitCode !== 0) throw new Error(`swarm add exited ${r.exitCode}: ${r.stderr.trim()}`)
  const { job } = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { job: JobStatus }
  if (job.state !== 'done') throw new Error(`job ${job.id.slice(0, 12)} ended ${job.state}: ${job.error ?? ''}`)
  const record = JSON.parse(await readFile(join(home, 'jobs', job.id, 'job.json'), 'utf8')) as JobRecord
  return { seconds, startedAt, job, record, output }
}

async function saveLogs (dir: string, name: string, logs: LineLog[]): Promise<void> {
  await mkdir(dir, { recursive: true })
  await Promise.all(logs.map(async (l, i) => await writeFile(join(dir, `${name}-node${i + 1}.log`), l.lines.join('\n') + '\n')))
}
// ---- the steps ----------------------------------------------------------------------------------

const loadNow = (): number[] => loadavg().map(n => round(n, 2))

/** What every step reads: the options, the clip, where runs and logs go, and the load averages taken so far. */
interface Bench {
  quick: boolean
  seconds: number
  /** swarm-k's nodes. */
  k: number
  /** baseline-T's threads: one per core. */
  T: number
  pinnedOnly: boolean
  settings: EncoderSettings
  /** The plain runs' files: the encoder's raw bitstream (.264, .hevc, .ivf). */
  ext: string
  clip: BenchClip
  source: MediaInfo
  work: string
  outDir: string
  logDir: string
  /** The encoder's version as installedEncoders read it. */
  encoderVersion: string
  /** Before each step, in the order taken (the JSON keeps that order). */
  load: Record<string, number[]>
}

async function setUp (): Promise<Bench> {
  const quick = values.quick === true
  const k = Number(values.nodes)
  if (!Number.isInteger(k) || k < 2) throw new Error(`--nodes must be 2 or more (got ${values.nodes})`)
  if (k > CORES) console.warn(`warning: ${k} nodes on ${CORES} cores: node i is pinned to core i mod ${CORES}, so some share a core`)
  const encoderId = encoderNamed(values.encoder)
  const defaults = BENCH_ENCODERS[encoderId]
  const settings = encoderFor(encoderId).parseSettings(values.settings ?? defaults.settings(defaults.swarmPreset, defaults.quality.default))
  const encoderVersion = (await installedEncoders()).find(e => e.encoder === encoderId)?.version
  if (encoderVersion === undefined) throw new Error(`--encoder ${encoderId}: ${encoderFor(encoderId).binary} is not installed here, or printed no version`)
  const clip = values.source !== undefined ? await ensureSource(parseSourceSpec(values.source)) : await ensureBenchClip(quick ? 10 : Number(values.seconds))
  const seconds = clip.seconds
  const source = await probeMedia(clip.path)
  const work = join(tmpdir(), `swarm-bench-swarm-${process.pid}`)
  const outDir = resolve(values.out)
  await rm(work, { recursive: true, force: true })
  await mkdir(work, { recursive: true })
  const load: Record<string, number[]> = { start: loadNow() }
  console.log(`clip: ${clip.path} (${source.video.width}x${source.video.height}, ${source.video.frameCount} frames)${quick ? '  [--quick]' : ''}`)
  console.log(`encoder: ${encoderId} ${encoderVersion}   settings: ${settings.raw}   cores: ${CORES}   nodes (k): ${k}   load average: ${load.start!.join(' ')}`)
  const pinnedOnly = values['pinned-only'] === true
  return { quick, seconds, k, T: CORES, pinnedOnly, settings, ext: encoderFor(encoderId).fileExtension, clip, source, work, outDir, logDir: join(outDir, 'swarm-logs'), encoderVersion, load }
}

/** A plain encode's time, and where it wrote its video. */
interface PlainRun { seconds: number, out: string }

/** 1. One plain ffmpeg|x264 with a thread per core (NaN with --pinned-only, which skips it). */
async function baselineT (b: Bench): Promise<PlainRun> {
  const out = join(b.work, `baseline-T${b.ext}`)
  if (b.pinnedOnly) return { seconds: Number.NaN, out }
  const seconds = await plainEncode(b.clip.path, b.source, b.settings, b.T, out)
  console.log(`baseline-${b.T}: ${seconds.toFixed(2)} s`)
  return { seconds, out }
}

interface Swarm1Run { run: SwarmRun, firstLeaseSec: number | undefined }

/** One `swarm join` node with `slots` slots of `threads` threads, and one job on it. */
async function runSwarm1 (b: Bench, name: string, slots: number, threads: number): Promise<Swarm1Run> {
  b.load[`before${name}`] = loadNow()
  const lineLog = new LineLog()
  const events = join(b.logDir, `${name}-node1.events.jsonl`)
  const node = await startNode(join(b.work, name, 'n1'), { slots, extraArgs: ['--threads', String(threads), '--verbose'] }, lineLog, events)
  let run: SwarmRun
  try {
    run = await addAndWait(node.home, b.clip.path, b.settings, join(b.work, name, 'out.mkv'))
  } finally {
    await stopNodes([node])
    await saveLogs(b.logDir, name, [lineLog])
  }
  const [first] = await eventsOf(events, run.startedAt, 'lease:granted')
  console.log(`${name} (--slots ${slots} --threads ${threads}): ${run.seconds.toFixed(2)} s, ${run.record.chunks.length} chunks`)
  return { run, firstLeaseSec: secondsAfter(run.startedAt, first) }
}

interface Swarm1Runs {
  /** The node's own sizing for T cores: S slots of `threads` threads. */
  S: number
  threads: number
  sized: Swarm1Run | undefined
  /** For reference: one slot of T threads. */
  oneEncode: SwarmRun | undefined
}

/** 2. swarm-1: the node's own sizing for T cores (S slots of T/S threads), then one encode of T threads (neither with --pinned-only). */
async function swarm1Runs (b: Bench): Promise<Swarm1Runs> {
  const S = defaultSlots(b.T)
  const threads = Math.max(1, Math.floor(b.T / S))
  if (b.pinnedOnly) return { S, threads, sized: undefined, oneEncode: undefined }
  const sized = await runSwarm1(b, 'swarm-1', S, threads)
  const { run: oneEncode } = await runSwarm1(b, 'swarm-1-one-encode', 1, b.T)
  return { S, threads, sized, oneEncode }
}

interface Baseline1 extends PlainRun {
  /** CPU seconds of ffmpeg and the encoder. */
  cpu: number
  beside: Beside
}

/** 3. baseline-1: plain ffmpeg|x264, --threads 1, pinned to core 0. */
async function baseline1 (b: Bench): Promise<Baseline1> {
  b.load.beforeBaseline1 = loadNow()
  const out = join(b.work, `baseline-1${b.ext}`)
  const cpu0 = await processCpu(process.pid)
  const machine0 = await machineCpu()
  const seconds = await plainEncode(b.clip.path, b.source, b.settings, 1, out, 0)
  const cpu = cpuSince(cpu0, await processCpu(process.pid)).children
  const beside = besideStep(machine0, await machineCpu(), cpu)
  console.log(`baseline-1 (core 0): ${seconds.toFixed(2)} s, ${cpu.toFixed(1)} CPU s`)
  return { seconds, out, cpu, beside }
}

type WireTotals = ReturnType<WireSampler['totals']> & { samples: number }

interface SwarmKRun {
  run: SwarmRun
  /** Each node's event log, the originator's first. */
  events: string[]
  /** From the last node's start until the originator saw all the others. */
  peersSec: number
  wire: WireTotals
  /** Each node's CPU during the job, the originator's first. */
  nodeCpu: CpuSeconds[]
  machineBefore: MachineCpu
  machineAfter: MachineCpu
  /** This process's own CPU (its samplers), before and after the job. */
  benchBefore: CpuSeconds
  benchAfter: CpuSeconds
  peakJobBytes: number
}

/**
 * swarm-k's nodes: node i (0-based) under `taskset -c i`, so node 1, the originator, shares core 0
 * with nothing else of ours, like baseline-1; nodes 2..k bootstrap to node 1. Each is pushed onto
 * `nodes` once started, for the caller to stop. Returns node 1's address the others dialled.
 */
async function startPinnedNodes (b: Bench, logs: LineLog[], events: string[], nodes: LocalNode[]): Promise<string> {
  const shims = values['tool-cpu'] === true ? await writeToolShims(join(b.work, 'tool-shims')) : undefined
  const nodeOpts = (i: number): StartNodeOptions => ({
    slots: 1, wrapper: ['taskset', '-c', String(i % CORES)], extraArgs: ['--threads', '1', '--verbose', ...(values.verify !== undefined ? ['--verify', values.verify] : [])],
    ...(shims !== undefined ? { env: shims.envFor(join(b.work, `tool-cpu-n${i + 1}.log`)) } : {})
  })
  const first = await startNode(join(b.work, 'swarm-k', 'n1'), nodeOpts(0), logs[0]!, events[0]!)
  nodes.push(first)
  const boot = first.addresses.find(a => a.startsWith('/ip4/127.0.0.1/')) ?? first.addresses[0] as string
  const rest = await Promise.all(Array.from({ length: b.k - 1 }, async (_, j) => await startNode(join(b.work, 'swarm-k', `n${j + 2}`), { ...nodeOpts(j + 1), bootstrap: [boot] }, logs[j + 1]!, events[j + 1]!)))
  nodes.push(...rest)
  return boot
}

/** Starts the pinned nodes, then runs the job with the wire, CPU and disk sampled around it. */
async function measureSwarmK (b: Bench, logs: LineLog[], events: string[], nodes: LocalNode[]): Promise<SwarmKRun> {
  const boot = await startPinnedNodes(b, logs, events, nodes)
  const first = nodes[0]!
  const peersSec = await waitForPeers(first.home, b.k - 1)
  const listen = `127.0.0.1:${/\/tcp\/(\d+)/.exec(boot)?.[1] ?? ''}`
  const controlPort = new URL(first.controlUrl).port
  const sampler = new WireSampler(listen, first.proc.pid, controlPort)
  await sampler.start()
  const cpuBefore = await Promise.all(nodes.map(async n => await processCpu(n.proc.pid)))
  const machineBefore = await machineCpu()
  const benchBefore = await processCpu(process.pid)
  // The originator's job folder: segments, results in and the merge (the output goes elsewhere).
  const disk = sampleTreePeak(join(first.home, 'jobs'))
  let run: SwarmRun
  let peakJobBytes: number
  try {
    run = await addAndWait(first.home, b.clip.path, b.settings, join(b.work, 'swarm-k', 'out.mkv'))
  } finally {
    await sampler.stop()
    peakJobBytes = await disk.stop()
  }
  const machineAfter = await machineCpu()
  const benchAfter = await processCpu(process.pid)
  const nodeCpu = await Promise.all(nodes.map(async (n, i) => cpuSince(cpuBefore[i]!, await processCpu(n.proc.pid))))
  const wire = { ...sampler.totals(), samples: sampler.samples }
  return { run, events, peersSec, wire, nodeCpu, machineBefore, machineAfter, benchBefore, benchAfter, peakJobBytes }
}

/** 4. swarm-k: k pinned nodes, --slots 1 --threads 1; every node is stopped and its log saved whatever happens. */
async function runSwarmK (b: Bench): Promise<SwarmKRun> {
  b.load.beforeSwarmK = loadNow()
  const logs = Array.from({ length: b.k }, () => new LineLog())
  await mkdir(b.logDir, { recursive: true })
  const events = Array.from({ length: b.k }, (_, i) => join(b.logDir, `swarm-k-node${i + 1}.events.jsonl`))
  const nodes: LocalNode[] = []
  let sk: SwarmKRun
  try {
    sk = await measureSwarmK(b, logs, events, nodes)
  } finally {
    await stopNodes(nodes)
    await saveLogs(b.logDir, 'swarm-k', logs)
  }
  console.log(`swarm-${b.k} (--threads 1, pinned): ${sk.run.seconds.toFixed(2)} s, ${sk.run.record.chunks.length} chunks`)
  return sk
}

/** With --tool-cpu: what swarm-k's nodes' tools took, by purpose, per node. */
async function toolCpuFigures (b: Bench): Promise<ToolCpu[][] | undefined> {
  if (values['tool-cpu'] !== true) return undefined
  const toolCpu = await Promise.all(Array.from({ length: b.k }, async (_, i) => await readToolCpu(join(b.work, `tool-cpu-n${i + 1}.log`))))
  toolCpu.forEach((kinds, i) => {
    console.log(`tool CPU of node ${i + 1}${i === 0 ? ' (the originator)' : ''}:`)
    for (const t of kinds) console.log(`  ${t.kind.padEnd(32)} ${String(t.runs).padStart(4)} runs  ${t.cpuSeconds.toFixed(2).padStart(7)} s`)
  })
  return toolCpu
}

interface Bracket {
  afterSec: number | undefined
  pairSec: number[] | undefined
  /** Of baseline-1 and, when run, baseline-1 again. */
  meanSec: number
  /** 2 × mean baseline-1 / the slower of the pair. */
  ceiling: number | undefined
}

/** 4b. baseline-1 again (--bracket, --ceiling), and two at once (--ceiling). */
async function bracketRuns (b: Bench, base1Sec: number): Promise<Bracket> {
  let afterSec: number | undefined
  if (values.bracket === true || values.ceiling === true) {
    afterSec = await plainEncode(b.clip.path, b.source, b.settings, 1, join(b.work, `baseline-1-after${b.ext}`), 0)
    console.log(`baseline-1 again, after swarm-${b.k} (core 0): ${afterSec.toFixed(2)} s`)
  }
  let pairSec: number[] | undefined
  if (values.ceiling === true) {
    pairSec = await Promise.all([0, 1].map(async core => await plainEncode(b.clip.path, b.source, b.settings, 1, join(b.work, `baseline-pair-${core}${b.ext}`), core % CORES)))
    console.log(`two baseline-1 at once (cores 0 and 1): ${pairSec.map(t => t.toFixed(2)).join(' s, ')} s`)
  }
  const meanSec = afterSec === undefined ? base1Sec : (base1Sec + afterSec) / 2
  const ceiling = pairSec === undefined ? undefined : 2 * meanSec / Math.max(...pairSec)
  return { afterSec, pairSec, meanSec, ceiling }
}

interface OriginatorFigures {
  /** The originator's peer id. */
  self: string
  leaseLines: Array<{ atSec: number, chunk: number, holder: string, backup: boolean }>
  firstLeaseSec: number | undefined
  firstRemoteLeaseSec: number | undefined
  addedSec: number | undefined
  mergeSec: number | undefined
  segmentsSent: Array<{ chunk: number, peer: string, bytes: number }>
  failedTransfers: Array<{ chunk: number, peer: string, reason: string }>
  failedFetches: Array<{ node: number, chunk: number, reason: string }>
  segmentBytes: number
  resultBytes: number
  payload: number
  wireBytes: number
  chunksOverWire: number
  wireRatio: number | undefined
}

/** 5. From swarm-k's event logs and job record: leases, merge, segments sent, failed transfers, and bytes on the wire against what had to cross it. */
async function originatorFigures (sk: SwarmKRun): Promise<OriginatorFigures> {
  const { run, wire } = sk
  const origin = sk.events[0]!
  const self = run.record.originator
  const mine = <E extends { jobId: string }>(e: E): boolean => e.jobId === run.job.id
  const leaseLines = (await eventsOf(origin, run.startedAt, 'lease:granted')).filter(mine).map(e => ({ atSec: secondsAfter(run.startedAt, e) as number, chunk: e.chunk, holder: e.peer, backup: e.backup }))
  const addedSec = secondsAfter(run.startedAt, (await eventsOf(origin, run.startedAt, 'job:added')).find(mine))
  const merged = (await eventsOf(origin, run.startedAt, 'merge:done')).find(mine)
  const segmentsSent = (await eventsOf(origin, run.startedAt, 'segment:sent')).filter(mine).map(e => ({ chunk: e.chunk, peer: e.peer, bytes: e.bytes }))
  // What had to cross the wire: for every chunk whose kept result came from another peer, its segment
  // out and its result back (sizes from job.json). Everything else the originator's sockets carried
  // (gossip, claims, heartbeats, aborted transfers, backup copies) is overhead.
  const remoteChunks = run.record.chunks.filter(c => c.result !== undefined && c.result.encodedBy !== self)
  const segmentBytes = remoteChunks.reduce((a, c) => a + (c.segment?.size ?? 0), 0)
  const resultBytes = remoteChunks.reduce((a, c) => a + (c.result?.size ?? 0), 0)
  const payload = segmentBytes + resultBytes
  const wireBytes = wire.sentAcked + wire.received
  // Segment transfers that did not complete: the originator's send broke off or a worker's fetch failed.
  const failedTransfers = (await eventsOf(origin, run.startedAt, 'segment:send-failed')).filter(mine).map(e => ({ chunk: e.chunk, peer: e.peer, reason: e.reason }))
  const failedFetches = (await Promise.all(sk.events.map(async file => await eventsOf(file, run.startedAt, 'segment:fetch-failed'))))
    .flatMap((list, i) => list.filter(mine).map(e => ({ node: i + 1, chunk: e.chunk, reason: e.reason })))
  return {
    self,
    leaseLines,
    firstLeaseSec: leaseLines[0]?.atSec,
    firstRemoteLeaseSec: leaseLines.find(l => l.holder !== self)?.atSec,
    addedSec,
    mergeSec: merged !== undefined ? merged.ms / 1000 : undefined,
    segmentsSent,
    failedTransfers,
    failedFetches,
    segmentBytes,
    resultBytes,
    payload,
    wireBytes,
    chunksOverWire: remoteChunks.length,
    wireRatio: payload > 0 ? wireBytes / payload : undefined
  }
}

interface ChunkPlan { frames: number[], planBound: number, encodedBy: Record<string, number> }

/** The best efficiency this chunk plan allows on k equal nodes: no schedule ends before the largest chunk, nor before total / k. */
function chunkPlan (k: number, record: JobRecord): ChunkPlan {
  const frames = record.chunks.map(c => c.frames)
  const totalFrames = frames.reduce((a, b) => a + b, 0)
  const planBound = totalFrames / (k * Math.max(Math.max(...frames), totalFrames / k))
  const encodedBy: Record<string, number> = {}
  for (const c of record.chunks) if (c.result !== undefined) encodedBy[c.result.encodedBy] = (encodedBy[c.result.encodedBy] ?? 0) + 1
  return { frames, planBound, encodedBy }
}

interface QualityFigures {
  base1Bytes: number
  /** NaN with --pinned-only. */
  baseTBytes: number
  skVideoBytes: number
  s1VideoBytes: number | undefined
  skPacketBytes: number
  skFileBytes: number
  ssimBase1: number
  ssimSk: number
  sizeRatio: number
  ssimDelta: number
}

/** 6. Video sizes, and SSIM of swarm-k's output against baseline-1's. */
async function qualityFigures (b: Bench, baseT: PlainRun, base1: PlainRun, sk: SwarmRun, s1: SwarmRun | undefined): Promise<QualityFigures> {
  const base1Bytes = (await stat(base1.out)).size
  const baseTBytes = b.pinnedOnly ? Number.NaN : (await stat(baseT.out)).size
  const skVideoBytes = sk.record.chunks.reduce((a, c) => a + (c.result?.size ?? 0), 0)
  const s1VideoBytes = s1?.record.chunks.reduce((a, c) => a + (c.result?.size ?? 0), 0)
  const skPacketBytes = await videoPacketBytes(sk.output)
  const skFileBytes = (await stat(sk.output)).size
  const ssimBase1 = await ssim(base1.out, b.clip.path)
  const ssimSk = await ssim(sk.output, b.clip.path)
  const sizeRatio = skVideoBytes / base1Bytes
  const ssimDelta = ssimSk - ssimBase1
  return { base1Bytes, baseTBytes, skVideoBytes, s1VideoBytes, skPacketBytes, skFileBytes, ssimBase1, ssimSk, sizeRatio, ssimDelta }
}

interface CpuFigures {
  originCpu: CpuSeconds
  workerCpu: CpuSeconds
  swarmCpu: number
  idleCoreSec: number
  /** The bench's own process (its samplers), apart from everything else beside the swarm. */
  benchCpu: number
  beside: Beside
}

/** Where swarm-k's core-seconds went: each node's Node.js process and the tools it ran (x264, ffmpeg, ffprobe, mkvmerge), and idle. */
function cpuFigures (k: number, sk: SwarmKRun): CpuFigures {
  const originCpu = sk.nodeCpu[0]!
  const workerCpu = sk.nodeCpu.slice(1).reduce((a, c) => ({ self: a.self + c.self, children: a.children + c.children }), { self: 0, children: 0 })
  const swarmCpu = originCpu.self + originCpu.children + workerCpu.self + workerCpu.children
  const idleCoreSec = k * sk.run.seconds - swarmCpu
  const benchCpu = sk.benchAfter.self - sk.benchBefore.self
  const beside = besideStep(sk.machineBefore, sk.machineAfter, swarmCpu + benchCpu)
  return { originCpu, workerCpu, swarmCpu, idleCoreSec, benchCpu, beside }
}

/** Every step's result, for the table and the JSON. */
interface Figures {
  b: Bench
  baseT: PlainRun
  swarm1: Swarm1Runs
  base1: Baseline1
  sk: SwarmKRun
  toolCpu: ToolCpu[][] | undefined
  bracket: Bracket
  origin: OriginatorFigures
  plan: ChunkPlan
  quality: QualityFigures
  cpu: CpuFigures
  /** swarm-1 / baseline-T. */
  s1Ratio: number | undefined
  /** baseline-1 / swarm-k. */
  speedup: number
  efficiency: number
}

const fmt = (n: number | undefined, d = 3): string => n === undefined ? 'n/a' : n.toFixed(d)
const met = (ok: boolean | undefined): string => ok === undefined ? 'n/a' : ok ? 'yes' : 'NO'

/** The table: measure, value, goal, met?. */
function resultRows (f: Figures): string[][] {
  const { k, T, source } = f.b
  const { S, threads: s1Threads, sized, oneEncode: s1One } = f.swarm1
  const s1 = sized?.run
  const baseTSec = f.baseT.seconds
  const { seconds: base1Sec, cpu: base1Cpu, beside: base1Beside } = f.base1
  const { run: sk, wire, peakJobBytes } = f.sk
  const { afterSec: base1AfterSec, meanSec: base1MeanSec, pairSec, ceiling } = f.bracket
  const { originCpu, workerCpu, swarmCpu, idleCoreSec, benchCpu: skBenchCpu, beside: skBeside } = f.cpu
  const { failedTransfers, failedFetches, wireBytes, payload, chunksOverWire, wireRatio, addedSec, firstLeaseSec, firstRemoteLeaseSec, mergeSec } = f.origin
  const { frames, planBound } = f.plan
  const { sizeRatio, ssimBase1, ssimSk, ssimDelta } = f.quality
  const { s1Ratio, speedup, efficiency } = f
  return [
    ['measure', 'value', 'goal', 'met?'],
    [`baseline-${T} time (s), --threads ${T}`, fmt(baseTSec, 2), '', ''],
    [`swarm-1 time (s), --slots ${S} --threads ${s1Threads}`, fmt(s1?.seconds, 2), '', ''],
    [`swarm-1 / baseline-${T}`, fmt(s1Ratio), '<= 1.05', met(s1Ratio === undefined ? undefined : s1Ratio <= 1.05)],
    [`for reference: swarm-1 --slots 1 --threads ${T} (s), / baseline-${T}`, `${fmt(s1One?.seconds, 2)}, ${fmt(s1One !== undefined ? s1One.seconds / baseTSec : undefined)}`, '', ''],
    ['baseline-1 time (s), core 0', fmt(base1Sec, 2), '', ''],
    [`swarm-${k} time (s), 1 core per node`, fmt(sk.seconds, 2), '', ''],
    [`speedup baseline-1 / swarm-${k}`, fmt(speedup), `~ ${k}`, ''],
    [`efficiency speedup / ${k}`, fmt(efficiency), '>= 0.95', met(efficiency >= 0.95)],
    ['baseline-1 again after swarm-k (s), drift', base1AfterSec === undefined ? 'not run (--bracket)' : `${fmt(base1AfterSec, 2)}, ${(100 * (base1AfterSec / base1Sec - 1)).toFixed(1)}%`, '', ''],
    [`speedup against the mean of both baseline-1 runs`, base1AfterSec === undefined ? 'n/a' : fmt(base1MeanSec / sk.seconds), '', ''],
    ['two baseline-1 at once, one per core (s)', pairSec === undefined ? 'not run (--ceiling)' : pairSec.map(t => fmt(t, 2)).join(', '), '', ''],
    [`this machine's ceiling: 2 × mean baseline-1 / slower of the pair`, fmt(ceiling), '', ''],
    [`CPU s, baseline-1 (ffmpeg + ${encoderFor(f.b.settings.encoder).binary})`, fmt(base1Cpu, 1), '', ''],
    [`CPU s, swarm-${k} tools: originator / other nodes`, `${fmt(originCpu.children, 1)} / ${fmt(workerCpu.children, 1)}`, '', ''],
    [`CPU s, swarm-${k} Node.js: originator / other nodes`, `${fmt(originCpu.self, 1)} / ${fmt(workerCpu.self, 1)}`, '', ''],
    [`swarm-${k} CPU / baseline-1 CPU`, fmt(swarmCpu / base1Cpu), '', ''],
    [`idle core-seconds (${k} × time - CPU)`, `${fmt(idleCoreSec, 1)} (${(100 * idleCoreSec / (k * sk.seconds)).toFixed(1)}%)`, '', ''],
    ['CPU s of other processes / stolen by the hypervisor: baseline-1', `${fmt(base1Beside.otherCpu, 1)} / ${fmt(base1Beside.steal, 1)}`, '< 5%', met(base1Beside.otherCpu + base1Beside.steal < 0.05 * base1Sec)],
    [`CPU s of the bench's sampling / other processes (swarm add included) / stolen: swarm-${k}`, `${fmt(skBenchCpu, 1)} / ${fmt(skBeside.otherCpu, 1)} / ${fmt(skBeside.steal, 1)}`, '< 5%', met(skBenchCpu + skBeside.otherCpu + skBeside.steal < 0.05 * k * sk.seconds)],
    [`chunks (encoded by peers other than the originator)`, `${sk.record.chunks.length} (${chunksOverWire})`, `>= ${k}`, met(sk.record.chunks.length >= k)],
    ['chunk frames', frames.join(' '), '', ''],
    [`efficiency this chunk plan allows on ${k} nodes`, fmt(planBound), '', ''],
    ['backup leases / results dropped / straggler splits', `${sk.record.stats?.backupLeases ?? 0} / ${sk.record.stats?.droppedResults ?? 0} / ${sk.record.stats?.splits ?? 0}`, '', ''],
    ['segment transfers that failed', String(Math.max(failedTransfers.length, failedFetches.length)), '0', met(failedTransfers.length + failedFetches.length === 0)],
    ['originator wire bytes during the job (sent / received)', `${wire.sentAcked} / ${wire.received}`, '', ''],
    ['wire bytes per remote chunk', chunksOverWire > 0 ? String(Math.round(wireBytes / chunksOverWire)) : 'n/a', '', ''],
    ['segment + result bytes per remote chunk', chunksOverWire > 0 ? String(Math.round(payload / chunksOverWire)) : 'n/a', '', ''],
    ['wire / (segment + result)', fmt(wireRatio, 4), '<= 1.05', met(wireRatio === undefined ? undefined : wireRatio <= 1.05)],
    ['swarm add → job added on the originator (s)', fmt(addedSec), '', ''],
    ['swarm add → first lease (s)', fmt(firstLeaseSec), '< 1', met(firstLeaseSec === undefined ? undefined : firstLeaseSec < 1)],
    ['swarm add → first lease to another peer (s)', fmt(firstRemoteLeaseSec), '', ''],
    ['merge time (s)', fmt(mergeSec, 2), '', ''],
    ['peak size of the job folder / source size', `${(peakJobBytes / 1024 ** 2).toFixed(0)} MiB / ${(source.sizeBytes / 1024 ** 2).toFixed(0)} MiB`, '', ''],
    ['merge share of swarm-k time', mergeSec === undefined ? 'n/a' : `${(100 * mergeSec / sk.seconds).toFixed(1)}%`, '', ''],
    [`video bytes swarm-${k} / baseline-1`, fmt(sizeRatio, 4), 'within 3%', met(Math.abs(sizeRatio - 1) <= 0.03)],
    ['SSIM baseline-1', fmt(ssimBase1, 5), '', ''],
    [`SSIM swarm-${k}`, fmt(ssimSk, 5), '', ''],
    [`SSIM swarm-${k} - baseline-1`, fmt(ssimDelta, 5), 'within 0.002', met(Math.abs(ssimDelta) <= 0.002)]
  ]
}

function printTable (rows: string[][], load: Record<string, number[]>): void {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map(r => r[c]!.length)))
  console.log('')
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd())
  console.log(`load average: start ${load.start!.join(' ')}, end ${load.end!.join(' ')}${load.start![0]! > 0.5 ? '  (the machine was not idle: figures are under contention)' : ''}`)
}

/** swarm.json's `swarmK`. */
function swarmKJson (f: Figures): Record<string, unknown> {
  const { run: sk, wire } = f.sk
  const { originCpu, workerCpu, swarmCpu, idleCoreSec, benchCpu, beside } = f.cpu
  const o = f.origin
  const { mergeSec, wireBytes, payload, chunksOverWire } = o
  return {
    nodes: f.b.k,
    threads: 1,
    seconds: sk.seconds,
    secondsToSeePeers: f.sk.peersSec,
    cpuSeconds: { originator: originCpu, others: workerCpu, perNode: f.sk.nodeCpu, total: swarmCpu, idleCoreSeconds: idleCoreSec, beside: { ...beside, benchSampling: benchCpu } },
    speedup: f.speedup,
    speedupAgainstMeanBaseline: f.bracket.meanSec / sk.seconds,
    efficiency: f.efficiency,
    chunks: sk.record.chunks.length,
    chunkFrames: f.plan.frames,
    chunkSegmentBytes: sk.record.chunks.map(c => c.segment?.size ?? null),
    chunkResultBytes: sk.record.chunks.map(c => c.result?.size ?? null),
    planEfficiencyBound: f.plan.planBound,
    failedSegmentTransfers: { originator: o.failedTransfers, workers: o.failedFetches },
    encodedBy: f.plan.encodedBy,
    originator: o.self,
    jobStats: sk.record.stats ?? null,
    leases: o.leaseLines,
    addedSec: o.addedSec ?? null,
    firstLeaseSec: o.firstLeaseSec ?? null,
    firstRemoteLeaseSec: o.firstRemoteLeaseSec ?? null,
    mergeSec: mergeSec ?? null,
    peakJobFolderBytes: f.sk.peakJobBytes,
    sourceBytes: f.b.source.sizeBytes,
    mergeShare: mergeSec !== undefined ? mergeSec / sk.seconds : null,
    wire: {
      method: `ss -tinpH state established every ${SAMPLE_EVERY_MS} ms; originator sockets (local 127.0.0.1:<listen port>, or owned by its pid; control API excluded); max per socket minus the snapshot taken just before swarm add`,
      samples: wire.samples,
      sentAcked: wire.sentAcked,
      sentIncludingRetransmits: wire.sentIncludingRetransmits,
      received: wire.received,
      total: wireBytes,
      connections: wire.connections
    },
    // segment:sent events: once the originator has written the bytes, also when the worker then aborted the transfer.
    segmentsSent: o.segmentsSent,
    segmentBytes: o.segmentBytes,
    resultBytes: o.resultBytes,
    payloadBytes: payload,
    chunksOverWire,
    wirePerChunk: chunksOverWire > 0 ? wireBytes / chunksOverWire : null,
    payloadPerChunk: chunksOverWire > 0 ? payload / chunksOverWire : null,
    wireRatio: o.wireRatio ?? null,
    videoBytes: f.quality.skVideoBytes,
    videoPacketBytes: f.quality.skPacketBytes,
    outputFileBytes: f.quality.skFileBytes,
    ssim: f.quality.ssimSk
  }
}

/** swarm.json: the run's setting, each step's figures, and the goals. */
function resultJson (f: Figures): Record<string, unknown> {
  const { quick, clip, source, seconds, settings, load, T } = f.b
  const { S, threads: s1Threads, sized, oneEncode: s1One } = f.swarm1
  const s1 = sized?.run
  const baseTSec = f.baseT.seconds
  const base1 = f.base1
  const { pairSec, ceiling } = f.bracket
  const { s1Ratio, efficiency } = f
  const { wireRatio, firstLeaseSec } = f.origin
  const { sizeRatio, ssimDelta } = f.quality
  return {
    quick,
    clip: clip.path,
    frames: source.video.frameCount,
    seconds,
    encoder: settings.encoder,
    settings: settings.raw,
    verify: values.verify ?? null,
    machine: { cores: CORES, cpu: cpus()[0]?.model ?? '', node: process.version, encoder: settings.encoder, encoderVersion: f.b.encoderVersion, loadavg: load },
    baselineT: { threads: T, seconds: baseTSec, videoBytes: f.quality.baseTBytes },
    swarm1OneEncode: s1One === undefined ? null : { slots: 1, threads: T, seconds: s1One.seconds, chunks: s1One.record.chunks.length, ratioToBaselineT: s1One.seconds / baseTSec },
    swarm1: s1 === undefined ? null : { slots: S, threads: s1Threads, seconds: s1.seconds, chunks: s1.record.chunks.length, chunkFrames: s1.record.chunks.map(c => c.frames), chunkResultBytes: s1.record.chunks.map(c => c.result?.size ?? null), firstLeaseSec: sized?.firstLeaseSec ?? null, videoBytes: f.quality.s1VideoBytes, ratioToBaselineT: s1Ratio },
    baseline1: { threads: 1, core: 0, seconds: base1.seconds, cpuSeconds: base1.cpu, beside: base1.beside, videoBytes: f.quality.base1Bytes, ssim: f.quality.ssimBase1, secondsAfterSwarm: f.bracket.afterSec ?? null, meanSeconds: f.bracket.meanSec },
    ceiling: pairSec === undefined ? null : { pairSeconds: pairSec, speedup: ceiling },
    toolCpuPerNode: f.toolCpu ?? null,
    swarmK: swarmKJson(f),
    goals: {
      swarm1Ratio: { value: s1Ratio ?? null, goal: '<= 1.05', met: s1Ratio === undefined ? null : s1Ratio <= 1.05 },
      efficiency: { value: efficiency, goal: '>= 0.95 at k = 2', met: efficiency >= 0.95 },
      wireRatio: { value: wireRatio ?? null, goal: '<= 1.05', met: wireRatio === undefined ? null : wireRatio <= 1.05 },
      firstLeaseSec: { value: firstLeaseSec ?? null, goal: '< 1', met: firstLeaseSec === undefined ? null : firstLeaseSec < 1 },
      sizeRatio: { value: sizeRatio, goal: 'within 3%', met: Math.abs(sizeRatio - 1) <= 0.03 },
      ssimDelta: { value: ssimDelta, goal: 'within 0.002', met: Math.abs(ssimDelta) <= 0.002 }
    }
  }
}

// ---- main ---------------------------------------------------------------------------------------

async function main (): Promise<void> {
  const b = await setUp()
  try {
    const baseT = await baselineT(b)
    const swarm1 = await swarm1Runs(b)
    const base1 = await baseline1(b)
    const sk = await runSwarmK(b)
    const toolCpu = await toolCpuFigures(b)
    b.load.end = loadNow()
    const bracket = await bracketRuns(b, base1.seconds)
    const origin = await originatorFigures(sk)
    const plan = chunkPlan(b.k, sk.run.record)
    const quality = await qualityFigures(b, baseT, base1, sk.run, swarm1.sized?.run)
    const cpu = cpuFigures(b.k, sk)
    const s1 = swarm1.sized?.run
    const speedup = base1.seconds / sk.run.seconds
    const figures: Figures = { b, baseT, swarm1, base1, sk, toolCpu, bracket, origin, plan, quality, cpu, s1Ratio: s1 !== undefined ? s1.seconds / baseT.seconds : undefined, speedup, efficiency: speedup / b.k }
    printTable(resultRows(figures), b.load)
    await mkdir(b.outDir, { recursive: true })
    await writeFile(join(b.outDir, 'swarm.json'), JSON.stringify(resultJson(figures), null, 2) + '\n')
    console.log(`wrote ${join(values.out, 'swarm.json')} (node logs in ${join(values.out, 'swarm-logs')})`)
  } finally {
    await stopNodes([...live])
    await rm(b.work, { recursive: true, force: true })
  }
}

// Ctrl-C: stop every node this run started before leaving.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`${sig}: stopping ${live.size} node(s)…`)
    void stopNodes([...live]).finally(() => process.exit(130))
  })
}

main().catch(async (err) => {
  console.error(err instanceof Error ? err.message : err)
  await stopNodes([...live])
  process.exit(1)
})
