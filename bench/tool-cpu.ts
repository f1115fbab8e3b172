/**
 * Per-tool CPU of a node (bench/swarm.ts --tool-cpu): each tool a node runs goes through a shim
 * that execs it under GNU time, which appends the tool's CPU and command line to a log. The
 * classes below say what each run was for, so a run's overhead over plain is split by cause with
 * the same clock as the encodes themselves. A shim costs a shell and a `time` start (a few ms).
 */
import { execa } from 'execa'
import { access, chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

const TOOLS = ['ffmpeg', 'ffprobe', 'x264', 'mkvmerge'] as const
/** The other encoders' programs: shimmed where this machine has them. */
const OTHER_ENCODERS = ['x265', 'SvtAv1EncApp', 'aomenc'] as const
const TIME = '/usr/bin/time'
const MARK = 'SWARM-TOOL-CPU'

export interface ToolShims {
  /** Environment for a node whose tools are counted into `logPath`. */
  envFor: (logPath: string) => Record<string, string>
}

/** Writes the shims into `dir`; throws, saying what to install, when GNU time is missing. */
export async function writeToolShims (dir: string): Promise<ToolShims> {
  try { await access(TIME) } catch { throw new Error(`--tool-cpu needs GNU time at ${TIME}: apt-get install -y time`) }
  await mkdir(dir, { recursive: true })
  const others = await Promise.all(OTHER_ENCODERS.map(async t => await execa('which', [t]).then(() => t, () => undefined)))
  for (const tool of [...TOOLS, ...others.filter((t): t is typeof OTHER_ENCODERS[number] => t !== undefined)]) {
    const real = (await execa('which', [tool])).stdout.trim()
    const shim = join(dir, tool)
    await writeFile(shim, `#!/bin/sh\nexec ${TIME} -a -o "$SWARM_TOOL_CPU_LOG" -f "${MARK} %U %S %C" ${real} "$@"\n`)
    await chmod(shim, 0o755)
  }
  return { envFor: (logPath) => ({ PATH: `${dir}:${process.env.PATH ?? ''}`, SWARM_TOOL_CPU_LOG: logPath }) }
}

/** What a tool run was for, from its command line. */
export function classifyToolRun (command: string): string {
  const [path = '', ...args] = command.split(' ')
  const tool = path.split('/').pop() ?? path
  const has = (a: string): boolean => args.includes(a)
  // The structure check's reference: two grey frames encoded once per job (media/structure.ts).
  if (args.some(a => a.includes('swarm-structure-'))) return `${tool}: structure reference`
  // The picture check encodes the frames it draws one at a time, each from its own --seek (x264,
  // x265) or its own y4m in the check's folder (the AV1 encoders).
  if (tool === 'x264') return has('--seek') ? 'x264: picture checks' : 'x264: encodes'
  if ((OTHER_ENCODERS as readonly string[]).includes(tool)) return has('--seek') || args.some(a => a.includes('swarm-pictures-')) ? `${tool}: picture checks` : `${tool}: encodes`
  if (tool === 'mkvmerge') return 'mkvmerge: merge'
  if (tool === 'ffprobe') return args.some(a => a.startsWith('packet=')) ? 'ffprobe: packet listings' : 'ffprobe: descriptions'
  // Before yuv4mpegpipe: the picture check's source decode also writes the drawn frames as y4m.
  if (has('rawvideo')) return 'ffmpeg: picture checks'
  // The merge's fidelity check: source and output decoded in full, PSNR of every frame (media/cut-pictures.ts).
  if (args.some(a => a.includes('psnr=stats_file'))) return 'ffmpeg: pictures at cuts (merge)'
  if (has('yuv4mpegpipe')) return 'ffmpeg: decodes for encodes'
  // Each stream-copied segment's first GOP decoded at the split, where a bad cut shows (media/split.ts).
  if (has('null') && has('-frames:v')) return 'ffmpeg: first GOPs decoded (split)'
  if (has('segment') || (has('-c') && has('copy') && has('matroska'))) return 'ffmpeg: split'
  // Each cut's first picture parsed for an IDR or IRAP slice (media/split.ts startsAtRandomAccessPoint).
  if (args.some(a => a.endsWith('_mp4toannexb'))) return 'ffmpeg: cut pictures parsed (split)'
  if (has('h264') && has('copy')) return 'ffmpeg: caption look at add'
  return 'ffmpeg: other'
}

export interface ToolCpu { kind: string, runs: number, cpuSeconds: number }

/** What the originator spends checking peers' results: the picture checks' decodes and the structure reference. */
export const VERIFICATION_KINDS = ['ffmpeg: picture checks', 'ffmpeg: structure reference', 'x264: structure reference', ...OTHER_ENCODERS.map(t => `${t}: structure reference`)]
/** What encoding a chunk costs a worker: its decoder and x264. */
export const ENCODE_KINDS = ['x264: encodes', 'ffmpeg: decodes for encodes', ...OTHER_ENCODERS.map(t => `${t}: encodes`)]

/** CPU seconds of the runs of these kinds. */
export function cpuOfKinds (runs: ToolCpu[], kinds: string[]): number {
  return runs.filter(r => kinds.includes(r.kind)).reduce((a, r) => a + r.cpuSeconds, 0)
}

/** Sums a node's log by kind, largest first. */
export async function readToolCpu (logPath: string): Promise<ToolCpu[]> {
  let text = ''
  try { text = await readFile(logPath, 'utf8') } catch { return [] }
  const byKind = new Map<string, ToolCpu>()
  for (const line of text.split('\n')) {
    // GNU time also writes "Command exited with non-zero status N" lines; only ours count.
    const m = new RegExp(`^${MARK} ([\\d.]+) ([\\d.]+) (.*)$`).exec(line)
    if (m === null) continue
    const kind = classifyToolRun(m[3] as string)
    const entry = byKind.get(kind) ?? { kind, runs: 0, cpuSeconds: 0 }
    entry.runs++
    entry.cpuSeconds += Number(m[1]) + Number(m[2])
    byKind.set(kind, entry)
  }
  return [...byKind.values()].sort((a, b) => b.cpuSeconds - a.cpuSeconds)
}
