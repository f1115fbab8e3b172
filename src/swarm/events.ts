/**
 * What a node did, as one typed union, in the spirit of js-libp2p's progress events: the
 * originator's jobs (leases, segments sent, results checked, split and merge), the worker's chunks
 * (claims, downloads, encodes, uploads), and the node itself (started, a peer banned). The
 * originator and the worker emit them as their `event` event; the daemon fans them out to the
 * dashboard's stream, to `swarm join --events FILE` (one JSON object a line) and to its own parts.
 * Benchmarks and tests read them instead of log text, so rewording a log line breaks no figure.
 *
 * Every event has `type` and `at` (ms since the epoch, by the emitter's clock: the injected one
 * where the emitter has one). Peer ids are whole, never shortened. On the originator's side `peer`
 * is the worker; on the worker's side `originator` is the job's originator. The fields are a
 * contract with readers of the event log (docs/operations.md §8.1): add, never rename.
 *
 * This file imports only types from contract.ts, so the dashboard's build can read it too.
 */
import type { RefusalCode } from './contract.js'

interface Stamp { at: number }
interface OfJob extends Stamp { jobId: string }
interface OfChunk extends OfJob { chunk: number }
/** A chunk of this node's own job, and the peer (worker) the event is about. */
interface ChunkAndPeer extends OfChunk { peer: string }
/** A chunk this node's worker holds, of `originator`'s job. */
interface HeldChunk extends OfChunk { originator: string }

/** The originator's events: jobs added on this node. */
export type OriginatorEvent =
  | ({ type: 'job:added', file: string, chunks: number, frames: number } & OfJob)
  /** Every segment of the job is cut (`ms`: from the split's start, a resumed one's included). */
  | ({ type: 'split:done', chunks: number, ms: number } & OfJob)
  /** A claim won: the peer holds the chunk (`backup`: a second copy of a chunk another peer still holds). */
  | ({ type: 'lease:granted', backup: boolean } & ChunkAndPeer)
  /**
   * A lease ended without a result: not renewed in time (`expired`), past its hard deadline
   * (`overdue`), given back (`released`, `reason` the holder's), or ended because its result was
   * refused (`refused`).
   */
  | ({ type: 'lease:ended', why: 'expired' | 'overdue' | 'released' | 'refused', reason?: string } & ChunkAndPeer)
  /** A segment's bytes all written to the holder's stream (`relayed`: through a circuit relay). */
  | ({ type: 'segment:sent', bytes: number, relayed: boolean } & ChunkAndPeer)
  | ({ type: 'segment:send-failed', reason: string } & ChunkAndPeer)
  /** A result upload refused, before its bytes (no slot, too large, no room) or after its check. */
  | ({ type: 'result:refused', code: RefusalCode, reason: string } & ChunkAndPeer)
  /**
   * A verified result kept: the chunk is done. `bytes` is the result's size, `verifyMs` how long
   * the upload's check and keeping took, `leaseMs` from the winning lease's grant to now (absent
   * for a late result whose lease had ended). `check`: how a peer's result was checked, `full`
   * (structure and pictures) or `structural` (structure only: adaptive mode); absent for this
   * node's own result (parsed only).
   */
  | ({ type: 'chunk:done', bytes: number, verifyMs: number, leaseMs?: number, check?: 'full' | 'structural' } & ChunkAndPeer)
  /**
   * `chunk` keeps its first `kept` frames and the `frames` after them are a new chunk, `into`
   * (jobs/straggler.ts): this node's own encode of it ends there because a peer has nothing to do,
   * or a peer claiming the job's last open chunk is granted only that part while this node's own
   * worker will be free first.
   */
  | ({ type: 'chunk:split', chunk: number, into: number, kept: number, frames: number } & OfJob)
  /** `peer` was caught with a wrong result for the job: the done chunks it encoded (`chunks`) go back to be cut and encoded again. */
  | ({ type: 'chunks:requeued', peer: string, chunks: number[] } & OfJob)
  | ({ type: 'merge:started' } & OfJob)
  /** The output is merged and passed the fidelity check: the job is done. */
  | ({ type: 'merge:done', ms: number, output: string } & OfJob)
  | ({ type: 'job:failed', reason: string } & OfJob)
  | ({ type: 'job:cancelled' } & OfJob)

/** The worker's events: chunks it claims, of any originator's job (this node's own included). */
export type WorkerEvent =
  | ({ type: 'claim:won' } & HeldChunk)
  | ({ type: 'claim:lost', code: RefusalCode, reason: string } & HeldChunk)
  /** The segment is here: `bytes` downloaded in `ms`, or (`downloaded` false) read in place from this node's own job. */
  | ({ type: 'segment:fetched', downloaded: boolean, bytes?: number, ms: number } & HeldChunk)
  | ({ type: 'segment:fetch-failed', reason: string } & HeldChunk)
  | ({ type: 'encode:started', frames: number } & HeldChunk)
  | ({ type: 'encode:finished', frames: number, ms: number } & HeldChunk)
  | ({ type: 'encode:failed', reason: string } & HeldChunk)
  /** The originator took the result (`ms`: the upload and its check). */
  | ({ type: 'upload:accepted', bytes: number, ms: number } & HeldChunk)
  | ({ type: 'upload:refused', code: RefusalCode, reason: string } & HeldChunk)
  /** The worker gave the chunk back with this reason (a failure, or a job it cannot encode). */
  | ({ type: 'chunk:given-back', reason: string } & HeldChunk)

/** The node's own events. */
export type DaemonEvent =
  | ({ type: 'node:started', peer: string } & Stamp)
  /** Caught lying: refused until `until` (ms since the epoch), and for good on `jobIds`. */
  | ({ type: 'peer:banned', peer: string, reason: string, until: number, jobIds: string[] } & Stamp)

export type NodeEvent = OriginatorEvent | WorkerEvent | DaemonEvent
export type NodeEventType = NodeEvent['type']
/** The event of one type, e.g. `NodeEventOf<'chunk:done'>`. */
export type NodeEventOf<T extends NodeEventType> = Extract<NodeEvent, { type: T }>
/** An event before its emitter stamps it with its clock. */
export type UnstampedEvent<E extends NodeEvent = NodeEvent> = E extends NodeEvent ? Omit<E, 'at'> : never
/** How a part that does not stamp events itself hands them to one that does. */
export type EmitEvent<E extends NodeEvent = NodeEvent> = (event: UnstampedEvent<E>) => void

/** Stamps an event with `now()`. */
export function stamped<E extends NodeEvent> (event: UnstampedEvent<E>, now: number): E {
  return { ...event, at: now } as unknown as E
}
