import { randomBytes } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { CLAIM_MAX_LIFETIME_MS, CLAIM_MAX_SKEW_MS, CLAIM_LIFETIME_MS } from './protocol.js'
import type { Claim, Lease, SignedClaim, SignedLease } from './messages.js'
import type { SignatureRefusalCode } from './contract.js'

/**
 * Claims and leases are signed with the peers' libp2p keys. What is signed is a domain tag plus
 * the fields in a fixed order, so a signature made for one kind of message can never be passed
 * off as another, and JSON key order on the wire does not matter.
 */
const CLAIM_DOMAIN = 'swarm-encode/claim/1\n'
const LEASE_DOMAIN = 'swarm-encode/lease/1\n'

export function claimBytes (c: Claim): Uint8Array {
  return new TextEncoder().encode(CLAIM_DOMAIN + JSON.stringify([c.v, c.jobId, c.chunk, c.claimant, c.issuedAt, c.expiresAt, c.nonce]))
}

export function leaseBytes (l: Lease): Uint8Array {
  return new TextEncoder().encode(LEASE_DOMAIN + JSON.stringify([l.v, l.jobId, l.chunk, l.holder, l.originator, l.leaseId, l.issuedAt, l.expiresAt]))
}

export async function signClaim (key: PrivateKey, claimant: string, jobId: string, chunk: number, now: number, lifetimeMs = CLAIM_LIFETIME_MS): Promise<SignedClaim> {
  const claim: Claim = { v: 1, jobId, chunk, claimant, issuedAt: now, expiresAt: now + lifetimeMs, nonce: randomBytes(16).toString('hex') }
  const signature = await key.sign(claimBytes(claim))
  return { claim, signature: Buffer.from(signature).toString('base64') }
}

export async function signLease (key: PrivateKey, lease: Lease): Promise<SignedLease> {
  const signature = await key.sign(leaseBytes(lease))
  return { lease, signature: Buffer.from(signature).toString('base64') }
}

export type Verdict<T> = { ok: true, value: T } | { ok: false, code: SignatureRefusalCode, message: string }

/** Checks a signature against the public key embedded in a peer id (Ed25519 and secp256k1 ids carry it). */
async function verifyBy (peer: string, bytes: Uint8Array, signatureB64: string): Promise<boolean> {
  let key
  try {
    key = peerIdFromString(peer).publicKey
  } catch {
    return false
  }
  if (key === undefined) return false
  try {
    return await key.verify(bytes, Buffer.from(signatureB64, 'base64'))
  } catch {
    return false
  }
}

/**
 * Remembers the nonces of accepted claims until they expire, so a claim captured on the wire
 * cannot be played again. Bounded: beyond `max` entries the oldest go first (by then they are
 * expired in any sane swarm, and an expired claim is refused anyway).
 */
export class NonceCache {
  private readonly seen = new Map<string, number>()
  constructor (private readonly max = 100_000) {}

  /** True if the nonce is new (and now remembered), false if it was seen before. */
  remember (key: string, until: number, now: number): boolean {
    if (this.seen.has(key)) return false
    if (this.seen.size >= this.max) {
      // Expired entries go first; only if the cache is still full do the oldest live ones go
      // (down to 90%, so this work is not repeated on every insert).
      for (const [k, t] of this.seen) if (t <= now) this.seen.delete(k)
      const keep = Math.floor(this.max * 0.9)
      for (const k of this.seen.keys()) { if (this.seen.size <= keep) break; this.seen.delete(k) }
    }
    this.seen.set(key, until)
    return true
  }

  get size (): number { return this.seen.size }
}

/**
 * The originator's check of a claim: signed by the claimant's own key, sent by the claimant
 * itself over its authenticated connection, within its validity window, and never seen before.
 */
export async function verifyClaim (signed: SignedClaim, o: { remotePeer: string, now: number, nonces: NonceCache }): Promise<Verdict<Claim>> {
  const { claim } = signed
  if (!await verifyBy(claim.claimant, claimBytes(claim), signed.signature)) {
    return { ok: false, code: 'bad-signature', message: `claim for chunk ${claim.chunk} is not signed by its claimant ${claim.claimant}` }
  }
  if (claim.claimant !== o.remotePeer) {
    return { ok: false, code: 'wrong-signer', message: `claim names ${claim.claimant} but came from ${o.remotePeer}` }
  }
  if (claim.issuedAt > o.now + CLAIM_MAX_SKEW_MS) {
    return { ok: false, code: 'not-yet-valid', message: `claim issued ${claim.issuedAt - o.now} ms in the future (clock skew?)` }
  }
  if (claim.expiresAt <= o.now || claim.expiresAt - claim.issuedAt > CLAIM_MAX_LIFETIME_MS || claim.expiresAt <= claim.issuedAt) {
    return { ok: false, code: 'expired', message: `claim for chunk ${claim.chunk} expired or has a bad validity window` }
  }
  if (!o.nonces.remember(`${claim.claimant}/${claim.nonce}`, claim.expiresAt, o.now)) {
    return { ok: false, code: 'replayed', message: `claim nonce ${claim.nonce.slice(0, 8)} was already used` }
  }
  return { ok: true, value: claim }
}

/** The worker's check of a lease: signed by the originator it asked, for the chunk it claimed, to itself. */
export async function verifyLease (signed: SignedLease, o: { originator: string, holder: string, jobId: string, chunk: number }): Promise<Verdict<Lease>> {
  const { lease } = signed
  if (lease.originator !== o.originator || !await verifyBy(o.originator, leaseBytes(lease), signed.signature)) {
    return { ok: false, code: 'bad-signature', message: `lease is not signed by originator ${o.originator}` }
  }
  if (lease.holder !== o.holder || lease.jobId !== o.jobId || lease.chunk !== o.chunk) {
    return { ok: false, code: 'wrong-signer', message: 'lease is for another peer or chunk than the one claimed' }
  }
  return { ok: true, value: lease }
}
