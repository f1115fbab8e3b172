/**
 * Transfers that would leave no room on the disk (issue 15, item 5). B is an in-process daemon
 * whose home is a small tmpfs (so this test needs root, like the network-namespace tests; it fails
 * rather than skips without it), with a job of its own. H is a hostile peer that uploads a result
 * that would not fit; HO a hostile originator that serves B's worker a segment that would not fit.
 * Both sizes are within what the chunk could honestly be: only the free space stands in the way.
 */
import { execa } from 'execa'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, statfs, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DISK_RESERVE_BYTES } from '../../src/media/index.js'
import { encodeFrame, RESULT_PROTOCOL, type SegmentMeta, type SwarmNode } from '../../src/swarm/index.js'
import { maxSegmentBytes } from '../../src/worker/index.js'
import { ensureFixtures } from '../fixtures.js'
import { gatedOriginator, type GatedOriginator } from '../helpers/gated-originator.js'
import { hostileOriginator } from '../helpers/hostile-arbiter.js'
import { recordTally } from '../helpers/tally.js'
import { waitFor } from '../helpers/wait.js'
import { makeNode } from '../swarm/helpers.js'

const SECTION = 'Hostile input: uploads and downloads'
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
/** Enough for B's job (segments, results, output: a few MiB) beside the 64 MiB every transfer leaves free. */
const TMPFS_MIB = 68

let root: string
let small: string
let mounted = false
let B: GatedOriginator
let H: SwarmNode
let HO: SwarmNode | undefined
const logsB: string[] = []

const freeBytes = async (dir: string): Promise<number> => { const fs = await statfs(dir); return fs.bavail * fs.bsize }

beforeAll(async () => {
  const fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-disk-'))
  small = join(root, 'small')
  await mkdir(small)
  await execa('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_MIB}m,mode=0700`, 'swarm-test', small])
  mounted = true
  B = await gatedOriginator(join(small, 'b'), fx.openGop10bit, '--preset superfast --crf 28', { log: l => logsB.push(l) })
  H = await makeNode()
})

afterAll(async () => {
  B?.open()
  await Promise.allSettled([H?.stop(), HO?.stop()])
  await B?.A.stop()
  if (mounted) await execa('umount', [small]).catch(() => {})
  if (root !== undefined) await rm(root, { recursive: true, force: true })
})

describe('a disk without room', () => {
  it('an upload that would leave less than the reserve free is refused with no-space before any byte', async () => {
    const link = H.services.encode.linkTo(B.A.peerId, B.A.addresses())
    const target = (await B.chunks()).find(c => c.state === 'open')?.index as number
    const got = await link.claim(B.jobId, target, AbortSignal.timeout(5000))
    if (!got.ok) throw new Error(got.message)
    const incoming = join(small, 'b', 'jobs', B.jobId, 'incoming')
    // A little more than the room left above the reserve, and still within the chunk's size bound.
    const size = (await freeBytes(small)) - DISK_RESERVE_BYTES + 512 * 1024
    expect(size).toBeGreaterThan(0)
    // Within the chunk's bound (lossless 8-bit 4:2:0 of its frames), so only the free space can refuse it.
    expect(size).toBeLessThan(1.25 * 1.5 * ((await B.chunks())[target]?.frames ?? 0) * 320 * 180)
    const stream = await H.dialProtocol(multiaddr(B.A.addresses()[0] as string), RESULT_PROTOCOL, { signal: AbortSignal.timeout(5000) })
    const lp = lpStream(stream, { maxDataLength: 1024 * 1024 })
    await lp.write(encodeFrame({ jobId: B.jobId, chunk: target, leaseId: got.lease.leaseId, size, sha256: sha256(randomBytes(8)) }))
    const answer = JSON.parse(new TextDecoder().decode((await lp.read({ signal: AbortSignal.timeout(5000) })).subarray()))
    stream.abort(new Error('done'))
    // Before: a go-ahead, and the bytes written until the disk was full.
    expect(answer).toMatchObject({ ok: false, code: 'no-space' })
    expect(answer.message).not.toContain(small)
    expect(await readdir(incoming).catch(() => [])).toEqual([])
    expect(logsB.some(l => l.includes(`not enough free space in ${incoming} for a result`) && l.includes(`${size} bytes needed`))).toBe(true)
    await link.release(got.lease, '', AbortSignal.timeout(5000))
    recordTally({ section: SECTION, fault: `result upload of ${size} bytes (within the chunk's bound) to an originator with ${(size - 512 * 1024) >> 10} KiB free above its 64 MiB reserve`, happened: 'refused with no-space before any byte; the originator\'s log names the folder and the bytes, the peer is not told the path (was: let in, written until the disk was full)', lost: 'nothing' })
  })

  it('a segment that would leave less than the reserve free is refused by the worker before any byte', async () => {
    B.open()
    await waitFor('B\'s job to be done', async () => (await B.job()).state === 'done', { timeoutMs: 120_000, everyMs: 100 })
    const hostile = await hostileOriginator(B.A)
    HO = hostile.node
    const ho = HO
    const arbiter = hostile.arbiter
    const meta: SegmentMeta = { frames: 100, selectFromTime: 0, settings: '--preset superfast', frameRate: { num: 24, den: 1 }, pixFmt: 'yuv420p', width: 320, height: 180 }
    const totalFrames = 400
    const size = (await freeBytes(small)) - DISK_RESERVE_BYTES + 2 * 1024 * 1024
    expect(size).toBeLessThan(maxSegmentBytes(meta, totalFrames))
    const path = join(root, 'segment.mkv')
    await writeFile(path, randomBytes(size))
    const id = await hostile.announce(path, meta, totalFrames)
    const release = await waitFor('B\'s worker to give the chunk back', () => arbiter.callsFor(id, 'releaseLease')[0], { timeoutMs: 20_000, everyMs: 50 })
    expect(release.peer).toBe(B.A.peerId)
    // Before: the whole segment was written to B's disk.
    expect(ho.services.encode.stats.segmentBytesOut).toBe(0)
    const folder = join(small, 'b', 'work', id)
    expect(logsB.some(l => l.includes(`not enough free space in ${folder} for segment`) && l.includes(`${size} bytes needed`))).toBe(true)
    recordTally({ section: SECTION, fault: `a hostile originator serves a ${size}-byte segment (within its chunk's bound) to a worker with less room than that above its 64 MiB reserve`, happened: 'the worker refused it from the header before any byte was written, logged the folder and the bytes, and gave the chunk back (was: downloaded until the disk was full)', lost: 'nothing' })
  })
})
