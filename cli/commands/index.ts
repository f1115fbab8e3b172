import type { Command } from '../command.js'
import { add } from './add.js'
import { cancel } from './cancel.js'
import { join } from './join.js'
import { key } from './key.js'
import { peers } from './peers.js'
import { status } from './status.js'

/**
 * Every `swarm` command by name: main.ts dispatches through this table and the docs test checks
 * the docs' command lines against it. Only `join` and `key` load libp2p (about 0.4 s), and only
 * when they run: see their handlers.
 */
const COMMANDS: Record<string, Command> = { join, add, status, peers, cancel, key }

/** The docs test reads `swarm WORD` in prose as a command line only when WORD is one of these. */
export const COMMAND_NAMES = Object.keys(COMMANDS)

/** The command called `name`; own names only, so `swarm constructor` is an unknown command. */
export function commandNamed (name: string): Command | undefined {
  return Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
}
