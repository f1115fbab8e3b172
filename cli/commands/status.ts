import { setTimeout as sleep } from 'node:timers/promises'
import { connectControl, type ControlClient, type JobStatus, type StatusJson } from '../../src/daemon/client.js'
import { EXIT_FAILED, EXIT_OK, HOME_HELP, rejectExtraArguments, type Command } from '../command.js'
import { formatJob, formatProgressLine, formatStatus } from '../format.js'
import { liveCapable, LiveScreen, REFRESH_MS, renderJob, renderStatus } from '../live.js'
import { out } from '../output.js'
import { shortJob } from '../../src/log/index.js'

/** `swarm status [JOB]`: this node, its peers and jobs, or one job's chunks; `--watch` keeps it live. */
export const status: Command = {
  help: `Usage: swarm status [JOB] [--home DIR] [--watch] [--json]

Without JOB: this node's peer id and addresses, its peers, every job it knows and its worker.
With JOB (an id or a unique prefix): that job's chunks and who holds each.

${HOME_HELP}
  --watch              refresh every second until Ctrl-C (with JOB: until the job is done or
                       failed): a live view per job (frames, fps, ETA, per peer) on a terminal,
                       plain lines when something changes when stdout is not one or NO_COLOR is set
  --json               print one JSON object (the shape is documented in docs/operations.md);
                       with --watch one object per line per refresh`,
  flags: { json: { type: 'boolean' }, watch: { type: 'boolean' } },
  takesHome: true,
  maxPositionals: 1,
  run: async ({ home, flags, positionals }) => {
    rejectExtraArguments('swarm status', positionals, status.maxPositionals, 'at most one JOB')
    const client = await connectControl(home)
    const json = flags.json === true
    if (flags.watch === true) return await watch(client, positionals[0], json ? 'json' : liveCapable(process.stdout) ? 'live' : 'plain')
    if (positionals[0] !== undefined) {
      const job = await client.job(positionals[0])
      out(json ? JSON.stringify(job) : formatJob(job))
      return EXIT_OK
    }
    const s: StatusJson = await client.status()
    out(json ? JSON.stringify(s) : formatStatus(s))
    return EXIT_OK
  }
}

/**
 * `swarm status --watch`: refreshes every second until Ctrl-C, or with JOB until that job is done
 * (exit 0) or failed (exit 1). 'json' prints one object per refresh, 'plain' a job's progress line
 * when it changes, 'live' redraws a view of every job on the terminal.
 */
async function watch (client: ControlClient, jobId: string | undefined, mode: 'json' | 'plain' | 'live'): Promise<number> {
  const interrupted = new AbortController()
  const onSigint = (): void => { interrupted.abort() }
  process.once('SIGINT', onSigint)
  const screen = mode === 'live' ? new LiveScreen(process.stdout) : undefined
  const lastLines = new Map<string, string>()
  const plain = (jobs: JobStatus[]): void => {
    for (const job of jobs) {
      const line = formatProgressLine(job)
      if (lastLines.get(job.id) !== line) { out(line); lastLines.set(job.id, line) }
    }
    for (const id of [...lastLines.keys()]) {
      if (!jobs.some(j => j.id === id)) { out(`job ${shortJob(id)} is gone`); lastLines.delete(id) }
    }
  }
  try {
    while (!interrupted.signal.aborted) {
      if (jobId !== undefined) {
        const job = await client.job(jobId)
        if (mode === 'json') out(JSON.stringify(job))
        else if (screen !== undefined) screen.draw(renderJob(job, { color: true, ...(job.local ? { self: job.originator } : {}) }))
        else plain([job])
        if (job.state === 'done') return EXIT_OK
        if (job.state === 'failed') return EXIT_FAILED
      } else {
        const s = await client.status()
        if (mode === 'json') out(JSON.stringify(s))
        else if (screen !== undefined) {
          // Chunk lists (who encodes what, at what speed) for the jobs added here that are still running.
          const running = s.jobs.filter(j => j.local && j.state !== 'done' && j.state !== 'failed')
          const detailed = new Map((await Promise.all(running.map(async j => await client.job(j.id).catch(() => j)))).map(j => [j.id, j]))
          screen.draw(renderStatus(s, detailed, { color: true, self: s.peerId }))
        } else plain(s.jobs)
      }
      await sleep(REFRESH_MS, undefined, { signal: interrupted.signal }).catch(() => {})
    }
    return EXIT_OK
  } finally {
    process.off('SIGINT', onSigint)
  }
}
