import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { checkInput, InputError, jobIdOf } from '../../src/jobs/admission.js'

const SHA = 'ab'.repeat(32)

describe('jobIdOf', () => {
  it('keeps the ids of x264 jobs from before jobs named their encoder, and gives another encoder\'s job another id', () => {
    const old = createHash('sha256').update(`swarm-job/v1\n${SHA}\n--crf\u000020`).digest('hex')
    expect(jobIdOf(SHA, ['--crf', '20'])).toBe(old)
    expect(jobIdOf(SHA, ['--crf', '20'], 'x264')).toBe(old)
    const x265 = jobIdOf(SHA, ['--crf', '20'], 'x265')
    expect(x265).not.toBe(old)
    expect(jobIdOf(SHA, ['--crf', '20'], 'svt-av1')).not.toBe(x265)
  })
})

describe('checkInput', () => {
  it('refuses a job whose encoder this node cannot run, before it reads the file, saying what to install', async () => {
    const refused = checkInput({ file: '/nonexistent/film.mkv', settings: '--crf 20', encoder: 'x264' }, new Set())
    await expect(refused).rejects.toThrow(InputError)
    await expect(refused).rejects.toThrow(/--encoder x264: this node cannot run x264, and the node that adds a job must .*apt-get install -y x264/)
    // With the encoder, the file is what is wrong.
    await expect(checkInput({ file: '/nonexistent/film.mkv', settings: '--crf 20' }, new Set(['x264']))).rejects.toThrow(/nonexistent/)
  })
})
