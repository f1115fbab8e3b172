import { ControlApiError, NodeNotRunningError, resolveHome } from '../src/daemon/client.js'
import { SWARM_VERSION } from '../src/daemon/version.js'
import { InputProblem, parseCommandArgs, UsageError, type FlagSpec } from './args.js'
import { EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, type Command } from './command.js'
import { commandNamed } from './commands/index.js'
import { err, out } from './output.js'

const VERSION = SWARM_VERSION

const MAIN_HELP = `swarm ${VERSION}: encode video with x264, x265 or AV1 across a peer-to-peer swarm, no central server.

Usage:
  swarm join [options]                 run a node in the foreground
  swarm add FILE "SETTINGS" [options]  encode FILE across the swarm (x264 SETTINGS; --encoder for others)
  swarm status [JOB] [options]         peers, jobs, chunks and who encodes what (--watch: live)
  swarm peers [options]                connected peers: addresses, latency, what they encode for us;
                                       banned peers (swarm peers unban PEER lifts a ban)
  swarm cancel JOB [options]           stop a job this node originated
  swarm key generate FILE              make a pre-shared key for a private swarm

Run \`swarm COMMAND --help\` for a command's options.
Exit codes: ${EXIT_OK} success, ${EXIT_FAILED} the work failed, ${EXIT_USAGE} bad usage or input,
${EXIT_INTERRUPTED} Ctrl-C of add --wait (the job goes on encoding).`

/** The options every command has: --help, and --home for those that talk to a node. */
function flagsOf (command: Command): Record<string, FlagSpec> {
  return { ...(command.takesHome ? { home: { type: 'string' } } : {}), help: { type: 'boolean' }, ...command.flags }
}

/**
 * Checks a command line as the docs show it, without running it: the command exists, every option
 * is one of its own, and it has no extra arguments. Placeholders like N stand in for numbers. The
 * docs test runs every `swarm` line of README.md and docs/ through this, so the docs cannot rot.
 */
export function checkCommandLine (argv: string[]): string | undefined {
  const [name, ...rest] = argv
  if (name === undefined) return 'no command'
  if (['--help', '-h', 'help', '--version', '-v'].includes(name)) return undefined
  const command = commandNamed(name)
  if (command === undefined) return `unknown command "${name}"`
  const spec = flagsOf(command)
  const args = rest.map((a, i) => {
    const flag = /^--([a-z-]+)$/.exec(rest[i - 1] ?? '')?.[1]
    return flag !== undefined && spec[flag]?.type === 'number' && /^[A-Z_]+$/.test(a) ? '1' : a
  })
  try {
    const { positionals } = parseCommandArgs(args, spec, `swarm ${name}`)
    const max = command.maxPositionals
    if (positionals.length > max) return `swarm ${name} takes at most ${max} arguments; extra: ${positionals.slice(max).join(' ')}`
  } catch (e) {
    return (e as Error).message
  }
  return undefined
}

export async function main (argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' && rest[0] !== undefined ? commandNamed(rest[0]) : undefined
    out(topic?.help ?? MAIN_HELP)
    return name === undefined ? EXIT_USAGE : EXIT_OK
  }
  if (name === '--version' || name === '-v') { out(VERSION); return EXIT_OK }
  const command = commandNamed(name)
  if (command === undefined) { err(`unknown command "${name}"; run \`swarm --help\``); return EXIT_USAGE }
  try {
    const { flags, positionals } = parseCommandArgs(rest, flagsOf(command), `swarm ${name}`)
    if (flags.help === true) { out(command.help); return EXIT_OK }
    const home = resolveHome(flags.home as string | undefined)
    return await command.run({ home, flags, positionals })
  } catch (e) {
    if (e instanceof UsageError) { err(`${e.message}\nrun \`swarm ${name} --help\` for usage`); return EXIT_USAGE }
    if (e instanceof InputProblem) { err(e.message); return EXIT_USAGE }
    if (e instanceof NodeNotRunningError) { err(e.message); return EXIT_FAILED }
    if (e instanceof ControlApiError) { err(e.message); return e.kind === 'input' ? EXIT_USAGE : EXIT_FAILED }
    err((e as Error).message)
    return EXIT_FAILED
  }
}
