import { rm, stat, symlink } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { runTool, type RunOptions } from './tools.js'

/** The name the CC1 captions track gets in the output; the fidelity check finds it by this name. */
export const CAPTIONS_TRACK_NAME = 'Closed captions (CC1)'

/**
 * CEA-608 carries two fields: the first holds CC1 (and CC2), the second CC3 (and CC4), often a
 * second language. ffmpeg's decoder reads one field a run (`-data_field`), so each is taken apart.
 */
export type CaptionsChannel = 'CC1' | 'CC3'
const FIELD_OF: Record<CaptionsChannel, string> = { CC1: 'first', CC3: 'second' }

export const captionsTrackName = (channel: CaptionsChannel): string => `Closed captions (${channel})`
export const isCaptionsTrackName = (title: string | undefined): boolean => title !== undefined && /^Closed captions \(CC[13]\)$/.test(title)

/** One channel's captions as SRT with the source's timestamps. */
export interface CaptionsTrack { channel: CaptionsChannel, path: string }

/**
 * Takes the CEA-608/708 captions out of the source's video into an SRT file, with the source's own
 * timestamps (`-copyts`), so the merge can place them exactly as it places the new video. Re-encoding
 * the pictures would lose them: they ride in the H.264/MPEG-2 user data, not in a track.
 *
 * ffmpeg reads them through the lavfi movie source (`[out0+subcc]`), which takes a file name inside a
 * filtergraph; the source is linked under a plain name in `workDir` so no quoting of the user's file
 * name is ever needed. Returns the channels that hold at least one cue (none: an empty list).
 */
export async function extractCaptions (sourcePath: string, workDir: string, options: RunOptions = {}): Promise<CaptionsTrack[]> {
  const link = join(workDir, `captions-source${extname(sourcePath).replace(/[^.a-zA-Z0-9]/g, '')}`)
  await rm(link, { force: true })
  await symlink(sourcePath, link)
  try {
    const tracks = await Promise.all((['CC1', 'CC3'] as const).map(async channel => {
      const out = join(workDir, `captions-${channel}.srt`)
      await runTool('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-copyts', '-data_field', FIELD_OF[channel], '-f', 'lavfi', '-i', `movie=${link.slice(workDir.length + 1)}[out0+subcc]`,
        '-map', '0:1', '-c:s', 'srt', out], `extracting the closed captions (${channel}) of ${sourcePath}`, { ...options, cwd: workDir })
      const size = await stat(out).then(s => s.size, () => 0)
      return size > 0 ? { channel, path: out } : undefined
    }))
    return tracks.filter((t): t is CaptionsTrack => t !== undefined)
  } finally {
    await rm(link, { force: true })
  }
}
