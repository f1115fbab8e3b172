import { yamux } from '@chainsafe/libp2p-yamux'
import type { MessageStream, StreamMuxerFactory } from '@libp2p/interface'

/**
 * Noticing a peer that is gone without closing its connections (its machine lost the network, a
 * laptop went to sleep; a process that ends closes its sockets, and the kernel says so at once):
 * every connection is pinged from both ends, and one that goes unanswered is aborted.
 *
 * libp2p's connection monitor opens a ping stream for that (a yamux stream, multistream-select,
 * 32 bytes each way, then closing it), from each end of every connection every 30 s. On an idle
 * node with 8 peers those streams were over half of all its CPU (0.3% of a core of 0.55%). Yamux
 * has a ping of its own, one 12-byte frame each way on the connection, which it sends as a
 * keep-alive but never acts on when unanswered. This muxer sends that ping instead, on the
 * schedule and with the time to answer the monitor had here (LIVENESS), and aborts the connection
 * when no answer comes.
 */
export interface LivenessOptions {
  /** How often each end pings a connection. */
  intervalMs: number
  /** How long an answer may take before the connection is given up. */
  timeoutMs: number
}

/**
 * Every 30 s, 20 s to answer. libp2p's defaults (every 10 s, giving up after 5 s or so) dropped
 * healthy connections of busy nodes: at 50 nodes on one machine, 324 connections in one job, each
 * redialled with a fresh handshake, which made the nodes busier still. A node's event loop may run
 * a few seconds late while it starts encodes and checks results; a peer that is really gone is
 * noticed within a minute, and leases have their own clocks.
 */
export const LIVENESS: LivenessOptions = { intervalMs: 30_000, timeoutMs: 20_000 }

/** No answer to a ping within the time allowed: the connection is aborted with this. */
export class PeerSilent extends Error {
  constructor (timeoutMs: number) {
    super(`no answer to a keep-alive ping within ${timeoutMs} ms`)
    this.name = 'PeerSilent'
  }
}

/** Yamux whose own ping keeps watch over each connection (see above), in place of libp2p's connection monitor. */
export function watchedYamux (o: LivenessOptions = LIVENESS): () => StreamMuxerFactory {
  const make = yamux({ enableKeepAlive: false })
  return () => {
    const inner = make()
    return {
      protocol: inner.protocol,
      createStreamMuxer: (maConn: MessageStream) => {
        const muxer = inner.createStreamMuxer(maConn)
        const timer = setInterval(() => {
          muxer.ping({ signal: AbortSignal.timeout(o.timeoutMs) }).catch(() => {
            // Closed meanwhile (the ping fails then too): nothing to give up.
            if (muxer.status !== 'open') return
            const silent = new PeerSilent(o.timeoutMs)
            muxer.abort(silent)
            maConn.abort(silent)
          })
        }, o.intervalMs)
        timer.unref()
        maConn.addEventListener('close', () => { clearInterval(timer) }, { once: true })
        return muxer
      }
    }
  }
}
