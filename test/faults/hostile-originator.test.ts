/**
 * A hostile originator against a real worker. W is an in-process daemon with the real encoder;
 * H is a libp2p node that announces a job of its own with clean settings, grants W's claims and
 * serves, as the chunk's "segment", a DASH or HLS manifest that names a video on W's own disk.
 * Left to guess the format, ffmpeg would follow the manifest, and W would encode its own private
 * file and upload it to H. W must refuse the segment before any decode and upload nothing.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { execa } from 'execa'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { shortPeer } from '../../src/log/index.js'
import { startDaemon, type Daemon } from '../../src/daemon/index.js'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createSwarmNode, encodeFrame, JOBS_TOPIC, type JobAnnouncement, type LeaseArbiter, type SegmentMeta, type SwarmNode } from '../../src/swarm/index.js'
import { HostileArbiter } from '../helpers/hostile-arbiter.js'
import { recordTally } from '../helpers/tally.js'
import { runSwarm } from '../../scripts/local-swarm.js'
import { waitFor } from '../helpers/wait.js'

const hex = (bytes: number): string => randomBytes(bytes).toString('hex')
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

let root: string
let W: Daemon
let H: SwarmNode
let hId: string
let secret: string
/** H's side of the lease protocol: grants W's claims on the armed jobs and serves the manifest. */
const arbiter = new HostileArbiter()
const logsW: string[] = []

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'swarm-hostile-originator-'))
  // W's private video, which H knows (or guesses) the path of.
  await mkdir(join(root, 'private'), { recursive: true })
  secret = join(root, 'private', 'home-video.mp4')
  await execa('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=24', '-frames:v', '48', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', secret])
  W = await startDaemon({ home: join(root, 'w'), listen: ['/ip4/127.0.0.1/tcp/0'], mdns: false, bootstrap: [], slots: 1, log: l => logsW.push(l) })
  const hKey = await generateKeyPair('Ed25519')
  hId = peerIdFromPrivateKey(hKey).toString()
  H = await createSwarmNode({ privateKey: hKey, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [W.addresses()[0] as string], mdns: false, encode: { arbiter } })
  H.services.pubsub.subscribe(JOBS_TOPIC)
  await waitFor('H to see W on the jobs topic', () => H.services.pubsub.getSubscribers(JOBS_TOPIC).some(p => p.toString() === W.peerId), { timeoutMs: 20_000, everyMs: 50, retryErrors: true })
})

/** Hostile originators made for one attack each: W bans them, and they are no use after. */
const throwaway: SwarmNode[] = []

/** A fresh hostile originator, connected to W and on the jobs topic. */
async function hostileOriginator (): Promise<{ node: SwarmNode, id: string }> {
  const key = await generateKeyPair('Ed25519')
  const node = await createSwarmNode({ privateKey: key, listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [W.addresses()[0] as string], mdns: false, encode: { arbiter } })
  throwaway.push(node)
  node.services.pubsub.subscribe(JOBS_TOPIC)
  await waitFor('the hostile originator to see W on the jobs topic', () => node.services.pubsub.getSubscribers(JOBS_TOPIC).some(p => p.toString() === W.peerId), { timeoutMs: 20_000, everyMs: 50, retryErrors: true })
  return { node, id: peerIdFromPrivateKey(key).toString() }
}

afterAll(async () => {
  await Promise.allSettled(throwaway.map(async n => { await n.stop() }))
  await H?.stop()
  await W?.stop()
  if (root !== undefined) await rm(root, { recursive: true, force: true })
})

const manifests: Record<string, (file: string) => string> = {
  DASH: (file) => `<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S" minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
 <Period><AdaptationSet mimeType="video/mp4"><Representation id="1" bandwidth="100000" codecs="avc1.64001e" width="160" height="90">
  <BaseURL>file://${file}</BaseURL>
 </Representation></AdaptationSet></Period>
</MPD>
`,
  HLS: (file) => `#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n${file}\n#EXT-X-ENDLIST\n`
}

