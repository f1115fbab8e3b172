/**
 * A worker that returns the right pictures in the wrong format: its x264 is a shim on PATH that
 * adds `--output-csp i444 --output-depth 10`, so every result is High 4:4:4 10-bit with the right
 * frame count, size, keyframes and pictures. Merged between honest chunks it gives a file that
 * announces one format and decodes as another midway. Real `swarm join` processes on 127.0.0.1:
 * the originator O, an honest worker B and the liar L. Every result of L must be refused for its
 * structure, and the job must complete in one format, encoded by O and B.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { probeMedia } from '../../src/media/index.js'
import type { LocalNode } from '../../scripts/local-swarm.js'
import { addJob, dumpLogs, expectCompleteJob, makeClip, shimX264, short, startSwarm, stopNodes, tallyFault, waitForJobEnd } from '../helpers/faults.js'
import { streamSummary } from '../helpers/media.js'

let root: string
const nodes: LocalNode[] = []

beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'swarm-faults-structure-')) })
afterAll(async () => {
  await stopNodes(nodes)
  dumpLogs(nodes)
  await rm(root, { recursive: true, force: true })
})

/** A directory whose x264 encodes honestly, but as High 4:4:4 at 10 bits. */
async function otherFormatX264 (dir: string): Promise<string> {
  return await shimX264(dir, [
    '# A worker\'s encoder that keeps the pictures and changes the format: 4:4:4, 10 bits.',
    'exec /usr/bin/x264 --output-csp i444 --output-depth 10 "$@"'
  ])
}

describe('a worker whose results are another format (High 4:4:4 10-bit for a 4:2:0 8-bit job)', () => {
  it('has every result refused for its structure; the output is one format, encoded by honest peers', async () => {
    const clip = await makeClip(join(root, 'src', 'eight-chunks.mkv'), { frames: 8 * 21, keyint: 3 })
    const shimDir = await otherFormatX264(join(root, 'liar-bin'))
    const [o, b, l] = await startSwarm(root, [
      { name: 'o', extraArgs: ['--verbose'], env: { SWARM_TEST_ENCODER: 'delay:60' } },
      { name: 'b', extraArgs: ['--verbose'], env: { SWARM_TEST_ENCODER: 'delay:60' } },
      { name: 'l', extraArgs: ['--verbose'], env: { PATH: `${shimDir}:${process.env.PATH ?? ''}` } }
    ], nodes) as [LocalNode, LocalNode, LocalNode]
    const srcFrames = (await probeMedia(clip)).video.frameCount
    const job = await addJob(o.home, clip, '--preset ultrafast --crf 30', join(root, 'out', 'structure.mkv'))
    const end = await waitForJobEnd(o.home, job.id, 120_000)
    expect(end.error).toBeUndefined()
    const { record } = await expectCompleteJob(o.home, job.id, srcFrames)

    const refusals = o.stderr().split('\n').filter(line => line.includes(`refused result for ${job.id.slice(0, 8)}#`) && line.includes(`from ${short(l.peerId)}`))
    expect(refusals.length).toBeGreaterThan(0)
    for (const line of refusals) expect(line).toMatch(/is not what this job's encoder writes: profile_idc 244, expected (66|77|100); chroma format 3, expected 1; bit depth 10, expected 8/)
    expect(record.chunks.filter(c => c.result?.encodedBy === l.peerId)).toEqual([])
    expect(o.stderr()).not.toContain(`from ${short(b.peerId)}:`)
    // One format throughout: what the output announces is what every chunk is.
    const video = (await streamSummary(record.output as string)).find(s => s.codec_type === 'video')
    expect(video?.pix_fmt).toBe('yuv420p')
    expect(video?.profile).not.toMatch(/4:4:4/)
    tallyFault('worker returns the right pictures as High 4:4:4 10-bit (a format the job does not use)', `${refusals.length} result${refusals.length === 1 ? '' : 's'} of the liar refused by the structure check; output High 4:2:0 8-bit throughout`)
  })
})
