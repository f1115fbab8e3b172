/**
 * The swarm dashboard: one page served by the node's control server on 127.0.0.1. It listens to
 * the server-sent event stream /v1/events (a DashboardEvent per change, at least every 2 s) and
 * updates the page in place: peers, jobs, a chunk map per job, throughput over time and ETA.
 * Between snapshots the same stream carries each node event (an SSE event named `node`): the
 * activity list.
 */

// ---- the shapes the node sends: the control API's own (src/daemon/api.ts), types only ----
import type { BannedPeerInfo, ChunkStatus, DashboardEvent, JobStatus, StatusJson } from '../daemon/api.js'
import type { NodeEvent } from '../swarm/events.js'

// ---- helpers ----
function $ (id: string): HTMLElement {
  const found = document.getElementById(id)
  if (found === null) throw new Error(`#${id} is missing from the page`)
  return found
}

function el<K extends keyof HTMLElementTagNameMap> (tag: K, className = '', text = ''): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag)
  if (className !== '') e.className = className
  if (text !== '') e.textContent = text
  return e
}

function setText (e: Element, text: string): void { if (e.textContent !== text) e.textContent = text }
function setAttr (e: Element, name: string, value: string): void { if (e.getAttribute(name) !== value) e.setAttribute(name, value) }

/** How every log line and screen names a peer (src/log/ids.ts shortPeer; the page loads no other module). */
const shortPeer = (id: string): string => id.slice(-8)

