/**
 * Adaptive checking in a private swarm (issue 27): real `swarm join` processes on 127.0.0.1, all
 * with one swarm key, so the originator O checks adaptively (the default with a key). The liar L's
 * x264 is a shim that encodes its first chunk honestly and negates every picture after: the
 * fault that starts after a clean record. O's draws are scripted (SWARM_TEST_VERIFY_DRAWS, the
 * testing knob): after each peer's first result, one on its structure alone, then one in full, in
 * turn. So L's first result is checked in full and passes, its second (a lie) is kept on its
 * structure alone, and its third (a lie) gets the picture check: caught. L must be banned, every
 * chunk it had kept (the one checked in full and the lie checked on its structure alone) encoded
 * again by the honest peers, and the output must show the source's pictures. The draws of a real
 * node come from node:crypto, so a peer cannot know which of its results get the picture check:
 * test/jobs/verification-policy.test.ts has the share and the escape probability.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { probeMedia } from '../../src/media/index.js'
import type { NodeEvent, NodeEventOf, NodeEventType } from '../../src/swarm/index.js'
import { psnrAgainst } from '../helpers/media.js'
import { runSwarm, type LocalNode } from '../../scripts/local-swarm.js'
import { addJob, dumpLogs, expectCompleteJob, jobStatus, makeClip, shimX264, short, startSwarm, stopNodes, tallyFault, waitForJobEnd } from '../helpers/faults.js'

let root: string
const nodes: LocalNode[] = []

beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'swarm-faults-adaptive-')) })
afterAll(async () => {
  await stopNodes(nodes)
  dumpLogs(nodes)
  await rm(root, { recursive: true, force: true })
})

/** Chunk encodes this x264 does honestly before every picture it encodes is negated. */
const HONEST_FIRST = 1

/** A directory whose x264 passes its first HONEST_FIRST chunk encodes to the real x264 and negates the pictures of every later one. */
async function failingX264 (dir: string): Promise<string> {
  return await shimX264(dir, [
    '# A worker whose encoder goes wrong after a clean start: honest at first, then every picture negated.',
    'case "$*" in *--stitchable*) ;; *) exec /usr/bin/x264 "$@" ;; esac',
    `count="${dir}/encodes"`,
    'n=$(( $(cat "$count" 2>/dev/null || echo 0) + 1 ))',
    'echo "$n" > "$count"',
    `if [ "$n" -le ${HONEST_FIRST} ]; then exec /usr/bin/x264 "$@"; fi`,
    'ffmpeg -v error -nostdin -f yuv4mpegpipe -i - -vf negate -strict -1 -f yuv4mpegpipe - | exec /usr/bin/x264 "$@"'
  ])
}

