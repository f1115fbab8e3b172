import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PROJECT_ROOT, SWARM_CLI } from '../../scripts/local-swarm.js'

let root: string
beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'swarm-service-')) })
afterAll(async () => { await rm(root, { recursive: true, force: true }) })

/** The [Service] settings of a unit file (the last value of a key wins, as in systemd). */
function serviceSettings (unit: string): Record<string, string> {
  const out: Record<string, string> = {}
  let section = ''
  for (const raw of unit.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const s = /^\[(.+)\]$/.exec(line)
    if (s !== null) { section = s[1] as string; continue }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line)
    if (section === 'Service' && kv !== null) out[kv[1] as string] = kv[2] as string
  }
  return out
}

describe('docs/swarm.service', () => {
  it('runs swarm join with its SWARM_HOME, and the node stops cleanly on the unit\'s KillSignal within TimeoutStopSec', async () => {
    const unit = serviceSettings(await readFile(join(PROJECT_ROOT, 'docs', 'swarm.service'), 'utf8'))
    expect(unit.User).toMatch(/^\S+$/)
    expect(unit.Restart).toBe('on-failure')
    expect(unit.KillSignal).toBe('SIGINT')
    expect(unit.TimeoutStopSec).toBe('30')
    expect(unit.Environment).toMatch(/^SWARM_HOME=\//)
    const [nodeBin, script, ...args] = (unit.ExecStart ?? '').split(/\s+/)
    expect(nodeBin).toMatch(/\/node$/)
    expect(script).toMatch(/\/dist\/cli\/swarm\.js$/)
    expect(args[0]).toBe('join')

    // What the unit runs, with this checkout's Node.js and CLI, a temporary SWARM_HOME, and (as in every test) loopback only, no mDNS.
    const home = join(root, 'home')
    const proc = execa(process.execPath, [SWARM_CLI, ...args, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns'], {
      env: { SWARM_HOME: home }, stdin: 'ignore', reject: false, buffer: false
    })
    let stdout = ''
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`no dashboard line: ${stdout}`)) }, 30_000)
      proc.stdout?.on('data', (d: Buffer) => {
        stdout += d.toString()
        if (/^dashboard: http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/m.test(stdout)) { clearTimeout(timer); resolve() }
      })
    })
    expect(stdout).toContain(`swarm node started (home ${home})`)
    expect(existsSync(join(home, 'control.json'))).toBe(true)

    const started = Date.now()
    proc.kill(unit.KillSignal as NodeJS.Signals)
    const r = await proc
    expect(r.exitCode).toBe(0)
    expect(Date.now() - started).toBeLessThan(Number(unit.TimeoutStopSec) * 1000)
    expect(existsSync(join(home, 'control.json'))).toBe(false)
    expect(existsSync(join(home, 'node.lock'))).toBe(false)
  })
})
