import { readFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDaemon, type Daemon, type JobStatus } from '../../src/daemon/index.js'
import { encodeChunk, probeMedia, type EncodeChunkOptions } from '../../src/media/index.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { recordTally } from '../helpers/tally.js'
import { http } from '../helpers/http.js'
import { waitFor } from '../helpers/wait.js'

const CONTROL = 'Hostile input: control API'
const tally = (fault: string, happened: string): void => { recordTally({ section: CONTROL, fault, happened, lost: 'nothing' }) }

let root: string
let fx: Fixtures
beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-daemon-'))
})
afterAll(async () => { await rm(root, { recursive: true, force: true }) })

const loopback = { listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, bootstrap: [] as string[], slots: 1 }

describe('control API', () => {
  let daemon: Daemon
  let token: string
  beforeAll(async () => {
    daemon = await startDaemon({ home: join(root, 'control'), ...loopback })
    token = (JSON.parse(await readFile(join(root, 'control', 'control.json'), 'utf8')) as { token: string }).token
  })
  afterAll(async () => { await daemon.stop() })

  it('listens on 127.0.0.1 only', () => {
    expect(daemon.controlUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    tally('where the control API listens', `bound to loopback only (${daemon.controlUrl.replace(/:\d+$/, ':PORT')})`)
  })
  it('answers with the token', async () => {
    const r = await http(`${daemon.controlUrl}/v1/status`, { headers: { authorization: `Bearer ${token}` } })
    expect(r.status).toBe(200)
    expect(r.body.peerId).toBe(daemon.peerId)
  })
  it('refuses a request without a token or with a wrong one', async () => {
    expect((await http(`${daemon.controlUrl}/v1/status`)).status).toBe(401)
    const wrong = await http(`${daemon.controlUrl}/v1/status`, { headers: { authorization: `Bearer ${'0'.repeat(64)}` } })
    expect(wrong).toMatchObject({ status: 401, body: { kind: 'auth' } })
    tally('request without a token', 'refused with 401')
    tally('request with a wrong bearer token (64 zeros)', 'refused with 401, kind "auth"')
  })
  it('refuses a foreign Host or Origin even with the token (DNS rebinding, cross-site requests)', async () => {
    const host = await http(`${daemon.controlUrl}/v1/status`, { headers: { authorization: `Bearer ${token}`, host: 'evil.example:80' } })
    expect(host.status).toBe(403)
    const origin = await http(`${daemon.controlUrl}/v1/status`, { headers: { authorization: `Bearer ${token}`, origin: 'http://evil.example' } })
    expect(origin.status).toBe(403)
    tally('request with the right token but Host: evil.example (DNS rebinding)', 'refused with 403')
    tally('request with the right token but Origin: http://evil.example (cross-site request from a browser)', 'refused with 403')
  })
  it('refuses a job for a path that is not a video with kind "input", and an oversized body', async () => {
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
    const r = await http(`${daemon.controlUrl}/v1/jobs`, { method: 'POST', headers: auth, body: JSON.stringify({ file: join(root, 'none.mkv'), settings: '--crf 20' }) })
    expect(r).toMatchObject({ status: 400, body: { kind: 'input' } })
    const extra = await http(`${daemon.controlUrl}/v1/jobs`, { method: 'POST', headers: auth, body: JSON.stringify({ file: '/x', settings: '', shell: 'rm -rf /' }) })
    expect(extra).toMatchObject({ status: 400, body: { kind: 'input' } })
    const big = await http(`${daemon.controlUrl}/v1/jobs`, { method: 'POST', headers: auth, body: 'x'.repeat(100_000) }).catch(() => ({ status: 413 }))
    expect(big.status).toBe(413)
    tally('job request with an unknown field ("shell": "rm -rf /")', 'refused with 400, kind "input"')
    tally('job request with a 100 kB body', 'refused with 413 (or the connection closed on it)')
  })
  it('takes a job\'s verify as all or adaptive only; a node without a swarm key checks all by default, and adds an adaptive job with a warning', async () => {
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
    const bad = await http(`${daemon.controlUrl}/v1/jobs`, { method: 'POST', headers: auth, body: JSON.stringify({ file: fx.shortClip, settings: '--crf 20', verify: 'never' }) })
    expect(bad).toMatchObject({ status: 400, body: { kind: 'input', error: expect.stringMatching(/verify/) } })
    const plain = await http(`${daemon.controlUrl}/v1/jobs`, { method: 'POST', headers: auth, body: JSON.stringify({ file: fx.shortClip, settings: '--preset ultrafast --crf 40' }) })
    expect(plain).toMatchObject({ status: 200, body: { job: { verification: { mode: 'all' } } } })
    expect(plain.body.warning).toBeUndefined()
    const adaptive = await http(`${daemon.controlUrl}/v1/jobs`, { method: 'POST', headers: auth, body: JSON.stringify({ file: fx.shortClip, settings: '--preset ultrafast --crf 41', verify: 'adaptive' }) })
    expect(adaptive).toMatchObject({ status: 200, body: { job: { verification: { mode: 'adaptive', full: 0, structural: 0, own: 0 } } } })
    expect(adaptive.body.warning).toMatch(/^this node has no --swarm-key, and --verify adaptive trusts every peer that connects/)
    // The same job added again with a mode: its mode from then on.
    const again = await http(`${daemon.controlUrl}/v1/jobs`, { method: 'POST', headers: auth, body: JSON.stringify({ file: fx.shortClip, settings: '--preset ultrafast --crf 40', verify: 'adaptive' }) })
    expect(again).toMatchObject({ status: 200, body: { existing: true, job: { verification: { mode: 'adaptive' } } } })
    for (const r of [plain, adaptive]) expect((await http(`${daemon.controlUrl}/v1/jobs/${r.body.job.id as string}`, { method: 'DELETE', headers: auth })).status).toBe(200)
    tally('job request with verify: "never"', 'refused with 400, kind "input"')
  })
})

describe('restart', () => {
  it('resumes a job from its home without encoding a verified chunk again', async () => {
    const home = join(root, 'resume')
    const firstRun: string[] = []
    // First life: encodes two chunks for real, then stalls on the third until it is stopped.
    const stalling = async (o: EncodeChunkOptions) => {
      if (firstRun.length >= 2) {
        await new Promise<void>((_resolve, reject) => { o.signal?.addEventListener('abort', () => { reject(new Error('aborted')) }) })
      }
      firstRun.push(basename(o.segmentPath))
      return await encodeChunk(o)
    }
    const first = await startDaemon({ home, ...loopback, plan: { gopsPerChunk: 1 }, encoder: stalling })
    const output = join(root, 'resumed.mkv')
    const added = await postJson(first, home, '/v1/jobs', { file: fx.openGop10bit, settings: '--preset superfast --crf 28', output })
    const jobId = (added.job as JobStatus).id
    await waitFor('two verified chunks', () => { const j = first.status().jobs[0]; return j !== undefined && j.chunks.done >= 2 ? j : undefined }, { timeoutMs: 120_000 })
    // Status reports a chunk done a moment before job.json is written (the worker is answered only
    // after the write); the restart reads the file, so wait for it too.
    type Record = { chunks: Array<{ index: number, result?: { at: number, sha256: string } }> }
    const readRecord = async (): Promise<Record> => JSON.parse(await readFile(join(home, 'jobs', jobId, 'job.json'), 'utf8')) as Record
    let before = await readRecord()
    for (let i = 0; i < 100 && before.chunks.filter(c => c.result !== undefined).length < 2; i++) {
      await new Promise(r => setTimeout(r, 50))
      before = await readRecord()
    }
    const doneBefore = before.chunks.filter(c => c.result !== undefined)
    expect(doneBefore.length).toBeGreaterThanOrEqual(2)
    expect(doneBefore.length).toBeLessThan(before.chunks.length)
    await first.stop()

    const secondRun: string[] = []
    const second = await startDaemon({ home, ...loopback, plan: { gopsPerChunk: 1 }, encoder: async (o) => { secondRun.push(basename(o.segmentPath)); return await encodeChunk(o) } })
    expect(second.peerId).toBe(first.peerId)
    const done = await waitFor('the resumed job', () => second.status().jobs.find(j => j.id === jobId && (j.state === 'done' || j.state === 'failed')), { timeoutMs: 120_000 })
    await second.stop()
    expect(done.error).toBeUndefined()
    expect(done.state).toBe('done')
    // No chunk verified before the restart was encoded again.
    for (const c of doneBefore) expect(secondRun).not.toContain(`segment-${c.index}.mkv`)
    expect(secondRun.length).toBe(before.chunks.length - doneBefore.length)
    const after = JSON.parse(await readFile(join(home, 'jobs', jobId, 'job.json'), 'utf8')) as typeof before
    for (const c of doneBefore) expect(after.chunks[c.index]?.result).toEqual(c.result)
    expect((await probeMedia(output)).video.frameCount).toBe(240)
  })
})

async function postJson (d: Daemon, home: string, path: string, body: unknown): Promise<Record<string, unknown>> {
  const file = JSON.parse(await readFile(join(home, 'control.json'), 'utf8')) as { token: string }
  const r = await http(`${d.controlUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${file.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (r.status !== 200) throw new Error(JSON.stringify(r.body))
  return r.body
}
