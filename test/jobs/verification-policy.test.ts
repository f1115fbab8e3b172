import { describe, expect, it } from 'vitest'
import {
  ADAPTIVE_RULE, checkDepth, CheckPlanner, cryptoDraw, escapeProbability, parseDraws, scriptedDraws, type AdaptiveRule, type CheckDepth
} from '../../src/jobs/verification-policy.js'
import { prng } from '../helpers/random.js'

/** A draw that fails the test if the policy asks for it. */
const noDraw = (): number => { throw new Error('drew a number it did not need') }

describe('checkDepth', () => {
  it('checks every result in full in mode all, whatever the history, without drawing', () => {
    const rand = prng(1)
    const depths = new Set<CheckDepth>()
    for (let i = 0; i < 2000; i++) {
      const rule: AdaptiveRule = { fullFirst: Math.floor(rand() * 5), share: rand() }
      depths.add(checkDepth('all', { decided: Math.floor(rand() * 1000) }, noDraw, rule))
    }
    expect([...depths]).toEqual(['full'])
  })

  it('in adaptive mode, checks a peer\'s first fullFirst results in full without drawing, then in full exactly when the draw is below the share', () => {
    const wrong: string[] = []
    let structural = 0
    for (let seed = 1; seed <= 500; seed++) {
      const rand = prng(seed)
      const rule: AdaptiveRule = { fullFirst: Math.floor(rand() * 6), share: rand() }
      let drawn = 0
      let last = 0
      const draw = (): number => { drawn++; last = rand(); return last }
      for (let decided = 0; decided < 40; decided++) {
        const before = drawn
        const depth = checkDepth('adaptive', { decided }, draw, rule)
        if (depth === 'structural') structural++
        // No draw for the first ones; one per result after, and the answer follows from it alone.
        const expected = decided < rule.fullFirst ? { depth: 'full', drawn: before } : { depth: last < rule.share ? 'full' : 'structural', drawn: before + 1 }
        if (depth !== expected.depth || drawn !== expected.drawn) wrong.push(`seed ${seed}, result ${decided}: ${depth} after ${drawn - before} draws`)
      }
    }
    expect(wrong).toEqual([])
    expect(structural).toBeGreaterThan(1000)
  })

  it('uses one full check first and a quarter after as the default rule', () => {
    expect(ADAPTIVE_RULE).toEqual({ fullFirst: 1, share: 0.25 })
    expect(checkDepth('adaptive', { decided: 0 }, noDraw)).toBe('full')
    expect(checkDepth('adaptive', { decided: 1 }, () => 0.2499)).toBe('full')
    expect(checkDepth('adaptive', { decided: 1 }, () => 0.25)).toBe('structural')
  })
})

describe('CheckPlanner', () => {
  it('keeps each peer\'s record per job: a new job or a new peer starts again with its first full checks; forget starts a job over', () => {
    const planner = new CheckPlanner({ draw: () => 0.9 })
    const seq = (job: string, peer: string, n: number): CheckDepth[] => Array.from({ length: n }, () => planner.decide(job, peer, 'adaptive'))
    expect(seq('j1', 'a', 3)).toEqual(['full', 'structural', 'structural'])
    expect(seq('j1', 'b', 2)).toEqual(['full', 'structural'])
    expect(seq('j2', 'a', 2)).toEqual(['full', 'structural'])
    expect(seq('j1', 'a', 1)).toEqual(['structural'])
    planner.forget('j1')
    expect(seq('j1', 'a', 2)).toEqual(['full', 'structural'])
    // Mode all never draws and still counts: switching a job to adaptive later does not start its peers over.
    const counting = new CheckPlanner({ draw: () => 0.9 })
    expect(counting.decide('j', 'a', 'all')).toBe('full')
    expect(counting.decide('j', 'a', 'adaptive')).toBe('structural')
  })

  it('says ahead which next results surely get the full check (mode all, a peer\'s first ones), without drawing', () => {
    let draws = 0
    const planner = new CheckPlanner({ draw: () => { draws++; return 0.9 }, rule: { fullFirst: 2, share: 0.25 } })
    expect(planner.nextIsFull('j', 'a', 'adaptive')).toBe(true)
    planner.decide('j', 'a', 'adaptive')
    expect(planner.nextIsFull('j', 'a', 'adaptive')).toBe(true)
    planner.decide('j', 'a', 'adaptive')
    // Past its first two: a draw decides, after the upload.
    expect(planner.nextIsFull('j', 'a', 'adaptive')).toBe(false)
    expect(planner.nextIsFull('j', 'a', 'all')).toBe(true)
    expect(planner.nextIsFull('j', 'b', 'adaptive')).toBe(true)
    expect(planner.nextIsFull('k', 'a', 'adaptive')).toBe(true)
    expect(draws).toBe(0)
  })

  it('gets its draws per job and peer from the source it is given (a scripted one lines up with each peer\'s draws)', () => {
    const planner = new CheckPlanner({ draw: scriptedDraws([0.99, 0.99, 0]) })
    const a = Array.from({ length: 7 }, () => planner.decide('j', 'a', 'adaptive'))
    // Interleaved with another peer: a's sequence is its own.
    const b = Array.from({ length: 4 }, () => planner.decide('j', 'b', 'adaptive'))
    expect(a).toEqual(['full', 'structural', 'structural', 'full', 'structural', 'structural', 'full'])
    expect(b).toEqual(['full', 'structural', 'structural', 'full'])
  })

  it('checks about the share of results past the first in full with the CSPRNG, independently of each other (statistical)', () => {
    const planner = new CheckPlanner()
    const N = 40_000
    const depths = Array.from({ length: N + 1 }, () => planner.decide('j', 'p', 'adaptive')).slice(1)
    const full = depths.filter(d => d === 'full').length
    const p = ADAPTIVE_RULE.share
    // Six standard deviations: a correct source fails this about once in 500 million runs.
    const sigma = Math.sqrt(N * p * (1 - p))
    expect(Math.abs(full - N * p)).toBeLessThan(6 * sigma)
    // No memory from one draw to the next: after a full check, the next is full about as often as ever.
    let afterFull = 0
    let fullAfterFull = 0
    for (let i = 1; i < N; i++) if (depths[i - 1] === 'full') { afterFull++; if (depths[i] === 'full') fullAfterFull++ }
    expect(Math.abs(fullAfterFull - afterFull * p)).toBeLessThan(6 * Math.sqrt(afterFull * p * (1 - p)))
  })
})

