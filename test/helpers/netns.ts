/**
 * Network namespaces for tests that need real machines on a real network: a LAN is a Linux bridge
 * in a namespace of its own, a host is a namespace with a loopback and one veth interface per LAN
 * it is plugged into. Nothing is created in, or routed to, the machine's own namespace: every
 * address lives inside namespaces this helper made, so the traffic (mDNS multicast included)
 * cannot leave them. Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); when namespaces cannot be
 * made, `TestNetwork.create` throws with the reason, so a test fails instead of being skipped.
 *
 *   const net = await TestNetwork.create('lan')           // names start with sw-<tag>-<pid>-
 *   const lan = await net.addLan('home', '10.77.1.0/24')  // a bridge, multicast flooded
 *   const ann = await net.addHost('ann', [lan])           // eth0 = 10.77.1.2 on it
 *   await ann.run('ip', ['addr'])                          // any command inside ann's namespace
 *   const proc = ann.spawn(process.execPath, [cli, 'join'], { env })
 *   await net.destroy()                                    // deletes every namespace it made
 *
 * A home router for NAT tests (needs nftables' `nft`):
 *
 *   const wan = await net.addLan('wan', '10.80.0.0/24')    // "the internet"
 *   const home = await net.addLan('homea', '192.168.1.0/24')
 *   const ra = await net.addRouter('ra', home, wan, { masquerade: true })
 *   const a = await net.addHost('a', [home], { gateway: ra.addresses.homea })
 *
 * The router's eth0 is on the outside LAN, eth1 on the inside one; it forwards between them and,
 * with `masquerade`, behaves like a home router: connections from inside leave with the router's
 * outside address (nftables masquerade, so the far end sees 10.80.0.x, never 192.168.1.x) and
 * nothing from outside gets in unless it belongs to a connection made from inside (conntrack
 * `established,related`; no port forwarding, no UPnP). Outside hosts have no route to the inside
 * prefix anyway; the filter also stops one that adds one. `host.enableForwarding()` alone makes a
 * plain router.
 */
import { execa, type Options, type ResultPromise } from 'execa'

export interface Lan {
  name: string
  /** The namespace that holds the bridge. */
  ns: string
  /** Network prefix, e.g. 10.77.1 for 10.77.1.0/24. */
  prefix: string
  /** Next host number to hand out. */
  next: number
}

export interface Host {
  name: string
  ns: string
  /** The host's address on each LAN it is plugged into, by LAN name. */
  addresses: Record<string, string>
  /** Runs a command inside the namespace to completion; throws with its stderr on failure. */
  run: (file: string, args: string[], options?: Options) => Promise<{ stdout: string, stderr: string, exitCode: number }>
  /** Starts a long-running command inside the namespace. */
  spawn: (file: string, args: string[], options?: Options) => ResultPromise
  enableForwarding: () => Promise<void>
}

async function ip (args: string[]): Promise<void> {
  await execa('ip', args, { stdin: 'ignore' })
}

async function inNs (ns: string, file: string, args: string[]): Promise<void> {
  await execa('ip', ['netns', 'exec', ns, file, ...args], { stdin: 'ignore' })
}

export class TestNetwork {
  private readonly namespaces: string[] = []
  private hostCount = 0

  private constructor (readonly prefix: string) {}

  /**
   * Checks that namespaces can be made here and returns an empty network. Leftovers from an earlier
   * run of the same tag that was killed are removed first.
   */
  static async create (tag: string): Promise<TestNetwork> {
    if (!/^[a-z0-9]{1,8}$/.test(tag)) throw new Error(`network tag ${tag} must be 1-8 lowercase letters or digits`)
    const net = new TestNetwork(`sw-${tag}-${process.pid}`)
    const missing: string[] = []
    for (const tool of ['ip']) {
      try { await execa(tool, ['-V'], { stdin: 'ignore' }) } catch { missing.push(tool) }
    }
    if (missing.length > 0) throw new Error(`cannot build the test network: ${missing.join(', ')} not found (install iproute2)`)
    const probe = `${net.prefix}-probe`
    try {
      await ip(['netns', 'add', probe])
      await ip(['netns', 'del', probe])
    } catch (err) {
      const e = err as { stderr?: string, message: string }
      throw new Error(`cannot create network namespaces (this test needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN): ${e.stderr ?? e.message}`)
    }
    await TestNetwork.removeStale(`sw-${tag}-`)
    return net
  }

  /** Deletes namespaces left by a run with this prefix whose process is gone. */
  private static async removeStale (prefix: string): Promise<void> {
    const { stdout } = await execa('ip', ['netns', 'list'], { stdin: 'ignore' })
    for (const line of stdout.split('\n')) {
      const name = line.split(' ')[0] ?? ''
      if (!name.startsWith(prefix)) continue
      const pid = Number(name.slice(prefix.length).split('-')[0])
      let alive = false
      try { process.kill(pid, 0); alive = true } catch {}
      if (!alive) await ip(['netns', 'del', name]).catch(() => {})
    }
  }

