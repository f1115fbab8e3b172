/*
 * Ids as log lines (and the CLI's tables) show them. The lengths are part of the text people and
 * tests grep: a job by its first 12 hex digits, a chunk by its job's first 8, a peer by its last 8
 * characters (the start of every Ed25519 peer id is the same "12D3KooW").
 */

export function shortJob (jobId: string): string { return jobId.slice(0, 12) }

/** A job where its chunks are named too: the first 8 hex digits, as in `shortChunk`. */
export function jobTag (jobId: string): string { return jobId.slice(0, 8) }

/** A chunk: `<jobTag>#<index>`. */
export function shortChunk (jobId: string, chunk: number): string { return `${jobTag(jobId)}#${chunk}` }

export function shortPeer (peerId: string): string { return peerId.slice(-8) }
