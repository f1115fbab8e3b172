import { availableParallelism } from 'node:os'
import { encoderFor, X264_PRESET_FRAMES, type EncoderMemoryInputs, type EncoderSettings } from './encoders/index.js'

/**
 * A worker's memory budget per encode (per slot). A few KB of segment can ask for gigabytes: x264
 * holds full pictures for its lookahead, its B-frames, its references and its frame threads, and a
 * hostile originator chooses both the settings and the picture size. The worker states a budget,
 * refuses a chunk whose settings × size need more by the estimate below, and runs the decoder and
 * x264 each under an operating-system limit of that size (`prlimit --data`), so one that needs
 * more fails alone, never the node.
 *
 * Why RLIMIT_DATA and not RLIMIT_AS (`--as`): the address space counts every shared library's
 * mapping (ffmpeg maps about 260 MiB of libraries before its first frame: under `--as` of 250 MiB
 * it cannot even start) and glibc's per-thread arena reservations, which grow with the cores.
 * RLIMIT_DATA (Linux 4.7+) counts private writable memory only (heap, anonymous mappings, thread
 * stacks): where frame buffers live, and close to what the encode really takes (measured in
 * docs/operations.md, memory per encode).
 */

export const MIB = 1024 * 1024
export const GIB = 1024 * MIB

/** The smallest budget `--max-memory` takes: below this not even ffmpeg starts (about 40 MiB of data before a frame). */
export const MIN_BUDGET_BYTES = 128 * MIB
/**
 * What x264 really takes, as a multiple of the raw pictures the estimate counts, for an honest
 * 4K --preset placebo encode (measured 4.54: 5,279 MiB of data for 98 pictures of 11.9 MiB, with
 * 3 frame threads; docs/operations.md, memory per encode), with 20% headroom.
 */
const HONEST_PLACEBO_RATIO = 4.54 * 1.2

/**
 * What an honest encode at 4K (the size the default budget is for) with the heaviest preset
 * (placebo: 16 references, 16 B-frames, 60 frames of lookahead) takes with this many x264
 * threads: about 6.2 GiB with 3, each thread one more picture.
 */
export function honest4kPlaceboBytes (threads: number = defaultX264Threads()): number {
  return Math.ceil(rawPictures(X264_PRESET_FRAMES.placebo as HeldFrames, threads) * 3840 * 2160 * 1.5 * HONEST_PLACEBO_RATIO)
}

/**
 * The default per-encode budget: what an honest 4K placebo encode needs with these threads
 * (honest4kPlaceboBytes). Less (2 GiB, or the machine's memory shared among its slots) would have
 * this worker refuse honest 4K work by default; this still stops anything past it (8K pictures
 * with placebo's frame counts are refused by the estimate, a segment whose decode takes more than
 * its settings explain is stopped by the limit). A machine that cannot afford it per slot says so
 * with `--max-memory` (or fewer `--slots`): such chunks are then refused by the estimate before
 * their download, at no one's fault.
 */
export function defaultMemoryBudget (threads?: number): number {
  return honest4kPlaceboBytes(threads)
}

/** Parses a size as `swarm join --max-memory` takes it: bytes, or a number with K, M, G or T (binary: 1G = 1024 MiB). */
export function parseMemorySize (text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text)
  if (m === null) throw new Error(`"${text}" is not a size: write bytes or a number with K, M, G or T, e.g. 2G or 1500M`)
  const unit = { '': 1, K: 1024, M: MIB, G: GIB, T: 1024 * GIB }[(m[2] as string).toUpperCase() as '' | 'K' | 'M' | 'G' | 'T']
  const bytes = Math.floor(Number(m[1]) * unit)
  if (bytes < MIN_BUDGET_BYTES) throw new Error(`${text} is too little memory for an encode: at least ${formatMemorySize(MIN_BUDGET_BYTES)} (ffmpeg alone takes about 40 MiB before its first frame)`)
  return bytes
}

/** A size for people: 2 GiB, 1.5 GiB, 300 MiB. */
export function formatMemorySize (bytes: number): string {
  if (bytes >= GIB) return `${Number((bytes / GIB).toFixed(2))} GiB`
  return `${Math.round(bytes / MIB)} MiB`
}

/** Pictures the encoder holds for its lookahead, B-frames and references (Encoder.memoryInputs). */
type HeldFrames = Pick<EncoderMemoryInputs, 'lookahead' | 'bframes' | 'ref'>

/** Pictures x264 holds beyond lookahead, B-frames, references and threads: the one being encoded, its reconstruction, the input. */
const FIXED_PICTURES = 3
/**
 * x264 takes more than the raw pictures (padding, half-pel planes for references, the lookahead's
 * low-resolution copies, motion vectors and costs), and each frame thread more again. Measured
 * under RLIMIT_DATA (docs/operations.md, memory per encode), per raw picture counted: 1.43 with one thread (1080p,
 * 16 references and B-frames, lookahead 60), 2.68 with three (the same), 3.84 (1080p slow) and
 * 4.54 (4K placebo) with three. The estimate takes 1.25, and 0.5 more for each of the first two
 * threads past one: below every measurement, so it never refuses work that would have fit.
 * Threads past three are not counted: not measured, so not assumed.
 */
function x264Overhead (threads: number): number {
  return 1.25 + 0.5 * Math.min(2, Math.max(0, threads - 1))
}

/** x264's own choice of frame threads: 1.5 per core. */
function defaultX264Threads (): number { return Math.ceil(availableParallelism() * 1.5) }

function rawPictures (frames: HeldFrames, threads: number): number {
  return frames.lookahead + frames.bframes + frames.ref + Math.max(1, threads) + FIXED_PICTURES
}

export interface MemoryEstimate {
  bytes: number
  /** The pictures counted, and what they are: for the refusal's message. */
  pictures: number
  explain: string
}

/**
 * A lower bound on what x264 needs for these settings at this size: full pictures (width × height
 * × 1.5 for 4:2:0, 2 for 4:2:2, 3 for 4:4:4, × 2 bytes a sample at 10 bits) for its lookahead,
 * B-frames, references, frame threads and FIXED_PICTURES, times x264Overhead. x264 takes more
 * than that, so a chunk refused by this estimate would surely have failed under the budget, and
 * honest work that fits is never refused; the OS limit catches what the estimate lets through.
 * `threads` is x264's --threads (the worker's; unset, x264's own choice). The pictures held and
 * their size come from the settings' encoder (Encoder.memoryInputs); the overhead was measured
 * for x264, and another encoder needs its own measurement.
 */
export function estimateEncodeMemory (settings: EncoderSettings, width: number, height: number, threads: number = defaultX264Threads()): MemoryEstimate {
  const frames = encoderFor(settings.encoder).memoryInputs(settings)
  const pictures = rawPictures(frames, threads)
  const pictureBytes = width * height * frames.samplesPerPixel * frames.bytesPerSample
  return {
    bytes: Math.ceil(pictures * pictureBytes * x264Overhead(threads)),
    pictures,
    explain: `${pictures} pictures of ${width}x${height} (lookahead ${frames.lookahead} + B-frames ${frames.bframes} + references ${frames.ref} + threads ${Math.max(1, threads)} + ${FIXED_PICTURES}) at ${formatMemorySize(pictureBytes)} each, x${x264Overhead(threads)} for x264's own planes and threads`
  }
}
