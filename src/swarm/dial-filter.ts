import { BlockList } from 'node:net'
import type { Multiaddr } from '@multiformats/multiaddr'

/**
 * Which addresses this node dials. Peers tell it where to dial them (job announcements, identify,
 * the DHT), and js-libp2p's TCP transport dials whatever it is told: `/unix/` sockets of this
 * machine and its loopback included, so a peer could have a node connect to local services that
 * trust local callers. Only TCP over IPv4, IPv6 or a DNS name is dialled (a relayed address by its
 * relay's), and loopback (127.0.0.0/8, ::1, the unspecified 0.0.0.0 and ::, `localhost`) only by a
 * node that listens on loopback itself: tests, demos and several nodes on one machine.
 */
export interface DialPolicy {
  /** Loopback addresses may be dialled: the node listens on one (or was told to bootstrap from one). */
  loopback: boolean
}

const IP = new Set(['ip4', 'ip6'])
const DNS = new Set(['dns', 'dns4', 'dns6'])

export function dialableAddress (ma: Multiaddr, policy: DialPolicy): boolean {
  const [first, second] = ma.getComponents()
  if (first === undefined) return false
  // Resolved to its own addresses before any dial, and each of those is checked again.
  if (first.name === 'dnsaddr') return true
  if (!IP.has(first.name) && !DNS.has(first.name)) return false
  if (second?.name !== 'tcp') return false
  return policy.loopback || !isLoopbackHost(first.name, first.value ?? '')
}

/** Whether a host names this machine: loopback, the unspecified address (which connects to it too), or `localhost`. */
export function isLoopbackHost (kind: string, host: string): boolean {
  if (kind === 'ip4' || kind === 'ip6') {
    try { return LOOPBACK.check(host, kind === 'ip4' ? 'ipv4' : 'ipv6') } catch { return true }
  }
  const h = host.toLowerCase()
  return h === 'localhost' || h.endsWith('.localhost')
}

/** This machine's addresses; node's BlockList also matches IPv4-mapped IPv6 (::ffff:7f00:1) against the IPv4 rules. */
const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('0.0.0.0', 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')
LOOPBACK.addAddress('::', 'ipv6')

/** Whether any of these addresses (listen or bootstrap) is on loopback: then the node may dial loopback. */
export function usesLoopback (addrs: Multiaddr[]): boolean {
  return addrs.some(ma => {
    const [first] = ma.getComponents()
    return first !== undefined && (first.name === 'ip4' || first.name === 'ip6' || DNS.has(first.name)) && isLoopbackHost(first.name, first.value ?? '') && first.value !== '0.0.0.0' && first.value !== '::'
  })
}
