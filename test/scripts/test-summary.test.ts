import { describe, expect, it } from 'vitest'
import { closingLine } from '../../scripts/test-summary.js'

describe('closingLine', () => {
  it('prints the counts of a vitest JSON report as the plain line CI reads', () => {
    const report = { numPassedTests: 1179, numFailedTests: 2, numPendingTests: 0, numTodoTests: 0, testResults: [] }
    expect(closingLine(JSON.stringify(report))).toBe('1179 passed, 2 failed')
  })

  it('adds skipped and todo tests, and refuses a report without counts', () => {
    const report = { numPassedTests: 3, numFailedTests: 0, numPendingTests: 1, numTodoTests: 1 }
    expect(closingLine(JSON.stringify(report))).toBe('3 passed, 0 failed, 2 skipped')
    expect(() => closingLine('{"testResults": []}')).toThrow()
  })
})
