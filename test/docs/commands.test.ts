import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { COMMAND_NAMES } from '../../cli/commands/index.js'
import { checkCommandLine } from '../../cli/main.js'
import { splitSettings } from '../../src/media/index.js'
import { PROJECT_ROOT } from '../../scripts/local-swarm.js'

/**
 * Every command line in README.md and docs/ must still be true: each `swarm …` line uses a command
 * and options the CLI has (checked by the CLI's own parser), each `bash scripts/…` names a script
 * that exists, each `npm run …` a script in package.json, each `node dist/….js` a source file. The
 * end-to-end tests and the demo run the commands themselves.
 */
const docs = ['README.md', ...readdirSync(join(PROJECT_ROOT, 'docs')).filter(f => f.endsWith('.md')).map(f => `docs/${f}`)]
const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }

interface DocLine { file: string, line: number, text: string }

const COMMANDS = [...COMMAND_NAMES, 'help']

function commandLines (file: string): DocLine[] {
  const out: DocLine[] = []
  let block: string | undefined
  readFileSync(join(PROJECT_ROOT, file), 'utf8').split('\n').forEach((raw, i) => {
    const fence = /^\s*```(\w*)/.exec(raw)
    if (fence !== null) { block = block === undefined ? fence[1] ?? '' : undefined; return }
    // Shell blocks are commands; other blocks (pictures, sample output) are not.
    const shell = block !== undefined && ['sh', 'bash', 'shell', 'console'].includes(block)
    const candidates = block !== undefined ? (shell ? [raw.trim()] : []) : [...raw.matchAll(/`([^`]+)`/g)].map(m => m[1] as string)
    for (const c of candidates) {
      // Prompts, comments, pipes and usage brackets are notation, not arguments.
      const text = c.replace(/^\$\s+/, '').replace(/\s+#\s.*$/, '').replace(/\s+\|\s.*$/, '').replace(/[[\]]/g, '').replace(/(\.\.\.|…)/g, '').trim()
      const swarm = /^swarm(\s+(\S+))?/.exec(text)
      // In prose, `swarm <word>` is a command only when the word is one of ours (or an option).
      if (swarm !== null && (shell || swarm[2] === undefined || COMMANDS.includes(swarm[2]) || swarm[2].startsWith('-'))) {
        if (swarm[2] !== undefined || shell) out.push({ file, line: i + 1, text })
      } else if (/^(bash scripts\/|npm run |node dist\/)/.test(text)) {
        out.push({ file, line: i + 1, text })
      }
    }
  })
  return out
}

const lines = docs.flatMap(commandLines)

describe('command lines in the docs', () => {
  it('finds the documented commands', () => {
    expect(lines.filter(l => l.text.startsWith('swarm ')).length).toBeGreaterThan(20)
  })

  it.each(lines.map(l => [`${l.file}:${l.line}`, l.text] as const))('%s: %s', (_where, text) => {
    if (text.startsWith('swarm')) {
      // Split as a shell would (quotes kept together), then drop the program name. Bare `swarm`
      // prints the help.
      const argv = splitSettings(text).slice(1)
      if (argv.length > 0) expect(checkCommandLine(argv)).toBeUndefined()
    } else if (text.startsWith('bash scripts/')) {
      expect(existsSync(join(PROJECT_ROOT, text.split(/\s+/)[1] as string))).toBe(true)
    } else if (text.startsWith('npm run ')) {
      expect(Object.keys(pkg.scripts)).toContain(text.split(/\s+/)[2])
    } else {
      const js = text.split(/\s+/)[1] as string
      const source = js.replace(/^dist\//, '').replace(/\.js$/, '.ts')
      expect(existsSync(join(PROJECT_ROOT, source)), `${js} is built from ${source}`).toBe(true)
    }
  })
})
