import { spawn } from 'node:child_process'
import { setPriority } from 'node:os'
import type { Readable } from 'node:stream'
import { execa, type Options, type ResultPromise } from 'execa'
import { AbortError, ToolError } from './errors.js'

/** Debian package that ships each tool, for the "how to fix it" half of an error. */
const PACKAGE_OF: Record<string, string> = {
  ffmpeg: 'ffmpeg',
  ffprobe: 'ffmpeg',
  x264: 'x264',
  x265: 'x265',
  SvtAv1EncApp: 'svt-av1',
  aomenc: 'aom-tools',
  mkvmerge: 'mkvtoolnix',
  mkvextract: 'mkvtoolnix',
  prlimit: 'util-linux',
  chrt: 'util-linux',
  setpriv: 'util-linux'
}

/**
 * Tools that put their own threads in a real-time class when they can: SVT-AV1 run as root gives
 * every thread SCHED_FIFO priority 99, and then an encode holds its core against the node itself
 * (a worker's heartbeats, an originator's checks: a 3 s picture check took 20 s beside one, as
 * Linux leaves other work 5% of a core). As root they run without CAP_SYS_NICE (setpriv), so
 * their request fails and their threads keep the class they were started in.
 */
const TAKES_REALTIME = new Set(['SvtAv1EncApp'])

/** Whether this process is root (CAP_SETPCAP and CAP_SYS_NICE with it): only then can and must a tool's CAP_SYS_NICE be dropped. */
const runningAsRoot = (): boolean => process.getuid?.() === 0

/** The tool's command line with what keeps it out of the real-time classes (TAKES_REALTIME), if it needs it. */
export function withoutRealtime (tool: string, args: string[]): string[] {
  if (!TAKES_REALTIME.has(tool) || !runningAsRoot()) return [tool, ...args]
  return ['setpriv', '--bounding-set=-sys_nice', '--inh-caps=-sys_nice', '--', tool, ...args]
}

export interface RunOptions {
  signal?: AbortSignal
  cwd?: string
  /** Extra environment; the parent environment is kept. */
  env?: Record<string, string>
}

function missingToolError (tool: string, cause: unknown): ToolError {
  const pkg = PACKAGE_OF[tool] ?? tool
  return new ToolError(tool, `${tool} was not found on PATH; install it with: apt-get install -y ${pkg}`, '', { cause, missing: true })
}

/** Turns an execa failure into an error that names the tool and carries its stderr. */
export function toToolError (tool: string, err: unknown, what: string): Error {
  const e = err as { code?: string, isCanceled?: boolean, isTerminated?: boolean, stderr?: unknown, shortMessage?: string, exitCode?: number, signal?: string }
  if (e?.code === 'ENOENT') {
    const wrapper = /\b(prlimit|chrt|setpriv)\b/.exec(String((err as Error)?.message))?.[1]
    return missingToolError(wrapper ?? tool, err)
  }
  // Under a memory limit the tool is started by prlimit, which says so when it cannot find it.
  if (e?.exitCode === 127 && typeof e?.stderr === 'string' && /^(prlimit|chrt|setpriv): failed to execute/m.test(e.stderr)) return missingToolError(tool, err)
  if (e?.isCanceled === true || (e as { cause?: { name?: string } })?.cause?.name === 'AbortError') return new AbortError(`${what}: aborted`)
  // Runs started with `lines: true` keep stderr as an array of lines.
  const stderr = typeof e?.stderr === 'string' ? e.stderr : Array.isArray(e?.stderr) ? e.stderr.join('\n') : ''
  const tail = stderr.trim().split('\n').slice(-6).join('\n')
  const code = e?.exitCode !== undefined ? ` (exit ${e.exitCode})` : e?.signal !== undefined ? ` (signal ${e.signal})` : ''
  return new ToolError(tool, `${what}: ${tool} failed${code}${tail !== '' ? `:\n${tail}` : ''}`, stderr, { cause: err, ...(e?.exitCode === undefined && e?.signal !== undefined ? { killedBy: e.signal } : {}) })
}

/** Runs a tool to completion with an argument array (never a shell) and returns stdout. */
export async function runTool (tool: string, args: string[], what: string, options: RunOptions = {}): Promise<{ stdout: string, stderr: string }> {
  const result = await run(tool, args, what, options, 'utf8')
  return { stdout: String(result.stdout), stderr: String(result.stderr) }
}

/**
 * As runTool, for a tool whose stdout is bytes (raw pictures, an H.264 stream): returned as they
 * came, never decoded as text nor stripped of a final 0x0A. `maxBuffer` bounds stdout (default 512 MiB).
 */
export async function runToolBytes (tool: string, args: string[], what: string, options: RunOptions & { maxBuffer?: number } = {}): Promise<{ stdout: Buffer, stderr: string }> {
  const result = await run(tool, args, what, options, 'buffer')
  return { stdout: Buffer.from(result.stdout as Uint8Array), stderr: Buffer.from(result.stderr as Uint8Array).toString('utf8') }
}

async function run (tool: string, args: string[], what: string, options: RunOptions & { maxBuffer?: number }, encoding: 'utf8' | 'buffer'): Promise<{ stdout: unknown, stderr: unknown }> {
  if (options.signal?.aborted === true) throw new AbortError(`${what}: aborted`)
  const [file, ...rest] = withoutRealtime(tool, args) as [string, ...string[]]
  try {
    return await execa(file, rest, {
      cancelSignal: options.signal,
      cwd: options.cwd,
      env: options.env,
      encoding,
      // Output is returned as the tool wrote it: execa would otherwise drop a final newline, and
      // from bytes a final 0x0A (a picture's last pixel of value 10).
      stripFinalNewline: false,
      maxBuffer: options.maxBuffer ?? 512 * 1024 * 1024,
      // Tools must not inherit the terminal: a stray prompt would hang a daemon.
      stdin: 'ignore'
    })
  } catch (err) {
    throw toToolError(tool, err, what)
  }
}

