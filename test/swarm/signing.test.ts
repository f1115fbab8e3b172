import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { randomBytes } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  CLAIM_LIFETIME_MS, CLAIM_MAX_LIFETIME_MS, CLAIM_MAX_SKEW_MS, claimBytes, leaseBytes, NonceCache, signClaim, signLease,
  verifyClaim, verifyLease, type Verdict
} from '../../src/swarm/index.js'
import type { Lease, SignedClaim } from '../../src/swarm/messages.js'
import { recordTally } from '../helpers/tally.js'

const CLAIMS = 'Hostile input: claims'
const tally = (fault: string, happened: string): void => { recordTally({ section: CLAIMS, fault, happened, lost: 'nothing' }) }

const JOB = 'ab'.repeat(32)
const OTHER_JOB = 'cd'.repeat(32)
const NOW = 1_700_000_000_000

interface Peer { key: PrivateKey, id: string }
async function makePeer (): Promise<Peer> {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key).toString() }
}

let alice: Peer
let mallory: Peer
let origin: Peer

beforeAll(async () => {
  [alice, mallory, origin] = await Promise.all([makePeer(), makePeer(), makePeer()])
})

function refusedWith<T> (v: Verdict<T>, code: string): void {
  expect(v.ok).toBe(false)
  if (!v.ok) {
    expect(v.code).toBe(code)
    expect(v.message.length).toBeGreaterThan(0)
  }
}

async function check (signed: SignedClaim, remotePeer = alice.id, now = NOW, nonces = new NonceCache()): Promise<Verdict<unknown>> {
  return await verifyClaim(signed, { remotePeer, now, nonces })
}

