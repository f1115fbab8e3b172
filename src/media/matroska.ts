import { open, type FileHandle } from 'node:fs/promises'

/** A video packet as the Matroska file stores it: presentation time (seconds) and keyframe flag. */
export interface MatroskaPacket { time: number, key: boolean }

/** The file uses a Matroska feature this reader leaves to ffprobe (lacing, unknown-size clusters, …). */
export class UnsupportedMatroskaError extends Error {}

const ID = {
  EBML: 0x1A45DFA3,
  Segment: 0x18538067,
  Info: 0x1549A966,
  TimestampScale: 0x2AD7B1,
  Tracks: 0x1654AE6B,
  TrackEntry: 0xAE,
  TrackNumber: 0xD7,
  TrackType: 0x83,
  Cluster: 0x1F43B675,
  Timestamp: 0xE7,
  SimpleBlock: 0xA3,
  BlockGroup: 0xA0,
  Block: 0xA1,
  ReferenceBlock: 0xFB
} as const

const TRACK_TYPE_VIDEO = 1
const WINDOW = 4096

/** Positional reads through a small window: element headers are a few bytes apart from long payloads we skip. */
class Reader {
  private buf = Buffer.alloc(0)
  private at = 0
  constructor (private readonly fh: FileHandle, readonly size: number) {}

  async bytes (pos: number, len: number): Promise<Buffer> {
    if (pos < this.at || pos + len > this.at + this.buf.length) {
      const want = Math.max(WINDOW, len)
      const b = Buffer.allocUnsafe(Math.min(want, Math.max(0, this.size - pos)))
      const { bytesRead } = await this.fh.read(b, 0, b.length, pos)
      this.buf = b.subarray(0, bytesRead)
      this.at = pos
    }
    const off = pos - this.at
    if (off + len > this.buf.length) throw new UnsupportedMatroskaError(`truncated at byte ${pos}`)
    return this.buf.subarray(off, off + len)
  }
}

interface Vint { value: number, length: number, unknown: boolean }

function vint (b: Buffer, at: number, keepMarker: boolean): Vint {
  const first = b[at] as number
  let length = 1
  while (length <= 8 && (first & (0x80 >> (length - 1))) === 0) length++
  if (length > 8 || at + length > b.length) throw new UnsupportedMatroskaError('bad variable-length integer')
  let value = keepMarker ? first : first & (0xFF >> length)
  let allOnes = value === (0xFF >> length)
  for (let i = 1; i < length; i++) {
    const byte = b[at + i] as number
    if (byte !== 0xFF) allOnes = false
    value = value * 256 + byte
  }
  return { value, length, unknown: !keepMarker && allOnes }
}

interface Element { id: number, dataStart: number, dataEnd: number }

async function elementAt (r: Reader, pos: number, parentEnd: number): Promise<Element> {
  const head = await r.bytes(pos, Math.min(12, r.size - pos))
  const id = vint(head, 0, true)
  const size = vint(head, id.length, false)
  if (size.unknown) throw new UnsupportedMatroskaError(`element 0x${id.value.toString(16)} of unknown size`)
  const dataStart = pos + id.length + size.length
  const dataEnd = dataStart + size.value
  if (dataEnd > parentEnd) throw new UnsupportedMatroskaError(`element 0x${id.value.toString(16)} runs past its parent`)
  return { id: id.value, dataStart, dataEnd }
}

async function* children (r: Reader, start: number, end: number): AsyncGenerator<Element> {
  for (let pos = start; pos < end;) {
    const el = await elementAt(r, pos, end)
    yield el
    pos = el.dataEnd
  }
}

async function readUint (r: Reader, el: Element): Promise<number> {
  const len = el.dataEnd - el.dataStart
  if (len > 7) throw new UnsupportedMatroskaError('integer too wide')
  const b = await r.bytes(el.dataStart, len)
  let v = 0
  for (const byte of b) v = v * 256 + byte
  return v
}

interface RawBlock { track: number, timestamp: number, key: boolean, laced: boolean }

