import { describe, expect, it } from 'vitest'
import { encoderFor, hdrLosses, probeMedia } from '../../src/media/index.js'
import { ensureHdr10Fixture } from '../fixtures.js'

describe('hdrLosses', () => {
  it('says before a job starts what an HDR10 source loses: 8-bit output, and metadata aomenc cannot write', async () => {
    const video = (await probeMedia(await ensureHdr10Fixture())).video
    expect(video.colour.transfer).toBe('smpte2084')
    expect(hdrLosses(encoderFor('x265').parseSettings('--crf 24 --output-depth 10'), video)).toEqual([])
    expect(hdrLosses(encoderFor('svt-av1').parseSettings('--preset 10 --input-depth 10'), video)).toEqual([])
    const eightBit = hdrLosses(encoderFor('x264').parseSettings('--crf 20'), video)
    expect(eightBit).toEqual(['the source is HDR (PQ) and these x264 settings write 8 bits a sample, which bands visibly: ask x264 for 10-bit output'])
    expect(hdrLosses(encoderFor('aomenc').parseSettings('--cpu-used=8 --bit-depth=10'), video)).toEqual([
      'the source\'s HDR10 mastering display and content light level are not kept: aomenc cannot write them (x265, SVT-AV1 and x264 can)'
    ])
    // Metadata the user states themselves is their choice, not a loss.
    expect(hdrLosses(encoderFor('x265').parseSettings('--output-depth 10 --max-cll 500,100'), video)).toEqual([])
  })

  it('finds nothing to say of an SDR source', async () => {
    const sdr = { colour: { transfer: 'bt709' } }
    expect(hdrLosses(encoderFor('aomenc').parseSettings('--cpu-used=8'), sdr)).toEqual([])
  })
})
