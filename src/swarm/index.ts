export * from './protocol.js'
export {
  JobAnnouncement, JobWithdrawal, TopicMessage, Claim, SignedClaim, Lease, SignedLease, LeaseRequest,
  ChunkRequest, ChunkHeader, ResultRequest, ProtocolViolation, parseFrame, encodeFrame, toRanges, fromRanges, MAX_CHUNKS_PER_JOB
} from './messages.js'
export { signClaim, signLease, verifyClaim, verifyLease, claimBytes, leaseBytes, NonceCache, type Verdict } from './signing.js'
export { loadOrCreateIdentity, IDENTITY_FILE } from './identity.js'
export { createSwarmNode, checkAddresses, banGater, DEFAULT_LISTEN, MDNS_SERVICE_TAG, SCORE_THRESHOLDS, JOBS_TOPIC_SCORE, gossipFastMessageId, type SwarmNode, type SwarmNodeOptions } from './node.js'
export { SwarmEncode, swarmEncode, type LeaseArbiter, type RemoteOriginatorLink, type TransferStats } from './service.js'
export { JOB_STATES, CHUNK_STATES, WIRE_ENCODER_IDS } from './contract.js'
export type {
  JobState, ChunkState, Answer, Refusal, RefusalCode, Offence, ReportOffence, OriginatorRefusalCode, SignatureRefusalCode, StreamRefusalCode, LeaseGrant, ChunkLease, SegmentMeta, SegmentOffer, WireEncoderId, FetchedSegment, SegmentCheck
} from './contract.js'
export { JobBoard } from './board.js'
export { agentVersionOf, encodersFromAgent, type EncoderCapability } from './capabilities.js'
export { stamped } from './events.js'
export type { NodeEvent, NodeEventType, NodeEventOf, OriginatorEvent, WorkerEvent, DaemonEvent, UnstampedEvent, EmitEvent } from './events.js'
export { BanList, BANS_FILE, FIRST_BAN_MS, MAX_BAN_MS, MAX_BAN_RECORDS, MAX_ACTIVE_BANS, MAX_COUNTED_PEERS, VIOLATIONS_TO_BAN, STRIKES_TO_BAN, STRIKE_WINDOW_MS, describeMs, type BanRecord, type BanListOptions } from './bans.js'
export { parseSwarmKey, generateSwarmKey, looseKeyWarning, SwarmKeyError } from './private-swarm.js'
export { FramedStream, TransferTooSlow } from './streams.js'
export { DiscoveredPeers, PeerDialer, peerDialer, tagDiscovery, describeDialError, DISCOVERY_SOURCES, type DiscoverySource, type FoundBy, type UnreachablePeer } from './discovery.js'
export { DEFAULT_RELAY_LIMITS, describeRelayLimits, isRelayed, pathOf, judgeReachability, type PeerPath, type RelayLimits, type Reachability, type ReachVerdict } from './reach.js'
export { membersKey, MEMBERS_KEY_TAG, PUBLIC_SWARM_NAME } from './members.js'
