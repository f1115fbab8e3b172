import { connectControl } from '../../src/daemon/client.js'
import { UsageError } from '../args.js'
import { EXIT_OK, HOME_HELP, rejectExtraArguments, type Command } from '../command.js'
import { out } from '../output.js'

/** `swarm cancel JOB`: stops a job this node originated. */
export const cancel: Command = {
  help: `Usage: swarm cancel JOB [--home DIR]

Stops a job this node originated: no more leases, its segments and results are removed.

${HOME_HELP}`,
  flags: {},
  takesHome: true,
  maxPositionals: 1,
  run: async ({ home, positionals }) => {
    if (positionals[0] === undefined) throw new UsageError('swarm cancel needs a JOB id (see swarm status)')
    rejectExtraArguments('swarm cancel', positionals, cancel.maxPositionals, 'one JOB')
    const client = await connectControl(home)
    out(`cancelled ${await client.cancelJob(positionals[0])}`)
    return EXIT_OK
  }
}
