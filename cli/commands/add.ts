import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { connectControl, type ControlClient, type JobStatus } from '../../src/daemon/client.js'
import { DEFAULT_ENCODER, ENCODER_IDS, encoderFor, quoteShort, type EncoderId } from '../../src/media/index.js'
import { UsageError } from '../args.js'
import { EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, HOME_HELP, rejectExtraArguments, shareInWords, verifyMode, type Command } from '../command.js'
import { formatFidelitySummary, formatGivenBack, formatProgressLine } from '../format.js'
import { liveCapable, LiveScreen, REFRESH_MS, renderJob } from '../live.js'
import { err, out, printable } from '../output.js'
import { shortJob } from '../../src/log/index.js'

/** `swarm add FILE "SETTINGS"`: queues FILE on the local node, which becomes the job's originator. */
export const add: Command = {
  help: `Usage: swarm add FILE "SETTINGS" [--encoder NAME] [--home DIR] [--output PATH] [--wait] [--json] [--allow-damaged] [--drop-captions] [--verify all|adaptive]

Queues FILE on the local node, which becomes the job's originator. SETTINGS is one argument with
the encoder's own options, e.g. "--preset slow --crf 18 --profile high" for x264; no --
separator is needed. Options that name files or change the encoder's input/output are refused.
Adding the same file with the same settings and encoder again reports the existing job.

${HOME_HELP}
  --encoder NAME       the encoder: ${ENCODER_IDS.join(', ')} (default x264). This node must have
                       it; peers without it leave the job to those that have it (swarm peers
                       shows who has what)
  --output PATH        where to write the result (default: beside FILE, "NAME [x264].mkv")
  --chunk-gops N       keyframe intervals per chunk (default 7; more chunks are cut when the swarm is bigger)
  --chunk-seconds N    target chunk duration in seconds instead of --chunk-gops
  --allow-damaged      encode a source that looks truncated (its container promises more than its
                       packets hold); without it such a file is refused with both figures
  --drop-captions      leave out the CEA-608/708 closed captions of the source's video (by default
                       they become a subtitle track of the output)
  --verify all|adaptive  how peers' results of this job are checked (default: the node's, swarm
                       join --verify: adaptive with --swarm-key, all without). all: every result's
                       structure and pictures. adaptive: every result's structure; the pictures
                       of each peer's first result and of a random ${shareInWords()} of its others,
                       drawn after each upload; one wrong result bans the peer and sends every
                       chunk it encoded for this job back to be encoded again. Adding the same
                       file and settings again with --verify changes the job's mode from then on
  --wait               block until the output is merged and print its path; shows live progress
                       on a terminal (plain lines when stderr is not one or NO_COLOR is set), then
                       the fidelity check of the output against the source; Ctrl-C stops
                       the waiting, not the job (exit 130; it says how to follow or cancel it)
  --json               print JSON instead of text`,
  flags: { encoder: { type: 'string' }, verify: { type: 'string' }, output: { type: 'string' }, wait: { type: 'boolean' }, json: { type: 'boolean' }, 'chunk-gops': { type: 'number' }, 'chunk-seconds': { type: 'number' }, 'allow-damaged': { type: 'boolean' }, 'drop-captions': { type: 'boolean' } },
  takesHome: true,
  maxPositionals: 2,
  run: async ({ home, flags, positionals }) => {
    const [file, settings] = positionals
    if (file === undefined || settings === undefined) throw new UsageError('swarm add needs FILE and "SETTINGS", e.g. swarm add movie.mkv "--preset slow --crf 18"')
    rejectExtraArguments('swarm add', positionals, add.maxPositionals, 'FILE and "SETTINGS"')
    const path = resolve(file)
    // Checked here first so bad input fails fast and nothing is queued.
    let info
    try { info = await stat(path) } catch { throw new UsageError(`${file}: no such file`) }
    if (!info.isFile()) throw new UsageError(`${file}: not a regular file`)
    // A trust boundary: the user's settings, checked in this process so bad ones fail before the
    // node is asked; the node checks them again at its own (jobs/admission.ts checkInput).
    const encoder = encoderNamed(flags.encoder)
    try { encoderFor(encoder).parseSettings(settings) } catch (e) { throw new UsageError(`settings ${quoteShort(settings)}: ${(e as Error).message}`) }
    const verify = verifyMode(flags.verify, 'swarm add')
    const client = await connectControl(home)
    const json = flags.json === true
    if (settings.trim() === '' && !json) err('settings are empty: x264\'s defaults are used (--preset medium --crf 23)')
    if (flags['chunk-gops'] !== undefined && flags['chunk-seconds'] !== undefined) throw new UsageError('give --chunk-gops or --chunk-seconds, not both')
    const { job, existing, warning } = await client.addJob({
      file: path,
      settings,
      ...(encoder !== DEFAULT_ENCODER ? { encoder } : {}),
      ...(typeof flags.output === 'string' ? { output: resolve(flags.output) } : {}),
      ...(flags['chunk-gops'] !== undefined ? { gopsPerChunk: flags['chunk-gops'] as number } : {}),
      ...(flags['chunk-seconds'] !== undefined ? { chunkSeconds: flags['chunk-seconds'] as number } : {}),
      ...(flags['allow-damaged'] === true ? { allowDamaged: true } : {}),
      ...(flags['drop-captions'] === true ? { dropCaptions: true } : {}),
      ...(verify !== undefined ? { verify } : {})
    })
    if (warning !== undefined && !json) err(`warning: ${warning}`)
    if (!json) out(`${existing ? 'already known' : 'queued'}: job ${job.id} (${job.chunks.total} chunks, ${job.totalFrames} frames)`)
    if (flags.wait !== true) {
      if (json) out(JSON.stringify({ job, existing, ...(warning !== undefined ? { warning } : {}) }))
      return EXIT_OK
    }
    // Ctrl-C stops the waiting, not the job: the node goes on encoding it, so say so and how to
    // follow or stop it, instead of leaving a silent prompt behind.
    const interrupted = new AbortController()
    const onSigint = (): void => { interrupted.abort() }
    process.once('SIGINT', onSigint)
    let final: JobStatus | undefined
    try {
      final = await waitForJob(client, job.id, json ? 'quiet' : liveCapable(process.stderr) ? 'live' : 'plain', interrupted.signal)
    } finally {
      process.off('SIGINT', onSigint)
    }
    if (final === undefined) {
      const id = shortJob(job.id)
      err(`job ${id} is still encoding on this node; \`swarm status ${id}\` to follow, \`swarm cancel ${id}\` to stop`)
      return EXIT_INTERRUPTED
    }
    if (json) out(JSON.stringify({ job: final, existing, ...(warning !== undefined ? { warning } : {}) }))
    // A failed job's error already holds the fidelity table, when that is why it failed.
    if (!json) for (const line of [...formatGivenBack(final), ...(final.state === 'done' ? formatFidelitySummary(final) : [])]) err(line)
    if (final.state === 'failed') { if (!json) err(`job ${shortJob(final.id)} failed: ${final.error ?? 'unknown error'}`); return EXIT_FAILED }
    if (!json) out(final.output ?? '')
    return EXIT_OK
  }
}

