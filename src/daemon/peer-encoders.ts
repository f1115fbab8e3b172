import type { IdentifyResult, PeerId } from '@libp2p/interface'
import { encodersFromAgent, type EncoderCapability } from '../swarm/index.js'

interface IdentifyEvents {
  addEventListener: ((type: 'peer:identify', listener: (e: CustomEvent<IdentifyResult>) => void) => void) & ((type: 'peer:disconnect', listener: (e: CustomEvent<PeerId>) => void) => void)
  removeEventListener: ((type: 'peer:identify', listener: (e: CustomEvent<IdentifyResult>) => void) => void) & ((type: 'peer:disconnect', listener: (e: CustomEvent<PeerId>) => void) => void)
}

/**
 * The encoders each connected peer advertises, as identify last told us (swarm/capabilities.ts),
 * kept while it is connected: what status and peers show, and what tells a user that no peer can
 * take a job's encoder. A peer's own word: it decides nothing a check does not confirm.
 */
export class PeerEncoders {
  private readonly byPeer = new Map<string, EncoderCapability[]>()
  private readonly onIdentify = (e: CustomEvent<IdentifyResult>): void => {
    const encoders = encodersFromAgent(e.detail.agentVersion)
    const peer = e.detail.peerId.toString()
    if (encoders === undefined) this.byPeer.delete(peer)
    else this.byPeer.set(peer, encoders)
  }

  private readonly onDisconnect = (e: CustomEvent<PeerId>): void => { this.byPeer.delete(e.detail.toString()) }

  constructor (private readonly events: IdentifyEvents) {
    events.addEventListener('peer:identify', this.onIdentify)
    events.addEventListener('peer:disconnect', this.onDisconnect)
  }

  /** What the peer advertises; undefined when it names no encoder (an older node, or not a swarm node). */
  of (peer: string): EncoderCapability[] | undefined { return this.byPeer.get(peer) }

  stop (): void {
    this.events.removeEventListener('peer:identify', this.onIdentify)
    this.events.removeEventListener('peer:disconnect', this.onDisconnect)
  }
}
