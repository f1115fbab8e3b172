/**
 * The DHT's store against a flood (issue 26, item 4). Every node is a kad-dht server; a peer can
 * send it ADD_PROVIDER messages for any keys it likes, each naming itself as the provider, as
 * fast as one stream carries them. The attacker here is a real libp2p node speaking the swarm's
 * kad protocol with hand-built protobuf messages; the victim is a real swarm node.
 */
import { createHash, randomBytes } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { lpStream } from '@libp2p/utils'
import type { Datastore } from 'interface-datastore'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { KAD_PROTOCOL, membersKey, type SwarmNode } from '../../src/swarm/index.js'
import { boundedDhtStore, providerKeyOf } from '../../src/swarm/dht-store.js'
import { recordTally } from '../helpers/tally.js'
import { makeNode } from './helpers.js'

const FLOOD = 30_000

let victim: SwarmNode
let attacker: SwarmNode
beforeAll(async () => {
  victim = await makeNode()
  attacker = await makeNode()
})
afterAll(async () => {
  await attacker?.stop()
  await victim?.stop()
})

function varint (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n >>>= 7 }
  out.push(n)
  return out
}
function field (no: number, bytes: Uint8Array): number[] { return [...varint((no << 3) | 2), ...varint(bytes.length), ...bytes] }

/** A kad-dht Message: ADD_PROVIDER (type 2) for `key` (a multihash), naming `peer` at `addr` as its provider. */
function addProvider (key: Uint8Array, peer: Uint8Array, addr: Uint8Array): Uint8Array {
  const info = Uint8Array.from([...field(1, peer), ...field(2, addr)])
  return Uint8Array.from([0x08, 2, ...field(2, key), ...field(9, info)])
}
const PING = Uint8Array.from([0x08, 5])
const sha256Multihash = (data: Uint8Array): Uint8Array => Uint8Array.from([0x12, 0x20, ...createHash('sha256').update(data).digest()])

/** Sends the messages on one stream, then a PING: its answer means every message before it was handled (kad-dht reads a stream in order). */
async function flood (messages: Uint8Array[]): Promise<{ answered: boolean }> {
  const stream = await attacker.dialProtocol(victim.getMultiaddrs()[0]!, KAD_PROTOCOL)
  const lp = lpStream(stream)
  for (const m of messages) await lp.write(m)
  await lp.write(PING)
  try {
    await lp.read({ signal: AbortSignal.timeout(60_000) })
    return { answered: true }
  } catch {
    return { answered: false }
  } finally {
    await stream.close().catch(() => {})
  }
}

function datastoreOf (node: SwarmNode): Datastore {
  return (node as unknown as { components: { datastore: Datastore } }).components.datastore
}
async function providerRecords (node: SwarmNode): Promise<string[]> {
  const keys: string[] = []
  for await (const k of datastoreOf(node).queryKeys({ prefix: '/dht/provider' })) keys.push(k.toString())
  return keys
}

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
function heapUsed (): number { gc(); gc(); return process.memoryUsage().heapUsed }

