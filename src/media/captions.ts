import { rm, stat, symlink } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { runTool, type RunOptions } from './tools.js'

/** The name the captions track gets in the output; the fidelity check finds it by this name. */
export const CAPTIONS_TRACK_NAME = 'Closed captions (CC1)'

/**
 * Takes the CEA-608/708 captions out of the source's video into an SRT file, with the source's own
 * timestamps (`-copyts`), so the merge can place them exactly as it places the new video. Re-encoding
 * the pictures would lose them: they ride in the H.264/MPEG-2 user data, not in a track.
 *
 * ffmpeg reads them through the lavfi movie source (`[out0+subcc]`), which takes a file name inside a
 * filtergraph; the source is linked under a plain name in `workDir` so no quoting of the user's file
 * name is ever needed. Returns undefined when the captions hold no cue at all.
 */
export async function extractCaptions (sourcePath: string, workDir: string, options: RunOptions = {}): Promise<string | undefined> {
  const link = join(workDir, `captions-source${extname(sourcePath).replace(/[^.a-zA-Z0-9]/g, '')}`)
  const out = join(workDir, 'captions.srt')
  await rm(link, { force: true })
  await symlink(sourcePath, link)
  try {
    await runTool('ffmpeg', ['-v', 'error', '-nostdin', '-y', '-copyts', '-f', 'lavfi', '-i', `movie=${link.slice(workDir.length + 1)}[out0+subcc]`,
      '-map', '0:1', '-c:s', 'srt', out], `extracting the closed captions of ${sourcePath}`, { ...options, cwd: workDir })
  } finally {
    await rm(link, { force: true })
  }
  const size = await stat(out).then(s => s.size, () => 0)
  return size > 0 ? out : undefined
}
