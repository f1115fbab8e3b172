/**
 * `npm run corpus`: every file of the real-file corpus (scripts/corpus.ts) through a real two-node
 * swarm on 127.0.0.1 (mDNS and UPnP off), one `swarm add FILE SETTINGS --wait` at a time on the
 * first node, each output judged against its source (scripts/corpus-judge.ts). Prints each file's
 * judge rows and then a table: file, result, seconds, reasons.
 *
 *   done-right  the job finished and the judge passed every check
 *   done-wrong  the job finished but the judge failed a check (the reasons say which)
 *   failed      `swarm add` exited 1 (the job failed), or gave no answer in time
 *   refused     `swarm add` exited 2 with a message (e.g. a source it will not take)
 *
 * Options: --only NAME (repeatable), --settings "X264 SETTINGS", --timeout SECONDS (per file),
 * --keep (leave the node homes and outputs), --quiet (no judge rows, only the table).
 */
import { execa } from 'execa'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { ensureCorpus, type CorpusFile } from './corpus.js'
import { formatJudgement, judge, type Judgement } from './corpus-judge.js'
import { runSwarm, startLocalNode, SWARM_CLI, type LocalNode } from './local-swarm.js'

export const CORPUS_SETTINGS = '--preset ultrafast --crf 26'

export type CorpusResult = 'done-right' | 'done-wrong' | 'failed' | 'refused'

export interface CorpusRow {
  name: string
  result: CorpusResult
  /** Wall time of `swarm add --wait`. */
  seconds: number
  /** Wall time of the judge. */
  judgeSeconds: number
  /** Why it is not done-right: the judge's failed rows, the job's error, or the refusal message. */
  reasons: string[]
  judgement?: Judgement
  /** What `swarm add` printed on stderr (progress, fidelity summary, errors). */
  addStderr: string
}

export interface CorpusRunOptions {
  only?: string[]
  settings?: string
  /** Per file: a job that takes longer is cancelled and counted as failed. */
  timeoutMs?: number
  /** Lines as the run goes (fetching, each file's start and judge rows). */
  log?: (line: string) => void
  keep?: boolean
  /** Called after each file, e.g. to print its row at once. */
  onRow?: (row: CorpusRow) => void
}

/** Polls (each answer ~1 ms on the node) until the first node lists the second as a peer. */
async function waitForPeer (node: LocalNode, peerId: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const r = await runSwarm(['status', '--home', node.home, '--json'])
    if (r.exitCode === 0 && (JSON.parse(r.stdout) as { peers: Array<{ id: string }> }).peers.some(p => p.id === peerId)) return
    if (Date.now() > until) throw new Error(`the two corpus nodes did not connect within ${timeoutMs / 1000} s`)
    await new Promise(resolvePromise => setTimeout(resolvePromise, 200))
  }
}

const usefulLines = (stderr: string): string[] => stderr.split('\n').map(l => l.trim()).filter(l => l !== '' && !/^run `swarm \w+ --help`/.test(l))

async function runOne (f: CorpusFile, node: LocalNode, outDir: string, o: CorpusRunOptions): Promise<CorpusRow> {
  const settings = o.settings ?? CORPUS_SETTINGS
  const output = join(outDir, `${f.name}.mkv`)
  const started = performance.now()
  const add = await execa(process.execPath, [SWARM_CLI, 'add', f.file, settings, '--home', node.home, '--output', output, '--wait'], {
    reject: false, stdin: 'ignore', timeout: o.timeoutMs ?? 180_000, env: { NO_COLOR: '1' }
  })
  const seconds = (performance.now() - started) / 1000
  const base = { name: f.name, seconds, judgeSeconds: 0, addStderr: add.stderr }
  if (add.timedOut) {
    const id = /job ([0-9a-f]{64})/.exec(add.stdout)?.[1]
    if (id !== undefined) await runSwarm(['cancel', id, '--home', node.home])
    return { ...base, result: 'failed', reasons: [`no result within ${seconds.toFixed(0)} s (job ${id?.slice(0, 8) ?? 'never queued'} cancelled)`] }
  }
  if (add.exitCode === 2) {
    const message = usefulLines(add.stderr).join(' / ')
    return { ...base, result: 'refused', reasons: [message === '' ? '(exit 2 without a message)' : message] }
  }
  if (add.exitCode !== 0) {
    const lines = usefulLines(add.stderr)
    const failedLine = lines.filter(l => /^job \S+ failed: /.test(l)).at(-1) ?? lines.slice(-3).join(' / ')
    return { ...base, result: 'failed', reasons: [`exit ${add.exitCode ?? add.signal ?? '?'}: ${failedLine}`] }
  }
  const judgeStarted = performance.now()
  const workDir = join(outDir, `judge-${f.name}`)
  await mkdir(workDir, { recursive: true })
  const judgement = await judge(f.file, output, { workDir })
  const judgeSeconds = (performance.now() - judgeStarted) / 1000
  if (o.keep !== true) await rm(workDir, { recursive: true, force: true })
  return { ...base, judgeSeconds, judgement, result: judgement.ok ? 'done-right' : 'done-wrong', reasons: judgement.reasons }
}

