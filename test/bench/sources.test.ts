/**
 * The throughput benchmark's sources (bench/sources.ts): names, the realistic source's recipe
 * (scenes, ffmpeg arguments, x264's default GOPs), each scene's filter run through the real ffmpeg
 * at a small size, and the GOP figures.
 */
import { execa } from 'execa'
import { describe, expect, it } from 'vitest'
import { keyframeIntervals, parseSourceSpec, realisticClipArgs, realisticScenes, REALISTIC_FPS, sceneFilter, sourceName, summariseGops, type SceneKind } from '../../bench/sources.js'

describe('source names', () => {
  it('reads kind, height and length, and writes them back the same way', () => {
    expect(parseSourceSpec('realistic-40s')).toEqual({ kind: 'realistic', seconds: 40, height: 720 })
    expect(parseSourceSpec('realistic-1080p-120s')).toEqual({ kind: 'realistic', seconds: 120, height: 1080 })
    expect(parseSourceSpec('stress-40s')).toEqual({ kind: 'stress', seconds: 40, height: 720 })
    for (const name of ['realistic-40s', 'realistic-1080p-120s', 'stress-40s']) expect(sourceName(parseSourceSpec(name))).toBe(name)
    expect(sourceName(parseSourceSpec('realistic-720p-40s'))).toBe('realistic-40s')
  })

  it('refuses what it does not make', () => {
    for (const bad of ['realistic', 'realistic-40', 'noise-40s', 'stress-1080p-40s', 'realistic-480p-40s', 'realistic-2s', 'realistic-4000s']) {
      expect(() => parseSourceSpec(bad), bad).toThrow(/source/)
    }
  })
})

describe('the realistic source', () => {
  it('cuts scenes of 5 to 9 s that add up to the length, the last one cut short', () => {
    for (const seconds of [40, 120, 45, 7]) {
      const scenes = realisticScenes(seconds)
      expect(scenes.reduce((a, s) => a + s.seconds, 0)).toBe(seconds)
      // Under x264's keyint (250 frames at 24 fps) so the keyframes fall at the cuts, and long enough for 4-10 s GOPs.
      for (const s of scenes.slice(0, -1)) expect(s.seconds * REALISTIC_FPS).toBeLessThan(250)
      for (const s of scenes.slice(0, -1)) expect(s.seconds).toBeGreaterThanOrEqual(5)
    }
    // 120 s is the 40 s cycle three times over (each time with other places and seeds).
    expect(new Set(realisticScenes(120).map(s => s.cycle))).toEqual(new Set([0, 1, 2]))
  })

  it('asks ffmpeg for x264 slow at crf 21 with its default GOP structure, the size and length asked', () => {
    const args = realisticClipArgs(40, 720, '/tmp/out.mkv')
    const at = (flag: string): string | undefined => args[args.indexOf(flag) + 1]
    expect(at('-c:v')).toBe('libx264')
    expect(at('-preset')).toBe('slow')
    expect(at('-crf')).toBe('21')
    expect(at('-x264-params')).toBe('keyint=250:min-keyint=25:scenecut=40')
    expect(args).not.toContain('-g')
    expect(at('-t')).toBe('40')
    expect(args.at(-1)).toBe('/tmp/out.mkv')
    const graph = at('-filter_complex') as string
    expect(graph).toContain(`concat=n=${realisticScenes(40).length}:v=1:a=0[v]`)
    expect(graph).toContain('1280:720')
    expect(realisticClipArgs(40, 1080, '/tmp/out.mkv')[args.indexOf('-filter_complex') + 1]).toContain('1920:1080')
  })

  it.each(['pan', 'zoom', 'objects', 'inset'] as SceneKind[])('the %s scene is a filter ffmpeg runs, with exactly its frames, the same each run', async (kind) => {
    const filter = sceneFilter({ kind, seconds: 0.5, cycle: 0 }, 0, 320, 180)
    const render = async (): Promise<{ stdout: string, stderr: string }> => await execa('ffmpeg', ['-nostdin', '-v', 'error', '-filter_complex', filter, '-map', '[s0]', '-f', 'framemd5', '-'])
    const [{ stdout, stderr }, again] = await Promise.all([render(), render()])
    expect(stderr).toBe('')
    expect(again.stdout).toBe(stdout)
    const frames = stdout.split('\n').filter(l => l !== '' && !l.startsWith('#'))
    expect(frames).toHaveLength(12)
    // Moving pictures: not one frame repeated.
    expect(new Set(frames.map(l => l.split(',').at(-1))).size).toBeGreaterThan(6)
  })
})

describe('GOP figures', () => {
  it('measures from each keyframe to the next, the last to the end', () => {
    const frames = [0, 1, 2, 3, 4, 5, 6, 7].map(i => ({ time: i, key: i === 0 || i === 3 || i === 7 }))
    expect(keyframeIntervals(frames, 8)).toEqual([3, 4, 1])
    expect(summariseGops([3, 4, 1])).toEqual({ min: 1, median: 3, max: 4, count: 3 })
  })
})
