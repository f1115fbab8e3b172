/**
 * An originator under attack, for the hostile-peer tests: an in-process daemon with a job of its
 * own whose own worker (one slot) holds its first chunk at a gate, so the job's other chunks stay
 * open for the attackers until the test opens the gate. After that its worker encodes for real.
 * The job is cut one GOP a chunk (the fixtures' 5-10 chunks), whatever the planner's tail would
 * make of it for the swarm's size.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { expect } from 'vitest'
import { startDaemon, type Daemon, type DaemonOptions, type JobStatus } from '../../src/daemon/index.js'
import { encodeChunk, type EncodeChunkOptions } from '../../src/media/index.js'
import { http } from './http.js'
import { waitFor } from './wait.js'

export interface GatedOriginator {
  A: Daemon
  home: string
  jobId: string
  job: () => Promise<JobStatus>
  chunks: () => Promise<NonNullable<JobStatus['chunkList']>>
  /** Lets A's own worker encode. */
  open: () => void
}

/** Starts A in `home`, adds `file` with `settings`, and returns once it is split with A's worker holding one chunk. */
export async function gatedOriginator (home: string, file: string, settings: string, extra: Partial<DaemonOptions> = {}): Promise<GatedOriginator> {
  let open: () => void = () => {}
  const gate = new Promise<void>(resolve => { open = resolve })
  const encoder = async (o: EncodeChunkOptions): ReturnType<typeof encodeChunk> => {
    await Promise.race([gate, new Promise((_resolve, reject) => { o.signal?.addEventListener('abort', () => { reject(new Error('aborted')) }) })])
    return await encodeChunk(o)
  }
  const A = await startDaemon({ home, listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, bootstrap: [], slots: 1, plan: { gopsPerChunk: 1 }, encoder, ...extra })
  const token = (JSON.parse(await readFile(join(home, 'control.json'), 'utf8')) as { token: string }).token
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
  const added = await http(`${A.controlUrl}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify({ file, settings, output: join(home, 'out.mkv'), gopsPerChunk: 1 }) })
  expect(added.status).toBe(200)
  const jobId = (added.body.job as JobStatus).id
  const job = async (): Promise<JobStatus> => (await http(`${A.controlUrl}/v1/jobs/${jobId}`, { headers })).body as JobStatus
  const chunks = async (): Promise<NonNullable<JobStatus['chunkList']>> => (await job()).chunkList ?? []
  await waitFor('the job to be split with A holding one chunk', async () => {
    const j = await job()
    const list = j.chunkList ?? []
    return j.state === 'encoding' && list.filter(c => c.state === 'leased').length === 1 && list.filter(c => c.state === 'open').length >= 4
  }, { timeoutMs: 120_000, everyMs: 50 })
  return { A, home, jobId, job, chunks, open }
}
