import { InputError, type JobRecord, type Originator } from '../jobs/index.js'
import type { AddJobResponse, JobStatus, PeersJson, StatusJson } from './api.js'
import { ControlError, type ControlHandlers } from './control-server.js'
import { remoteOnly, remoteStatus, type RemoteJob } from './status-view.js'

/** What the control API answers from. */
export interface ControlSources {
  jobs: Pick<Originator, 'list' | 'addJob' | 'cancelJob'>
  /** Other originators' jobs this node lists. */
  remoteJobs: () => RemoteJob[]
  jobStatus: (job: JobRecord, withChunks: boolean) => JobStatus
  status: (withChunks: boolean) => StatusJson
  peers: () => Promise<PeersJson>
  /** Peers on the block list, and lifting a ban (true when there was one). */
  banned: () => string[]
  unban: (peer: string) => boolean
}

/** The control API's answers: status and peers as the view gives them, jobs found by id prefix, jobs added and cancelled. */
export function controlHandlers (s: ControlSources): ControlHandlers {
  return {
    status: () => s.status(false),
    snapshot: () => s.status(true),
    peers: s.peers,
    job: (prefix) => findJob(s, prefix),
    addJob: async (req): Promise<AddJobResponse> => {
      try {
        const { gopsPerChunk, chunkSeconds, ...rest } = req
        const plan = { ...(gopsPerChunk !== undefined ? { gopsPerChunk } : {}), ...(chunkSeconds !== undefined ? { chunkSeconds } : {}) }
        const { job, existing } = await s.jobs.addJob({ ...rest, plan })
        return { job: s.jobStatus(job, false), existing }
      } catch (err) {
        if (err instanceof InputError) throw new ControlError(400, 'input', err.message)
        throw err
      }
    },
    unban: (idOrEnd) => {
      // The full id, or its end as `swarm status` and `swarm peers` print it (…tail).
      const matches = s.banned().filter(p => p === idOrEnd || p.endsWith(idOrEnd))
      const exact = matches.find(p => p === idOrEnd)
      if (exact === undefined && matches.length > 1) throw new ControlError(400, 'input', `peer id …${idOrEnd} is ambiguous: give more characters`)
      const peer = exact ?? matches[0]
      if (peer === undefined || !s.unban(peer)) throw new ControlError(404, 'not-found', `no peer ${idOrEnd} is banned on this node`)
      return { lifted: peer }
    },
    cancelJob: async (prefix) => {
      const matches = s.jobs.list().filter(j => j.id.startsWith(prefix))
      if (matches.length > 1) throw ambiguous(prefix)
      if (matches[0] === undefined) return false
      return await s.jobs.cancelJob(matches[0].id)
    }
  }
}

/** One job, this node's own or another originator's, by a prefix of its id. */
function findJob (s: ControlSources, prefix: string): JobStatus {
  const jobs = s.jobs.list()
  const local = jobs.filter(j => j.id.startsWith(prefix))
  const remote = remoteOnly(s.remoteJobs(), jobs).filter(r => r.ann.jobId.startsWith(prefix))
  if (local.length + remote.length > 1) throw ambiguous(prefix)
  if (local[0] !== undefined) return s.jobStatus(local[0], true)
  if (remote[0] !== undefined) return remoteStatus(remote[0])
  throw new ControlError(404, 'not-found', `no job ${prefix} is known to this node`)
}

function ambiguous (prefix: string): ControlError {
  return new ControlError(400, 'input', `job id ${prefix} is ambiguous: give more characters`)
}
