/**
 * What the benchmarks vary per encoder: the speed presets a case may name, the quality value and
 * its range, and the settings string the two make in the encoder's own options. The settings are
 * always parsed by the encoder's own parser (bench/swarm.ts, the nodes), never trusted as written.
 */
import { ENCODER_IDS, encoderFor, type EncoderId, type EncoderSettings } from '../../src/media/index.js'

export interface BenchEncoder {
  /** The speed presets a case may name, as written on the benchmark's command line. */
  presets: readonly string[]
  /** The quality value's range and default (x264, x265 and SVT-AV1 --crf, aomenc --cq-level). */
  quality: { min: number, max: number, default: number }
  /** bench:throughput's presets when --presets is not given: a faster and a slower one. */
  throughputPresets: readonly string[]
  /** bench/swarm.ts's preset when --settings is not given. */
  swarmPreset: string
  /** The settings string of a preset and a quality value. */
  settings: (preset: string, quality: number) => string
}

const X26X_PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow', 'placebo'] as const
const numbers = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => String(from + i))

/** x264 and x265: the same preset names and --crf range, a quality default of their own. */
const x26x = (defaultCrf: number): BenchEncoder => ({
  presets: X26X_PRESETS,
  quality: { min: 0, max: 51, default: defaultCrf },
  throughputPresets: ['faster', 'medium'],
  swarmPreset: 'medium',
  settings: (preset, crf) => `--preset ${preset} --crf ${crf}`
})

export const BENCH_ENCODERS: Record<EncoderId, BenchEncoder> = {
  x264: x26x(20),
  // About x264's --crf 20 in what the eye sees; x265's own default is 28.
  x265: x26x(24),
  'svt-av1': {
    presets: numbers(0, 13),
    quality: { min: 1, max: 63, default: 35 },
    throughputPresets: ['10', '8'],
    swarmPreset: '8',
    settings: (preset, crf) => `--preset ${preset} --crf ${crf}`
  },
  aomenc: {
    // --cpu-used: its good-quality mode (its default) takes 0-6 and encodes 7-9 as 6.
    presets: numbers(0, 9),
    quality: { min: 0, max: 63, default: 30 },
    throughputPresets: ['6', '4'],
    swarmPreset: '4',
    settings: (cpuUsed, cq) => `--cpu-used=${cpuUsed} --end-usage=q --cq-level=${cq}`
  }
}

/** `--encoder NAME` of a benchmark or the demo: one of the encoders a job may name. */
export function encoderNamed (name: string): EncoderId {
  const id = ENCODER_IDS.find(e => e === name)
  if (id === undefined) throw new Error(`--encoder ${name}: one of ${ENCODER_IDS.join(', ')}`)
  return id
}

/** A preset and quality value of an encoder as settings its parser took (it throws on what it refuses). */
export function benchSettings (encoder: EncoderId, preset: string, quality: number): EncoderSettings {
  return encoderFor(encoder).parseSettings(BENCH_ENCODERS[encoder].settings(preset, quality))
}
