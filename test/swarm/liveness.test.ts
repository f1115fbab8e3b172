/**
 * The muxer's own ping watches each connection (src/swarm/liveness.ts): two real libp2p nodes on
 * 127.0.0.1 talk through a TCP relay in this process that can stop passing bytes on while keeping
 * both TCP connections open, as a peer does whose machine lost the network.
 */
import { noise } from '@chainsafe/libp2p-noise'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { watchedYamux, type LivenessOptions } from '../../src/swarm/liveness.js'
import { waitFor } from '../helpers/wait.js'

/** Short enough for a test, long enough that a busy machine's late event loop is not taken for a silent peer. */
const QUICK: LivenessOptions = { intervalMs: 300, timeoutMs: 3000 }

const started: Libp2p[] = []
const servers: Server[] = []
afterEach(async () => {
  await Promise.all(started.splice(0).map(async n => { await n.stop() }))
  for (const s of servers.splice(0)) s.close()
})

async function watchedNode (): Promise<Libp2p> {
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [watchedYamux(QUICK)],
    connectionMonitor: { enabled: false }
  })
  started.push(node)
  return node
}

/** Passes bytes between one client and `port`, counting them; frozen, it passes nothing on and closes nothing. */
interface Relay { port: number, open: () => number, bytes: { toTarget: number, toClient: number }, freeze: () => void }

async function tcpRelay (port: number): Promise<Relay> {
  const sockets = new Set<Socket>()
  const bytes = { toTarget: 0, toClient: 0 }
  let frozen = false
  const server = createServer((client) => {
    const target = createConnection({ host: '127.0.0.1', port })
    for (const s of [client, target]) {
      sockets.add(s)
      s.on('close', () => { sockets.delete(s) })
      s.on('error', () => {})
    }
    client.on('data', (d: Buffer) => { if (!frozen) { bytes.toTarget += d.length; target.write(d) } })
    target.on('data', (d: Buffer) => { if (!frozen) { bytes.toClient += d.length; client.write(d) } })
  })
  servers.push(server)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return { port: (server.address() as { port: number }).port, open: () => sockets.size, bytes, freeze: () => { frozen = true } }
}

async function connectThroughRelay (): Promise<{ a: Libp2p, b: Libp2p, relay: Relay }> {
  const [a, b] = [await watchedNode(), await watchedNode()]
  const bPort = Number(b.getMultiaddrs()[0]?.getComponents().find(c => c.name === 'tcp')?.value)
  const relay = await tcpRelay(bPort)
  await a.dial(multiaddr(`/ip4/127.0.0.1/tcp/${relay.port}/p2p/${b.peerId.toString()}`))
  return { a, b, relay }
}

describe('connection liveness by the muxer\'s ping', () => {
  it('keeps a quiet connection whose peer answers: both ends ping it, no stream is opened', async () => {
    const { a, b, relay } = await connectThroughRelay()
    const before = { ...relay.bytes }
    // Each ping and each answer is one 12-byte yamux frame in a Noise message: well under 100
    // bytes. Five intervals' worth each way, both ends pinging.
    await waitFor('pings and answers both ways', () => relay.bytes.toTarget - before.toTarget >= 300 && relay.bytes.toClient - before.toClient >= 300, { timeoutMs: 10_000 })
    expect(a.getConnections(b.peerId).map(c => c.status)).toEqual(['open'])
    expect(b.getConnections(a.peerId).map(c => c.status)).toEqual(['open'])
    expect(a.getConnections(b.peerId)[0]?.streams).toEqual([])
  })

  it('aborts a connection whose peer stops answering, while its TCP connection is still open', async () => {
    const { a, b, relay } = await connectThroughRelay()
    let openWhenAborted: number | undefined
    a.addEventListener('connection:close', () => { openWhenAborted ??= relay.open() })
    const frozenAt = Date.now()
    relay.freeze()
    await waitFor('a to give up the silent connection', () => a.getConnections(b.peerId).length === 0, { timeoutMs: 15_000 })
    // Nothing closed the TCP connections (the relay holds both of its sockets): the unanswered ping did.
    expect(openWhenAborted).toBe(2)
    expect(Date.now() - frozenAt).toBeGreaterThanOrEqual(QUICK.timeoutMs)
  })
})
