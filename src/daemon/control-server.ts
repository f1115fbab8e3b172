import { randomBytes, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { logger, type Logger, type LogSink } from '../log/index.js'
import type { NodeEvent } from '../swarm/index.js'
import { AddJobRequest, type ApiError } from './api.js'

export interface ControlHandlers {
  status: () => unknown
  addJob: (req: AddJobRequest) => Promise<unknown>
  job: (id: string) => unknown
  /** Cancels the one job a prefix names and returns its full id; throws ControlError when there is none. */
  cancelJob: (id: string) => Promise<string>
  /** Connected peers with their ping latency (GET /v1/peers). */
  peers: () => Promise<unknown>
  /** What the dashboard's event stream sends: the status with every local job's chunk list. */
  snapshot: () => unknown
  /** Lifts a ban (DELETE /v1/bans/<peer id or its end>); throws ControlError 404 when there is none. */
  unban: (peer: string) => { lifted: string }
}

/** Thrown by handlers to answer with a status code and a kind the CLI maps to an exit code. */
export class ControlError extends Error {
  override name = 'ControlError'
  constructor (readonly status: number, readonly kind: ApiError['kind'], message: string) { super(message) }
}

const MAX_BODY = 64 * 1024
/** The event stream checks for changes this often, and sends at least every EVENT_MAX_GAP_MS. */
const EVENT_TICK_MS = 500
const EVENT_MAX_GAP_MS = 2000
const MAX_EVENT_STREAMS = 32

/** The dashboard's files and their types. The token may come in the query for these (a page cannot set headers on them). */
const DASHBOARD_FILES: Record<string, { file: string, type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/app.css': { file: 'app.css', type: 'text/css; charset=utf-8' }
}
const EVENTS_PATH = '/v1/events'

/** dist/dashboard/, whether this module runs from dist/src/daemon/ (the CLI) or from src/daemon/ (tests on the sources). */
function defaultDashboardDir (): string {
  const here = dirname(fileURLToPath(import.meta.url))
  return /[/\\]dist[/\\]src[/\\]daemon$/.test(here) ? resolve(here, '..', '..', 'dashboard') : resolve(here, '..', '..', 'dist', 'dashboard')
}

const PAGE_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

/**
 * The local control API: HTTP on 127.0.0.1 only, every request must carry the bearer token, and
 * the Host and Origin headers must name this very address, so a web page cannot reach it through
 * DNS rebinding or a cross-site request. It also serves the dashboard (a page, its script and
 * style, and a server-sent event stream), which may carry the token as a `token` query parameter.
 */
export class ControlServer {
  readonly token = randomBytes(32).toString('hex')
  private server?: Server
  private port = 0
  private readonly streams = new Set<ServerResponse>()
  private ticker?: NodeJS.Timeout
  private lastEvent = ''
  private lastEventAt = 0
  private readonly log: Logger

  constructor (
    private readonly handlers: ControlHandlers,
    log: LogSink = () => {},
    private readonly dashboardDir: string = defaultDashboardDir()
  ) {
    this.log = logger('control', log)
  }

  get url (): string { return `http://127.0.0.1:${this.port}` }
  /** The dashboard's address, token included: what `swarm join` prints. */
  get dashboardUrl (): string { return `${this.url}/?token=${this.token}` }

  async start (port = 0): Promise<void> {
    const server = createServer((req, res) => { void this.handle(req, res) })
    server.headersTimeout = 10_000
    server.requestTimeout = 30_000
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => { server.off('error', reject); resolve() })
    })
    this.port = (server.address() as AddressInfo).port
    this.server = server
  }

  async stop (): Promise<void> {
    if (this.ticker !== undefined) clearInterval(this.ticker)
    this.ticker = undefined
    for (const res of this.streams) res.end()
    this.streams.clear()
    const server = this.server
    if (server === undefined) return
    server.closeAllConnections()
    await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  }

  private authorised (req: IncomingMessage, url: URL): string | undefined {
    const allowedHosts = [`127.0.0.1:${this.port}`, `localhost:${this.port}`]
    if (!allowedHosts.includes(req.headers.host ?? '')) return `Host header ${JSON.stringify(req.headers.host ?? '')} is not this node's control address`
    const origin = req.headers.origin
    if (origin !== undefined && !allowedHosts.some(h => origin === `http://${h}`)) return `requests from origin ${origin} are not allowed`
    const auth = req.headers.authorization ?? ''
    let token = /^Bearer ([0-9a-f]{64})$/.exec(auth)?.[1]
    // A browser cannot put a header on a page load, a <script src> or an EventSource: those may carry it in the query.
    if (token === undefined && auth === '' && req.method === 'GET' && (url.pathname in DASHBOARD_FILES || url.pathname === EVENTS_PATH)) {
      token = /^[0-9a-f]{64}$/.exec(url.searchParams.get('token') ?? '')?.[0]
    }
    if (token === undefined || !timingSafeEqual(Buffer.from(token), Buffer.from(this.token))) return 'missing or wrong token'
    return undefined
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      res.end(JSON.stringify(body))
    }
    try {
      let url: URL
      try { url = new URL(req.url ?? '/', 'http://127.0.0.1') } catch { throw new ControlError(400, 'input', 'bad request URL') }
      const refusal = this.authorised(req, url)
      if (refusal !== undefined) {
        this.log.info(`refused ${req.method ?? '?'} ${url.pathname}: ${refusal}`)
        send(refusal.includes('token') ? 401 : 403, { error: refusal, kind: 'auth' } satisfies ApiError)
        req.resume()
        return
      }
      // Any last segment: the handlers say what is wrong with one that cannot be a job id.
      const jobMatch = /^\/v1\/jobs\/([^/]{1,200})$/.exec(url.pathname)
      const jobRef = jobMatch === null ? '' : decodeSegment(jobMatch[1] as string)
      if (req.method === 'GET' && url.pathname === '/v1/status') { send(200, this.handlers.status()); return }
      if (req.method === 'GET' && url.pathname === '/v1/peers') { send(200, await this.handlers.peers()); return }
      if (req.method === 'POST' && url.pathname === '/v1/jobs') {
        const body = await readBody(req)
        let parsed: AddJobRequest
        try {
          parsed = AddJobRequest.parse(JSON.parse(body))
        } catch (err) {
          throw new ControlError(400, 'input', `bad request body: ${(err as Error).message}`)
        }
        send(200, await this.handlers.addJob(parsed))
        return
      }
      if (req.method === 'GET' && jobMatch !== null) { send(200, this.handlers.job(jobRef)); return }
      if (req.method === 'DELETE' && jobMatch !== null) { send(200, { cancelled: true, job: await this.handlers.cancelJob(jobRef) }); return }
      const banMatch = /^\/v1\/bans\/([1-9A-HJ-NP-Za-km-z]{4,128})$/.exec(url.pathname)
      if (req.method === 'DELETE' && banMatch !== null) { send(200, this.handlers.unban(banMatch[1] as string)); return }
      if (req.method === 'GET' && url.pathname === EVENTS_PATH) { this.openEventStream(req, res); return }
      const asset = DASHBOARD_FILES[url.pathname]
      if (req.method === 'GET' && asset !== undefined) { await this.serveDashboard(asset, res); return }
      throw new ControlError(404, 'not-found', `no route ${req.method ?? ''} ${url.pathname}`)
    } catch (err) {
      if (err instanceof ControlError) { send(err.status, { error: err.message, kind: err.kind } satisfies ApiError); return }
      this.log.debug(`${(err as Error).stack ?? String(err)}`)
      send(500, { error: (err as Error).message, kind: 'internal' } satisfies ApiError)
    }
  }

  private async serveDashboard (asset: { file: string, type: string }, res: ServerResponse): Promise<void> {
    let body: string
    try {
      body = await readFile(join(this.dashboardDir, asset.file), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ControlError(500, 'internal', `the dashboard is not built (${join(this.dashboardDir, asset.file)} is missing): run npm run build`)
      throw err
    }
    // The page passes the token on to its script and style, which it loads by URL.
    if (asset.file === 'index.html') body = body.replaceAll('{{token}}', this.token)
    res.writeHead(200, { 'content-type': asset.type, ...PAGE_HEADERS })
    res.end(body)
  }

  /**
   * Server-sent events: a DashboardEvent now, then whenever the snapshot changes, and at least
   * every 2 s; between them, each node event as it happens (an SSE event named `node`).
   */
  private openEventStream (req: IncomingMessage, res: ServerResponse): void {
    if (this.streams.size >= MAX_EVENT_STREAMS) throw new ControlError(503, 'internal', `too many open event streams (${MAX_EVENT_STREAMS})`)
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-content-type-options': 'nosniff' })
    res.write('retry: 2000\n\n')
    this.streams.add(res)
    const snapshot = JSON.stringify(this.handlers.snapshot())
    res.write(eventFrame(snapshot))
    const close = (): void => {
      this.streams.delete(res)
      if (this.streams.size === 0 && this.ticker !== undefined) { clearInterval(this.ticker); this.ticker = undefined }
    }
    req.on('close', close)
    res.on('close', close)
    this.ticker ??= setInterval(() => { this.tick() }, EVENT_TICK_MS)
    this.ticker.unref()
  }

  private tick (): void {
    if (this.streams.size === 0) return
    let snapshot: string
    try { snapshot = JSON.stringify(this.handlers.snapshot()) } catch (err) { this.log.info(`event snapshot failed: ${(err as Error).message}`); return }
    const now = Date.now()
    if (snapshot === this.lastEvent && now - this.lastEventAt < EVENT_MAX_GAP_MS) return
    this.lastEvent = snapshot
    this.lastEventAt = now
    this.broadcast(eventFrame(snapshot, now))
  }

  /** A node event (swarm/events.ts), sent to every open stream as a server-sent event named `node`. */
  event (e: NodeEvent): void {
    if (this.streams.size > 0) this.broadcast(`event: node\ndata: ${JSON.stringify(e)}\n\n`)
  }

  private broadcast (frame: string): void {
    for (const res of this.streams) {
      // A client that does not read is not worth buffering for: it gets a fresh snapshot when it catches up.
      if (res.writableLength < 1024 * 1024) res.write(frame)
    }
  }
}

/** A path segment as the client meant it (it percent-encodes); one that does not decode is kept as sent. */
function decodeSegment (segment: string): string {
  try { return decodeURIComponent(segment) } catch { return segment }
}

function eventFrame (statusJson: string, at = Date.now()): string {
  return `data: {"at":${at},"status":${statusJson}}\n\n`
}

async function readBody (req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY) throw new ControlError(413, 'input', `request body over ${MAX_BODY} bytes`)
    parts.push(chunk as Buffer)
  }
  return Buffer.concat(parts).toString('utf8')
}