function duration (seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '--:--'
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`
}

function eta (framesLeft: number, fps: number): number | undefined {
  if (framesLeft <= 0) return 0
  return fps > 0 ? framesLeft / fps : undefined
}

const running = (j: JobStatus): boolean => j.state !== 'done' && j.state !== 'failed'

// ---- throughput over time ----
const WINDOW_MS = 120_000
const samples: Array<{ at: number, fps: number }> = []

function drawSparkline (): void {
  const line = $('sparkline-line')
  const last = samples.at(-1)
  if (last === undefined) return
  while (samples.length > 2 && (samples[0]?.at ?? 0) < last.at - WINDOW_MS) samples.shift()
  // Until two minutes have been seen, the samples so far fill the width.
  const from = samples[0]?.at ?? last.at
  const span = Math.max(1000, last.at - from)
  const max = Math.max(1, ...samples.map(h => h.fps))
  const points = samples.map(h => `${(300 * (h.at - from) / span).toFixed(1)},${(58 - 56 * h.fps / max).toFixed(1)}`)
  setAttr(line, 'points', points.join(' '))
}

// ---- jobs ----
interface JobView { root: HTMLElement, state: HTMLElement, file: HTMLElement, fill: HTMLElement, meta: HTMLElement, map: HTMLElement, extra: HTMLElement }
const jobViews = new Map<string, JobView>()

function jobView (job: JobStatus): JobView {
  const known = jobViews.get(job.id)
  if (known !== undefined) return known
  const root = el('section', 'job card')
  root.dataset.jobId = job.id
  const head = el('div', 'job-head')
  const id = el('span', 'job-id', job.id.slice(0, 12))
  id.title = job.id
  const state = el('span', 'state')
  const file = el('span', 'job-file')
  head.append(id, state, file)
  const bar = el('div', 'bar')
  const fill = el('div')
  bar.append(fill)
  const view: JobView = { root, state, file, fill, meta: el('div', 'job-meta'), map: el('div', 'chunk-map'), extra: el('div', 'job-meta') }
  root.append(head, bar, view.meta, view.map, view.extra)
  jobViews.set(job.id, view)
  return view
}

function chunkTitle (c: ChunkStatus): string {
  const parts = [`chunk ${c.index}`, c.state, `${c.frames} frames`]
  if (c.state === 'leased' && c.holder !== undefined) parts.push(`held by ${shortPeer(c.holder)}`, `${c.framesDone ?? 0}/${c.frames} done`, `${(c.fps ?? 0).toFixed(1)} fps`)
  if (c.state === 'done' && c.encodedBy !== undefined) parts.push(`encoded by ${shortPeer(c.encodedBy)}`)
  return parts.join(' · ')
}

function renderChunkMap (map: HTMLElement, chunks: ChunkStatus[]): void {
  while (map.children.length > chunks.length) map.lastElementChild?.remove()
  while (map.children.length < chunks.length) map.append(el('span', 'chunk'))
  chunks.forEach((c, i) => {
    const cell = map.children[i] as HTMLElement
    setAttr(cell, 'data-chunk-state', c.state)
    setAttr(cell, 'data-holder', c.holder ?? c.encodedBy ?? '')
    setAttr(cell, 'title', chunkTitle(c))
    cell.style.setProperty('--progress', c.state === 'leased' && c.frames > 0 ? `${Math.round(100 * (c.framesDone ?? 0) / c.frames)}%` : '0%')
  })
}

function renderJob (job: JobStatus): void {
  const v = jobView(job)
  setAttr(v.state, 'data-state', job.state)
  setText(v.state, job.state)
  setText(v.file, job.output ?? job.file)
  const c = job.chunks
  if (job.local) {
    const fraction = job.totalFrames > 0 ? job.framesDone / job.totalFrames : 0
    v.fill.style.width = `${(100 * fraction).toFixed(1)}%`
    const speed = running(job) ? ` · ${job.fps.toFixed(1)} fps · ETA ${duration(eta(job.totalFrames - job.framesDone, job.fps))}` : ''
    setText(v.meta, `${job.framesDone} / ${job.totalFrames} frames (${Math.floor(100 * fraction)}%)${speed} · chunks ${c.done} done, ${c.leased} leased, ${c.open} open of ${c.total}`)
    renderChunkMap(v.map, job.chunkList ?? [])
    const by = Object.entries(job.encodedBy).map(([peer, n]) => `${shortPeer(peer)} ${n}`).join(', ')
    setText(v.extra, job.error !== undefined ? `failed: ${job.error}` : by !== '' ? `encoded by: ${by}` : '')
    v.extra.classList.toggle('job-error', job.error !== undefined)
  } else {
    v.fill.style.width = `${c.total > 0 ? (100 * c.done / c.total).toFixed(1) : 0}%`
    setText(v.meta, `chunks ${c.done} done, ${c.leased} leased, ${c.open} open of ${c.total} · added on ${shortPeer(job.originator)} (its dashboard has the chunk map)`)
    renderChunkMap(v.map, [])
    setText(v.extra, '')
  }
}

function renderJobs (jobs: JobStatus[]): void {
  const container = $('jobs')
  const ids = new Set(jobs.map(j => j.id))
  for (const [id, v] of jobViews) if (!ids.has(id)) { v.root.remove(); jobViews.delete(id) }
  // Running jobs first, then the finished ones, newest last within each group (the node's order).
  const ordered = [...jobs.filter(running), ...jobs.filter(j => !running(j))]
  for (const job of ordered) {
    renderJob(job)
    container.append(jobViews.get(job.id)?.root as HTMLElement)
  }
  $('no-jobs').hidden = jobs.length > 0
}

// ---- peers ----
function renderPeers (s: StatusJson): void {
  const perHolder = new Map<string, { chunks: string[], fps: number }>()
  for (const job of s.jobs) {
    for (const c of job.chunkList ?? []) {
      if (c.state !== 'leased' || c.holder === undefined) continue
      const h = perHolder.get(c.holder) ?? { chunks: [], fps: 0 }
      h.chunks.push(`${job.id.slice(0, 8)}#${c.index} ${c.framesDone ?? 0}/${c.frames}`)
      h.fps += c.fps ?? 0
      perHolder.set(c.holder, h)
    }
  }
  const rows: Array<{ id: string, label: string, address: string }> = [
    { id: s.peerId, label: `${shortPeer(s.peerId)} (this node)`, address: s.addresses[0] ?? '' },
    ...s.peers.map(p => ({ id: p.id, label: shortPeer(p.id), address: `${p.addresses.join(' ')}${p.foundBy !== undefined ? ` · found by ${p.foundBy.join(', ')}` : ''}${p.connection === 'relayed' ? ` · relayed via ${shortPeer(p.via ?? '?')}` : p.connection === 'direct' ? ' · direct' : ''}` }))
  ]
  const body = document.querySelector('#peers tbody')
  if (body === null) return
  body.replaceChildren(...rows.map(r => {
    const tr = el('tr')
    tr.dataset.peerId = r.id
    const h = perHolder.get(r.id)
    const id = el('td', 'id', r.label)
    id.title = r.id
    tr.append(id, el('td', 'address', r.address), el('td', '', h?.chunks.join(', ') ?? '–'), el('td', 'num', h !== undefined ? h.fps.toFixed(1) : '–'))
    return tr
  }))
  setText($('peer-count'), String(s.peers.length))
}

