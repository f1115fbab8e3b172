/** How every command writes: results to stdout, one newline-terminated record at a time; problems to stderr, prefixed "swarm:". */
export function out (text: string): void { process.stdout.write(text.endsWith('\n') ? text : `${text}\n`) }
export function err (text: string): void { process.stderr.write(`swarm: ${text}\n`) }
