import { execa } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { JobStatus, PeersJson, StatusJson } from '../../src/daemon/index.js'
import { shortPeer } from '../../src/log/index.js'
import { runSwarm, startLocalNode, SWARM_CLI, type LocalNode } from '../../scripts/local-swarm.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'

let root: string
let fx: Fixtures
let a: LocalNode
let b: LocalNode

const quote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`

/** Runs `swarm ARGS` on a pseudo-terminal (util-linux `script`), 160 columns wide; returns what the terminal got. */
async function onTerminal (args: string[], env: Record<string, string> = {}): Promise<{ exitCode: number, output: string }> {
  const base = { ...process.env }
  delete base.NO_COLOR
  const command = `stty cols 160; exec ${[process.execPath, SWARM_CLI, ...args].map(quote).join(' ')}`
  const r = await execa('script', ['-qfec', command, '/dev/null'], { env: { ...base, ...env }, extendEnv: false, stdin: 'ignore', reject: false })
  return { exitCode: r.exitCode ?? 1, output: r.stdout }
}

beforeAll(async () => {
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-progress-'))
  // Both wait per frame, so a job lasts a few seconds and leases last long enough to be seen.
  a = await startLocalNode(join(root, 'a'), { env: { SWARM_TEST_ENCODER: 'delay:20' } })
  b = await startLocalNode(join(root, 'b'), { env: { SWARM_TEST_ENCODER: 'delay:40' }, bootstrap: [a.addresses[0] as string] })
  for (let i = 0; i < 100; i++) {
    const s = JSON.parse((await runSwarm(['status', '--home', a.home, '--json'])).stdout) as StatusJson
    if (s.peers.some(p => p.id === b.peerId)) break
    await new Promise(r => setTimeout(r, 200))
  }
})
afterAll(async () => {
  await Promise.allSettled([a?.stop(), b?.stop()])
  if (root !== undefined) await rm(root, { recursive: true, force: true })
})

describe('live progress on a terminal', () => {
  it('swarm add --wait redraws a bar with frames, fps and ETA, and per peer what it encodes', async () => {
    const output = join(root, 'tty.mkv')
    const r = await onTerminal(['add', fx.openGop10bit, '--preset superfast --crf 30', '--home', a.home, '--output', output, '--wait'])
    expect(r.exitCode).toBe(0)
    expect(r.output).toMatch(/\x1b\[\d+A\r\x1b\[J/) // moved up and redrawn in place
    const text = r.output.replace(/\r/g, '').replace(/\x1b\[[0-9;]*m/g, '') // without colours
    expect(text).toContain('█')
    // Some frame had a speed and an ETA computed from it, and a row for this node's own chunks.
    expect(text).toMatch(/\d+\/240 frames {2}[1-9]\d*\.\d fps {2}ETA \d+:\d\d/)
    expect(text).toMatch(new RegExp(`${shortPeer(a.peerId)} \\(this node\\)\\s+\\d+\\.\\d fps {2}#\\d+ \\d+/\\d+`))
    expect(text).toMatch(/done\s+█+\s+100%\s+240\/240 frames\s+→ /)
    expect(text.trim().split('\n').at(-1)).toBe(output)
  })

  it('prints plain lines, each only when something changed, when NO_COLOR is set', async () => {
    const output = join(root, 'no-color.mkv')
    const r = await onTerminal(['add', fx.openGop10bit, '--preset superfast --crf 31', '--home', a.home, '--output', output, '--wait'], { NO_COLOR: '1' })
    expect(r.exitCode).toBe(0)
    expect(r.output).not.toContain('\x1b')
    const lines = r.output.replace(/\r/g, '').trim().split('\n')
    const progress = lines.filter(l => /^job [0-9a-f]{12} /.test(l))
    expect(progress.length).toBeGreaterThanOrEqual(2)
    progress.slice(1).forEach((l, i) => { expect(l).not.toBe(progress[i]) })
    expect(progress.at(-1)).toMatch(/done: (\d+)\/\1 chunks done, 0 encoding, 100% of 240 frames/)
    expect(lines.at(-1)).toBe(output)
  })
})