/** `--encoder NAME`, one of the encoders a job may name; x264 when not given. */
function encoderNamed (flag: unknown): EncoderId {
  if (flag === undefined) return DEFAULT_ENCODER
  if (typeof flag === 'string' && (ENCODER_IDS as readonly string[]).includes(flag)) return flag as EncoderId
  throw new UsageError(`--encoder ${String(flag)}: not an encoder swarm knows; give one of ${ENCODER_IDS.join(', ')}`)
}

type ProgressMode = 'quiet' | 'plain' | 'live'
/** `add --wait` asks this often, so it returns within a fifth of a second of the job ending (a status request costs the node ~1 ms). */
const WAIT_POLL_MS = 200

/** Polls the job until it ends; undefined when `stop` aborts first (Ctrl-C). */
async function waitForJob (client: ControlClient, id: string, mode: ProgressMode, stop: AbortSignal): Promise<JobStatus | undefined> {
  let last = ''
  let lastState = ''
  let drawnAt = 0
  const screen = mode === 'live' ? new LiveScreen(process.stderr) : undefined
  // Ctrl-C answers at once, even while a status request is in flight.
  if (stop.aborted) return undefined
  const stopped = new Promise<undefined>(resolve => { stop.addEventListener('abort', () => { resolve(undefined) }, { once: true }) })
  for (;;) {
    const job = await Promise.race([client.job(id), stopped])
    if (job === undefined) return undefined
    const ended = job.state === 'done' || job.state === 'failed'
    // The screen and the log keep their once-a-second pace; only the end is seen sooner.
    const due = ended || job.state !== lastState || Date.now() - drawnAt >= REFRESH_MS
    if (due) {
      drawnAt = Date.now()
      lastState = job.state
      if (screen !== undefined) {
        screen.draw(renderJob(job, { color: true, self: job.originator }))
      } else if (mode === 'plain') {
        const line = formatProgressLine(job)
        if (line !== last) { process.stderr.write(`${printable(line)}\n`); last = line }
      }
    }
    if (ended) return job
    await sleep(WAIT_POLL_MS, undefined, { signal: stop }).catch(() => {})
    if (stop.aborted) return undefined
  }
}
