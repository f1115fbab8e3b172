// The daemon layer's light public face: what a CLI command needs to talk to a running node.
// It loads no libp2p, so `swarm add` and `swarm status` start in a few tens of milliseconds.
export { resolveHome, CONTROL_FILE } from './home.js'
export { connectControl, NodeNotRunningError, ControlApiError, type ControlClient } from './control-client.js'
export { defaultSlots, defaultThreads } from './sizing.js'
export * from './api.js'
