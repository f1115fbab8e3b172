import { Av1BitstreamError, describeAv1Structure, summarizeIvfAv1, type Av1Structure } from './av1.js'
import type { OutputCodec } from './encoders/types.js'
import { describeH264Structure, summarizeAnnexB, type H264Structure } from './h264.js'
import { describeHevcStructure, summarizeHevc, type HevcStructure } from './hevc.js'

/*
 * A chunk's bitstream read in-process, per codec: the one place that knows which parser reads
 * which codec. verify.ts (parse-only checks) and structure.ts (the job's reference) ask here; a new
 * codec is a parser and a line in each table below.
 */

/** What a parse-only check of a chunk needs, whatever its codec. */
export interface ChunkSummary {
  pictures: number
  /** The first picture decodes on its own (H.264 and HEVC: an IDR picture; AV1: a shown key frame). */
  startsWithKeyframe: boolean
  /** Why the bytes are not a stream of the codec at all, where its reader says (AV1: summarizeIvfAv1's refusal). */
  invalid?: string
  /** The header the stream lacks for a decoder to start (SPS, PPS, VPS…); undefined when it has them all. */
  missing?: string
  /** The format its first sequence header states. */
  format?: ChunkFormat
}

export interface ChunkFormat {
  profile: string
  chromaFormatIdc: number
  bitDepth: number
  width: number
  height: number
}

const H264_PROFILES: Record<number, string> = { 66: 'Constrained Baseline', 77: 'Main', 88: 'Extended', 100: 'High', 110: 'High 10', 122: 'High 4:2:2', 244: 'High 4:4:4 Predictive' }
const HEVC_PROFILES: Record<number, string> = { 1: 'Main', 2: 'Main 10', 3: 'Main Still Picture', 4: 'Rext' }

function summarizeH264Chunk (data: Uint8Array): ChunkSummary {
  const s = summarizeAnnexB(data)
  const missing = s.sps === undefined ? 'SPS' : !s.hasPps ? 'PPS' : undefined
  return {
    pictures: s.pictures,
    startsWithKeyframe: s.startsWithIdr,
    ...(missing !== undefined ? { missing } : {}),
    ...(s.sps !== undefined ? { format: { ...s.sps, profile: H264_PROFILES[s.sps.profileIdc] ?? `profile ${s.sps.profileIdc}` } } : {})
  }
}

function summarizeHevcChunk (data: Uint8Array): ChunkSummary {
  const s = summarizeHevc(data)
  const missing = !s.hasVps ? 'VPS' : s.sps === undefined ? 'SPS' : !s.hasPps ? 'PPS' : undefined
  return {
    pictures: s.pictures,
    startsWithKeyframe: s.startsWithIdr,
    ...(missing !== undefined ? { missing } : {}),
    ...(s.sps !== undefined ? { format: { ...s.sps, profile: HEVC_PROFILES[s.sps.profileIdc] ?? `profile ${s.sps.profileIdc}` } } : {})
  }
}

const AV1_PROFILES: Record<number, string> = { 0: 'Main', 1: 'High', 2: 'Professional' }
const AV1_CHROMA_FORMAT: Record<string, number> = { 400: 0, 420: 1, 422: 2, 444: 3 }

/**
 * An IVF file of AV1: its shown pictures are what a decoder outputs (hidden alt-refs are shown
 * later or never), its first a key frame after a sequence header (summarizeIvfAv1 refuses it
 * otherwise), its size the sequence header's.
 */
function summarizeAv1Chunk (data: Uint8Array): ChunkSummary {
  try {
    const s = summarizeIvfAv1(data)
    return {
      pictures: s.pictures,
      startsWithKeyframe: s.firstIsKey,
      format: { profile: AV1_PROFILES[s.profile] ?? `profile ${s.profile}`, chromaFormatIdc: AV1_CHROMA_FORMAT[s.chroma] ?? 1, bitDepth: s.bitDepth, width: s.width, height: s.height }
    }
  } catch (err) {
    if (!(err instanceof Av1BitstreamError)) throw err
    return { pictures: 0, startsWithKeyframe: false, invalid: err.message }
  }
}

/** The structure check's reading of a stream (structure.ts), one shape per codec. */
export type StreamStructure = H264Structure | HevcStructure | Av1Structure

/** The structure reading of each codec. */
export type StructureOf<C extends OutputCodec> = C extends 'h264' ? H264Structure : C extends 'hevc' ? HevcStructure : Av1Structure

interface CodecParsers {
  summarize: (data: Uint8Array) => ChunkSummary
  describe: (data: Uint8Array) => StreamStructure
  /** How messages name the codec. */
  name: string
}

const PARSERS: Partial<Record<OutputCodec, CodecParsers>> = {
  h264: { summarize: summarizeH264Chunk, describe: describeH264Structure, name: 'H.264' },
  hevc: { summarize: summarizeHevcChunk, describe: describeHevcStructure, name: 'HEVC' },
  av1: { summarize: summarizeAv1Chunk, describe: describeAv1Structure, name: 'AV1' }
}

function parsersOf (codec: OutputCodec): CodecParsers {
  const parsers = PARSERS[codec]
  if (parsers === undefined) throw new Error(`no parser for ${codec} bitstreams in this version of swarm`)
  return parsers
}

/** Counts a chunk's pictures and reads its first sequence header. */
export function summarizeChunk (codec: OutputCodec, data: Uint8Array): ChunkSummary {
  return parsersOf(codec).summarize(data)
}

/** Parameter sets or sequence header, NAL or OBU types, SEI or metadata types and bytes: what structure.ts compares with the job's reference. */
export function describeStructure<C extends OutputCodec> (codec: C, data: Uint8Array): StructureOf<C> {
  return parsersOf(codec).describe(data) as StructureOf<C>
}

/** The codec as messages name it: "H.264", "HEVC", "AV1". */
export function codecName (codec: OutputCodec): string {
  return PARSERS[codec]?.name ?? codec.toUpperCase()
}