/** Fetches (or finds cached) the corpus, starts two nodes, runs every file, stops the nodes. */
export async function runCorpus (o: CorpusRunOptions = {}): Promise<{ rows: CorpusRow[], seconds: number, fetchSeconds: number }> {
  const log = o.log ?? (() => {})
  const t0 = performance.now()
  const files = await ensureCorpus({ ...(o.only !== undefined ? { only: o.only } : {}), log })
  const fetchSeconds = (performance.now() - t0) / 1000
  const root = await mkdtemp(join(tmpdir(), 'swarm-corpus-run-'))
  const nodes: LocalNode[] = []
  const rows: CorpusRow[] = []
  try {
    const first = await startLocalNode(join(root, 'n1'))
    nodes.push(first)
    const second = await startLocalNode(join(root, 'n2'), { bootstrap: [first.addresses[0] as string] })
    nodes.push(second)
    await waitForPeer(first, second.peerId)
    log(`corpus: two nodes up (${first.peerId.slice(-8)}, ${second.peerId.slice(-8)}) in ${root}`)
    const outDir = join(root, 'out')
    await mkdir(outDir, { recursive: true })
    for (const f of files) {
      log(`corpus: ${f.name} (${f.source.kind === 'deb' ? f.source.pkg : f.source.spec} ${f.version}, ${f.size} bytes)`)
      const row = await runOne(f, first, outDir, o)
      rows.push(row)
      if (row.judgement !== undefined) log(formatJudgement(row.judgement).split('\n').map(l => `  ${l}`).join('\n'))
      log(`  => ${row.result} in ${row.seconds.toFixed(1)} s${row.reasons.length > 0 ? `: ${row.reasons.join('; ')}` : ''}`)
      o.onRow?.(row)
    }
  } finally {
    await Promise.allSettled(nodes.map(async n => await n.stop()))
    if (o.keep !== true) await rm(root, { recursive: true, force: true })
    else log(`corpus: kept ${root}`)
  }
  return { rows, seconds: (performance.now() - t0) / 1000, fetchSeconds }
}

/** The result table: file, result, seconds (add / judge), reasons. */
export function formatCorpusTable (rows: CorpusRow[]): string {
  const w = Math.max(4, ...rows.map(r => r.name.length))
  const head = `${'file'.padEnd(w)}  ${'result'.padEnd(10)}  ${'add s'.padStart(6)}  ${'judge s'.padStart(7)}  reasons`
  return [head, ...rows.map(r => `${r.name.padEnd(w)}  ${r.result.padEnd(10)}  ${r.seconds.toFixed(1).padStart(6)}  ${r.judgeSeconds.toFixed(1).padStart(7)}  ${r.reasons.join('; ')}`)].join('\n')
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      only: { type: 'string', multiple: true },
      settings: { type: 'string', default: CORPUS_SETTINGS },
      timeout: { type: 'string', default: '180' },
      keep: { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false }
    }
  })
  const say = (line: string): void => { process.stderr.write(`${line}\n`) }
  runCorpus({
    ...(values.only !== undefined ? { only: values.only } : {}),
    settings: values.settings,
    timeoutMs: Number(values.timeout) * 1000,
    keep: values.keep,
    log: values.quiet ? (l) => { if (l.startsWith('corpus:')) say(l) } : say
  }).then(({ rows, seconds, fetchSeconds }) => {
    process.stdout.write(`${formatCorpusTable(rows)}\n`)
    const count = (r: string): number => rows.filter(x => x.result === r).length
    process.stdout.write(`${rows.length} files in ${seconds.toFixed(0)} s (${fetchSeconds.toFixed(0)} s of it fetching or checking the cache): ${count('done-right')} done-right, ${count('refused')} refused, ${count('done-wrong')} done-wrong, ${count('failed')} failed\n`)
    process.exitCode = rows.every(r => r.result === 'done-right' || r.result === 'refused') ? 0 : 1
  }, (err: unknown) => { say(`corpus: ${(err as Error).message}`); process.exit(2) })
}
