import { generateKeyPair } from '@libp2p/crypto/keys'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSwarmNode, generateSwarmKey, gossipFastMessageId, parseSwarmKey, SwarmKeyError, type SwarmNode } from '../../src/swarm/index.js'
import { makeNode, refusingArbiter } from './helpers.js'
import { ceiling, waitFor } from '../helpers/wait.js'

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'swarm-node-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

const HEX = '0123456789abcdef'.repeat(4)

describe('swarm keys', () => {
  it('generates a key file readable by the owner only, in the shared libp2p format', async () => {
    const p = join(dir, 'swarm.key')
    await generateSwarmKey(p)
    expect((await stat(p)).mode & 0o777).toBe(0o600)
    const text = await readFile(p, 'utf8')
    expect(text).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
    expect(Buffer.from(parseSwarmKey(Buffer.from(text), p)).toString()).toBe(text.trim())
    // Never overwrites an existing key.
    await expect(generateSwarmKey(p)).rejects.toThrow()
    expect(await readFile(p, 'utf8')).toBe(text)
    // Two generated keys differ.
    const q = join(dir, 'other.key')
    await generateSwarmKey(q)
    expect(await readFile(q, 'utf8')).not.toBe(text)
  })

  it('normalises CRLF line ends, surrounding whitespace and upper-case hex', () => {
    const want = `/key/swarm/psk/1.0.0/\n/base16/\n${HEX}`
    for (const text of [want, want + '\n', `/key/swarm/psk/1.0.0/\r\n/base16/\r\n${HEX.toUpperCase()}\r\n`, `\n  ${want}  \n`]) {
      expect(Buffer.from(parseSwarmKey(Buffer.from(text), 'k')).toString()).toBe(want)
    }
  })

  it.each([
    ['empty', ''],
    ['only the hex', HEX],
    ['a short key', `/key/swarm/psk/1.0.0/\n/base16/\n${HEX.slice(2)}`],
    ['a long key', `/key/swarm/psk/1.0.0/\n/base16/\n${HEX}00`],
    ['non-hex digits', `/key/swarm/psk/1.0.0/\n/base16/\n${'g'.repeat(64)}`],
    ['another encoding', `/key/swarm/psk/1.0.0/\n/base64/\n${HEX}`],
    ['another version', `/key/swarm/psk/2.0.0/\n/base16/\n${HEX}`]
  ])('refuses a malformed key (%s) with a SwarmKeyError naming the file', (_what, text) => {
    expect(() => parseSwarmKey(Buffer.from(text), '/etc/swarm.key')).toThrow(SwarmKeyError)
    expect(() => parseSwarmKey(Buffer.from(text), '/etc/swarm.key')).toThrow(/\/etc\/swarm\.key is not a swarm key/)
  })
})

describe('createSwarmNode', () => {
  const base = async (): Promise<Parameters<typeof createSwarmNode>[0]> => ({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, encode: { arbiter: refusingArbiter() } })

  it('refuses a listen address that is not a multiaddr, with a hint', async () => {
    await expect(createSwarmNode({ ...await base(), listen: ['127.0.0.1:4010'] })).rejects.toThrow(/127\.0\.0\.1:4010 is not a multiaddr.*try \/ip4\/127\.0\.0\.1\/tcp\/4010/)
  })

  it('refuses a bootstrap address without a /p2p/ peer id', async () => {
    await expect(createSwarmNode({ ...await base(), bootstrap: ['/ip4/127.0.0.1/tcp/4010'] })).rejects.toThrow(/not a multiaddr ending in \/p2p\/PEERID/)
  })

  it('listens only where asked and registers the encode protocols', async () => {
    const n = await makeNode()
    try {
      expect(n.getMultiaddrs().length).toBeGreaterThan(0)
      for (const ma of n.getMultiaddrs()) expect(ma.toString()).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
      expect(n.getProtocols()).toEqual(expect.arrayContaining(['/swarm-encode/lease/1.0.0', '/swarm-encode/chunk/1.0.0', '/swarm-encode/result/1.0.0', '/swarm-encode/kad/1.0.0']))
      expect(n.getProtocols().some(p => p.startsWith('/ipfs/kad/'))).toBe(false)
    } finally {
      await n.stop()
    }
  })

  it('bootstraps from a /p2p/ address and connects', async () => {
    const a = await makeNode()
    let b: SwarmNode | undefined
    try {
      const addr = a.getMultiaddrs()[0]!.toString()
      b = await createSwarmNode({ ...await base(), bootstrap: [addr] })
      const started = b
      await waitFor('B to connect to its bootstrap peer', () => started.getConnections(a.peerId).length > 0, { timeoutMs: 10_000, everyMs: 25 })
    } finally {
      await Promise.all([a.stop(), b?.stop()])
    }
  })
})

