/**
 * Helpers for the fault-injection tests (test/faults/): real `swarm join` processes on 127.0.0.1,
 * read through their control API (the same JSON `swarm status --json` prints), small generated
 * clips, and a PATH without x264.
 */
import { execa } from 'execa'
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { chmod, mkdir, readFile, symlink, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { expect } from 'vitest'
import type { JobStatus, StatusJson } from '../../src/daemon/index.js'
import { probeMedia } from '../../src/media/index.js'
import type { JobRecord } from '../../src/jobs/index.js'
import { shortPeer } from '../../src/log/index.js'
import { runSwarm, startLocalNode, type LocalNode, type StartNodeOptions } from '../../scripts/local-swarm.js'
import { decodedFrameCount } from './media.js'
import { recordTally } from './tally.js'
import { ceiling, waitFor } from './wait.js'

export const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function control (home: string): Promise<{ url: string, token: string }> {
  return JSON.parse(await readFile(join(home, 'control.json'), 'utf8')) as { url: string, token: string }
}

async function api<T> (home: string, path: string): Promise<T> {
  const c = await control(home)
  const r = await fetch(`${c.url}${path}`, { headers: { authorization: `Bearer ${c.token}` }, signal: AbortSignal.timeout(10_000) })
  const body = await r.json() as T & { error?: string }
  if (!r.ok) throw new Error(`${path}: ${r.status} ${body.error ?? ''}`)
  return body
}

/** What `swarm status --json` prints, read straight from the node's control API (cheaper to poll than spawning the CLI). */
export async function nodeStatus (home: string): Promise<StatusJson> { return await api<StatusJson>(home, '/v1/status') }

/** What `swarm status JOB --json` prints: the job with its chunkList. */
export async function jobStatus (home: string, jobId: string): Promise<JobStatus> { return await api<JobStatus>(home, `/v1/jobs/${jobId}`) }

/** The originator's on-disk record of a job. */
export async function jobRecord (home: string, jobId: string): Promise<JobRecord> {
  return JSON.parse(await readFile(join(home, 'jobs', jobId, 'job.json'), 'utf8')) as JobRecord
}

/**
 * Waits until the job reaches done or failed on its originator and returns it (with chunkList).
 * `timeoutMs` is a ceiling (stretched on a busy machine): a test that checks how long a job took
 * asserts that itself.
 */
export async function waitForJobEnd (home: string, jobId: string, timeoutMs = 60_000): Promise<JobStatus> {
  return await waitFor(`job ${jobId.slice(0, 8)} to finish`, async () => {
    const j = await jobStatus(home, jobId)
    return j.state === 'done' || j.state === 'failed' ? j : undefined
  }, { timeoutMs: timeoutMs, everyMs: 200, retryErrors: true })
}

/** A small H.264 clip from lavfi: closed GOPs of exactly `keyint` frames, so the chunk plan is predictable (with `--chunk-gops 7`, chunks of 7 × keyint frames). */
export async function makeClip (path: string, o: { frames: number, keyint: number, size?: string, pattern?: string }): Promise<string> {
  if (existsSync(path)) return path
  await mkdir(join(path, '..'), { recursive: true })
  await execa('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-f', 'lavfi', '-i', `${o.pattern ?? 'testsrc2'}=size=${o.size ?? '160x90'}:rate=24`,
    '-frames:v', String(o.frames), '-c:v', 'libx264', '-preset', 'ultrafast', '-g', String(o.keyint), '-keyint_min', String(o.keyint),
    '-sc_threshold', '0', '-bf', '0', '-pix_fmt', 'yuv420p', path])
  return path
}

/** A directory to use as PATH that has ffmpeg, ffprobe and mkvmerge but no x264. */
export async function pathWithoutX264 (dir: string): Promise<string> {
  await mkdir(dir, { recursive: true })
  // prlimit (util-linux) starts every encode under the worker's memory budget.
  for (const tool of ['ffmpeg', 'ffprobe', 'mkvmerge', 'prlimit']) {
    const target = join(dir, tool)
    if (!existsSync(target)) await symlink(`/usr/bin/${tool}`, target)
  }
  return dir
}

export interface NodeSpec extends StartNodeOptions {
  name: string
}

/**
 * Starts nodes one after another, every one after the first bootstrapped to the first, and waits
 * until the first sees all the others (so a job added there is planned for all of them).
 */
export async function startSwarm (root: string, specs: NodeSpec[], track: LocalNode[]): Promise<LocalNode[]> {
  const started: LocalNode[] = []
  for (const spec of specs) {
    const { name, ...o } = spec
    const bootstrap = started[0] !== undefined ? [started[0].addresses[0] as string, ...(o.bootstrap ?? [])] : o.bootstrap
    const node = await startLocalNode(join(root, name), { timeoutMs: ceiling(30_000), ...o, ...(bootstrap !== undefined ? { bootstrap } : {}) })
    started.push(node)
    track.push(node)
  }
  const first = started[0] as LocalNode
  await waitFor('the first node to see every other', async () => (await nodeStatus(first.home)).peers.length >= started.length - 1, { timeoutMs: 20_000, retryErrors: true })
  // Gossipsub subscriptions travel just after the connection; the originator counts subscribers when it plans.
  await sleep(600)
  return started
}

/** True while the process has not exited. */
export function running (node: LocalNode): boolean {
  return node.proc.exitCode === null && node.proc.signalCode === null
}

