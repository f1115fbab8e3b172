/**
 * Damaged sources: a file cut in half still demuxes, and used to be encoded to half a video without
 * a word. The probe reports what the container promises against what its packets hold.
 */
import { execa } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { attachmentNamesOf, probeMedia, trackStartsOf } from '../../src/media/index.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'
import { truncatedCopy } from '../helpers/media.js'
import { ffprobeTrackStarts } from '../helpers/track-starts.js'

let fx: Fixtures
let dir: string
beforeAll(async () => {
  fx = await ensureFixtures()
  dir = await mkdtemp(join(tmpdir(), 'swarm-probe-'))
})
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

describe('probeMedia: damaged sources', () => {
  it.each(['openGop10bit', 'vfrMp4', 'offsetTs', 'taggedMp4', 'shortClip'] as const)('finds no damage in the intact fixture %s', async (name) => {
    expect((await probeMedia(fx[name])).damage).toBeUndefined()
  })

  it('finds the CEA-608 captions inside the TS fixture\'s video, and none in the others', async () => {
    expect((await probeMedia(fx.captionsTs)).video.closedCaptions).toBe(true)
    for (const name of ['openGop10bit', 'vfrMp4', 'offsetTs', 'taggedMp4'] as const) expect((await probeMedia(fx[name])).video.closedCaptions).toBe(false)
  })

  it('reports an MKV cut in half with both numbers: the duration its header states and where its packets end', async () => {
    const whole = join(dir, 'whole.mkv')
    await execa('mkvmerge', ['-q', '-o', whole, fx.taggedMp4])
    const half = await truncatedCopy(whole, 0.5, join(dir, 'half.mkv'))
    const info = await probeMedia(half)
    expect(info.damage).toBeDefined()
    expect(info.damage?.containerSec).toBeCloseTo(3, 0)
    expect(info.damage?.contentSec).toBeLessThan(2)
    expect(info.damage?.message).toMatch(/says it lasts 3\.\d+ s but its packets end at \d\.\d+ s: the file looks truncated/)
  })

  it('refuses, with a reason, a truncated MKV whose index ffprobe cannot read at all', async () => {
    const half = await truncatedCopy(fx.openGop10bit, 0.5, join(dir, 'half-fonts.mkv'))
    await expect(probeMedia(half)).rejects.toThrow(/half-fonts\.mkv: ffprobe cannot read it as a media file/)
  })
})

describe('probeMedia: what it refuses', () => {
  it('names a file with no video, and a file that is not media at all, by the reason that applies', async () => {
    const audio = join(dir, 'audio-only.mka')
    await execa('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=duration=2', '-c:a', 'flac', audio])
    await expect(probeMedia(audio)).rejects.toThrow(/audio-only\.mka: has no video stream to encode/)
    const text = join(dir, 'notes.txt')
    await execa('cp', ['/etc/hostname', text])
    await expect(probeMedia(text)).rejects.toThrow(/notes\.txt: ffprobe cannot read it as a media file/)
  })
})

describe('probeMedia: what the merge and the fidelity check read from one packet pass', () => {
  // Starts at 11.4 s with audio after the video, edit lists and AAC priming, two audio tracks,
  // subtitles and a font, captions: the quirks that once put tracks out of sync.
  it.each(['offsetTs', 'vfrMp4', 'taggedMp4', 'openGop10bit', 'captionsTs'] as const)('finds where every track of %s starts as ffprobe does on its own', async (name) => {
    const ours = trackStartsOf(await probeMedia(fx[name]))
    const theirs = await ffprobeTrackStarts(fx[name])
    expect(ours.map(t => t.type)).toEqual(theirs.map(t => t.type))
    ours.forEach((t, i) => { expect(Math.abs(t.start - (theirs[i]?.start ?? NaN))).toBeLessThan(1e-6) })
  })

  it('names the attachments (the MKV fixture carries one font) and each audio track\'s packet span', async () => {
    const info = await probeMedia(fx.openGop10bit)
    expect(attachmentNamesOf(info)).toHaveLength(1)
    expect(attachmentNamesOf(await probeMedia(fx.vfrMp4))).toEqual([])
    const audio = info.streams.filter(s => s.type === 'audio')
    expect(audio).toHaveLength(2)
    for (const a of audio) {
      // 240 frames at 24 fps: 10 s of audio, give or take a frame.
      expect((a.packetSpan?.end ?? 0) - (a.packetSpan?.first ?? 0)).toBeGreaterThan(9.9)
      expect(a.packetSpan?.longest).toBeGreaterThan(0)
    }
  })
})
