/**
 * Several originators at once (issue 4, "Faults" 6): three nodes each add a different file at the
 * same moment with `swarm add --wait`; every node works on every job, and all three finish.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobStatus } from '../../src/daemon/index.js'
import { probeMedia } from '../../src/media/index.js'
import { runSwarm, type LocalNode } from '../../scripts/local-swarm.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { chunksTakenInLog, dumpLogs, expectCompleteJob, makeClip, nodeStatus, secs, startSwarm, stopNodes, tallyFault } from '../helpers/faults.js'
import { waitFor } from '../helpers/wait.js'

let root: string
let fx: Fixtures
const nodes: LocalNode[] = []

beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-faults-many-'))
})
afterAll(async () => {
  await stopNodes(nodes)
  dumpLogs(nodes)
  await rm(root, { recursive: true, force: true })
})

describe('several jobs from several originators at once', () => {
  it('three nodes each add a different file at the same time: all three jobs finish frame-exact, with chunks encoded across the swarm', async () => {
    const clip = await makeClip(join(root, 'src', 'eight-chunks.mkv'), { frames: 8 * 21, keyint: 3 })
    // A little delay per frame so chunks overlap in time and every node has work from every originator.
    const env = { SWARM_TEST_ENCODER: 'delay:30' }
    const swarm = await startSwarm(root, ['n1', 'n2', 'n3'].map(name => ({ name, extraArgs: ['--lease-seconds', '4', '--verbose'], env })), nodes)
    // Gossip reaches every node through n1; wait until each node sees the other two before adding.
    for (const n of swarm) await waitFor(`${n.home} to see both other nodes`, async () => (await nodeStatus(n.home)).peers.length >= 2, { timeoutMs: 20_000, retryErrors: true })
    const work = [
      { node: swarm[0] as LocalNode, file: fx.openGop10bit, settings: '--preset ultrafast --crf 30' },
      { node: swarm[1] as LocalNode, file: fx.vfrMp4, settings: '--preset ultrafast --crf 30' },
      { node: swarm[2] as LocalNode, file: clip, settings: '--preset ultrafast --crf 30' }
    ]
    const started = Date.now()
    const results = await Promise.all(work.map(async (w, i) => {
      const r = await runSwarm(['add', '--home', w.node.home, w.file, w.settings, '--output', join(root, 'out', `job-${i}.mkv`), '--wait', '--json'])
      return { ...w, ...r, ms: Date.now() - started }
    }))
    const lines: string[] = []
    let foreign = 0
    for (const r of results) {
      expect(r.exitCode).toBe(0)
      const job = (JSON.parse(r.stdout) as { job: JobStatus }).job
      expect(job.state).toBe('done')
      const srcFrames = (await probeMedia(r.file)).video.frameCount
      const { record, frames } = await expectCompleteJob(r.node.home, job.id, srcFrames)
      for (const list of chunksTakenInLog(r.node.stderr(), job.id).values()) expect(list.length).toBe(1)
      const byOthers = record.chunks.filter(c => c.result?.encodedBy !== r.node.peerId).length
      foreign += byOthers
      const name = (p: string): string => `n${swarm.findIndex(n => n.peerId === p) + 1}`
      lines.push(`${name(r.node.peerId)}'s ${r.file.split('/').at(-1) ?? ''} (${record.chunks.length} chunks: ${Object.entries(job.encodedBy).map(([p, n]) => `${n} by ${name(p)}`).join(', ')}) done in ${secs(r.ms)}, ${frames}/${srcFrames} frames`)
    }
    // The swarm shared the work: chunks went to nodes other than their job's originator.
    expect(foreign).toBeGreaterThanOrEqual(3)

    tallyFault('three originators add a job each at the same moment',
      `${lines.join('; ')}; ${foreign} chunks encoded by a node other than their originator`)
  })
})