describe('swarm status --watch', () => {
  it('--json prints one status object per line per refresh, with no decoration, until Ctrl-C', async () => {
    const proc = execa(process.execPath, [SWARM_CLI, 'status', '--watch', '--json', '--home', a.home], { reject: false, stdin: 'ignore' })
    let text = ''
    proc.stdout?.on('data', (d: Buffer) => { text += d.toString() })
    for (let i = 0; i < 100 && text.split('\n').length < 4; i++) await new Promise(r => setTimeout(r, 100))
    proc.kill('SIGINT')
    const r = await proc
    expect(r.exitCode).toBe(0)
    expect(text).not.toContain('\x1b')
    const lines = text.trim().split('\n')
    expect(lines.length).toBeGreaterThanOrEqual(3)
    for (const line of lines) {
      const s = JSON.parse(line) as StatusJson
      expect(s.peerId).toBe(a.peerId)
      for (const j of s.jobs.filter(j => j.local)) expect(typeof j.fps).toBe('number')
    }
  })

  it('with JOB follows that job and exits when it is done: plain lines, or one JSON object per refresh', async () => {
    const added = await runSwarm(['add', fx.vfrMp4, '--preset superfast --crf 30', '--home', a.home, '--output', join(root, 'watched.mkv'), '--json'])
    expect(added.exitCode).toBe(0)
    const id = (JSON.parse(added.stdout) as { job: JobStatus }).job.id
    const [plain, json] = await Promise.all([
      runSwarm(['status', id.slice(0, 8), '--watch', '--home', a.home]),
      runSwarm(['status', id.slice(0, 8), '--watch', '--json', '--home', a.home])
    ])
    expect(plain.exitCode, `${plain.stdout}\n${plain.stderr}`).toBe(0)
    expect(plain.stdout).not.toContain('\x1b')
    expect(plain.stdout.trim().split('\n').at(-1)).toMatch(new RegExp(`^job ${id.slice(0, 12)} done: `))
    expect(json.exitCode, json.stderr).toBe(0)
    const objects = json.stdout.trim().split('\n').map(l => JSON.parse(l) as JobStatus)
    expect(objects.length).toBeGreaterThanOrEqual(2)
    expect(objects.every(o => o.id === id && Array.isArray(o.chunkList))).toBe(true)
    expect(objects.at(-1)).toMatchObject({ state: 'done', framesDone: objects.at(-1)?.totalFrames, fps: 0 })
    // While it ran, the speed was the sum of what the holders of its leased chunks reported.
    const running = objects.filter(o => o.state === 'encoding')
    for (const o of running) {
      const sum = (o.chunkList ?? []).filter(c => c.state === 'leased').reduce((s, c) => s + (c.fps ?? 0), 0)
      expect(o.fps).toBeCloseTo(sum, 0)
    }
  })

  it('is in the help', async () => {
    expect((await runSwarm(['status', '--help'])).stdout).toContain('--watch')
    const main = await runSwarm(['--help'])
    expect(main.stdout).toMatch(/swarm peers/)
  })
})

describe('swarm peers', () => {
  it('lists each connected peer with its addresses, ping latency and the chunks it encodes for this node', async () => {
    const added = await runSwarm(['add', fx.openGop10bit, '--preset superfast --crf 33', '--home', a.home, '--output', join(root, 'peers.mkv'), '--json'])
    expect(added.exitCode).toBe(0)
    const id = (JSON.parse(added.stdout) as { job: JobStatus }).job.id
    let seenEncoding: PeersJson['peers'][number]['encoding'] = []
    let last: PeersJson | undefined
    for (let i = 0; i < 100 && seenEncoding.length === 0; i++) {
      const r = await runSwarm(['peers', '--home', a.home, '--json'])
      expect(r.exitCode).toBe(0)
      last = JSON.parse(r.stdout) as PeersJson
      seenEncoding = last.peers.find(p => p.id === b.peerId)?.encoding ?? []
      if (seenEncoding.length === 0) await new Promise(r => setTimeout(r, 100))
    }
    expect(last?.peerId).toBe(a.peerId)
    const peer = last?.peers.find(p => p.id === b.peerId)
    expect(peer?.addresses.length).toBeGreaterThan(0)
    for (const addr of peer?.addresses ?? []) expect(addr).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+/)
    expect(typeof peer?.latencyMs).toBe('number')
    expect(peer?.latencyMs).toBeGreaterThanOrEqual(0)
    expect(peer?.latencyMs).toBeLessThan(2000)
    expect(seenEncoding[0]).toMatchObject({ jobId: id })
    expect(seenEncoding[0]?.frames).toBeGreaterThan(0)

    const text = await runSwarm(['peers', '--home', a.home])
    expect(text.exitCode).toBe(0)
    expect(text.stdout).toContain(`this node ${a.peerId}`)
    expect(text.stdout).toContain(b.peerId)
    expect(text.stdout).toMatch(/latency {3}\d+ ms/)
    expect(text.stdout).toMatch(/address {3}\/ip4\/127\.0\.0\.1\/tcp\/\d+/)
    // Wait for the job, so the nodes stop with nothing in flight.
    expect((await runSwarm(['status', id, '--watch', '--json', '--home', a.home])).exitCode).toBe(0)
  })

  it('says to start a node when none runs, and refuses arguments', async () => {
    const none = await runSwarm(['peers', '--home', join(root, 'nobody')])
    expect(none.exitCode).toBe(1)
    expect(none.stderr).toMatch(/no swarm node is running/)
    const extra = await runSwarm(['peers', 'x', '--home', a.home])
    expect(extra.exitCode).toBe(2)
  })
})
