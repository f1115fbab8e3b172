import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DISK_RESERVE_BYTES, DiskSpaceError, freeBytes, reservedBytes, reserveSpace } from '../../src/media/index.js'

let dir: string
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'swarm-disk-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

describe('reserveSpace', () => {
  it('lets in only as many concurrent transfers as the free space holds, and gives their space back when they end', async () => {
    // Each asks 40% of what may be used: checked alone, every one of three passes; at once, two fit.
    const usable = await freeBytes(dir) - DISK_RESERVE_BYTES
    const each = Math.floor(usable * 0.4)
    const three = await Promise.allSettled([1, 2, 3].map(async n => await reserveSpace(dir, each, `transfer ${n}`)))
    const held = three.flatMap(r => r.status === 'fulfilled' ? [r.value] : [])
    const refused = three.flatMap(r => r.status === 'rejected' ? [r.reason as Error] : [])
    expect(held).toHaveLength(2)
    expect(refused).toHaveLength(1)
    expect(refused[0]).toBeInstanceOf(DiskSpaceError)
    expect(refused[0]?.message).toMatch(/promised to transfers under way/)
    expect(await reservedBytes(dir)).toBe(2 * each)
    // One ends (done or failed): its space is free for the next; releasing twice gives back nothing more.
    held[0]?.release()
    held[0]?.release()
    expect(await reservedBytes(dir)).toBe(each)
    const next = await reserveSpace(dir, each, 'transfer 4')
    await expect(reserveSpace(dir, each, 'transfer 5')).rejects.toBeInstanceOf(DiskSpaceError)
    next.release()
    held[1]?.release()
    expect(await reservedBytes(dir)).toBe(0)
  })
})
