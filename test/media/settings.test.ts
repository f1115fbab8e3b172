import { afterAll, describe, expect, it } from 'vitest'
import { parseX264Settings, SettingsError, splitSettings } from '../../src/media/index.js'
import { recordTally } from '../helpers/tally.js'

describe('splitSettings', () => {
  it('splits words like a shell, honouring quotes and backslashes', () => {
    expect(splitSettings('--preset slow  --crf 18')).toEqual(['--preset', 'slow', '--crf', '18'])
    expect(splitSettings(`--tune 'film' --psy-rd "1.0:0.15" a\\ b`)).toEqual(['--tune', 'film', '--psy-rd', '1.0:0.15', 'a b'])
    expect(splitSettings('')).toEqual([])
  })
  it('refuses unbalanced quotes', () => {
    expect(() => splitSettings('--preset "slow')).toThrow(/unbalanced double quote/)
  })
  it('never expands anything a shell would', () => {
    expect(splitSettings('$(touch /tmp/x) `id` ~ *')).toEqual(['$(touch', '/tmp/x)', '`id`', '~', '*'])
  })
})

describe('parseX264Settings', () => {
  it('accepts ordinary encoding settings and normalises them', () => {
    const s = parseX264Settings('--preset slow --crf 18 --profile high -b 5 --psy-rd=1.0:0.15 --deblock -1:-1 --no-mbtree')
    expect(s.args).toEqual(['--preset', 'slow', '--crf', '18', '--profile', 'high', '--bframes', '5', '--psy-rd', '1.0:0.15', '--deblock', '-1:-1', '--no-mbtree'])
    expect(s.outputDepth).toBe(8)
    expect(s.profile).toBe('high')
  })
  it('knows when the output is 10-bit', () => {
    expect(parseX264Settings('--profile high10 --output-depth 10').outputDepth).toBe(10)
  })
  it('accepts negative numeric values as values, not options', () => {
    expect(parseX264Settings('--chroma-qp-offset -2').args).toEqual(['--chroma-qp-offset', '-2'])
  })

  // Every option that names a file, changes I/O or timing, or is the worker's to set.
  const refused: Array<[string, string]> = [
    ['-o out.264', '-o'],
    ['--output /tmp/x.264', '--output'],
    ['--output=/etc/passwd', '--output'],
    ['--muxer mkv', '--muxer'],
    ['--demuxer lavf', '--demuxer'],
    ['--input-fmt rawvideo', '--input-fmt'],
    ['--input-csp i420', '--input-csp'],
    ['--input-depth 10', '--input-depth'],
    ['--input-range pc', '--input-range'],
    ['--input-res 640x360', '--input-res'],
    ['--index /tmp/idx', '--index'],
    ['--fps 30', '--fps'],
    ['--timebase 1/1000', '--timebase'],
    ['--force-cfr', '--force-cfr'],
    ['--pulldown 32', '--pulldown'],
    ['--seek 100', '--seek'],
    ['--frames 10', '--frames'],
    ['--tcfile-in tc.txt', '--tcfile-in'],
    ['--tcfile-out tc.txt', '--tcfile-out'],
    ['--dump-yuv /tmp/y.yuv', '--dump-yuv'],
    ['--stats /tmp/s.log', '--stats'],
    ['--pass 2', '--pass'],
    ['-p 1', '-p'],
    ['--qpfile /tmp/q.txt', '--qpfile'],
    ['--cqmfile /tmp/m.cfg', '--cqmfile'],
    ['--log-file /tmp/x.log', '--log-file'],
    ['--zones 0,100,q=20', '--zones'],
    ['--vf resize:640,360', '--vf'],
    ['--video-filter crop:0,0,0,0', '--video-filter'],
    ['--opencl', '--opencl'],
    ['--opencl-clbin /tmp/cl.bin', '--opencl-clbin'],
    ['--opencl-device 0', '--opencl-device'],
    ['--threads 64', '--threads'],
    ['--lookahead-threads 4', '--lookahead-threads'],
    ['--thread-input', '--thread-input'],
    ['--dts-compress', '--dts-compress'],
    ['--crop-rect 0,0,8,8', '--crop-rect'],
    ['--help', '--help'],
    ['-h', '-h'],
    ['--fullhelp', '--fullhelp'],
    ['--version', '--version'],
    ['--made-up-option 1', '--made-up-option'],
    ['-Z 1', '-Z']
  ]
  /** Options whose refusal was verified in this run; the tally row is written only if every one was. */
  const verified: string[] = []
  for (const [settings, option] of refused) {
    it(`refuses ${settings} and names ${option}`, () => {
      let error: unknown
      try { parseX264Settings(`--preset fast ${settings}`) } catch (err) { error = err }
      expect(error).toBeInstanceOf(SettingsError)
      expect((error as SettingsError).message).toContain(option)
      expect((error as SettingsError).option?.startsWith(option)).toBe(true)
      verified.push(settings)
    })
  }
  afterAll(() => {
    if (verified.length !== refused.length) return
    recordTally({
      section: 'Hostile input: settings',
      fault: `every x264 option that names a file, changes I/O or timing, is the worker's to set, or is unknown (${refused.length}): ${refused.map(([s]) => s).join(', ')}`,
      happened: `all ${refused.length} refused by parseX264Settings (the check every worker runs on settings from the network before encoding) with a SettingsError naming the option`,
      lost: 'nothing'
    })
  })

  it('refuses a bare word, which x264 would take as a file name', () => {
    expect(() => parseX264Settings('--crf 18 /etc/shadow')).toThrow(/unexpected argument "\/etc\/shadow"/)
  })
  it('refuses a bare "--"', () => {
    expect(() => parseX264Settings('--crf 18 -- file')).toThrow(SettingsError)
  })
  it('refuses bad values and names the option', () => {
    expect(() => parseX264Settings('--preset turbo')).toThrow(/--preset must be one of/)
    expect(() => parseX264Settings('--crf high')).toThrow(/--crf must be a number/)
    expect(() => parseX264Settings('--colorprim ../../etc')).toThrow(/--colorprim/)
    expect(() => parseX264Settings('--crf')).toThrow(/--crf needs a value/)
    expect(() => parseX264Settings('--no-mbtree=1')).toThrow(/takes no value/)
  })
  it('refuses 10-bit output with an 8-bit profile', () => {
    expect(() => parseX264Settings('--profile high --output-depth 10')).toThrow(/--profile high cannot carry 10-bit/)
  })
  it('refuses control characters and absurd lengths', () => {
    expect(() => parseX264Settings('--crf 18\n--output x')).toThrow(/control characters/)
    expect(() => parseX264Settings('--crf 18 '.repeat(1000))).toThrow(/too long/)
  })
  it('refuses values outside x264\'s range, saying the range, instead of letting x264 clamp them', () => {
    expect(() => parseX264Settings('--crf 99')).toThrow(/value "99" of --crf must be between -12 and 51/)
    expect(() => parseX264Settings('--qp 100')).toThrow(/--qp must be between 0 and 81/)
    expect(() => parseX264Settings('--bframes 17')).toThrow(/--bframes must be between 0 and 16/)
    expect(() => parseX264Settings('--ref 0')).toThrow(/--ref must be between 1 and 16/)
    expect(() => parseX264Settings('-b 2.5')).toThrow(/-b must be an integer/)
    expect(parseX264Settings('--crf 51 --qpmax 81 --bframes 16 --ref 16 --crf-max 30.5').args).toContain('51')
  })
  it('quotes at most about 80 characters of a huge value or option in its message', () => {
    const huge = 'x'.repeat(100_000)
    for (const settings of [`--crf ${huge}`, `--${huge}`, `--crf 18 ${huge}`]) {
      const err = (() => { try { parseX264Settings(settings.slice(0, 4096)) } catch (e) { return e as Error } })()
      expect(err).toBeInstanceOf(SettingsError)
      expect((err as Error).message.length).toBeLessThan(260)
      expect((err as Error).message).toMatch(/…"? \(\d+ characters\)/)
    }
  })
})

/** Issue 26.2: settings from the network could ask a worker for gigabytes of lookahead. */
describe('settings that would ask for unbounded memory', () => {
  it('refuses --rc-lookahead and --sync-lookahead past 60 frames (x264 takes 250); 60 and below pass', () => {
    for (const opt of ['--rc-lookahead', '--sync-lookahead']) {
      expect(() => parseX264Settings(`${opt} 250`)).toThrow(SettingsError)
      expect(() => parseX264Settings(`${opt} 61`)).toThrow(/must be between 0 and 60/)
      expect(parseX264Settings(`${opt} 60`).args).toEqual([opt, '60'])
    }
    // The slowest preset's own lookahead is within the bound.
    expect(parseX264Settings('--preset placebo --rc-lookahead 60 --ref 16 --bframes 16').args).toContain('placebo')
  })
})
