/**
 * `npm run bench:idle`: what an idle node costs. Starts --nodes real `swarm join` processes (each
 * its own home in a temp dir, /ip4/127.0.0.1/tcp/0, mDNS and UPnP off), node 1 first and the others
 * bootstrapped to it (with --bootstrap all, to every node before them), waits until every node lists
 * all the others as peers, lets them settle, and then, without touching them, reads each process's
 * CPU time (utime + stime from /proc/PID/stat) over --runs windows of --window seconds. Prints each
 * node's share of one core and the mean across nodes, per window.
 *
 * CPU time, not wall time: the machine is shared, and a node's CPU seconds over a window say what
 * it cost whoever else runs there. Contention still moves the figure a little (cache misses, timers
 * that fire late and do their work in one go), so the load average and the machine's busy CPU are
 * printed beside it.
 *
 * --profile N runs node N under `node --cpu-prof` and prints where its CPU went during the windows
 * (self time by function and by package); the profiler's own cost makes that node's figure higher,
 * so it is left out of the mean.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { StatusJson } from '../src/daemon/client.js'
import { runSwarm, startLocalNode, type LocalNode } from '../scripts/local-swarm.js'

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '9' },
    // Seconds of each measured window.
    window: { type: 'string', default: '60' },
    runs: { type: 'string', default: '2' },
    // Seconds between every node seeing all the others and the first window: the connections'
    // first identify, DHT and member-finder rounds are joining, not idling.
    settle: { type: 'string', default: '15' },
    // first: nodes 2..n bootstrap to node 1 and find the others through the DHT (as people start a
    // swarm); all: each node bootstraps to every node started before it.
    bootstrap: { type: 'string', default: 'first' },
    profile: { type: 'string' },
    // NAME=VALUE put in every node's environment (e.g. DEBUG=libp2p:*); may be given more than once.
    'node-env': { type: 'string', multiple: true, default: [] },
    out: { type: 'string', default: 'bench-results' }
  }
})

/**
 * The profiler's sampling period (µs). At node's default of 1 ms the profiled node's CPU went from
 * 0.4% to 6% of a core, most of it the sampling itself; every 5 ms still gives thousands of samples
 * over a few minutes.
 */
const PROFILE_INTERVAL_US = 5000

const live = new Set<LocalNode>()
const sleep = async (ms: number): Promise<void> => { await new Promise(r => setTimeout(r, ms)) }

/** CPU seconds (utime + stime) of one process; USER_HZ is 100 on Linux. */
async function cpuSeconds (pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100
}

/** The whole machine's busy and stolen CPU seconds (/proc/stat's first line). */
async function machineCpu (): Promise<{ busy: number, steal: number }> {
  const f = (await readFile('/proc/stat', 'utf8')).split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? []
  const at = (i: number): number => (f[i] ?? 0) / 100
  return { busy: at(0) + at(1) + at(2) + at(5) + at(6), steal: at(7) }
}

async function peerCount (home: string): Promise<number> {
  const r = await runSwarm(['status', '--home', home, '--json'])
  if (r.exitCode !== 0) return 0
  try { return (JSON.parse(r.stdout) as StatusJson).peers.length } catch { return 0 }
}

/** Waits until every node lists at least `want` peers; one `swarm status` at a time, so the wait itself loads the machine little. */
async function waitForFullMesh (homes: string[], want: number, timeoutMs: number): Promise<number> {
  const t0 = performance.now()
  const pending = new Set(homes)
  while (pending.size > 0) {
    for (const home of [...pending]) if (await peerCount(home) >= want) pending.delete(home)
    if (pending.size === 0) break
    if (performance.now() - t0 > timeoutMs) throw new Error(`${pending.size} node(s) still see fewer than ${want} peers after ${timeoutMs / 1000} s`)
    await sleep(1000)
  }
  return (performance.now() - t0) / 1000
}

// ---- the profile ----------------------------------------------------------------------------------

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }

/** Where a script lives, in a few words: the npm package, node's own internals, or our source file. */
function placeOf (url: string): string {
  if (url === '') return '(native / V8)'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (pkg !== null) return pkg[1] as string
  if (url.startsWith('node:')) return 'node: internals'
  const ours = /\/dist\/(.*)$/.exec(url)
  return ours !== null ? ours[1] as string : url
}

/**
 * Self time by function and by place, counting only samples taken inside the windows. The
 * profile's timestamps are the monotonic clock in microseconds, the same clock as this process's
 * process.hrtime, so the windows are cut by time.
 */
