import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'node:http'
import { ControlFile, type AddJobRequest, type AddJobResponse, type ApiError, type JobStatus, type PeersJson, type StatusJson } from './api.js'
import { CONTROL_FILE } from './home.js'

/** No node runs for this home: the message says how to start one. */
export class NodeNotRunningError extends Error {
  override name = 'NodeNotRunningError'
}

/** The node answered with an error; `kind` 'input' means the request was bad (exit code 2). */
export class ControlApiError extends Error {
  override name = 'ControlApiError'
  constructor (message: string, readonly kind: ApiError['kind'], readonly status: number) { super(message) }
}

export interface ControlClient {
  url: string
  status: () => Promise<StatusJson>
  addJob: (req: AddJobRequest) => Promise<AddJobResponse>
  job: (id: string) => Promise<JobStatus>
  /** Cancels the job a unique prefix names; returns its full id. */
  cancelJob: (id: string) => Promise<string>
  peers: () => Promise<PeersJson>
  /** Lifts the ban on a peer (its full id or the end of it); returns the full id. */
  unban: (peer: string) => Promise<string>
}

export async function connectControl (home: string): Promise<ControlClient> {
  const notRunning = (why: string): NodeNotRunningError =>
    new NodeNotRunningError(`no swarm node is running for home ${home} (${why}); start one with: swarm join --home ${JSON.stringify(home)}`)
  let file: ControlFile
  try {
    file = ControlFile.parse(JSON.parse(await readFile(join(home, CONTROL_FILE), 'utf8')))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notRunning(`${join(home, CONTROL_FILE)} does not exist`)
    throw notRunning(`${join(home, CONTROL_FILE)} is unreadable: ${(err as Error).message}`)
  }
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const url = new URL(path, file.url)
    const payload = body === undefined ? undefined : JSON.stringify(body)
    return await new Promise<T>((resolve, reject) => {
      const req = request(url, {
        method,
        headers: { authorization: `Bearer ${file.token}`, ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
        timeout: 120_000,
        // A connection per call: Node's default agent keeps sockets alive, and a call that reused
        // one just as the node's keep-alive timeout closed it failed with ECONNRESET (a `status
        // --watch` whose one-second refresh was late on a busy machine exited 1). Loopback makes
        // a new connection cheap.
        agent: false
      }, (res) => {
        const parts: Buffer[] = []
        res.on('data', (d: Buffer) => parts.push(d))
        res.on('end', () => {
          let parsed: unknown
          try { parsed = JSON.parse(Buffer.concat(parts).toString('utf8')) } catch { reject(new Error(`the node at ${file.url} sent a non-JSON answer`)); return }
          if ((res.statusCode ?? 500) >= 400) {
            const e = parsed as ApiError
            reject(new ControlApiError(e.error ?? `HTTP ${res.statusCode ?? '?'}`, e.kind ?? 'internal', res.statusCode ?? 500))
          } else {
            resolve(parsed as T)
          }
        })
        res.on('error', reject)
      })
      req.on('timeout', () => { req.destroy(new Error(`the node at ${file.url} did not answer in time`)) })
      req.on('error', (err: NodeJS.ErrnoException) => {
        reject(err.code === 'ECONNREFUSED' ? notRunning(`nothing answers at ${file.url}; the node may have stopped`) : err)
      })
      if (payload !== undefined) req.write(payload)
      req.end()
    })
  }
  return {
    url: file.url,
    status: async () => await call<StatusJson>('GET', '/v1/status'),
    addJob: async (req) => await call<AddJobResponse>('POST', '/v1/jobs', req),
    job: async (id) => await call<JobStatus>('GET', `/v1/jobs/${encodeURIComponent(id)}`),
    cancelJob: async (id) => (await call<{ job: string }>('DELETE', `/v1/jobs/${encodeURIComponent(id)}`)).job,
    peers: async () => await call<PeersJson>('GET', '/v1/peers'),
    unban: async (peer) => (await call<{ lifted: string }>('DELETE', `/v1/bans/${encodeURIComponent(peer)}`)).lifted
  }
}
