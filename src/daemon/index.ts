// The daemon layer's public face: a running node (libp2p + originator + worker + control API), and the client the CLI uses.
export { standInEncoder } from '../worker/index.js'
export { startDaemon, defaultSlots, type Daemon, type DaemonOptions } from './daemon.js'
export { resolveHome, CONTROL_FILE } from './home.js'
export { connectControl, NodeNotRunningError, ControlApiError, type ControlClient } from './control-client.js'
export * from './api.js'