/** M announces a 4-chunk job of 160x90 and serves `path` as its segment; resolves once W gives the chunk back. */
async function serveSegment (M: Awaited<ReturnType<typeof hostileOriginator>>['node'], mId: string, path: string, bytes: Buffer): Promise<{ id: string, meta: SegmentMeta, announcement: JobAnnouncement, release: NonNullable<ReturnType<typeof arbiter.callsFor>[number]> }> {
  const id = hex(32)
  const meta: SegmentMeta = { frames: 48, selectFromTime: 0, settings: '--preset ultrafast', frameRate: { num: 24, den: 1 }, pixFmt: 'yuv420p', width: 160, height: 90 }
  arbiter.armed.set(id, { path, size: bytes.length, sha256: sha256(bytes), meta })
  const announcement: JobAnnouncement = {
    v: 1, type: 'job', jobId: id, originator: mId, seq: Date.now(), state: 'encoding', name: 'free-encode.mkv', settings: '--preset ultrafast',
    totalFrames: 192, chunks: { total: 4, open: 4, leased: 0, done: 0 }, open: [[0, 4]],
    addrs: M.getMultiaddrs().map(a => a.toString().replace(`/p2p/${mId}`, ''))
  }
  await M.services.pubsub.publish(JOBS_TOPIC, encodeFrame(announcement))
  const release = await waitFor('W to give the chunk back', () => arbiter.callsFor(id, 'releaseLease')[0], { everyMs: 50, retryErrors: true })
  return { id, meta, announcement, release }
}

