import type { HdrMetadata, VideoColour } from '../probe.js'
import { parseAllowlisted, sealSettings } from '../settings.js'
import { AV1_IVF, av1MemoryInputs, av1RefuseSource, CICP_MATRIX, CICP_PRIMARIES, CICP_TRANSFER, lastMatch, lastValue, optionsGiven } from './common.js'
import type { ChunkArgsOptions, Encoder, EncoderMemoryInputs, EncoderProgress, EncoderSettings } from './types.js'
import { SVT_AV1_OPTIONS } from './svt-av1-options.js'

/**
 * Parses and checks an SvtAv1EncApp settings string (the allowlist: svt-av1-options.ts). Throws
 * SettingsError naming the first refused option. Runs wherever settings cross a trust boundary,
 * as x264's does.
 */
export function parseSvtAv1Settings (raw: string): EncoderSettings {
  const { args, values } = parseAllowlisted(raw, SVT_AV1_OPTIONS)
  const outputDepth = values.get('input-depth') === '10' ? 10 : 8
  return sealSettings({ encoder: 'svt-av1', raw, args, outputDepth })
}

// ---- colour ------------------------------------------------------------------------------------

/** AV1's chroma_sample_position can say "left" (vertical) and "top-left" (colocated) only. */
const CHROMA_POSITION: Record<string, string> = { left: 'left', topleft: 'topleft' }

/** The SvtAv1EncApp option that states each colour field; AV1 has no aspect ratio (the container carries it). */
const COLOUR_OPTIONS: Partial<Record<keyof VideoColour, string>> = {
  range: 'color-range', primaries: 'color-primaries', transfer: 'transfer-characteristics', matrix: 'matrix-coefficients', chromaLocation: 'chroma-sample-position'
}

/**
 * HDR10's mastering display as SvtAv1EncApp 1.4.1 reads it: the same G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)
 * as x265's, but chromaticities as fractions and luminance in cd/m², where the source's (probe.ts
 * HdrMetadata) counts 0.00002 and 0.0001 steps. Given x265's integers it clips them all to 1.0.
 */
export function svtMasteringDisplay (x265Form: string): string | undefined {
  const m = /^G\((\d+),(\d+)\)B\((\d+),(\d+)\)R\((\d+),(\d+)\)WP\((\d+),(\d+)\)L\((\d+),(\d+)\)$/.exec(x265Form)
  if (m === null) return undefined
  const [gx, gy, bx, by, rx, ry, wx, wy, max, min] = m.slice(1).map(Number) as number[]
  const xy = (x: number | undefined, y: number | undefined): string => `(${String((x ?? 0) / 50000)},${String((y ?? 0) / 50000)})`
  return `G${xy(gx, gy)}B${xy(bx, by)}R${xy(rx, ry)}WP${xy(wx, wy)}L(${String((max ?? 0) / 10000)},${String((min ?? 0) / 10000)})`
}

/** HDR10's metadata OBUs (mastering display, content light level) for what the source states and the settings leave open. */
function hdrArgs (settings: EncoderSettings, hdr: HdrMetadata = {}): string[] {
  const set = optionsGiven(settings)
  const args: string[] = []
  const mastering = hdr.masteringDisplay !== undefined ? svtMasteringDisplay(hdr.masteringDisplay) : undefined
  if (mastering !== undefined && !set.has('mastering-display')) args.push('--mastering-display', mastering)
  if (hdr.contentLight !== undefined && !set.has('content-light')) args.push('--content-light', hdr.contentLight)
  // SvtAv1EncApp writes neither without it.
  if (args.length > 0 && !set.has('enable-hdr')) args.push('--enable-hdr', '1')
  return args
}

/** SvtAv1EncApp writes "unspecified" colour and studio range unless told: the source's is carried, in CICP numbers, and its HDR10 metadata. */
function sourceColourArgs (colour: VideoColour, settings: EncoderSettings, hdr?: HdrMetadata): string[] {
  const set = optionsGiven(settings)
  const args: string[] = []
  const carry = (option: string, value: string | number | undefined): void => {
    if (value !== undefined && !set.has(option)) args.push(`--${option}`, String(value))
  }
  carry('color-range', colour.range === 'pc' ? 1 : colour.range === 'tv' ? 0 : undefined)
  carry('color-primaries', colour.primaries !== undefined ? CICP_PRIMARIES[colour.primaries] : undefined)
  carry('transfer-characteristics', colour.transfer !== undefined ? CICP_TRANSFER[colour.transfer] : undefined)
  carry('matrix-coefficients', colour.matrix !== undefined ? CICP_MATRIX[colour.matrix] : undefined)
  carry('chroma-sample-position', colour.chromaLocation !== undefined ? CHROMA_POSITION[colour.chromaLocation] : undefined)
  return [...args, ...hdrArgs(settings, hdr)]
}

function colourSetBy (settings: EncoderSettings): Set<keyof VideoColour> {
  const set = optionsGiven(settings)
  return new Set((Object.keys(COLOUR_OPTIONS) as Array<keyof VideoColour>).filter(k => set.has(COLOUR_OPTIONS[k] as string)))
}

