/**
 * The picture check on another codec: a worker whose x265 negates every picture (count, size,
 * settings and format honest) in a real two-node swarm on 127.0.0.1 with an x265 job. Its results
 * must be refused as bad-result, it must be banned, and the job must complete with the source's
 * pictures, encoded by the originator.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobStatus } from '../../src/daemon/index.js'
import { runSwarm, type LocalNode } from '../../scripts/local-swarm.js'
import { ensureFixtures } from '../fixtures.js'
import { dumpLogs, expectCompleteJob, nodeStatus, short, startSwarm, stopNodes, tallyFault, waitForJobEnd } from '../helpers/faults.js'
import { waitFor } from '../helpers/wait.js'
import { probeMedia } from '../../src/media/index.js'

let root: string
const nodes: LocalNode[] = []

beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'swarm-faults-x265-')) })
afterAll(async () => {
  await stopNodes(nodes)
  dumpLogs(nodes)
  await rm(root, { recursive: true, force: true })
})

/** A directory whose x265 negates its y4m input and hands it to the real x265 with the same arguments. */
async function lyingX265 (dir: string): Promise<string> {
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'x265'), ['#!/bin/sh', '# A lying worker\'s encoder: every picture negated, everything else honest.',
    'if [ "$1" = --version ]; then exec /usr/bin/x265 --version; fi',
    'ffmpeg -v error -nostdin -f yuv4mpegpipe -i - -vf negate -strict -1 -f yuv4mpegpipe - | exec /usr/bin/x265 "$@"', ''].join('\n'))
  await chmod(join(dir, 'x265'), 0o755)
  return dir
}

describe('a worker whose x265 returns the wrong pictures', () => {
  it('has its results refused as bad-result by the picture check and is banned; the job completes with the source\'s pictures', async () => {
    const fixtures = await ensureFixtures()
    const liarBin = await lyingX265(join(root, 'liar-bin'))
    const [o, l] = await startSwarm(root, [
      // Slow enough that the liar takes chunks.
      { name: 'o', env: { SWARM_TEST_ENCODER: 'delay:80' } },
      { name: 'l', env: { PATH: `${liarBin}:${process.env.PATH ?? ''}` } }
    ], nodes) as [LocalNode, LocalNode]
    await waitFor('o to see the liar advertise x265', async () => (await nodeStatus(o.home)).peers.find(p => p.id === l.peerId)?.encoders?.some(e => e.encoder === 'x265'), { timeoutMs: 20_000, retryErrors: true })
    const r = await runSwarm(['add', '--home', o.home, fixtures.vfrMp4, '--preset ultrafast --crf 24', '--encoder', 'x265', '--chunk-gops', '1', '--output', join(root, 'out', 'liar.mkv'), '--json'])
    expect(r.exitCode).toBe(0)
    const job = (JSON.parse(r.stdout) as { job: JobStatus }).job
    const end = await waitForJobEnd(o.home, job.id, 180_000)
    expect(end.error).toBeUndefined()
    const { record } = await expectCompleteJob(o.home, job.id, (await probeMedia(fixtures.vfrMp4)).video.frameCount)
    expect(record.chunks.every(c => c.result?.encodedBy === o.peerId)).toBe(true)
    const refusals = o.stderr().split('\n').filter(line => line.includes(`refused result for ${job.id.slice(0, 8)}#`) && line.includes(`from ${short(l.peerId)}`))
    expect(refusals.length).toBeGreaterThan(0)
    // The first is refused by the picture check; any it had waiting then is refused unchecked, as a banned peer's.
    expect(refusals.some(line => /is further from the source|does not show the source's picture|show the source's (previous|next) frames/.test(line))).toBe(true)
    for (const line of refusals) expect(line).toMatch(/picture|frame|banned/)
    expect(o.stderr()).toContain(`banned ${short(l.peerId)}`)
    tallyFault('worker returns negated pictures for an x265 job', `${refusals.length} result${refusals.length === 1 ? '' : 's'} of the liar refused by the picture check on HEVC; liar banned, output the source's pictures`)
  })
})
