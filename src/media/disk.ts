import { statfs } from 'node:fs/promises'
import { DiskSpaceError } from './errors.js'

/** Free space kept on a disk that takes bytes from peers: a transfer may not take it to the last byte. */
export const DISK_RESERVE_BYTES = 64 * 1024 * 1024

/**
 * Throws a DiskSpaceError unless the disk holding `dir` has `bytes` free beyond DISK_RESERVE_BYTES.
 * Checked before a segment download (worker) and a result upload (originator): a peer's transfer
 * must fail with a message naming the folder and the bytes, not fill the disk and break whatever
 * else writes to it.
 */
export async function checkFreeSpace (dir: string, bytes: number, what: string): Promise<void> {
  const free = await freeBytes(dir)
  if (free < bytes + DISK_RESERVE_BYTES) {
    throw new DiskSpaceError(`not enough free space in ${dir} for ${what}: ${bytes} bytes needed plus ${DISK_RESERVE_BYTES} kept free, ${free} available`)
  }
}

/** Bytes an unprivileged writer may still use on the disk holding `dir`. */
export async function freeBytes (dir: string): Promise<number> {
  const fs = await statfs(dir)
  return fs.bavail * fs.bsize
}
