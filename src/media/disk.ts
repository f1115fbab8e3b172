import { stat, statfs } from 'node:fs/promises'
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

/** Space promised to transfers under way: taken off what statfs says is free. */
export interface SpaceReservation {
  readonly bytes: number
  /** Gives the space back; a second call does nothing. */
  release: () => void
}

/**
 * Transfers under way, by the device their folder is on. A free-space check alone reserved
 * nothing: ten uploads of 1 GB each, checked at once against 2 GB free, all passed and the disk
 * filled. Each transfer now reserves its declared size from the check until it ends (its bytes
 * are then on disk, where statfs counts them). While it runs, what it has written is counted twice
 * (on disk and reserved): a transfer may be refused a little early, never let in too late.
 */
const reserved = new Map<number, number>()

/** The bytes reserved now on the disk holding `dir` (for tests and status). */
export async function reservedBytes (dir: string): Promise<number> {
  return reserved.get((await stat(dir)).dev) ?? 0
}

/**
 * Like checkFreeSpace, but what other transfers have reserved counts as used, and on success the
 * bytes are reserved until release(). The check and the reservation are one synchronous step
 * after the disk is asked, so transfers checked at the same moment see each other's reservations.
 */
export async function reserveSpace (dir: string, bytes: number, what: string): Promise<SpaceReservation> {
  const [{ dev }, free] = await Promise.all([stat(dir), freeBytes(dir)])
  const taken = reserved.get(dev) ?? 0
  if (free - taken < bytes + DISK_RESERVE_BYTES) {
    throw new DiskSpaceError(`not enough free space in ${dir} for ${what}: ${bytes} bytes needed plus ${DISK_RESERVE_BYTES} kept free, ${free} available of which ${taken} promised to transfers under way`)
  }
  reserved.set(dev, taken + bytes)
  let held = true
  return {
    bytes,
    release: () => {
      if (!held) return
      held = false
      const left = (reserved.get(dev) ?? bytes) - bytes
      if (left > 0) reserved.set(dev, left)
      else reserved.delete(dev)
    }
  }
}
