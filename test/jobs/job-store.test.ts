import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { JobStore, LAZY_WRITE_MS, parseJobRecord } from '../../src/jobs/job-store.js'
import type { JobRecord } from '../../src/jobs/types.js'
import { jobRecord } from '../helpers/job-record.js'

const dirs: string[] = []
afterEach(async () => { for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true }) })

async function tempDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'swarm-store-'))
  dirs.push(dir)
  return dir
}

/** A record created at `createdAt`, so the store's listing order is known. */
function record (id: string, createdAt = 1): JobRecord {
  return { ...jobRecord(id), createdAt, updatedAt: createdAt }
}

describe('job.json records', () => {
  it('reads a record without a version as version 1, and refuses other versions and misfiled records', () => {
    const { version: _, ...unversioned } = record('a')
    expect(parseJobRecord(JSON.stringify(unversioned), 'a')).toEqual(record('a'))
    expect(parseJobRecord(JSON.stringify(record('a')), 'a')).toEqual(record('a'))
    expect(() => parseJobRecord(JSON.stringify({ ...record('a'), version: 2 }), 'a')).toThrow(/unexpected version 2/)
    expect(() => parseJobRecord(JSON.stringify(record('a')), 'b')).toThrow(/holds job a, not b/)
    expect(() => parseJobRecord('{', 'a')).toThrow()
  })
})

describe('JobStore', () => {
  it('writes a change that may wait (a heartbeat) within LAZY_WRITE_MS, once for many, and at once with a change that may not', async () => {
    const dir = await tempDir()
    const store = new JobStore(dir, () => 42)
    const job = record('a', 1)
    await store.create(job)
    const onDisk = async (): Promise<JobRecord> => JSON.parse(await readFile(join(dir, 'a', 'job.json'), 'utf8')) as JobRecord
    for (let i = 0; i < 20; i++) { job.settings = `beat ${i}`; store.touchLazily(job) }
    await new Promise(resolve => setTimeout(resolve, 50))
    expect((await onDisk()).settings).not.toBe('beat 19')
    await new Promise(resolve => setTimeout(resolve, LAZY_WRITE_MS + 200))
    expect((await onDisk()).settings).toBe('beat 19')
    job.settings = 'lazy'
    store.touchLazily(job)
    job.state = 'failed'
    store.touch(job)
    await store.flush()
    expect(await onDisk()).toMatchObject({ settings: 'lazy', state: 'failed' })
  })

  it('writes records atomically with their version and loads them back, skipping unreadable ones', async () => {
    const dir = await tempDir()
    const logs: string[] = []
    const store = new JobStore(dir, () => 42, l => logs.push(l))
    await store.create(record('b', 2))
    await store.create(record('a', 1))
    const written = JSON.parse(await readFile(join(dir, 'a', 'job.json'), 'utf8')) as JobRecord
    expect(written.version).toBe(1)
    expect(await readdir(join(dir, 'a'))).toEqual(['job.json'])
    await mkdir(join(dir, 'broken'))
    await writeFile(join(dir, 'broken', 'job.json'), 'not json')
    const { version: _, ...old } = record('old', 3)
    await mkdir(join(dir, 'old'))
    await writeFile(join(dir, 'old', 'job.json'), JSON.stringify(old))

    const again = new JobStore(dir, () => 42, l => logs.push(l))
    await again.load()
    expect(again.list().map(j => [j.id, j.version])).toEqual([['a', 1], ['b', 1], ['old', 1]])
    expect(logs.filter(l => l.includes('skipping'))).toHaveLength(1)
  })

  it('stamps a touched record and writes it without being asked; remove deletes the folder', async () => {
    const dir = await tempDir()
    let now = 1
    const store = new JobStore(dir, () => now, () => {})
    const job = record('a')
    await store.create(job)
    now = 99
    job.state = 'failed'
    store.touch(job)
    expect(job.updatedAt).toBe(99)
    await store.flush()
    expect(JSON.parse(await readFile(join(dir, 'a', 'job.json'), 'utf8'))).toMatchObject({ state: 'failed', updatedAt: 99 })
    await store.remove('a')
    expect(store.get('a')).toBeUndefined()
    expect(await readdir(dir)).toEqual([])
  })
})
