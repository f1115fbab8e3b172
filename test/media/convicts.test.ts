import { describe, expect, it } from 'vitest'
import { convicts, ToolError, VerificationError } from '../../src/media/index.js'

describe('convicts: does a failed check of a peer\'s bytes prove the peer lied?', () => {
  const result = '/home/n/jobs/j/incoming/chunk-3-ab.264'
  const segment = '/home/n/work/j/segment-3-Qm.mkv'

  it('yes, when the check names the peer\'s file and ran: wrong count, wrong pictures, undecodable, not Matroska', () => {
    expect(convicts(new VerificationError(`${result}: holds 92 frames, expected 100`), result)).toBe(true)
    expect(convicts(new VerificationError(`${result}: frame 7 does not show the source's picture (PSNR 6.0 dB …)`), result)).toBe(true)
    expect(convicts(new VerificationError(`${result}: not a decodable H.264 stream (file:${result}: Invalid data found when processing input)`), result)).toBe(true)
    expect(convicts(new VerificationError(`segment ${segment}: not a Matroska file (it starts with "<?xm"); refusing to decode it`), segment)).toBe(true)
  })

  it('no, when the check could not run here, cannot tell which side failed, or is about another file', () => {
    expect(convicts(new VerificationError(`${result}: not a decodable H.264 stream (ffprobe was not found on PATH; install it with: apt-get install -y ffmpeg)`), result)).toBe(false)
    expect(convicts(new VerificationError(`${result}: its pictures could not be compared with the source (Conversion failed!)`), result)).toBe(false)
    expect(convicts(new VerificationError(`segment /home/n/jobs/j/segments/segment-3.mkv: holds 90 frames from 0, expected 100`), result)).toBe(false)
    expect(convicts(new VerificationError(`encoding ${segment}: x264 encoded 99 frames, expected 100`), segment)).toBe(false)
    expect(convicts(new ToolError('ffprobe', `${result}: ffprobe failed`), result)).toBe(false)
    expect(convicts(new Error(`${result}: aborted`), result)).toBe(false)
  })
})
