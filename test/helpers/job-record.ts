import type { ChunkState, JobRecord, JobState } from '../../src/jobs/types.js'

/** A job record as job.json holds it, with chunks in the given states and nothing on disk behind it. */
export function jobRecord (id: string, states: ChunkState[] = ['open'], state: JobState = 'encoding', frames = 100): JobRecord {
  return {
    version: 1,
    id,
    sourcePath: '/src.mkv',
    sourceSha256: 'x',
    sourceSize: 1,
    settings: '--crf 30',
    output: null,
    state,
    originator: 'origin',
    createdAt: 0,
    updatedAt: 0,
    totalFrames: frames * states.length,
    video: { frameRate: { num: 25, den: 1 }, pixFmt: 'yuv420p', width: 64, height: 36 },
    chunks: states.map((s, index) => ({ index, startFrame: index * frames, frames, state: s, pastHolders: [], failures: [] }))
  }
}
