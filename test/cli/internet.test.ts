/**
 * The swarm over the internet, on hosts in network namespaces (test/helpers/netns.ts): a "public"
 * LAN with the meeting node (meet, the only address anyone can dial), two home networks behind
 * routers with nftables masquerade (nothing gets in that was not asked for from inside), a node in
 * each home (ann in home A originates, bob in home B works). Both bootstrap to meet. Packets for
 * the other home's private addresses vanish upstream, as they do on the internet.
 *
 * 1. meet without --relay: bob hears ann's job over gossip but can reach ann in no direction. He
 *    shows the job as "control only", with the reason, and claims nothing; the job finishes on ann
 *    and meet (meet, public, works for ann over the connection ann made to it: the reverse direction).
 * 2. meet restarted with --relay: ann and bob reconnect, reserve slots on it and announce
 *    /p2p-circuit addresses; bob reaches ann through meet and encodes chunks of ann's next job,
 *    segments and results crossing the relay (counted on ann), and bob's peers list says "relayed via meet".
 * 3. carl joins in home B knowing only bob's LAN address: he finds ann (and meet) through the
 *    provider records in the swarm's DHT, connects to ann through meet and encodes a chunk of her job.
 * 4. meet restarts in the middle of a job: the job still finishes, ann and bob reserve slots on it
 *    again, and bob leases chunks of ann's job through it again.
 * Along the way each node's REACH verdict: meet is dialled in, ann and bob are not (then relay only).
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { JobStatus, PeersJson, StatusJson } from '../../src/daemon/index.js'
import { makeClip } from '../helpers/faults.js'
import { ceiling, waitFor } from '../helpers/wait.js'
import { hostCli, type HostNode } from '../helpers/cli-hosts.js'
import { TestNetwork, type Host } from '../helpers/netns.js'

const { swarm, join: startNode, stop, status, spawn } = hostCli('delay:60')
const joinSwarm: typeof startNode = async (host, d, args) => { const n = await startNode(host, d, args); started.push(n); return n }
let root: string
let net: TestNetwork
const nodes: HostNode[] = []
/** Every node ever started, stopped ones too: their logs are printed at the end. */
const started: HostNode[] = []
let meetHost: Host, annHost: Host, bobHost: Host, carlHost: Host
const dir = (h: Host): string => join(root, h.name)

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'swarm-inet-'))
  // Not skipped without root or nftables: the helper throws and says why.
  net = await TestNetwork.create('inet')
  const wan = await net.addLan('wan', '10.80.0.0/24')
  meetHost = await net.addHost('meet', [wan])
  const homeA = await net.addLan('homea', '192.168.1.0/24')
  const homeB = await net.addLan('homeb', '192.168.2.0/24')
  const upstream = meetHost.addresses.wan as string
  const ra = await net.addRouter('ra', homeA, wan, { masquerade: true, upstream })
  const rb = await net.addRouter('rb', homeB, wan, { masquerade: true, upstream })
  annHost = await net.addHost('ann', [homeA], { gateway: ra.addresses.homea as string })
  bobHost = await net.addHost('bob', [homeB], { gateway: rb.addresses.homeb as string })
  carlHost = await net.addHost('carl', [homeB], { gateway: rb.addresses.homeb as string })
  for (const h of [meetHost, annHost, bobHost, carlHost]) await mkdir(dir(h), { recursive: true })
}, ceiling(30_000))

// The nodes' logs are printed when a test of the file failed: what to read first then.
let aTestFailed = false
afterEach((ctx) => { if (ctx.task.result?.state === 'fail') aTestFailed = true })

afterAll(async () => {
  await Promise.all(nodes.map(stop))
  if (aTestFailed) for (const n of started) if (n.stderr() !== '') console.log(`---- ${n.host.name} (${n.peerId.slice(-8)}) ----\n${n.stderr().slice(-5000)}`)
  await net?.destroy()
  await rm(root, { recursive: true, force: true })
})

async function restart (n: HostNode, args: string[]): Promise<HostNode> {
  await stop(n)
  nodes.splice(nodes.indexOf(n), 1)
  const again = await joinSwarm(n.host, n.dir, args)
  nodes.push(again)
  return again
}

