import { encoderFor, type EncoderSettings } from './encoders/index.js'
import type { VideoColour, VideoInfo } from './probe.js'

/*
 * Encoders write "unknown" colour unless told, and players then guess (often BT.601 for SD, wrong
 * for most sources). What the source says is carried into the encode, in each encoder's own
 * options (Encoder.sourceColourArgs), except where the user's settings say otherwise.
 */

/**
 * The settings every chunk is encoded with: the user's, plus the source's colour description,
 * sample aspect ratio and HDR10 metadata where the user set none. Still one settings string, checked like any other:
 * the string workers are sent is parsed here, so it is known to pass.
 */
export function effectiveSettings (settings: EncoderSettings, video: Pick<VideoInfo, 'colour' | 'hdr'>): EncoderSettings {
  const encoder = encoderFor(settings.encoder)
  const extra = encoder.sourceColourArgs(video.colour ?? {}, settings, video.hdr)
  return extra.length === 0 ? settings : encoder.parseSettings(`${settings.raw} ${extra.join(' ')}`.trim())
}

/**
 * The range the encode states, for the container to state as well (x264 writes no signal-type
 * VUI for `--range tv` alone). Undefined when the settings leave it to the encoder.
 */
export function statedRange (settings: EncoderSettings): 'tv' | 'pc' | undefined {
  return encoderFor(settings.encoder).statedRange(settings)
}

/** The colour fields the settings set themselves: compared with the source only where they do not. */
export function colourSetBy (settings: EncoderSettings | undefined): Set<keyof VideoColour> {
  return settings === undefined ? new Set() : encoderFor(settings.encoder).colourSetBy(settings)
}
