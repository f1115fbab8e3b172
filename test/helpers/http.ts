import { request } from 'node:http'

/**
 * One HTTP request with exactly the headers given (no client defaults), JSON answer parsed. On a
 * connection of its own (no keep-alive agent): a socket kept between polls can be closed by the
 * server's keep-alive timeout just as it is reused, which a busy machine turned into ECONNRESET.
 */
export async function http (url: string, o: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<{ status: number, body: any }> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'GET', headers: o.headers, agent: false }, (res) => {
      let text = ''
      res.on('data', (d: Buffer) => { text += d.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }) })
    })
    req.on('error', reject)
    if (o.body !== undefined) req.write(o.body)
    req.end()
  })
}
