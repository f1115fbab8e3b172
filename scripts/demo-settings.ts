/** scripts/demo.ts's settings per encoder, apart from the demo so that a test can check them without running it. */
import type { EncoderId } from '../src/media/index.js'

/**
 * A fast preset of each encoder for the demo's small sample, 8-bit out of its 10-bit source (x264's
 * --profile high says so; the others write 8-bit unless told). aomenc's good-quality mode goes no
 * faster than --cpu-used=6.
 */
export const DEMO_SETTINGS: Record<EncoderId, string> = {
  x264: '--preset fast --crf 20 --profile high',
  x265: '--preset veryfast --crf 24',
  'svt-av1': '--preset 12 --crf 35',
  aomenc: '--cpu-used=6 --end-usage=q --cq-level=30'
}
