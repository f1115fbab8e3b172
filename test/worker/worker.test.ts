import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { localLink } from '../../src/daemon/local-link.js'
import { Originator, type JobRecord } from '../../src/jobs/index.js'
import { probeMedia, type EncodeChunkOptions } from '../../src/media/index.js'
import { Worker, type JobView, type OriginatorLink } from '../../src/worker/index.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'

let fx: Fixtures
const cleanup: Array<() => Promise<void>> = []
beforeAll(async () => { fx = await ensureFixtures() })
afterEach(async () => { for (const c of cleanup.splice(0).reverse()) await c() })

async function waitFor (pred: () => boolean, ms = 90_000): Promise<void> {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise(r => setTimeout(r, 50))
  }
}

function viewOf (job: JobRecord): JobView {
  return { jobId: job.id, originator: job.originator, settings: job.settings, totalChunks: job.chunks.length, open: job.chunks.filter(c => c.state === 'open').map(c => c.index), seq: job.updatedAt }
}

async function setup (settings: string, workerOptions: { slots?: number, link?: (o: Originator) => OriginatorLink, encoder?: (o: EncodeChunkOptions) => Promise<never>, now?: () => number } = {}) {
  const home = await mkdtemp(join(tmpdir(), 'swarm-worker-'))
  const originator = new Originator({ home, peerId: 'self', plan: { gopsPerChunk: 1 } })
  await originator.start()
  const link = workerOptions.link?.(originator) ?? localLink(originator, 'self')
  const worker = new Worker({ peerId: 'self', slots: workerOptions.slots ?? 2, workDir: join(home, 'work'), linkFor: () => link, heartbeatMs: 200, log: process.env.DEBUG_WORKER !== undefined ? console.log : undefined, ...(workerOptions.encoder !== undefined ? { encoder: workerOptions.encoder } : {}), ...(workerOptions.now !== undefined ? { now: workerOptions.now } : {}) })
  worker.start()
  originator.on('changed', (id) => { const job = originator.get(id); if (job !== undefined) worker.updateJob(viewOf(job)) })
  cleanup.push(async () => { await worker.stop(); await originator.stop(); await rm(home, { recursive: true, force: true }) })
  return { home, originator, worker }
}

describe('Worker with its own node as originator', () => {
  it('encodes a whole job: every chunk claimed, encoded, verified, merged', async () => {
    const { originator, worker } = await setup('--preset ultrafast --crf 30')
    const { job } = await originator.addJob({ file: fx.openGop10bit, settings: '--preset ultrafast --crf 30', output: join(tmpdir(), `swarm-worker-out-${process.pid}.mkv`) })
    cleanup.push(async () => { await rm(job.output ?? '', { force: true }) })
    await waitFor(() => job.state === 'done' || job.state === 'failed')
    expect(job.error).toBeUndefined()
    expect(worker.completed).toHaveLength(job.chunks.length)
    expect(new Set(worker.completed.map(c => c.chunk)).size).toBe(job.chunks.length)
    const out = await probeMedia(job.output as string)
    expect(out.video.frameCount).toBe(240)
  })

  it('gives a chunk back with the reason when its encode fails, tries once more after a pause, then stops claiming that job', async () => {
    const failing = async (): Promise<never> => { const e = new Error('x264 [error]: could not open output file'); e.name = 'ToolError'; throw e }
    let offset = 0
    const now = (): number => Date.now() + offset
    const { originator, worker, home } = await setup('--preset ultrafast', { slots: 1, encoder: failing, now })
    const { job } = await originator.addJob({ file: fx.shortClip, settings: '--preset ultrafast' })
    await waitFor(() => (job.chunks[0]?.failures.length ?? 0) > 0)
    expect(job.chunks[0]?.failures[0]?.reason).toMatch(/could not open output file/)
    expect(job.chunks[0]?.state).toBe('open')
    // Backed off: no second try within the pause.
    await new Promise(r => setTimeout(r, 1000))
    expect(job.chunks[0]?.failures).toHaveLength(1)
    // After the pause it tries once more (a failure may be transient), fails again, and gives up on the job.
    offset += 11_000
    worker.updateJob(viewOf(job))
    await waitFor(() => (job.chunks[0]?.failures.length ?? 0) > 1 || job.state === 'failed')
    offset += 11_000
    worker.updateJob(viewOf(job))
    await new Promise(r => setTimeout(r, 1000))
    expect(job.chunks[0]?.failures).toHaveLength(2)
    // The only peer gave up twice: the job fails with the reason rather than waiting forever.
    expect(job.state).toBe('failed')
    expect(job.error).toMatch(/every peer \(1\) failed to encode this job twice.*could not open output file/)
    expect(worker.status().active).toEqual([])
    expect(await readdir(join(home, 'work')).catch(() => [])).toEqual([])
  })
})
