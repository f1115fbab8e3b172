import { randomInt } from 'node:crypto'

/**
 * How deeply the originator checks a peer's result: the decision alone, from the job's mode, what
 * this peer already handed in for the job, and a random draw. No I/O, no clock; the draw is
 * injected (node:crypto in a node, a seeded or scripted source in tests).
 *
 * - `all` (open swarms): every result gets the full check, structure and pictures.
 * - `adaptive` (private swarms, as BOINC's adaptive replication does for hosts with a clean
 *   record): every result gets the structural checks (parse, frame count, size, the job's SPS,
 *   NAL and SEI types: cheap, in-process); a peer's first results in a job get the picture check
 *   too, then only a random share, drawn after the upload with a CSPRNG so no peer can know which.
 *   One failure bans the peer and re-queues every result it gave the job (originator.ts).
 */

export const VERIFY_MODES = ['all', 'adaptive'] as const
export type VerifyMode = typeof VERIFY_MODES[number]
/** `full`: structure and pictures; `structural`: structure only (the picture check is skipped). */
export type CheckDepth = 'full' | 'structural'

export interface AdaptiveRule {
  /** A peer's first this many results in a job get the full check. */
  fullFirst: number
  /** After those, each result gets the full check with this probability. */
  share: number
}

/**
 * One full check first: the faults a private swarm meets are a broken build, a wrong x264, a bad
 * decoder (they spoil every result, so the first one shows them as surely as any later one: more
 * first checks add nothing) or bad RAM (it spoils results at random, so the first ones are no more
 * likely to be wrong than the rest: the share is what finds it). Jobs are planned at about four
 * chunks per encoder, so a peer hands in only a few results per job: every extra first check would
 * be most of what adaptive saves.
 *
 * Then one in four: a peer whose results go wrong is caught, on average, by its fourth wrong one,
 * and everything it gave the job is encoded again; a wrong result escapes with probability
 * 0.75^w for w wrong results (escapeProbability; 0.06 for 10, 0.001 for 24). The check's CPU is
 * (1 + 0.25 (k - 1)) / k of the full mode's for a peer with k results (0.44 at k = 4, 0.30 at 16).
 */
export const ADAPTIVE_RULE: AdaptiveRule = { fullFirst: 1, share: 0.25 }

/** What the originator knows of one peer's results in one job when it decides about the next. */
export interface PeerRecord {
  /** Results of this peer in this job a check was decided for so far. */
  decided: number
}

/** A uniform draw in [0, 1). */
export type Draw = () => number

/**
 * The check a peer's next result in a job gets. `draw` is called only when the rule needs it (after
 * the peer's first `fullFirst` results in adaptive mode), so a scripted source lines up with those.
 */
export function checkDepth (mode: VerifyMode, peer: PeerRecord, draw: Draw, rule: AdaptiveRule = ADAPTIVE_RULE): CheckDepth {
  if (mode === 'all') return 'full'
  if (peer.decided < rule.fullFirst) return 'full'
  return draw() < rule.share ? 'full' : 'structural'
}

/** The most values node:crypto's randomInt draws from (its range must be below 2^48). */
const DRAW_RANGE = 2 ** 48 - 1

/** A uniform draw in [0, 1) from the operating system's CSPRNG (node:crypto): no peer can predict it. */
export function cryptoDraw (): number {
  return randomInt(DRAW_RANGE) / DRAW_RANGE
}

/**
 * Draws in a fixed order, for tests only (`SWARM_TEST_VERIFY_DRAWS` of `swarm join`): the n-th draw
 * for a peer in a job is `values[n mod length]`, so a test knows which of a peer's results get the
 * full check. Predictable by design: never for a swarm that checks in earnest.
 */
export function scriptedDraws (values: number[]): (jobId: string, peer: string) => number {
  if (values.length === 0 || values.some(v => !Number.isFinite(v) || v < 0 || v >= 1)) throw new Error(`scripted draws must be numbers in [0, 1), not ${JSON.stringify(values)}`)
  const drawn = new Map<string, number>()
  return (jobId, peer) => {
    const key = `${jobId}\n${peer}`
    const n = drawn.get(key) ?? 0
    drawn.set(key, n + 1)
    return values[n % values.length] as number
  }
}

/** Parses `SWARM_TEST_VERIFY_DRAWS` (comma-separated numbers in [0, 1)). */
export function parseDraws (text: string): number[] {
  return text.split(',').map(s => s.trim()).filter(s => s !== '').map(Number)
}

export interface EscapeCase {
  /** Results the peer hands in for the job. */
  results: number
  /** How many of them are wrong. */
  wrong: number
  /**
   * The chance the full check refuses a wrong result it looks at: 1 for whole-chunk damage
   * (another picture, structure), about the damaged fraction of frames for damage in a few frames
   * (the picture check samples frames; see docs/security.md).
   */
  detect?: number
}

/**
 * The probability that none of a peer's wrong results in a job is refused, so the job merges a
 * wrong chunk: the worst case, where the wrong results come after the peer's first `fullFirst`
 * (a liar that behaves at first; a fault that starts later). Each one after those is checked
 * with probability `share` and refused with `detect`, independently (a fresh CSPRNG draw per result).
 */
export function escapeProbability (mode: VerifyMode, c: EscapeCase, rule: AdaptiveRule = ADAPTIVE_RULE): number {
  const detect = c.detect ?? 1
  const wrong = Math.max(0, Math.min(c.wrong, c.results))
  if (mode === 'all') return (1 - detect) ** wrong
  // Wrong results fill the peer's later results first; only those that do not fit fall in its first ones.
  const later = Math.min(wrong, Math.max(0, c.results - rule.fullFirst))
  return (1 - detect) ** (wrong - later) * (1 - rule.share * detect) ** later
}

/**
 * The decisions for every job this node originates: per job and peer, how many of the peer's
 * results were decided, and how; the draw comes from `draw` (cryptoDraw unless a test says otherwise).
 * Kept in memory: after a restart every peer starts again with its first full checks.
 */
export class CheckPlanner {
  private readonly records = new Map<string, Map<string, PeerRecord>>()
  private readonly draw: (jobId: string, peer: string) => number
  private readonly rule: AdaptiveRule

  constructor (o: { draw?: (jobId: string, peer: string) => number, rule?: AdaptiveRule } = {}) {
    this.draw = o.draw ?? (() => cryptoDraw())
    this.rule = o.rule ?? ADAPTIVE_RULE
  }

  /** The check this result gets; call once per result, after its upload. */
  decide (jobId: string, peer: string, mode: VerifyMode): CheckDepth {
    const job = this.records.get(jobId) ?? new Map<string, PeerRecord>()
    this.records.set(jobId, job)
    const record = job.get(peer) ?? { decided: 0 }
    job.set(peer, record)
    const depth = checkDepth(mode, record, () => this.draw(jobId, peer), this.rule)
    record.decided++
    return depth
  }

  /**
   * Whether the peer's next result in the job will get the full check whatever is drawn: in mode
   * all, or before its first `fullFirst` results are decided. Draws nothing.
   */
  nextIsFull (jobId: string, peer: string, mode: VerifyMode): boolean {
    return mode === 'all' || (this.records.get(jobId)?.get(peer)?.decided ?? 0) < this.rule.fullFirst
  }

  forget (jobId: string): void { this.records.delete(jobId) }
}
