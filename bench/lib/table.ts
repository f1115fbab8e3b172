/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
export function median (xs: number[]): number {
  if (xs.length === 0) return Number.NaN
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] as number : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** Rows as columns padded to their widest cell, two spaces apart, no trailing blanks. */
export function formatTable (rows: string[][]): string {
  const columns = Math.max(0, ...rows.map(r => r.length))
  const widths = Array.from({ length: columns }, (_, c) => Math.max(...rows.map(r => (r[c] ?? '').length)))
  return rows.map(r => r.map((cell, c) => cell.padEnd(widths[c] as number)).join('  ').trimEnd()).join('\n')
}

/** The same rows as a Markdown table (the first row is the header), for pasting into docs/performance.md. */
export function markdownTable (rows: string[][]): string {
  const [head = [], ...body] = rows
  const line = (r: string[]): string => `| ${r.map(c => c.replace(/\|/g, '\\|')).join(' | ')} |`
  return [line(head), `|${head.map(() => '---').join('|')}|`, ...body.map(line)].join('\n')
}