describe('adaptive checking in a private swarm, against a worker that goes wrong after a clean start', () => {
  it('catches it on a drawn full check, bans it, and has every chunk it had kept (structure-only ones and the lie among them) encoded again by honest peers', async () => {
    const key = join(root, 'swarm.key')
    expect((await runSwarm(['key', 'generate', key])).exitCode).toBe(0)
    const clip = await makeClip(join(root, 'src', 'sixteen-chunks.mkv'), { frames: 16 * 21, keyint: 3 })
    const shimDir = await failingX264(join(root, 'liar-bin'))
    const keyArgs = ['--swarm-key', key]
    const eventsFile = join(root, 'o-events.jsonl')
    // O and B encode slowly (100 ms a frame), so the liar takes enough chunks to reach its lies.
    const [o, b, l] = await startSwarm(root, [
      { name: 'o', extraArgs: [...keyArgs, '--verbose', '--events', eventsFile], env: { SWARM_TEST_ENCODER: 'delay:100', SWARM_TEST_VERIFY_DRAWS: '0.99,0' } },
      { name: 'b', extraArgs: keyArgs, env: { SWARM_TEST_ENCODER: 'delay:100' } },
      { name: 'l', extraArgs: [...keyArgs, '--verbose'], env: { PATH: `${shimDir}:${process.env.PATH ?? ''}` } }
    ], nodes) as [LocalNode, LocalNode, LocalNode]
    const srcFrames = (await probeMedia(clip)).video.frameCount
    const job = await addJob(o.home, clip, '--preset ultrafast --crf 30', join(root, 'out', 'adaptive.mkv'))
    expect(job.verification).toMatchObject({ mode: 'adaptive' })
    const end = await waitForJobEnd(o.home, job.id, 240_000)
    expect(end.error).toBeUndefined()
    const { record } = await expectCompleteJob(o.home, job.id, srcFrames)
    const events = (await readFile(eventsFile, 'utf8')).split('\n').filter(line => line !== '').map(line => JSON.parse(line) as NodeEvent)
    const of = <T extends NodeEventType>(type: T): Array<NodeEventOf<T>> => events.filter((e): e is NodeEventOf<T> => e.type === type && (!('jobId' in e) || e.jobId === job.id))

    // L's first chunks were kept, the lie on its structure alone; then its next lie got the picture check.
    const requeued = of('chunks:requeued')
    expect(requeued.map(e => e.peer)).toEqual([l.peerId])
    const requeuedAt = events.indexOf(requeued[0] as NodeEvent)
    const keptByL = of('chunk:done').filter(e => e.peer === l.peerId)
    expect(keptByL.every(e => events.indexOf(e) < requeuedAt)).toBe(true)
    expect(keptByL.length).toBeGreaterThanOrEqual(HONEST_FIRST + 1)
    // Exactly its first result got the picture check; the structure-only checks are quicker, so a
    // later result's chunk:done may come before the first one's.
    expect(keptByL.filter(e => e.check === 'full')).toHaveLength(HONEST_FIRST)
    const structureOnly = keptByL.filter(e => e.check === 'structural').map(e => e.chunk)
    expect(structureOnly.length).toBeGreaterThanOrEqual(1)
    const caught = of('result:refused').filter(e => e.peer === l.peerId)
    expect(caught[0]).toMatchObject({ code: 'bad-result', reason: expect.stringMatching(/frame \d+ (does not show the source's picture|is further from the source than an encode with the job's settings)|show the source's (previous|next) frames/) })
    // Banned from the job and the node, once.
    expect(of('peer:banned').filter(e => e.peer === l.peerId)).toMatchObject([{ jobIds: [job.id] }])

    // Every chunk L had kept went back, structure-only ones included, and was encoded again by O or B.
    const sentBack = requeued[0]?.chunks ?? []
    expect([...sentBack].sort((x, y) => x - y)).toEqual(keptByL.map(e => e.chunk).sort((x, y) => x - y))
    for (const c of structureOnly) expect(sentBack).toContain(c)
    expect(record.stats?.requeuedResults).toBe(sentBack.length)
    expect(record.chunks.filter(c => c.result?.encodedBy === l.peerId)).toEqual([])
    for (const c of sentBack) expect([o.peerId, b.peerId]).toContain(record.chunks[c]?.result?.encodedBy)
    // The log says so too, once, naming the chunks.
    expect(o.stderr().split('\n').filter(line => line.includes(`jobs: ${job.id.slice(0, 12)}: ${short(l.peerId)} was caught with a wrong result; the ${sentBack.length} chunk`))).toHaveLength(1)

    // The output shows the source: neither the lie that was caught nor the one kept on its structure is in it.
    const psnr = await psnrAgainst(record.output as string, clip)
    expect(psnr).toBeGreaterThan(30)
    // Status says how the job was checked: the kept results add up to the chunks.
    const status = await jobStatus(o.home, job.id)
    expect(status.verification?.mode).toBe('adaptive')
    const v = status.verification
    expect((v?.full ?? 0) + (v?.structural ?? 0) + (v?.own ?? 0)).toBe(record.chunks.length)
    const text = await runSwarm(['status', job.id.slice(0, 10), '--home', o.home])
    expect(text.stdout).toMatch(/checks {4}adaptive \(every peer's result: structure; pictures: each peer's first, then a random share\); kept: \d+ checked in full, \d+ on structure only, \d+ encoded here/)

    const encodedBy = Object.entries(end.encodedBy).map(([p, n]) => `${p === o.peerId ? 'O' : p === b.peerId ? 'B' : 'L'} ${n}`).join(', ')
    tallyFault('private swarm, adaptive checks: a worker encodes its first chunks honestly, then negated pictures',
      `L kept ${keptByL.length} results (${structureOnly.length} on their structure alone, a lie among them) before a drawn picture check caught its next lie; L banned, its ${sentBack.length} kept chunks sent back and encoded again; the ${record.chunks.length} chunks encoded by ${encodedBy}; output PSNR ${psnr.toFixed(1)} dB against the source`)
  })
})
