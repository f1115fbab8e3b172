/**
 * What a node's tool run was for (bench/tool-cpu.ts, from the command line GNU time logs), and
 * the CPU of some kinds of run: how bench:throughput tells checks from encodes.
 */
import { describe, expect, it } from 'vitest'
import { classifyToolRun, cpuOfKinds, ENCODE_KINDS, VERIFICATION_KINDS } from '../../bench/tool-cpu.js'

describe('tool runs by purpose', () => {
  it('tells the structure check\'s reference encode from the encodes of chunks, and the split\'s and the merge\'s decodes from the checks', () => {
    expect(classifyToolRun('/usr/bin/x264 --preset faster --crf 20 --threads 1 -o /tmp/swarm-structure-a1/reference.264 /tmp/swarm-structure-a1/grey.y4m')).toBe('x264: structure reference')
    expect(classifyToolRun('/usr/bin/ffmpeg -v error -f lavfi -i color=c=gray:size=1280x720 -frames:v 2 -f yuv4mpegpipe /tmp/swarm-structure-a1/grey.y4m')).toBe('ffmpeg: structure reference')
    expect(classifyToolRun('/usr/bin/x264 --preset faster --crf 20 -o /home/n2/work/chunk-3.264 -')).toBe('x264: encodes')
    expect(classifyToolRun('/usr/bin/SvtAv1EncApp --preset 8 --crf 35 --lp 1 -i stdin -b /home/n2/work/chunk-3.ivf')).toBe('SvtAv1EncApp: encodes')
    expect(classifyToolRun('/usr/bin/SvtAv1EncApp --preset 8 --crf 35 -i /tmp/swarm-pictures-x1/frame-0.y4m -b /tmp/swarm-pictures-x1/own-0.ivf')).toBe('SvtAv1EncApp: picture checks')
    expect(classifyToolRun('/usr/bin/x265 --preset fast --crf 24 --seek 12 --frames 1 --y4m --output /tmp/a.hevc /tmp/s.y4m')).toBe('x265: picture checks')
    expect(classifyToolRun('/usr/bin/aomenc --ivf --passes=1 --cpu-used=6 -o /tmp/swarm-structure-q/reference.ivf /tmp/swarm-structure-q/grey.y4m')).toBe('aomenc: structure reference')
    expect(classifyToolRun('/usr/bin/ffmpeg -v error -i segment-3.mkv -f yuv4mpegpipe -')).toBe('ffmpeg: decodes for encodes')
    expect(classifyToolRun('/usr/bin/ffmpeg -v error -threads 1 -i file:chunk.264 -vf select -f rawvideo -')).toBe('ffmpeg: picture checks')
    expect(classifyToolRun('/usr/bin/ffmpeg -v error -nostdin -i file:src.mkv -i file:out.mkv -filter_complex [out][src]psnr=stats_file=- -f null -')).toBe('ffmpeg: pictures at cuts (merge)')
    expect(classifyToolRun('/usr/bin/ffmpeg -v error -nostdin -i file:segment-2.mkv -map 0:v:0 -frames:v 168 -f null -')).toBe('ffmpeg: first GOPs decoded (split)')
  })

  it('adds up the CPU of the kinds asked for', () => {
    const runs = [{ kind: 'x264: encodes', runs: 3, cpuSeconds: 30 }, { kind: 'ffmpeg: decodes for encodes', runs: 3, cpuSeconds: 4 }, { kind: 'ffmpeg: picture checks', runs: 6, cpuSeconds: 2 }, { kind: 'x264: structure reference', runs: 1, cpuSeconds: 0.05 }]
    expect(cpuOfKinds(runs, ENCODE_KINDS)).toBe(34)
    expect(cpuOfKinds(runs, VERIFICATION_KINDS)).toBeCloseTo(2.05)
    expect(cpuOfKinds(runs, ['mkvmerge: merge'])).toBe(0)
  })
})