/** An AV1 sequence header always codes the range: studio unless --color-range says full. */
function statedRange (settings: EncoderSettings): 'tv' | 'pc' {
  const value = lastValue(settings, 'color-range')
  return value === '1' || value === 'full' ? 'pc' : 'tv'
}

// ---- one chunk ---------------------------------------------------------------------------------

/** The rate control mode the settings choose: 0 CRF/CQP (the default), 1 VBR, 2 CBR. */
function rateControl (settings: EncoderSettings): string {
  return lastValue(settings, 'rc') ?? '0'
}

function chunkArgs (settings: EncoderSettings, o: ChunkArgsOptions): string[] {
  return [
    ...settings.args,
    // --pin 0: SvtAv1EncApp otherwise pins itself to the first --lp cores, every encode of this machine's slots onto the same ones.
    ...(o.threads !== undefined ? ['--lp', String(o.threads), '--pin', '0'] : ['--pin', '0']),
    /*
     * A key frame at the chunk's start and none inside it, as Av1an encodes its chunks (`--keyint 0
     * --scd 0`): the chunk boundaries already sit at the source's key frames, and a key frame
     * SvtAv1EncApp adds mid-chunk (every ~5 s by default) cuts a mini-GOP short. SvtAv1EncApp takes
     * an unbounded GOP (-1) for CRF/CQP only; VBR and CBR get one as long as the chunk.
     */
    '--keyint', rateControl(settings) === '0' ? '-1' : String(o.frameCount),
    '--scd', '0',
    '--fps-num', String(o.frameRate.num),
    '--fps-denom', String(o.frameRate.den),
    '--frames', String(o.frameCount),
    // aomenc-style lines: frame count and rate (parseProgress).
    '--progress', '2',
    '-i', o.inputPath ?? 'stdin',
    '-b', o.outputPath
  ]
}

/*
 * SvtAv1EncApp 1.4 whose allocation or thread start fails (under a worker's memory limit: a
 * 320x240 encode under 100-150 MiB, a 720p one under 400 MB) prints these, then waits for ever
 * ("deinit called without sending EOS!") with no CPU used: a worker's slot held until it stops.
 */
const SVT_FATAL_RE = /SvtMalloc\[fatal\]|Svt\[error\]: Failed to create thread/

// "Encoding frame   17 89.67 kbps 60.48 fps  \r"
const PROGRESS_RE = /Encoding frame\s+(\d+)\s+[\d.]+ kbps\s+([\d.]+) fps/g

function parseProgress (stderr: string): EncoderProgress | undefined {
  const latest = lastMatch(PROGRESS_RE, stderr)
  return latest === undefined ? undefined : { framesDone: Number(latest[1]), fps: Number(latest[2]) }
}

/** The summary it prints at the end: "Total Frames\t\tFrame Rate\t\tByte Count\t\tBitrate\n          40\t\t24.00 fps …". */
function encodedFrames (stderr: string): number | undefined {
  const summary = /Total Frames[^\n]*\n\s*(\d+)\s/.exec(stderr)
  return summary === null ? undefined : Number(summary[1])
}

// ---- memory and size ---------------------------------------------------------------------------

/**
 * What SvtAv1EncApp 1.4.1 holds, counted as memory.ts counts pictures: the mini-GOP it gathers,
 * its lookahead, AV1's eight references. It takes far more than that: peak RSS with --lp 1, fitted
 * over 640x360 and 1280x720 as a fixed 13-21 MiB plus this many raw 4:2:0 pictures: 162 at
 * preset 12, 203 at preset 8, 248 at preset 4 (its parent picture buffers, padded references,
 * the temporal filter's and motion search's copies), where the estimate counts 44 pictures and
 * x264's 1.25 overhead, 55: 3.7-5.6 times below the need, so it never refuses honest work; the
 * operating-system limit catches the rest. An SVT-AV1 overhead in memory.ts would tighten it.
 */
function memoryInputs (settings: EncoderSettings): EncoderMemoryInputs {
  const preset = Number(lastValue(settings, 'preset') ?? '10')
  const levels = Number(lastValue(settings, 'hierarchical-levels') ?? (preset <= 12 ? 5 : 4))
  const lookahead = Number(lastValue(settings, 'lookahead') ?? '-1')
  // The mini-GOP: 2^levels pictures gathered before any is encoded.
  return av1MemoryInputs(settings, { lookahead: Math.max(0, lookahead), bframes: 2 ** levels })
}

export const svtAv1: Encoder = {
  id: 'svt-av1',
  binary: 'SvtAv1EncApp',
  ...AV1_IVF,
  versionArgs: ['--version'],
  // "SVT-AV1 v1.4.1 (release)"
  parseVersion: (output) => /^SVT-AV1 v(\S+)/m.exec(output)?.[1],
  parseSettings: parseSvtAv1Settings,
  refuseSource: (y4mOfSource) => av1RefuseSource('SVT-AV1', y4mOfSource),
  chunkArgs,
  sourceColourArgs,
  colourSetBy,
  statedRange,
  parseProgress,
  encodedFrames,
  hangsAfter: SVT_FATAL_RE,
  memoryInputs
}
