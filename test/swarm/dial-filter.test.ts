/**
 * Dial hygiene (issue 26, item 7): a peer says where to dial it (a job announcement's addresses,
 * identify, the DHT), and js-libp2p's TCP transport dials /unix/ sockets and loopback as readily
 * as anything. The real-node test announces a /unix/ socket of this machine as an originator's
 * address to a real swarm node's worker link and counts what reaches the socket.
 */
import { createServer, type Server } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SwarmNode } from '../../src/swarm/index.js'
import { dialableAddress, usesLoopback } from '../../src/swarm/dial-filter.js'
import { recordTally } from '../helpers/tally.js'
import { makeNode } from './helpers.js'

describe('dialableAddress', () => {
  const lan = { loopback: false }
  const local = { loopback: true }
  const ok = (a: string, p = lan): boolean => dialableAddress(multiaddr(a), p)

  it('dials TCP over IPv4, IPv6 and DNS names, and relayed addresses by their relay\'s', () => {
    for (const a of ['/ip4/192.168.1.20/tcp/4010', '/ip4/203.0.113.5/tcp/4010/p2p/12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', '/ip6/2001:db8::1/tcp/4010', '/dns4/swarm.example.org/tcp/4010', '/dns/swarm.example.org/tcp/4010', '/dnsaddr/swarm.example.org',
      '/ip4/203.0.113.5/tcp/4010/p2p/12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/p2p-circuit']) expect(ok(a), a).toBe(true)
  })

  it('never dials a /unix/ socket, nor anything but TCP, whatever the node listens on', () => {
    for (const p of [lan, local]) {
      for (const a of ['/unix/%2Fvar%2Frun%2Fdocker.sock', '/ip4/192.168.1.20/udp/4010/quic-v1', '/ip4/192.168.1.20', '/dns4/example.org/udp/53']) expect(ok(a, p), a).toBe(false)
    }
  })

  it('dials loopback (127/8, ::1, 0.0.0.0, ::, localhost, ::ffff:127.0.0.1) only when the node itself uses loopback', () => {
    for (const a of ['/ip4/127.0.0.1/tcp/22', '/ip4/127.3.4.5/tcp/6379', '/ip6/::1/tcp/5432', '/ip4/0.0.0.0/tcp/4010', '/ip6/::/tcp/4010', '/dns4/localhost/tcp/9200', '/ip6/::ffff:127.0.0.1/tcp/4010']) {
      expect(ok(a, lan), a).toBe(false)
      expect(ok(a, local), a).toBe(true)
    }
  })

  it('counts a node as using loopback when it listens or bootstraps there, not when it listens on every interface', () => {
    expect(usesLoopback([multiaddr('/ip4/127.0.0.1/tcp/0')])).toBe(true)
    expect(usesLoopback([multiaddr('/ip4/0.0.0.0/tcp/4010')])).toBe(false)
    expect(usesLoopback([multiaddr('/ip4/0.0.0.0/tcp/4010'), multiaddr('/ip6/::1/tcp/4010/p2p/12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')])).toBe(true)
  })
})

describe('an originator announcing a /unix/ socket of the worker\'s machine as its address', () => {
  let W: SwarmNode
  let root: string
  let server: Server
  let accepted = 0
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'swarm-dial-'))
    server = createServer((socket) => { accepted++; socket.destroy() })
    await new Promise<void>(resolve => server.listen(join(root, 'service.sock'), resolve))
    W = await makeNode()
  })
  afterAll(async () => {
    await W?.stop()
    await new Promise(resolve => server?.close(resolve))
    if (root !== undefined) await rm(root, { recursive: true, force: true })
  })

  it('is never dialled: the connect fails without a byte reaching the socket', async () => {
    const originator = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const unix = multiaddr(`/unix/${encodeURIComponent(join(root, 'service.sock'))}`).toString()
    const link = W.services.encode.linkTo(originator, [unix])
    const error = await link.connect(AbortSignal.timeout(10_000)).then(() => undefined, (err: Error) => err)
    expect(error).toBeInstanceOf(Error)
    expect(accepted).toBe(0)
    recordTally({
      section: 'Hostile input: pubsub',
      fault: 'an originator announces a /unix/ socket of the worker\'s machine as its only address, and the worker connects to claim',
      happened: `the dial was refused before any connection ("${error?.message.slice(0, 60) ?? ''}"); ${accepted} connections reached the socket (was: 1, the TCP transport connected to it)`,
      lost: 'nothing'
    })
  })
})
