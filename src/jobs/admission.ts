import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { isAbsolute } from 'node:path'
import { AV1_MIN_TAIL_CHUNK_SECONDS, checkSourceCrc, DEFAULT_ENCODER, DISK_RESERVE_BYTES, encoderFor, freeBytes, prepareSource, sha256File, y4mPixFmt, type EncoderId, type EncoderSettings, type MediaInfo, type PlanOptions } from '../media/index.js'
import type { VerifyMode } from './verification-policy.js'

/**
 * What a request to add a job must be before it becomes one: the checks of `swarm add`'s input,
 * the job's id, and the plan options kept with it. Every refusal here is an InputError: the
 * user's input at fault, answered before anything is queued.
 */

export interface AddJobRequest {
  file: string
  settings: string
  /** Which encoder the settings are for; default x264. */
  encoder?: EncoderId
  output?: string
  plan?: Pick<PlanOptions, 'gopsPerChunk' | 'chunkSeconds'>
  /** Encode a source the probe found truncated (what is there is encoded; the damage is recorded). */
  allowDamaged?: boolean
  /** Encode a source with closed captions in its video although they cannot be carried over. */
  dropCaptions?: boolean
  /** How peers' results are checked (verification-policy.ts); default the node's. Kept with the job from its first add. */
  verify?: VerifyMode
}

/** A request the node refuses because of what it asks for (a missing file, refused settings, no room): the control API answers 400. */
export class InputError extends Error {
  override name = 'InputError'
  readonly kind = 'input'
}

const formatMiB = (bytes: number): string => bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(1)} GiB` : `${Math.ceil(bytes / 1024 ** 2)} MiB`

/**
 * The settings parsed, the source probed and its content hashed; any of them failing is the user's
 * input at fault. This is the originator's trust boundary for settings: whatever asked (the
 * control API, `swarm add`), they are parsed here, once, and the job's code takes the parsed value.
 */
export async function checkInput (req: AddJobRequest, installed?: ReadonlySet<EncoderId>): Promise<{ settings: EncoderSettings, source: MediaInfo, sourceSha256: string }> {
  if (!isAbsolute(req.file)) throw new InputError(`${req.file}: give an absolute path`)
  const id = req.encoder ?? DEFAULT_ENCODER
  let settings: EncoderSettings
  try { settings = encoderFor(id).parseSettings(req.settings) } catch (err) { throw new InputError((err as Error).message) }
  // The originator checks every peer's result by encoding a few of its frames itself, and encodes
  // whatever no peer takes: it must have the job's encoder.
  if (installed !== undefined && !installed.has(id)) {
    const binary = encoderFor(id).binary
    throw new InputError(`--encoder ${id}: this node cannot run ${binary}, and the node that adds a job must (it checks every result by encoding frames itself, and encodes what no peer takes). Install it (apt-get install -y ${PACKAGES_OF_ENCODERS[id]}) and restart swarm join, or add the job on a node that has it`)
  }
  // The content hash (the job's id) is read alongside the probe: both read the whole file.
  const hashing = sha256File(req.file)
  hashing.catch(() => {}) // a missing or unreadable file is reported by the checks below
  let source: MediaInfo
  try {
    await checkSourceCrc(req.file)
    source = await prepareSource(req.file)
  } catch (err) {
    throw new InputError((err as Error).message)
  }
  const cannot = encoderFor(id).refuseSource(y4mPixFmt(source.video.pixFmt))
  if (cannot !== undefined) throw new InputError(`${req.file}: ${cannot}`)
  if (source.damage !== undefined && req.allowDamaged !== true) {
    throw new InputError(`${req.file}: ${source.damage.message}. Nothing was queued; fetch the file again, or add it with --allow-damaged to encode the ${source.damage.contentSec.toFixed(1)} s that are there`)
  }
  return { settings, source, sourceSha256: await hashing }
}

/** Debian's package of each encoder's program. */
const PACKAGES_OF_ENCODERS: Record<EncoderId, string> = { x264: 'x264', x265: 'x265', 'svt-av1': 'svt-av1', aomenc: 'aom-tools' }

/**
 * A job's id: the same content with the same settings for the same encoder is the same job,
 * however the settings were quoted or spaced (`args` are the parsed settings). x264's ids are
 * those of every job before jobs named their encoder.
 */
export function jobIdOf (sourceSha256: string, args: readonly string[], encoder: EncoderId = DEFAULT_ENCODER): string {
  const settings = encoder === DEFAULT_ENCODER ? args.join('\u0000') : `${encoder}\u0000${args.join('\u0000')}`
  return createHash('sha256').update(`swarm-job/v1\n${sourceSha256}\n${settings}`).digest('hex')
}

/**
 * The job's folder must hold the source's video, cut into segments (each is deleted once its
 * chunk is verified, but all may be cut before the first is done), with room to spare: refused
 * up front with the figures, rather than a split that fails half-way through a full disk.
 */
export async function checkRoomForSegments (jobsDir: string, file: string, source: MediaInfo): Promise<void> {
  await mkdir(jobsDir, { recursive: true })
  const free = await freeBytes(jobsDir)
  const needed = Math.ceil(source.sizeBytes * 1.05) + DISK_RESERVE_BYTES
  if (free < needed) {
    throw new InputError(`${file}: ${jobsDir} has ${formatMiB(free)} free; cutting this ${formatMiB(source.sizeBytes)} source into chunks needs about ${formatMiB(needed)} (its size and a margin), and the merge needs room for the output too. Free some space, or start the node with --home on a larger disk`)
  }
}

/** A plan of more chunks than `maxChunks` (what peers accept in an announcement) is refused. */
export function checkChunkCount (file: string, chunks: number, maxChunks: number | undefined): void {
  if (maxChunks !== undefined && chunks > maxChunks) {
    throw new InputError(`${file}: the chunk size asked for cuts it into ${chunks} chunks, more than the ${maxChunks} a job may have; give a larger --chunk-gops or --chunk-seconds`)
  }
}

/**
 * The job's own chunk size, if given, replaces the node's default (`nodePlan`). Exactly these
 * options are kept with the job (job.json), beside its chunks' own ranges, which a resumed split
 * cuts (media chunkRanges): a newer planner may plan the same options otherwise. `peers` is the
 * swarm's size, `slotsPerPeer` this node's encodes.
 */
export function planOptionsFor (req: AddJobRequest, nodePlan: PlanOptions | undefined, swarm: { peers?: number, slotsPerPeer?: number }): PlanOptions {
  const explicit = req.plan?.gopsPerChunk !== undefined || req.plan?.chunkSeconds !== undefined
  const planOptions: PlanOptions = explicit ? { ...req.plan } : { ...nodePlan }
  // About four chunks per encoder by default, with the last ones shrinking so every encoder runs
  // out of work at about the same time; never fewer chunks than peers, whatever size was asked for.
  const peers = Math.max(1, swarm.peers ?? 1)
  const parallel = peers * Math.max(1, swarm.slotsPerPeer ?? 1)
  const minChunks = explicit ? peers : 4 * parallel
  planOptions.minChunks = Math.max(planOptions.minChunks ?? 1, minChunks)
  if (!explicit) {
    planOptions.tailParallelism ??= parallel
    planOptions.absorbShortTail ??= true
    planOptions.midGopCuts ??= true
    if (req.encoder === 'svt-av1' || req.encoder === 'aomenc') planOptions.minTailChunkSeconds ??= AV1_MIN_TAIL_CHUNK_SECONDS
  }
  return planOptions
}