  private async newNamespace (name: string): Promise<string> {
    const ns = `${this.prefix}-${name}`
    await ip(['netns', 'add', ns])
    this.namespaces.push(ns)
    await inNs(ns, 'ip', ['link', 'set', 'lo', 'up'])
    return ns
  }

  /** A LAN: a bridge that floods multicast (no snooping), in its own namespace. `cidr` must be a /24. */
  async addLan (name: string, cidr: string): Promise<Lan> {
    const m = /^(\d+\.\d+\.\d+)\.0\/24$/.exec(cidr)
    if (m === null) throw new Error(`LAN ${name}: ${cidr} is not an a.b.c.0/24 network`)
    const ns = await this.newNamespace(`lan-${name}`)
    await inNs(ns, 'ip', ['link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0'])
    await inNs(ns, 'ip', ['link', 'set', 'br0', 'up'])
    return { name, ns, prefix: m[1] as string, next: 2 }
  }

  /**
   * A host plugged into the given LANs: eth0 on the first, eth1 on the second, … each with the next
   * free address of its LAN. Multicast goes out on eth0 (mDNS needs a route for 224.0.0.0/4). With
   * `gateway`, a default route through that address (a router host on the first LAN).
   */
  async addHost (name: string, lans: Lan[], o: { gateway?: string } = {}): Promise<Host> {
    if (lans.length === 0) throw new Error(`host ${name} needs at least one LAN`)
    const ns = await this.newNamespace(name)
    const addresses: Record<string, string> = {}
    for (const [i, lan] of lans.entries()) {
      const address = `${lan.prefix}.${lan.next++}`
      const port = `p${++this.hostCount}`
      const dev = `eth${i}`
      // Both ends are created straight inside their namespaces: nothing touches the machine's own.
      await ip(['link', 'add', dev, 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', lan.ns])
      await inNs(lan.ns, 'ip', ['link', 'set', port, 'master', 'br0'])
      await inNs(lan.ns, 'ip', ['link', 'set', port, 'up'])
      await inNs(ns, 'ip', ['addr', 'add', `${address}/24`, 'dev', dev])
      await inNs(ns, 'ip', ['link', 'set', dev, 'up'])
      addresses[lan.name] = address
    }
    await inNs(ns, 'ip', ['route', 'add', '224.0.0.0/4', 'dev', 'eth0'])
    if (o.gateway !== undefined) await inNs(ns, 'ip', ['route', 'add', 'default', 'via', o.gateway])
    const run = async (file: string, args: string[], options: Options = {}): Promise<{ stdout: string, stderr: string, exitCode: number }> => {
      const r = await execa('ip', ['netns', 'exec', ns, file, ...args], { stdin: 'ignore', reject: false, ...options })
      const result = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode ?? 1 }
      if (options.reject !== false && result.exitCode !== 0) throw new Error(`${name}: ${file} ${args.join(' ')} exited ${result.exitCode}: ${result.stderr.slice(-2000)}`)
      return result
    }
    return {
      name,
      ns,
      addresses,
      run,
      spawn: (file, args, options = {}) => execa('ip', ['netns', 'exec', ns, file, ...args], options),
      enableForwarding: async () => { await inNs(ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']) }
    }
  }

  /**
   * A router from `inside` to `outside` (see the top of the file): eth0 outside, eth1 inside,
   * forwarding on; with `masquerade`, source NAT to its outside address and no unsolicited inbound.
   * With `upstream` (an outside host that does not forward), packets for unknown networks, such as
   * another home's private addresses, go there and vanish, as on the internet: a dial to them
   * times out instead of failing at once with "no route".
   */
  async addRouter (name: string, inside: Lan, outside: Lan, o: { masquerade: boolean, upstream?: string }): Promise<Host> {
    const router = await this.addHost(name, [outside, inside], o.upstream !== undefined ? { gateway: o.upstream } : {})
    await router.enableForwarding()
    if (o.masquerade) {
      try { await execa('nft', ['--version'], { stdin: 'ignore' }) } catch { throw new Error('cannot build a NAT router: nft not found (install nftables)') }
      for (const rule of [
        'add table ip nat',
        'add chain ip nat postrouting { type nat hook postrouting priority srcnat; policy accept; }',
        'add rule ip nat postrouting oifname "eth0" masquerade',
        'add table ip filter',
        'add chain ip filter forward { type filter hook forward priority filter; policy drop; }',
        'add rule ip filter forward ct state established,related accept',
        'add rule ip filter forward iifname "eth1" oifname "eth0" accept'
      ]) await router.run('nft', [rule])
    }
    return router
  }

  /** Deletes every namespace this network made (their interfaces go with them). */
  async destroy (): Promise<void> {
    for (const ns of this.namespaces.reverse()) await ip(['netns', 'del', ns]).catch(() => {})
    this.namespaces.length = 0
  }
}
