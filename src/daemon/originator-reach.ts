import { logger, shortPeer, type Logger, type LogSink } from '../log/index.js'
import { describeDialError, type Answer, type PeerPath, type Refusal } from '../swarm/index.js'

/** How this node's worker reaches one originator, as `status` shows it on that originator's jobs. */
export interface OriginatorPath {
  kind: 'direct' | 'relayed' | 'control-only'
  /** The relay, when relayed. */
  via?: string
  /** Why there is no way to the originator, when control only. */
  reason?: string
}

const FIRST_RETRY_MS = 10_000
const MAX_RETRY_MS = 2 * 60_000

interface State { path: OriginatorPath, failures: number, retryAt: number, addrs: string }

/**
 * Before the worker claims a chunk of another originator's job, a connection to that originator
 * must exist (a dial in either direction, or a circuit through a relay). When none can be made, the
 * node hears of the job over gossip but can move no data for it: the originator is "control only"
 * for this node, no claim is made (so no chunk is held that cannot be fetched), it is said once in
 * the log and in `status`, and the dial is tried again later with a growing delay.
 */
export class OriginatorReach {
  private readonly state = new Map<string, State>()

  private readonly log: Logger

  constructor (private readonly o: { log: LogSink, now?: () => number }) {
    this.log = logger('worker', o.log)
  }

  private now (): number { return (this.o.now ?? Date.now)() }

  /**
   * Connects if it is time to try; answers with the path, or a refusal the worker backs off from.
   * `addrs` are the addresses the originator announced: when they change (it reserved a slot on a
   * relay, or moved), the next claim tries at once instead of waiting out the delay; so does one
   * made while a connection to the originator is open (`connected`).
   */
  async gate (originator: string, addrs: string[], connect: (signal: AbortSignal) => Promise<PeerPath>, signal: AbortSignal, connected = false): Promise<Answer> {
    const st = this.state.get(originator)
    const key = [...addrs].sort().join(' ')
    // A connection that exists now (the originator dialled us, e.g. through a relay after finding
    // us in the DHT) ends the wait at once: `connect` then only picks it up.
    if (!connected && st !== undefined && st.path.kind === 'control-only' && this.now() < st.retryAt && st.addrs === key) return refusal(originator, st.path)
    try {
      const path = await connect(signal)
      if (st?.path.kind === 'control-only') this.log.info(`originator ${originator} reachable again (${describe(path)})`)
      this.state.set(originator, { path: { kind: path.kind, ...(path.via !== undefined ? { via: path.via } : {}) }, failures: 0, retryAt: 0, addrs: key })
      return { ok: true }
    } catch (err) {
      if (signal.aborted && (st === undefined || st.path.kind !== 'control-only')) throw err
      const failures = (st?.path.kind === 'control-only' ? st.failures : 0) + 1
      const reason = describeDialError(err as Error)
      const path: OriginatorPath = { kind: 'control-only', reason }
      if (failures === 1) {
        this.log.info(`control only for originator ${originator}: its jobs are heard over gossip but no connection can be made to it (${reason}); ` +
          'no chunk of its jobs is claimed here. A node started with --relay that both can reach, or a port forwarded to one of them, fixes this')
      }
      this.state.set(originator, { path, failures, retryAt: this.now() + Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (failures - 1)), addrs: key })
      return refusal(originator, path)
    }
  }

  /** The last known path to an originator (undefined before the first claim). */
  pathTo (originator: string): OriginatorPath | undefined { return this.state.get(originator)?.path }

  forget (originator: string): void { this.state.delete(originator) }
}

function describe (p: PeerPath): string { return p.kind === 'relayed' ? `relayed via ${p.via ?? 'a relay'}` : 'direct' }

function refusal (originator: string, p: OriginatorPath): Refusal {
  return { ok: false, code: 'unreachable', message: `originator ${shortPeer(originator)} cannot be reached (control only): ${p.reason ?? ''}` }
}
