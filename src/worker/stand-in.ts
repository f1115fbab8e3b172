import { setTimeout as sleep } from 'node:timers/promises'
import { AbortError, encodeChunk, encoderFor } from '../media/index.js'
import type { ChunkEncoder } from './worker.js'

/**
 * Test-only encoders, chosen by the SWARM_TEST_ENCODER environment variable of `swarm join`
 * (never by anything from the network):
 *   delay:MS   wait MS milliseconds per frame (reporting progress as it goes), then encode for real,
 *              so tests can kill, freeze or race a worker in the middle of a chunk;
 *   sleep:MS   wait MS milliseconds per frame and then encode with the job's settings made cheap
 *              (motion search and trellis at their fastest): a stand-in for long encodes whose
 *              output still passes the originator's checks, structure included (another preset
 *              would change the profile, which the structure check refuses).
 */
/** Options that make x264 fast without changing what its SPS says (profile, chroma, depth, VUI). */
const CHEAP_SEARCH = '--subme 1 --me dia --trellis 0'

export function standInEncoder (spec: string): ChunkEncoder {
  const m = /^(delay|sleep):(\d+(?:\.\d+)?)$/.exec(spec)
  if (m === null) throw new Error(`SWARM_TEST_ENCODER=${spec} is not delay:MS or sleep:MS`)
  const msPerFrame = Number(m[2])
  const fast = m[1] === 'sleep'
  return async (o) => {
    const started = Date.now()
    for (let done = 0; done < o.frameCount; done++) {
      if (o.signal?.aborted === true) throw new AbortError(`encoding ${o.segmentPath}: aborted`)
      if (msPerFrame > 0) await sleep(msPerFrame, undefined, o.signal !== undefined ? { signal: o.signal } : {}).catch(() => {})
      if (done % 5 === 0) o.onProgress?.({ framesDone: done, frameCount: o.frameCount, fps: done / Math.max(0.001, (Date.now() - started) / 1000) })
    }
    if (o.signal?.aborted === true) throw new AbortError(`encoding ${o.segmentPath}: aborted`)
    return await encodeChunk(fast ? { ...o, settings: encoderFor(o.settings.encoder).parseSettings(`${o.settings.raw} ${CHEAP_SEARCH}`) } : o)
  }
}