// ---- the block list ----
function renderBanned (banned: BannedPeerInfo[]): void {
  $('banned-card').hidden = banned.length === 0
  const body = document.querySelector('#banned tbody')
  if (body === null) return
  body.replaceChildren(...banned.map(b => {
    const tr = el('tr')
    tr.dataset.peerId = b.id
    const id = el('td', 'id', shortPeer(b.id))
    id.title = b.id
    const until = b.active ? new Date(b.until).toLocaleString() : 'over; still refused on its jobs'
    // textContent only: the reason may quote what the peer sent.
    tr.append(id, el('td', '', until), el('td', '', b.reason))
    return tr
  }))
}

// ---- node events ----
const ACTIVITY_LINES = 40

/** One line for any event: its type, job and chunk, the other peer, and why, where it says. */
function describeEvent (e: NodeEvent): string {
  const where = 'jobId' in e ? `${e.jobId.slice(0, 8)}${'chunk' in e ? `#${e.chunk}` : ''}` : ''
  const who = 'peer' in e ? shortPeer(e.peer) : 'originator' in e ? `for ${shortPeer(e.originator)}` : ''
  const why = 'reason' in e && e.reason !== undefined ? e.reason : ''
  return [new Date(e.at).toLocaleTimeString(), e.type, where, who, why].filter(p => p !== '').join(' ')
}

function addActivity (e: NodeEvent): void {
  const list = $('activity')
  // textContent only: a reason may quote what a peer sent.
  list.prepend(el('li', '', describeEvent(e)))
  while (list.children.length > ACTIVITY_LINES) list.lastElementChild?.remove()
  $('no-activity').hidden = true
}

// ---- the event stream ----
function render (e: DashboardEvent): void {
  const s = e.status
  setText($('node'), `node ${shortPeer(s.peerId)}`)
  $('node').title = s.peerId
  const local = s.jobs.filter(j => j.local && running(j))
  const fps = local.reduce((sum, j) => sum + j.fps, 0)
  const left = local.reduce((sum, j) => sum + Math.max(0, j.totalFrames - j.framesDone), 0)
  setText($('fps'), fps.toFixed(1))
  setText($('eta'), local.length > 0 ? duration(eta(left, fps)) : '–')
  samples.push({ at: e.at, fps })
  drawSparkline()
  renderPeers(s)
  renderBanned(s.banned ?? [])
  renderJobs(s.jobs)
}

function connect (): void {
  const token = new URLSearchParams(location.search).get('token') ?? ''
  const connection = $('connection')
  const show = (state: string, text: string): void => { setAttr(connection, 'data-connection', state); setText(connection, text) }
  let lastEvent = 0
  const source = new EventSource(`/v1/events?token=${encodeURIComponent(token)}`)
  source.onmessage = (m: MessageEvent<string>) => {
    lastEvent = Date.now()
    show('live', 'live')
    render(JSON.parse(m.data) as DashboardEvent)
  }
  source.addEventListener('node', (m: MessageEvent<string>) => { addActivity(JSON.parse(m.data) as NodeEvent) })
  source.onerror = () => {
    show(source.readyState === EventSource.CLOSED ? 'lost' : 'connecting', source.readyState === EventSource.CLOSED ? 'disconnected: reload (a restarted node prints a new dashboard URL)' : 'reconnecting…')
  }
  // The node sends at least every 2 s: a longer silence means it is gone or stuck.
  setInterval(() => { if (lastEvent > 0 && Date.now() - lastEvent > 6000) show('connecting', 'no updates…') }, 2000)
}

connect()

// A module, so nothing here lands on the global scope.
export {}
