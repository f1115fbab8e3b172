/**
 * A small argument parser for the swarm commands. It differs from the usual ones on purpose:
 * a token that looks like an option but is not one of the command's own is a positional, so
 * `swarm add FILE "--preset slow --crf 18"` takes the x264 settings as written, with no `--`.
 */
export interface FlagSpec {
  type: 'string' | 'boolean' | 'number'
  multiple?: boolean
}

export type ParsedFlags = Record<string, string | boolean | number | string[] | undefined>

export class UsageError extends Error {
  override name = 'UsageError'
}

/** Bad input (exit 2) whose message already says what to do: printed alone, without the usage hint. */
export class InputProblem extends Error {
  override name = 'InputProblem'
}

export function parseCommandArgs (argv: string[], spec: Record<string, FlagSpec>, command: string): { flags: ParsedFlags, positionals: string[] } {
  const flags: ParsedFlags = {}
  const positionals: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string
    if (token === '--') { positionals.push(...argv.slice(i + 1)); break }
    if (token === '-h') { flags.help = true; continue }
    const m = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/s.exec(token)
    const name = m?.[1]
    const def = name !== undefined ? spec[name] : undefined
    if (m === null || name === undefined || def === undefined) { positionals.push(token); continue }
    if (def.type === 'boolean') {
      if (m[2] !== undefined) throw new UsageError(`${command}: --${name} takes no value`)
      flags[name] = true
      continue
    }
    let value = m[2]
    if (value === undefined) {
      value = argv[i + 1]
      if (value === undefined) throw new UsageError(`${command}: --${name} needs a value`)
      i++
    }
    if (def.type === 'number') {
      const n = Number(value)
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`${command}: --${name} must be a whole number of at least 1, not ${JSON.stringify(value)}`)
      flags[name] = n
    } else if (def.multiple === true) {
      const list = (flags[name] as string[] | undefined) ?? []
      list.push(value)
      flags[name] = list
    } else {
      if (flags[name] !== undefined) throw new UsageError(`${command}: --${name} given twice`)
      flags[name] = value
    }
  }
  return { flags, positionals }
}
