import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import { logger, shortPeer, type Logger, type LogSink } from '../log/index.js'
import { JOBS_TOPIC, MAX_ANNOUNCEMENT_BYTES } from './protocol.js'
import { encodeFrame, parseFrame, TopicMessage, type JobAnnouncement, type JobWithdrawal } from './messages.js'

export interface JobBoardOptions {
  self: string
  onAnnouncement: (a: JobAnnouncement) => void
  onWithdrawal: (w: JobWithdrawal) => void
  /** Originators banned from this node, or from one job (bans.ts): their messages are ignored, and not passed on. */
  isBanned?: (peer: string, jobId?: string) => boolean
  log?: LogSink
}

/**
 * Job announcements over gossipsub. The topic validator is the edge: a message that is too big,
 * does not parse, is unsigned, or speaks for an originator other than its signer is rejected
 * (gossipsub then scores its sender down) and never reaches the handlers.
 */
export class JobBoard {
  rejected = 0
  /** Valid messages of banned originators, dropped unread by the handlers. */
  ignored = 0
  published = 0
  private readonly log: Logger
  private readonly onMessage = (evt: CustomEvent<Message>): void => {
    if (evt.detail.topic !== JOBS_TOPIC) return
    const msg = this.check(evt.detail)
    if (msg === undefined || this.o.isBanned?.(msg.originator, msg.jobId) === true) return
    if (msg.type === 'job') this.o.onAnnouncement(msg)
    else this.o.onWithdrawal(msg)
  }

  constructor (private readonly pubsub: GossipSub, private readonly o: JobBoardOptions) {
    this.log = logger('swarm', o.log)
  }

  start (): void {
    this.pubsub.topicValidators.set(JOBS_TOPIC, (_peer, message) => {
      const msg = this.check(message)
      if (msg === undefined) { this.rejected++; return TopicValidatorResult.Reject }
      // Ignored rather than rejected: the peer that relayed it is not at fault, only its signer.
      if (this.o.isBanned?.(msg.originator, msg.jobId) === true) { this.ignored++; return TopicValidatorResult.Ignore }
      return TopicValidatorResult.Accept
    })
    this.pubsub.addEventListener('message', this.onMessage)
    this.pubsub.subscribe(JOBS_TOPIC)
  }

  stop (): void {
    this.pubsub.removeEventListener('message', this.onMessage)
    this.pubsub.topicValidators.delete(JOBS_TOPIC)
    try { this.pubsub.unsubscribe(JOBS_TOPIC) } catch { /* already stopped */ }
  }

  /** Parses and authenticates a topic message; undefined means reject. */
  check (message: Message): TopicMessage | undefined {
    if (message.data.byteLength > MAX_ANNOUNCEMENT_BYTES) {
      this.log.debug(`rejected a ${message.data.byteLength}-byte announcement (limit ${MAX_ANNOUNCEMENT_BYTES})`)
      return undefined
    }
    if (message.type !== 'signed') { this.log.debug('rejected an unsigned announcement'); return undefined }
    let parsed: TopicMessage
    try {
      parsed = parseFrame(TopicMessage, message.data, 'announcement')
    } catch (err) {
      this.log.debug(`rejected an announcement from ${shortPeer(message.from.toString())}: ${(err as Error).message}`)
      return undefined
    }
    if (parsed.originator !== message.from.toString()) {
      this.log.debug(`rejected an announcement from ${shortPeer(message.from.toString())} in the name of ${shortPeer(parsed.originator)}`)
      return undefined
    }
    return parsed
  }

  async publish (msg: TopicMessage): Promise<void> {
    const data = encodeFrame(msg)
    if (data.byteLength > MAX_ANNOUNCEMENT_BYTES) {
      this.log.debug(`not publishing a ${data.byteLength}-byte announcement (limit ${MAX_ANNOUNCEMENT_BYTES})`)
      return
    }
    try {
      this.published++
      await this.pubsub.publish(JOBS_TOPIC, data)
    } catch (err) {
      this.log.debug(`could not publish: ${(err as Error).message}`)
    }
  }
}
