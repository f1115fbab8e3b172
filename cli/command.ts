import { UsageError, type FlagSpec, type ParsedFlags } from './args.js'
import { VerifyModeSchema, type VerifyMode } from '../src/daemon/client.js'
// Its own file, not the jobs layer's face, which loads libp2p.
import { ADAPTIVE_RULE } from '../src/jobs/verification-policy.js'

/**
 * What a `swarm` command is to the dispatcher in main.ts. main.ts owns what every command shares
 * (--help, --home, resolving the home, mapping errors to exit codes); a command owns its help
 * text, its own options and its handler.
 */
export interface Command {
  /** The text `swarm COMMAND --help` prints. */
  help: string
  /** Its own options; main.ts adds --help, and --home when `takesHome`. */
  flags: Record<string, FlagSpec>
  takesHome: boolean
  /** Positional arguments it takes at most (the docs test holds the docs to this too). */
  maxPositionals: number
  run: (args: CommandArgs) => Promise<number>
}

export interface CommandArgs {
  /** The node home, resolved from --home or the environment. */
  home: string
  flags: ParsedFlags
  positionals: string[]
}

// The exit codes `swarm --help` promises.
export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2
/** Ctrl-C, as a shell reports a process SIGINT ended (128 + 2). */
export const EXIT_INTERRUPTED = 130

/** The --home line of every help text that takes --home. */
export const HOME_HELP = '  --home DIR          node home (default: $SWARM_HOME, else $XDG_DATA_HOME/swarm or ~/.local/share/swarm)'

/**
 * Refuses positionals beyond `max`. The parser passes unknown options through as positionals (see
 * args.ts), so an extra that starts with "-" is reported as the unknown option it most likely is.
 */
export function rejectExtraArguments (command: string, positionals: string[], max: number, takes: string): void {
  if (positionals.length > max) {
    const extra = positionals[max] as string
    throw new UsageError(extra.startsWith('-')
      ? `unknown option ${extra} for ${command} (it takes ${takes})`
      : `unexpected argument ${JSON.stringify(extra)} (${command} takes ${takes})`)
  }
}

/** The value of a --verify option (join and add), or undefined when it was not given. */
export function verifyMode (value: unknown, command: string): VerifyMode | undefined {
  if (value === undefined) return undefined
  const parsed = VerifyModeSchema.safeParse(value)
  if (!parsed.success) throw new UsageError(`${command}: --verify is ${VerifyModeSchema.options.join(' or ')}, not ${JSON.stringify(value)}`)
  return parsed.data
}

/** "one in 4": the share of a peer's later results in a job that get the picture check in adaptive mode (ADAPTIVE_RULE). */
export function shareInWords (): string {
  return `one in ${Math.round(1 / ADAPTIVE_RULE.share)}`
}
