/**
 * Bytes from a peer are not a file of ours: a "segment" that is a DASH or HLS manifest naming a
 * file on the worker's disk must never be decoded (the worker would encode and upload that file).
 */
import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEFAULT_SEGMENT_LIMITS, encodeChunk, inspectSegment, parseX264Settings, PEER_SEGMENT_CODECS, VerificationError, verifyEncodedChunk } from '../../src/media/index.js'

let dir: string
let secret: string
let dash: string
let hls: string
let videoOnly: string
let withAudio: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swarm-peer-bytes-'))
  secret = join(dir, 'secret.mp4')
  await execa('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=24', '-frames:v', '48', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', secret])
  // Named like segments: the extension must not matter either.
  dash = join(dir, 'segment-dash.mkv')
  await writeFile(dash, `<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S" minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
 <Period><AdaptationSet mimeType="video/mp4"><Representation id="1" bandwidth="100000" codecs="avc1.64001e" width="160" height="90">
  <BaseURL>file://${secret}</BaseURL>
 </Representation></AdaptationSet></Period>
</MPD>
`)
  hls = join(dir, 'segment-hls.mkv')
  await writeFile(hls, `#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n${secret}\n#EXT-X-ENDLIST\n`)
  videoOnly = join(dir, 'segment-ok.mkv')
  await execa('ffmpeg', ['-v', 'error', '-y', '-i', secret, '-c', 'copy', '-f', 'matroska', videoOnly])
  withAudio = join(dir, 'segment-av.mkv')
  await execa('ffmpeg', ['-v', 'error', '-y', '-i', secret, '-f', 'lavfi', '-i', 'sine=duration=2', '-map', '0:v', '-map', '1:a', '-c:v', 'copy', '-c:a', 'aac', '-f', 'matroska', withAudio])
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

const encodeOptions = (segmentPath: string, outputPath: string, segmentFromPeer: boolean): Parameters<typeof encodeChunk>[0] => ({
  segmentPath, selectFromTime: 0, frameCount: 48, settings: parseX264Settings('--preset ultrafast'), frameRate: { num: 24, den: 1 }, sourcePixFmt: 'yuv420p', outputPath, segmentFromPeer
})

describe('segments from a peer', () => {
  it('the attack is real here: ffmpeg left to guess reads the worker\'s own file through a DASH or HLS manifest', async () => {
    for (const manifest of [dash, hls]) {
      const r = await execa('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', manifest], { reject: false })
      expect(r.stdout.trim().split('\n')[0]).toBe('48')
    }
  })

  it.each([['DASH', () => dash], ['HLS', () => hls]])('a %s manifest served as a segment is refused before any decode, naming what it is', async (_kind, path) => {
    const out = join(dir, `out-${_kind}.264`)
    const err = await encodeChunk(encodeOptions(path(), out, true)).catch((e: Error) => e)
    expect(err).toBeInstanceOf(VerificationError)
    expect((err as Error).message).toMatch(/not a Matroska file/)
    expect(existsSync(out)).toBe(false)
  })

  it('even unchecked, the decoder reads a segment as Matroska only: a manifest fails instead of being followed', async () => {
    const out = join(dir, 'out-unchecked.264')
    const err = await encodeChunk(encodeOptions(dash, out, false)).catch((e: Error) => e)
    expect(err).toBeInstanceOf(Error)
    // ffmpeg stops at the missing EBML header; x264, fed nothing, reports that first.
    expect((err as Error).message).toMatch(/EBML|Invalid data|ffmpeg failed|could not open input/)
    expect(existsSync(out)).toBe(false)
  })

  it('a one-stream Matroska video passes; a Matroska with an extra stream is refused', async () => {
    expect(await inspectSegment(videoOnly)).toEqual({ codec: 'h264', width: 160, height: 90 })
    await expect(inspectSegment(withAudio)).rejects.toThrow(/expected exactly one video stream.*, found (video, audio|one of aac)/)
    // The real thing still encodes when checked.
    const out = join(dir, 'out-ok.264')
    const done = await encodeChunk(encodeOptions(videoOnly, out, true))
    expect(done.frameCount).toBe(48)
  })

  it('a plain segment is recognised without ffprobe; anything else is still ffprobe\'s to judge', async () => {
    const path = process.env.PATH
    process.env.PATH = dir
    try {
      expect(await inspectSegment(videoOnly)).toEqual({ codec: 'h264', width: 160, height: 90 })
      await expect(inspectSegment(withAudio)).rejects.toThrow(/ffprobe/)
    } finally {
      process.env.PATH = path
    }
    await expect(inspectSegment(withAudio)).rejects.toThrow(/expected exactly one video stream.*, found (video, audio|one of aac)/)
  })

  it('a result that is a manifest is read as raw H.264 and refused, never followed', async () => {
    await expect(verifyEncodedChunk(dash, { frameCount: 48 })).rejects.toThrow(VerificationError)
  })

  /**
   * Issue 26, item 3: a stranger's segment reached any of ffmpeg's ~200 decoders. Each of these is
   * a well-formed one-stream Matroska video, exactly what the container check let through.
   */
  it.each(['gif', 'png', 'qtrle', 'msvideo1'])('a %s segment is refused by its codec before any decode, and its decoder is off ffmpeg\'s list even unchecked', async (codec) => {
    const path = join(dir, `segment-${codec}.mkv`)
    await execa('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=160x96:rate=24', '-frames:v', '12', '-c:v', codec, ...(codec === 'msvideo1' ? ['-pix_fmt', 'rgb555le'] : []), '-f', 'matroska', path])
    await expect(inspectSegment(path)).rejects.toThrow(/(its video is \S+, not|of) a codec an originator sends \(h264, hevc, vp8, vp9, av1\).*; refusing to decode it/)
    const err = await inspectSegment(path).catch((e: Error) => e)
    expect(err).toBeInstanceOf(VerificationError)
    // The encode refuses it before its decoder starts: no output, and the reason is the codec.
    const out = join(dir, `out-${codec}.264`)
    await expect(encodeChunk({ ...encodeOptions(path, out, true), frameCount: 12 })).rejects.toThrow(/a codec an originator sends/)
    expect(existsSync(out)).toBe(false)
    // Even unchecked, the decoder is not on the list ffmpeg is given for peer bytes.
    await expect(encodeChunk({ ...encodeOptions(path, out, false), frameCount: 12 })).rejects.toThrow(/not on whitelist|ffmpeg failed|x264/)
    expect(PEER_SEGMENT_CODECS.has('h264')).toBe(true)
  })

  it('a segment whose pictures are not the size its originator declared is refused; one over the limit too', async () => {
    await expect(inspectSegment(videoOnly, {}, { width: 320, height: 180 })).rejects.toThrow(/its video is 160x90, not the 320x180 its originator declared/)
    expect(await inspectSegment(videoOnly, {}, { width: 160, height: 90 })).toEqual({ codec: 'h264', width: 160, height: 90 })
    await expect(inspectSegment(videoOnly, {}, { width: 160, height: 90, limits: { ...DEFAULT_SEGMENT_LIMITS, maxFramePixels: 160 * 89 } })).rejects.toThrow(/over this worker's limit/)
    expect(DEFAULT_SEGMENT_LIMITS).toEqual({ maxSide: 8192, maxFramePixels: 8192 * 4320, maxChunkFrames: 3000 })
  })

  it('a segment whose container says 160x90 but whose stream is 640x360 fails in the decoder\'s allocation (-max_pixels), not after it', async () => {
    const big = join(dir, 'segment-lies.mkv')
    await execa('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=24', '-frames:v', '12', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-f', 'matroska', big])
    await execa('mkvpropedit', ['-q', big, '--edit', 'track:v1', '--set', 'pixel-width=160', '--set', 'pixel-height=90'])
    // The container check sees what the container says…
    expect(await inspectSegment(big, {}, { width: 160, height: 90 })).toEqual({ codec: 'h264', width: 160, height: 90 })
    // …and the decoder refuses the real pictures before taking their memory.
    const out = join(dir, 'out-lies.264')
    await expect(encodeChunk({ ...encodeOptions(big, out, true), frameCount: 12, width: 160, height: 90 })).rejects.toThrow(/max pixel count|get_buffer|ffmpeg failed|x264/)
    expect(existsSync(out)).toBe(false)
  })
})
