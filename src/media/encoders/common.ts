import type { Encoder, EncoderMemoryInputs, EncoderSettings } from './types.js'

/*
 * What every encoder's implementation reads from parsed settings. Parsed settings are normalised
 * (settings.ts parseAllowlisted): every option is `--name`, its value the next word.
 */

/** The options the settings give (`--name` without its dashes). */
export function optionsGiven (settings: EncoderSettings): Set<string> {
  return new Set(settings.args.filter(a => a.startsWith('--')).map(a => a.slice(2)))
}

export { lastValue } from '../settings.js'

/** The last match of a global regular expression in a piece of stderr. */
export function lastMatch (re: RegExp, text: string): RegExpExecArray | undefined {
  let match: RegExpExecArray | null
  let latest: RegExpExecArray | undefined
  re.lastIndex = 0
  while ((match = re.exec(text)) !== null) latest = match
  return latest
}

/**
 * CICP code points (ISO/IEC 23091-2, AV1 6.4.2) under ffprobe's names: the AV1 encoders are told
 * the source's colour in these numbers (SvtAv1EncApp takes them, aomenc its own names for them).
 */
export const CICP_PRIMARIES: Record<string, number> = {
  bt709: 1, bt470m: 4, bt470bg: 5, smpte170m: 6, smpte240m: 7, film: 8, bt2020: 9, smpte428: 10, smpte431: 11, smpte432: 12, 'jedec-p22': 22, ebu3213: 22
}
export const CICP_TRANSFER: Record<string, number> = {
  bt709: 1, gamma22: 4, bt470m: 4, gamma28: 5, bt470bg: 5, smpte170m: 6, smpte240m: 7, linear: 8, log100: 9, log316: 10,
  'iec61966-2-4': 11, bt1361e: 12, 'iec61966-2-1': 13, 'bt2020-10': 14, 'bt2020-12': 15, smpte2084: 16, smpte428: 17, 'arib-std-b67': 18
}
export const CICP_MATRIX: Record<string, number> = {
  gbr: 0, bt709: 1, fcc: 4, bt470bg: 5, smpte170m: 6, smpte240m: 7, ycgco: 8, bt2020nc: 9, bt2020c: 10, smpte2085: 11,
  'chroma-derived-nc': 12, 'chroma-derived-c': 13, ictcp: 14
}

/**
 * The y4m an AV1 encoder is fed: 4:2:0 at the depth the settings ask for. Both encoders take the
 * depth of their input as the depth of the stream (SvtAv1EncApp always, aomenc whenever the input
 * is deeper than --bit-depth), so the decoder converts to it; an 8-bit source keeps its own y4m
 * (yuvj420p included, whose full range aomenc reads from the y4m header).
 */
export function av1InputPixFmt (settings: EncoderSettings, y4mOfSource: string): string {
  if (settings.outputDepth === 10) return 'yuv420p10le'
  return y4mOfSource === 'yuv420p' || y4mOfSource === 'yuvj420p' ? y4mOfSource : 'yuv420p'
}

/** Why an AV1 encoder swarm runs refuses a source of this y4m format: both are run for 4:2:0 only. */
export function av1RefuseSource (encoder: string, y4mOfSource: string): string | undefined {
  const m = /^yuvj?4(22|44)p/.exec(y4mOfSource)
  if (m === null) return undefined
  return `${encoder} encodes 4:2:0 only in swarm, and this source is 4:${m[1] === '22' ? '2:2' : '4:4'}: convert it to 4:2:0 first (ffmpeg -pix_fmt yuv420p or yuv420p10le) or use x264`
}

/** What the AV1 encoders share: IVF out, 4:2:0 in at the stream's depth. */
export const AV1_IVF: Pick<Encoder, 'bitstream' | 'codec' | 'fileExtension' | 'inputPixFmt' | 'rawBytesPerPixel'> = {
  bitstream: 'ivf',
  codec: 'av1',
  fileExtension: '.ivf',
  inputPixFmt: av1InputPixFmt,
  rawBytesPerPixel: (settings) => 1.5 * settings.outputDepth / 8
}

/** The pictures an AV1 encoder holds besides AV1's eight reference slots, at the 4:2:0 pictures of the settings' depth. */
export function av1MemoryInputs (settings: EncoderSettings, held: { lookahead: number, bframes: number }): EncoderMemoryInputs {
  return { ...held, ref: 8, samplesPerPixel: 1.5, bytesPerSample: settings.outputDepth === 10 ? 2 : 1 }
}
