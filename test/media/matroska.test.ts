import { execa } from 'execa'
import { mkdtemp, rm, stat, truncate, copyFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readMatroskaVideoPackets, UnsupportedMatroskaError } from '../../src/media/matroska.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'

let fx: Fixtures
let scratch: string
beforeAll(async () => {
  fx = await ensureFixtures()
  scratch = await mkdtemp(join(tmpdir(), 'swarm-mkv-'))
})
afterAll(async () => { await rm(scratch, { recursive: true, force: true }) })

async function ffprobePackets (path: string): Promise<Array<{ time: number, key: boolean }>> {
  const { stdout } = await execa('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time,flags', '-of', 'csv=p=0', path])
  return stdout.trim().split('\n').map(l => { const [t, f] = l.split(','); return { time: Number(t), key: (f ?? '').includes('K') } })
}

describe('readMatroskaVideoPackets', () => {
  it('reads the same video packets as ffprobe: B-frames, open GOPs, audio, subtitles and attachments around them', async () => {
    const ours = await readMatroskaVideoPackets(fx.openGop10bit)
    const theirs = await ffprobePackets(fx.openGop10bit)
    expect(ours).toHaveLength(240)
    expect(ours.map(p => p.key)).toEqual(theirs.map(p => p.key))
    ours.forEach((p, i) => { expect(p.time).toBeCloseTo(theirs[i]!.time, 6) })
  })

  it('reads block groups (keyframe = no reference block) and a non-default timestamp scale, VFR times intact', async () => {
    const out = join(scratch, 'groups.mkv')
    await execa('mkvmerge', ['--quiet', '-o', out, '--engage', 'no_simpleblocks', '--timestamp-scale', '1000', fx.vfrMp4])
    const { stdout } = await execa('mkvinfo', ['-v', out])
    expect(stdout).toMatch(/Block group/)
    expect(stdout).toMatch(/Reference block/)
    const ours = await readMatroskaVideoPackets(out)
    const theirs = await ffprobePackets(out)
    expect(ours).toHaveLength(120)
    expect(ours.map(p => p.key)).toEqual(theirs.map(p => p.key))
    ours.forEach((p, i) => { expect(p.time).toBeCloseTo(theirs[i]!.time, 6) })
  })

  it('leaves what it does not read to ffprobe: another container, a truncated file', async () => {
    await expect(readMatroskaVideoPackets(fx.vfrMp4)).rejects.toBeInstanceOf(UnsupportedMatroskaError)
    const cut = join(scratch, 'truncated.mkv')
    await copyFile(fx.openGop10bit, cut)
    await truncate(cut, Math.floor((await stat(cut)).size / 2))
    await expect(readMatroskaVideoPackets(cut)).rejects.toBeInstanceOf(UnsupportedMatroskaError)
  })
})
