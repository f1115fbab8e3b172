import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { crc32 } from 'node:zlib'

/**
 * Feeds a file to `take` in 1 MiB reads through one reused buffer. A read stream allocates a fresh
 * buffer per read: 0.15-0.20 s of CPU for a 140 MB source with 1 MiB reads (0.24 s with 64 KiB),
 * against 0.12 s here, the difference mostly garbage. The originator hashes every source and segment.
 */
async function eachBlock (path: string, take: (block: Buffer) => void): Promise<void> {
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.allocUnsafe(1 << 20)
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null)
      if (bytesRead === 0) return
      take(buf.subarray(0, bytesRead))
    }
  } finally {
    await fh.close()
  }
}

export async function sha256File (path: string): Promise<string> {
  const hash = createHash('sha256')
  await eachBlock(path, (block) => { hash.update(block) })
  return hash.digest('hex')
}

/** CRC32 as fansub release names carry it: eight upper-case hex digits. */
export async function crc32File (path: string): Promise<string> {
  let crc = 0
  await eachBlock(path, (block) => { crc = crc32(block, crc) })
  return crc.toString(16).toUpperCase().padStart(8, '0')
}

const CRC_TAG = /\[([0-9A-Fa-f]{8})\]/g

/** The CRC32 a file name carries in brackets (`Show - 01 [ABCDEF01].mkv`), the last one if several. */
export function crcInName (fileName: string): string | undefined {
  const all = [...fileName.matchAll(CRC_TAG)]
  const last = all[all.length - 1]
  return last === undefined ? undefined : (last[1] as string).toUpperCase()
}

export function stripCrcTag (stem: string): string {
  const crc = crcInName(stem)
  if (crc === undefined) return stem
  const idx = stem.toUpperCase().lastIndexOf(`[${crc}]`)
  return (stem.slice(0, idx) + stem.slice(idx + 10)).replace(/\s{2,}/g, ' ').trim()
}
