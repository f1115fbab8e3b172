import { connectControl } from '../../src/daemon/client.js'
import { UsageError } from '../args.js'
import { EXIT_OK, HOME_HELP, rejectExtraArguments, type Command } from '../command.js'
import { formatPeers } from '../format.js'
import { out } from '../output.js'

/** `swarm peers`: the connected peers, their addresses, latency and what they encode for this node; `swarm peers unban ID` lifts a ban. */
export const peers: Command = {
  help: `Usage: swarm peers [--home DIR] [--json]
       swarm peers unban PEER [--home DIR]

The peers this node is connected to: peer id, addresses, ping latency, and which chunks of this
node's jobs each one encodes, at what speed. Then the peers it found but cannot connect to, and
the peers it banned: a peer caught lying (a result that failed verification, a segment that is not
one, requests that kept breaking the protocol) is refused by this node for an hour, twice as long
each time after, at most a day, and on the job it lied about for as long as the node remembers it.
The list is kept in the node's home (bans.json) across restarts; see docs/security.md.

  unban PEER           lift the ban on PEER (its full id, or the end of it as listed): its
                       connections, claims, uploads and announcements are taken again
${HOME_HELP}
  --json               print one JSON object {"peerId", "peers": [...], "unreachable": [...],
                       "banned": [...]} (see docs/operations.md)`,
  flags: { json: { type: 'boolean' } },
  takesHome: true,
  maxPositionals: 2,
  run: async ({ home, flags, positionals }) => {
    if (positionals[0] !== undefined) {
      if (positionals[0] !== 'unban') throw new UsageError(`unknown action ${JSON.stringify(positionals[0])} for swarm peers (it takes no argument, or unban PEER)`)
      if (positionals[1] === undefined) throw new UsageError('swarm peers unban needs a PEER id (see swarm peers)')
      rejectExtraArguments('swarm peers unban', positionals, peers.maxPositionals, 'one PEER')
      const client = await connectControl(home)
      const lifted = await client.unban(positionals[1])
      out(`lifted the ban on ${lifted}`)
      return EXIT_OK
    }
    rejectExtraArguments('swarm peers', positionals, peers.maxPositionals, 'no positional arguments, or unban PEER')
    const client = await connectControl(home)
    const p = await client.peers()
    out(flags.json === true ? JSON.stringify(p) : formatPeers(p))
    return EXIT_OK
  }
}
