import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StatusJson } from '../../src/daemon/index.js'
import { runSwarm, startLocalNode, type LocalNode } from '../../scripts/local-swarm.js'

let root: string
const nodes: LocalNode[] = []
beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'swarm-key-')) })
afterAll(async () => {
  await Promise.allSettled(nodes.map(async n => await n.stop()))
  await rm(root, { recursive: true, force: true })
})

async function peersOf (n: LocalNode): Promise<string[]> {
  return (JSON.parse((await runSwarm(['status', '--home', n.home, '--json'])).stdout) as StatusJson).peers.map(p => p.id)
}

describe('swarm key generate and private swarms', () => {
  it('writes a libp2p pre-shared key file readable by the owner only, and never overwrites one', async () => {
    const file = join(root, 'swarm.key')
    const r = await runSwarm(['key', 'generate', file])
    expect(r.exitCode).toBe(0)
    expect(await readFile(file, 'utf8')).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\n$/)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    const again = await runSwarm(['key', 'generate', file])
    expect(again.exitCode).toBe(2)
    expect(again.stderr).toMatch(/already exists/)
  })

  it('lets nodes with the key connect and keeps out nodes without it or with another key', async () => {
    const key = join(root, 'swarm.key')
    const other = join(root, 'other.key')
    expect((await runSwarm(['key', 'generate', other])).exitCode).toBe(0)
    const a = await startLocalNode(join(root, 'a'), { extraArgs: ['--swarm-key', key] })
    nodes.push(a)
    const b = await startLocalNode(join(root, 'b'), { extraArgs: ['--swarm-key', key], bootstrap: [a.addresses[0] as string] })
    nodes.push(b)
    const open = await startLocalNode(join(root, 'open'), { bootstrap: [a.addresses[0] as string] })
    nodes.push(open)
    const stranger = await startLocalNode(join(root, 'stranger'), { extraArgs: ['--swarm-key', other], bootstrap: [a.addresses[0] as string] })
    nodes.push(stranger)
    let peers: string[] = []
    for (let i = 0; i < 50 && !peers.includes(b.peerId); i++) {
      peers = await peersOf(a)
      await new Promise(r => setTimeout(r, 200))
    }
    expect(peers).toContain(b.peerId)
    // Give the others the same time and more: they must still be outside.
    await new Promise(r => setTimeout(r, 3000))
    peers = await peersOf(a)
    expect(peers).not.toContain(open.peerId)
    expect(peers).not.toContain(stranger.peerId)
    expect(await peersOf(open)).toEqual([])
  })

  it('refuses a key file in the wrong format with exit code 2 and says what it expects', async () => {
    const bad = join(root, 'bad.key')
    await writeFile(bad, 'not a key\n')
    const r = await runSwarm(['join', '--home', join(root, 'bad'), '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns', '--swarm-key', bad])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/is not a swarm key: expected three lines/)
  })
})
