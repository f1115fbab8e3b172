/**
 * Text from other peers reaches the terminal: a job's name and settings, a refusal's reason, an
 * error a worker sent. A terminal obeys the control characters in it (ESC sequences can retitle the
 * window, clear the screen, move the cursor, or on some terminals worse), so every byte written
 * passes through `printable` first: C0 and C1 controls other than newline and tab, DEL, and the
 * bidirectional overrides that reorder what a line appears to say are written as the six visible
 * characters `\uXXXX`. Inside a JSON string that is the same character escaped, so `--json`
 * output stays valid and loses nothing.
 */
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g

export function printable (text: string): string { return text.replace(UNPRINTABLE, c => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`) }

/** How every command writes: results to stdout, one newline-terminated record at a time; problems to stderr, prefixed "swarm:". */
export function out (text: string): void { const t = printable(text); process.stdout.write(t.endsWith('\n') ? t : `${t}\n`) }
export function err (text: string): void { process.stderr.write(`swarm: ${printable(text)}\n`) }