describe('draws', () => {
  it('cryptoDraw is in [0, 1) and spread over it', () => {
    const buckets = new Array<number>(10).fill(0)
    const draws = Array.from({ length: 20_000 }, cryptoDraw)
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0)
    expect(Math.max(...draws)).toBeLessThan(1)
    for (const x of draws) buckets[Math.floor(x * 10)]!++
    // Each tenth gets 2,000 ± 6 sigma (sigma 42).
    for (const n of buckets) expect(Math.abs(n - 2000)).toBeLessThan(6 * Math.sqrt(20_000 * 0.1 * 0.9))
  })

  it('scripted draws cycle per job and peer, and refuse values outside [0, 1)', () => {
    const draw = scriptedDraws(parseDraws('0.5, 0.1,0.9'))
    expect([draw('j', 'a'), draw('j', 'a'), draw('j', 'b'), draw('j', 'a'), draw('j', 'a'), draw('k', 'a')]).toEqual([0.5, 0.1, 0.5, 0.9, 0.5, 0.5])
    expect(() => scriptedDraws([])).toThrow(/numbers in \[0, 1\)/)
    expect(() => scriptedDraws(parseDraws('0.2,1'))).toThrow(/numbers in \[0, 1\)/)
    expect(() => scriptedDraws(parseDraws('0.2,x'))).toThrow(/numbers in \[0, 1\)/)
  })
})

describe('escapeProbability', () => {
  it('is zero in mode all for damage the full check always sees, and (1 - detect)^wrong for damage it sees by chance', () => {
    expect(escapeProbability('all', { results: 20, wrong: 1 })).toBe(0)
    expect(escapeProbability('all', { results: 20, wrong: 0 })).toBe(1)
    expect(escapeProbability('all', { results: 20, wrong: 3, detect: 0.1 })).toBeCloseTo(0.9 ** 3, 12)
  })

  it('in adaptive mode, puts the wrong results after the first full ones (the worst case) and gives (1 - share)^wrong', () => {
    expect(escapeProbability('adaptive', { results: 20, wrong: 10 })).toBeCloseTo(0.75 ** 10, 12)
    // Every result wrong: the first is checked in full and caught.
    expect(escapeProbability('adaptive', { results: 8, wrong: 8 })).toBe(0)
    expect(escapeProbability('adaptive', { results: 8, wrong: 8, detect: 0.5 })).toBeCloseTo(0.5 * (1 - 0.25 * 0.5) ** 7, 12)
    expect(escapeProbability('adaptive', { results: 1, wrong: 0 })).toBe(1)
  })

  it('matches a simulation of the planner with a seeded draw (worst-case placement, whole-chunk and partial damage)', () => {
    const rand = prng(27)
    const runs = 20_000
    for (const c of [{ results: 6, wrong: 2, detect: 1 }, { results: 12, wrong: 5, detect: 1 }, { results: 4, wrong: 4, detect: 0.6 }, { results: 10, wrong: 3, detect: 0.3 }]) {
      let escaped = 0
      for (let r = 0; r < runs; r++) {
        const planner = new CheckPlanner({ draw: () => rand() })
        let caught = false
        for (let i = 0; i < c.results; i++) {
          const wrong = i >= c.results - c.wrong
          const depth = planner.decide('j', 'p', 'adaptive')
          if (wrong && depth === 'full' && rand() < c.detect) { caught = true; break }
        }
        if (!caught) escaped++
      }
      const expected = escapeProbability('adaptive', c)
      const sigma = Math.sqrt(runs * expected * (1 - expected))
      expect(Math.abs(escaped - runs * expected), JSON.stringify(c)).toBeLessThanOrEqual(6 * sigma + 1)
    }
  })
})
