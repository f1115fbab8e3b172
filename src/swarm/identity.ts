import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'

export const IDENTITY_FILE = 'identity.key'

/**
 * The node's Ed25519 key, created on first start and kept in `<home>/identity.key` (protobuf, as
 * libp2p writes keys), readable by the owner only, so the peer id is the same after a restart.
 */
export async function loadOrCreateIdentity (home: string): Promise<{ privateKey: PrivateKey, created: boolean }> {
  await mkdir(home, { recursive: true, mode: 0o700 })
  const file = join(home, IDENTITY_FILE)
  let bytes: Buffer | undefined
  try {
    bytes = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (bytes !== undefined) {
    let key: PrivateKey
    try {
      key = privateKeyFromProtobuf(bytes)
    } catch (err) {
      throw new Error(`${file} is not a libp2p private key (${(err as Error).message}); move it away to create a new identity`)
    }
    // A key others could read is a key others could use: tighten it rather than refuse to start.
    if (((await stat(file)).mode & 0o077) !== 0) await chmod(file, 0o600)
    return { privateKey: key, created: false }
  }
  const key = await generateKeyPair('Ed25519')
  await writeFile(file, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' })
  return { privateKey: key, created: true }
}
