import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createHash } from 'node:crypto'
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { IDENTITY_FILE, loadOrCreateIdentity } from '../../src/swarm/index.js'

const dirs: string[] = []
afterEach(async () => { for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true }) })

async function tempHome (): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'swarm-identity-'))
  dirs.push(d)
  return d
}

const modeOf = async (p: string): Promise<number> => (await stat(p)).mode & 0o777

describe('loadOrCreateIdentity', () => {
  it('creates identity.key with mode 0600 and an Ed25519 key', async () => {
    const home = join(await tempHome(), 'nested', 'home')
    const { privateKey, created } = await loadOrCreateIdentity(home)
    expect(created).toBe(true)
    expect(privateKey.type).toBe('Ed25519')
    const file = join(home, IDENTITY_FILE)
    expect(IDENTITY_FILE).toBe('identity.key')
    expect(await modeOf(file)).toBe(0o600)
    // The home it had to create is private too.
    expect((await modeOf(home)) & 0o077).toBe(0)
    // The file holds exactly this key.
    expect(Buffer.from(await readFile(file)).equals(Buffer.from(privateKeyToProtobuf(privateKey)))).toBe(true)
  })

  it('returns the same peer id on a second call, without rewriting the file', async () => {
    const home = await tempHome()
    const first = await loadOrCreateIdentity(home)
    const before = await readFile(join(home, IDENTITY_FILE))
    const second = await loadOrCreateIdentity(home)
    expect(second.created).toBe(false)
    expect(peerIdFromPrivateKey(second.privateKey).toString()).toBe(peerIdFromPrivateKey(first.privateKey).toString())
    expect(second.privateKey.equals(first.privateKey)).toBe(true)
    expect((await readFile(join(home, IDENTITY_FILE))).equals(before)).toBe(true)
    // Different homes get different identities.
    const other = await loadOrCreateIdentity(await tempHome())
    expect(peerIdFromPrivateKey(other.privateKey).toString()).not.toBe(peerIdFromPrivateKey(first.privateKey).toString())
  })

  it('loads a key written by someone else and tightens a 0644 key file to 0600', async () => {
    const home = await tempHome()
    const key = await generateKeyPair('Ed25519')
    const file = join(home, IDENTITY_FILE)
    await writeFile(file, privateKeyToProtobuf(key))
    await chmod(file, 0o644)
    expect(await modeOf(file)).toBe(0o644)
    const { privateKey, created } = await loadOrCreateIdentity(home)
    expect(created).toBe(false)
    expect(peerIdFromPrivateKey(privateKey).toString()).toBe(peerIdFromPrivateKey(key).toString())
    expect(await modeOf(file)).toBe(0o600)
  })

  it('leaves a 0400 key file alone (already private)', async () => {
    const home = await tempHome()
    await loadOrCreateIdentity(home)
    const file = join(home, IDENTITY_FILE)
    await chmod(file, 0o400)
    await loadOrCreateIdentity(home)
    expect(await modeOf(file)).toBe(0o400)
  })

  it.each([
    ['noise', Buffer.concat([createHash('sha512').update('a').digest(), Buffer.from([1, 2, 3, 4])])],
    ['text', Buffer.from('this is not a key\n')],
    ['a truncated key', Buffer.alloc(10, 8)]
  ])('gives a clear error for a corrupt key file (%s) and leaves it in place', async (_what, content) => {
    const home = await tempHome()
    const file = join(home, IDENTITY_FILE)
    await writeFile(file, content, { mode: 0o600 })
    const err = await loadOrCreateIdentity(home).then(() => undefined, (e: unknown) => e as Error)
    expect(err).toBeInstanceOf(Error)
    expect(err?.message).toContain(file)
    expect(err?.message).toContain('is not a libp2p private key')
    expect(err?.message).toContain('move it away')
    // Nothing was overwritten: a corrupt identity is never silently replaced by a new one.
    expect((await readFile(file)).equals(content)).toBe(true)
  })

  it('gives a clear error for an empty key file', async () => {
    const home = await tempHome()
    const file = join(home, IDENTITY_FILE)
    await writeFile(file, new Uint8Array(0), { mode: 0o600 })
    await expect(loadOrCreateIdentity(home)).rejects.toThrow(/is not a libp2p private key/)
    expect((await stat(file)).size).toBe(0)
  })
})
