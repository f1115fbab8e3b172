import { WIRE_ENCODER_IDS, type WireEncoderId } from './contract.js'

/**
 * What a node can encode, told to every peer it connects to. It rides in identify's agent version
 * (`swarm-encode/0.1.0 (x264 0.164.3095; x265 3.5+1-f0c1022b6)`), which libp2p sends on every
 * connection and pushes again when it changes: no protocol of our own, no extra round trip. It is
 * what a peer says of itself, so it only informs (status, the job's record of who encoded with
 * what); a worker decides for itself what it can claim, and every result is checked anyway.
 */
export interface EncoderCapability {
  encoder: WireEncoderId
  version: string
}

const AGENT_NAME = 'swarm-encode'
/** Longest agent version read from a peer: identify's message is bounded, this is ours. */
const MAX_AGENT_CHARS = 512
const VERSION_RE = /^[A-Za-z0-9.+_~-]{1,48}$/

/** A version as it may travel: the characters versions use, at most 48 of them ("unknown" otherwise). */
function wireVersion (version: string): string {
  return VERSION_RE.test(version) ? version : 'unknown'
}

/** This node's agent version: the swarm's version and the encoders it has. */
export function agentVersionOf (appVersion: string, encoders: readonly EncoderCapability[]): string {
  const list = encoders.map(e => `${e.encoder} ${wireVersion(e.version)}`).join('; ')
  return `${AGENT_NAME}/${wireVersion(appVersion)} (${list})`
}

/**
 * The encoders a peer's agent version names; undefined when it is not a swarm node's (or one from
 * before nodes advertised them). Anything malformed names nothing: a peer's words, bounded.
 */
export function encodersFromAgent (agent: string | undefined): EncoderCapability[] | undefined {
  if (agent === undefined || agent.length > MAX_AGENT_CHARS) return undefined
  const m = /^swarm-encode\/[A-Za-z0-9.+_~-]{1,48} \(([^()]*)\)$/.exec(agent)
  if (m === null) return undefined
  const found: EncoderCapability[] = []
  for (const item of (m[1] as string).split('; ')) {
    const [encoder, version, ...rest] = item.split(' ')
    if (rest.length > 0 || version === undefined || !VERSION_RE.test(version)) continue
    if (!(WIRE_ENCODER_IDS as readonly string[]).includes(encoder as string)) continue
    if (found.some(f => f.encoder === encoder)) continue
    found.push({ encoder: encoder as WireEncoderId, version })
  }
  return found
}
