import type { BannedPeerInfo, JobStatus, PeersJson, StatusJson } from '../src/daemon/index.js'
import { shortChunk, shortJob, shortPeer } from '../src/log/index.js'
import { formatMemorySize } from '../src/media/memory.js'

function table (rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map(r => (r[i] ?? '').length))) ?? []
  return rows.map(r => '  ' + r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)).join('  ')).join('\n')
}

/** How a peer is reached: "direct", or "relayed via …tail". */
function pathText (p: { connection?: 'direct' | 'relayed', via?: string }): string {
  return p.connection === 'relayed' ? `relayed via ${p.via !== undefined ? shortPeer(p.via) : 'a relay'}` : 'direct'
}

/** Another originator's job: how this node's worker reaches its originator. */
function reachText (j: JobStatus): string {
  if (j.reach === undefined) return ''
  if (j.reach.kind === 'control-only') return `control only: ${j.reach.reason ?? 'cannot reach the originator'}`
  return pathText({ connection: j.reach.kind, ...(j.reach.via !== undefined ? { via: j.reach.via } : {}) })
}

function percent (job: JobStatus): string {
  return job.totalFrames > 0 ? `${Math.floor(100 * job.framesDone / job.totalFrames)}%` : '-'
}

export function formatProgressLine (job: JobStatus): string {
  const c = job.chunks
  return `job ${shortJob(job.id)} ${job.state}: ${c.done}/${c.total} chunks done, ${c.leased} encoding, ${percent(job)} of ${job.totalFrames} frames`
}

function mib (bytes: number): string { return `${(bytes / 1024 ** 2).toFixed(1)} MiB` }

/** Whether peers can dial this node, in one line: the verdict, then what it rests on. */
export function reachabilityText (r: StatusJson['network']['reachability'], reservedOn: string[]): string {
  const upnp = r.upnp ? (r.mapped.length > 0 ? `UPnP mapped ${r.mapped.join(', ')}` : 'UPnP on, no port mapped') : 'UPnP off'
  const relays = reservedOn.map(shortPeer).join(', ')
  switch (r.verdict) {
    case 'public': return `public: ${r.confirmed.join(', ')} confirmed by AutoNAT or announced; ${upnp}`
    case 'dialled-in': return `peers dial in: ${r.inboundDirect} connected directly to this node (AutoNAT tests public addresses only; none confirmed); ${upnp}`
    case 'relay-only': return `through a relay only: no peer dialled in and no public address confirmed; peers that cannot dial this node reach it through ${relays}; ${upnp}`
    default: return `unknown: no peer dialled in, no public address confirmed${r.unconfirmed.length > 0 ? ` (${r.unconfirmed.join(', ')} untested or failed)` : ''}, no relay slot: peers behind NAT cannot reach this node; ${upnp}`
  }
}

export function formatStatus (s: StatusJson): string {
  const lines = [`peer id   ${s.peerId}`, ...s.addresses.map((a, i) => `${i === 0 ? 'listening' : '         '} ${a}`), '']
  lines.push(`PEERS (${s.peers.length})`)
  if (s.peers.length > 0) lines.push(table([['ID', 'ADDRESS', 'PATH', 'FOUND BY', 'ENCODERS', 'ENCODING FOR US'], ...s.peers.map(p => [shortPeer(p.id), p.addresses[0] ?? '-', pathText(p), p.foundBy.join(',') || '-', p.encoders?.map(e => e.encoder).join(',') ?? '?', p.encoding.join(' ') || '-'])]))
  if (s.unreachable.length > 0) lines.push(`  found but not connected: ${s.unreachable.map(u => `${shortPeer(u.id)} (${u.foundBy.join(',')}, ${u.attempts} failed)`).join(', ')}; see swarm peers`)
  lines.push('', `JOBS (${s.jobs.length})`)
  if (s.jobs.length > 0) {
    lines.push(table([['ID', 'STATE', 'CHUNKS done/leased/open', 'FRAMES', 'CHECKED full/structure', 'ORIGIN', 'FILE'],
      ...s.jobs.map(j => [shortJob(j.id), j.state, `${j.chunks.done}/${j.chunks.leased}/${j.chunks.open} of ${j.chunks.total}`, j.local ? percent(j) : '-', checkedCell(j), j.local ? 'here' : shortPeer(j.originator), j.output ?? j.file])]))
    for (const j of s.jobs) if (j.reach?.kind === 'control-only') lines.push(`  ${shortJob(j.id)}: ${reachText(j)}`)
    for (const j of s.jobs) { const alone = aloneText(j); if (alone !== undefined) lines.push(`  ${shortJob(j.id)}: ${alone}`) }
  }
  const banned = s.banned ?? []
  if (banned.length > 0) {
    lines.push('', `BANNED (${banned.length})`)
    lines.push(table([['ID', 'UNTIL', 'REASON'], ...banned.map(b => [shortPeer(b.id), banUntil(b), b.reason.slice(0, 160)])]))
  }
  lines.push('', `REACH  ${reachabilityText(s.network.reachability, s.network.reservedOn)}`)
  if (s.network.relay !== undefined) lines.push('', `RELAY  ${s.network.relay.reservations} peers reserved, ${s.network.relay.circuits} circuits open, ${s.network.relay.circuitsServed} served carrying ${mib(s.network.relay.bytesRelayed)}; ${s.network.relay.limits}`)
  if (s.network.reservedOn.length > 0) lines.push('', `reachable through relay${s.network.reservedOn.length === 1 ? '' : 's'} ${s.network.reservedOn.map(shortPeer).join(', ')}`)
  lines.push('', `WORKER (${s.worker.slots} slot${s.worker.slots === 1 ? '' : 's'}${s.worker.memoryBudgetBytes !== undefined ? `, ${formatMemorySize(s.worker.memoryBudgetBytes)} of memory each` : ''}, encodes at ${s.worker.encodePriority} priority)`)
  if (s.worker.active.length === 0) lines.push('  idle')
  else lines.push(table([['CHUNK', 'STAGE', 'FRAMES', 'FPS'], ...s.worker.active.map(a => [shortChunk(a.jobId, a.chunk), a.stage, `${a.framesDone}/${a.frames}`, a.fps.toFixed(1)])]))
  return lines.join('\n')
}

