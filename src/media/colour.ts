import type { VideoColour, VideoInfo } from './probe.js'
import { parseX264Settings, type X264Settings } from './settings.js'

/*
 * x264 writes "unknown" for range, primaries, transfer and matrix unless told, and players then
 * guess (often BT.601 for SD, wrong for most sources). What the source says is carried into the
 * encode, except where the user's settings say otherwise. ffprobe and x264 mostly share names;
 * these tables hold the ones x264 accepts, under ffprobe's name.
 */
const PRIMARIES: Record<string, string> = Object.fromEntries(['bt709', 'bt470m', 'bt470bg', 'smpte170m', 'smpte240m', 'film', 'bt2020', 'smpte428', 'smpte431', 'smpte432'].map(n => [n, n]))
const TRANSFER: Record<string, string> = {
  ...Object.fromEntries(['bt709', 'smpte170m', 'smpte240m', 'linear', 'log100', 'log316', 'iec61966-2-4', 'bt1361e', 'iec61966-2-1', 'bt2020-10', 'bt2020-12', 'smpte2084', 'smpte428', 'arib-std-b67'].map(n => [n, n])),
  // ffprobe names BT.470 M and B/G transfers both ways (gamma22/gamma28 and bt470m/bt470bg).
  gamma22: 'bt470m',
  gamma28: 'bt470bg',
  bt470m: 'bt470m',
  bt470bg: 'bt470bg'
}
const MATRIX: Record<string, string> = {
  ...Object.fromEntries(['bt709', 'fcc', 'bt470bg', 'smpte170m', 'smpte240m', 'bt2020nc', 'bt2020c', 'smpte2085', 'chroma-derived-nc', 'chroma-derived-c'].map(n => [n, n])),
  gbr: 'GBR',
  ycgco: 'YCgCo',
  ictcp: 'ICtCp'
}
const RANGE: Record<string, string> = { tv: 'tv', pc: 'pc' }
/** H.264 chroma_sample_loc_type numbering, which x264's --chromaloc takes. */
const CHROMA_LOCATION: Record<string, string> = { left: '0', center: '1', topleft: '2', top: '3', bottomleft: '4', bottom: '5' }

/** x264 options that describe the source's colour and geometry, for each thing the source states and the settings leave open. */
export function sourceColourArgs (colour: VideoColour, settings: X264Settings): string[] {
  const set = new Set(settings.args.filter(a => a.startsWith('--')).map(a => a.slice(2)))
  const args: string[] = []
  const carry = (option: string, value: string | undefined): void => {
    if (value !== undefined && !set.has(option)) args.push(`--${option}`, value)
  }
  carry('range', colour.range !== undefined ? RANGE[colour.range] : undefined)
  carry('colorprim', colour.primaries !== undefined ? PRIMARIES[colour.primaries] : undefined)
  carry('transfer', colour.transfer !== undefined ? TRANSFER[colour.transfer] : undefined)
  carry('colormatrix', colour.matrix !== undefined ? MATRIX[colour.matrix] : undefined)
  carry('chromaloc', colour.chromaLocation !== undefined ? CHROMA_LOCATION[colour.chromaLocation] : undefined)
  carry('sar', colour.sar)
  return args
}

/**
 * The settings every chunk is encoded with: the user's, plus the source's colour description and
 * sample aspect ratio where the user set none. Still one settings string, checked like any other.
 */
export function effectiveSettings (settings: string, video: Pick<VideoInfo, 'colour'>): X264Settings {
  const parsed = parseX264Settings(settings)
  const extra = sourceColourArgs(video.colour ?? {}, parsed)
  return extra.length === 0 ? parsed : parseX264Settings(`${settings} ${extra.join(' ')}`.trim())
}

/**
 * The range the encode states with `--range`, for the container to state as well: x264 writes no
 * signal-type VUI for `--range tv` alone, so without the container's word the output says nothing
 * and players guess. Undefined when the settings leave it to x264 (auto).
 */
export function statedRange (settings: X264Settings): 'tv' | 'pc' | undefined {
  const i = settings.args.lastIndexOf('--range')
  const value = i >= 0 ? settings.args[i + 1] : undefined
  return value === 'tv' || value === 'pc' ? value : undefined
}
