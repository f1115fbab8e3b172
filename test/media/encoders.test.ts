/**
 * The encoder interface (src/media/encoders): x264's implementation of what an encoder is to the
 * pipeline, and the registry another encoder joins. The allowlist itself: settings.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { DEFAULT_ENCODER, encoderArgs, encoderFor, estimateEncodeMemory, parseAomencSettings, parseSvtAv1Settings, parseX264Settings, SettingsError, statedRange } from '../../src/media/index.js'

const x264 = encoderFor('x264')

describe('encoderFor', () => {
  it('gives x264 by default, and refuses an encoder this version does not have, naming the ones it has', () => {
    expect(DEFAULT_ENCODER).toBe('x264')
    expect(x264.id).toBe('x264')
    expect(x264.binary).toBe('x264')
    expect(x264.parseSettings('--crf 18').encoder).toBe('x264')
    expect([x264.bitstream, x264.codec, x264.fileExtension]).toEqual(['h264', 'h264', '.264'])
    expect(x264.parseVersion('x264 0.164.3095 baee400\n(libswscale 6.7.100)')).toBe('0.164.3095')
    expect(x264.parseVersion('command not found')).toBeUndefined()
    for (const [id, binary] of [['x265', 'x265'], ['svt-av1', 'SvtAv1EncApp'], ['aomenc', 'aomenc']] as const) expect(encoderFor(id).binary).toBe(binary)
  })
})

describe('x264 as an encoder', () => {
  it('makes one chunk\'s command line from the parsed settings: y4m in, stitchable raw H.264 out', () => {
    const settings = parseX264Settings('--preset slow --crf=18 -b 5')
    const o = { frameRate: { num: 30000, den: 1001 }, frameCount: 48, threads: 2, outputPath: '/w/chunk-3.264' }
    const args = ['--preset', 'slow', '--crf', '18', '--bframes', '5', '--threads', '2', '--stitchable', '--fps', '30000/1001', '--frames', '48', '--demuxer', 'y4m', '--output', '/w/chunk-3.264', '-']
    expect(x264.chunkArgs(settings, o)).toEqual(args)
    expect(encoderArgs(settings, o)).toEqual(args)
    const { threads: _, ...unthreaded } = o
    expect(x264.chunkArgs(settings, unthreaded)).not.toContain('--threads')
  })

  it('reads its progress line and its closing frame count from stderr', () => {
    expect(x264.parseProgress('[10.0%] 24/240 frames, 61.54 fps, 412.10 kb/s, eta 0:00:03\r[20.0%] 48/240 frames, 63.01 fps, 420.00 kb/s, eta 0:00:03\r')).toEqual({ framesDone: 48, fps: 63.01 })
    expect(x264.parseProgress('12 frames: 30.50 fps, 380.2 kb/s')).toEqual({ framesDone: 12, fps: 30.5 })
    expect(x264.parseProgress('x264 [info]: profile High, level 3.0')).toBeUndefined()
    expect(x264.encodedFrames('x264 [info]: kb/s:412.10\nencoded 240 frames, 62.19 fps, 412.10 kb/s\n')).toBe(240)
    expect(x264.encodedFrames('x264 [error]: could not open output file')).toBeUndefined()
  })

  it('carries the source\'s colour where the settings leave it open, and says which fields the settings set', () => {
    const colour = { range: 'tv', primaries: 'bt709', transfer: 'gamma28', matrix: 'gbr', chromaLocation: 'topleft', sar: '64:45' }
    expect(x264.sourceColourArgs(colour, parseX264Settings('--crf 18'))).toEqual(['--range', 'tv', '--colorprim', 'bt709', '--transfer', 'bt470bg', '--colormatrix', 'GBR', '--chromaloc', '2', '--sar', '64:45'])
    const own = parseX264Settings('--crf 18 --colorprim bt470bg --sar 1:1')
    expect(x264.sourceColourArgs(colour, own)).toEqual(['--range', 'tv', '--transfer', 'bt470bg', '--colormatrix', 'GBR', '--chromaloc', '2'])
    expect([...x264.colourSetBy(own)].sort()).toEqual(['primaries', 'sar'])
    expect(statedRange(parseX264Settings('--range pc --range tv'))).toBe('tv')
    expect(statedRange(parseX264Settings('--range auto'))).toBeUndefined()
  })

  it('says what its settings hold in memory and how large a raw output picture is', () => {
    expect(x264.memoryInputs(parseX264Settings('--preset placebo'))).toEqual({ lookahead: 60, bframes: 16, ref: 16, samplesPerPixel: 1.5, bytesPerSample: 1 })
    // An option given wins over its preset's value; 4:4:4 at 10 bits is three samples of two bytes.
    expect(x264.memoryInputs(parseX264Settings('--preset placebo --ref 4 --output-csp i444 --profile high444 --output-depth 10'))).toEqual({ lookahead: 60, bframes: 16, ref: 4, samplesPerPixel: 3, bytesPerSample: 2 })
    expect(estimateEncodeMemory(parseX264Settings('--preset placebo --ref 4'), 1920, 1080, 1).explain).toMatch(/^84 pictures of 1920x1080 \(lookahead 60 \+ B-frames 16 \+ references 4 \+ threads 1 \+ 3\)/)
    expect(x264.rawBytesPerPixel(parseX264Settings('--crf 18'))).toBe(1.5)
    expect(x264.rawBytesPerPixel(parseX264Settings('--output-csp i444 --profile high444 --output-depth 10'))).toBe(3.75)
  })

  it('hands out settings only as frozen values it parsed', () => {
    const settings = parseX264Settings('--preset fast')
    expect(Object.isFrozen(settings) && Object.isFrozen(settings.args)).toBe(true)
    expect(() => { (settings.args as string[]).push('--output', '/tmp/x') }).toThrow(TypeError)
  })
})

const svt = encoderFor('svt-av1')
const aom = encoderFor('aomenc')
const chunk = { frameRate: { num: 30000, den: 1001 }, frameCount: 48, threads: 2, outputPath: '/w/chunk-3.ivf' }

/** The SettingsError a settings string gets, which must name `option`. */
function refusal (parse: (raw: string) => unknown, raw: string): SettingsError {
  try { parse(raw) } catch (err) { if (err instanceof SettingsError) return err; throw err }
  throw new Error(`${raw} was accepted`)
}

