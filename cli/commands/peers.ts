import { connectControl } from '../../src/daemon/client.js'
import { EXIT_OK, HOME_HELP, rejectExtraArguments, type Command } from '../command.js'
import { formatPeers } from '../format.js'
import { out } from '../output.js'

/** `swarm peers`: the connected peers, their addresses, latency and what they encode for this node. */
export const peers: Command = {
  help: `Usage: swarm peers [--home DIR] [--json]

The peers this node is connected to: peer id, addresses, ping latency, and which chunks of this
node's jobs each one encodes, at what speed.

${HOME_HELP}
  --json               print one JSON object {"peerId", "peers": [...]} (see docs/operations.md)`,
  flags: { json: { type: 'boolean' } },
  takesHome: true,
  maxPositionals: 0,
  run: async ({ home, flags, positionals }) => {
    rejectExtraArguments('swarm peers', positionals, peers.maxPositionals, 'no positional arguments')
    const client = await connectControl(home)
    const p = await client.peers()
    out(flags.json === true ? JSON.stringify(p) : formatPeers(p))
    return EXIT_OK
  }
}
