import { readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { PROJECT_ROOT } from '../../scripts/local-swarm.js'

/**
 * A doc that says "`planChunks` in `src/media/plan.ts`" sends the reader to that file for that
 * name. When a change moves or renames it, the sentence goes on pointing at nothing; this finds
 * every such pointer in the docs and fails while the file has no such name.
 */
interface NamePointer { doc: string, line: number, name: string, file: string }

const DOCS = ['README.md', ...readdirSync(join(PROJECT_ROOT, 'docs')).filter(f => f.endsWith('.md')).map(f => `docs/${f}`)]
const NAME = String.raw`[A-Za-z_$][A-Za-z0-9_$.]*(?:\(\))?`
const FILE = String.raw`[A-Za-z0-9_/.-]+\.(?:ts|sh|json)`
/** The ways the docs tie a name to a file: "`X` in `F`", "`X` (`F`)", "`F`'s `X`". (Not "`F`: `X`", which the docs also use for "of the shapes in F".) */
const PATTERNS: Array<{ re: RegExp, name: number, file: number }> = [
  { re: new RegExp(String.raw`\x60(${NAME})\x60 (?:in|of|from) \x60?(${FILE})\x60?`, 'g'), name: 1, file: 2 },
  { re: new RegExp(String.raw`\x60(${NAME})\x60 \(\x60?(${FILE})\x60?[,)]`, 'g'), name: 1, file: 2 },
  { re: new RegExp(String.raw`\x60?(${FILE})\x60?'s \x60(${NAME})\x60`, 'g'), name: 2, file: 1 }
]

function sourceFiles (dir: string): string[] {
  return readdirSync(dir).flatMap(entry => {
    const path = join(dir, entry)
    if (entry === 'node_modules' || entry.startsWith('.') || entry === 'dist') return []
    return statSync(path).isDirectory() ? sourceFiles(path) : [path]
  })
}
const ALL_FILES = ['src', 'cli', 'bench', 'scripts', 'test'].flatMap(d => sourceFiles(join(PROJECT_ROOT, d)))

/** A doc may name a file by its path from the project root or, where that is unambiguous, by its base name. */
function resolveFile (file: string): string[] {
  const direct = join(PROJECT_ROOT, file)
  if (ALL_FILES.includes(direct)) return [direct]
  return ALL_FILES.filter(f => f.endsWith(`/${file}`) || basename(f) === file)
}

/** A code name, not a file, a path or a word: `planChunks`, `FairTurns`, `DEFAULT_LEASE_MS`, `stop()`. */
const CODE_NAME = /^(?:[a-z][a-z0-9]*[A-Z][A-Za-z0-9]*|[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*|[A-Z][A-Z0-9]*_[A-Z0-9_]+)(?:\(\))?$/

/** A module table row, "| `file.ts` | what it holds: `a`, `b` | …": the names in its second cell are that file's. */
function tableRowPointers (line: string): Array<{ name: string, file: string }> {
  const cells = line.split('|').map(c => c.trim())
  const file = /^`([A-Za-z0-9_/.-]+\.ts)`$/.exec(cells[1] ?? '')?.[1]
  if (file === undefined || cells.length < 4) return []
  return [...(cells[2] ?? '').matchAll(/`([^`]+)`/g)].map(m => m[1] as string).filter(n => CODE_NAME.test(n)).map(name => ({ name, file }))
}

export function namePointers (text: string, doc: string): NamePointer[] {
  const found: NamePointer[] = []
  text.split('\n').forEach((line, i) => {
    for (const p of PATTERNS) {
      for (const m of line.matchAll(p.re)) found.push({ doc, line: i + 1, name: m[p.name] as string, file: m[p.file] as string })
    }
    for (const t of tableRowPointers(line)) found.push({ doc, line: i + 1, ...t })
  })
  return found
}

/** True when every dotted part of the name (without a trailing "()") is a word of the file. */
export function fileHasName (source: string, name: string): boolean {
  return name.replace(/\(\)$/, '').split('.').every(part => new RegExp(String.raw`(^|[^A-Za-z0-9_$])${part.replace(/\$/g, '\\$')}($|[^A-Za-z0-9_$])`).test(source))
}

describe('names the docs point at in a file', () => {
  const pointers = DOCS.flatMap(doc => namePointers(readFileSync(join(PROJECT_ROOT, doc), 'utf8'), doc))

  it('finds the pointers (the patterns still match how the docs write them)', () => {
    expect(pointers.length).toBeGreaterThanOrEqual(5)
    expect(namePointers('see `planChunks` in `src/media/plan.ts` and `src/a.ts`\'s `b`, `c()` (`d.ts`)', 'x')).toEqual([
      { doc: 'x', line: 1, name: 'planChunks', file: 'src/media/plan.ts' },
      { doc: 'x', line: 1, name: 'c()', file: 'd.ts' },
      { doc: 'x', line: 1, name: 'b', file: 'src/a.ts' }
    ])
    expect(namePointers('| `plan.ts` | chunks: `planChunks`, `job.json`, `the`, `MAX_X` | `Other` |', 'y').map(p => p.name)).toEqual(['planChunks', 'MAX_X'])
    expect(fileHasName('export function planChunks (', 'planChunks()')).toBe(true)
    expect(fileHasName('export function planChunksLater (', 'planChunks')).toBe(false)
  })

  it.each(pointers.map(p => [`${p.doc}:${p.line} \`${p.name}\` in ${p.file}`, p] as const))('%s exists', (_label, p) => {
    const files = resolveFile(p.file)
    expect(files.length, `${p.doc}:${p.line} names ${p.file}, which is no file of the project (or names several)`).toBe(1)
    expect(fileHasName(readFileSync(files[0] as string, 'utf8'), p.name), `${p.doc}:${p.line} says \`${p.name}\` is in ${p.file}; it is not`).toBe(true)
  })
})