/** Stops every node still running: resumes frozen ones, asks politely (SIGINT), then SIGKILL after a grace period. */
export async function stopNodes (nodes: LocalNode[]): Promise<void> {
  await Promise.allSettled(nodes.map(async (n) => {
    if (!running(n)) return
    try { if (n.proc.pid !== undefined) process.kill(n.proc.pid, 'SIGCONT') } catch { /* gone */ }
    const timer = setTimeout(() => { if (running(n)) n.proc.kill('SIGKILL') }, 10_000)
    await n.stop('SIGINT').catch(() => {})
    clearTimeout(timer)
  }))
}

/** Seconds for the tally: one decimal, two under a second. */
export const secs = (ms: number): string => `${(ms / 1000).toFixed(ms < 1000 ? 2 : 1)} s`

/** How logs and screens name a peer (src/log/ids.ts): the tests match what the node prints. */
export const short = shortPeer

/** How often the originator's verbose log says each chunk of a job was taken ("jobs: chunk JOB8#N done by PEER8"). */
export function chunksTakenInLog (log: string, jobId: string): Map<number, string[]> {
  const taken = new Map<number, string[]>()
  const re = new RegExp(`jobs: chunk ${jobId.slice(0, 8)}#(\\d+) done by (\\S+)`, 'g')
  for (const m of log.matchAll(re)) {
    const list = taken.get(Number(m[1])) ?? []
    list.push(m[2] as string)
    taken.set(Number(m[1]), list)
  }
  return taken
}

/** Leases the originator's verbose log shows it granted ("jobs: lease JOB8#N → PEER8", and backup copies "jobs: backup lease …"), in order, with their place in the log. */
export function leasesInLog (log: string, jobId: string): Array<{ chunk: number, holder: string, backup: boolean, at: number }> {
  const re = new RegExp(`jobs: (backup )?lease ${jobId.slice(0, 8)}#(\\d+) → (\\S+)`, 'g')
  return [...log.matchAll(re)].map(m => ({ chunk: Number(m[2]), holder: m[3] as string, backup: m[1] !== undefined, at: m.index }))
}

/**
 * The checks every fault scenario ends with: the job is done, every chunk has exactly one verified
 * result whose frames add up to the source, the per-peer counts match, and the merged output
 * holds exactly the source's frames (container count and a full decode).
 */
export async function expectCompleteJob (home: string, jobId: string, sourceFrames: number): Promise<{ record: JobRecord, status: JobStatus, frames: number }> {
  const status = await jobStatus(home, jobId)
  expect(status.error).toBeUndefined()
  expect(status.state).toBe('done')
  expect(status.chunks).toEqual({ total: status.chunks.total, open: 0, leased: 0, done: status.chunks.total })
  expect(Object.values(status.encodedBy).reduce((a, b) => a + b, 0)).toBe(status.chunks.total)
  // job.json is written just after the state changes in memory.
  const record = await waitFor('job.json to say done', async () => { const r = await jobRecord(home, jobId); return r.state === 'done' ? r : undefined }, { timeoutMs: 5000, everyMs: 50, retryErrors: true })
  expect(record.chunks.every(c => c.state === 'done' && c.result !== undefined)).toBe(true)
  expect(record.chunks.reduce((a, c) => a + c.frames, 0)).toBe(sourceFrames)
  expect(record.output).not.toBeNull()
  const output = record.output as string
  const [probed, decoded] = await Promise.all([probeMedia(output), decodedFrameCount(output)])
  expect(probed.video.frameCount).toBe(sourceFrames)
  expect(decoded).toBe(sourceFrames)
  return { record, status, frames: decoded }
}

/** With FAULTS_LOG_DIR set, writes every node's stderr there (one file per process) for a look after the run. */
export function dumpLogs (nodes: LocalNode[]): void {
  const dir = process.env.FAULTS_LOG_DIR
  if (dir === undefined || dir === '') return
  mkdirSync(dir, { recursive: true })
  nodes.forEach((n, i) => { writeFileSync(join(dir, `${basename(dirname(n.home))}-${basename(n.home)}-${i}-${short(n.peerId)}.log`), n.stderr()) })
}

/** recordTally for the Faults section; with FAULTS_LOG_DIR set the row is also appended to tally.jsonl there. */
export function tallyFault (fault: string, happened: string): void {
  recordTally({ section: 'Faults', fault, happened, lost: 'nothing' })
  const dir = process.env.FAULTS_LOG_DIR
  if (dir !== undefined && dir !== '') { mkdirSync(dir, { recursive: true }); appendFileSync(join(dir, 'tally.jsonl'), JSON.stringify({ fault, happened }) + '\n') }
}

/**
 * `swarm add FILE SETTINGS --output OUTPUT --chunk-gops 7 --json` on a node (without --wait); returns
 * the queued job. An explicit chunk size keeps the plan predictable: 7 GOPs a chunk, unless the
 * swarm has more peers than that gives chunks.
 */
export async function addJob (home: string, file: string, settings: string, output: string): Promise<JobStatus> {
  const r = await runSwarm(['add', '--home', home, file, settings, '--output', output, '--chunk-gops', '7', '--json'])
  expect(r.stderr).toBe('')
  expect(r.exitCode).toBe(0)
  return (JSON.parse(r.stdout) as { job: JobStatus }).job
}

/**
 * A directory holding an `x264` shim: a shell script (the lines given) that stands in for the real
 * encoder on a lying worker's PATH.
 */
export async function shimX264 (dir: string, lines: string[]): Promise<string> {
  await mkdir(dir, { recursive: true })
  const shim = join(dir, 'x264')
  await writeFile(shim, ['#!/bin/sh', ...lines, ''].join('\n'))
  await chmod(shim, 0o755)
  return dir
}
