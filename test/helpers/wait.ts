import { setTimeout as sleep } from 'node:timers/promises'

export interface WaitOptions {
  /** Give up after this long; default 30 s. */
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
  const timeoutMs = o.timeoutMs ?? 30_000
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