function summariseProfile (p: CpuProfile, windows: Array<[number, number]>): { sampledMs: number, byFunction: Array<[string, number]>, byPlace: Array<[string, number]> } {
  const byId = new Map(p.nodes.map(n => [n.id, n]))
  const fn = new Map<string, number>()
  const place = new Map<string, number>()
  let t = p.startTime
  let total = 0
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0
    t += dt
    if (!windows.some(([a, b]) => t >= a && t <= b)) continue
    const node = byId.get(p.samples[i] as number)
    if (node === undefined) continue
    const cf = node.callFrame
    // Idle is the event loop waiting: no CPU.
    if (cf.functionName === '(idle)') continue
    const ms = dt / 1000
    total += ms
    const name = `${cf.functionName === '' ? '(anonymous)' : cf.functionName} ${placeOf(cf.url)}:${cf.lineNumber + 1}`
    fn.set(name, (fn.get(name) ?? 0) + ms)
    place.set(placeOf(cf.url), (place.get(placeOf(cf.url)) ?? 0) + ms)
  }
  const top = (m: Map<string, number>, n: number): Array<[string, number]> => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
  return { sampledMs: total, byFunction: top(fn, 30), byPlace: top(place, 20) }
}

// ---- main -----------------------------------------------------------------------------------------

