import { describe, expect, it } from 'vitest'
import { printable } from '../../cli/output.js'

describe('printable', () => {
  it('writes terminal control characters from peers as visible \\uXXXX escapes, keeping newlines, tabs and ordinary text', () => {
    expect(printable('Show - 01 [ABCD1234].mkv\ttab\nline')).toBe('Show - 01 [ABCD1234].mkv\ttab\nline')
    expect(printable('a\x1b]0;pwned\x07b\x1b[2Jc')).toBe('a\\u001b]0;pwned\\u0007b\\u001b[2Jc')
    expect(printable('\x9b31m\x7f\r')).toBe('\\u009b31m\\u007f\\u000d')
    // Bidirectional overrides that make "exe.mkv" read as something else.
    expect(printable('evil\u202Evkm.exe')).toBe('evil\\u202evkm.exe')
    expect(printable('日本語 — ok')).toBe('日本語 — ok')
  })

  it('keeps JSON valid and lossless: inside a string the escape is the same character', () => {
    const value = { name: 'x\u0085y\u202ez' }
    expect(JSON.parse(printable(JSON.stringify(value)))).toEqual(value)
  })
})
