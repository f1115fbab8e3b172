/**
 * The README's "Two or three PCs on a LAN" walkthrough, run as written on hosts in network
 * namespaces on one bridge (test/helpers/netns.ts): `swarm key generate swarm.key`, the key copied
 * to the others, `swarm join --swarm-key swarm.key` with every default (port 4010 on all
 * interfaces, mDNS on, no --bootstrap), `swarm peers`, then `swarm add FILE SETTINGS --wait`.
 * Each host has its own $HOME, so the default node home is used. The only addition is
 * SWARM_TEST_ENCODER=delay:MS (real x264 after a per-frame wait), so the job lasts long enough for
 * a host to join late and another to restart in the middle of it.
 */
import { execa } from 'execa'
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { JobStatus, PeersJson, StatusJson } from '../../src/daemon/index.js'
import { probeMedia } from '../../src/media/index.js'
import { makeClip } from '../helpers/faults.js'
import { waitFor } from '../helpers/wait.js'
import { decodedFrameCount } from '../helpers/media.js'
import { TestNetwork, type Host } from '../helpers/netns.js'
import { hostCli, type HostNode } from '../helpers/cli-hosts.js'

const ENCODER = 'delay:100'
let root: string
let net: TestNetwork

type LanNode = HostNode
const { swarm, join: joinSwarm, stop, status, peersOf, spawn } = hostCli(ENCODER)

const nodes: LanNode[] = []
let ann: Host, bob: Host, cat: Host, dan: Host, eve: Host

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'swarm-lan-'))
  // Not skipped without root: the helper throws and says why.
  net = await TestNetwork.create('lan')
  const lan = await net.addLan('home', '10.77.1.0/24')
  ann = await net.addHost('ann', [lan])
  bob = await net.addHost('bob', [lan])
  cat = await net.addHost('cat', [lan])
  dan = await net.addHost('dan', [lan])
  eve = await net.addHost('eve', [lan])
  for (const h of ['ann', 'bob', 'cat', 'dan', 'eve']) await mkdir(join(root, h), { recursive: true })
})

// The nodes' logs are printed when a test of the file failed: what to read first then.
let aTestFailed = false
afterEach((ctx) => { if (ctx.task.result?.state === 'fail') aTestFailed = true })

afterAll(async () => {
  await Promise.all(nodes.map(stop))
  if (aTestFailed) for (const n of nodes) if (n.stderr() !== '') console.log(`---- ${n.host.name} (${n.peerId.slice(-8)}) ----\n${n.stderr().slice(-6000)}`)
  await net?.destroy()
  await rm(root, { recursive: true, force: true })
})