/** `swarm add --wait` on ann: the job id, its final status, and when `swarm add` started (after the clip was made). */
async function addJob (ann: HostNode, name: string, chunks: number): Promise<{ id: string, done: Promise<JobStatus>, addedAt: number }> {
  const clip = await makeClip(join(ann.dir, name), { frames: chunks * 21, keyint: 3 })
  const addedAt = Date.now()
  const adding = spawn(ann.host, ann.dir, ['add', clip, '--preset ultrafast --crf 30', '--chunk-gops', '7', '--wait', '--json'])
  const id = await waitFor('the job to be listed on ann', async () => (await status(ann)).jobs.find(j => j.local && j.file === clip)?.id, { timeoutMs: 20_000, everyMs: 200, retryErrors: true })
  const done = (async () => {
    const r = await adding
    expect(r.exitCode, String(r.stderr)).toBe(0)
    return (JSON.parse(String(r.stdout).trim().split('\n').pop() as string) as { job: JobStatus }).job
  })()
  return { id, done, addedAt }
}

/** Chunks of the job on ann that `worker` holds or encoded, by index. */
async function chunksOf (ann: HostNode, jobId: string, worker: HostNode): Promise<Set<number>> {
  const r = await swarm(ann.host, ann.dir, ['status', jobId, '--json'])
  const j = JSON.parse(r.stdout) as JobStatus
  return new Set((j.chunkList ?? []).filter(c => c.holder === worker.peerId || c.encodedBy === worker.peerId).map(c => c.index))
}

/** Waits until `worker` holds or encoded a chunk of ann's job other than `before`; the ms since `since`. */
async function nextLease (ann: HostNode, jobId: string, worker: HostNode, since: number, before = new Set<number>(), timeoutMs = 60_000): Promise<number> {
  return await waitFor(`${worker.host.name} to hold a lease on a chunk of ann's job`, async () => {
    const now = Date.now()
    return [...await chunksOf(ann, jobId, worker)].some(i => !before.has(i)) ? now - since : undefined
  }, { timeoutMs, everyMs: 300, retryErrors: true })
}

type Transfer = StatusJson['network']['transfer']
const share = (x: number, of: number): string => `${Math.round(100 * x / Math.max(1, of))}%`
/** The part of ann's segment and result bytes since `before` that crossed a relay, for the note. */
function relayedSince (before: Transfer, t: Transfer): string {
  const seg = t.segmentBytesOut - before.segmentBytesOut
  const res = t.resultBytesIn - before.resultBytesIn
  return `relayed: ${share(t.segmentBytesOutRelayed - before.segmentBytesOutRelayed, seg)} of ${seg} segment bytes, ${share(t.resultBytesInRelayed - before.resultBytesInRelayed, res)} of ${res} result bytes`
}
/** Chunks encoded per node, by host name. */
function byHost (encodedBy: Record<string, number>, who: HostNode[]): string {
  return JSON.stringify(Object.fromEntries(Object.entries(encodedBy).map(([p, n]) => [who.find(x => x.peerId === p)?.host.name ?? p, n])))
}
const NO_TRANSFER: Transfer = { segmentBytesOut: 0, segmentBytesOutRelayed: 0, resultBytesIn: 0, resultBytesInRelayed: 0 }

