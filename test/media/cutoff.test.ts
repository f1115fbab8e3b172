import { describe, expect, it } from 'vitest'
import { Y4mFrameGate, y4mFrameBytes } from '../../src/media/index.js'

/** A yuv4mpeg stream of `n` frames of 4x2 4:2:0 pictures (12 bytes each), frame i filled with byte i. */
function stream (n: number, header = 'YUV4MPEG2 W4 H2 F25:1 Ip A1:1 C420jpeg XYSCSS=420JPEG'): Buffer {
  const parts = [Buffer.from(`${header}\n`)]
  for (let i = 0; i < n; i++) parts.push(Buffer.from('FRAME\n'), Buffer.alloc(12, i))
  return Buffer.concat(parts)
}

/** Feeds `input` to a gate in pieces of `piece` bytes; `during` runs after each piece. */
async function through (input: Buffer, piece: number, during?: (gate: Y4mFrameGate, fed: number) => void): Promise<{ out: Buffer, gate: Y4mFrameGate }> {
  const gate = new Y4mFrameGate()
  const chunks: Buffer[] = []
  gate.on('data', (d: Buffer) => chunks.push(d))
  const ended = new Promise<void>(resolve => gate.on('end', () => resolve()))
  for (let at = 0; at < input.length; at += piece) {
    gate.write(input.subarray(at, at + piece))
    during?.(gate, at + piece)
  }
  gate.end()
  await ended
  return { out: Buffer.concat(chunks), gate }
}

describe('y4mFrameBytes', () => {
  it.each([
    ['YUV4MPEG2 W1280 H720 F24:1 Ip A1:1 C420jpeg XYSCSS=420JPEG', 1280 * 720 * 3 / 2],
    ['YUV4MPEG2 W1280 H720 F24:1 C420mpeg2', 1280 * 720 * 3 / 2],
    ['YUV4MPEG2 W321 H181 F24:1 C420p10 XYSCSS=420P10', (321 * 181 + 2 * 161 * 91) * 2],
    ['YUV4MPEG2 W64 H32 F24:1 C422', 64 * 32 * 2],
    ['YUV4MPEG2 W64 H32 F24:1 C444p12', 64 * 32 * 3 * 2],
    ['YUV4MPEG2 W64 H32 F24:1 Cmono', 64 * 32],
    ['YUV4MPEG2 W64 H32 F24:1', 64 * 32 * 3 / 2]
  ])('%s → %d bytes a frame', (header, bytes) => {
    expect(y4mFrameBytes(header)).toBe(bytes)
  })

  it('knows no size for what it cannot read', () => {
    for (const header of ['YUV4MPEG2 W64 H32 C444alpha', 'YUV4MPEG2 H32 C420', 'RIFF W64 H32', 'YUV4MPEG2 W-4 H32']) expect(y4mFrameBytes(header)).toBeUndefined()
  })
})

describe('Y4mFrameGate', () => {
  it('passes a whole stream through unchanged, however it is cut, and counts its frames', async () => {
    const input = stream(9)
    for (const piece of [1, 5, 7, 18, 4096]) {
      const { out, gate } = await through(input, piece)
      expect(out.equals(input)).toBe(true)
      expect(gate.framesPassed).toBe(9)
    }
  })

  it('ends at the limit on a frame boundary: exactly the first frames, nothing of the next', async () => {
    const input = stream(9)
    for (const piece of [1, 5, 7, 18]) {
      const { out } = await through(input, piece, (gate) => { if (gate.parsing && gate.limit === undefined) expect(gate.limitTo(4)).toBe(true) })
      expect(out.equals(stream(4))).toBe(true)
    }
  })

  it('refuses a limit below the frames already passed on', async () => {
    let refused = false
    const { out } = await through(stream(9), 18 * 3, (gate) => { if (gate.framesPassed >= 3 && !refused) { refused = true; expect(gate.limitTo(1)).toBe(false) } })
    expect(refused).toBe(true)
    expect(out.equals(stream(9))).toBe(true)
  })

  it('passes a stream it cannot size untouched and takes no limit for it', async () => {
    const input = stream(3, 'YUV4MPEG2 W4 H2 F25:1 C444alpha')
    const { out } = await through(input, 7, (gate) => { expect(gate.limitTo(1)).toBe(false) })
    expect(out.equals(input)).toBe(true)
  })
})
