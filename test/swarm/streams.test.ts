import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync } from 'node:fs'
import { lpStream } from '@libp2p/utils'
import { FramedStream, TransferTooSlow, type SwarmNode } from '../../src/swarm/index.js'
import { SEND_WINDOW } from '../../src/swarm/streams.js'
import { makeNode } from './helpers.js'

/**
 * Flow control of file transfers: a receiver that falls behind must hold the sender back (it may
 * run at most SEND_WINDOW ahead) instead of buffering without bound (the byte stream under
 * lpStream aborts past its limit), and still get every byte.
 */
const BULK = '/swarm-encode-test/bulk/1.0.0'
let a: SwarmNode
let b: SwarmNode
let dir: string
let source: string
let digest: string
let sentAhead: () => number = () => 0
const SIZE = 64 * 1024 * 1024
/** Not a whole number of acknowledgements, read blocks or frames: the tail is written without an ack. */
const ODD = '/swarm-encode-test/bulk-odd/1.0.0'
const ODD_SIZE = 3 * 1024 * 1024 + 12_345
let oddSource: string
let oddDigest: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swarm-streams-'))
  source = join(dir, 'source.bin')
  const bytes = randomBytes(SIZE)
  await writeFile(source, bytes)
  digest = createHash('sha256').update(bytes).digest('hex')
  oddSource = join(dir, 'odd.bin')
  const odd = randomBytes(ODD_SIZE)
  await writeFile(oddSource, odd)
  oddDigest = createHash('sha256').update(odd).digest('hex')
  a = await makeNode()
  b = await makeNode()
  await a.handle(ODD, async (stream) => {
    const f = new FramedStream(stream, AbortSignal.timeout(60_000))
    await f.sendFile(oddSource, ODD_SIZE)
    await f.close()
  })
  // A sends the whole file as soon as a stream opens, then closes its end.
  await a.handle(BULK, async (stream) => {
    const f = new FramedStream(stream, AbortSignal.timeout(60_000))
    // Measure how far ahead of the receiver the sender gets: what it has written minus what was read.
    let written = 0
    const send = stream.send.bind(stream)
    stream.send = (data) => { written += data.byteLength; return send(data) }
    sentAhead = () => written
    await f.sendFile(source, SIZE)
    await f.close()
  })
})
afterAll(async () => {
  await Promise.allSettled([a.stop(), b.stop()])
  await rm(dir, { recursive: true, force: true })
})

/** Receives a file over `f` and checks what landed on disk (not only what went through the hash). */
async function receiveAndReadBack (f: FramedStream, name: string, size: number, sha256: string): Promise<void> {
  const dest = join(dir, `received-${name}.bin`)
  await f.receiveFile(dest, size, sha256, name)
  await f.close()
  const got = await readFile(dest)
  expect(got.byteLength).toBe(size)
  expect(createHash('sha256').update(got).digest('hex')).toBe(sha256)
}

describe('FramedStream flow control', () => {
  it('a receiver that starts late gets every byte of a 64 MiB file intact, with the sender never more than the send window ahead', async () => {
    const stream = await b.dialProtocol(a.getMultiaddrs()[0]!, BULK)
    const f = new FramedStream(stream, AbortSignal.timeout(60_000))
    // Let the sender run ahead: without flow control it would send everything into our buffer.
    await new Promise(r => setTimeout(r, 1500))
    expect(sentAhead()).toBeLessThanOrEqual(SEND_WINDOW + 2 * 1024 * 1024)
    await receiveAndReadBack(f, 'bulk', SIZE, digest)
  })

  it('a file of no whole number of frames or acknowledgements arrives intact, its last bytes written too', async () => {
    const stream = await b.dialProtocol(a.getMultiaddrs()[0]!, ODD)
    await receiveAndReadBack(new FramedStream(stream, AbortSignal.timeout(60_000)), 'odd', ODD_SIZE, oddDigest)
  })
})

/**
 * The overall deadline of a transfer (issue 26): a sender that keeps every frame inside the idle
 * limit but trickles is cut at the allowance plus its size at 64 KiB/s, and nothing half-written stays.
 */
describe('FramedStream transfer deadline', () => {
  const TRICKLE = '/swarm-encode-test/trickle/1.0.0'
  it('cuts a transfer that sends a byte every 300 ms at its deadline (allowance + size at 64 KiB/s), and removes the partial file', async () => {
    await a.handle(TRICKLE, async (stream) => {
      const lp = lpStream(stream)
      try {
        for (let i = 0; i < 1000; i++) {
          await lp.write(new Uint8Array([i & 0xff]), { signal: AbortSignal.timeout(2000) })
          await new Promise(resolve => setTimeout(resolve, 300))
        }
      } catch (err) { stream.abort(err as Error) }
    })
    const stream = await b.dialProtocol(a.getMultiaddrs()[0]!, TRICKLE)
    // Idle limit 5 s (never reached: a byte every 300 ms); allowance 1 s; 32 KiB at 64 KiB/s is 0.5 s more.
    const f = new FramedStream(stream, AbortSignal.timeout(60_000), 5000, 1000)
    const dest = join(dir, 'trickled.bin')
    const started = Date.now()
    const err = await f.receiveFile(dest, 32 * 1024, 'ab'.repeat(32), 'trickled segment').then(() => undefined, (e: Error) => e)
    const took = Date.now() - started
    expect(err).toBeInstanceOf(TransferTooSlow)
    expect(err?.message).toMatch(/^trickled segment: \d of 32768 bytes in 1\.5 s, slower than any honest peer/)
    expect(took).toBeGreaterThanOrEqual(1450)
    expect(took).toBeLessThan(3000)
    expect(existsSync(dest)).toBe(false)
    f.abort(err as Error)
    await a.unhandle(TRICKLE)
  })
})
