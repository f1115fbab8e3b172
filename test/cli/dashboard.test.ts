import { execa } from 'execa'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ceiling } from '../helpers/wait.js'
import type { DashboardEvent, JobStatus, StatusJson } from '../../src/daemon/index.js'
import { shortPeer } from '../../src/log/index.js'
import { PROJECT_ROOT, runSwarm, startLocalNode, type LocalNode } from '../../scripts/local-swarm.js'
import { ensureFixtures, type Fixtures } from '../fixtures.js'

const RESULTS = join(PROJECT_ROOT, 'test-results')
const CHROMIUM = '/usr/bin/chromium'

let root: string
let fx: Fixtures
let a: LocalNode
let b: LocalNode
let browser: Browser

/** The front-end is built by `npm run build`; the suite's global setup only runs the main tsc, so rebuild it here when stale. */
async function ensureDashboardBuilt (): Promise<void> {
  const built = join(PROJECT_ROOT, 'dist', 'dashboard', 'app.js')
  const src = join(PROJECT_ROOT, 'src', 'dashboard')
  const newest = Math.max(...readdirSync(src).map(f => statSync(join(src, f)).mtimeMs))
  const oldest = Math.min(...['app.js', 'app.css', 'index.html'].map(f => existsSync(join(PROJECT_ROOT, 'dist', 'dashboard', f)) ? statSync(join(PROJECT_ROOT, 'dist', 'dashboard', f)).mtimeMs : 0))
  if (!existsSync(built) || oldest < newest) await execa('npm', ['run', '--silent', 'build:dashboard'], { cwd: PROJECT_ROOT })
}

/** A GET with chosen headers: the status, the content type, and the body (of an event stream: up to its first event). */
async function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, type: string, first: string }> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      const type = res.headers['content-type'] ?? ''
      let text = ''
      const done = (): void => { resolve({ status: res.statusCode ?? 0, type, first: text }) }
      res.on('data', (d: Buffer) => {
        text += d.toString()
        // An event stream never ends: one whole event is enough.
        if (type.startsWith('text/event-stream') && /^data: .*\n\n/m.test(text)) { done(); req.destroy() }
      })
      res.on('end', done)
    })
    req.on('error', reject)
    req.end()
  })
}

