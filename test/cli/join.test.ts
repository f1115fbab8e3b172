import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runSwarm, startLocalNode } from '../../scripts/local-swarm.js'
import { waitFor } from '../helpers/wait.js'

let root: string
beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'swarm-join-')) })
afterAll(async () => { await rm(root, { recursive: true, force: true }) })

describe('swarm join', () => {
  it('prints its peer id and loopback addresses, keeps its key private and its peer id across restarts, stops cleanly', async () => {
    const home = join(root, 'a')
    const first = await startLocalNode(home)
    expect(first.peerId).toMatch(/^12D3KooW/)
    expect(first.addresses.length).toBeGreaterThan(0)
    for (const a of first.addresses) expect(a).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${first.peerId}$`))
    expect(first.controlUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect((await stat(join(home, 'identity.key'))).mode & 0o777).toBe(0o600)
    expect((await stat(join(home, 'control.json'))).mode & 0o777).toBe(0o600)
    const control = JSON.parse(await readFile(join(home, 'control.json'), 'utf8')) as { url: string, token: string }
    expect(control.url).toBe(first.controlUrl)
    expect(control.token).toMatch(/^[0-9a-f]{64}$/)

    // A second node on the same home would fight over its jobs: refused, and the first keeps running.
    const clash = await runSwarm(['join', '--home', home, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'])
    expect(clash.exitCode).toBe(2)
    expect(clash.stderr).toMatch(/another swarm node \(pid \d+\) is running with home/)

    expect(await first.stop('SIGTERM')).toBe(0)
    expect(existsSync(join(home, 'control.json'))).toBe(false)
    expect(existsSync(join(home, 'node.lock'))).toBe(false)

    const again = await startLocalNode(home)
    expect(again.peerId).toBe(first.peerId)
    expect(await again.stop()).toBe(0)
  })

  it('refuses a listen address that is not a multiaddr, with usage exit code 2', async () => {
    const r = await runSwarm(['join', '--home', join(root, 'b'), '--listen', '127.0.0.1:4010', '--no-mdns'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/127\.0\.0\.1:4010 is not a multiaddr/)
  })

  it('has help that lists the options it takes', async () => {
    const r = await runSwarm(['join', '--help'])
    expect(r.exitCode).toBe(0)
    for (const flag of ['--home', '--listen', '--bootstrap', '--slots', '--no-mdns', '--max-memory']) expect(r.stdout).toContain(flag)
    expect(r.stdout).toMatch(/--max-memory SIZE +memory one encode \(one slot\) may take, e\.g\. 2G or 1500M/)
  })

  it('takes --verify all or adaptive; adaptive without a swarm key starts, with a warning that it trusts every peer', async () => {
    const node = await startLocalNode(join(root, 'v'), { extraArgs: ['--verify', 'adaptive'] })
    try {
      await waitFor('the warning', () => node.stderr().includes('warning: this node has no --swarm-key'), { timeoutMs: 5000, everyMs: 50 })
      expect(node.stderr()).toMatch(/ warning: this node has no --swarm-key, and --verify adaptive trusts every peer that connects: after each peer's first result in a job, only about one in 4 of its results gets the picture check/)
    } finally {
      expect(await node.stop()).toBe(0)
    }
    // Without --verify and without a key: no such warning (mode all).
    const plain = await startLocalNode(join(root, 'w'))
    expect(await plain.stop()).toBe(0)
    expect(plain.stderr()).not.toContain('--verify adaptive')
    const bad = await runSwarm(['join', '--home', join(root, 'x'), '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--no-upnp', '--verify', 'sometimes'])
    expect(bad.exitCode).toBe(2)
    expect(bad.stderr).toMatch(/swarm join: --verify is all or adaptive, not "sometimes"/)
    const help = await runSwarm(['join', '--help'])
    expect(help.stdout).toMatch(/--verify all\|adaptive +how peers' results of jobs added here are checked/)
    const addHelp = await runSwarm(['add', '--help'])
    expect(addHelp.stdout).toMatch(/--verify all\|adaptive +how peers' results of this job are checked/)
  })

  it('takes --max-memory as the memory one encode may take and --encode-priority, and swarm status shows them (text and --json)', async () => {
    const home = join(root, 'm')
    const node = await startLocalNode(home, { extraArgs: ['--max-memory', '1500M', '--encode-priority', 'low'] })
    try {
      const json = await runSwarm(['status', '--home', home, '--json'])
      expect(json.exitCode).toBe(0)
      expect((JSON.parse(json.stdout) as { worker: { memoryBudgetBytes: number } }).worker).toMatchObject({ memoryBudgetBytes: 1500 * 1024 * 1024, encodePriority: 'low' })
      const text = await runSwarm(['status', '--home', home])
      expect(text.stdout).toMatch(/^WORKER \(1 slot, 1\.46 GiB of memory each, encodes at low priority\)$/m)
    } finally {
      expect(await node.stop()).toBe(0)
    }
    // A size that is none, or too small for an encode, is a usage error before the node starts.
    for (const [size, why] of [['lots', /--max-memory: "lots" is not a size/], ['64M', /--max-memory: 64M is too little memory for an encode/]] as const) {
      const r = await runSwarm(['join', '--home', join(root, 'n'), '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--no-upnp', '--max-memory', size])
      expect(r.exitCode).toBe(2)
      expect(r.stderr).toMatch(why)
    }
    const priority = await runSwarm(['join', '--home', join(root, 'n'), '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--no-upnp', '--encode-priority', 'high'])
    expect(priority.exitCode).toBe(2)
    expect(priority.stderr).toMatch(/swarm join: --encode-priority is idle, low, normal, not "high"/)
  })
})
