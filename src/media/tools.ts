import { execa, type Options, type ResultPromise } from 'execa'
import { AbortError, ToolError } from './errors.js'

/** Debian package that ships each tool, for the "how to fix it" half of an error. */
const PACKAGE_OF: Record<string, string> = {
  ffmpeg: 'ffmpeg',
  ffprobe: 'ffmpeg',
  x264: 'x264',
  mkvmerge: 'mkvtoolnix',
  mkvextract: 'mkvtoolnix'
}

export interface RunOptions {
  signal?: AbortSignal
  cwd?: string
  /** Extra environment; the parent environment is kept. */
  env?: Record<string, string>
}

function missingToolError (tool: string, cause: unknown): ToolError {
  const pkg = PACKAGE_OF[tool] ?? tool
  return new ToolError(tool, `${tool} was not found on PATH; install it with: apt-get install -y ${pkg}`, '', { cause })
}

/** Turns an execa failure into an error that names the tool and carries its stderr. */
export function toToolError (tool: string, err: unknown, what: string): Error {
  const e = err as { code?: string, isCanceled?: boolean, isTerminated?: boolean, stderr?: unknown, shortMessage?: string, exitCode?: number }
  if (e?.code === 'ENOENT') return missingToolError(tool, err)
  if (e?.isCanceled === true || (e as { cause?: { name?: string } })?.cause?.name === 'AbortError') return new AbortError(`${what}: aborted`)
  const stderr = typeof e?.stderr === 'string' ? e.stderr : ''
  const tail = stderr.trim().split('\n').slice(-6).join('\n')
  const code = e?.exitCode !== undefined ? ` (exit ${e.exitCode})` : ''
  return new ToolError(tool, `${what}: ${tool} failed${code}${tail !== '' ? `:\n${tail}` : ''}`, stderr, { cause: err })
}

/** Runs a tool to completion with an argument array (never a shell) and returns stdout. */
export async function runTool (tool: string, args: string[], what: string, options: RunOptions = {}): Promise<{ stdout: string, stderr: string }> {
  if (options.signal?.aborted === true) throw new AbortError(`${what}: aborted`)
  try {
    const result = await execa(tool, args, {
      cancelSignal: options.signal,
      cwd: options.cwd,
      env: options.env,
      stripFinalNewline: false,
      maxBuffer: 512 * 1024 * 1024,
      // Tools must not inherit the terminal: a stray prompt would hang a daemon.
      stdin: 'ignore'
    })
    return { stdout: String(result.stdout), stderr: String(result.stderr) }
  } catch (err) {
    throw toToolError(tool, err, what)
  }
}

/** Starts a tool for streaming use; the caller owns the process. */
export function spawnTool (tool: string, args: string[], options: Options = {}): ResultPromise {
  return execa(tool, args, { ...options, reject: true })
}