describe('claims', () => {
  it('accepts a valid claim from its claimant and returns it', async () => {
    const signed = await signClaim(alice.key, alice.id, JOB, 7, NOW)
    expect(signed.claim).toMatchObject({ v: 1, jobId: JOB, chunk: 7, claimant: alice.id, issuedAt: NOW, expiresAt: NOW + CLAIM_LIFETIME_MS })
    expect(signed.claim.nonce).toMatch(/^[0-9a-f]{32}$/)
    expect(Buffer.from(signed.signature, 'base64')).toHaveLength(64)
    const v = await check(signed)
    expect(v).toEqual({ ok: true, value: signed.claim })
  })

  it('gives every claim a fresh nonce', async () => {
    const a = await signClaim(alice.key, alice.id, JOB, 0, NOW)
    const b = await signClaim(alice.key, alice.id, JOB, 0, NOW)
    expect(a.claim.nonce).not.toBe(b.claim.nonce)
  })

  it('does not depend on JSON key order on the wire', async () => {
    const signed = await signClaim(alice.key, alice.id, JOB, 3, NOW)
    const c = signed.claim
    const reordered = { nonce: c.nonce, expiresAt: c.expiresAt, issuedAt: c.issuedAt, claimant: c.claimant, chunk: c.chunk, jobId: c.jobId, v: c.v }
    const roundTripped = JSON.parse(JSON.stringify({ claim: reordered, signature: signed.signature })) as SignedClaim
    expect((await check(roundTripped)).ok).toBe(true)
  })

  it.each([
    ['chunk', { chunk: 8 }],
    ['jobId', { jobId: OTHER_JOB }],
    ['expiresAt', { expiresAt: NOW + CLAIM_LIFETIME_MS + 1 }],
    ['issuedAt', { issuedAt: NOW - 1 }],
    ['nonce', { nonce: '0'.repeat(32) }]
  ])('refuses a claim whose %s was changed after signing (bad-signature)', async (field, change) => {
    const signed = await signClaim(alice.key, alice.id, JOB, 7, NOW)
    refusedWith(await check({ claim: { ...signed.claim, ...change }, signature: signed.signature }), 'bad-signature')
    tally(`claim whose ${field} was changed after signing`, 'refused by verifyClaim with bad-signature')
  })

  it('refuses random signature bytes and a truncated signature (bad-signature)', async () => {
    const signed = await signClaim(alice.key, alice.id, JOB, 7, NOW)
    refusedWith(await check({ claim: signed.claim, signature: randomBytes(64).toString('base64') }), 'bad-signature')
    refusedWith(await check({ claim: signed.claim, signature: signed.signature.slice(0, 40) }), 'bad-signature')
    refusedWith(await check({ claim: signed.claim, signature: 'AAAA' }), 'bad-signature')
    tally('claim with 64 random signature bytes', 'refused with bad-signature')
    tally('claim with its signature truncated to 40 base64 characters', 'refused with bad-signature')
    tally('claim with a 3-byte signature ("AAAA")', 'refused with bad-signature')
  })

  it('refuses a claim signed by another key than the claimant\'s (bad-signature)', async () => {
    // Mallory signs a claim naming Alice, and even sends it over a connection that claims to be Alice.
    const forged = await signClaim(mallory.key, alice.id, JOB, 7, NOW)
    refusedWith(await check(forged, alice.id), 'bad-signature')
    tally('claim naming Alice as claimant, signed with Mallory\'s key, arriving on a connection authenticated as Alice', 'refused with bad-signature')
  })

  it('refuses a claim naming a claimant whose id carries no usable key (bad-signature)', async () => {
    const signed = await signClaim(alice.key, alice.id, JOB, 7, NOW)
    const notAPeer = { ...signed.claim, claimant: '1'.repeat(46) }
    refusedWith(await check({ claim: notAPeer, signature: signed.signature }, notAPeer.claimant), 'bad-signature')
    tally('claim naming a claimant whose peer id carries no public key', 'refused with bad-signature')
  })

  it('refuses a lease signature passed off as a claim signature (domain separation)', async () => {
    const signed = await signClaim(alice.key, alice.id, JOB, 7, NOW)
    const c = signed.claim
    expect(Buffer.from(claimBytes(c)).toString()).toMatch(/^swarm-encode\/claim\/1\n/)
    const lease: Lease = { v: 1, jobId: JOB, chunk: 7, holder: alice.id, originator: alice.id, leaseId: '0'.repeat(24), issuedAt: c.issuedAt, expiresAt: c.expiresAt }
    expect(Buffer.from(leaseBytes(lease)).toString()).toMatch(/^swarm-encode\/lease\/1\n/)
    const leaseSig = await signLease(alice.key, lease)
    refusedWith(await check({ claim: c, signature: leaseSig.signature }), 'bad-signature')
    tally('claim carrying a lease signature by the same key over the same fields (cross-protocol replay)', 'refused with bad-signature (domain separation)')
  })

  it('refuses a valid claim relayed by a peer other than its claimant (wrong-signer)', async () => {
    const signed = await signClaim(alice.key, alice.id, JOB, 7, NOW)
    refusedWith(await check(signed, mallory.id), 'wrong-signer')
    tally('Alice\'s genuine claim relayed by Mallory', 'refused with wrong-signer')
  })

  it('refuses an expired claim (expired)', async () => {
    const signed = await signClaim(alice.key, alice.id, JOB, 7, NOW)
    refusedWith(await check(signed, alice.id, NOW + CLAIM_LIFETIME_MS), 'expired')
    refusedWith(await check(signed, alice.id, NOW + CLAIM_LIFETIME_MS + 60_000), 'expired')
    // One millisecond before it runs out it is still good.
    expect((await check(signed, alice.id, NOW + CLAIM_LIFETIME_MS - 1)).ok).toBe(true)
    tally('claim presented at and after its expiry', 'refused with expired; 1 ms before expiry it is accepted')
  })

  it('refuses a claim whose lifetime is over the maximum (expired)', async () => {
    const tooLong = await signClaim(alice.key, alice.id, JOB, 7, NOW, CLAIM_MAX_LIFETIME_MS + 1)
    refusedWith(await check(tooLong), 'expired')
    const longest = await signClaim(alice.key, alice.id, JOB, 7, NOW, CLAIM_MAX_LIFETIME_MS)
    expect((await check(longest)).ok).toBe(true)
    tally(`claim valid for ${CLAIM_MAX_LIFETIME_MS + 1} ms (1 ms over the maximum)`, 'refused with expired; exactly the maximum is accepted')
  })

  it('refuses a claim with an empty or inverted validity window (expired)', async () => {
    const zero = await signClaim(alice.key, alice.id, JOB, 7, NOW + 1000, 0)
    refusedWith(await check(zero), 'expired')
    const inverted = await signClaim(alice.key, alice.id, JOB, 7, NOW + 10_000, -5_000)
    refusedWith(await check(inverted), 'expired')
    tally('claim with an empty validity window (expires when issued)', 'refused with expired')
    tally('claim with an inverted validity window (expires before it is issued)', 'refused with expired')
  })

  it('refuses a claim issued too far in the future (not-yet-valid), tolerates skew within the limit', async () => {
    const future = await signClaim(alice.key, alice.id, JOB, 7, NOW + CLAIM_MAX_SKEW_MS + 1)
    refusedWith(await check(future), 'not-yet-valid')
    const skewed = await signClaim(alice.key, alice.id, JOB, 7, NOW + CLAIM_MAX_SKEW_MS)
    expect((await check(skewed)).ok).toBe(true)
    tally(`claim issued ${CLAIM_MAX_SKEW_MS + 1} ms in the future (1 ms past the allowed clock skew)`, 'refused with not-yet-valid; exactly the allowed skew is accepted')
  })

  it('refuses a replayed nonce (replayed), even long after, while it is still valid', async () => {
    const nonces = new NonceCache()
    const signed = await signClaim(alice.key, alice.id, JOB, 7, NOW)
    expect((await check(signed, alice.id, NOW, nonces)).ok).toBe(true)
    refusedWith(await check(signed, alice.id, NOW, nonces), 'replayed')
    refusedWith(await check(signed, alice.id, NOW + CLAIM_LIFETIME_MS - 1, nonces), 'replayed')
    // Another node (another cache) has not seen it.
    expect((await check(signed, alice.id, NOW, new NonceCache())).ok).toBe(true)
    // A fresh claim from the same peer is fine.
    expect((await check(await signClaim(alice.key, alice.id, JOB, 7, NOW), alice.id, NOW, nonces)).ok).toBe(true)
    tally('claim replayed (same nonce), at once and just before it expires', 'refused with replayed both times; a fresh claim from the same peer is accepted')
  })

  it('does not burn the nonce of a claim it refused for another reason', async () => {
    const nonces = new NonceCache()
    const signed = await signClaim(alice.key, alice.id, JOB, 7, NOW)
    refusedWith(await check(signed, mallory.id, NOW, nonces), 'wrong-signer')
    expect(nonces.size).toBe(0)
    expect((await check(signed, alice.id, NOW, nonces)).ok).toBe(true)
    expect(nonces.size).toBe(1)
  })
})

