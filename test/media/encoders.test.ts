/**
 * The encoder interface (src/media/encoders): x264's implementation of what an encoder is to the
 * pipeline, and the registry another encoder joins. The allowlist itself: settings.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULT_ENCODER, encoderArgs, encoderFor, estimateEncodeMemory, parseX264Settings, SettingsError, statedRange } from '../../src/media/index.js'

const x264 = encoderFor('x264')

describe('encoderFor', () => {
  it('gives x264 by default, and refuses an encoder this version does not have, naming the ones it has', () => {
    expect(DEFAULT_ENCODER).toBe('x264')
    expect(x264.id).toBe('x264')
    expect(x264.binary).toBe('x264')
    expect(x264.parseSettings('--crf 18').encoder).toBe('x264')
    expect([x264.bitstream, x264.codec, x264.fileExtension]).toEqual(['h264', 'h264', '.264'])
    expect(x264.parseVersion('x264 0.164.3095 baee400\n(libswscale 6.7.100)')).toBe('0.164.3095')
    expect(x264.parseVersion('command not found')).toBeUndefined()
    for (const id of ['svt-av1', 'aomenc'] as const) {
      expect(() => encoderFor(id)).toThrow(SettingsError)
      expect(() => encoderFor(id)).toThrow(`encoder ${id} is not available in this version of swarm (it has x264, x265)`)
    }
  })
})

describe('x264 as an encoder', () => {
  it('makes one chunk\'s command line from the parsed settings: y4m in, stitchable raw H.264 out', () => {
    const settings = parseX264Settings('--preset slow --crf=18 -b 5')
    const o = { frameRate: { num: 30000, den: 1001 }, frameCount: 48, threads: 2, outputPath: '/w/chunk-3.264' }
    const args = ['--preset', 'slow', '--crf', '18', '--bframes', '5', '--threads', '2', '--stitchable', '--fps', '30000/1001', '--frames', '48', '--demuxer', 'y4m', '--output', '/w/chunk-3.264', '-']
    expect(x264.chunkArgs(settings, o)).toEqual(args)
    expect(encoderArgs(settings, o)).toEqual(args)
    const { threads: _, ...unthreaded } = o
    expect(x264.chunkArgs(settings, unthreaded)).not.toContain('--threads')
  })

  it('reads its progress line and its closing frame count from stderr', () => {
    expect(x264.parseProgress('[10.0%] 24/240 frames, 61.54 fps, 412.10 kb/s, eta 0:00:03\r[20.0%] 48/240 frames, 63.01 fps, 420.00 kb/s, eta 0:00:03\r')).toEqual({ framesDone: 48, fps: 63.01 })
    expect(x264.parseProgress('12 frames: 30.50 fps, 380.2 kb/s')).toEqual({ framesDone: 12, fps: 30.5 })
    expect(x264.parseProgress('x264 [info]: profile High, level 3.0')).toBeUndefined()
    expect(x264.encodedFrames('x264 [info]: kb/s:412.10\nencoded 240 frames, 62.19 fps, 412.10 kb/s\n')).toBe(240)
    expect(x264.encodedFrames('x264 [error]: could not open output file')).toBeUndefined()
  })

  it('carries the source\'s colour where the settings leave it open, and says which fields the settings set', () => {
    const colour = { range: 'tv', primaries: 'bt709', transfer: 'gamma28', matrix: 'gbr', chromaLocation: 'topleft', sar: '64:45' }
    expect(x264.sourceColourArgs(colour, parseX264Settings('--crf 18'))).toEqual(['--range', 'tv', '--colorprim', 'bt709', '--transfer', 'bt470bg', '--colormatrix', 'GBR', '--chromaloc', '2', '--sar', '64:45'])
    const own = parseX264Settings('--crf 18 --colorprim bt470bg --sar 1:1')
    expect(x264.sourceColourArgs(colour, own)).toEqual(['--range', 'tv', '--transfer', 'bt470bg', '--colormatrix', 'GBR', '--chromaloc', '2'])
    expect([...x264.colourSetBy(own)].sort()).toEqual(['primaries', 'sar'])
    expect(statedRange(parseX264Settings('--range pc --range tv'))).toBe('tv')
    expect(statedRange(parseX264Settings('--range auto'))).toBeUndefined()
  })

  it('says what its settings hold in memory and how large a raw output picture is', () => {
    expect(x264.memoryInputs(parseX264Settings('--preset placebo'))).toEqual({ lookahead: 60, bframes: 16, ref: 16, samplesPerPixel: 1.5, bytesPerSample: 1 })
    // An option given wins over its preset's value; 4:4:4 at 10 bits is three samples of two bytes.
    expect(x264.memoryInputs(parseX264Settings('--preset placebo --ref 4 --output-csp i444 --profile high444 --output-depth 10'))).toEqual({ lookahead: 60, bframes: 16, ref: 4, samplesPerPixel: 3, bytesPerSample: 2 })
    expect(estimateEncodeMemory(parseX264Settings('--preset placebo --ref 4'), 1920, 1080, 1).explain).toMatch(/^84 pictures of 1920x1080 \(lookahead 60 \+ B-frames 16 \+ references 4 \+ threads 1 \+ 3\)/)
    expect(x264.rawBytesPerPixel(parseX264Settings('--crf 18'))).toBe(1.5)
    expect(x264.rawBytesPerPixel(parseX264Settings('--output-csp i444 --profile high444 --output-depth 10'))).toBe(3.75)
  })

  it('hands out settings only as frozen values it parsed', () => {
    const settings = parseX264Settings('--preset fast')
    expect(Object.isFrozen(settings) && Object.isFrozen(settings.args)).toBe(true)
    expect(() => { (settings.args as string[]).push('--output', '/tmp/x') }).toThrow(TypeError)
  })
})
