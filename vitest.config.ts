import { defineConfig } from 'vitest/config'
import { ceiling } from './test/helpers/wait.js'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Media tests shell out to ffmpeg/x264; give them room on a 2-core machine, more on a busy one
    // (these only stop a test that hangs).
    testTimeout: ceiling(180_000),
    hookTimeout: ceiling(300_000),
    // Fixtures are generated once per run and shared through the OS temp dir.
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    // No test may ask the machine's real router for a port mapping: every swarm join a test
    // starts inherits this (helpers also pass --no-upnp; in-process daemons have UPnP off).
    env: { SWARM_NO_UPNP: '1' },
    maxWorkers: 2
  }
})