describe('leases', () => {
  const expect_ = (): { originator: string, holder: string, jobId: string, chunk: number } => ({ originator: origin.id, holder: alice.id, jobId: JOB, chunk: 4 })
  const lease = (): Lease => ({ v: 1, jobId: JOB, chunk: 4, holder: alice.id, originator: origin.id, leaseId: '0123456789abcdef01234567', issuedAt: NOW, expiresAt: NOW + 30_000 })

  it('accepts a lease signed by the originator', async () => {
    const signed = await signLease(origin.key, lease())
    expect(await verifyLease(signed, expect_())).toEqual({ ok: true, value: lease() })
  })

  it('refuses a lease signed by someone else in the originator\'s name', async () => {
    const signed = await signLease(mallory.key, lease())
    refusedWith(await verifyLease(signed, expect_()), 'bad-signature')
    tally('lease (to a worker) signed by Mallory in the originator\'s name', 'refused by verifyLease with bad-signature')
  })

  it('refuses a lease from another originator than the one asked, even if validly signed', async () => {
    const signed = await signLease(mallory.key, { ...lease(), originator: mallory.id })
    refusedWith(await verifyLease(signed, expect_()), 'bad-signature')
    tally('lease (to a worker) validly signed by another originator than the one asked', 'refused with bad-signature')
  })

  it('refuses a lease tampered with after signing', async () => {
    const signed = await signLease(origin.key, lease())
    refusedWith(await verifyLease({ lease: { ...signed.lease, expiresAt: NOW + 3_600_000 }, signature: signed.signature }, expect_()), 'bad-signature')
    refusedWith(await verifyLease({ lease: signed.lease, signature: randomBytes(64).toString('base64') }, expect_()), 'bad-signature')
    tally('lease (to a worker) with its expiry extended after signing, or with a random signature', 'both refused with bad-signature')
  })

  it.each([
    ['holder', { holder: 'mallory' }],
    ['chunk', { chunk: 5 }],
    ['jobId', { jobId: OTHER_JOB }]
  ])('refuses a genuine lease for another %s', async (field, change) => {
    const l = field === 'holder' ? { ...lease(), holder: mallory.id } : { ...lease(), ...change }
    const signed = await signLease(origin.key, l)
    refusedWith(await verifyLease(signed, expect_()), 'wrong-signer')
    tally(`genuine lease (to a worker) for another ${field} than the one claimed`, 'refused with wrong-signer')
  })
})

