/**
 * Which encoders a node has: found at start, told to peers through identify, shown by status and
 * peers, and what a worker claims. Real `swarm join` processes on 127.0.0.1: the originator O has
 * x264; the worker W's PATH has an `x264` that does not run (as on a machine without it). W must
 * never claim a chunk of O's x264 job, and both nodes must say who has what.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { probeMedia } from '../../src/media/index.js'
import type { PeersJson } from '../../src/daemon/index.js'
import { runSwarm, type LocalNode } from '../../scripts/local-swarm.js'
import { addJob, dumpLogs, expectCompleteJob, jobStatus, makeClip, nodeStatus, shimX264, startSwarm, stopNodes, waitForJobEnd } from '../helpers/faults.js'

let root: string
const nodes: LocalNode[] = []

beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'swarm-encoders-')) })
afterAll(async () => {
  await stopNodes(nodes)
  dumpLogs(nodes)
  await rm(root, { recursive: true, force: true })
})

describe('a worker without the job\'s encoder', () => {
  it('never claims its chunks; the originator encodes them all, and status and peers say who has which encoder', async () => {
    const clip = await makeClip(join(root, 'src', 'four-chunks.mkv'), { frames: 4 * 21, keyint: 3 })
    const noX264 = await shimX264(join(root, 'no-x264'), ['echo "x264: cannot execute: no such file" >&2', 'exit 127'])
    const [o, w] = await startSwarm(root, [
      // Slow enough that W, were it to claim, would find chunks open.
      { name: 'o', extraArgs: ['--verbose'], env: { SWARM_TEST_ENCODER: 'delay:40' } },
      { name: 'w', extraArgs: ['--verbose'], env: { PATH: `${noX264}:${process.env.PATH ?? ''}` } }
    ], nodes) as [LocalNode, LocalNode]
    const frames = (await probeMedia(clip)).video.frameCount
    const job = await addJob(o.home, clip, '--preset ultrafast --crf 30', join(root, 'out', 'alone.mkv'))
    expect(job.encoder).toBe('x264')

    // While it encodes: O knows W has no encoder, and says this node encodes every chunk.
    const during = await nodeStatus(o.home)
    // What W advertises (the other encoders, where this machine has them), x264 not among them.
    const advertised = during.peers.find(p => p.id === w.peerId)?.encoders
    expect(advertised).toBeDefined()
    expect(advertised?.map(e => e.encoder)).not.toContain('x264')
    expect(during.jobs.find(j => j.id === job.id)?.encoderPeers).toBe(0)
    const text = await runSwarm(['status', '--home', o.home])
    expect(text.stdout).toMatch(/no connected peer advertises x264: this node encodes every chunk of this job/)

    const end = await waitForJobEnd(o.home, job.id, 120_000)
    expect(end.error).toBeUndefined()
    const { record } = await expectCompleteJob(o.home, job.id, frames)
    expect(record.chunks.every(c => c.result?.encodedBy === o.peerId)).toBe(true)
    expect(record.stats?.leases).toBe(record.chunks.length)
    expect(w.stderr()).toMatch(new RegExp(`not taking chunks of ${job.id.slice(0, 8)}.*this node has no x264 encoder \\(it has `))

    // W sees what O advertises: x264 and the version its binary printed.
    const peers = JSON.parse((await runSwarm(['peers', '--home', w.home, '--json'])).stdout) as PeersJson
    expect(peers.peers.find(p => p.id === o.peerId)?.encoders).toContainEqual({ encoder: 'x264', version: expect.stringMatching(/^0\.\d+\.\d+$/) as unknown as string })
    expect((await jobStatus(o.home, job.id)).encoder).toBe('x264')
  })

  it('swarm add refuses an encoder swarm does not know, naming the ones it does', async () => {
    const o = nodes[0] as LocalNode
    const r = await runSwarm(['add', '--home', o.home, join(root, 'src', 'four-chunks.mkv'), '--crf 30', '--encoder', 'vp9'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('--encoder vp9: not an encoder swarm knows; give one of x264, x265, svt-av1, aomenc')
  })
})
