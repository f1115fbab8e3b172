import { availableParallelism } from 'node:os'

/**
 * Concurrent encodes for a machine: x264's frame threads lose efficiency as they grow (on 2 cores,
 * one encode with 2 threads does 1.8x one thread, two single-thread encodes 2x), so small machines
 * run one single-thread encode per core; bigger ones run 4 encodes with cores/4 threads each,
 * which bounds memory (a 4K encode holds hundreds of MiB) and the chunks in flight.
 */
export function defaultSlots (cores = availableParallelism()): number {
  const threadsPerEncode = Math.max(1, Math.floor(cores / 4))
  return Math.max(1, Math.floor(cores / threadsPerEncode))
}

/** x264 --threads per encode: the cores shared among the slots; x264's own choice with one slot. */
export function defaultThreads (slots: number, cores = availableParallelism()): number | undefined {
  return slots > 1 ? Math.max(1, Math.floor(cores / slots)) : undefined
}