describe('the swarm across two homes behind NAT, meeting at one public node', () => {
  let meet: HostNode, ann: HostNode, bob: HostNode, carl: HostNode
  const common = ['--no-mdns', '--slots', '1']

  it('without a relay: bob cannot reach ann in any direction, says "control only" for her job and claims nothing; meet (public) works for ann over her connection', async () => {
    meet = await joinSwarm(meetHost, dir(meetHost), common)
    nodes.push(meet)
    const boot = `/ip4/${meetHost.addresses.wan}/tcp/4010/p2p/${meet.peerId}`
    ann = await joinSwarm(annHost, dir(annHost), [...common, '--bootstrap', boot])
    bob = await joinSwarm(bobHost, dir(bobHost), [...common, '--bootstrap', boot])
    nodes.push(ann, bob)
    await waitFor('meet to be connected to ann and bob', async () => {
      const peers = (await status(meet)).peers.map(p => p.id)
      return peers.includes(ann.peerId) && peers.includes(bob.peerId)
    }, { timeoutMs: 20_000, everyMs: 250, retryErrors: true })
    // meet sees them at their routers' address, never their private one.
    const seen = (await status(meet)).peers.find(p => p.id === ann.peerId)
    expect(seen?.addresses.join(' ')).not.toContain('192.168.')

    const job = await addJob(ann, 'A - 01.mkv', 6)
    // The reversed direction: meet cannot dial ann, but works for her over the connection she made.
    const meetLeaseMs = await nextLease(ann, job.id, meet, job.addedAt)
    const reach = await waitFor('bob to say ann is control only', async () => {
      const j = (await status(bob)).jobs.find(x => x.id === job.id)
      return j?.reach?.kind === 'control-only' ? j.reach : undefined
    }, { timeoutMs: 40_000, everyMs: 500, retryErrors: true })
    const controlOnlyMs = Date.now() - job.addedAt
    expect(reach.reason).toMatch(/no answer in time|no route|refused/)
    const final = await job.done
    expect(final.state).toBe('done')
    expect(final.encodedBy[bob.peerId]).toBeUndefined()
    expect(final.encodedBy[meet.peerId] ?? 0, 'meet encoded for ann over the connection ann made').toBeGreaterThan(0)
    expect(bob.stderr()).toMatch(/control only for originator/)
    const onMeet = (await status(meet)).peers.find(p => p.id === ann.peerId)
    expect(onMeet?.connection).toBe('direct')
    // Every address here is private, which AutoNAT never tests: what each node knows is who dialled it.
    expect((await status(meet)).network.reachability).toMatchObject({ verdict: 'dialled-in', upnp: false })
    expect((await status(ann)).network.reachability.verdict).toBe('unknown')
    expect((await swarm(meet.host, meet.dir, ['status'])).stdout).toMatch(/^REACH {2}peers dial in: 2 connected directly/m)
    console.log(`internet: no relay: meet's first lease (over ann's connection) ${meetLeaseMs} ms after swarm add; bob showed control only by ${controlOnlyMs} ms; chunks ${byHost(final.encodedBy, [meet, ann, bob])}`)
  }, ceiling(120_000))

  it('with meet started with --relay: ann and bob reserve slots on it and bob encodes ann\'s chunks through it', async () => {
    meet = await restart(meet, [...common, '--relay'])
    expect(meet.stdout()).toMatch(/^relay: serving circuit relay v2 .*circuits at once/m)
    // ann and bob redial their bootstrap node and reserve a slot on it.
    for (const n of [ann, bob]) {
      await waitFor(`${n.host.name} to hold a reservation on meet`, async () => {
        const s = await status(n)
        return s.network.reservedOn.includes(meet.peerId) && s.addresses.some(a => a.includes(`/p2p/${meet.peerId}/p2p-circuit`))
      }, { timeoutMs: 40_000, everyMs: 500, retryErrors: true })
    }
    const meetStatus = await status(meet)
    expect(meetStatus.network.relay?.reservations).toBeGreaterThanOrEqual(2)

    // 60 chunks, and two minutes for bob's first lease: the first circuit from bob to ann sometimes
    // takes a minute or more after meet came back with --relay (1 run in 6 here; see the closing
    // note of 2026-11-30), where a 24-chunk job ended before bob got one.
    const job = await addJob(ann, 'A - 02.mkv', 60)
    const firstLeaseMs = await nextLease(ann, job.id, bob, job.addedAt, new Set(), 120_000)
    const onBob = (await status(bob)).jobs.find(x => x.id === job.id)
    expect(onBob?.reach).toEqual({ kind: 'relayed', via: meet.peerId })
    const peers = JSON.parse((await swarm(bob.host, bob.dir, ['peers', '--json'])).stdout) as PeersJson
    expect(peers.peers.find(p => p.id === ann.peerId)).toMatchObject({ connection: 'relayed', via: meet.peerId })
    const human = await swarm(bob.host, bob.dir, ['peers'])
    expect(human.stdout).toMatch(/relayed via/)

    const final = await job.done
    expect(final.state).toBe('done')
    expect(final.encodedBy[bob.peerId] ?? 0, 'bob encoded chunks of ann\'s job across homes').toBeGreaterThan(0)
    const t = (await status(ann)).network.transfer
    expect(t.segmentBytesOutRelayed).toBeGreaterThan(0)
    expect(t.resultBytesInRelayed).toBeGreaterThan(0)
    expect((await status(ann)).network.reachability.verdict).toBe('relay-only')
    // The relay's own count covers every byte of those circuits (and their framing, gossip, leases).
    const relayed = (await status(meet)).network.relay
    expect(relayed?.circuitsServed).toBeGreaterThan(0)
    expect(relayed?.bytesRelayed).toBeGreaterThanOrEqual(t.segmentBytesOutRelayed + t.resultBytesInRelayed)
    expect((await swarm(meet.host, meet.dir, ['status'])).stdout).toMatch(/^RELAY {2}\d+ peers reserved, \d+ circuits open, \d+ served carrying \d+\.\d MiB/m)
    console.log(`internet: bob's first lease ${firstLeaseMs} ms after swarm add; chunks ${byHost(final.encodedBy, [meet, ann, bob])}; ${relayedSince(NO_TRANSFER, t)}; ` +
      `meet carried ${relayed?.bytesRelayed} bytes on ${relayed?.circuitsServed} circuits`)
  }, ceiling(240_000))

  it('carl, who knows only bob, finds ann and meet through the DHT provider records and encodes a chunk of ann\'s job', async () => {
    // A LAN address in home B, and --no-mdns: the only peer carl is told of is bob.
    carl = await joinSwarm(carlHost, dir(carlHost), [...common, '--bootstrap', `/ip4/${bobHost.addresses.homeb}/tcp/4010/p2p/${bob.peerId}`])
    nodes.push(carl)
    // Two minutes: the circuit to ann through meet is the one that sometimes takes a minute or
    // more (see bob's first lease above); the fresh-clone CI run of 2026-11-30 saw 60 s run out here.
    const onCarl = await waitFor('carl to connect to ann, found through the DHT', async () => {
      const s = await status(carl)
      return s.peers.find(p => p.id === ann.peerId)
    }, { timeoutMs: 120_000, everyMs: 500, retryErrors: true })
    expect(onCarl.foundBy).toContain('dht')
    // Home A is behind NAT: the only way from carl to ann is the circuit through meet.
    expect(onCarl).toMatchObject({ connection: 'relayed', via: meet.peerId })
    // Provider records name the members carl finds (meet, bob, ann: which ones a round returns
    // depends on which DHT nodes hold the record; ann may come first through kad-dht's routing, as 'dht' too).
    // kad-dht's own routing may connect carl to ann before the member finder's first provider
    // lookup ends (a CI run saw the connection a second before the line), so wait for the lookup.
    await waitFor('carl to find swarm members through the DHT\'s provider records', async () =>
      /found swarm member \S+ through the DHT \(provider record\)/.test(carl.stderr()) && (await status(carl)).network.members.found >= 2,
    { timeoutMs: 60_000, everyMs: 500, retryErrors: true })

    const before = (await status(ann)).network.transfer
    const job = await addJob(ann, 'A - 03.mkv', 24)
    const firstLeaseMs = await nextLease(ann, job.id, carl, job.addedAt)
    const final = await job.done
    expect(final.state).toBe('done')
    expect(final.encodedBy[carl.peerId] ?? 0, 'carl encoded chunks of ann\'s job').toBeGreaterThan(0)
    console.log(`internet: carl (found ann through the DHT) first lease ${firstLeaseMs} ms after swarm add; chunks ${byHost(final.encodedBy, [meet, ann, bob, carl])}; ${relayedSince(before, (await status(ann)).network.transfer)}`)
  }, ceiling(240_000))

  it('meet restarting mid-job: the job finishes, and bob leases chunks of ann\'s job through meet again once it is back', async () => {
    // Back to one node in each home.
    await stop(carl)
    nodes.splice(nodes.indexOf(carl), 1)
    const before = (await status(ann)).network.transfer
    const job = await addJob(ann, 'A - 04.mkv', 60)
    await nextLease(ann, job.id, bob, Date.now())
    const bobsBefore = await chunksOf(ann, job.id, bob)
    const stopping = Date.now()
    meet = await restart(meet, [...common, '--relay'])
    const upAt = Date.now()
    // Reservations renewed: both homes are reachable through meet again.
    const reservedMs: Record<string, number> = {}
    for (const n of [ann, bob]) {
      reservedMs[n.host.name] = await waitFor(`${n.host.name} to hold a reservation on meet again`, async () => {
        const now = Date.now()
        return (await status(n)).network.reservedOn.includes(meet.peerId) ? now - upAt : undefined
      }, { timeoutMs: 60_000, everyMs: 250, retryErrors: true })
    }
    const resumeMs = await nextLease(ann, job.id, bob, upAt, bobsBefore, 90_000)
    const final = await job.done
    expect(final.state).toBe('done')
    const t = (await status(ann)).network.transfer
    expect(t.segmentBytesOutRelayed).toBeGreaterThan(before.segmentBytesOutRelayed)
    console.log(`internet: meet restart took ${upAt - stopping} ms (stop and start); reservations again ${JSON.stringify(reservedMs)} ms after it was up; ` +
      `bob's first new lease ${resumeMs} ms after meet was up; chunks ${byHost(final.encodedBy, [meet, ann, bob])}; ${relayedSince(before, t)}`)
  }, ceiling(240_000))
})