/** The status table's cell: the job's mode and how its kept peers' results were checked (`adaptive 2/7`). */
function checkedCell (j: JobStatus): string {
  const v = j.verification
  return v === undefined ? '-' : `${v.mode} ${v.full}/${v.structural}`
}

/** For a job of this node that no connected peer can encode: who encodes it, and what would change that. */
export function aloneText (j: JobStatus): string | undefined {
  if (!j.local || j.encoderPeers !== 0 || j.state === 'done' || j.state === 'failed') return undefined
  return `no connected peer advertises ${j.encoder}: this node encodes every chunk of this job until a peer that has it joins`
}

/** `swarm status JOB`'s line: how the job checks peers' results, and how those kept were checked. */
export function formatVerification (j: JobStatus): string | undefined {
  const v = j.verification
  if (v === undefined) return undefined
  const how = v.mode === 'all' ? 'all (every peer\'s result: structure and pictures)' : 'adaptive (every peer\'s result: structure; pictures: each peer\'s first, then a random share)'
  return `checks    ${how}; kept: ${v.full} checked in full, ${v.structural} on structure only, ${v.own} encoded here`
}

export function formatJob (j: JobStatus): string {
  const lines = [
    `job       ${j.id}`,
    `file      ${j.file}`,
    `settings  ${j.settings}`,
    `encoder   ${j.encoder}${j.encoderPeers !== undefined ? ` (${j.encoderPeers} connected peer${j.encoderPeers === 1 ? '' : 's'} ${j.encoderPeers === 1 ? 'has' : 'have'} it)` : ''}`,
    `state     ${j.state}${j.error !== undefined ? ` (${j.error})` : ''}`,
    `output    ${j.output ?? '-'}`,
    `origin    ${j.local ? 'this node' : `${j.originator}${j.reach !== undefined ? ` (${reachText(j)})` : ''}`}`,
    `chunks    ${j.chunks.done} done, ${j.chunks.leased} leased, ${j.chunks.open} open, ${j.chunks.total} in all; ${percent(j)} of ${j.totalFrames} frames`
  ]
  const alone = aloneText(j)
  if (alone !== undefined) lines.push(`          ${alone}`)
  for (const w of j.warnings ?? []) lines.push(`warning   ${w}`)
  const versions = Object.entries(j.encoderVersions ?? {})
  if (versions.length > 0) lines.push(`          made by ${versions.map(([v, n]) => `${j.encoder} ${v} (${n} chunk${n === 1 ? '' : 's'})`).join(', ')}`)
  const by = Object.entries(j.encodedBy)
  if (by.length > 0) lines.push(`encoded   ${by.map(([p, n]) => `${shortPeer(p)}: ${n}`).join(', ')}`)
  const checks = formatVerification(j)
  if (checks !== undefined) lines.push(checks)
  if (j.damage !== undefined) lines.push(`damage    ${j.damage} (encoded anyway: --allow-damaged)`)
  for (const l of formatGivenBack(j)) lines.push(l)
  if (j.fidelity !== undefined) for (const l of formatFidelitySummary(j)) lines.push(l)
  if (j.chunkList !== undefined) {
    lines.push('', table([['CHUNK', 'STATE', 'FRAMES', 'PEER', 'PROGRESS'], ...j.chunkList.map(c => [
      String(c.index), c.state, String(c.frames), shortPeer(c.holder ?? c.encodedBy ?? '-'),
      c.state === 'leased' ? `${c.framesDone ?? 0}/${c.frames} at ${(c.fps ?? 0).toFixed(1)} fps` : ''
    ])]))
  }
  return lines.join('\n')
}

