/**
 * Workers that lie in ways a viewer notices but a luma-only, few-frame check let through (issue
 * 27): their x264 is a shim on PATH that changes the pictures first and encodes them with the
 * job's own settings, so count, size, keyframes and structure are right. One writes a line of
 * 16 px advert text into a corner of every frame; one blurs every frame and encodes it at
 * `--crf 51` on a `--crf 20` job. Real `swarm join` processes on 127.0.0.1: the originator O,
 * an honest worker B, and the two liars. Every result of theirs must be refused by the picture
 * check and each liar banned; the job must complete frame-exact with the source's pictures.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { probeMedia } from '../../src/media/index.js'
import type { LocalNode } from '../../scripts/local-swarm.js'
import { addJob, dumpLogs, expectCompleteJob, makeClip, shimX264, short, startSwarm, stopNodes, tallyFault, waitForJobEnd } from '../helpers/faults.js'
import { psnrAgainst } from '../helpers/media.js'
import { LIE_FILTERS } from '../helpers/lies.js'

let root: string
const nodes: LocalNode[] = []

beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'swarm-faults-viewer-')) })
afterAll(async () => {
  await stopNodes(nodes)
  dumpLogs(nodes)
  await rm(root, { recursive: true, force: true })
})

/** A directory whose x264 runs its y4m input through `filter` and hands it to the real x264 with the same arguments, then `extra`. */
async function lyingX264 (dir: string, why: string, filter: string, extra = ''): Promise<string> {
  return await shimX264(dir, [
    `# A lying worker's encoder: ${why}; count, size and settings honest.`,
    `ffmpeg -v error -nostdin -f yuv4mpegpipe -i - -vf "${filter}" -strict -1 -f yuv4mpegpipe - | exec /usr/bin/x264 "$@" ${extra}`
  ])
}

describe('workers whose pictures a viewer would notice: advert text, blur at --crf 51', () => {
  it('has every result of both refused as bad-result, both banned; the job completes with the source\'s pictures', async () => {
    // Big enough for 16 px letters to be text, small enough to encode in a moment.
    const clip = await makeClip(join(root, 'src', 'eight-chunks.mkv'), { frames: 8 * 21, keyint: 3, size: '320x180' })
    const advertDir = await lyingX264(join(root, 'advert-bin'), 'a line of 16 px advert text in a corner of every frame', LIE_FILTERS.advert)
    const blurDir = await lyingX264(join(root, 'blur-bin'), 'every frame blurred, then encoded at --crf 51', LIE_FILTERS.blur, '--crf 51')
    const [o, b, advert, blur] = await startSwarm(root, [
      { name: 'o', extraArgs: ['--verbose'], env: { SWARM_TEST_ENCODER: 'delay:60' } },
      { name: 'b', extraArgs: ['--verbose'], env: { SWARM_TEST_ENCODER: 'delay:60' } },
      { name: 'advert', extraArgs: ['--verbose'], env: { PATH: `${advertDir}:${process.env.PATH ?? ''}` } },
      { name: 'blur', extraArgs: ['--verbose'], env: { PATH: `${blurDir}:${process.env.PATH ?? ''}` } }
    ], nodes) as [LocalNode, LocalNode, LocalNode, LocalNode]
    const srcFrames = (await probeMedia(clip)).video.frameCount
    const job = await addJob(o.home, clip, '--preset veryfast --crf 20', join(root, 'out', 'viewer.mkv'))
    const end = await waitForJobEnd(o.home, job.id, 180_000)
    expect(end.error).toBeUndefined()
    const { record } = await expectCompleteJob(o.home, job.id, srcFrames)

    const told: string[] = []
    for (const [liar, name] of [[advert, 'advert'], [blur, 'blur']] as const) {
      const refusals = o.stderr().split('\n').filter(line => line.includes(`refused result for ${job.id.slice(0, 8)}#`) && line.includes(`from ${short(liar.peerId)}`))
      // Each worked, and each result of it was refused for its pictures, whichever rule saw it first.
      expect(refusals.length, `${name} had no result refused`).toBeGreaterThan(0)
      // The first is refused by the picture check; a result it had waiting then is refused unchecked, as a banned peer's.
      expect(refusals.some(line => /is further from the source than an encode with the job's settings|does not show the source's picture/.test(line))).toBe(true)
      for (const line of refusals) expect(line).toMatch(/is further from the source than an encode with the job's settings|does not show the source's picture|unchecked: banned while it waited its turn/)
      expect(record.chunks.filter(c => c.result?.encodedBy === liar.peerId)).toEqual([])
      const bans = o.stderr().split('\n').filter(line => line.includes(`swarm: banned ${short(liar.peerId)} for 1 h and from ${job.id.slice(0, 8)}`))
      expect(bans).toHaveLength(1)
      told.push(`${name}: ${refusals.length} refused ("${(refusals[0] ?? '').replace(/^.*?: (frame|its)/, '$1').slice(0, 110)}…")`)
    }
    // B's honest results passed the same check.
    expect(o.stderr()).not.toContain(`from ${short(b.peerId)}:`)
    // The output is the source at crf 20: neither the text nor the blur is in it.
    const psnr = await psnrAgainst(record.output as string, clip)
    expect(psnr).toBeGreaterThan(35)
    tallyFault('workers return advert text in every frame, or blur at --crf 51 on a --crf 20 job (valid H.264, the job\'s structure)', `${told.join('; ')}; both banned from the job and the node; the ${record.chunks.length} chunks encoded by O and B; output PSNR ${psnr.toFixed(1)} dB against the source`)
  })
})
