import { open, type FileHandle } from 'node:fs/promises'

/** A video packet as the Matroska file stores it: presentation time (seconds) and keyframe flag. */
export interface MatroskaPacket { time: number, key: boolean }

/** The file uses a Matroska feature this reader leaves to ffprobe (lacing, unknown-size clusters, …). */
export class UnsupportedMatroskaError extends Error {
  override name = 'UnsupportedMatroskaError'
}

const ID = {
  EBML: 0x1A45DFA3,
  DocType: 0x4282,
  Segment: 0x18538067,
  SeekHead: 0x114D9B74,
  Seek: 0x4DBB,
  SeekID: 0x53AB,
  SeekPosition: 0x53AC,
  Cues: 0x1C53BB6B,
  Tags: 0x1254C367,
  Void: 0xEC,
  CRC32: 0xBF,
  CodecID: 0x86,
  CodecPrivate: 0x63A2,
  Video: 0xE0,
  PixelWidth: 0xB0,
  PixelHeight: 0xBA,
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

interface Element { id: number, start: number, dataStart: number, dataEnd: number }

async function elementAt (r: Reader, pos: number, parentEnd: number): Promise<Element> {
  const head = await r.bytes(pos, Math.min(12, r.size - pos))
  const id = vint(head, 0, true)
  const size = vint(head, id.length, false)
  if (size.unknown) throw new UnsupportedMatroskaError(`element 0x${id.value.toString(16)} of unknown size`)
  const dataStart = pos + id.length + size.length
  const dataEnd = dataStart + size.value
  if (dataEnd > parentEnd) throw new UnsupportedMatroskaError(`element 0x${id.value.toString(16)} runs past its parent`)
  return { id: id.value, start: pos, dataStart, dataEnd }
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

/** A track as the Matroska file declares it. */
export interface MatroskaTrack {
  /** The number its blocks carry (undefined when the entry has none). */
  number: number | undefined
  /** 1 video, 2 audio, 17 subtitle, … (Matroska TrackType). */
  type: number
  codecId: string
  width: number
  height: number
}

async function readString (r: Reader, el: Element): Promise<string> {
  const len = el.dataEnd - el.dataStart
  if (len > 256) throw new UnsupportedMatroskaError('string too long')
  return (await r.bytes(el.dataStart, len)).toString('latin1').replace(/\0+$/, '')
}

/** One TrackEntry's number, type, codec and picture size; `count` is called for every element read. */
async function readTrackEntry (r: Reader, entry: Element, count: () => void = () => {}): Promise<MatroskaTrack> {
  const track: MatroskaTrack = { number: undefined, type: 0, codecId: '', width: 0, height: 0 }
  for await (const f of children(r, entry.dataStart, entry.dataEnd)) {
    count()
    if (f.id === ID.TrackNumber) track.number = await readUint(r, f)
    else if (f.id === ID.TrackType) track.type = await readUint(r, f)
    else if (f.id === ID.CodecID) track.codecId = await readString(r, f)
    else if (f.id === ID.Video) {
      for await (const v of children(r, f.dataStart, f.dataEnd)) {
        count()
        if (v.id === ID.PixelWidth) track.width = await readUint(r, v)
        else if (v.id === ID.PixelHeight) track.height = await readUint(r, v)
      }
    }
  }
  return track
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
            const track = await readTrackEntry(r, entry)
            if (track.type === TRACK_TYPE_VIDEO && videoTrack === undefined) videoTrack = track.number
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


/**
 * More elements than a plain segment has by far (ffmpeg writes a cluster per few MB or seconds): a
 * file of tiny elements would otherwise keep the walk busy for minutes, while ffprobe reads it in C
 * in a process of its own.
 */
const MAX_WALKED_ELEMENTS = 100_000

/** Level-1 elements a plain segment may hold; anything else (attachments, chapters, a second Tracks) is left to ffprobe. */
const PLAIN_LEVEL1 = new Set<number>([ID.SeekHead, ID.Info, ID.Tracks, ID.Cluster, ID.Cues, ID.Tags, ID.Void, ID.CRC32])

/**
 * The tracks of a Matroska file laid out the plain way a stream copy by ffmpeg writes it: an EBML
 * header, one Segment, one Tracks element before the first Cluster, level-1 elements of the usual
 * kinds only, and a SeekHead (if any) pointing at elements that are where it says. Reads element
 * headers only. Anything else (attachments, chapters, unknown sizes, a seek entry pointing into
 * other data, where ffmpeg's demuxer could see other tracks than a walk of the file does) throws
 * UnsupportedMatroskaError, and the caller asks ffprobe: so what this returns is what ffmpeg sees.
 */
export async function readMatroskaTracks (path: string): Promise<MatroskaTrack[]> {
  const fh = await open(path, 'r')
  try {
    const r = new Reader(fh, (await fh.stat()).size)
    let walked = 0
    const count = (): void => { if (++walked > MAX_WALKED_ELEMENTS) throw new UnsupportedMatroskaError(`more than ${MAX_WALKED_ELEMENTS} elements`) }
    const top: Element[] = []
    for await (const el of children(r, 0, r.size)) { count(); top.push(el) }
    const [header, segment, ...rest] = top
    if (header?.id !== ID.EBML || segment?.id !== ID.Segment || rest.some(el => el.id !== ID.Void)) throw new UnsupportedMatroskaError('not one EBML header and one Segment')
    let docType = ''
    for await (const f of children(r, header.dataStart, header.dataEnd)) { count(); if (f.id === ID.DocType) docType = await readString(r, f) }
    if (docType !== 'matroska' && docType !== 'webm') throw new UnsupportedMatroskaError(`document type ${JSON.stringify(docType)}`)
    const level1: Element[] = []
    for await (const el of children(r, segment.dataStart, segment.dataEnd)) {
      count()
      if (!PLAIN_LEVEL1.has(el.id)) throw new UnsupportedMatroskaError(`level-1 element 0x${el.id.toString(16)}`)
      level1.push(el)
    }
    const tracksElements = level1.filter(el => el.id === ID.Tracks)
    const firstCluster = level1.findIndex(el => el.id === ID.Cluster)
    const tracksAt = level1.findIndex(el => el.id === ID.Tracks)
    if (tracksElements.length !== 1 || (firstCluster >= 0 && tracksAt > firstCluster)) throw new UnsupportedMatroskaError('not one Tracks element ahead of the clusters')
    // ffmpeg follows seek entries: each must name an element we walked, at that position.
    for (const head of level1.filter(el => el.id === ID.SeekHead)) {
      for await (const seek of children(r, head.dataStart, head.dataEnd)) {
        count()
        if (seek.id !== ID.Seek) continue
        let id: number | undefined; let position: number | undefined
        for await (const f of children(r, seek.dataStart, seek.dataEnd)) {
          count()
          if (f.id === ID.SeekID) id = vint(await r.bytes(f.dataStart, f.dataEnd - f.dataStart), 0, true).value
          else if (f.id === ID.SeekPosition) position = await readUint(r, f)
        }
        if (id === undefined || position === undefined) throw new UnsupportedMatroskaError('incomplete seek entry')
        const at = segment.dataStart + position
        if (!level1.some(el => el.id === id && el.start === at)) throw new UnsupportedMatroskaError(`seek entry for 0x${id.toString(16)} points at no such element`)
      }
    }
    const tracks: MatroskaTrack[] = []
    const tracksElement = tracksElements[0] as Element
    for await (const entry of children(r, tracksElement.dataStart, tracksElement.dataEnd)) {
      count()
      if (entry.id !== ID.TrackEntry) continue
      tracks.push(await readTrackEntry(r, entry, count))
    }
    return tracks
  } finally {
    await fh.close()
  }
}

/** The first video packet of a Matroska file, as stored: its codec, the codec's private data (avcC, hvcC) and the packet's bytes. */
export interface MatroskaFirstPacket { codecId: string, codecPrivate: Buffer | undefined, data: Buffer }

/** A first packet larger than this is left to ffmpeg: an intra picture of 8K at a high rate stays well below. */
const MAX_FIRST_PACKET_BYTES = 64 * 1024 * 1024

/**
 * The first packet of the first video track, read in-process: what a cut's random-access check
 * needs, without an ffmpeg start per segment (0.08 s of CPU each). Walks to the first block of
 * that track in the first clusters; throws UnsupportedMatroskaError for what it does not read
 * (lacing, unknown sizes, no video), so the caller can ask ffmpeg.
 */
export async function readMatroskaFirstVideoPacket (path: string): Promise<MatroskaFirstPacket> {
  const fh = await open(path, 'r')
  try {
    const r = new Reader(fh, (await fh.stat()).size)
    let video: { number: number, codecId: string, codecPrivate: Buffer | undefined } | undefined
    let walked = 0
    for await (const top of children(r, 0, r.size)) {
      if (top.id !== ID.Segment) continue
      for await (const el of children(r, top.dataStart, top.dataEnd)) {
        if (++walked > MAX_WALKED_ELEMENTS) throw new UnsupportedMatroskaError('too many elements')
        if (el.id === ID.Tracks && video === undefined) {
          for await (const entry of children(r, el.dataStart, el.dataEnd)) {
            if (entry.id !== ID.TrackEntry) continue
            let number: number | undefined; let type = 0; let codecId = ''; let codecPrivate: Buffer | undefined
            for await (const f of children(r, entry.dataStart, entry.dataEnd)) {
              if (f.id === ID.TrackNumber) number = await readUint(r, f)
              else if (f.id === ID.TrackType) type = await readUint(r, f)
              else if (f.id === ID.CodecID) codecId = await readString(r, f)
              else if (f.id === ID.CodecPrivate && f.dataEnd - f.dataStart <= 1024 * 1024) codecPrivate = Buffer.from(await r.bytes(f.dataStart, f.dataEnd - f.dataStart))
            }
            if (type === TRACK_TYPE_VIDEO && number !== undefined) { video = { number, codecId, codecPrivate }; break }
          }
        } else if (el.id === ID.Cluster) {
          if (video === undefined) throw new UnsupportedMatroskaError('a cluster before the video track')
          for await (const c of children(r, el.dataStart, el.dataEnd)) {
            if (++walked > MAX_WALKED_ELEMENTS) throw new UnsupportedMatroskaError('too many elements')
            const block = c.id === ID.SimpleBlock ? c : c.id === ID.BlockGroup ? await firstChild(r, c, ID.Block) : undefined
            if (block === undefined) continue
            const head = await readBlockHeader(r, block, 0, c.id === ID.SimpleBlock)
            if (head.track !== video.number) continue
            if (head.laced) throw new UnsupportedMatroskaError('laced video blocks')
            const headerBytes = vint(await r.bytes(block.dataStart, Math.min(8, block.dataEnd - block.dataStart)), 0, false).length + 3
            const size = block.dataEnd - block.dataStart - headerBytes
            if (size > MAX_FIRST_PACKET_BYTES) throw new UnsupportedMatroskaError('first packet too large')
            return { codecId: video.codecId, codecPrivate: video.codecPrivate, data: Buffer.from(await r.bytes(block.dataStart + headerBytes, size)) }
          }
        }
      }
    }
    throw new UnsupportedMatroskaError('no video packet')
  } finally {
    await fh.close()
  }
}

async function firstChild (r: Reader, parent: Element, id: number): Promise<Element | undefined> {
  for await (const el of children(r, parent.dataStart, parent.dataEnd)) if (el.id === id) return el
  return undefined
}
