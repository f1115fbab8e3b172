/**
 * `npm run bench:scale`: many swarm nodes in a few processes on 127.0.0.1 (mDNS off), each a full node
 * (libp2p, originator, worker) as `swarm join` runs it, with a stand-in encoder that sleeps in
 * proportion to the frames and then hands back a real H.264 chunk (encoded once per chunk shape and
 * copied), so the originator still verifies every result. Measures, for each swarm size:
 *   - makespan (add → every chunk verified) against the ideal, total sleep / nodes;
 *   - leases that were not first leases nor backups (unplanned duplicate encodes) and backup leases;
 *   - messages per chunk the originator served (claims, heartbeats, releases, chunk and result
 *     streams) plus announcements it published.
 * The originator (node 0) runs in this process; the other nodes in `--processes` child processes
 * (this same script with --host-nodes), so the originator's event loop is not shared with dozens of
 * other nodes (in one process, 50 nodes kept one core busy and the split of a job crawled).
 * What happened (leases, the split, chunks done, lapses) comes from the nodes' events, taken
 * in-process (DaemonOptions.onEvent), never from their log text.
 * Writes <out>/scale.json. Not part of the tests.
 */
import { execa } from 'execa'
import { appendFileSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { connectControl, startDaemon, type Daemon } from '../src/daemon/index.js'
import { AbortError, encodeChunk, parseX264Settings, type EncodeChunkOptions, type EncodedChunk } from '../src/media/index.js'
import type { NodeEvent } from '../src/swarm/index.js'

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '10,50' },
    'chunks-per-node': { type: 'string', default: '4' },
    'frames-per-chunk': { type: 'string', default: '10' },
    'ms-per-frame': { type: 'string', default: '1000' },
    processes: { type: 'string', default: '4' },
    out: { type: 'string', default: 'bench-results' },
    // Internal: run as a child that hosts this many nodes bootstrapped to --bootstrap, until SIGINT.
    'host-nodes': { type: 'string' },
    bootstrap: { type: 'string' },
    root: { type: 'string' }
  }
})

const sleep = async (ms: number, signal?: AbortSignal): Promise<void> => {
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(new AbortError('aborted')) }, { once: true })
  })
}

/**
 * A host's trace: `<ms since epoch> <line>` per line, appended synchronously (a line per event, a
 * few hundred per run), merged into the timeline by the parent.
 */
function tracer (file: string): (line: string, at?: number) => void {
  return (line, at = Date.now()) => { appendFileSync(file, `${at} ${line}\n`) }
}

/** A node event as a timeline line: its type, then its fields. */
function eventLine (e: NodeEvent): string {
  const { type, at: _at, ...fields } = e
  return `${type} ${JSON.stringify(fields)}`
}

/** Sleeps msPerFrame per frame, then copies a real encode of the same shape (made once). */
function simEncoder (msPerFrame: number, cacheDir: string): (o: EncodeChunkOptions) => Promise<EncodedChunk> {
  const cache = new Map<string, Promise<string>>()
  const shapeSettings = parseX264Settings('--preset ultrafast')
  return async (o) => {
    const started = Date.now()
    const key = `${o.frameCount}`
    let made = cache.get(key)
    if (made === undefined) {
      const path = join(cacheDir, `shape-${key}.264`)
      // Made while the first chunk of this shape sleeps, not after: every node of this process
      // waits for this one encode, which stands in for nothing (the sleep was the work); made
      // after the sleep, on a host busy with the start of a job, it added 1–4 s to every first chunk.
      // Not under this chunk's signal: a chunk given up must not take the shape with it.
      const { signal: _unused, ...unabortable } = o
      made = encodeChunk({ ...unabortable, settings: shapeSettings, outputPath: path, onProgress: () => {} }).then(() => path)
      made.catch(() => { cache.delete(key) })
      cache.set(key, made)
    }
    for (let done = 0; done < o.frameCount; done++) {
      // To a deadline per frame, not msPerFrame after the last wake-up: a real encoder runs in its
      // own process and does not slow down when this one's event loop (a dozen nodes) runs late;
      // sleeping relative to each late wake-up stretched a 10 s chunk to 14 s on a busy host.
      await sleep(Math.max(0, started + (done + 1) * msPerFrame - Date.now()), o.signal)
      o.onProgress?.({ framesDone: done + 1, frameCount: o.frameCount, fps: (done + 1) / ((Date.now() - started) / 1000) })
    }
    await mkdir(join(o.outputPath, '..'), { recursive: true })
    await copyFile(await made, o.outputPath)
    return { path: o.outputPath, sizeBytes: 0, frameCount: o.frameCount, seconds: (Date.now() - started) / 1000 }
  }
}

