import { setTimeout as sleep } from 'node:timers/promises'

/**
 * How much slower than an idle 2-core machine a test run may be: on two cores shared with other
 * work the suite ran 4x slower and waits that were only ceilings timed out, though nothing was
 * wrong. Timeouts that merely stop a test that would otherwise hang are multiplied by it (see
 * `ceiling`); a passing test does not wait longer for it. Where time is what a test checks, it
 * keeps its own fixed budget. `SWARM_TEST_BUSY_FACTOR=1` restores the bare ceilings.
 */
export const BUSY_MACHINE_FACTOR = busyFactor(process.env.SWARM_TEST_BUSY_FACTOR)

function busyFactor (value: string | undefined): number {
  const n = Number(value)
  return value !== undefined && value !== '' && Number.isFinite(n) && n >= 1 ? n : 3
}

/** A timeout that is only a ceiling on waiting for something to happen, stretched for a busy machine. */
export function ceiling (ms: number): number { return Math.round(ms * BUSY_MACHINE_FACTOR) }

export interface WaitOptions {
  /**
   * Give up after this long on a quiet machine (default 30 s). It is only a ceiling for a hang, so
   * it is stretched by the busy-machine factor: the suite runs files side by side, and an encode in
   * the idle class waits while another file's nodes keep both cores busy.
   */
  timeoutMs?: number
  /** Check this often; default 100 ms. */
  everyMs?: number
  /**
   * Count an error thrown by the check as "not yet" (and name the last one if it times out), for
   * checks that ask a node that may be starting, restarting or briefly busy. Without it an error
   * fails the wait at once.
   */
  retryErrors?: boolean
}

/** Polls `check` until it returns something other than undefined or false, and returns that; throws after the timeout. */
export async function waitFor<T> (what: string, check: () => T | undefined | false | Promise<T | undefined | false>, o: WaitOptions = {}): Promise<T> {
  const timeoutMs = ceiling(o.timeoutMs ?? 30_000)
  const until = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const v = await check()
      if (v !== undefined && v !== false) return v
    } catch (e) {
      if (o.retryErrors !== true) throw e
      lastError = e
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError !== undefined ? ` (last error: ${(lastError as Error).message})` : ''}`)
    await sleep(o.everyMs ?? 100)
  }
}
