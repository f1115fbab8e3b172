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

/** Options with which the user states HDR10 metadata themselves, in any encoder's words. */
const HDR10_OPTIONS = ['--master-display', '--max-cll', '--mastering-display', '--cll', '--content-light']

/**
 * What an HDR source loses with these settings, said before the job starts: 8-bit output of a PQ
 * or HLG source (visible banding), and HDR10 metadata the encoder cannot write (aomenc). Empty
 * when nothing is lost.
 */
export function hdrLosses (settings: EncoderSettings, video: Pick<VideoInfo, 'colour' | 'hdr'>): string[] {
  const losses: string[] = []
  const transfer = video.colour?.transfer
  const kind = transfer === 'smpte2084' ? 'PQ' : transfer === 'arib-std-b67' ? 'HLG' : undefined
  if (kind !== undefined && settings.outputDepth === 8) {
    losses.push(`the source is HDR (${kind}) and these ${settings.encoder} settings write 8 bits a sample, which bands visibly: ask ${settings.encoder} for 10-bit output`)
  }
  const hdr = video.hdr
  const has = hdr?.masteringDisplay !== undefined || hdr?.contentLight !== undefined
  const userSet = settings.args.some(a => HDR10_OPTIONS.includes(a))
  if (has && !userSet) {
    const encoder = encoderFor(settings.encoder)
    const withHdr = encoder.sourceColourArgs(video.colour ?? {}, settings, hdr).join(' ')
    const without = encoder.sourceColourArgs(video.colour ?? {}, settings, undefined).join(' ')
    if (withHdr === without) losses.push(`the source's HDR10 mastering display and content light level are not kept: ${settings.encoder} cannot write them (x265, SVT-AV1 and x264 can)`)
  }
  return losses
}
