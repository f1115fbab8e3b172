import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'
import { PROJECT_ROOT } from '../../scripts/local-swarm.js'

/**
 * A function too long to read at once usually does several jobs (issue 25). Counted: a function's
 * own lines, without the functions written inside it, so that a factory returning an object of
 * methods is measured method by method, as a class would be.
 */
export const MAX_FUNCTION_LINES = 80

export interface LongFunction { file: string, line: number, name: string, ownLines: number }

export function longFunctions (fileName: string, text: string, limit = MAX_FUNCTION_LINES): LongFunction[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true)
  const lineOf = (pos: number): number => sf.getLineAndCharacterOfPosition(pos).line
  const span = (n: ts.Node): number => lineOf(n.end) - lineOf(n.getStart(sf)) + 1
  const found: LongFunction[] = []
  const nestedLines = (n: ts.Node): number => {
    let sum = 0
    n.forEachChild(c => { sum += ts.isFunctionLike(c) && hasBody(c) ? span(c) : nestedLines(c) })
    return sum
  }
  const visit = (n: ts.Node): void => {
    if (ts.isFunctionLike(n) && hasBody(n)) {
      const own = span(n) - nestedLines((n as ts.FunctionLikeDeclaration).body as ts.Node)
      if (own > limit) found.push({ file: fileName, line: lineOf(n.getStart(sf)) + 1, name: nameOf(n, sf), ownLines: own })
    }
    n.forEachChild(visit)
  }
  visit(sf)
  return found
}

function hasBody (n: ts.SignatureDeclaration): boolean {
  return 'body' in n && n.body !== undefined
}

function nameOf (n: ts.SignatureDeclaration, sf: ts.SourceFile): string {
  if (n.name !== undefined) return n.name.getText(sf)
  const p = n.parent
  if (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p)) return p.name.getText(sf)
  return '(anonymous)'
}

function tsFiles (dir: string): string[] {
  return readdirSync(dir).flatMap(e => {
    const p = join(dir, e)
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : []
  })
}

describe('function length', () => {
  it('measures a function by its own lines, not those of the functions inside it', () => {
    const body = (n: number): string => Array.from({ length: n }, (_, i) => `  const v${i} = ${i}`).join('\n')
    expect(longFunctions('a.ts', `function long () {\n${body(85)}\n}`).map(f => [f.name, f.ownLines])).toEqual([['long', 87]])
    expect(longFunctions('b.ts', `function factory () {\n  return {\n    m () {\n${body(50)}\n    },\n    n: () => {\n${body(50)}\n    }\n  }\n}`)).toEqual([])
    expect(longFunctions('c.ts', `class C {\n  method () {\n${body(90)}\n  }\n}`).map(f => f.name)).toEqual(['method'])
  })

  it(`no function in src/, cli/, bench/ or scripts/ is over ${MAX_FUNCTION_LINES} lines of its own (the CLI's help texts aside)`, () => {
    const files = ['src', 'cli', 'bench', 'scripts'].flatMap(d => tsFiles(join(PROJECT_ROOT, d)))
    const long = files.flatMap(f => longFunctions(relative(PROJECT_ROOT, f), readFileSync(f, 'utf8')))
    expect(long.map(f => `${f.file}:${f.line} ${f.name} has ${f.ownLines} lines`)).toEqual([])
  })
})
