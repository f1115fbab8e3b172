import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BanList, BANS_FILE, FIRST_BAN_MS, MAX_BAN_MS, MAX_ACTIVE_BANS, MAX_BAN_RECORDS, MAX_COUNTED_PEERS, STRIKES_TO_BAN, STRIKE_WINDOW_MS, VIOLATIONS_TO_BAN } from '../../src/swarm/index.js'
import { jobId, PEER_B, PEER_C } from '../helpers/records.js'

const H = 60 * 60_000
let root: string
beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'swarm-bans-')) })
afterAll(async () => { await rm(root, { recursive: true, force: true }) })

function list (name: string, clock: { t: number }, log: string[] = []): BanList {
  return new BanList({ file: join(root, name, BANS_FILE), now: () => clock.t, log: (l) => { log.push(l) } })
}

describe('BanList', () => {
  it('bans for an hour, doubles on each later ban up to a day, and adds no strike while a ban holds', async () => {
    const clock = { t: 1_000_000 }
    const log: string[] = []
    const bans = list('doubling', clock, log)
    await bans.load()
    expect(bans.report({ peer: PEER_B, jobId: jobId('1'), reason: 'bad result' }).until).toBe(clock.t + FIRST_BAN_MS)
    // Its other uploads, already on their way, fail too: same ban, no second strike, logged once.
    clock.t += 1000
    expect(bans.report({ peer: PEER_B, jobId: jobId('2'), reason: 'bad result again' })).toMatchObject({ strikes: 1, jobs: [jobId('1'), jobId('2')] })
    expect(log.filter(l => l.includes('banned ')).length).toBe(1)
    expect(log[0]).toMatch(/^swarm: banned [^ ]+ for 1 h and from 1{8,}: bad result$/)
    const lengths: number[] = []
    for (let i = 0; i < 7; i++) {
      clock.t = bans.list()[0]!.until + 1
      expect(bans.isBanned(PEER_B)).toBe(false)
      const r = bans.report({ peer: PEER_B, reason: 'again' })
      lengths.push((r.until - r.since) / H)
    }
    expect(lengths).toEqual([2, 4, 8, 16, 24, 24, 24])
    expect(MAX_BAN_MS).toBe(24 * H)
    await bans.flush()
  })

  it('keeps a peer off the job it lied about after its node-wide ban is over, and never bans anyone else', async () => {
    const clock = { t: 0 }
    const bans = list('job', clock)
    await bans.load()
    bans.report({ peer: PEER_B, jobId: jobId('1'), reason: 'bad result' })
    expect(bans.isBanned(PEER_B)).toBe(true)
    expect(bans.isBanned(PEER_C)).toBe(false)
    clock.t += FIRST_BAN_MS + 1
    expect(bans.isBanned(PEER_B)).toBe(false)
    expect(bans.isBanned(PEER_B, jobId('2'))).toBe(false)
    expect(bans.isBanned(PEER_B, jobId('1'))).toBe(true)
    expect(bans.list()).toMatchObject([{ peer: PEER_B, active: false, jobs: [jobId('1')] }])
    await bans.flush()
  })

  it('is kept in the home across restarts, written 0600 through a temporary file, and lifted for good', async () => {
    const clock = { t: 5_000 }
    const first = list('persist', clock)
    await first.load()
    first.report({ peer: PEER_B, jobId: jobId('1'), reason: 'sent a manifest as a segment' })
    await first.flush()
    const file = join(root, 'persist', BANS_FILE)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(existsSync(`${file}.tmp`)).toBe(false)
    const again = list('persist', clock)
    await again.load()
    expect(again.isBanned(PEER_B)).toBe(true)
    expect(again.list()[0]).toMatchObject({ reason: 'sent a manifest as a segment', strikes: 1 })
    expect(again.lift(PEER_B)).toBe(true)
    expect(again.lift(PEER_B)).toBe(false)
    await again.flush()
    const third = list('persist', clock)
    await third.load()
    expect(third.isBanned(PEER_B, jobId('1'))).toBe(false)
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ version: 1, bans: [] })
  })

  it('bans a peer after VIOLATIONS_TO_BAN protocol violations, not after one', async () => {
    const clock = { t: 0 }
    const bans = list('violations', clock)
    await bans.load()
    for (let i = 1; i < VIOLATIONS_TO_BAN; i++) bans.violation(PEER_B, `frame ${i} does not parse`)
    expect(bans.isBanned(PEER_B)).toBe(false)
    bans.violation(PEER_B, 'the last straw')
    expect(bans.isBanned(PEER_B)).toBe(true)
    expect(bans.list()[0]?.reason).toMatch(/^10 requests that broke the protocol within 10 min; the last: the last straw$/)
    await bans.flush()
  })

  it('bans a peer after STRIKES_TO_BAN slow transfers within the hour, not after two; strikes an hour apart do not add up', async () => {
    const clock = { t: 0 }
    const log: string[] = []
    const bans = list('strikes', clock, log)
    await bans.load()
    bans.strike({ peer: PEER_B, jobId: jobId('1'), reason: 'served a segment too slowly' })
    clock.t += STRIKE_WINDOW_MS
    bans.strike({ peer: PEER_B, jobId: jobId('1'), reason: 'served a segment too slowly' })
    bans.strike({ peer: PEER_B, jobId: jobId('1'), reason: 'served a segment too slowly' })
    expect(bans.isBanned(PEER_B)).toBe(false)
    expect(STRIKES_TO_BAN).toBe(3)
    bans.strike({ peer: PEER_B, jobId: jobId('2'), reason: 'served a segment too slowly' })
    expect(bans.isBanned(PEER_B)).toBe(true)
    expect(bans.list()[0]).toMatchObject({ reason: '3 transfers slower than the deadline within 1 h; the last: served a segment too slowly', jobs: [jobId('2')] })
    expect(log.filter(l => l.startsWith('swarm: strike '))).toHaveLength(4)
    // Strikes have their own bound: a flood of fresh ids with one strike each keeps MAX_COUNTED_PEERS.
    for (let i = 0; i < MAX_COUNTED_PEERS + 100; i++) bans.strike({ peer: `12D3KooWfresh${i}`, reason: 'slow' })
    expect((bans as unknown as { strikes: { size: number } }).strikes.size).toBe(MAX_COUNTED_PEERS)
    await bans.flush()
  })

  it('keeps a liar banned through a flush of 1,100 fresh ids each banned after it, and through 4,200 (past MAX_ACTIVE_BANS)', async () => {
    const clock = { t: 0 }
    const bans = list('flush', clock)
    await bans.load()
    const liar = PEER_C
    bans.report({ peer: liar, jobId: jobId('1'), reason: 'failed verification' })
    let evictedAfter: number | undefined
    for (let i = 0; i < 1100; i++) {
      clock.t += 10
      // Each fresh id earns its ban the cheapest way: ten malformed requests.
      for (let v = 0; v < VIOLATIONS_TO_BAN; v++) bans.violation(`12D3KooWflood${i}`, 'bad frame')
      if (evictedAfter === undefined && !bans.isBanned(liar)) evictedAfter = i + 1
    }
    // Before: evicted after 1,024 fresh bans (the oldest active ban went first).
    expect(evictedAfter).toBeUndefined()
    expect(bans.isBanned(liar)).toBe(true)
    expect(bans.isBanned(liar, jobId('1'))).toBe(true)
    for (let i = 1100; i < MAX_ACTIVE_BANS + 104; i++) { clock.t += 10; bans.report({ peer: `12D3KooWflood${i}`, reason: 'sybil' }) }
    const active = bans.list().filter(b => b.active)
    expect(active.length).toBe(MAX_ACTIVE_BANS)
    expect(bans.isBanned(liar)).toBe(true)
    // The one just banned stays too: the flood pushes out its own, most recent first.
    expect(bans.isBanned(`12D3KooWflood${MAX_ACTIVE_BANS + 103}`)).toBe(true)
    // Once over, the bans are bounded as before: at most MAX_BAN_RECORDS finished ones kept.
    clock.t += 2 * FIRST_BAN_MS
    bans.report({ peer: PEER_B, reason: 'late' })
    expect(bans.list().length).toBeLessThanOrEqual(MAX_BAN_RECORDS + 1)
    await bans.flush()
  })

  it('starts empty from a file it cannot read, skips records that do not parse, and keeps at most MAX_BAN_RECORDS finished bans', async () => {
    const clock = { t: 0 }
    const dir = join(root, 'broken')
    await rm(dir, { recursive: true, force: true })
    const { mkdir } = await import('node:fs/promises')
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, BANS_FILE), '{ not json')
    const log: string[] = []
    const broken = list('broken', clock, log)
    await broken.load()
    expect(broken.list()).toEqual([])
    expect(log.some(l => l.includes('ignoring'))).toBe(true)
    await writeFile(join(dir, BANS_FILE), JSON.stringify({ version: 1, bans: [{ peer: PEER_B, reason: 'x', since: 0, until: FIRST_BAN_MS, strikes: 1, jobs: [] }, { peer: 7 }] }))
    const partly = list('broken', clock)
    await partly.load()
    expect(partly.list().map(b => b.peer)).toEqual([PEER_B])
    for (let i = 0; i < MAX_BAN_RECORDS + 10; i++) partly.report({ peer: `peer-${i}`, reason: 'sybil' })
    // All active: none is ended early to make room.
    expect(partly.list().length).toBe(MAX_BAN_RECORDS + 11)
    clock.t += 2 * FIRST_BAN_MS
    partly.report({ peer: 'one-more', reason: 'sybil' })
    expect(partly.list().filter(b => !b.active).length).toBe(0)
    expect((partly as unknown as { records: Map<string, unknown> }).records.size).toBe(MAX_BAN_RECORDS + 1)
    await partly.flush()
  })
})
