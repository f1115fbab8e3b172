/**
 * Real-world quirks through a real swarm (two `swarm join` processes on 127.0.0.1): a TS that
 * starts at 11.4 s with audio 0.4 s after the video, a BT.709 MP4 with a 16:15 SAR and two audio
 * languages, an open-GOP 10-bit MKV with fonts and chapters, a VFR MP4 with edit lists, a truncated
 * MKV, a TS with CEA-608 captions in its video, a screen recording at 243090000/8111111 fps (its
 * segments used to be refused by every peer), and the same content added again under another name. Every output must pass the fidelity
 * check, recorded in the job, with chunks encoded on both nodes.
 */
import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobStatus } from '../../src/daemon/index.js'
import { probeMedia } from '../../src/media/index.js'
import type { LocalNode } from '../../scripts/local-swarm.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { dumpLogs, jobStatus, startSwarm, stopNodes, waitForJobEnd } from '../helpers/faults.js'
import { http } from '../helpers/http.js'
import { truncatedCopy } from '../helpers/media.js'

let fx: Fixtures
let root: string
const nodes: LocalNode[] = []
let o: LocalNode
let token: string

beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-fidelity-swarm-'))
  // Chunks of these small clips encode in a few ms: without a per-frame wait (then the real x264)
  // the originator can finish every chunk before the other node's first claim lands.
  const env = { SWARM_TEST_ENCODER: 'delay:30' }
  const started = await startSwarm(root, [{ name: 'o', env }, { name: 'a', env }], nodes)
  o = started[0] as LocalNode
  token = (JSON.parse(await readFile(join(o.home, 'control.json'), 'utf8')) as { token: string }).token
})
afterAll(async () => {
  await stopNodes(nodes)
  dumpLogs(nodes)
  await rm(root, { recursive: true, force: true })
})

/** POST /v1/jobs as `swarm add` does; returns the status code and the answer. */
async function add (file: string, extra: Record<string, unknown> = {}): Promise<{ status: number, body: { job?: JobStatus, existing?: boolean, error?: string } }> {
  return await http(`${o.controlUrl}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ file, settings: '--preset ultrafast --crf 30', chunkSeconds: 1, ...extra })
  })
}

async function encodeThroughSwarm (file: string, output: string, extra: Record<string, unknown> = {}): Promise<JobStatus> {
  const r = await add(file, { output, ...extra })
  expect(r.status, r.body.error).toBe(200)
  const end = await waitForJobEnd(o.home, (r.body.job as JobStatus).id, 90_000)
  expect(end.state, end.error).toBe('done')
  return end
}

describe('real-world sources through a two-node swarm', () => {
  it.each(['offsetTs', 'taggedMp4', 'openGop10bit', 'vfrMp4', 'captionsTs', 'oddRateMp4'] as const)('%s: done, every fidelity check passed, chunks from both nodes', async (name) => {
    const end = await encodeThroughSwarm(fx[name], join(root, 'out', `${name}.mkv`))
    expect(end.fidelity?.ok).toBe(true)
    expect(end.fidelity?.checks.filter(c => !c.ok)).toEqual([])
    expect(end.fidelity?.checks.map(c => c.name)).toEqual(expect.arrayContaining(['video frames', 'video timestamps', 'tracks', 'colour and aspect', 'chapters', 'attachments']))
    expect(Object.keys(end.encodedBy).length, JSON.stringify(end.encodedBy)).toBe(2)
    if (name === 'captionsTs') {
      expect(end.fidelity?.checks.find(c => c.name === 'closed captions')?.ok).toBe(true)
      expect((await probeMedia(end.output as string)).streams.some(s => s.type === 'subtitle')).toBe(true)
    }
    if (name === 'taggedMp4') {
      // Every colour field compared: what the originator carried over from the source is not "set by the settings".
      expect(end.fidelity?.checks.find(c => c.name === 'colour and aspect')).toMatchObject({ ok: true, source: expect.stringContaining('primaries bt709') })
      expect(end.fidelity?.checks.find(c => c.name === 'colour and aspect')?.detail).toBeUndefined()
      const out = await probeMedia(end.output as string)
      expect(out.video.colour).toEqual({ range: 'tv', primaries: 'bt709', transfer: 'bt709', matrix: 'bt709', chromaLocation: 'left', sar: '16:15' })
    }
  })

  it('refuses a truncated MKV, saying both numbers, and encodes what is there when told to (--allow-damaged), recording the damage', async () => {
    const whole = join(root, 'src', 'whole.mkv')
    await mkdir(join(root, 'src'), { recursive: true })
    await execa('mkvmerge', ['-q', '-o', whole, fx.taggedMp4])
    const half = await truncatedCopy(whole, 0.5, join(root, 'src', 'half.mkv'))
    const refused = await add(half, { output: join(root, 'out', 'half.mkv') })
    expect(refused.status).toBe(400)
    expect(refused.body.error).toMatch(/says it lasts 3\.\d+ s but its packets end at \d\.\d+ s.*--allow-damaged/)
    const end = await encodeThroughSwarm(half, join(root, 'out', 'half.mkv'), { allowDamaged: true })
    expect(end.damage).toMatch(/looks truncated/)
    expect(end.fidelity?.ok).toBe(true)
  })

  it('a byte-identical copy under another name, or another --output, gets its own output; a moved-away output is made again', async () => {
    const first = await encodeThroughSwarm(fx.taggedMp4, join(root, 'out', 'first.mkv'))
    // Another output for the same content and settings: the earlier one is copied there.
    const again = await add(fx.taggedMp4, { output: join(root, 'out', 'second.mkv') })
    expect(again.body.existing).toBe(true)
    const second = await waitForJobEnd(o.home, first.id, 30_000)
    expect(second.output).toBe(join(root, 'out', 'second.mkv'))
    expect(existsSync(join(root, 'out', 'second.mkv'))).toBe(true)
    // A copy under another name, no --output: beside the copy, under the copy's name.
    const copy = join(root, 'src', 'Copy of tagged.mp4')
    await copyFile(fx.taggedMp4, copy)
    const third = await add(copy)
    expect(third.body.existing).toBe(true)
    expect((await jobStatus(o.home, first.id)).output).toBe(join(root, 'src', 'Copy of tagged [x264].mkv'))
    expect(existsSync(join(root, 'src', 'Copy of tagged [x264].mkv'))).toBe(true)
    // The output moved away: adding again encodes again, and the output exists when it says done.
    await rm(join(root, 'src', 'Copy of tagged [x264].mkv'))
    const fourth = await add(copy)
    expect(fourth.body.existing).toBe(true)
    await new Promise(resolve => setTimeout(resolve, 200))
    const end = await waitForJobEnd(o.home, first.id, 90_000)
    expect(end.state).toBe('done')
    expect(end.output).toBe(join(root, 'src', 'Copy of tagged [x264].mkv'))
    expect(existsSync(end.output as string)).toBe(true)
    expect(end.fidelity?.ok).toBe(true)
  })
})
