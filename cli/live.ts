import { printable } from './output.js'
import type { ChunkStatus, JobStatus, StatusJson } from '../src/daemon/index.js'
import { shortChunk, shortJob, shortPeer } from '../src/log/index.js'

/**
 * Live progress for `swarm add --wait` and `swarm status --watch`: a redrawn block per job (a bar
 * of frames done, aggregate fps, ETA) and, per peer, what it encodes and how fast. Used only on a
 * terminal without NO_COLOR; elsewhere the commands print plain lines.
 */

/** How often `add --wait` and `status --watch` redraw a live view or print a changed progress line. */
export const REFRESH_MS = 1000

/** True when `stream` is a terminal and NO_COLOR (https://no-color.org) is not set. */
export function liveCapable (stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && (env.NO_COLOR ?? '') === '' && env.TERM !== 'dumb'
}

/** Seconds left at the current aggregate speed; undefined while nothing reports a speed. */
export function etaSeconds (job: Pick<JobStatus, 'totalFrames' | 'framesDone' | 'fps'>): number | undefined {
  const left = Math.max(0, job.totalFrames - job.framesDone)
  if (left === 0) return 0
  return job.fps > 0 ? left / job.fps : undefined
}

/** 75 → "1:15", 3725 → "1:02:05", undefined → "--:--". */
export function formatDuration (seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '--:--'
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`
}

interface Paint { bold: (s: string) => string, dim: (s: string) => string, green: (s: string) => string, red: (s: string) => string, cyan: (s: string) => string }
const ansi = (code: string) => (s: string): string => `\x1b[${code}m${s}\x1b[0m`
const PAINT: Paint = { bold: ansi('1'), dim: ansi('2'), green: ansi('32'), red: ansi('31'), cyan: ansi('36') }
const NO_PAINT: Paint = { bold: s => s, dim: s => s, green: s => s, red: s => s, cyan: s => s }

export interface RenderOptions {
  color: boolean
  /** This node's peer id, to mark its own rows. */
  self?: string
}

export function bar (fraction: number, width: number, p: Paint = NO_PAINT): string {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0))
  const full = Math.round(f * width)
  return p.green('█'.repeat(full)) + p.dim('░'.repeat(width - full))
}

/** Leased chunks grouped by the peer that holds them, with that peer's summed fps. */
export function holders (chunks: ChunkStatus[]): Array<{ peer: string, chunks: ChunkStatus[], fps: number }> {
  const by = new Map<string, ChunkStatus[]>()
  for (const c of chunks) {
    if (c.state !== 'leased' || c.holder === undefined) continue
    by.set(c.holder, [...(by.get(c.holder) ?? []), c])
  }
  return [...by].map(([peer, list]) => ({ peer, chunks: list, fps: list.reduce((s, c) => s + (c.fps ?? 0), 0) }))
    .sort((a, b) => a.peer.localeCompare(b.peer))
}

/** The lines of one job: header with bar, fps and ETA; chunk counts; one line per peer encoding it. */
export function renderJob (raw: JobStatus, o: RenderOptions): string[] {
  // Text from peers goes to the terminal clean; only our own colour codes are added below.
  const job: JobStatus = { ...raw, file: printable(raw.file), settings: printable(raw.settings), output: raw.output === null ? null : printable(raw.output), ...(raw.error !== undefined ? { error: printable(raw.error) } : {}) }
  const p = o.color ? PAINT : NO_PAINT
  const c = job.chunks
  const state = job.state === 'done' ? p.green(job.state) : job.state === 'failed' ? p.red(job.state) : job.state
  const head = `job ${p.bold(shortJob(job.id))} ${state}`
  const lines: string[] = []
  if (job.local) {
    const fraction = job.totalFrames > 0 ? job.framesDone / job.totalFrames : 0
    const tail = job.state === 'done'
      ? `→ ${job.output ?? ''}`
      : job.state === 'failed' ? p.red(job.error ?? '') : `${job.fps.toFixed(1)} fps  ETA ${formatDuration(etaSeconds(job))}`
    lines.push(`${head}  ${bar(fraction, 24, p)} ${String(Math.floor(100 * fraction)).padStart(3)}%  ${job.framesDone}/${job.totalFrames} frames  ${tail}`)
  } else {
    lines.push(`${head}  ${bar(c.total > 0 ? c.done / c.total : 0, 24, p)} ${c.done}/${c.total} chunks  originated by ${shortPeer(job.originator)}`)
  }
  lines.push(p.dim(`  chunks: ${c.done} done, ${c.leased} encoding, ${c.open} open of ${c.total}  ·  ${job.file}`))
  for (const h of holders(job.chunkList ?? [])) {
    const who = `${shortPeer(h.peer)}${h.peer === o.self ? ' (this node)' : ''}`
    const what = h.chunks.map(ch => `#${ch.index} ${ch.framesDone ?? 0}/${ch.frames}`).join(', ')
    lines.push(`  ${p.cyan(who.padEnd(24))} ${h.fps.toFixed(1).padStart(6)} fps  ${what}`)
  }
  return lines
}

/** The whole node for `swarm status --watch`: peers, this node's worker, and every job. */
export function renderStatus (s: StatusJson, detailed: Map<string, JobStatus>, o: RenderOptions): string[] {
  const p = o.color ? PAINT : NO_PAINT
  const lines = [`node ${p.bold(shortPeer(s.peerId))}  ·  ${s.peers.length} peer${s.peers.length === 1 ? '' : 's'}  ·  ${new Date().toISOString().slice(11, 19)} UTC`]
  const active = s.worker.active.map(a => `${shortChunk(a.jobId, a.chunk)} ${a.stage} ${a.framesDone}/${a.frames} ${a.fps.toFixed(1)} fps`)
  lines.push(`  worker (${s.worker.slots} slot${s.worker.slots === 1 ? '' : 's'}): ${active.length > 0 ? active.join(', ') : 'idle'}`)
  if (s.jobs.length === 0) lines.push('', 'no jobs')
  for (const job of s.jobs) lines.push('', ...renderJob(detailed.get(job.id) ?? job, { ...o, self: s.peerId }))
  return lines
}

const ESC_SEQ = /\x1b\[[0-9;?]*[A-Za-z]/y

/** Cuts a line to `width` visible columns, leaving escape sequences intact (so the redraw never wraps). */
export function fit (line: string, width: number): string {
  let out = ''
  let visible = 0
  for (let i = 0; i < line.length;) {
    ESC_SEQ.lastIndex = i
    const esc = ESC_SEQ.exec(line)
    if (esc !== null) { out += esc[0]; i += esc[0].length; continue }
    const ch = String.fromCodePoint(line.codePointAt(i) as number)
    if (visible >= width) { out += '\x1b[0m'; break }
    out += ch
    visible++
    i += ch.length
  }
  return out
}

/** Redraws a block of lines in place on a terminal. */
export class LiveScreen {
  private height = 0
  constructor (private readonly stream: NodeJS.WriteStream) {}

  draw (lines: string[]): void {
    // A pseudo-terminal may report 0 columns: fall back to $COLUMNS, else 80.
    const columns = (this.stream.columns ?? 0) > 0 ? this.stream.columns : Number(process.env.COLUMNS ?? '') || 80
    const width = Math.max(20, columns - 1)
    // The cursor cannot move above the screen's top line: a block taller than the screen is cut.
    const rows = (this.stream.rows ?? 0) > 0 ? this.stream.rows : 24
    const shown = lines.length < rows ? lines : [...lines.slice(0, Math.max(1, rows - 2)), `… ${lines.length - Math.max(1, rows - 2)} more lines (a taller terminal shows them)`]
    const up = this.height > 0 ? `\x1b[${this.height}A\r\x1b[J` : ''
    this.stream.write(up + shown.map(l => fit(l, width)).join('\n') + '\n')
    this.height = shown.length
  }
}