/**
 * The command line that runs a tool under a memory limit (memory.ts) and, when `idle`, in Linux's
 * SCHED_IDLE class: `chrt --idle 0 prlimit --data=BYTES -- tool args…`. Each wrapper sets its
 * part on itself and execs the next, so the process id is the tool's (lowerPriority and kill reach
 * it), and every thread the tool starts inherits both. SCHED_IDLE rather than a nice value for an
 * encoder: nice weighs each thread, and SVT-AV1's 17 threads at nice 10 outweighed the node's
 * single-threaded picture check (a 3 s check took 20 s beside one), while an idle-class thread
 * runs only when nothing else of the machine wants the core. No limit and not idle: the tool itself.
 */
export function limitedCommand (tool: string, args: string[], memoryLimitBytes?: number, idle = false): { file: string, args: string[] } {
  const own = withoutRealtime(tool, args)
  const limited = memoryLimitBytes === undefined ? own : ['prlimit', `--data=${Math.floor(memoryLimitBytes)}`, '--', ...own]
  const command = idle ? ['chrt', '--idle', '0', ...limited] : limited
  return { file: command[0] as string, args: command.slice(1) }
}

/**
 * Whether a tool that ran under a memory limit failed for want of memory: what x264, ffmpeg and
 * glibc say when an allocation or a thread's stack is refused, or a signal that a refused
 * allocation ends in (a null pointer used, abort()). A stop of ours is an AbortError, not this.
 */
export function ranOutOfMemory (err: unknown): boolean {
  if (!(err instanceof ToolError) || err.missing) return false
  if (err.killedBy !== undefined && ['SIGSEGV', 'SIGABRT', 'SIGBUS'].includes(err.killedBy)) return true
  return /malloc of size \d+ failed|allocate memory failed|cannot allocate memory|out of memory|failed to allocate|bad_alloc|ENOMEM|pthread_create failed|failed to create thread/i.test(err.stderr)
}

/** Starts a tool for streaming use (or to read its exit code and output itself); the caller owns the process. */
export function spawnTool<O extends Options = Options> (tool: string, args: string[], options?: O & { memoryLimitBytes?: number, idle?: boolean }): ResultPromise<{} & O> {
  const { memoryLimitBytes, idle, ...rest } = options ?? {} as O & { memoryLimitBytes?: number, idle?: boolean }
  const command = limitedCommand(tool, args, memoryLimitBytes, idle === true)
  // It rejects on failure (execa's default): a caller's `reject: false` is the one option not honoured.
  return execa(command.file, command.args, { ...rest, reject: true } as unknown as O)
}

/**
 * Lowers a just-started tool's CPU priority (a nice value, 1-19). Linux keeps one per thread and
 * new threads inherit it; a tool creates its threads after loading its libraries and reading its
 * input's header, tens of milliseconds after exec, by which time this has run.
 */
export function lowerPriority (pid: number | undefined, niceness: number | undefined): void {
  if (pid === undefined || niceness === undefined || niceness <= 0) return
  try { setPriority(pid, Math.min(19, niceness)) } catch { /* already gone: its own failure is reported elsewhere */ }
}

/** The first process of a two-process pipe; see startPipeSource. */
export interface PipeSource {
  pid: number | undefined
  /** Its stdout: hand it to the next process as stdin (execa passes it straight through), then call release(). */
  stdout: Readable
  /** Drops this process's copy of the pipe, so the writer sees EPIPE if the reader dies. */
  release: () => void
  kill: () => void
  /** Settles when it exits: rejects with a ToolError (its stderr) on failure, AbortError when aborted. */
  done: Promise<void>
}

/**
 * Starts the writing half of a pipe between two tools, with an argument array (never a shell).
 * execa keeps a Node stream between processes it pipes together; this child's stdout is a plain
 * OS pipe instead, so the reader gets it as its own stdin and the bytes go process to process as
 * in a shell pipe, never through this process (raw video is 1.4 MB per 720p frame: through Node
 * it cost a worker's core about 7% in copies and garbage collection).
 */
export function startPipeSource (tool: string, args: string[], what: string, signal?: AbortSignal, memoryLimitBytes?: number, idle = false): PipeSource {
  const command = limitedCommand(tool, args, memoryLimitBytes, idle)
  const child = spawn(command.file, command.args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-65_536) })
  const kill = (): void => { child.kill('SIGKILL') }
  signal?.addEventListener('abort', kill, { once: true })
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => {
      signal?.removeEventListener('abort', kill)
      reject(toToolError(tool, err, what))
    })
    child.once('close', (code, sig) => {
      signal?.removeEventListener('abort', kill)
      if (signal?.aborted === true) { reject(new AbortError(`${what}: aborted`)); return }
      if (code === 0) { resolve(); return }
      reject(toToolError(tool, { stderr, ...(code !== null ? { exitCode: code } : { signal: sig ?? '?' }) }, what))
    })
  })
  return { pid: child.pid, stdout: child.stdout, release: () => { child.stdout.destroy() }, kill, done }
}