describe('private swarms', () => {
  const nodes: SwarmNode[] = []
  afterAll(async () => { await Promise.all(nodes.map(async n => { await n.stop() })) })

  async function node (key?: string): Promise<SwarmNode> {
    const n = await createSwarmNode({
      privateKey: await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [],
      mdns: false,
      encode: { arbiter: refusingArbiter() },
      ...(key !== undefined ? { swarmKey: parseSwarmKey(Buffer.from(key), 'test') } : {})
    })
    nodes.push(n)
    return n
  }
  const keyText = (hex: string): string => `/key/swarm/psk/1.0.0/\n/base16/\n${hex}\n`

  it('nodes sharing a key connect; a node with another key or none cannot', async () => {
    const keyFile = join(dir, 'shared.key')
    await writeFile(keyFile, keyText(HEX))
    const shared = await readFile(keyFile, 'utf8')
    const [a, b, c, d] = await Promise.all([node(shared), node(shared), node(keyText('f'.repeat(64))), node()])
    const addrA = a!.getMultiaddrs()[0]!
    await b!.dial(addrA, { signal: AbortSignal.timeout(5000) })
    expect(b!.getConnections(a!.peerId).length).toBeGreaterThan(0)
    await waitFor('A to register the inbound connection', () => a!.getConnections(b!.peerId).length > 0, { timeoutMs: 5000, everyMs: 25 })
    // The encode protocols work across the private connection.
    expect(await b!.services.encode.linkTo(a!.peerId.toString()).claim('ab'.repeat(32), 0, AbortSignal.timeout(5000))).toEqual({ ok: false, code: 'unknown-job', message: 'this node has no jobs' })
    // A key mismatch is not detected as such: the handshake sees noise and the dial runs into its
    // deadline. Run the three hopeless dials side by side so the test waits for one deadline only.
    const attempts = [[c, a], [d, a], [a, d]].map(async ([from, to]) => await from!.dial(to!.getMultiaddrs()[0]!, { signal: AbortSignal.timeout(3000) }).then(() => 'connected', () => 'refused'))
    expect(await Promise.all(attempts)).toEqual(['refused', 'refused', 'refused'])
    expect(a!.getConnections(c!.peerId)).toHaveLength(0)
    expect(a!.getConnections(d!.peerId)).toHaveLength(0)
  })
})

describe('gossipFastMessageId', () => {
  const base = { from: Uint8Array.of(1, 2, 3), seqno: Uint8Array.of(0, 0, 7), topic: 'swarm-encode/jobs/1', data: Buffer.from('{"v":1}'), signature: Uint8Array.of(9, 9), key: undefined }

  it('is the same for the same message and differs when any field differs', () => {
    const id = gossipFastMessageId(base)
    expect(gossipFastMessageId({ ...base, data: Buffer.from('{"v":1}') })).toBe(id)
    const variants = [
      { ...base, from: Uint8Array.of(1, 2, 4) },
      { ...base, seqno: Uint8Array.of(0, 0, 8) },
      { ...base, topic: 'other' },
      { ...base, data: Buffer.from('{"v":2}') },
      { ...base, signature: Uint8Array.of(9, 8) },
      { ...base, key: Uint8Array.of(5) },
      { ...base, signature: undefined },
      { ...base, signature: new Uint8Array(0) },
      // Bytes moved from one field to the next.
      { ...base, from: Uint8Array.of(1, 2), seqno: Uint8Array.of(3, 0, 0, 7) }
    ]
    const ids = new Set([id, ...variants.map(v => gossipFastMessageId(v))])
    expect(ids.size).toBe(variants.length + 1)
  })
})

describe('many nodes on one machine', () => {
  // libp2p refuses more than 5 new connections a second from one address, and every node on a
  // machine dials from 127.0.0.1: when a job was announced to 50 nodes there, most of their
  // connections to the originator were reset and each worker waited 10 s to try again.
  it('accepts twenty connections from loopback at once', async () => {
    const hub = await makeNode()
    const peers = await Promise.all(Array.from({ length: 20 }, async () => await makeNode()))
    try {
      const addr = hub.getMultiaddrs().find(a => a.toString().includes('127.0.0.1'))
      if (addr === undefined) throw new Error('hub has no loopback address')
      // A generous dial deadline: twenty Noise handshakes in one process on a busy machine can take
      // longer than libp2p's default. A timeout (ours, or libp2p's own per-address and upgrade
      // timeouts, which no signal extends) is not the refusal this test is about: that dial is made
      // again. A refusal (a reset connection) is never retried, so it still fails the test.
      const dialPatiently = async (p: typeof hub): Promise<unknown> => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await p.dial(addr, { signal: AbortSignal.timeout(ceiling(20_000)) })
          } catch (err) {
            const name = (err as Error).name
            if (attempt >= 3 || !['TimeoutError', 'AbortError'].includes(name)) throw err
          }
        }
      }
      const results = await Promise.allSettled(peers.map(dialPatiently))
      expect(results.filter(r => r.status === 'rejected').map(r => String((r as PromiseRejectedResult).reason))).toEqual([])
      await waitFor('twenty connections at the hub', () => hub.getConnections().length >= 20, { timeoutMs: 5000 })
    } finally {
      await Promise.all([hub, ...peers].map(async n => await n.stop()))
    }
  })
})
