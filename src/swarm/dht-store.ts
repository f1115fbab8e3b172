// Types only: the datastore is libp2p's (interface-datastore is what kad-dht's own types name).
import type { Datastore, Key } from 'interface-datastore'
import type { CID } from 'multiformats/cid'
import { base32 } from 'multiformats/bases/base32'

/**
 * What the DHT may keep for other peers. Every node is a kad-dht server, and kad-dht stores what
 * peers send it in libp2p's in-memory datastore with no bound: 30,000 ADD_PROVIDER messages on one
 * stream left 22,115 provider records (about 584 bytes of heap each, kept 24-48 h), and PUT_VALUE
 * records are kept the same way. This swarm stores one kind of record in its DHT (the members'
 * provider record, members.ts) and no values; the bounds are far above what an honest swarm needs.
 */
export interface DhtStoreLimits {
  /** Provider records are kept only for these keys (base32 of the multihash, as kad-dht writes them); undefined keeps any. */
  providerKeys?: Set<string>
  /** Provider records one peer may have here (each names its sender: kad-dht refuses a record for another provider). */
  maxProvidersPerPeer: number
  /** Provider records in all; past it the oldest of another peer goes (never this node's own). */
  maxProviderRecords: number
  /** PUT_VALUE records in all; past it the oldest goes. */
  maxValueRecords: number
}

export const DEFAULT_DHT_STORE_LIMITS: Omit<DhtStoreLimits, 'providerKeys'> = {
  // One key is used: a peer has one record. A few more leave room for a newer version's second key.
  maxProvidersPerPeer: 4,
  // A swarm of 4,096 members: about 2.4 MB at most.
  maxProviderRecords: 4096,
  maxValueRecords: 256
}

/** The form a provider key's CID takes in kad-dht's datastore keys. */
export function providerKeyOf (cid: CID): string {
  return base32.baseEncode(cid.multihash.bytes)
}

/** What the bounded store did with peers' records. */
export interface DhtStoreStats { providerRecords: number, valueRecords: number, refused: number, evicted: number }

/**
 * Wraps the node's datastore for kad-dht alone: provider records (`<prefix>/provider/<key>/<peer>`)
 * only for the swarm's own keys, at most maxProvidersPerPeer a peer and maxProviderRecords in
 * all; value records (`<prefix>/record/…`) at most maxValueRecords. A record over a bound is not
 * written (kad-dht's handler does not answer ADD_PROVIDER, so the sender learns nothing), and it
 * does not throw: that would abort the stream an honest peer's other requests share. Everything
 * else (reads, queries, deletes, libp2p's own keys) passes through.
 */
export function boundedDhtStore (inner: Datastore, self: string, limits: DhtStoreLimits, prefix = '/dht'): { store: Datastore, stats: () => DhtStoreStats } {
  const providerPrefix = `${prefix}/provider/`
  const recordPrefix = `${prefix}/record/`
  /** Provider record key → its peer and datastore key, oldest written first. */
  const providers = new Map<string, { peer: string, key: Key }>()
  const perPeer = new Map<string, number>()
  /** Value record keys, oldest written first. */
  const values = new Map<string, Key>()
  const counters = { refused: 0, evicted: 0 }

  const forgetProvider = (key: string): void => {
    const peer = providers.get(key)?.peer
    if (peer === undefined) return
    providers.delete(key)
    const n = (perPeer.get(peer) ?? 1) - 1
    if (n <= 0) perPeer.delete(peer)
    else perPeer.set(peer, n)
  }

  /** Whether a provider record may be written now; makes room for it if the total is reached. */
  const admitProvider = async (key: string, dsKey: Key): Promise<boolean> => {
    const parts = key.slice(providerPrefix.length).split('/')
    const [cid, peer] = parts
    if (parts.length !== 2 || cid === undefined || peer === undefined) return false
    if (limits.providerKeys !== undefined && !limits.providerKeys.has(cid)) return false
    if (providers.has(key)) {
      // A refresh: now the most recent.
      providers.delete(key)
      providers.set(key, { peer, key: dsKey })
      return true
    }
    if (peer !== self && (perPeer.get(peer) ?? 0) >= limits.maxProvidersPerPeer) return false
    if (providers.size >= limits.maxProviderRecords) {
      let oldest: { k: string, key: Key } | undefined
      for (const [k, p] of providers) if (p.peer !== self) { oldest = { k, key: p.key }; break }
      if (oldest === undefined) return false
      forgetProvider(oldest.k)
      await inner.delete(oldest.key)
      counters.evicted++
    }
    providers.set(key, { peer, key: dsKey })
    perPeer.set(peer, (perPeer.get(peer) ?? 0) + 1)
    return true
  }

  const admitValue = async (key: string, dsKey: Key): Promise<boolean> => {
    if (values.has(key)) { values.delete(key); values.set(key, dsKey); return true }
    if (values.size >= limits.maxValueRecords) {
      const [oldest, oldestKey] = values.entries().next().value as [string, Key]
      values.delete(oldest)
      await inner.delete(oldestKey)
      counters.evicted++
    }
    values.set(key, dsKey)
    return true
  }

  const put = async (key: Key, value: Uint8Array, options?: unknown): Promise<Key> => {
    const k = key.toString()
    const admitted = k.startsWith(providerPrefix) ? await admitProvider(k, key) : k.startsWith(recordPrefix) ? await admitValue(k, key) : true
    if (!admitted) { counters.refused++; return key }
    return await inner.put(key, value, options as never)
  }
  const del = async (key: Key, options?: unknown): Promise<void> => {
    const k = key.toString()
    forgetProvider(k)
    values.delete(k)
    await inner.delete(key, options as never)
  }
  const store = new Proxy(inner, {
    get (target, prop, receiver) {
      if (prop === 'put') return put
      if (prop === 'delete') return del
      // kad-dht writes one record at a time; a batch would bypass the bounds, so there is none.
      if (prop === 'batch' || prop === 'putMany' || prop === 'deleteMany') return () => { throw new Error('the DHT store takes records one at a time') }
      const v = Reflect.get(target, prop, receiver) as unknown
      return typeof v === 'function' ? v.bind(target) : v
    }
  })
  return { store, stats: () => ({ providerRecords: providers.size, valueRecords: values.size, ...counters }) }
}
