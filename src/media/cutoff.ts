import { Transform, type TransformCallback } from 'node:stream'

/** How far an encode under an EncodeCutoff has got: what a caller needs to choose where it may end. */
export interface CutoffProgress {
  /** Frames handed to the encoder so far (the one being handed over included): an end before them is too late. */
  framesPiped: number
  /** The frames the chunk was started with. */
  frames: number
}

/**
 * A handle on a running encode that ends it before its last frame: the originator's own worker,
 * holding a straggling chunk while a peer is idle, stops at a frame it has not handed to its
 * encoder yet and the rest becomes a chunk of its own (jobs/straggler.ts). The encode's frames go
 * through this process then (Y4mFrameGate), so only encodes that may be split take one.
 */
export class EncodeCutoff {
  private gate?: Y4mFrameGate
  private frames = 0

  /** encodeChunk's side: the gate its frames pass through. */
  attach (gate: Y4mFrameGate, frames: number): void { this.gate = gate; this.frames = frames }
  detach (): void { this.gate = undefined }

  /** Where the encode stands, while it can still be ended early; undefined before and after. */
  progress (): CutoffProgress | undefined {
    const gate = this.gate
    if (gate === undefined || gate.ended || !gate.parsing) return undefined
    return { framesPiped: gate.framesPassed, frames: gate.limit ?? this.frames }
  }

  /**
   * Ends the encode after its first `frames` frames. Refused (false) when it is not running, when
   * that is not fewer than it has (or was already cut to: a second cut only shortens it more), or
   * when the encoder was already handed more: the result then has exactly `frames` frames, which
   * encodeChunk checks as it would the whole count.
   */
  endAt (frames: number): boolean {
    const gate = this.gate
    if (gate === undefined || !Number.isInteger(frames) || frames < 1 || frames >= (gate.limit ?? this.frames)) return false
    return gate.limitTo(frames)
  }

}

/**
 * Passes a yuv4mpeg stream through, counting its frames, and ends it at a frame boundary once a
 * limit is set. A stream header it cannot size frames from (an unknown colour space) is passed
 * through untouched, and no limit is accepted for it.
 */
export class Y4mFrameGate extends Transform {
  /** Frames whose FRAME marker has been passed on. */
  framesPassed = 0
  limit?: number
  ended = false
  /** The header was read and frames can be sized. */
  parsing = false
  private frameBytes = 0
  private header: Buffer | undefined = Buffer.alloc(0)
  private marker = Buffer.alloc(0)
  /** Payload bytes of the current frame still to pass. */
  private left = 0
  private passThrough = false

  /** The limit is set only if no frame past it has been passed on. */
  limitTo (frames: number): boolean {
    if (!this.parsing || this.ended || frames < this.framesPassed) return false
    this.limit = frames
    return true
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.ended) { done(); return }
    if (this.passThrough) { done(null, chunk); return }
    let at = 0
    if (this.header !== undefined) {
      at = this.readHeader(chunk)
      if (this.passThrough || this.header !== undefined) { done(); return }
    }
    while (at < chunk.length && !this.ended) at = this.left > 0 ? this.payload(chunk, at) : this.frameMarker(chunk, at)
    done()
  }

  /** Reads the stream header; returns where the frames begin in this chunk. */
  private readHeader (chunk: Buffer): number {
    const all = Buffer.concat([this.header as Buffer, chunk])
    const nl = all.indexOf(0x0a)
    if (nl < 0) {
      this.header = all
      // No header is this long: not a stream to count.
      if (all.length > 4096) { this.passThrough = true; this.header = undefined; this.push(all) }
      return chunk.length
    }
    const line = all.subarray(0, nl).toString('latin1')
    this.header = undefined
    this.frameBytes = y4mFrameBytes(line) ?? 0
    this.parsing = this.frameBytes > 0
    if (!this.parsing) { this.passThrough = true; this.push(all); return chunk.length }
    this.push(all.subarray(0, nl + 1))
    // Where the rest of `all` starts inside `chunk`.
    return nl + 1 - (all.length - chunk.length)
  }

  private frameMarker (chunk: Buffer, at: number): number {
    const nl = chunk.indexOf(0x0a, at)
    const piece = chunk.subarray(at, nl < 0 ? chunk.length : nl + 1)
    this.marker = Buffer.concat([this.marker, piece])
    if (nl < 0) return chunk.length
    if (this.limit !== undefined && this.framesPassed >= this.limit) {
      this.ended = true
      this.push(null)
      return chunk.length
    }
    this.push(this.marker)
    this.marker = Buffer.alloc(0)
    this.framesPassed++
    this.left = this.frameBytes
    return nl + 1
  }

  private payload (chunk: Buffer, at: number): number {
    const n = Math.min(this.left, chunk.length - at)
    this.push(chunk.subarray(at, at + n))
    this.left -= n
    return at + n
  }

  override _flush (done: TransformCallback): void {
    if (this.header !== undefined && this.header.length > 0) this.push(this.header)
    done()
  }
}

/** Bytes of one frame's pictures from a yuv4mpeg stream header (W, H and C), or undefined for a colour space it does not know. */
export function y4mFrameBytes (header: string): number | undefined {
  if (!header.startsWith('YUV4MPEG2 ')) return undefined
  const field = (tag: string): string | undefined => header.split(' ').find(f => f.startsWith(tag))?.slice(1)
  const width = Number(field('W'))
  const height = Number(field('H'))
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) return undefined
  const colour = field('C') ?? '420jpeg'
  const m = /^(420|422|444|mono)(jpeg|mpeg2|paldv|p(\d+)|(\d+))?$/.exec(colour)
  if (m === null) return undefined
  const sampleBytes = Number(m[3] ?? m[4] ?? 8) > 8 ? 2 : 1
  const luma = width * height
  const cw = m[1] === '444' ? width : Math.ceil(width / 2)
  const ch = m[1] === '420' ? Math.ceil(height / 2) : height
  const chroma = m[1] === 'mono' ? 0 : 2 * cw * ch
  return (luma + chroma) * sampleBytes
}
