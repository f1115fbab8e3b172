/**
 * A worker that lies with valid H.264 (issue item 6): its x264 is a shim on PATH that negates every
 * picture before encoding it, so its results have the right frame count, size and keyframes but
 * the wrong pictures. Real `swarm join` processes on 127.0.0.1: the originator O and an honest
 * worker B, and the liar L. Every result of L must be refused by the picture check, and the job
 * must still complete frame-exact with the source's pictures, encoded by O and B.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { probeMedia } from '../../src/media/index.js'
import { psnrAgainst } from '../helpers/media.js'
import type { LocalNode } from '../../scripts/local-swarm.js'
import { addJob, dumpLogs, expectCompleteJob, makeClip, shimX264, short, startSwarm, stopNodes, tallyFault, waitForJobEnd } from '../helpers/faults.js'

let root: string
const nodes: LocalNode[] = []

beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'swarm-faults-pictures-')) })
afterAll(async () => {
  await stopNodes(nodes)
  dumpLogs(nodes)
  await rm(root, { recursive: true, force: true })
})

/** A directory whose x264 negates its y4m input and hands it to the real x264 with the same arguments. */
async function lyingX264 (dir: string): Promise<string> {
  return await shimX264(dir, [
    '# A lying worker\'s encoder: every picture negated, everything else (count, size, settings) honest.',
    'ffmpeg -v error -nostdin -f yuv4mpegpipe -i - -vf negate -strict -1 -f yuv4mpegpipe - | exec /usr/bin/x264 "$@"'
  ])
}

describe('a worker whose encoder returns the wrong pictures', () => {
  it('has every result refused as bad-result by the picture check; the job completes with the source\'s pictures, encoded by honest peers', async () => {
    const clip = await makeClip(join(root, 'src', 'eight-chunks.mkv'), { frames: 8 * 21, keyint: 3 })
    const shimDir = await lyingX264(join(root, 'liar-bin'))
    const [o, b, l] = await startSwarm(root, [
      { name: 'o', extraArgs: ['--verbose'], env: { SWARM_TEST_ENCODER: 'delay:60' } },
      { name: 'b', extraArgs: ['--verbose'], env: { SWARM_TEST_ENCODER: 'delay:60' } },
      { name: 'l', extraArgs: ['--verbose'], env: { PATH: `${shimDir}:${process.env.PATH ?? ''}` } }
    ], nodes) as [LocalNode, LocalNode, LocalNode]
    const srcFrames = (await probeMedia(clip)).video.frameCount
    const job = await addJob(o.home, clip, '--preset ultrafast --crf 30', join(root, 'out', 'pictures.mkv'))
    const end = await waitForJobEnd(o.home, job.id, 120_000)
    expect(end.error).toBeUndefined()
    const { record } = await expectCompleteJob(o.home, job.id, srcFrames)

    // The liar worked and was refused every time, for its pictures.
    const refusals = o.stderr().split('\n').filter(line => line.includes(`refused result for ${job.id.slice(0, 8)}#`) && line.includes(`from ${short(l.peerId)}`))
    expect(refusals.length).toBeGreaterThan(0)
    // Every frame negated alike: no frame stands out of the chunk, the frames drawn for the own encode show it.
    for (const line of refusals) expect(line).toMatch(/frame \d+ is further from the source than an encode with the job's settings: an 8x8 block's (luma|U|V) is [\d.]+ levels off/)
    expect(record.chunks.filter(c => c.result?.encodedBy === l.peerId)).toEqual([])
    // Caught lying: banned from the job and the node after its first refused result (logged once).
    const bans = o.stderr().split('\n').filter(line => line.includes(`swarm: banned ${short(l.peerId)} for 1 h and from ${job.id.slice(0, 8)}`))
    expect(bans).toHaveLength(1)
    expect(bans[0]).toMatch(/failed verification: result for chunk \d+: frame \d+/)
    // B's honest results passed the same check (nothing of B's was refused).
    expect(o.stderr()).not.toContain(`from ${short(b.peerId)}:`)
    // The output shows the source, not the lie.
    const psnr = await psnrAgainst(record.output as string, clip)
    expect(psnr).toBeGreaterThan(30)
    const encodedBy = Object.entries(end.encodedBy).map(([p, n]) => `${p === o.peerId ? 'O' : p === b.peerId ? 'B' : 'L'} ${n}`).join(', ')
    tallyFault('worker returns negated pictures (valid H.264, right count and size)', `${refusals.length} result${refusals.length === 1 ? '' : 's'} of the liar refused by the picture check, the liar then banned from the job and the node; the ${record.chunks.length} chunks encoded by ${encodedBy}; output PSNR ${psnr.toFixed(1)} dB against the source`)
  })
})
