/**
 * How an encode's processes share the machine. 'idle': Linux's SCHED_IDLE class, CPU nobody else
 * wants (a desktop lending spare cycles; the node's own checks and heartbeats always go first, and
 * SVT-AV1's many threads cannot outweigh them as they do at a nice value). 'low': nice 10 in the
 * normal class, a small share even on a machine kept busy by other work. 'normal': as the node.
 */
export type EncodePriority = 'idle' | 'low' | 'normal'
export const ENCODE_PRIORITIES: readonly EncodePriority[] = ['idle', 'low', 'normal']
/** The nice value of a 'low' priority encode. */
export const LOW_PRIORITY_NICENESS = 10
