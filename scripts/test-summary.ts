// Prints the suite's closing line in the plain form any CI reads ("N passed, N failed"): vitest's
// own summary is laid out for people, and CI judged green runs of it as runs of no test. The line
// is the bare form, nothing before the counts: with a "tests:" before them CI still read two green
// runs as runs of no test.
import { readFileSync } from 'node:fs'
import { z } from 'zod'

const VitestJsonReport = z.object({
  numPassedTests: z.number().int().nonnegative(),
  numFailedTests: z.number().int().nonnegative(),
  numPendingTests: z.number().int().nonnegative(),
  numTodoTests: z.number().int().nonnegative().optional()
})

export function closingLine(reportJson: string): string {
  const report = VitestJsonReport.parse(JSON.parse(reportJson))
  const skipped = report.numPendingTests + (report.numTodoTests ?? 0)
  const tail = skipped > 0 ? `, ${skipped} skipped` : ''
  return `${report.numPassedTests} passed, ${report.numFailedTests} failed${tail}`
}

if (process.argv[1]?.endsWith('test-summary.js') || process.argv[1]?.endsWith('test-summary.ts')) {
  const file = process.argv[2]
  if (file === undefined) throw new Error('usage: test-summary REPORT.json')
  process.stdout.write(`${closingLine(readFileSync(file, 'utf8'))}\n`)
}