/**
 * Starts `count` nodes (homes <root>/n<first>…) bootstrapped to `boot`, in batches of three. Each
 * node's events go to `onEvent` with its name, or else into the trace.
 */
async function startNodes (root: string, first: number, count: number, boot: string[], msPerFrame: number, cacheDir: string, trace: (line: string, at?: number) => void, onEvent?: (event: NodeEvent) => void): Promise<Daemon[]> {
  await mkdir(cacheDir, { recursive: true })
  const common = { listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, slots: 1, encoder: simEncoder(msPerFrame, cacheDir) }
  const nodes: Daemon[] = []
  for (let i = 0; i < count; i += 3) {
    // Small batches (hosts start theirs at the same time), so the bootstrap node is not flooded
    // with handshakes all at once.
    nodes.push(...await Promise.all(Array.from({ length: Math.min(3, count - i) }, async (_, j) => {
      const name = `n${first + i + j}`
      const node = await startDaemon({ home: join(root, name), bootstrap: boot, ...common, onEvent: onEvent ?? ((e) => { trace(`${name} ${eventLine(e)}`, e.at) }) })
      trace(`${name} is ${node.peerId.slice(-8)}`)
      return node
    })))
  }
  return nodes
}

/** Child mode: host nodes until told to stop. */
async function hostNodes (): Promise<void> {
  const root = values.root as string
  const count = Number(values['host-nodes'])
  const first = Number(process.env.SWARM_SCALE_FIRST ?? '1')
  const trace = tracer(join(root, `trace-${process.pid}.txt`))
  const nodes = await startNodes(root, first, count, [values.bootstrap as string], Number(values['ms-per-frame']), join(root, `cache-${process.pid}`), trace)
  // How late this process's event loop ran while it hosted its nodes: a node hears announcements
  // and answers claims no sooner than its loop gets to them.
  const lag = monitorEventLoopDelay({ resolution: 20 })
  lag.enable()
  const cpu = process.cpuUsage()
  const started = Date.now()
  // Connections per node, every 10 s: a node with more of them relays more gossip.
  setInterval(() => { trace(`host: connections per node ${nodes.map(n => n.status().peers.length).join(' ')}`) }, 10_000).unref()
  const stop = (): void => {
    lag.disable()
    const used = process.cpuUsage(cpu)
    process.stderr.write(`scale: host of ${count} nodes: event-loop delay p50 ${(lag.percentile(50) / 1e6).toFixed(0)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(0)} ms, max ${(lag.max / 1e6).toFixed(0)} ms; CPU ${((used.user + used.system) / 1e6).toFixed(1)} s in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
    void Promise.allSettled(nodes.map(async n => await n.stop())).then(() => process.exit(0))
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  process.stdout.write('ready\n')
}

/**
 * Starts the other k-1 nodes in child processes, all hosts together, each in batches of a few
 * nodes, so the first nodes to join (the ones every later node grafts onto, up to twice the gossip
 * mesh degree) are spread over the hosts: started one host after another they were all in the
 * first, which then ran late (its event loop 2-3 s behind at the start of a job) while the others
 * had time to spare.
 */
async function startHosts (k: number, boot: string, root: string, msPerFrame: number, children: Array<ReturnType<typeof execa>>): Promise<void> {
  const processes = Math.max(1, Math.min(Number(values.processes), k - 1))
  let next = 1
  const ready: Array<Promise<void>> = []
  for (let p = 0; p < processes && next < k; p++) {
    const count = Math.ceil((k - next) / (processes - p))
    const child = execa(process.execPath, [process.argv[1] as string, '--host-nodes', String(count), '--bootstrap', boot, '--root', root, '--ms-per-frame', String(msPerFrame)],
      { env: { SWARM_SCALE_FIRST: String(next) }, stdin: 'ignore', stderr: 'inherit', buffer: false, reject: false })
    children.push(child)
    ready.push(new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve() })
      void child.then(r => { reject(new Error(`node host exited early (${r.exitCode ?? r.signal ?? '?'})`)) })
    }))
    next += count
  }
  await Promise.all(ready)
}

/** The hosts' worker logs and stand-in encodes, on the same clock (one machine), after t0. */
async function hostTraceLines (root: string, t0: number, stamp: (ms: number, what: string) => string): Promise<string[]> {
  const lines: string[] = []
  for (const f of (await readdir(root)).filter(f => f.startsWith('trace-'))) {
    for (const line of (await readFile(join(root, f), 'utf8')).split('\n')) {
      const m = /^(\d+) (.*)$/.exec(line)
      if (m !== null && (Number(m[1]) >= t0 || / is \S{8}$/.test(m[2] as string))) lines.push(stamp(Number(m[1]), m[2] as string))
    }
  }
  return lines
}

/** Waits for the job to end; returns timeline lines of how many announcements went out between polls (what the swarm relayed). */
async function jobDone (originator: Daemon, jobId: string, stamp: (ms: number, what: string) => string): Promise<string[]> {
  const lines: string[] = []
  let announced = 0
  for (;;) {
    const published = originator.metrics().announcementsPublished
    if (published > announced) lines.push(stamp(Date.now(), `announcements published: ${published - announced}`))
    announced = published
    const s = originator.status().jobs.find(j => j.id === jobId)
    if (s === undefined) throw new Error('job vanished')
    if (s.state === 'failed') throw new Error(`job failed: ${s.error ?? ''}`)
    if (s.state === 'done') return lines
    await sleep(s.chunks.done === s.chunks.total ? 100 : 500)
  }
}

async function runSwarm (k: number, clip: string, chunks: number, framesPerChunk: number, msPerFrame: number): Promise<Record<string, number | string[]>> {
  const root = await mkdtemp(join(tmpdir(), `swarm-scale-${k}-`))
  const nodes: Daemon[] = []
  const children: Array<ReturnType<typeof execa>> = []
  try {
    // Why a chunk was leased more than once: the originator's lapses and releases.
    const leaseLosses: string[] = []
    // Every lease and verified result with its time, written beside scale.json for a closer look.
    const timeline: string[] = []
    let t0 = 0
    /** A timeline line: seconds since the add, then the event. */
    const stamp = (ms: number, what: string): string => `${((ms - t0) / 1000).toFixed(2)} ${what}`
    // Taken from the originator's events as they happen, so the bench need not poll the
    // originator's status often (at 10 polls a second that cost its process about 2% of a core).
    let splitDone = 0
    let firstLease = 0
    const doneTimes: number[] = []
    const originatorEvent = (e: NodeEvent): void => {
      // A lease that ended without a result (lapsed, past its deadline, refused, or given back with a reason).
      if (e.type === 'lease:ended' && (e.why !== 'released' || (e.reason !== undefined && e.reason !== 'shutdown'))) leaseLosses.push(eventLine(e))
      if (t0 === 0 || e.at < t0) return
      if (e.type === 'lease:granted' && firstLease === 0) firstLease = e.at
      if (e.type === 'split:done' && splitDone === 0) splitDone = e.at
      if (e.type === 'chunk:done') doneTimes.push(e.at)
      timeline.push(stamp(e.at, eventLine(e)))
    }
    nodes.push(...await startNodes(root, 0, 1, [], msPerFrame, join(root, 'cache-0'), () => {}, originatorEvent))
    const first = nodes[0] as Daemon
    const boot = first.addresses()[0] as string
    await startHosts(k, boot, root, msPerFrame, children)
    const until = Date.now() + 120_000
    while (first.status().peers.length < k - 1 && Date.now() < until) await sleep(200)
    // Gossipsub needs a heartbeat or two to put every peer in a mesh.
    await sleep(3000)
    const client = await connectControl(join(root, 'n0'))
    // The originator's own event loop: it answers every claim, serves every segment and checks every result.
    const originatorLag = monitorEventLoopDelay({ resolution: 20 })
    originatorLag.enable()
    const originatorCpu = process.cpuUsage()
    t0 = Date.now()
    const { job } = await client.addJob({ file: clip, settings: '--preset ultrafast', gopsPerChunk: 1 })
    const added = Date.now()
    timeline.push(...await jobDone(first, job.id, stamp))
    originatorLag.disable()
    const usedCpu = process.cpuUsage(originatorCpu)
    console.error(`scale: originator: event-loop delay p50 ${Math.round(originatorLag.percentile(50) / 1e6)} ms, p99 ${Math.round(originatorLag.percentile(99) / 1e6)} ms, max ${Math.round(originatorLag.max / 1e6)} ms; Node.js CPU ${((usedCpu.user + usedCpu.system) / 1e6).toFixed(1)} s in ${((Date.now() - t0) / 1000).toFixed(0)} s`)
    // When a quarter, half, three quarters of the chunks were done: where a long makespan comes from.
    const quarters = [1, 2, 3].map(q => Math.round(((doneTimes[Math.ceil(chunks * q / 4) - 1] ?? t0) - t0) / 100) / 10)
    const allDone = doneTimes[chunks - 1] ?? Date.now()
    const record = JSON.parse(await import('node:fs/promises').then(async fs => await fs.readFile(join(root, 'n0', 'jobs', job.id, 'job.json'), 'utf8'))) as { chunks: unknown[], stats?: { leases: number, backupLeases: number, droppedResults: number } }
    timeline.push(...await hostTraceLines(root, t0, stamp))
    timeline.sort((a, b) => parseFloat(a) - parseFloat(b))
    await mkdir(values.out, { recursive: true })
    await writeFile(join(values.out, `scale-${k}-timeline.txt`), timeline.join('\n') + '\n')
    const m = first.metrics()
    const served = m.transfer.served
    const messages = served.claim + served.heartbeat + served.release + served.chunk + served.result + m.announcementsPublished
    const total = record.chunks.length
    const ideal = total * framesPerChunk * msPerFrame / 1000 / k
    const makespan = (allDone - t0) / 1000
    const encodedBy = first.status().jobs.find(j => j.id === job.id)?.encodedBy ?? {}
    return {
      nodes: k,
      chunks: total,
      peersThatEncoded: Object.keys(encodedBy).length,
      chunksPerPeerMin: Math.min(...Object.values(encodedBy)),
      chunksPerPeerMax: Math.max(...Object.values(encodedBy)),
      doneAtQuarters: quarters.map(String),
      idealSeconds: Math.round(ideal * 100) / 100,
      makespanSeconds: Math.round(makespan * 100) / 100,
      makespanOverIdeal: Math.round(makespan / ideal * 1000) / 1000,
      addSeconds: Math.round((added - t0) / 10) / 100,
      firstLeaseSeconds: Math.round((firstLease - t0) / 10) / 100,
      splitSeconds: Math.round((splitDone - t0) / 10) / 100,
      unplannedDuplicates: (record.stats?.leases ?? 0) - total,
      backupLeases: record.stats?.backupLeases ?? 0,
      droppedResults: record.stats?.droppedResults ?? 0,
      messagesPerChunk: Math.round(messages / total * 100) / 100,
      claimsPerChunk: Math.round(served.claim / total * 100) / 100,
      heartbeatsPerChunk: Math.round(served.heartbeat / total * 100) / 100,
      announcementsPerChunk: Math.round(m.announcementsPublished / total * 100) / 100,
      leaseLosses
    }
  } finally {
    for (const c of children) c.kill('SIGINT')
    await Promise.allSettled([...children, ...nodes.map(async n => await n.stop())])
    await rm(root, { recursive: true, force: true })
  }
}

async function main (): Promise<void> {
  const perNode = Number(values['chunks-per-node'])
  const fpc = Number(values['frames-per-chunk'])
  const msPerFrame = Number(values['ms-per-frame'])
  const dir = await mkdtemp(join(tmpdir(), 'swarm-scale-clip-'))
  const rows: Array<Record<string, number | string[]>> = []
  try {
    for (const k of values.nodes.split(',').map(Number)) {
      // The same work per node at every size, so the ideal makespan is the same and rows compare.
      const chunks = perNode * k
      const clip = join(dir, `scale-${k}.mkv`)
      // One keyframe every `fpc` frames and no B-frames: one chunk per GOP. One still colour: the
      // stand-in hands back one encode per chunk shape, and the originator's picture check compares
      // it with each chunk's own source frames, which only a picture that never changes matches.
      await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', 'color=c=0x6080a0:size=64x36:rate=25', '-frames:v', String(chunks * fpc),
        '-c:v', 'libx264', '-preset', 'ultrafast', '-g', String(fpc), '-keyint_min', String(fpc), '-sc_threshold', '0', '-bf', '0', '-pix_fmt', 'yuv420p', clip])
      console.log(`scale: ${k} nodes, ${chunks} chunks of ${fpc} frames, ${msPerFrame} ms per frame…`)
      const row = await runSwarm(k, clip, chunks, fpc, msPerFrame)
      console.log(JSON.stringify(row))
      rows.push(row)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  const cols = Object.keys(rows[0] ?? {}).filter(c => typeof rows[0]?.[c] === 'number')
  for (const r of rows) for (const line of r.leaseLosses as string[]) console.log(`${String(r.nodes)} nodes: ${line}`)
  console.log(['', ...cols].join('\t'))
  for (const r of rows) console.log(['', ...cols.map(c => String(r[c]))].join('\t'))
  await mkdir(values.out, { recursive: true })
  await import('node:fs/promises').then(async fs => { await fs.writeFile(join(values.out, 'scale.json'), JSON.stringify({ chunksPerNode: perNode, framesPerChunk: fpc, msPerFrame, rows }, null, 2) + '\n') })
  process.exit(0)
}

(values['host-nodes'] !== undefined ? hostNodes() : main()).catch((err) => { console.error(err); process.exit(1) })
