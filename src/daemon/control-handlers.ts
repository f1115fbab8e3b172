import { ADAPTIVE_RULE, InputError, type AdaptiveRule, type JobRecord, type Originator } from '../jobs/index.js'
import { shortJob, shortPeer } from '../log/index.js'
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
  /** The node runs with a swarm key: only machines that hold it can connect (adaptive checking trusts them). */
  privateSwarm: boolean
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
        const warnings = [...(job.warnings ?? []), ...(job.verify === 'adaptive' && !s.privateSwarm ? [adaptiveInTheOpen()] : [])]
        return { job: s.jobStatus(job, false), existing, ...(warnings.length > 0 ? { warning: warnings.join('; ') } : {}) }
      } catch (err) {
        if (err instanceof InputError) throw new ControlError(400, 'input', err.message)
        throw err
      }
    },
    unban: (idOrEnd) => {
      // The full id, or its end as `swarm status` and `swarm peers` print it (shortPeer: its last 8 characters).
      const matches = s.banned().filter(p => p === idOrEnd || p.endsWith(idOrEnd))
      const exact = matches.find(p => p === idOrEnd)
      if (exact === undefined && matches.length > 1) throw new ControlError(400, 'input', `peer id …${idOrEnd} is ambiguous: give more characters`)
      const peer = exact ?? matches[0]
      if (peer === undefined || !s.unban(peer)) throw new ControlError(404, 'not-found', `no peer ${idOrEnd} is banned on this node`)
      return { lifted: peer }
    },
    cancelJob: async (prefix) => {
      checkJobPrefix(prefix)
      const matches = s.jobs.list().filter(j => j.id.startsWith(prefix))
      if (matches.length > 1) throw ambiguous(prefix)
      const job = matches[0]
      if (job === undefined) {
        const remote = s.remoteJobs().filter(r => r.ann.jobId.startsWith(prefix))
        const other = remote.length === 1 ? remote[0]?.ann : undefined
        if (other !== undefined) throw new ControlError(404, 'not-found', `job ${shortJob(other.jobId)} was added on another node (${shortPeer(other.originator)}); only that node can cancel it`)
        throw noSuchJob(prefix)
      }
      // The full id: what was cancelled, not what was typed.
      if (!await s.jobs.cancelJob(job.id)) throw noSuchJob(prefix)
      return job.id
    }
  }
}

/**
 * Adaptive checking is allowed without a swarm key (the user asked for it), but in the open anyone
 * can be a peer, and most of their results would be kept on their structure alone.
 */
export function adaptiveInTheOpen (rule: AdaptiveRule = ADAPTIVE_RULE): string {
  return `this node has no --swarm-key, and --verify adaptive trusts every peer that connects: after each peer's first ${rule.fullFirst === 1 ? 'result' : `${rule.fullFirst} results`} in a job, only about one in ${Math.round(1 / rule.share)} of its results gets the picture check, the rest are kept on their structure alone; a wrong one caught sends all of that peer's chunks back, but one never checked can end up in the output`
}

/** A prefix that cannot name a job (job ids are 64 lowercase hex digits) says so, rather than failing as a route nobody knows. */
function checkJobPrefix (prefix: string): void {
  if (!/^[0-9a-f]{4,64}$/.test(prefix)) throw noSuchJob(prefix, 'a job id is lowercase hex digits, and a prefix of it needs at least 4')
}

function noSuchJob (prefix: string, why?: string): ControlError {
  return new ControlError(404, 'not-found', `no job matches '${prefix}'${why !== undefined ? ` (${why})` : ''}; \`swarm status\` lists jobs`)
}

/** One job, this node's own or another originator's, by a prefix of its id. */
function findJob (s: ControlSources, prefix: string): JobStatus {
  checkJobPrefix(prefix)
  const jobs = s.jobs.list()
  const local = jobs.filter(j => j.id.startsWith(prefix))
  const remote = remoteOnly(s.remoteJobs(), jobs).filter(r => r.ann.jobId.startsWith(prefix))
  if (local.length + remote.length > 1) throw ambiguous(prefix)
  if (local[0] !== undefined) return s.jobStatus(local[0], true)
  if (remote[0] !== undefined) return remoteStatus(remote[0])
  throw noSuchJob(prefix)
}

function ambiguous (prefix: string): ControlError {
  return new ControlError(400, 'input', `job id ${prefix} is ambiguous: give more characters`)
}
