import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusJson } from '../../src/daemon/index.js'
import type { NodeEvent, NodeEventOf, NodeEventType } from '../../src/swarm/index.js'
import { runSwarm, startLocalNode, type LocalNode } from '../../scripts/local-swarm.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { waitFor } from '../helpers/wait.js'

let root: string
let fx: Fixtures
const nodes: LocalNode[] = []
beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-events-cli-'))
})
afterAll(async () => {
  await Promise.allSettled(nodes.map(async n => await n.stop()))
  await rm(root, { recursive: true, force: true })
})

/** Every line of an event log, each parsed on its own: a line that is not one JSON object fails the test. */
async function eventLines (file: string): Promise<NodeEvent[]> {
  const text = await readFile(file, 'utf8')
  expect(text.endsWith('\n')).toBe(true)
  return text.slice(0, -1).split('\n').map((line) => {
    const e = JSON.parse(line) as NodeEvent
    expect(typeof e.type).toBe('string')
    expect(Number.isInteger(e.at)).toBe(true)
    return e
  })
}

/** The node events a dashboard's stream carries (SSE events named `node`) until `stop` is called. */
function nodeEventStream (node: LocalNode, token: string): { events: NodeEvent[], stop: () => void } {
  const events: NodeEvent[] = []
  const url = new URL('/v1/events', node.controlUrl)
  const req = request(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
    let text = ''
    res.on('data', (d: Buffer) => {
      text += d.toString()
      const frames = text.split('\n\n')
      text = frames.pop() ?? ''
      for (const frame of frames) {
        const data = /^event: node\ndata: (.*)$/.exec(frame)?.[1]
        if (data !== undefined) events.push(JSON.parse(data) as NodeEvent)
      }
    })
  })
  req.on('error', () => {})
  req.end()
  return { events, stop: () => { req.destroy() } }
}

const ofType = <T extends NodeEventType>(events: NodeEvent[], type: T, jobId: string): Array<NodeEventOf<T>> =>
  events.filter((e): e is NodeEventOf<T> => e.type === type && 'jobId' in e && e.jobId === jobId)