async function readBlockHeader (r: Reader, el: Element, clusterTimestamp: number, simple: boolean): Promise<Omit<RawBlock, 'key'> & { flagsKey: boolean }> {
  const head = await r.bytes(el.dataStart, Math.min(12, el.dataEnd - el.dataStart))
  const track = vint(head, 0, false)
  if (track.length + 3 > head.length) throw new UnsupportedMatroskaError('block too short')
  const relative = head.readInt16BE(track.length)
  const flags = head[track.length + 2] as number
  return { track: track.value, timestamp: clusterTimestamp + relative, flagsKey: simple && (flags & 0x80) !== 0, laced: (flags & 0x06) !== 0 }
}

/**
 * The packets of a Matroska file's first video track, in file order, read from block headers
 * alone. Segment checks need only this, and an ffprobe start costs ~0.07 s of CPU per segment
 * (a core's worth on a one-core originator cutting hundreds of segments). Throws
 * UnsupportedMatroskaError for what it does not read (lacing, unknown sizes), so the caller can
 * fall back to ffprobe.
 */
export async function readMatroskaVideoPackets (path: string): Promise<MatroskaPacket[]> {
  const fh = await open(path, 'r')
  try {
    const r = new Reader(fh, (await fh.stat()).size)
    let scale = 1_000_000
    let videoTrack: number | undefined
    const blocks: RawBlock[] = []
    let sawSegment = false
    for await (const top of children(r, 0, r.size)) {
      if (top.id !== ID.Segment) continue
      sawSegment = true
      for await (const el of children(r, top.dataStart, top.dataEnd)) {
        if (el.id === ID.Info) {
          for await (const f of children(r, el.dataStart, el.dataEnd)) if (f.id === ID.TimestampScale) scale = await readUint(r, f)
        } else if (el.id === ID.Tracks) {
          for await (const entry of children(r, el.dataStart, el.dataEnd)) {
            if (entry.id !== ID.TrackEntry) continue
            let number: number | undefined; let type: number | undefined
            for await (const f of children(r, entry.dataStart, entry.dataEnd)) {
              if (f.id === ID.TrackNumber) number = await readUint(r, f)
              else if (f.id === ID.TrackType) type = await readUint(r, f)
            }
            if (type === TRACK_TYPE_VIDEO && videoTrack === undefined) videoTrack = number
          }
        } else if (el.id === ID.Cluster) {
          let clusterTimestamp: number | undefined
          for await (const c of children(r, el.dataStart, el.dataEnd)) {
            if (c.id === ID.Timestamp) { clusterTimestamp = await readUint(r, c); continue }
            if (c.id !== ID.SimpleBlock && c.id !== ID.BlockGroup) continue
            if (clusterTimestamp === undefined) throw new UnsupportedMatroskaError('block before its cluster timestamp')
            if (c.id === ID.SimpleBlock) {
              const b = await readBlockHeader(r, c, clusterTimestamp, true)
              blocks.push({ track: b.track, timestamp: b.timestamp, key: b.flagsKey, laced: b.laced })
              continue
            }
            let block: RawBlock | undefined; let referenced = false
            for await (const g of children(r, c.dataStart, c.dataEnd)) {
              if (g.id === ID.Block) {
                const b = await readBlockHeader(r, g, clusterTimestamp, false)
                block = { track: b.track, timestamp: b.timestamp, key: false, laced: b.laced }
              } else if (g.id === ID.ReferenceBlock) referenced = true
            }
            if (block !== undefined) blocks.push({ ...block, key: !referenced })
          }
        }
      }
    }
    if (!sawSegment) throw new UnsupportedMatroskaError('no Matroska segment')
    if (videoTrack === undefined) throw new UnsupportedMatroskaError('no video track')
    const video = blocks.filter(b => b.track === videoTrack)
    // A laced block holds several frames; audio often is, video practically never.
    if (video.some(b => b.laced)) throw new UnsupportedMatroskaError('laced video blocks')
    return video.map(b => ({ time: b.timestamp * scale / 1e9, key: b.key }))
  } finally {
    await fh.close()
  }
}
