/**
 * The structure check: a result must be what the job's own x264 writes for its settings (profile,
 * chroma format, bit depth, field coding, VUI), one SPS throughout, only x264's NAL and SEI types,
 * and SEI bytes bounded. Real x264 encodes of a small clip, and streams doctored byte by byte.
 */
import { execa } from 'execa'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { describeH264Structure, parseX264Settings, referenceStructure, structureMismatches } from '../../src/media/index.js'

let work: string
const job = { settings: parseX264Settings('--preset veryfast --crf 30'), width: 320, height: 180, sourcePixFmt: 'yuv420p', frameRate: { num: 25, den: 1 } }

beforeAll(async () => { work = await mkdtemp(join(tmpdir(), 'swarm-structure-')) })
afterAll(async () => { await rm(work, { recursive: true, force: true }) })

/** 24 frames of testsrc2 through the real x264 with the given options, as a raw H.264 stream. */
async function encode (name: string, x264Options: string[]): Promise<Uint8Array> {
  const out = join(work, `${name}.264`)
  const y4m = join(work, 'clip.y4m')
  await execa('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25', '-frames:v', '24', '-pix_fmt', 'yuv420p', '-f', 'yuv4mpegpipe', y4m])
  await execa('x264', ['--preset', 'veryfast', '--crf', '30', '--stitchable', '--fps', '25/1', ...x264Options, '--quiet', '--output', out, y4m])
  return await readFile(out)
}

/** An Annex B SEI NAL holding one user-data-unregistered message of `size` bytes. */
function bloatSei (size: number): Uint8Array {
  const payload = new Uint8Array(16 + size).fill(0x41)
  const header: number[] = [0, 0, 0, 1, 6, 5]
  let left = payload.length
  while (left >= 255) { header.push(255); left -= 255 }
  header.push(left)
  return Uint8Array.from([...header, ...payload, 0x80])
}

describe('structureMismatches', () => {
  it('passes an honest encode with the job\'s settings and names each difference of another format', async () => {
    const reference = await referenceStructure(job)
    expect(reference.codec === 'h264' ? reference.sps : undefined).toMatchObject({ chromaFormatIdc: 1, bitDepth: 8, frameMbsOnly: 1 })
    const honest = describeH264Structure(await encode('honest', []))
    expect(structureMismatches(honest, reference, 24)).toEqual([])

    const hi444 = describeH264Structure(await encode('hi444', ['--output-csp', 'i444', '--output-depth', '10']))
    expect(structureMismatches(hi444, reference, 24)).toEqual(expect.arrayContaining(['profile_idc 244, expected 100', 'chroma format 3, expected 1', 'bit depth 10, expected 8']))
    const interlaced = describeH264Structure(await encode('tff', ['--tff']))
    expect(structureMismatches(interlaced, reference, 24)).toContain('frame_mbs_only 0, expected 1')
    const otherColour = describeH264Structure(await encode('bt2020', ['--colorprim', 'bt2020', '--transfer', 'smpte2084']))
    expect(structureMismatches(otherColour, reference, 24)).toEqual(expect.arrayContaining(['colour primaries 9, expected not stated', 'transfer 16, expected not stated']))
    // Range is compared when the settings state it (else x264 follows its input, which is the worker's decode).
    const pc = await referenceStructure({ ...job, settings: parseX264Settings('--preset veryfast --crf 30 --range pc') })
    expect(pc.codec === 'h264' ? pc.sps?.vui.fullRange : undefined).toBe(true)
    const limited = describeH264Structure(await encode('no-range', []))
    expect(structureMismatches(limited, pc, 24)).toContain('full range not stated, expected true')
    const fullRange = describeH264Structure(await encode('pc', ['--range', 'pc']))
    expect(structureMismatches(fullRange, pc, 24)).toEqual([])
    expect(structureMismatches(fullRange, reference, 24)).toEqual([])
  })

  it('refuses a stream that changes format midway, and one padded with SEI', async () => {
    const reference = await referenceStructure(job)
    const honest = await encode('honest2', [])
    const other = await encode('hi444b', ['--output-csp', 'i444'])
    const switched = describeH264Structure(Buffer.concat([honest, other]))
    expect(structureMismatches(switched, reference, 48).join('\n')).toMatch(/2 different SPS/)
    const padded = Buffer.concat([honest, ...Array.from({ length: 24 }, () => bloatSei(100_000))])
    const problems = structureMismatches(describeH264Structure(padded), reference, 24)
    expect(problems.join('\n')).toMatch(/bytes of SEI for 24 pictures \(at most 10496\)/)
    // x264's own SEI (its options string) is well inside the bound.
    expect(describeH264Structure(honest).seiBytes).toBeLessThan(2048)
  })
})
