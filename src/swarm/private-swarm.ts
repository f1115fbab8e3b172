import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'

/**
 * Pre-shared keys for private swarms, in the format libp2p (and go-libp2p, IPFS) use for
 * `swarm.key` files, so one key file works for every implementation:
 *   /key/swarm/psk/1.0.0/
 *   /base16/
 *   <64 hex digits>
 */
const HEADER = '/key/swarm/psk/1.0.0/\n/base16/\n'

export class SwarmKeyError extends Error {
  override name = 'SwarmKeyError'
}

/** Checks a key file's bytes and returns them normalised for @libp2p/pnet. */
export function parseSwarmKey (bytes: Uint8Array, source: string): Uint8Array {
  const text = Buffer.from(bytes).toString('utf8').replace(/\r\n/g, '\n').trim()
  const m = /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n([0-9a-fA-F]{64})$/.exec(text)
  if (m === null) throw new SwarmKeyError(`${source} is not a swarm key: expected three lines, "/key/swarm/psk/1.0.0/", "/base16/" and 64 hex digits (make one with: swarm key generate FILE)`)
  return new TextEncoder().encode(HEADER + (m[1] as string).toLowerCase())
}

/** Writes a new random key, readable by the owner only; never overwrites an existing file. */
export async function generateSwarmKey (path: string): Promise<void> {
  await writeFile(path, HEADER + randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' })
}

/**
 * A warning when a swarm key file is readable by other users (undefined when it is not): the key
 * is the swarm's only gate, and anyone who can read the file can join it.
 */
export function looseKeyWarning (path: string, mode: number): string | undefined {
  if ((mode & 0o077) === 0) return undefined
  return `swarm key ${path} is readable by other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): anyone who can read it can join your swarm; run chmod 600 ${path}`
}