describe('NonceCache', () => {
  it('evicts expired nonces before live ones, whatever order they came in', () => {
    const c = new NonceCache(2)
    expect(c.remember('live', 1000, 0)).toBe(true)
    expect(c.remember('dead', 10, 0)).toBe(true)
    expect(c.remember('new', 1000, 50)).toBe(true)
    // 'live' is still valid at t=50: replaying it must still be refused.
    expect(c.remember('live', 1000, 50)).toBe(false)
  })
  it('remembers a nonce and reports a repeat', () => {
    const c = new NonceCache(10)
    expect(c.remember('a', 100, 0)).toBe(true)
    expect(c.remember('a', 100, 0)).toBe(false)
    expect(c.remember('b', 100, 0)).toBe(true)
    expect(c.size).toBe(2)
  })

  it('stays bounded however many nonces arrive', () => {
    const max = 16
    const c = new NonceCache(max)
    let peak = 0
    for (let i = 0; i < 5000; i++) {
      // Half of them already expired by the time they are inserted, half still valid.
      expect(c.remember(`n${i}`, i % 2 === 0 ? i + 10_000 : i - 1, i)).toBe(true)
      peak = Math.max(peak, c.size)
    }
    expect(peak).toBe(max)
    expect(c.size).toBeLessThanOrEqual(max)
    // The most recent one is still remembered.
    expect(c.remember('n4999', 20_000, 5000)).toBe(false)
  })

  it('evicts expired entries first and keeps the valid ones', () => {
    const c = new NonceCache(4)
    expect(c.remember('old1', 100, 0)).toBe(true)
    expect(c.remember('old2', 200, 0)).toBe(true)
    expect(c.remember('live1', 10_000, 0)).toBe(true)
    expect(c.remember('live2', 10_000, 0)).toBe(true)
    // At now = 500 the two old ones are expired; inserting into a full cache clears them both.
    expect(c.remember('new', 10_000, 500)).toBe(true)
    expect(c.size).toBe(3)
    expect(c.remember('live1', 10_000, 500)).toBe(false)
    expect(c.remember('live2', 10_000, 500)).toBe(false)
    expect(c.remember('new', 10_000, 500)).toBe(false)
  })

  it('drops the oldest entry when full and nothing is expired', () => {
    const c = new NonceCache(3)
    for (const k of ['a', 'b', 'c']) c.remember(k, 10_000, 0)
    expect(c.remember('d', 10_000, 1)).toBe(true)
    expect(c.size).toBe(3)
    expect(c.remember('b', 10_000, 1)).toBe(false)
    expect(c.remember('c', 10_000, 1)).toBe(false)
    expect(c.remember('d', 10_000, 1)).toBe(false)
    // 'a' was the one forgotten.
    expect(c.remember('a', 10_000, 1)).toBe(true)
  })
})
