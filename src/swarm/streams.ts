import { createHash } from 'node:crypto'
import { open, rm } from 'node:fs/promises'
import type { Stream } from '@libp2p/interface'
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'
import { z } from 'zod'
import { DATA_FRAME_BYTES, MAX_CONTROL_FRAME, STREAM_IDLE_TIMEOUT_MS, TRANSFER_ALLOWANCE_MS, transferDeadlineMs } from './protocol.js'
import { encodeFrame, parseFrame, ProtocolViolation } from './messages.js'

/**
 * Flow control for file bytes, at the application level: the receiver acknowledges every ACK_EVERY
 * bytes it has written to disk, and the sender keeps at most SEND_WINDOW bytes unacknowledged. The
 * byte stream under lpStream buffers whatever arrives and aborts past its limit, and pausing a
 * libp2p stream does not bound what is already in flight, so the sender must be told.
 */
export const ACK_EVERY = 1024 * 1024
export const SEND_WINDOW = 4 * 1024 * 1024
/** How much of a file sendFile reads at once (a multiple of DATA_FRAME_BYTES). */
const READ_BYTES = 1024 * 1024
/** Room for a full send window plus frames in flight. */
const BUFFER_LIMIT = SEND_WINDOW + 4 * DATA_FRAME_BYTES

/**
 * A transfer that did not end within its deadline (transferDeadlineMs): the peer sent, or took,
 * its bytes slower than any honest one does. The worker counts it as a strike against the peer.
 */
export class TransferTooSlow extends Error {
  override name = 'TransferTooSlow'
}

const Ack = z.object({ ack: z.number().int().min(0) }).strict()

/** Bytes of varint needed for the largest frame (256 KiB → 3). */
const MAX_LENGTH_BYTES = 3

/**
 * lpStream checks a length prefix only once it is decoded, so an endless run of 0xff bytes would
 * be read one byte at a time until the idle timeout. This decoder gives up after `maxBytes`.
 */
function boundedVarint (maxBytes: number): (buf: Uint8ArrayList) => number {
  return (buf) => {
    let value = 0
    for (let i = 0; i < buf.byteLength; i++) {
      const b = buf.get(i)
      value += (b & 0x7f) * 2 ** (7 * i)
      if (b < 0x80) return value
      if (i + 1 >= maxBytes) throw new ProtocolViolation(`frame length prefix longer than ${maxBytes} bytes`)
    }
    // lpStream reads one more byte and calls us again.
    throw new RangeError('incomplete varint')
  }
}

/**
 * Framing shared by every swarm protocol: unsigned-varint length-prefixed frames, JSON for
 * control messages (at most MAX_CONTROL_FRAME bytes), raw bytes for files (at most
 * DATA_FRAME_BYTES per frame). Every read has an idle timeout on top of the caller's signal.
 */
export class FramedStream {
  readonly lp: LengthPrefixedStream<Stream>

  constructor (readonly stream: Stream, private readonly signal: AbortSignal, private readonly idleMs = STREAM_IDLE_TIMEOUT_MS, private readonly transferAllowanceMs = TRANSFER_ALLOWANCE_MS) {
    this.lp = lpStream(stream, { maxDataLength: Math.max(MAX_CONTROL_FRAME, DATA_FRAME_BYTES), lengthDecoder: boundedVarint(MAX_LENGTH_BYTES), maxBufferSize: BUFFER_LIMIT })
  }

  private readSignal (idleMs = this.idleMs, deadline?: AbortSignal): AbortSignal {
    return AbortSignal.any([this.signal, AbortSignal.timeout(idleMs), ...(deadline !== undefined ? [deadline] : [])])
  }

  /**
   * Runs one transfer of `size` bytes under its overall deadline (transferDeadlineMs): past it the
   * reads and writes under way are cut and TransferTooSlow says how far it got.
   */
  private async withDeadline<T> (size: number, what: string, progress: () => number, run: (deadline: AbortSignal) => Promise<T>): Promise<T> {
    const ms = transferDeadlineMs(size, this.transferAllowanceMs)
    const deadline = AbortSignal.timeout(ms)
    try {
      return await run(deadline)
    } catch (err) {
      if (deadline.aborted && !this.signal.aborted) throw new TransferTooSlow(`${what}: ${progress()} of ${size} bytes in ${(ms / 1000).toFixed(1)} s, slower than any honest peer (the deadline allows ${(this.transferAllowanceMs / 1000).toFixed(0)} s plus 64 KiB/s)`)
      throw err
    }
  }

  /** Reads one JSON frame; `idleMs` overrides the idle limit for an answer that takes work to produce. */
  async readMessage<T extends z.ZodTypeAny>(schema: T, what: string, idleMs?: number, deadline?: AbortSignal): Promise<z.infer<T>> {
    const frame = await this.lp.read({ signal: this.readSignal(idleMs, deadline) })
    if (frame.byteLength > MAX_CONTROL_FRAME) throw new ProtocolViolation(`${what}: ${frame.byteLength} bytes is more than the ${MAX_CONTROL_FRAME} allowed`)
    return parseFrame(schema, frame.subarray(), what)
  }

