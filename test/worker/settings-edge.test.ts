/**
 * The worker's edge for settings: what a segment's meta says is parsed once, when the meta arrives
 * (before the segment's bytes), and that parsed value is what the worker checks and encodes.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { parseX264Settings, type EncodeChunkOptions, type EncoderSettings } from '../../src/media/index.js'
import type { SegmentMeta } from '../../src/swarm/index.js'
import { Worker, type OriginatorLink } from '../../src/worker/index.js'
import { waitFor } from '../helpers/wait.js'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => { for (const c of cleanup.splice(0).reverse()) await c() })

const JOB_A = 'ab'.repeat(32)
const JOB_B = 'cd'.repeat(32)
const META: SegmentMeta = { frames: 10, selectFromTime: 0, settings: '--preset ultrafast', frameRate: { num: 25, den: 1 }, pixFmt: 'yuv420p', width: 64, height: 36 }

/** A worker whose originator serves each job's segment with the settings given for it, over a link that checks the header as the network's does. */
async function workerServing (tag: string, settingsOf: Record<string, string>) {
  const workDir = await mkdtemp(join(tmpdir(), `swarm-worker-${tag}-`))
  cleanup.push(async () => { await rm(workDir, { recursive: true, force: true }) })
  const claims: Array<{ jobId: string, chunk: number }> = []
  const releases: Array<{ jobId: string, chunk: number, reason: string }> = []
  const downloaded: string[] = []
  const encodedWith: EncoderSettings[] = []
  const link: OriginatorLink = {
    claim: async (jobId, chunk) => {
      claims.push({ jobId, chunk })
      return { ok: true, lease: { jobId, chunk, leaseId: `l${chunk}`, originator: 'origin', expiresAt: Date.now() + 30_000, issuedAt: Date.now() } }
    },
    heartbeat: async () => ({ ok: true, expiresAt: Date.now() + 30_000 }),
    release: async (lease, reason) => { releases.push({ jobId: lease.jobId, chunk: lease.chunk, reason }); return { ok: true } },
    fetchSegment: async (lease, dest, _signal, check) => {
      const meta = { ...META, settings: settingsOf[lease.jobId] as string }
      // The header comes before the bytes (swarm/service.ts): a refusal here downloads nothing.
      await check?.({ size: 7, meta })
      await mkdir(dirname(dest), { recursive: true })
      await writeFile(dest, 'segment')
      downloaded.push(dest)
      return { path: dest, owned: true, meta }
    },
    uploadResult: async () => ({ ok: true })
  }
  const encoder = async (o: EncodeChunkOptions): Promise<{ path: string, sizeBytes: number, frameCount: number, seconds: number }> => {
    encodedWith.push(o.settings)
    await writeFile(o.outputPath, 'h264')
    return { path: o.outputPath, sizeBytes: 4, frameCount: o.frameCount, seconds: 0 }
  }
  const worker = new Worker({ peerId: 'worker', slots: 1, workDir, linkFor: () => link, encoder, heartbeatMs: 200 })
  cleanup.push(async () => { await worker.stop() })
  worker.start()
  const announce = (jobId: string, open: number[]): void => { worker.updateJob({ jobId, originator: 'origin', settings: '--preset ultrafast', totalChunks: 4, open, seq: 1 }) }
  return { worker, claims, releases, downloaded, encodedWith, announce }
}

describe('a worker\'s settings edge', () => {
  it('encodes exactly the settings it parsed from the segment\'s meta (the effective ones), not the announced ones', async () => {
    // What an originator serves: the user's settings plus the source's colour (media/colour.ts).
    const served = '--preset ultrafast --crf 30 --range tv --colorprim bt709'
    const w = await workerServing('served', { [JOB_A]: served })
    w.announce(JOB_A, [0])
    const settings = await waitFor('the encode', () => w.encodedWith[0], { timeoutMs: 5000, everyMs: 20 })
    expect(settings.raw).toBe(served)
    expect(settings.args).toEqual(parseX264Settings(served).args)
    // A parsed value, frozen: nothing below the edge can change what was checked.
    expect(Object.isFrozen(settings)).toBe(true)
    expect(Object.isFrozen(settings.args)).toBe(true)
    expect(w.releases).toEqual([])
  })

  it('refuses a segment whose meta carries settings it does not allow before downloading it, names the option, and claims no more of that job', async () => {
    const target = join(tmpdir(), `swarm-pwned-${process.pid}.264`)
    const w = await workerServing('refused', { [JOB_A]: `--preset ultrafast --output ${target}`, [JOB_B]: '--preset ultrafast' })
    w.announce(JOB_A, [0, 1, 2, 3])
    const release = await waitFor('the chunk given back', () => w.releases[0], { timeoutMs: 5000, everyMs: 20 })
    expect(release).toMatchObject({ jobId: JOB_A, chunk: 0 })
    expect(release.reason).toContain('option --output is not allowed')
    expect(w.downloaded).toEqual([])
    expect(w.encodedWith).toEqual([])
    // Another job's chunk is claimed and encoded; none of the refused job's other open chunks is.
    w.announce(JOB_B, [0])
    await waitFor('the other job\'s encode', () => w.encodedWith.length === 1, { timeoutMs: 5000, everyMs: 20 })
    expect(w.claims.filter(c => c.jobId === JOB_A)).toEqual([{ jobId: JOB_A, chunk: 0 }])
    expect(existsSync(target)).toBe(false)
  })
})