describe('swarm join --events FILE', () => {
  it('writes each node\'s events as JSON lines: every chunk leased, then done, then the merge; the dashboard stream carries the same', async () => {
    const fileA = join(root, 'a-events.jsonl')
    const fileB = join(root, 'b-events.jsonl')
    // The originator's own encodes are slowed down (about 5 s a chunk), so the other node takes a chunk too.
    const a = await startLocalNode(join(root, 'a'), { events: fileA, env: { SWARM_TEST_ENCODER: 'delay:200' } })
    nodes.push(a)
    const b = await startLocalNode(join(root, 'b'), { events: fileB, bootstrap: [a.addresses[0] as string] })
    nodes.push(b)
    await waitFor('the nodes to see each other', async () => {
      const s = JSON.parse((await runSwarm(['status', '--home', a.home, '--json'])).stdout) as StatusJson
      return s.peers.length >= 1
    }, { timeoutMs: 30_000, everyMs: 200 })
    const token = (JSON.parse(await readFile(join(a.home, 'control.json'), 'utf8')) as { token: string }).token
    const stream = nodeEventStream(a, token)

    const output = join(root, 'out.mkv')
    // Two keyframe intervals, a chunk each.
    const r = await runSwarm(['add', fx.awkwardName, '--preset superfast --crf 26', '--chunk-gops', '1', '--home', a.home, '--output', output, '--wait'])
    expect(r.exitCode).toBe(0)
    const jobId = /job ([0-9a-f]{64})/.exec(r.stdout)?.[1] as string
    expect(jobId).toBeDefined()
    // The stream is behind the file by at most a write: wait for its end of the story.
    await waitFor('the merge on the dashboard stream', () => ofType(stream.events, 'merge:done', jobId).length > 0, { timeoutMs: 10_000 })
    stream.stop()
    // Stopped, each node has written out every event.
    expect(await a.stop()).toBe(0)
    expect(await b.stop()).toBe(0)

    for (const file of [fileA, fileB]) expect((await stat(file)).mode & 0o777).toBe(0o600)
    const [eventsA, eventsB] = await Promise.all([eventLines(fileA), eventLines(fileB)])
    expect(eventsA[0]).toMatchObject({ type: 'node:started', peer: a.peerId })
    expect(eventsB[0]).toMatchObject({ type: 'node:started', peer: b.peerId })

    // On the originator: added, then for every chunk a lease before it is done, then the merge with the output.
    const added = ofType(eventsA, 'job:added', jobId)
    expect(added).toHaveLength(1)
    const chunks = added[0]!.chunks
    expect(chunks).toBeGreaterThanOrEqual(2)
    const merged = eventsA.findIndex(e => e.type === 'merge:done' && e.jobId === jobId)
    expect(eventsA[merged]).toMatchObject({ output })
    const doneBy = new Map<number, string>()
    for (let chunk = 0; chunk < chunks; chunk++) {
      const leased = eventsA.findIndex(e => e.type === 'lease:granted' && e.jobId === jobId && e.chunk === chunk)
      const doneAt = eventsA.findIndex(e => e.type === 'chunk:done' && e.jobId === jobId && e.chunk === chunk)
      expect(leased, `chunk ${chunk} leased`).toBeGreaterThan(eventsA.indexOf(added[0]!))
      expect(doneAt, `chunk ${chunk} done after its lease`).toBeGreaterThan(leased)
      expect(merged, `merge after chunk ${chunk}`).toBeGreaterThan(doneAt)
      const done = eventsA[doneAt] as NodeEventOf<'chunk:done'>
      expect([a.peerId, b.peerId]).toContain(done.peer)
      doneBy.set(chunk, done.peer)
    }
    expect(ofType(eventsA, 'chunk:done', jobId)).toHaveLength(chunks)

    // The other node's chunks: sent by the originator, fetched, encoded and uploaded by the other node, in order.
    const remote = [...doneBy].filter(([, peer]) => peer === b.peerId).map(([chunk]) => chunk)
    expect(remote.length).toBeGreaterThan(0)
    for (const chunk of remote) {
      const sent = ofType(eventsA, 'segment:sent', jobId).filter(e => e.chunk === chunk && e.peer === b.peerId)
      expect(sent.length, `chunk ${chunk} sent to B`).toBeGreaterThan(0)
      const story = (['claim:won', 'segment:fetched', 'encode:started', 'encode:finished', 'upload:accepted'] as const)
        .map(type => eventsB.findIndex(e => e.type === type && e.jobId === jobId && e.chunk === chunk && e.originator === a.peerId))
      expect(story.every(i => i >= 0), `chunk ${chunk} on B: ${story.join(' ')}`).toBe(true)
      expect([...story].sort((x, y) => x - y)).toEqual(story)
      expect(eventsB[story[1]!]).toMatchObject({ downloaded: true, bytes: sent.at(-1)!.bytes })
    }

    // What the dashboard's stream carried is what the file holds.
    const inFile = new Set(eventsA.map(e => JSON.stringify(e)))
    for (const e of stream.events) expect(inFile.has(JSON.stringify(e))).toBe(true)
    expect(ofType(stream.events, 'lease:granted', jobId).length).toBeGreaterThanOrEqual(chunks)
  })

  it('is in the help, and a file that cannot be opened stops the node at once with exit code 2', async () => {
    const help = await runSwarm(['join', '--help'])
    expect(help.stdout).toMatch(/--events FILE +append what the node does/)
    const r = await runSwarm(['join', '--home', join(root, 'c'), '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--no-upnp', '--events', join(root, 'missing', 'events.jsonl')])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/cannot open the event log .*missing\/events\.jsonl: ENOENT/)
  })
})
