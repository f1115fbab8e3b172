import { createServer, type Server } from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectControl } from '../../src/daemon/control-client.js'

let home: string
let server: Server
let connections = 0

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'swarm-control-client-'))
  server = createServer((_req, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ peerId: 'p', peers: [], jobs: [] })) })
  server.on('connection', () => { connections++ })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await writeFile(join(home, 'control.json'), JSON.stringify({ url: `http://127.0.0.1:${port}/`, token: 't'.repeat(32), pid: process.pid, peerId: 'p', apiVersion: 1 }))
})

afterAll(async () => {
  server?.closeAllConnections()
  await new Promise(resolve => server?.close(resolve))
  if (home !== undefined) await rm(home, { recursive: true, force: true })
})

describe('the control client', () => {
  it('opens a connection per call, so a call never reuses a socket the node is closing', async () => {
    const client = await connectControl(home)
    for (let i = 0; i < 3; i++) await client.status()
    expect(connections).toBe(3)
  })
})
