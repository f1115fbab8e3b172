import { describe, expect, it } from 'vitest'
import { FairTurns } from '../../src/jobs/result-intake.js'

describe('FairTurns.startNow', () => {
  it('starts a peer\'s waiting works of one group at once, beyond the limit, and leaves the rest to their turns', async () => {
    const turns = new FairTurns(1)
    const started: string[] = []
    let finishFirst = (): void => {}
    const first = turns.run('A', async () => { started.push('A1'); await new Promise<void>(resolve => { finishFirst = resolve }) }, 'j1')
    const waiting = [
      turns.run('A', async () => { started.push('A2') }, 'j1'),
      turns.run('B', async () => { started.push('B1') }, 'j1'),
      turns.run('A', async () => { started.push('A3') }, 'j2'),
      turns.run('A', async () => { started.push('A4') }, 'j1')
    ]
    await Promise.resolve()
    expect(started).toEqual(['A1'])
    turns.startNow('A', 'j1')
    await new Promise(resolve => setImmediate(resolve))
    // A's two other j1 works ran beside A1; B's and A's j2 work still wait for the one place.
    expect(started).toEqual(['A1', 'A2', 'A4'])
    finishFirst()
    await Promise.all([first, ...waiting])
    expect(started.slice(3).sort()).toEqual(['A3', 'B1'])
  })
})
