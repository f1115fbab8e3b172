import { request } from 'node:http'

/** One HTTP request with exactly the headers given (no client defaults), JSON answer parsed. */
export async function http (url: string, o: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<{ status: number, body: any }> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'GET', headers: o.headers }, (res) => {
      let text = ''
      res.on('data', (d: Buffer) => { text += d.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }) })
    })
    req.on('error', reject)
    if (o.body !== undefined) req.write(o.body)
    req.end()
  })
}
