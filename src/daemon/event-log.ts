import { createWriteStream, type WriteStream } from 'node:fs'
import { logger, type Logger, type LogSink } from '../log/index.js'
import type { NodeEvent } from '../swarm/index.js'

/** Where a node's events go (swarm/events.ts): each sink is called with every event, in order. */
export type EventSink = (event: NodeEvent) => void

/**
 * The daemon's fan-out of node events: the originator, the worker and the block list publish, the
 * sinks (the event log, the dashboard's stream, the daemon's own bookkeeping) listen. A sink that
 * throws is logged and skipped: the emitters call publish in the middle of their own work.
 */
export class NodeEvents {
  private readonly sinks: EventSink[] = []
  private readonly log: Logger

  constructor (log?: LogSink) { this.log = logger('control', log) }

  add (sink: EventSink): void { this.sinks.push(sink) }

  readonly publish = (event: NodeEvent): void => {
    for (const sink of this.sinks) {
      try { sink(event) } catch (err) { this.log.info(`a listener of ${event.type} events failed: ${(err as Error).message}`) }
    }
  }
}

/** The event log's file cannot be opened for appending (a missing folder, no permission). */
export class EventLogError extends Error {
  override name = 'EventLogError'
}

/**
 * `swarm join --events FILE`: every node event as one JSON object a line, appended (the file is
 * created readable by its owner only: it names files and peers). Opened before the node starts, so
 * a path that cannot be written stops `swarm join` at once; a write that fails later (a full disk)
 * is logged once, and the log stops there rather than the node.
 */
export class EventLog {
  private failed = false
  private readonly log: Logger

  private constructor (private readonly stream: WriteStream, private readonly path: string, log: LogSink | undefined) {
    this.log = logger('control', log)
    stream.on('error', (err) => { this.fail(err) })
  }

  static async open (path: string, log?: LogSink): Promise<EventLog> {
    const stream = createWriteStream(path, { flags: 'a', mode: 0o600 })
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => { stream.off('error', reject); resolve() })
      stream.once('error', reject)
    }).catch((err: Error) => { throw new EventLogError(`cannot open the event log ${path}: ${err.message}`) })
    return new EventLog(stream, path, log)
  }

  readonly write: EventSink = (event) => {
    if (!this.failed) this.stream.write(`${JSON.stringify(event)}\n`)
  }

  /** Writes out what is buffered and closes the file. */
  async close (): Promise<void> {
    if (this.stream.closed) return
    await new Promise<void>(resolve => { this.stream.end(resolve) })
  }

  private fail (err: Error): void {
    if (this.failed) return
    this.failed = true
    this.log.info(`the event log ${this.path} stopped: ${err.message}`)
  }
}
