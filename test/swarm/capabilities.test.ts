import { describe, expect, it } from 'vitest'
import { agentVersionOf, encodersFromAgent } from '../../src/swarm/index.js'

describe('encoders in the agent version', () => {
  it('round-trips the encoders a node has, with their versions', () => {
    const encoders = [{ encoder: 'x264' as const, version: '0.164.3095' }, { encoder: 'x265' as const, version: '3.5+1-f0c1022b6' }]
    const agent = agentVersionOf('0.1.0', encoders)
    expect(agent).toBe('swarm-encode/0.1.0 (x264 0.164.3095; x265 3.5+1-f0c1022b6)')
    expect(encodersFromAgent(agent)).toEqual(encoders)
    expect(encodersFromAgent(agentVersionOf('0.1.0', []))).toEqual([])
  })

  it('never sends a version in characters it would not read back', () => {
    expect(agentVersionOf('0.1.0', [{ encoder: 'x264', version: 'r3095 (with spaces); x265 9' }])).toBe('swarm-encode/0.1.0 (x264 unknown)')
  })

  it('names nothing for another agent, or a hostile one: unknown encoders, junk, duplicates, no bound', () => {
    expect(encodersFromAgent(undefined)).toBeUndefined()
    expect(encodersFromAgent('js-libp2p/3.0.0 UserAgent=v22.0.0')).toBeUndefined()
    expect(encodersFromAgent(`swarm-encode/0.1.0 (${'x264 1; '.repeat(100)}x264 1)`)).toBeUndefined()
    expect(encodersFromAgent('swarm-encode/0.1.0 (vp9 1.0; x264 0.164; x264 0.999; x265 3.5 extra; svt-av1 ../../etc)')).toEqual([{ encoder: 'x264', version: '0.164' }])
  })
})
