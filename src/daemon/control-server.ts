import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { AddJobRequest, type ApiError } from './api.js'

export interface ControlHandlers {
  status: () => unknown
  addJob: (req: AddJobRequest) => Promise<unknown>
  job: (id: string) => unknown
  cancelJob: (id: string) => Promise<boolean>
}

/** Thrown by handlers to answer with a status code and a kind the CLI maps to an exit code. */
export class ControlError extends Error {
  constructor (readonly status: number, readonly kind: ApiError['kind'], message: string) { super(message) }
}

const MAX_BODY = 64 * 1024

/**
 * The local control API: HTTP on 127.0.0.1 only, every request must carry the bearer token, and
 * the Host and Origin headers must name this very address, so a web page cannot reach it through
 * DNS rebinding or a cross-site request.
 */
export class ControlServer {
  readonly token = randomBytes(32).toString('hex')
  private server?: Server
  private port = 0

  constructor (private readonly handlers: ControlHandlers, private readonly log: (line: string) => void = () => {}) {}

  get url (): string { return `http://127.0.0.1:${this.port}` }

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
    const server = this.server
    if (server === undefined) return
    server.closeAllConnections()
    await new Promise<void>(resolve => { server.close(() => { resolve() }) })
  }

  private authorised (req: IncomingMessage): string | undefined {
    const allowedHosts = [`127.0.0.1:${this.port}`, `localhost:${this.port}`]
    if (!allowedHosts.includes(req.headers.host ?? '')) return `Host header ${JSON.stringify(req.headers.host ?? '')} is not this node's control address`
    const origin = req.headers.origin
    if (origin !== undefined && !allowedHosts.some(h => origin === `http://${h}`)) return `requests from origin ${origin} are not allowed`
    const auth = req.headers.authorization ?? ''
    const m = /^Bearer ([0-9a-f]{64})$/.exec(auth)
    if (m === null || !timingSafeEqual(Buffer.from(m[1] as string), Buffer.from(this.token))) return 'missing or wrong token'
    return undefined
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      res.end(JSON.stringify(body))
    }
    try {
      const refusal = this.authorised(req)
      if (refusal !== undefined) {
        this.log(`control: refused ${req.method ?? '?'} ${req.url ?? ''}: ${refusal}`)
        send(refusal.includes('token') ? 401 : 403, { error: refusal, kind: 'auth' } satisfies ApiError)
        req.resume()
        return
      }
      const url = new URL(req.url ?? '/', this.url)
      const jobMatch = /^\/v1\/jobs\/([0-9a-f]{4,64})$/.exec(url.pathname)
      if (req.method === 'GET' && url.pathname === '/v1/status') { send(200, this.handlers.status()); return }
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
      if (req.method === 'GET' && jobMatch !== null) { send(200, this.handlers.job(jobMatch[1] as string)); return }
      if (req.method === 'DELETE' && jobMatch !== null) {
        if (!await this.handlers.cancelJob(jobMatch[1] as string)) throw new ControlError(404, 'not-found', `no job ${jobMatch[1] as string} on this node`)
        send(200, { cancelled: true })
        return
      }
      throw new ControlError(404, 'not-found', `no route ${req.method ?? ''} ${url.pathname}`)
    } catch (err) {
      if (err instanceof ControlError) { send(err.status, { error: err.message, kind: err.kind } satisfies ApiError); return }
      this.log(`control: ${(err as Error).stack ?? String(err)}`)
      send(500, { error: (err as Error).message, kind: 'internal' } satisfies ApiError)
    }
  }
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
