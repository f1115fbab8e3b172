/**
 * The demo's settings for each encoder: what `bash scripts/demo.sh --encoder NAME` hands its nodes
 * must be settings that encoder's own parser takes, with the 8-bit output the demo's check expects
 * of its 10-bit sample.
 */
import { describe, expect, it } from 'vitest'
import { encoderNamed } from '../../bench/lib/encoders.js'
import { DEMO_SETTINGS } from '../../scripts/demo-settings.js'
import { ENCODER_IDS, encoderFor } from '../../src/media/index.js'

describe('the demo\'s settings', () => {
  it('are taken by each encoder\'s parser, 8-bit out', () => {
    for (const id of ENCODER_IDS) {
      const settings = encoderFor(id).parseSettings(DEMO_SETTINGS[id])
      expect(settings.encoder, id).toBe(id)
      expect(settings.outputDepth, id).toBe(8)
    }
  })

  it('takes only encoders a job may name', () => {
    expect(encoderNamed('svt-av1')).toBe('svt-av1')
    expect(() => encoderNamed('x266')).toThrow(/one of x264, x265, svt-av1, aomenc/)
  })
})