async function main (): Promise<void> {
  const n = Number(values.nodes)
  const windowSec = Number(values.window)
  const runs = Number(values.runs)
  const settleSec = Number(values.settle)
  const profiled = values.profile !== undefined ? Number(values.profile) : undefined
  if (!Number.isInteger(n) || n < 2) throw new Error('--nodes: at least 2')
  if (!(windowSec > 0) || !Number.isInteger(runs) || runs < 1) throw new Error('--window and --runs: positive numbers')
  if (profiled !== undefined && !(Number.isInteger(profiled) && profiled >= 1 && profiled <= n)) throw new Error(`--profile: a node number from 1 to ${n}`)
  if (values.bootstrap !== 'first' && values.bootstrap !== 'all') throw new Error('--bootstrap: first or all')
  const nodeEnv = Object.fromEntries((values['node-env'] as string[]).map(kv => {
    const at = kv.indexOf('=')
    if (at <= 0) throw new Error(`--node-env ${kv}: NAME=VALUE`)
    return [kv.slice(0, at), kv.slice(at + 1)]
  }))
  const outDir = resolve(values.out as string)
  const work = await mkdtemp(join(tmpdir(), 'swarm-idle-'))
  const profileDir = join(work, 'profile')
  try {
    const nodes: LocalNode[] = []
    const t0 = performance.now()
    for (let i = 1; i <= n; i++) {
      const home = join(work, `node${i}`)
      const bootstrap = nodes.length === 0 ? [] : values.bootstrap === 'all' ? nodes.map(x => x.addresses[0] as string) : [nodes[0]?.addresses[0] as string]
      const env: Record<string, string> = { ...nodeEnv, ...(i === profiled ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-interval ${PROFILE_INTERVAL_US} --cpu-prof-dir=${profileDir}` } : {}) }
      const node = await startLocalNode(home, { bootstrap, env, timeoutMs: 120_000 })
      live.add(node)
      nodes.push(node)
    }
    console.log(`${n} nodes started in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    const meshSec = await waitForFullMesh(nodes.map(x => x.home), n - 1, 300_000)
    console.log(`every node sees ${n - 1} peers after ${meshSec.toFixed(1)} s more; settling ${settleSec} s`)
    await sleep(settleSec * 1000)

    const pids = nodes.map(x => x.proc.pid as number)
    const rows: Array<{ window: number, monotonicUs: [number, number] | undefined, seconds: number, perNode: number[], mean: number, meanUnprofiled: number, machineBusy: number, steal: number, load: number[] }> = []
    const windows: Array<[number, number]> = []
    for (let w = 1; w <= runs; w++) {
      const m0 = await machineCpu()
      const c0 = await Promise.all(pids.map(cpuSeconds))
      const w0 = performance.now()
      const h0 = Number(process.hrtime.bigint() / 1000n)
      await sleep(windowSec * 1000)
      const c1 = await Promise.all(pids.map(cpuSeconds))
      const seconds = (performance.now() - w0) / 1000
      windows.push([h0, Number(process.hrtime.bigint() / 1000n)])
      const m1 = await machineCpu()
      const perNode = c1.map((c, i) => 100 * (c - (c0[i] as number)) / seconds)
      const unprofiled = perNode.filter((_, i) => i + 1 !== profiled)
      const mean = perNode.reduce((a, b) => a + b, 0) / perNode.length
      const meanUnprofiled = unprofiled.reduce((a, b) => a + b, 0) / unprofiled.length
      const row = { window: w, monotonicUs: windows[windows.length - 1], seconds, perNode, mean, meanUnprofiled, machineBusy: (m1.busy - m0.busy) / seconds, steal: (m1.steal - m0.steal) / seconds, load: loadavg() }
      rows.push(row)
      console.log(`window ${w}: ${seconds.toFixed(1)} s; node 1 ${perNode[0]?.toFixed(2)}% of a core, mean of ${unprofiled.length} node(s) ${meanUnprofiled.toFixed(2)}%` +
        `${profiled !== undefined ? ` (node ${profiled}, profiled: ${perNode[profiled - 1]?.toFixed(2)}%)` : ''}`)
      console.log(`  per node: ${perNode.map(p => p.toFixed(2)).join(' ')}`)
      console.log(`  machine: ${(100 * row.machineBusy).toFixed(0)}% busy of one core's worth (2 cores = 200%), ${(100 * row.steal).toFixed(1)}% stolen; load ${row.load.map(l => l.toFixed(2)).join(' ')}`)
    }

    if (rows.length > 1) {
      // Periodic work (the member finder's DHT rounds, kad-dht's refreshes) lands in some windows and not others.
      const overall = (i: number): number => rows.reduce((a, r) => a + (r.perNode[i] as number) * r.seconds, 0) / rows.reduce((a, r) => a + r.seconds, 0)
      const perNode = nodes.map((_, i) => overall(i))
      const unprofiled = perNode.filter((_, i) => i + 1 !== profiled)
      const means = rows.map(r => r.meanUnprofiled)
      console.log(`all ${rows.length} windows: node 1 ${perNode[0]?.toFixed(2)}% of a core, mean of ${unprofiled.length} node(s) ${(unprofiled.reduce((a, b) => a + b, 0) / unprofiled.length).toFixed(2)}%; ` +
        `window means from ${Math.min(...means).toFixed(2)}% to ${Math.max(...means).toFixed(2)}%`)
    }
    await Promise.allSettled(nodes.map(async x => { await x.stop('SIGINT'); live.delete(x) }))
    let profile: ReturnType<typeof summariseProfile> | undefined
    if (profiled !== undefined) {
      const file = (await readdir(profileDir).catch(() => [])).find(f => f.endsWith('.cpuprofile'))
      if (file === undefined) console.log('no CPU profile was written (did the node exit cleanly?)')
      else {
        profile = summariseProfile(JSON.parse(await readFile(join(profileDir, file), 'utf8')) as CpuProfile, windows)
        await mkdir(outDir, { recursive: true })
        await rm(join(outDir, 'idle.cpuprofile'), { force: true })
        await writeFile(join(outDir, 'idle.cpuprofile'), await readFile(join(profileDir, file)))
        const total = windows.reduce((a, [s, e]) => a + (e - s) / 1000, 0)
        console.log(`\nnode ${profiled}'s profile: ${profile.sampledMs.toFixed(0)} ms of CPU sampled in ${(total / 1000).toFixed(0)} s of windows (${(100 * profile.sampledMs / total).toFixed(2)}% of a core)`)
        console.log('by place (self time):')
        for (const [k, ms] of profile.byPlace) console.log(`  ${(100 * ms / profile.sampledMs).toFixed(1).padStart(5)}%  ${ms.toFixed(0).padStart(6)} ms  ${k}`)
        console.log('by function (self time):')
        for (const [k, ms] of profile.byFunction) console.log(`  ${(100 * ms / profile.sampledMs).toFixed(1).padStart(5)}%  ${ms.toFixed(0).padStart(6)} ms  ${k}`)
      }
    }
    await mkdir(outDir, { recursive: true })
    await writeFile(join(outDir, 'idle.json'), JSON.stringify({ nodes: n, bootstrap: values.bootstrap, nodeEnv, windowSec, settleSec, profiled: profiled ?? null, windows: rows, profile: profile ?? null }, null, 2) + '\n')
    console.log(`wrote ${join(values.out as string, 'idle.json')}${profile !== undefined ? ` and ${join(values.out as string, 'idle.cpuprofile')}` : ''}`)
  } finally {
    await Promise.allSettled([...live].map(async x => { await x.stop('SIGINT'); live.delete(x) }))
    await rm(work, { recursive: true, force: true })
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    console.error(`${sig}: stopping ${live.size} node(s)…`)
    void Promise.allSettled([...live].map(async x => await x.stop('SIGINT'))).finally(() => process.exit(130))
  })
}

main().catch(async (err) => {
  console.error(err instanceof Error ? err.message : err)
  await Promise.allSettled([...live].map(async x => await x.stop('SIGINT')))
  process.exit(1)
})
