/**
 * `swarm add --encoder x265` through a real two-node swarm on 127.0.0.1: the chunks are encoded on
 * both nodes with x265, checked as HEVC and merged frame-exact with the source's per-frame times
 * and its audio, named `[x265]`; an HDR10 source keeps its mastering display and content light.
 */
import { copyFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobStatus } from '../../src/daemon/index.js'
import { runSwarm, type LocalNode } from '../../scripts/local-swarm.js'
import { ensureFixtures, ensureHdr10Fixture, HDR10_CONTENT_LIGHT, type Fixtures } from '../fixtures.js'
import { dumpLogs, jobRecord, startSwarm, stopNodes, waitForJobEnd } from '../helpers/faults.js'
import { identify, videoTimes } from '../helpers/media.js'

let root: string
let fixtures: Fixtures
const nodes: LocalNode[] = []

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'swarm-cli-encoders-'))
  fixtures = await ensureFixtures()
})
afterAll(async () => {
  await stopNodes(nodes)
  dumpLogs(nodes)
  await rm(root, { recursive: true, force: true })
})

async function addWith (home: string, file: string, settings: string, encoder: string, output?: string): Promise<JobStatus> {
  const r = await runSwarm(['add', '--home', home, file, settings, '--encoder', encoder, '--chunk-gops', '1', ...(output !== undefined ? ['--output', output] : []), '--json'])
  expect(r.stderr).toBe('')
  expect(r.exitCode).toBe(0)
  return (JSON.parse(r.stdout) as { job: JobStatus }).job
}

describe('swarm add --encoder x265 on a two-node swarm', () => {
  it('encodes the VFR source on both nodes as HEVC, frame-exact with its timestamps and audio, named [x265]', async () => {
    // One encode at a time on each, each chunk at least 30 ms a frame: both nodes take chunks however fast the encoder.
    const [o, w] = await startSwarm(root, [{ name: 'o', extraArgs: ['--slots', '1'], env: { SWARM_TEST_ENCODER: 'delay:30' } }, { name: 'w', extraArgs: ['--slots', '1'], env: { SWARM_TEST_ENCODER: 'delay:30' } }], nodes) as [LocalNode, LocalNode]
    // A copy, so the output the node names lands beside it, not among the shared fixtures.
    const source = join(root, 'vfr.mp4')
    await copyFile(fixtures.vfrMp4, source)
    const job = await addWith(o.home, source, '--preset ultrafast --crf 28', 'x265')
    expect(job.encoder).toBe('x265')
    const end = await waitForJobEnd(o.home, job.id, 180_000)
    expect(end.error).toBeUndefined()
    expect(end.state).toBe('done')
    expect(end.encoderPeers).toBe(1)
    const record = await jobRecord(o.home, job.id)
    expect(record.encoder).toBe('x265')
    expect(new Set(record.chunks.map(c => c.result?.encodedBy)).size).toBe(2)
    // Which build made each chunk: both nodes advertise Debian's x265.
    expect(record.chunks.every(c => /^3\.\d/.test(c.result?.encoderVersion ?? ''))).toBe(true)
    expect(Object.values(end.encoderVersions ?? {}).reduce((a, b) => a + b, 0)).toBe(record.chunks.length)
    expect((await runSwarm(['status', job.id.slice(0, 8), '--home', o.home])).stdout).toMatch(/made by x265 3\.\S+ \(\d+ chunks?\)/)
    const output = end.output as string
    expect(output).toBe(join(root, 'vfr [x265].mkv'))
    const tracks = (await identify(output)).tracks
    expect(tracks.map(t => [t.type, t.codec])).toEqual([['video', 'HEVC/H.265/MPEG-H'], ['audio', expect.stringMatching(/AAC/) as unknown as string]])
    const [got, want] = await Promise.all([videoTimes(output), videoTimes(fixtures.vfrMp4)])
    expect(got.length).toBe(want.length)
    // Relative to the first frame: the MP4's edit list moves its whole timeline, the merge keeps the spacing.
    for (const [i, t] of want.entries()) expect(Math.abs((got[i] as number) - (got[0] as number) - (t - (want[0] as number)))).toBeLessThan(0.002)
    expect(end.fidelity?.ok).toBe(true)
    // The source's keyframes are IDR pictures: every cut is proven clean by its first slice, no decode at the merge.
    expect(record.chunks.length).toBeGreaterThan(1)
    expect(end.fidelity?.checks.find(c => c.name === 'pictures at cuts')).toMatchObject({ ok: true, source: `${record.chunks.length - 1} cuts, each at an IDR or IRAP picture` })
    void w
  })

  it.each([['x265', '--preset ultrafast --crf 28 --output-depth 10'], ['svt-av1', '--preset 12 --crf 40 --input-depth 10']])('keeps an HDR10 source\'s mastering display and content light level with %s', async (encoder, settings) => {
    const o = nodes[0] as LocalNode
    const hdr = await ensureHdr10Fixture()
    const job = await addWith(o.home, hdr, settings, encoder, join(root, 'out', `hdr10-${encoder}.mkv`))
    const end = await waitForJobEnd(o.home, job.id, 180_000)
    expect(end.error).toBeUndefined()
    expect(end.state).toBe('done')
    const { stdout } = await execa('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-read_intervals', '%+#1', '-show_frames', '-of', 'json', end.output as string])
    const frame = (JSON.parse(stdout) as { frames: Array<{ pix_fmt: string, color_transfer: string, color_primaries: string, side_data_list?: Array<Record<string, unknown>> }> }).frames[0]
    expect([frame?.pix_fmt, frame?.color_transfer, frame?.color_primaries]).toEqual(['yuv420p10le', 'smpte2084', 'bt2020'])
    const side = frame?.side_data_list ?? []
    expect(side.some(s => s.side_data_type === 'Mastering display metadata')).toBe(true)
    const light = side.find(s => s.side_data_type === 'Content light level metadata')
    expect([light?.max_content, light?.max_average].join(',')).toBe(HDR10_CONTENT_LIGHT)
  })

  for (const [encoder, settings] of [['svt-av1', '--preset 12 --crf 40'], ['aomenc', '--cpu-used=6 --end-usage=q --cq-level=40']] as const) {
    it(`encodes it with --encoder ${encoder} on both nodes as AV1, frame-exact with its timestamps and audio, named [AV1]`, async () => {
      const [o] = nodes as [LocalNode]
      const source = join(root, `vfr-${encoder}.mp4`)
      await copyFile(fixtures.vfrMp4, source)
      const job = await addWith(o.home, source, settings, encoder)
      const end = await waitForJobEnd(o.home, job.id, 180_000)
      expect(end.error).toBeUndefined()
      expect([end.state, end.encoder]).toEqual(['done', encoder])
      const record = await jobRecord(o.home, job.id)
      expect(new Set(record.chunks.map(c => c.result?.encodedBy)).size).toBe(2)
      expect(end.output).toBe(join(root, `vfr-${encoder} [AV1].mkv`))
      const tracks = (await identify(end.output as string)).tracks
      expect(tracks.map(t => [t.type, t.codec])).toEqual([['video', 'AV1'], ['audio', expect.stringMatching(/AAC/) as unknown as string]])
      const [got, want] = await Promise.all([videoTimes(end.output as string), videoTimes(fixtures.vfrMp4)])
      expect(got.length).toBe(want.length)
      for (const [i, t] of want.entries()) expect(Math.abs((got[i] as number) - (got[0] as number) - (t - (want[0] as number)))).toBeLessThan(0.002)
      expect(end.fidelity?.ok).toBe(true)
    })
  }
})
