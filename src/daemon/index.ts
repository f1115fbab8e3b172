// The daemon layer's public face: a running node (libp2p + originator + worker + control API), and
// (through ./client.js, which CLI commands other than join import alone) the client the CLI uses.
export { standInEncoder } from '../worker/index.js'
export { startDaemon, type Daemon, type DaemonOptions } from './daemon.js'
export * from './client.js'
export { SWARM_VERSION } from './version.js'
