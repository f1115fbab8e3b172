/*
 * Ids as log lines, the CLI's tables and screens and the dashboard show them: one form each, so a
 * peer named in a log line is found by the same text on a screen. The lengths are part of the text
 * people and tests grep: a job by its first 12 hex digits, a chunk by its job's first 8, a peer by
 * its last 8 characters (the start of every Ed25519 peer id is the same "12D3KooW"). The
 * dashboard, a page of its own, repeats shortPeer (src/dashboard/app.ts); test/cli/dashboard.test.ts
 * checks the two agree.
 */

export function shortJob (jobId: string): string { return jobId.slice(0, 12) }

/** A job where its chunks are named too: the first 8 hex digits, as in `shortChunk`. */
export function jobTag (jobId: string): string { return jobId.slice(0, 8) }

/** A chunk: `<jobTag>#<index>`. */
export function shortChunk (jobId: string, chunk: number): string { return `${jobTag(jobId)}#${chunk}` }

/** A peer: the last 8 characters of its id (all of a shorter one). */
export function shortPeer (peerId: string): string { return peerId.slice(-8) }
