/** This swarm's version: `swarm --version`, and what identify tells peers (swarm/capabilities.ts). */
export const SWARM_VERSION = '0.1.0'