describe('SVT-AV1 as an encoder', () => {
  it('names its binary, bitstream and version', () => {
    expect([svt.id, svt.binary, svt.bitstream, svt.codec, svt.fileExtension]).toEqual(['svt-av1', 'SvtAv1EncApp', 'ivf', 'av1', '.ivf'])
    expect(svt.parseVersion('SVT-AV1 v1.4.1 (release)\n')).toBe('1.4.1')
    expect(svt.parseVersion('x264 0.164.3095')).toBeUndefined()
  })

  it('accepts pure encoding options, and knows 10-bit output', () => {
    const s = parseSvtAv1Settings('--preset 8 --crf 30 --tune 0 --film-grain 8 --film-grain-denoise 0 --enable-qm 1 --qm-min 4 --lookahead 60 --enable-overlays 1 --scm 0 --fast-decode 1 -q 30')
    expect(s.args).toEqual(['--preset', '8', '--crf', '30', '--tune', '0', '--film-grain', '8', '--film-grain-denoise', '0', '--enable-qm', '1', '--qm-min', '4', '--lookahead', '60', '--enable-overlays', '1', '--scm', '0', '--fast-decode', '1', '--qp', '30'])
    expect([s.encoder, s.outputDepth]).toEqual(['svt-av1', 8])
    expect(parseSvtAv1Settings('--input-depth 10 --rc 1 --tbr 2000').outputDepth).toBe(10)
  })

  it('refuses what names a file, places key frames, sets timing or threads, or passes options past the check, naming the option', () => {
    const refused: Array<[string, string, RegExp]> = [
      ['-i /etc/passwd', '-i', /worker feeds/],
      ['-b /tmp/x.ivf', '-b', /output file/],
      ['--output /tmp/x.ivf', '--output', /output file/],
      ['--stats /tmp/s.log', '--stats', /stats file/],
      ['--passes 2', '--passes', /multi-pass/],
      ['--recon /tmp/r.yuv', '--recon', /file on disk/],
      ['-o /tmp/r.yuv', '-o', /file on disk/],
      ['--fgs-table /tmp/grain.tbl', '--fgs-table', /film grain table/],
      ['--config /tmp/x.cfg', '--config', /configuration file/],
      ['-c /tmp/x.cfg', '-c', /configuration file/],
      ['--qpfile /tmp/q', '--qpfile', /file on disk/],
      ['--svtav1-params keyint=10', '--svtav1-params', /past this check/],
      ['--keyint 240', '--keyint', /swarm places key frames/],
      ['--scd 1', '--scd', /swarm places key frames/],
      ['--irefresh-type 1', '--irefresh-type', /swarm places key frames/],
      ['--force-key-frames 10f', '--force-key-frames', /swarm places key frames/],
      ['--frames 10', '--frames', /drop frames/],
      ['-n 10', '-n', /drop frames/],
      ['--fps-num 25', '--fps-num', /frame rate comes from the source/],
      ['--lp 64', '--lp', /threads/],
      ['--pin 1', '--pin', /threads/],
      ['--resize-mode 3', '--resize-mode', /frame size/],
      ['-h 1080', '-h', /worker feeds/],
      ['--nb 100000', '--nb', /memory/],
      ['--made-up 1', '--made-up', /not on the list/]
    ]
    for (const [raw, option, why] of refused) {
      const err = refusal(parseSvtAv1Settings, `--preset 8 ${raw}`)
      expect(err.option, raw).toBe(option.length > 2 ? option : err.option)
      expect(err.message, raw).toContain(option)
      expect(err.message, raw).toMatch(why)
    }
  })

  it('refuses values outside SvtAv1EncApp\'s ranges, and a lookahead beyond the bound', () => {
    expect(() => parseSvtAv1Settings('--preset 14')).toThrow(/--preset must be between 0 and 13/)
    expect(() => parseSvtAv1Settings('--preset -2')).toThrow(/--preset must be between 0 and 13/)
    expect(() => parseSvtAv1Settings('--crf 64')).toThrow(/--crf must be between 1 and 63/)
    expect(() => parseSvtAv1Settings('--lookahead 120')).toThrow(/--lookahead must be between -1 and 60/)
    expect(() => parseSvtAv1Settings('--input-depth 12')).toThrow(/--input-depth must be one of 8, 10/)
    expect(() => parseSvtAv1Settings('--mastering-display ../etc')).toThrow(/--mastering-display/)
  })

  it('makes one chunk\'s command line: y4m from stdin, one key frame, the source\'s rate, progress it can read', () => {
    const crf = parseSvtAv1Settings('--preset 8 --crf 30')
    expect(svt.chunkArgs(crf, chunk)).toEqual(['--preset', '8', '--crf', '30', '--lp', '2', '--pin', '0', '--keyint', '-1', '--scd', '0',
      '--fps-num', '30000', '--fps-denom', '1001', '--frames', '48', '--progress', '2', '-i', 'stdin', '-b', '/w/chunk-3.ivf'])
    // VBR takes no unbounded GOP: one as long as the chunk.
    const vbr = svt.chunkArgs(parseSvtAv1Settings('--rc 1 --tbr 1000'), chunk)
    expect(vbr[vbr.indexOf('--keyint') + 1]).toBe('48')
    const { threads: _, ...unthreaded } = chunk
    expect(svt.chunkArgs(crf, unthreaded)).not.toContain('--lp')
  })

  it('reads its progress lines and its closing summary from stderr', () => {
    expect(svt.parseProgress('Encoding frame   16 89.64 kbps 56.93 fps  \rEncoding frame   17 89.67 kbps 60.48 fps  \r')).toEqual({ framesDone: 17, fps: 60.48 })
    expect(svt.parseProgress('Svt[info]: SVT [config]: preset / tune')).toBeUndefined()
    const summary = 'SUMMARY --------------------------------- Channel 1  --------------------------------\nTotal Frames\t\tFrame Rate\t\tByte Count\t\tBitrate\n          40\t\t24.00 fps\t\t     35431\t\t170.07 kbps\n'
    expect(svt.encodedFrames(summary)).toBe(40)
    expect(svt.encodedFrames('[SVT-Error]: The intra period must be > 0 for RateControlMode 1')).toBeUndefined()
  })

  it('carries the source\'s colour in CICP numbers where the settings leave it open; AV1 has no aspect ratio to carry', () => {
    const colour = { range: 'pc', primaries: 'bt2020', transfer: 'smpte2084', matrix: 'bt2020nc', chromaLocation: 'topleft', sar: '64:45' }
    expect(svt.sourceColourArgs(colour, parseSvtAv1Settings('--crf 30'))).toEqual(['--color-range', '1', '--color-primaries', '9', '--transfer-characteristics', '16', '--matrix-coefficients', '9', '--chroma-sample-position', 'topleft'])
    const own = parseSvtAv1Settings('--crf 30 --color-primaries bt709 --color-range 0')
    expect(svt.sourceColourArgs({ ...colour, chromaLocation: 'center' }, own)).toEqual(['--transfer-characteristics', '16', '--matrix-coefficients', '9'])
    expect([...svt.colourSetBy(own)].sort()).toEqual(['primaries', 'range'])
    expect(svt.statedRange(own)).toBe('tv')
    expect(svt.statedRange(parseSvtAv1Settings('--color-range full'))).toBe('pc')
    // Unset, the sequence header still says studio range.
    expect(svt.statedRange(parseSvtAv1Settings('--crf 30'))).toBe('tv')
  })

  it('refuses 4:2:2 and 4:4:4 sources, and is fed 4:2:0 at the depth it is to write', () => {
    expect(svt.refuseSource('yuv422p10le')).toMatch(/SVT-AV1 encodes 4:2:0 only in swarm, and this source is 4:2:2/)
    expect(svt.refuseSource('yuv444p')).toMatch(/this source is 4:4:4/)
    expect(svt.refuseSource('yuv420p10le')).toBeUndefined()
    expect(svt.inputPixFmt(parseSvtAv1Settings('--crf 30'), 'yuv420p10le')).toBe('yuv420p')
    expect(svt.inputPixFmt(parseSvtAv1Settings('--input-depth 10'), 'yuv420p')).toBe('yuv420p10le')
    expect(svt.inputPixFmt(parseSvtAv1Settings('--crf 30'), 'yuvj420p')).toBe('yuvj420p')
  })

  it('says what its settings hold in memory and how large a raw output picture is', () => {
    expect(svt.memoryInputs(parseSvtAv1Settings('--preset 8'))).toEqual({ lookahead: 0, bframes: 32, ref: 8, samplesPerPixel: 1.5, bytesPerSample: 1 })
    expect(svt.memoryInputs(parseSvtAv1Settings('--preset 13 --lookahead 40 --input-depth 10'))).toEqual({ lookahead: 40, bframes: 16, ref: 8, samplesPerPixel: 1.5, bytesPerSample: 2 })
    expect(svt.rawBytesPerPixel(parseSvtAv1Settings('--input-depth 10'))).toBe(1.875)
  })
})

