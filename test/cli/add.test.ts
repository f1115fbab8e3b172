import { existsSync } from 'node:fs'
import { execa } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { probeMedia } from '../../src/media/index.js'
import type { StatusJson } from '../../src/daemon/index.js'
import { runSwarm, startLocalNode, type LocalNode } from '../../scripts/local-swarm.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { decodedFrameCount, streamDurations, truncatedCopy, videoTimes } from '../helpers/media.js'

let root: string
let fx: Fixtures
const nodes: LocalNode[] = []

beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-add-'))
  const first = await startLocalNode(join(root, 'n1'))
  nodes.push(first)
  for (const name of ['n2', 'n3']) nodes.push(await startLocalNode(join(root, name), { bootstrap: [first.addresses[0] as string] }))
  // Wait until the first node sees both others, so the job is planned for three peers.
  for (let i = 0; i < 100; i++) {
    const s = JSON.parse((await runSwarm(['status', '--home', first.home, '--json'])).stdout) as StatusJson
    if (s.peers.length >= 2) break
    await new Promise(r => setTimeout(r, 200))
  }
})
afterAll(async () => {
  await Promise.allSettled(nodes.map(async n => await n.stop()))
  await rm(root, { recursive: true, force: true })
})

describe('swarm add', () => {
  it('encodes the 10-bit multi-track file across three nodes: frame-exact, every track kept, chunks from several peers', async () => {
    const output = join(root, 'out', 'swarm result.mkv')
    // Options of `swarm add` on both sides of SETTINGS, which starts with -- and needs no separator.
    const r = await runSwarm(['add', '--home', nodes[0]!.home, fx.openGop10bit, '--preset superfast --crf 26 --profile high', '--output', output, '--wait'])
    expect(r.stderr).not.toMatch(/failed/)
    expect(r.exitCode).toBe(0)
    expect(r.stdout.trim().split('\n').at(-1)).toBe(output)
    // --wait ends with the output compared against the source.
    expect(r.stderr).toMatch(/fidelity {2}ok: \d+ checks passed \(video frames, video timestamps, tracks, /)
    const jobId = /job ([0-9a-f]{64})/.exec(r.stdout)?.[1]
    expect(jobId).toBeDefined()

    const [src, out] = await Promise.all([probeMedia(fx.openGop10bit), probeMedia(output)])
    expect(out.video.frameCount).toBe(src.video.frameCount)
    expect(out.video.bitDepth).toBe(8)
    expect(out.streams.find(s => s.index === out.video.streamIndex)).toMatchObject({ codec: 'h264', profile: 'High' })
    for (const type of ['audio', 'subtitle', 'attachment'] as const) {
      expect(out.streams.filter(s => s.type === type).map(s => s.codec)).toEqual(src.streams.filter(s => s.type === type).map(s => s.codec))
    }
    expect(out.chapterCount).toBe(src.chapterCount)
    expect(await decodedFrameCount(output)).toBe(src.video.frameCount)
    const [srcDurations, outDurations] = await Promise.all([streamDurations(fx.openGop10bit), streamDurations(output)])
    expect(outDurations.length).toBe(srcDurations.length)
    outDurations.forEach((d, i) => { expect(Math.abs(d - srcDurations[i]!)).toBeLessThanOrEqual(1 / 24 + 1e-6) })
    const [srcTimes, outTimes] = await Promise.all([videoTimes(fx.openGop10bit), videoTimes(output)])
    expect(outTimes.length).toBe(srcTimes.length)
    outTimes.forEach((t, i) => { expect(Math.abs(t - srcTimes[i]!)).toBeLessThanOrEqual(0.001) })

    const status = JSON.parse((await runSwarm(['status', '--home', nodes[0]!.home, '--json'])).stdout) as StatusJson
    const job = status.jobs.find(j => j.id === jobId)
    expect(job).toMatchObject({ state: 'done', output, chunks: { done: job?.chunks.total, open: 0, leased: 0 } })
    const encoders = Object.keys(job?.encodedBy ?? {})
    expect(encoders.length).toBeGreaterThanOrEqual(2)
    for (const peer of encoders) expect(nodes.map(n => n.peerId)).toContain(peer)
    expect(Object.values(job?.encodedBy ?? {}).reduce((a, b) => a + b, 0)).toBe(job?.chunks.total)

    // The same file with the same settings again: the existing job, nothing new queued.
    const again = await runSwarm(['add', fx.openGop10bit, '--preset superfast --crf 26 --profile high', '--home', nodes[0]!.home, '--json'])
    expect(again.exitCode).toBe(0)
    expect(JSON.parse(again.stdout)).toMatchObject({ existing: true, job: { id: jobId, state: 'done' } })
  })

  it('refuses a missing file and bad settings locally with exit code 2 and queues nothing', async () => {
    const home = nodes[1]!.home
    const missing = await runSwarm(['add', join(root, 'nope.mkv'), '--crf 18', '--home', home])
    expect(missing.exitCode).toBe(2)
    expect(missing.stderr).toContain('nope.mkv: no such file')
    const bad = await runSwarm(['add', fx.shortClip, '--crf 18 --dump-yuv /tmp/x.yuv', '--home', home])
    expect(bad.exitCode).toBe(2)
    expect(bad.stderr).toMatch(/--dump-yuv/)
    expect(existsSync('/tmp/x.yuv')).toBe(false)
    const notVideo = await runSwarm(['add', join(fx.openGop10bit, '..', 'complete'), '--crf 18', '--home', home])
    expect(notVideo.exitCode).toBe(2)
    const s = JSON.parse((await runSwarm(['status', '--home', home, '--json'])).stdout) as StatusJson
    expect(s.jobs.filter(j => j.local)).toEqual([])
  })

  it('refuses a truncated file with both figures, and encodes what is there with --allow-damaged', async () => {
    const home = nodes[1]!.home
    const whole = join(root, 'whole.mkv')
    await execa('mkvmerge', ['-q', '-o', whole, fx.taggedMp4])
    const half = await truncatedCopy(whole, 0.5, join(root, 'half.mkv'))
    const refused = await runSwarm(['add', half, '--preset ultrafast', '--home', home, '--wait'])
    expect(refused.exitCode).toBe(2)
    expect(refused.stderr).toMatch(/half\.mkv: the container says it lasts 3\.\d+ s but its packets end at \d\.\d+ s.*--allow-damaged/)
    const allowed = await runSwarm(['add', half, '--preset ultrafast', '--home', home, '--wait', '--allow-damaged'])
    expect(allowed.exitCode, allowed.stderr).toBe(0)
    expect(allowed.stderr).toMatch(/fidelity {2}ok/)
    const status = await runSwarm(['status', '--home', home, allowed.stdout.match(/job ([0-9a-f]{12})/)?.[1] ?? 'x'])
    expect(status.stdout).toMatch(/damage {4}the container says it lasts/)
  })

  it('refuses out-of-range values with the range, says when settings are empty, and quotes a huge settings string briefly', async () => {
    const home = nodes[1]!.home
    const crf = await runSwarm(['add', fx.shortClip, '--crf 99', '--home', home])
    expect(crf.exitCode).toBe(2)
    expect(crf.stderr).toMatch(/value "99" of --crf must be between -12 and 51/)
    const huge = await runSwarm(['add', fx.shortClip, `--crf 18 ${'x'.repeat(3000)}`, '--home', home])
    expect(huge.exitCode).toBe(2)
    expect(huge.stderr.length).toBeLessThan(600)
    expect(huge.stderr).toMatch(/\(\d+ characters\)/)
    const empty = await runSwarm(['add', fx.shortClip, '', '--home', home, '--output', join(root, 'out', 'defaults.mkv')])
    expect(empty.exitCode, empty.stderr).toBe(0)
    expect(empty.stderr).toMatch(/settings are empty: x264's defaults are used/)
  })

  it('says to run swarm join when no node runs for the home', async () => {
    const r = await runSwarm(['add', fx.shortClip, '--crf 18', '--home', join(root, 'nobody')])
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(/no swarm node is running .* start one with: swarm join --home/)
  })

  it('takes --verify all or adaptive only, refused before the node is asked', async () => {
    const r = await runSwarm(['add', fx.shortClip, '--crf 18', '--verify', 'never', '--home', join(root, 'nobody')])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/swarm add: --verify is all or adaptive, not "never"/)
  })

  it('rejects an unknown option of its own instead of taking it as a third argument', async () => {
    const r = await runSwarm(['add', fx.shortClip, '--crf 18', '--wiat', '--home', nodes[1]!.home])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/unknown option --wiat/)
  })
})
