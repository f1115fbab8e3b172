import { ENCODER_IDS, type EncoderId } from './types.js'
import { encoderFor } from './index.js'
import { runTool } from '../tools.js'

/** An encoder this machine can run, and the version it printed. */
export interface InstalledEncoder { encoder: EncoderId, version: string }

/** How long an encoder may take to print its version (a first start from a cold disk is slow). */
const VERSION_TIMEOUT_MS = 10_000

/**
 * The encoders this machine has: each one this version implements whose program runs and prints
 * its version. What a node advertises and what its worker claims jobs for; one missing or broken
 * is left out, never an error (a node without x265 still encodes x264 jobs).
 */
export async function installedEncoders (): Promise<InstalledEncoder[]> {
  const found = await Promise.all(ENCODER_IDS.map(async (id): Promise<InstalledEncoder | undefined> => {
    let encoder
    try { encoder = encoderFor(id) } catch { return undefined }
    try {
      const { stdout, stderr } = await runTool(encoder.binary, [...encoder.versionArgs], `${encoder.binary} version`, { signal: AbortSignal.timeout(VERSION_TIMEOUT_MS) })
      const version = encoder.parseVersion(`${stdout}\n${stderr}`)
      return version === undefined ? undefined : { encoder: id, version }
    } catch {
      return undefined
    }
  }))
  return found.filter((e): e is InstalledEncoder => e !== undefined)
}