beforeAll(async () => {
  await ensureDashboardBuilt()
  fx = await ensureFixtures()
  root = await mkdtemp(join(tmpdir(), 'swarm-dashboard-'))
  // The originator's own worker waits 30 ms per frame, so its chunks stay leased long enough to watch.
  a = await startLocalNode(join(root, 'a'), { env: { SWARM_TEST_ENCODER: 'delay:30' } })
  b = await startLocalNode(join(root, 'b'), { bootstrap: [a.addresses[0] as string] })
  for (let i = 0; i < 100; i++) {
    const s = JSON.parse((await runSwarm(['status', '--home', a.home, '--json'])).stdout) as StatusJson
    if (s.peers.some(p => p.id === b.peerId)) break
    await new Promise(r => setTimeout(r, 200))
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
})

afterAll(async () => {
  await browser?.close()
  await Promise.allSettled([a?.stop(), b?.stop()])
  if (root !== undefined) await rm(root, { recursive: true, force: true })
})

describe('web dashboard', () => {
  it('swarm join prints a loopback dashboard URL with its token', () => {
    const url = new URL(a.dashboardUrl)
    expect(`${url.protocol}//${url.host}`).toBe(a.controlUrl)
    expect(url.pathname).toBe('/')
    expect(url.searchParams.get('token')).toMatch(/^[0-9a-f]{64}$/)
  })

  it('shows peers and a job whose chunk map changes state live, without a reload', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } })
    const problems: string[] = []
    page.on('pageerror', e => problems.push(`page error: ${e.message}`))
    page.on('console', m => { if (m.type() === 'error') problems.push(`console: ${m.text()}`) })
    const response = await page.goto(a.dashboardUrl)
    expect(response?.status()).toBe(200)
    await page.waitForSelector('#connection[data-connection="live"]', { timeout: 10_000 })
    await page.waitForSelector(`tr[data-peer-id="${b.peerId}"]`, { timeout: 10_000 })
    expect(await page.locator('[data-job-id]').count()).toBe(0)
    // Marks this very document: a reload would lose it.
    await page.evaluate(() => { (globalThis as unknown as { marker: string }).marker = 'first load' })

    const added = await runSwarm(['add', fx.openGop10bit, '--preset superfast --crf 28', '--home', a.home, '--output', join(root, 'out.mkv')])
    expect(added.exitCode).toBe(0)
    const jobId = /job ([0-9a-f]{64})/.exec(added.stdout)?.[1] as string
    expect(jobId).toBeDefined()

    const timeline: string[] = []
    const seen = new Set<string>()
    const leasedHolders = new Set<string>()
    let midShot = false
    let states: string[] = []
    const until = Date.now() + ceiling(45_000)
    for (;;) {
      states = await page.$$eval(`[data-job-id="${jobId}"] [data-chunk-state]`, cells => cells.map(c => c.getAttribute('data-chunk-state') ?? ''))
      if (timeline.at(-1) !== states.join(',')) timeline.push(states.join(','))
      for (const s of states) seen.add(s)
      if (states.includes('leased')) {
        // State, holder and tooltip read together in one call: selecting by state and then reading the
        // tooltip can straddle a re-render (a cell selected as leased, its tooltip already done).
        const cells = await page.$$eval(`[data-job-id="${jobId}"] [data-chunk-state]`, cs => cs.map(c => [c.getAttribute('data-chunk-state') ?? '', c.getAttribute('data-holder') ?? '', c.getAttribute('title') ?? '']))
        for (const [state, holder, title] of cells) if (state === 'leased') leasedHolders.add(`${holder ?? ''} ${title ?? ''}`)
        if (!midShot) { midShot = true; await page.screenshot({ path: join(await resultsDir(), 'dashboard-encoding.png'), fullPage: true }) }
      }
      if (states.length > 0 && states.every(s => s === 'done')) break
      if (Date.now() > until) throw new Error(`the chunk map never showed every chunk done; states seen: ${timeline.join(' | ')}`)
      await new Promise(r => setTimeout(r, 100))
    }

    // Cells went through 'leased' (held by one of our two nodes, named in the tooltip) and ended all 'done'.
    expect(seen.has('leased')).toBe(true)
    expect(timeline.length).toBeGreaterThanOrEqual(3)
    const peerIds = [a.peerId, b.peerId]
    for (const h of leasedHolders) {
      const [holder, ...title] = h.split(' ')
      expect(peerIds).toContain(holder)
      // The page names a peer as every log line and screen does (its own copy of shortPeer).
      expect(title.join(' ')).toContain(`held by ${shortPeer(holder as string)}`)
    }
    const job = JSON.parse((await runSwarm(['status', jobId, '--home', a.home, '--json'])).stdout) as JobStatus
    expect(states.length).toBe(job.chunks.total)
    await page.waitForSelector(`[data-job-id="${jobId}"] .state[data-state="done"]`, { timeout: 30_000 })
    const doneTitles = await page.$$eval(`[data-job-id="${jobId}"] [data-chunk-state]`, cells => cells.map(c => c.getAttribute('title') ?? ''))
    for (const [i, t] of doneTitles.entries()) expect(t).toContain(`encoded by ${shortPeer(job.chunkList?.[i]?.encodedBy ?? '')}`)
    expect(await page.textContent(`[data-job-id="${jobId}"] .job-meta`)).toContain(`240 / 240 frames`)

    // The same document all along: no reload, one navigation.
    expect(await page.evaluate(() => (globalThis as unknown as { marker?: string }).marker)).toBe('first load')
    expect(await page.evaluate(() => performance.getEntriesByType('navigation' as never).length)).toBe(1)
    await page.screenshot({ path: join(await resultsDir(), 'dashboard.png'), fullPage: true })
    expect(problems).toEqual([])
    await page.close()
  })

  it('refuses the page and its files without the token (401) and the event stream from a foreign Origin (403)', async () => {
    const token = new URL(a.dashboardUrl).searchParams.get('token') as string
    for (const path of ['/', '/app.js', '/app.css', '/v1/events']) expect((await get(`${a.controlUrl}${path}`)).status).toBe(401)
    expect((await get(`${a.controlUrl}/?token=${'0'.repeat(64)}`)).status).toBe(401)
    // The query token is only for the dashboard: the API proper still wants the header.
    expect((await get(`${a.controlUrl}/v1/status?token=${token}`)).status).toBe(401)

    const foreign = await get(`${a.controlUrl}/v1/events?token=${token}`, { origin: 'http://evil.example' })
    expect(foreign.status).toBe(403)
    expect(foreign.type).toMatch(/^application\/json/)
    expect((await get(`${a.controlUrl}/?token=${token}`, { host: 'evil.example' })).status).toBe(403)

    // Same origin: a stream whose first event is this node's status, chunk lists included.
    const same = await get(`${a.controlUrl}/v1/events?token=${token}`, { origin: a.controlUrl })
    expect(same.status).toBe(200)
    expect(same.type).toMatch(/^text\/event-stream/)
    const event = JSON.parse(/^data: (.*)$/m.exec(same.first)?.[1] ?? 'null') as DashboardEvent
    expect(event.status.peerId).toBe(a.peerId)
    expect(event.status.jobs.filter(j => j.local).every(j => j.chunkList?.length === j.chunks.total)).toBe(true)
  })
})

async function resultsDir (): Promise<string> {
  await mkdir(RESULTS, { recursive: true })
  return RESULTS
}