describe('a hostile originator serving a manifest as a segment', () => {
  it.each(Object.keys(manifests))('%s: W refuses the segment before decoding it, uploads nothing, and bans the originator: its next job is ignored', async (kind) => {
    const { node: M, id: mId } = await hostileOriginator()
    const bytes = Buffer.from((manifests[kind] as (f: string) => string)(secret))
    const path = join(root, `${kind}.mkv`)
    await writeFile(path, bytes)
    const { id, meta, announcement, release } = await serveSegment(M, mId, path, bytes)
    expect(arbiter.callsFor(id, 'segmentFor').length).toBeGreaterThanOrEqual(1)
    expect(release.peer).toBe(W.peerId)
    expect(release.reason).toMatch(/not a Matroska file/)
    // Caught lying: W banned M (logged once, with the reason), dropped its job and hung up on it.
    const ban = await waitFor('W to ban the originator', () => W.status().banned.find(b => b.id === mId), { timeoutMs: 5000, everyMs: 50 })
    expect(ban).toMatchObject({ active: true, jobs: [id] })
    expect(ban.reason).toMatch(/^served a segment that is not one: segment [0-9a-f]{8}\w*#\d+: not a Matroska file/)
    expect(logsW.filter(l => l.startsWith(`swarm: banned ${shortPeer(mId)}`))).toHaveLength(1)
    await waitFor('W to drop the job and the connection', () => W.status().jobs.every(j => j.originator !== mId) && !M.getPeers().some(p => p.toString() === W.peerId), { timeoutMs: 5000, everyMs: 50 })
    // M cannot connect to W any more; it tries again through H, which passes its gossip on to W:
    // the same job re-announced, and a new one. W's validator ignores both.
    const next = hex(32)
    arbiter.armed.set(next, { path, size: bytes.length, sha256: sha256(bytes), meta })
    await M.dial(H.getMultiaddrs()[0] as Multiaddr)
    await waitFor('M to see H on the jobs topic', () => M.services.pubsub.getSubscribers(JOBS_TOPIC).some(p => p.toString() === hId), { timeoutMs: 20_000, everyMs: 50 })
    const ignoredBefore = W.metrics().announcementsIgnored
    await M.services.pubsub.publish(JOBS_TOPIC, encodeFrame({ ...announcement, seq: announcement.seq + 1 }))
    await M.services.pubsub.publish(JOBS_TOPIC, encodeFrame({ ...announcement, jobId: next, seq: announcement.seq + 2 }))
    await waitFor('W to ignore both', () => W.metrics().announcementsIgnored >= ignoredBefore + 2, { timeoutMs: 10_000, everyMs: 50 })
    expect(W.status().jobs.find(j => j.id === next)).toBeUndefined()
    expect(arbiter.callsFor(next, 'requestLease')).toHaveLength(0)
    expect(arbiter.callsFor(next, 'segmentFor')).toHaveLength(0)
    const claims = arbiter.callsFor(id, 'requestLease').length
    expect(claims).toBeLessThanOrEqual(3)
    expect(arbiter.callsFor(id, 'resultSlot')).toHaveLength(0)
    expect(arbiter.callsFor(id, 'acceptResult')).toHaveLength(0)
    expect(W.status().worker.active.filter(t => t.jobId === id)).toEqual([])
    expect(await readdir(join(root, 'w', 'work', id)).catch(() => [])).toEqual([])
    // The private file is untouched and W kept running.
    expect(existsSync(secret)).toBe(true)
    expect((await readFile(secret)).length).toBeGreaterThan(0)
    expect(W.status().peerId).toBe(W.peerId)
    recordTally({
      section: 'Hostile input: segments',
      fault: `H announces a job and serves a ${kind} manifest naming a video on W's disk as the chunk's segment`,
      happened: `W claimed ${claims}, refused each segment before any decode ("${release.reason?.slice(0, 80) ?? ''}…") and gave it back; 0 uploads; W banned the originator for 1 h and ignored its next job (0 claims)`,
      lost: 'nothing'
    })
  })
})

/**
 * Issue 26, item 3: a stranger's bytes reached any of ffmpeg's ~200 decoders. Each segment is a
 * well-formed one-stream Matroska video of the declared size, in a codec no originator sends.
 */
describe('a hostile originator serving a segment in a codec no originator sends', () => {
  it.each(['gif', 'png', 'qtrle'])('%s: W refuses it by its codec before any decode, uploads nothing, and bans the originator', async (codec) => {
    const { node: M, id: mId } = await hostileOriginator()
    const path = join(root, `segment-${codec}.mkv`)
    await execa('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=24', '-frames:v', '48', '-c:v', codec, '-f', 'matroska', path])
    const bytes = await readFile(path)
    const { id, release } = await serveSegment(M, mId, path, bytes)
    // Before: accepted by the container check and decoded by ffmpeg's gif/png/qtrle decoder.
    // The Matroska codec id names it (V_QUICKTIME, V_MS/VFW/FOURCC): no decoder is opened to find out more.
    expect(release.reason).toMatch(/its video is \S+, not a codec an originator sends \(h264, hevc, vp8, vp9, av1\); refusing to decode it$/)
    const ban = await waitFor('W to ban the originator', () => W.status().banned.find(b => b.id === mId), { timeoutMs: 5000, everyMs: 50 })
    expect(ban).toMatchObject({ active: true, jobs: [id] })
    expect(arbiter.callsFor(id, 'resultSlot')).toHaveLength(0)
    expect(W.status().peerId).toBe(W.peerId)
    recordTally({
      section: 'Hostile input: segments',
      fault: `H announces a job and serves a one-stream Matroska ${codec} video of the declared size as the chunk's segment`,
      happened: `W refused it by its codec before any decode ("…${release.reason?.replace(/^.*: (its video is)/, '$1').slice(0, 60) ?? ''}…") and gave the chunk back (was: accepted by the container check and decoded); 0 uploads; W banned the originator for 1 h`,
      lost: 'nothing'
    })
  })
})

