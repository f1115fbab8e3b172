import { SettingsError } from '../errors.js'
import type { Encoder, EncoderId } from './types.js'
import { aomenc } from './aomenc.js'
import { svtAv1 } from './svt-av1.js'
import { x264 } from './x264.js'
import { x265 } from './x265.js'

export type { ChunkArgsOptions, ChunkBitstream, Encoder, EncoderId, EncoderMemoryInputs, EncoderProgress, EncoderSettings, OutputCodec } from './types.js'
export { parseX264Settings, X264_PRESET_FRAMES } from './x264.js'
export { installedEncoders, type InstalledEncoder } from './detect.js'
export { parseX265Settings, X265_PRESET_FRAMES } from './x265.js'
export { parseSvtAv1Settings } from './svt-av1.js'
export { parseAomencSettings } from './aomenc.js'

/** The encoders this version implements. */
const ENCODERS: Partial<Record<EncoderId, Encoder>> = { x264, x265, 'svt-av1': svtAv1, aomenc }

/** The encoder of a job that names none: every job until jobs name theirs. */
export const DEFAULT_ENCODER: EncoderId = 'x264'

/** The implementation of an encoder; a SettingsError for one this version does not have. */
export function encoderFor (id: EncoderId): Encoder {
  const encoder = ENCODERS[id]
  if (encoder === undefined) throw new SettingsError(`encoder ${String(id)} is not available in this version of swarm (it has ${Object.keys(ENCODERS).join(', ')})`)
  return encoder
}
