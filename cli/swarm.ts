#!/usr/bin/env node
// Checked before anything else loads: libp2p 3 needs Node.js 22 and fails obscurely on older ones.
const major = Number(process.versions.node.split('.')[0])
if (major < 22) {
  process.stderr.write(`swarm needs Node.js 22 or newer; this is ${process.version}.\n` +
    'Run `bash scripts/setup.sh` and `bash scripts/link.sh` in the swarm checkout: the `swarm` command that installs (bin/swarm) finds the Node.js 22 setup fetched or used, whatever node PATH has.\n')
  process.exit(2)
}
// A reader that stops early (`swarm status --watch --json | head -n 1`) closes the pipe: that is
// the reader saying it has enough, not an error. Without a listener Node throws on the next write.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0)
    throw e
  })
}
const { main } = await import('./main.js')
process.exitCode = await main(process.argv.slice(2))