describe('a peer flooding the job topic', () => {
  it('a job declaring a million chunks in a few hundred bytes is rejected; a thousand jobs in one name leave W listing 16, and W keeps working', async () => {
    const rejectedBefore = W.metrics().announcementsRejected
    const base = (jobId: string, seq: number): JobAnnouncement => ({
      v: 1, type: 'job', jobId, originator: hId, seq, state: 'encoding', name: 'flood.mkv', settings: '--preset ultrafast',
      totalFrames: 1000, chunks: { total: 4, open: 4, leased: 0, done: 0 }, open: [[0, 4]], addrs: []
    })
    const huge = { ...base(hex(32), Date.now()), chunks: { total: 1_000_000, open: 1_000_000, leased: 0, done: 0 }, open: [[0, 1_000_000]] }
    expect(encodeFrame(huge).length).toBeLessThan(600)
    await H.services.pubsub.publish(JOBS_TOPIC, encodeFrame(huge))
    await waitFor('W to reject the million-chunk announcement', () => W.metrics().announcementsRejected > rejectedBefore, { timeoutMs: 10_000, everyMs: 50 })
    expect(W.status().jobs.find(j => j.id === huge.jobId)).toBeUndefined()
    // A thousand jobs in H's own name: W keeps the 16 it heard last.
    const started = Date.now()
    for (let n = 0; n < 1000; n++) await H.services.pubsub.publish(JOBS_TOPIC, encodeFrame(base(hex(32), Date.now() + n)))
    await waitFor('W to have heard the flood', () => W.status().jobs.filter(j => j.originator === hId).length >= 16, { timeoutMs: 20_000, everyMs: 100 })
    await new Promise(resolve => setTimeout(resolve, 1000))
    const listed = W.status().jobs.filter(j => j.originator === hId).length
    expect(listed).toBe(16)
    expect(W.status().peerId).toBe(W.peerId)
    recordTally({
      section: 'Hostile input: pubsub',
      fault: 'H announces a job declaring 1,000,000 chunks in under 600 bytes, then 1,000 jobs in its own name',
      happened: `the million-chunk announcement was rejected at the edge (jobs have at most 20,000 chunks); of the 1,000 jobs W kept the ${listed} heard last (16 per originator, 256 in all) and kept running (${((Date.now() - started) / 1000).toFixed(1)} s)`,
      lost: 'nothing'
    })
  })
})

describe('a job whose name and settings carry terminal escape sequences', () => {
  it('is listed, but swarm status prints the escapes as visible text, never as control characters', async () => {
    const id = hex(32)
    const name = 'free \x1b]0;pwned\x07\x1b[2J\x1b[31mencode\u202e.mkv'
    const announcement: JobAnnouncement = {
      v: 1, type: 'job', jobId: id, originator: hId, seq: Date.now(), state: 'encoding', name, settings: '--preset ultrafast \x1b[8m',
      totalFrames: 100, chunks: { total: 1, open: 0, leased: 0, done: 1 }, open: [], addrs: []
    }
    await H.services.pubsub.publish(JOBS_TOPIC, encodeFrame(announcement))
    await waitFor('W to list the job', () => W.status().jobs.find(j => j.id === id), { timeoutMs: 10_000, everyMs: 50 })
    const home = join(root, 'w')
    for (const args of [['status'], ['status', id.slice(0, 12)]]) {
      const r = await runSwarm([...args, '--home', home])
      expect(r.exitCode, r.stderr).toBe(0)
      expect(r.stdout).toContain('free \\u001b]0;pwned\\u0007')
      expect(r.stdout).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]/)
    }
    const json = await runSwarm(['status', '--home', home, '--json'])
    expect((JSON.parse(json.stdout) as { jobs: Array<{ id: string, file: string }> }).jobs.find(j => j.id === id)?.file).toBe(name)
    recordTally({
      section: 'Hostile input: pubsub',
      fault: 'H announces a job whose name and settings carry escape sequences (window title, clear screen, colours, a right-to-left override)',
      happened: 'W listed it; swarm status printed every control character as a visible \\uXXXX escape, and --json kept the name exact',
      lost: 'nothing'
    })
  })
})

