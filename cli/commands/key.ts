import { resolve } from 'node:path'
import { UsageError } from '../args.js'
import { EXIT_OK, rejectExtraArguments, type Command } from '../command.js'
import { out } from '../output.js'

/** `swarm key generate FILE`: makes a pre-shared key for a private swarm. */
export const key: Command = {
  help: `Usage: swarm key generate FILE

Writes a new random pre-shared key (mode 0600; an existing file is never overwritten). Copy it to
every machine of the swarm and start each node with --swarm-key FILE: nodes without the key cannot
connect to nodes with it.`,
  flags: {},
  takesHome: false,
  maxPositionals: 2,
  run: async ({ positionals }) => {
    if (positionals[0] !== 'generate' || positionals[1] === undefined) throw new UsageError('usage: swarm key generate FILE')
    rejectExtraArguments('swarm key generate', positionals, key.maxPositionals, 'one FILE')
    const path = resolve(positionals[1])
    try {
      // libp2p loads here, not at the top: the other commands start faster without it.
      const { generateSwarmKey } = await import('../../src/swarm/index.js')
      await generateSwarmKey(path)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`${positionals[1]} already exists; a key is never overwritten (delete it first if you mean to replace it)`)
      throw e
    }
    out(`wrote ${path}: copy it to every node and start each with --swarm-key ${JSON.stringify(path)}`)
    return EXIT_OK
  }
}
