import { execa } from 'execa'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { crc32File, sha256File } from '../../src/media/index.js'

let scratch: string
beforeAll(async () => { scratch = await mkdtemp(join(tmpdir(), 'swarm-hash-')) })
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

describe('sha256File and crc32File', () => {
  it('agree with sha256sum and zlib over a file that spans several read blocks, and over an empty one', async () => {
    // 3 MiB and 17 bytes: three full 1 MiB blocks and a short one.
    const data = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => (i * 2654435761) >>> 24))
    const big = join(scratch, 'big.bin')
    await writeFile(big, data)
    const empty = join(scratch, 'empty.bin')
    await writeFile(empty, '')
    for (const [path, bytes] of [[big, data], [empty, Buffer.alloc(0)]] as const) {
      const { stdout } = await execa('sha256sum', [path])
      expect(await sha256File(path)).toBe(stdout.split(' ')[0])
      expect(await crc32File(path)).toBe(crc32(bytes).toString(16).toUpperCase().padStart(8, '0'))
    }
  })
})