describe('a peer flooding a node\'s DHT with provider records', () => {
  it(`${FLOOD.toLocaleString('en')} ADD_PROVIDER messages on one stream leave no record but the swarm's own key, and that one still works`, async () => {
    const self = attacker.peerId.toMultihash().bytes
    const addr = attacker.getMultiaddrs()[0]!.bytes
    const messages = Array.from({ length: FLOOD }, () => addProvider(sha256Multihash(randomBytes(32)), self, addr))
    const heapBefore = heapUsed()
    const started = Date.now()
    const { answered } = await flood(messages)
    const seconds = (Date.now() - started) / 1000
    const members = membersKey({})
    // The members key's records (this node's own, and each member's, stored once a connection) are
    // the swarm's; no record of the flood's keys may be kept.
    const stored = await providerRecords(victim)
    const records = stored.length
    const flooded = stored.filter(k => !k.includes(providerKeyOf(members)))
    const heapGrowth = heapUsed() - heapBefore
    // The swarm's own key: the attacker, like any member, may still say it is one.
    expect((await flood([addProvider(members.multihash.bytes, self, addr)])).answered).toBe(true)
    const kept = await providerRecords(victim)
    expect(answered).toBe(true)
    expect(flooded).toEqual([])
    expect(records).toBeLessThanOrEqual(2)
    expect(kept.filter(k => k.includes(providerKeyOf(members)) && k.endsWith(attacker.peerId.toString()))).toHaveLength(1)
    recordTally({
      section: 'Hostile input: DHT',
      fault: `${FLOOD.toLocaleString('en')} ADD_PROVIDER messages for random keys on one kad stream, each naming the sender as provider`,
      happened: `every one handled in ${seconds.toFixed(1)} s and none stored (${records} provider record${records === 1 ? '' : 's'}, for the swarm's members key; was 30,001 records and 18-19 MB of heap, ~605 B a record, kept 24-48 h); heap grew ${(heapGrowth / 1024 / 1024).toFixed(1)} MB, none of it records; the sender's record for the swarm's members key was still stored`,
      lost: 'nothing'
    })
  })
})

describe('boundedDhtStore', () => {
  /** The part of a datastore kad-dht's records go through. */
  function mapStore (): { ds: Datastore, keys: () => string[] } {
    const m = new Map<string, Uint8Array>()
    const ds = {
      put: async (k: { toString: () => string }, v: Uint8Array) => { m.set(k.toString(), v); return k },
      delete: async (k: { toString: () => string }) => { m.delete(k.toString()) },
      has: async (k: { toString: () => string }) => m.has(k.toString())
    } as unknown as Datastore
    return { ds, keys: () => [...m.keys()].sort() }
  }
  const key = (s: string): { toString: () => string } => ({ toString: () => s })
  const put = async (ds: Datastore, s: string): Promise<void> => { await ds.put(key(s) as never, new Uint8Array(1)) }

  it('keeps provider records only for the swarm\'s keys, a few per peer, a bound in all (the oldest of others go first, never this node\'s own), and a bound of values', async () => {
    const { ds, keys } = mapStore()
    const { store, stats } = boundedDhtStore(ds, 'SELF', { providerKeys: new Set(['k1', 'k2', 'k3']), maxProvidersPerPeer: 2, maxProviderRecords: 3, maxValueRecords: 2 })
    await put(store, '/dht/provider/other/P1')
    expect(keys()).toEqual([])
    await put(store, '/dht/provider/k1/SELF')
    await put(store, '/dht/provider/k1/P1')
    await put(store, '/dht/provider/k2/P1')
    // P1 is at its two.
    await put(store, '/dht/provider/k3/P1')
    expect(keys()).toEqual(['/dht/provider/k1/P1', '/dht/provider/k1/SELF', '/dht/provider/k2/P1'])
    // Full: P2's record pushes out the oldest of another peer, never SELF's.
    await put(store, '/dht/provider/k1/P2')
    expect(keys()).toEqual(['/dht/provider/k1/P2', '/dht/provider/k1/SELF', '/dht/provider/k2/P1'])
    // A deleted record frees its peer's place.
    await store.delete(key('/dht/provider/k2/P1') as never)
    await put(store, '/dht/provider/k3/P1')
    expect(keys()).toContain('/dht/provider/k3/P1')
    for (const n of [1, 2, 3]) await put(store, `/dht/record/r${n}`)
    expect(keys().filter(k => k.startsWith('/dht/record/'))).toEqual(['/dht/record/r2', '/dht/record/r3'])
    // Other keys (libp2p's peer store) pass through untouched.
    await put(store, '/peers/abc')
    expect(keys()).toContain('/peers/abc')
    expect(stats()).toMatchObject({ providerRecords: 3, valueRecords: 2, refused: 2 })
  })
})