describe('the README LAN walkthrough, on hosts in network namespaces', () => {
  it('three hosts with the key find each other by mDNS and share a job; a late joiner and a restarted host get chunks; a host without the key never connects', async () => {
    const dir = (h: Host): string => join(root, h.name)
    // Step 3: make the key on ann, copy it to bob, cat and dan (eve never gets it).
    const key = await swarm(ann, dir(ann), ['key', 'generate', 'swarm.key'])
    expect(key.exitCode, key.stderr).toBe(0)
    for (const h of [bob, cat, dan]) await copyFile(join(dir(ann), 'swarm.key'), join(dir(h), 'swarm.key'))

    // Step 4: swarm join --swarm-key swarm.key on every PC, every other default as it is.
    const [a, b, c] = await Promise.all([ann, bob, cat].map(async h => await joinSwarm(h, dir(h), ['--swarm-key', 'swarm.key'])))
    nodes.push(a as LanNode, b as LanNode, c as LanNode)
    const e = await joinSwarm(eve, dir(eve), [])
    nodes.push(e)
    const A = a as LanNode
    const B = b as LanNode
    const C = c as LanNode
    // The default listen address is all interfaces: the LAN address is printed and used.
    expect((await status(A)).addresses.some(x => x.startsWith(`/ip4/${ann.addresses.home}/tcp/4010/p2p/`))).toBe(true)

    // Step 5: swarm peers on ann lists bob and cat, found by mDNS, with a ping latency.
    const foundAt = Date.now()
    for (const [n, others] of [[A, [B, C]], [B, [A, C]], [C, [A, B]]] as Array<[LanNode, LanNode[]]>) {
      await waitFor(`${n.host.name} to be connected to ${others.map(o => o.host.name).join(' and ')}`, async () => {
        const p = await peersOf(n)
        return others.every(o => p.includes(o.peerId))
      }, { timeoutMs: 20_000, everyMs: 250, retryErrors: true })
    }
    const meshMs = Date.now() - foundAt
    const peers = await swarm(ann, dir(ann), ['peers', '--json'])
    const pj = JSON.parse(peers.stdout) as PeersJson
    for (const o of [B, C]) {
      const p = pj.peers.find(x => x.id === o.peerId)
      expect(p?.foundBy).toEqual(['mdns'])
      expect(p?.addresses.some(x => x.includes(`/ip4/${o.host.addresses.home}/`))).toBe(true)
      expect(p?.latencyMs).not.toBeNull()
    }
    const human = await swarm(ann, dir(ann), ['peers'])
    expect(human.stdout).toMatch(/found by\s+mdns/)

    // The job: 72 chunks of 21 frames (3-frame GOPs: too short for a finer tail), each about 2 s of stand-in work plus a real encode.
    const clip = await makeClip(join(dir(ann), 'Show - 01.mkv'), { frames: 72 * 21, keyint: 3 })
    const srcFrames = (await probeMedia(clip)).video.frameCount
    // Step 6: swarm add on ann, --wait; it runs while a host joins and another restarts.
    const adding = spawn(ann, dir(ann), ['add', clip, '--preset ultrafast --crf 30', '--wait', '--json'])
    const jobId = await waitFor('the job to be listed on ann', async () => (await status(A)).jobs.find(j => j.local)?.id, { timeoutMs: 20_000, everyMs: 200, retryErrors: true })
    const doneBy = async (peer: string): Promise<number> => {
      const s = await status(A)
      return s.jobs.find(j => j.id === jobId)?.encodedBy[peer] ?? 0
    }
    await waitFor('bob and cat to each have delivered a chunk', async () => (await doneBy(B.peerId)) > 0 && (await doneBy(C.peerId)) > 0, { timeoutMs: 60_000, everyMs: 250, retryErrors: true })

    // A host that joins after the job started: found by mDNS, hears of the job, gets chunks.
    const D = await joinSwarm(dan, dir(dan), ['--swarm-key', 'swarm.key'])
    nodes.push(D)
    const danJoined = Date.now()
    await waitFor('dan to deliver a chunk of the running job', async () => (await doneBy(D.peerId)) > 0, { timeoutMs: 60_000, everyMs: 250, retryErrors: true })
    const danFirstChunkMs = Date.now() - danJoined

    // A host restarted mid-job (a clean stop, the same home): found again, works again.
    const bobBefore = await doneBy(B.peerId)
    await stop(B)
    nodes.splice(nodes.indexOf(B), 1)
    await waitFor('ann to notice bob left', async () => !(await peersOf(A)).includes(B.peerId), { timeoutMs: 15_000, everyMs: 200, retryErrors: true })
    const B2 = await joinSwarm(bob, dir(bob), ['--swarm-key', 'swarm.key'])
    nodes.push(B2)
    expect(B2.peerId).toBe(B.peerId)
    const bobBack = Date.now()
    await waitFor('ann to be connected to the restarted bob', async () => (await peersOf(A)).includes(B2.peerId), { timeoutMs: 20_000, everyMs: 200, retryErrors: true })
    const bobFoundMs = Date.now() - bobBack
    await waitFor('the restarted bob to deliver another chunk', async () => (await doneBy(B2.peerId)) > bobBefore, { timeoutMs: 60_000, everyMs: 250, retryErrors: true })

    const result = await adding
    expect(result.exitCode, String(result.stderr)).toBe(0)
    const final = (JSON.parse(String(result.stdout).trim().split('\n').pop() as string) as { job: JobStatus }).job
    expect(final.state).toBe('done')
    expect(final.output).not.toBeNull()
    expect(await decodedFrameCount(final.output as string)).toBe(srcFrames)
    for (const n of [A, B, C, D]) expect(final.encodedBy[n.peerId] ?? 0, `${n.host.name} encoded chunks`).toBeGreaterThan(0)

    // eve (no key): never connected to anyone, heard of no job, encoded nothing.
    expect(final.encodedBy[e.peerId]).toBeUndefined()
    const eveStatus = await status(e)
    expect(eveStatus.peers).toEqual([])
    expect(eveStatus.jobs).toEqual([])
    for (const n of [A, B2, C, D]) expect(await peersOf(n)).not.toContain(e.peerId)
    // ...was refused and said so once, not in a tight loop: ann tried it a handful of times at most.
    const annStatus = await status(A)
    const eveOnAnn = annStatus.unreachable.find(u => u.id === e.peerId)
    expect(eveOnAnn?.foundBy).toEqual(['mdns'])
    const elapsedS = (Date.now() - foundAt) / 1000
    // Backoff 5, 10, 20, 40 s...: at most about log2(elapsed / 5) + 2 attempts, never one per mDNS round.
    expect(eveOnAnn?.attempts).toBeGreaterThanOrEqual(1)
    expect(eveOnAnn?.attempts).toBeLessThanOrEqual(Math.ceil(Math.log2(elapsedS / 5 + 1)) + 2)
    expect(A.stderr().split('\n').filter(l => l.includes(`could not connect to peer ${e.peerId}`)).length).toBe(1)
    expect(e.stderr().split('\n').filter(l => l.includes(`could not connect to peer ${A.peerId}`)).length).toBe(1)

    console.log(`LAN walkthrough: mesh of 3 in ${meshMs} ms; dan's first chunk ${danFirstChunkMs} ms after it started; ` +
      `restarted bob connected again ${bobFoundMs} ms after it started; chunks ${JSON.stringify(Object.fromEntries(Object.entries(final.encodedBy).map(([p, n]) => [[A, B2, C, D].find(x => x.peerId === p)?.host.name ?? p, n])))}; ` +
      `eve tried ${eveOnAnn?.attempts} times by ann in ${elapsedS.toFixed(0)} s`)
  })
})

// The namespace helper itself: what the NAT tests will build on.
describe('TestNetwork', () => {
  it('keeps two LANs apart and connects hosts on one LAN, without touching the machine\'s own namespace', async () => {
    const other = await net.addLan('other', '10.77.2.0/24')
    const x = await net.addHost('x', [other])
    const r = await x.run('ip', ['-4', '-o', 'addr'])
    expect(r.stdout).toContain('10.77.2.2/24')
    // No route from the other LAN to the first one.
    const unreachable = await x.run(process.execPath, ['-e', `require('net').connect(4010, '${ann.addresses.home}').on('error', e => { console.log(e.code); process.exit(0) }).on('connect', () => { console.log('connected'); process.exit(0) })`], { reject: false })
    expect(unreachable.stdout.trim()).toMatch(/ENETUNREACH|EHOSTUNREACH/)
    // Nothing of ours appears in the machine's own namespace.
    const own = await execa('ip', ['-o', 'link'])
    expect(own.stdout).not.toMatch(/br0|\bp\d+@/)
  })
})
