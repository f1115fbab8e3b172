import { ensureFixtures } from './fixtures.js'

// Runs once before any test file: fixtures are made here so parallel workers never race to build them.
export default async function setup (): Promise<void> {
  await ensureFixtures()
}
