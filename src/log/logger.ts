/**
 * Levels, as `swarm join` prints them: `info` by default (what a person watching the terminal wants:
 * jobs added, resumed, done or failed, refusals, lapsed and released leases, peers connected or
 * unreachable, relay and control-only lines), `debug` and `trace` (the protocol story, chunk by
 * chunk) with --verbose or DEBUG=swarm:*.
 */
export type LogLevel = 'info' | 'debug' | 'trace'

/**
 * Where a component's lines go. A plain `(line) => void` is one: it takes every line. `component`
 * is the namespace (jobs, worker, swarm, relay, control, peers) DEBUG=swarm:<component> selects.
 */
export type LogSink = (line: string, level: LogLevel, component: string) => void

export interface Logger {
  info: (text: string) => void
  debug: (text: string) => void
  trace: (text: string) => void
}

/**
 * A component's logger: each line is `<component>: <text>`, the form every log line has had (tests
 * and operators grep it). `prefix` replaces that start for lines that never had it.
 */
export function logger (component: string, sink: LogSink = () => {}, prefix = `${component}: `): Logger {
  const at = (level: LogLevel) => (text: string): void => { sink(`${prefix}${text}`, level, component) }
  return { info: at('info'), debug: at('debug'), trace: at('trace') }
}

/**
 * Which components a DEBUG value turns on, in the `debug` package's spirit: `swarm` or `swarm:*`
 * every one, `swarm:<component>` that one (several separated by commas or spaces).
 */
export function debugEnabled (debug: string | undefined): (component: string) => boolean {
  const patterns = (debug ?? '').split(/[\s,]+/).filter(p => p !== '')
  const all = patterns.some(p => p === 'swarm' || p === 'swarm:*')
  return (component) => all || patterns.includes(`swarm:${component}`)
}
