/**
 * OriginatorReach: after a failed connection an originator is "control only" and claims wait out a
 * growing delay, unless its addresses change or a connection to it exists (it dialled us).
 */
import { describe, expect, it } from 'vitest'
import { OriginatorReach } from '../../src/daemon/originator-reach.js'

describe('OriginatorReach', () => {
  it('waits out the delay after a failure, but not while a connection to the originator is open', async () => {
    let now = 0
    const reach = new OriginatorReach({ log: () => {}, now: () => now })
    let attempts = 0
    let reachable = false
    const connect = async (): Promise<{ kind: 'relayed', via: string }> => {
      attempts++
      if (!reachable) throw new Error('ETIMEDOUT')
      return { kind: 'relayed', via: 'meet' }
    }
    const signal = new AbortController().signal
    expect((await reach.gate('ann', ['/a'], connect, signal)).ok).toBe(false)
    expect(reach.pathTo('ann')?.kind).toBe('control-only')
    now += 1000
    expect((await reach.gate('ann', ['/a'], connect, signal)).ok).toBe(false)
    expect(attempts, 'no dial within the delay').toBe(1)
    // ann dialled us (through a relay): the next claim picks the connection up at once.
    reachable = true
    expect((await reach.gate('ann', ['/a'], connect, signal, true)).ok).toBe(true)
    expect(attempts).toBe(2)
    expect(reach.pathTo('ann')).toEqual({ kind: 'relayed', via: 'meet' })
  })
})
