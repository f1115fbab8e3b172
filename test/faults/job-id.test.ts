/**
 * Any peer can compute a job's id (a hash of the source's content and the settings: anyone with
 * the same episode and settings has it) and announce it in its own name, first, with a huge
 * sequence number, every chunk "settled", and then withdraw it (issue 15 item 2). A is the real
 * originator, W a worker, both in-process daemons; H is a hostile libp2p node on the jobs topic.
 * The workers key every job by (originator, job id): H's announcements are H's job, and must not
 * keep A's own worker off A's job, shadow A's job on W, or stop W's encodes of it.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDaemon, type Daemon, type JobStatus } from '../../src/daemon/index.js'
import { encodeChunk, parseX264Settings, sha256File, type EncodeChunkOptions } from '../../src/media/index.js'
import { createSwarmNode, encodeFrame, JOBS_TOPIC, type JobAnnouncement, type SwarmNode } from '../../src/swarm/index.js'
import { HostileArbiter } from '../helpers/hostile-arbiter.js'
import { makeClip } from '../helpers/faults.js'
import { http } from '../helpers/http.js'
import { recordTally } from '../helpers/tally.js'
import { waitFor } from '../helpers/wait.js'

const SETTINGS = '--preset ultrafast --crf 30'
const CHUNKS = 8
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

let root: string
let A: Daemon
let W: Daemon
let H: SwarmNode
let hId: string
/** H's side: it refuses every claim on its copy (it only wants the real job stopped). */
const arbiter = new HostileArbiter()

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'swarm-job-id-'))
  // A's own encodes are a little slow, so W gets chunks of A's job too.
  const slowish = async (o: EncodeChunkOptions): ReturnType<typeof encodeChunk> => { await sleep(800); return await encodeChunk(o) }
  A = await startDaemon({ home: join(root, 'a'), listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, bootstrap: [], slots: 1, plan: { gopsPerChunk: 1 }, encoder: slowish })
  W = await startDaemon({ home: join(root, 'w'), listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, bootstrap: [A.addresses()[0] as string], slots: 1 })
  const hKey = await generateKeyPair('Ed25519')
  hId = peerIdFromPrivateKey(hKey).toString()
  H = await createSwarmNode({ privateKey: hKey, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [A.addresses()[0] as string, W.addresses()[0] as string], mdns: false, encode: { arbiter } })
  H.services.pubsub.subscribe(JOBS_TOPIC)
  await waitFor('H to see A and W on the jobs topic', () => {
    const subs = H.services.pubsub.getSubscribers(JOBS_TOPIC).map(p => p.toString())
    return subs.includes(A.peerId) && subs.includes(W.peerId)
  }, { timeoutMs: 20_000, everyMs: 50, retryErrors: true })
  await waitFor('A to see W', () => A.status().peers.some(p => p.id === W.peerId), { timeoutMs: 20_000, everyMs: 50 })
})

afterAll(async () => {
  await H?.stop()
  await W?.stop()
  await A?.stop()
  if (root !== undefined) await rm(root, { recursive: true, force: true })
})

describe('a peer that announces the real job\'s id in its own name', () => {
  it('first, with a huge seq and every chunk settled, then withdrawn: A\'s job still completes, encoded by A\'s own worker and by W', async () => {
    const source = await makeClip(join(root, 'src', 'episode.mkv'), { frames: CHUNKS * 12, keyint: 12 })
    // What H computes from the same file and settings: the job's id (see Originator.addJob).
    const jobId = createHash('sha256').update(`swarm-job/v1\n${await sha256File(source)}\n${parseX264Settings(SETTINGS).args.join('\u0000')}`).digest('hex')
    let seq = Number.MAX_SAFE_INTEGER - 1000
    const everything = Array.from({ length: CHUNKS }, (_, i) => i)
    const copy = (): JobAnnouncement => ({
      v: 1, type: 'job', jobId, originator: hId, seq: ++seq, state: 'encoding', name: 'episode.mkv', settings: SETTINGS,
      totalFrames: CHUNKS * 12, chunks: { total: CHUNKS, open: CHUNKS, leased: 0, done: 0 }, open: [[0, CHUNKS]], settled: everything,
      addrs: H.getMultiaddrs().map(a => a.toString().replace(`/p2p/${hId}`, ''))
    })
    await H.services.pubsub.publish(JOBS_TOPIC, encodeFrame(copy()))
    await waitFor('A and W to list H\'s copy', () => [A, W].every(n => n.status().jobs.some(j => j.id === jobId && j.originator === hId)), { timeoutMs: 10_000, everyMs: 50 })

    // Now the real originator adds the file.
    const c = JSON.parse(await readFile(join(root, 'a', 'control.json'), 'utf8')) as { url: string, token: string }
    const added = await http(`${c.url}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${c.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ file: source, settings: SETTINGS, output: join(root, 'out.mkv') }) })
    expect(added.status).toBe(200)
    expect((added.body.job as JobStatus).id).toBe(jobId)

    // H keeps saying every chunk is settled; once W encodes a chunk of A's job, H withdraws "the job".
    const nagging = setInterval(() => { void H.services.pubsub.publish(JOBS_TOPIC, encodeFrame(copy())).catch(() => {}) }, 300)
    let withdrawnWhileWEncoded = false
    try {
      await waitFor('W to work on a chunk of A\'s job', () => W.status().worker.active.some(t => t.originator === A.peerId && t.jobId === jobId), { timeoutMs: 60_000, everyMs: 20 })
      await H.services.pubsub.publish(JOBS_TOPIC, encodeFrame({ v: 1, type: 'gone', jobId, originator: hId, seq: ++seq }))
      withdrawnWhileWEncoded = true
      const job = await waitFor('A\'s job to finish', () => {
        const j = A.status().jobs.find(x => x.id === jobId && x.local)
        return j !== undefined && (j.state === 'done' || j.state === 'failed') ? j : undefined
      }, { timeoutMs: 120_000, everyMs: 100 })
      expect(job.error).toBeUndefined()
      expect(job.state).toBe('done')
      expect(job.encodedBy[A.peerId] ?? 0).toBeGreaterThan(0)
      expect(job.encodedBy[W.peerId] ?? 0).toBeGreaterThan(0)
      expect(Object.keys(job.encodedBy).sort()).toEqual([A.peerId, W.peerId].sort())
      // H's copy got claims (it is a job like any other to the workers) and never a result.
      expect(arbiter.callsFor(jobId, 'acceptResult')).toHaveLength(0)
      recordTally({
        section: 'Hostile input: pubsub',
        fault: 'a peer announces a job\'s id in its own name before the real originator adds it, with seq near 2^53 and every chunk "settled", repeats it every 300 ms, then withdraws it while a worker encodes the real job',
        happened: `the real job completed: ${job.encodedBy[A.peerId] ?? 0} chunks by the originator's own worker, ${job.encodedBy[W.peerId] ?? 0} by the other worker${withdrawnWhileWEncoded ? ', which kept encoding through the withdrawal' : ''}; the copy stayed the peer's own job`,
        lost: 'nothing'
      })
    } finally {
      clearInterval(nagging)
    }
  })
})