describe('aomenc as an encoder', () => {
  it('names its binary, bitstream and version (from --help: it has no --version)', () => {
    expect([aom.id, aom.binary, aom.bitstream, aom.codec, aom.fileExtension]).toEqual(['aomenc', 'aomenc', 'ivf', 'av1', '.ivf'])
    expect(aom.versionArgs).toEqual(['--help'])
    expect(aom.parseVersion('Included encoders:\n\n    av1    - AOMedia Project AV1 Encoder v3.6.0 (default)\n')).toBe('3.6.0')
  })

  it('accepts pure encoding options in either spelling, and knows 10-bit output', () => {
    const s = parseAomencSettings('--cpu-used=4 --end-usage q --cq-level=30 --row-mt=1 --tile-columns 1 --lag-in-frames=35 --enable-qm=1 --tune=ssim --good -b 10')
    expect(s.args).toEqual(['--cpu-used', '4', '--end-usage', 'q', '--cq-level', '30', '--row-mt', '1', '--tile-columns', '1', '--lag-in-frames', '35', '--enable-qm', '1', '--tune', 'ssim', '--good', '--bit-depth', '10'])
    expect([s.encoder, s.outputDepth]).toEqual(['aomenc', 10])
  })

  it('refuses what names a file, places key frames, sets timing, threads or the output format, naming the option', () => {
    const refused: Array<[string, string, RegExp]> = [
      ['-o /tmp/x.ivf', '-o', /output file/],
      ['--output=/tmp/x.ivf', '--output', /output file/],
      ['--fpf=/tmp/stats', '--fpf', /statistics file/],
      ['--passes=2', '--passes', /multi-pass/],
      ['-p 2', '-p', /multi-pass/],
      ['--rt', '--rt', /real-time mode/],
      ['--pass=1', '--pass', /multi-pass/],
      ['--cfg=/tmp/x.cfg', '--cfg', /configuration file/],
      ['--film-grain-table=/tmp/t', '--film-grain-table', /film grain table/],
      ['--partition-info-path=/tmp', '--partition-info-path', /file on disk/],
      ['--two-pass-output=/tmp/x', '--two-pass-output', /file on disk/],
      ['-spf /tmp/x', '-s', /not an aomenc encoding option/],
      ['--kf-max-dist=240', '--kf-max-dist', /swarm places key frames/],
      ['--kf-min-dist=12', '--kf-min-dist', /swarm places key frames/],
      ['--disable-kf', '--disable-kf', /swarm places key frames/],
      ['--enable-fwd-kf=1', '--enable-fwd-kf', /swarm places key frames/],
      ['--allintra', '--allintra', /key frame/],
      ['--limit=10', '--limit', /drop frames/],
      ['--skip=10', '--skip', /drop frames/],
      ['--drop-frame=50', '--drop-frame', /frame count/],
      ['--threads=64', '--threads', /threads/],
      ['--webm', '--webm', /output format/],
      ['--fps=25/1', '--fps', /frame rate comes from the source/],
      ['--input-bit-depth=10', '--input-bit-depth', /worker feeds/],
      ['--tune=vmaf', '--tune', /must be one of psnr, ssim/]
    ]
    for (const [raw, option, why] of refused) {
      const err = refusal(parseAomencSettings, `--cpu-used=6 ${raw}`)
      expect(err.message, raw).toContain(option)
      expect(err.message, raw).toMatch(why)
    }
    expect(() => parseAomencSettings('--lag-in-frames=36')).toThrow(/--lag-in-frames must be between 0 and 35/)
    expect(() => parseAomencSettings('--cpu-used=10')).toThrow(/--cpu-used must be between 0 and 9/)
    expect(() => parseAomencSettings('--color-primaries=../x')).toThrow(/--color-primaries must be one of/)
  })

  it('makes one chunk\'s command line in aomenc\'s --name=value form: one pass, IVF, one key frame, y4m from stdin', () => {
    const settings = parseAomencSettings('--cpu-used 6 --end-usage=q --cq-level 30 --good')
    expect(aom.chunkArgs(settings, chunk)).toEqual(['--ivf', '--passes=1', '--cpu-used=6', '--end-usage=q', '--cq-level=30', '--good', '--threads=2',
      '--disable-kf', '--kf-max-dist=9999', '--fps=30000/1001', '--limit=48', '--disable-warning-prompt', '-o', '/w/chunk-3.ivf', '-'])
    const long = aom.chunkArgs(settings, { ...chunk, frameCount: 20000 })
    expect(long).toContain('--kf-max-dist=20000')
  })

  it('reads frames written, not frames read, from its progress, and its closing line', () => {
    const stderr = 'Pass 1/1 frame   35/0          0B   63389 us 552.15 fps [ETA  unknown] \x1b[K\rPass 1/1 frame   37/2       8742B  778799 us 47.51 fps [ETA  0:00:15]       5F\x1b[K\r'
    expect(aom.parseProgress(stderr)).toEqual({ framesDone: 2, fps: 47.51 })
    expect(aom.parseProgress('Pass 1/1 frame    1/0          0B   28673 us 30.00 fpm [ETA  unknown]')).toEqual({ framesDone: 0, fps: 0.5 })
    expect(aom.encodedFrames(stderr)).toBeUndefined()
    expect(aom.encodedFrames(`${stderr}\x1b[K\rPass 1/1 frame   40/40     22959B    4591b/f  110184b/s 2267803 us (17.64 fps)\x1b[K\n`)).toBe(40)
  })

  it('carries the source\'s colour in aomenc\'s names; the range and chroma position it takes from the y4m', () => {
    const colour = { range: 'pc', primaries: 'bt470bg', transfer: 'iec61966-2-1', matrix: 'smpte170m', chromaLocation: 'left' }
    expect(aom.sourceColourArgs(colour, parseAomencSettings('--cq-level=30'))).toEqual(['--color-primaries', 'bt470bg', '--transfer-characteristics', 'srgb', '--matrix-coefficients', 'bt601'])
    expect(() => parseAomencSettings('--chroma-sample-position=vertical')).toThrow(/takes it from the y4m/)
    const own = parseAomencSettings('--transfer-characteristics=hlg')
    expect(aom.sourceColourArgs({ transfer: 'bt709', primaries: 'smpte170m', matrix: 'bt2020nc' }, own)).toEqual(['--color-primaries', 'bt601', '--matrix-coefficients', 'bt2020ncl'])
    expect([...aom.colourSetBy(own)]).toEqual(['transfer'])
    expect(aom.statedRange(own)).toBeUndefined()
  })

  it('refuses 4:2:2 sources and says what its settings hold in memory', () => {
    expect(aom.refuseSource('yuv422p')).toMatch(/aomenc encodes 4:2:0 only in swarm/)
    expect(aom.memoryInputs(parseAomencSettings('--cpu-used=6'))).toEqual({ lookahead: 35, bframes: 0, ref: 8, samplesPerPixel: 1.5, bytesPerSample: 1 })
    expect(aom.memoryInputs(parseAomencSettings('--lag-in-frames=0 -b 10')).lookahead).toBe(0)
    expect(aom.rawBytesPerPixel(parseAomencSettings('-b 10'))).toBe(1.875)
  })
})