  async writeMessage (value: unknown): Promise<void> {
    await this.lp.write(encodeFrame(value), { signal: this.signal })
  }

  /**
   * Sends exactly `size` bytes of a file, never more than SEND_WINDOW ahead of the receiver's
   * acknowledgements, and returns once every acknowledgement due has arrived.
   */
  async sendFile (path: string, size: number): Promise<void> {
    let acked = 0
    await this.withDeadline(size, `sending ${size} bytes`, () => acked, async (deadline) => { await this.sendWithin(path, size, deadline, (n) => { acked = n }) })
  }

  private async sendWithin (path: string, size: number, deadline: AbortSignal, onAck: (acked: number) => void): Promise<void> {
    const fh = await open(path, 'r')
    let acked = 0
    const writeSignal = AbortSignal.any([this.signal, deadline])
    const readAck = async (): Promise<void> => {
      const { ack } = await this.readMessage(Ack, 'transfer acknowledgement', undefined, deadline)
      if (ack <= acked || ack > size || ack % ACK_EVERY !== 0) throw new ProtocolViolation(`transfer acknowledgement of ${ack} bytes does not follow ${acked}`)
      acked = ack
      onAck(ack)
    }
    try {
      let sent = 0
      while (sent < size) {
        // One read per READ_BYTES, sent as several frames: a read and a buffer per frame were a
        // fifth of the originator's Node.js time serving segments. Each read gets a fresh buffer,
        // as frames may still be queued below us when the next read lands.
        const buf = Buffer.allocUnsafe(Math.min(READ_BYTES, size - sent))
        const { bytesRead } = await fh.read(buf, 0, buf.length, sent)
        if (bytesRead === 0) throw new Error(`${path} is shorter than the ${size} bytes announced`)
        for (let at = 0; at < bytesRead; at += DATA_FRAME_BYTES) {
          while (sent - acked >= SEND_WINDOW) await readAck()
          const frame = buf.subarray(at, Math.min(bytesRead, at + DATA_FRAME_BYTES))
          await this.lp.write(frame, { signal: writeSignal })
          sent += frame.byteLength
        }
      }
      // The receiver acknowledges every whole ACK_EVERY bytes; read them all so the next frame
      // the caller reads is the answer that follows the file.
      while (acked < size - (size % ACK_EVERY)) await readAck()
    } finally {
      await fh.close()
    }
  }

  /**
   * Receives exactly `size` bytes into `dest` and checks their SHA-256. On any failure the partial
   * file is removed, so nothing half-written is ever mistaken for a complete one.
   */
  async receiveFile (dest: string, size: number, sha256: string, what: string): Promise<void> {
    let received = 0
    await this.withDeadline(size, what, () => received, async (deadline) => { await this.receiveWithin(dest, size, sha256, what, deadline, (n) => { received = n }) })
  }

  private async receiveWithin (dest: string, size: number, sha256: string, what: string, deadline: AbortSignal, onProgress: (received: number) => void): Promise<void> {
    const fh = await open(dest, 'w', 0o600)
    const hash = createHash('sha256')
    let ok = false
    try {
      let received = 0
      // Parts since the last write: written together (one writev) when an acknowledgement falls due
      // and at the end; one write per part (a Noise message, 64 KiB) was a fifth of a worker's
      // Node.js time receiving segments.
      let unwritten: Uint8Array[] = []
      while (received < size) {
        const frame = await this.lp.read({ signal: this.readSignal(this.idleMs, deadline) })
        if (frame.byteLength === 0) throw new ProtocolViolation(`${what}: empty data frame`)
        if (received + frame.byteLength > size) throw new ProtocolViolation(`${what}: more bytes than the ${size} announced`)
        for (const part of frame) {
          hash.update(part)
          unwritten.push(part)
        }
        const before = received
        received += frame.byteLength
        onProgress(received)
        const ackDue = Math.floor(received / ACK_EVERY) > Math.floor(before / ACK_EVERY)
        if (ackDue || received === size) {
          await fh.writev(unwritten)
          unwritten = []
        }
        // Written to disk: the sender may send more.
        if (ackDue) await this.writeMessage({ ack: received - (received % ACK_EVERY) })
      }
      const got = hash.digest('hex')
      if (got !== sha256) throw new ProtocolViolation(`${what}: SHA-256 mismatch (got ${got.slice(0, 12)}, expected ${sha256.slice(0, 12)})`)
      ok = true
    } finally {
      await fh.close()
      if (!ok) await rm(dest, { force: true })
    }
  }

  async close (): Promise<void> {
    try {
      await this.stream.close({ signal: AbortSignal.any([this.signal, AbortSignal.timeout(this.idleMs)]) })
    } catch (err) {
      this.stream.abort(err as Error)
    }
  }

  abort (err: Error): void {
    this.stream.abort(err)
  }
}
