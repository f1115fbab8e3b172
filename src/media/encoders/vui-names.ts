import type { HdrMetadata, VideoColour } from '../probe.js'
import { optionsGiven } from '../settings.js'
import type { EncoderSettings } from './types.js'

/*
 * The names H.264 and HEVC encoders (x264, x265) take for the colour description, under
 * ffprobe's name for each: mostly the same words. Both number chroma sample locations as the
 * standards do (chroma_sample_loc_type 0 … 5).
 */

const same = (names: string[]): Record<string, string> => Object.fromEntries(names.map(n => [n, n]))

export const PRIMARIES: Record<string, string> = same(['bt709', 'bt470m', 'bt470bg', 'smpte170m', 'smpte240m', 'film', 'bt2020', 'smpte428', 'smpte431', 'smpte432'])

export const TRANSFER: Record<string, string> = {
  ...same(['bt709', 'smpte170m', 'smpte240m', 'linear', 'log100', 'log316', 'iec61966-2-4', 'bt1361e', 'iec61966-2-1', 'bt2020-10', 'bt2020-12', 'smpte2084', 'smpte428', 'arib-std-b67']),
  // ffprobe names BT.470 M and B/G transfers both ways (gamma22/gamma28 and bt470m/bt470bg).
  gamma22: 'bt470m',
  gamma28: 'bt470bg',
  bt470m: 'bt470m',
  bt470bg: 'bt470bg'
}

/** Matrices both take under ffprobe's name; gbr, ycgco and ictcp each spell their own way. */
export const MATRIX: Record<string, string> = same(['bt709', 'fcc', 'bt470bg', 'smpte170m', 'smpte240m', 'bt2020nc', 'bt2020c', 'smpte2085', 'chroma-derived-nc', 'chroma-derived-c'])

/** chroma_sample_loc_type numbering (H.264 and HEVC VUI alike). */
export const CHROMA_LOCATION: Record<string, string> = { left: '0', center: '1', topleft: '2', top: '3', bottomleft: '4', bottom: '5' }

/** How one encoder states each colour field and the HDR10 metadata: its option names, and its words where they are not ffprobe's. */
export interface ColourOptions {
  options: Record<keyof VideoColour, string>
  range: Record<string, string>
  matrix: Record<string, string>
  masteringDisplay: string
  contentLight: string
}

/**
 * Options that describe the source's colour, geometry and HDR10 metadata, for each thing the
 * source states and the settings leave open (Encoder.sourceColourArgs).
 */
export function colourArgsFor (names: ColourOptions, colour: VideoColour, settings: EncoderSettings, hdr: HdrMetadata = {}): string[] {
  const set = optionsGiven(settings)
  const args: string[] = []
  const carry = (option: string, value: string | undefined): void => {
    if (value !== undefined && !set.has(option)) args.push(`--${option}`, value)
  }
  const o = names.options
  carry(o.range, colour.range !== undefined ? names.range[colour.range] : undefined)
  carry(o.primaries, colour.primaries !== undefined ? PRIMARIES[colour.primaries] : undefined)
  carry(o.transfer, colour.transfer !== undefined ? TRANSFER[colour.transfer] : undefined)
  carry(o.matrix, colour.matrix !== undefined ? names.matrix[colour.matrix] : undefined)
  carry(o.chromaLocation, colour.chromaLocation !== undefined ? CHROMA_LOCATION[colour.chromaLocation] : undefined)
  carry(o.sar, colour.sar)
  carry(names.masteringDisplay, hdr.masteringDisplay)
  carry(names.contentLight, hdr.contentLight)
  return args
}

/** The colour fields the settings set themselves (Encoder.colourSetBy). */
export function colourFieldsSetBy (names: ColourOptions, settings: EncoderSettings): Set<keyof VideoColour> {
  const set = optionsGiven(settings)
  return new Set((Object.keys(names.options) as Array<keyof VideoColour>).filter(k => set.has(names.options[k])))
}