/** Peers that gave chunks of the job back, with their latest reason: a stall must never be silent. */
export function formatGivenBack (j: JobStatus): string[] {
  return (j.givenBack ?? []).map(g => `given back by ${shortPeer(g.peer)} ${g.times} time${g.times === 1 ? '' : 's'}: ${g.reason.slice(0, 200)}`)
}

/** The fidelity check in a line when it passed, the whole table when it did not. */
export function formatFidelitySummary (j: JobStatus): string[] {
  const f = j.fidelity
  if (f === undefined) return []
  if (f.ok) {
    const notes = f.checks.filter(c => c.detail !== undefined).map(c => `${c.name}: ${c.detail ?? ''}`)
    return [`fidelity  ok: ${f.checks.length} checks passed (${f.checks.map(c => c.name).join(', ')})`, ...notes.map(n => `          note: ${n}`)]
  }
  return ['fidelity  FAILED:', ...f.checks.map(c => `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: source ${c.source}; output ${c.output}${c.detail !== undefined ? ` (${c.detail})` : ''}`)]
}

/** Until when a ban holds, in local time; a ban that is over and holds only on jobs says so. */
export function banUntil (b: BannedPeerInfo, now = Date.now()): string {
  if (!b.active) return 'over; still refused on its jobs'
  const left = Date.parse(b.until) - now
  const hours = left / 3_600_000
  return `until ${new Date(b.until).toLocaleString()} (${hours >= 1 ? `${hours.toFixed(1)} h` : `${Math.max(1, Math.ceil(left / 60_000))} min`} left)`
}

/** `swarm peers`: one block per peer, full ids (they are what --bootstrap needs). */
export function formatPeers (p: PeersJson): string {
  const lines = [`this node ${p.peerId}`, `${p.peers.length} peer${p.peers.length === 1 ? '' : 's'} connected`]
  for (const peer of p.peers) {
    lines.push('', peer.id)
    lines.push(`  found by  ${peer.foundBy.join(', ')}`)
    lines.push(`  path      ${pathText(peer)}`)
    lines.push(`  latency   ${peer.latencyMs === null ? 'no answer to ping' : `${peer.latencyMs} ms`}`)
    lines.push(`  encoders  ${peer.encoders === undefined ? 'not advertised (a node from before encoders were, or not a swarm node)' : peer.encoders.map(e => `${e.encoder} ${e.version}`).join(', ') || 'none'}`)
    for (const [i, a] of (peer.addresses.length > 0 ? peer.addresses : ['-']).entries()) lines.push(`  ${i === 0 ? 'address ' : '        '}  ${a}`)
    lines.push(`  encoding  ${peer.encoding.length === 0
      ? 'nothing for this node'
      : `${peer.encoding.map(c => `${shortChunk(c.jobId, c.chunk)} ${c.framesDone}/${c.frames}`).join(', ')} (${peer.fps.toFixed(1)} fps)`}`)
  }
  const banned = p.banned ?? []
  if (banned.length > 0) {
    lines.push('', `${banned.length} banned (lift a ban with: swarm peers unban PEER)`)
    for (const b of banned) {
      lines.push('', b.id, `  banned    ${banUntil(b)} (ban ${b.strikes})`, `  reason    ${b.reason}`)
      if (b.jobs.length > 0) lines.push(`  jobs      ${b.jobs.map(j => shortJob(j)).join(', ')} (refused for as long as the node remembers it)`)
    }
  }
  if (p.unreachable.length > 0) {
    lines.push('', `${p.unreachable.length} found but not connected`)
    for (const u of p.unreachable) {
      lines.push('', u.id, `  found by  ${u.foundBy.join(', ')}`, `  failed    ${u.attempts} time${u.attempts === 1 ? '' : 's'}: ${u.error}`, `  next try  in ${Math.ceil(u.retryInMs / 1000)} s`)
    }
  }
  return lines.join('\n')
}
