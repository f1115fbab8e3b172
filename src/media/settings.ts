import type { EncoderSettings } from './encoders/types.js'
import { SettingsError } from './errors.js'

/**
 * Encoder settings arrive from strangers (a remote originator), so they are parsed without a
 * shell and checked against an encoder's allowlist of pure encoding options (encoders/). Anything
 * that names a file, changes I/O or timing, or is the worker's to decide, is refused with an error
 * naming it. This file holds what every encoder's parser is made of; each encoder its own tables.
 */

export type ValueCheck = (value: string) => string | undefined

export interface OptionSpec {
  /** Whether the option consumes a value. */
  takesValue: boolean
  check?: ValueCheck
}

export const oneOf = (allowed: string[]): ValueCheck => (v) => allowed.includes(v) ? undefined : `must be one of ${allowed.join(', ')}`
export const commaListOf = (allowed: string[]): ValueCheck => (v) => v.split(',').every(p => allowed.includes(p)) ? undefined : `must be a comma-separated list of ${allowed.join(', ')}`
const NUMBER_RE = /^[-+]?(\d+(\.\d*)?|\.\d+)$/
const INT_RE = /^[-+]?\d+$/
export const num: ValueCheck = (v) => NUMBER_RE.test(v) ? undefined : 'must be a number'
export const int: ValueCheck = (v) => INT_RE.test(v) ? undefined : 'must be an integer'
/**
 * A number within the encoder's range. x264 clamps some out-of-range values without a word
 * (--crf 99 is encoded as 51), which is never what the person meant.
 */
export const numIn = (min: number, max: number, integer = false): ValueCheck => (v) => {
  if (!(integer ? INT_RE : NUMBER_RE).test(v)) return integer ? 'must be an integer' : 'must be a number'
  const n = Number(v)
  return n >= min && n <= max ? undefined : `must be between ${min} and ${max}`
}
export const intOr = (word: string): ValueCheck => (v) => v === word || INT_RE.test(v) ? undefined : `must be an integer or "${word}"`
/** Values like "1.0:0.15", "-1:-1", "0,1,2": numbers and separators, nothing that could be a path. */
export const numericTuple: ValueCheck = (v) => /^[-+0-9.:,x]+$/.test(v) ? undefined : 'must be numbers separated by ":" or ","'
/** Free-form tokens for VUI/colour options: letters, digits and a few separators. */
export const token: ValueCheck = (v) => /^[A-Za-z0-9_.:,()+-]+$/.test(v) ? undefined : 'contains characters that are not allowed here'

export const flag: OptionSpec = { takesValue: false }
export const value = (check: ValueCheck = token): OptionSpec => ({ takesValue: true, check })

/** An encoder's allowlist, as its settings parser reads it. */
export interface OptionTable {
  /** The encoder as messages name it, with its article: "an x264". */
  encoder: { name: string, article: 'a' | 'an' }
  /** Long option name → spec. Every option here is an encoding decision and touches no file. */
  allowed: Record<string, OptionSpec>
  /** Options refused on purpose, with the reason shown to the user. */
  refused: Record<string, string>
  /** Short options, mapped to their long names. */
  short: Record<string, string>
}

/** The most characters a settings string may have (the protocol's bound too). */
const MAX_SETTINGS_CHARS = 4096

/**
 * Splits a settings string the way a POSIX shell splits words (single quotes, double quotes and
 * backslashes), without expanding anything and without running a shell.
 */
export function splitSettings (input: string, encoder = 'x264'): string[] {
  const words: string[] = []
  let current = ''
  let inWord = false
  let quote: '"' | "'" | undefined
  for (let i = 0; i < input.length; i++) {
    const c = input[i] as string
    if (quote === "'") {
      if (c === "'") quote = undefined
      else current += c
      continue
    }
    if (quote === '"') {
      if (c === '"') quote = undefined
      else if (c === '\\' && i + 1 < input.length && '"\\$`'.includes(input[i + 1] as string)) current += input[++i]
      else current += c
      continue
    }
    if (c === "'" || c === '"') { quote = c; inWord = true; continue }
    if (c === '\\') {
      if (i + 1 < input.length) { current += input[++i]; inWord = true }
      continue
    }
    if (/\s/.test(c)) {
      if (inWord) { words.push(current); current = ''; inWord = false }
      continue
    }
    current += c
    inWord = true
  }
  if (quote !== undefined) throw new SettingsError(`${encoder} settings: unbalanced ${quote === '"' ? 'double' : 'single'} quote in "${input}"`)
  if (inWord) words.push(current)
  return words
}

/** A value for a message: quoted, at most about 80 characters (a settings string can be 4 KiB). */
export function quoteShort (v: string, max = 80): string {
  return JSON.stringify(v.length > max ? `${v.slice(0, max)}…` : v) + (v.length > max ? ` (${v.length} characters)` : '')
}

/** The options the settings give (`--name` without its dashes). */
export function optionsGiven (settings: EncoderSettings): Set<string> {
  return new Set(settings.args.filter(a => a.startsWith('--')).map(a => a.slice(2)))
}

/** The value of an option the settings give, the last one given (x264 and x265 take the last). */
export function lastValue (settings: EncoderSettings, name: string): string | undefined {
  let found: string | undefined
  for (let i = 0; i < settings.args.length - 1; i++) if (settings.args[i] === `--${name}`) found = settings.args[i + 1]
  return found
}

/** Settings parsed by their encoder's parser; no other value is encoded with (isParsedSettings). */
const parsedSettings = new WeakSet<EncoderSettings>()

/** Freezes settings an encoder's parser made and marks them as parsed. Only parsers call this. */
export function sealSettings (settings: EncoderSettings): EncoderSettings {
  Object.freeze(settings.args)
  parsedSettings.add(Object.freeze(settings))
  return settings
}

/** Whether a value is settings an encoder parsed (a look-alike object or a string is not). */
export function isParsedSettings (value: unknown): value is EncoderSettings {
  return typeof value === 'object' && value !== null && parsedSettings.has(value as EncoderSettings)
}

function refuse (enc: string, option: string, why: string): never {
  const shown = option.length > 80 ? `${option.slice(0, 80)}… (${option.length} characters)` : option
  throw new SettingsError(`${enc} settings: option ${shown} is not allowed: ${why}`, option.slice(0, 80))
}

/** What an allowlist parse yields: the normalised arguments, and each option's last value. */
export interface AllowlistedOptions {
  args: string[]
  values: Map<string, string>
}

/**
 * Parses and checks a settings string against an encoder's table. Throws SettingsError naming the
 * first refused option. Every option comes out as `--name` (and its value as the next word).
 */
export function parseAllowlisted (raw: string, table: OptionTable): AllowlistedOptions {
  const { name: enc, article } = table.encoder
  if (typeof raw !== 'string') throw new SettingsError(`${enc} settings must be a string`)
  if (raw.length > MAX_SETTINGS_CHARS) throw new SettingsError(`${enc} settings: ${raw.length} characters is too long (at most ${MAX_SETTINGS_CHARS})`)
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(raw)) throw new SettingsError(`${enc} settings: control characters are not allowed`)
  const words = splitSettings(raw, enc)
  const args: string[] = []
  const values = new Map<string, string>()
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string
    let name: string
    let shown: string
    let inlineValue: string | undefined
    if (word.startsWith('--')) {
      const eq = word.indexOf('=')
      name = eq >= 0 ? word.slice(2, eq) : word.slice(2)
      inlineValue = eq >= 0 ? word.slice(eq + 1) : undefined
      shown = `--${name}`
      if (name === '') refuse(enc, '--', `a bare "--" would make ${enc} read the next words as file names`)
    } else if (word.startsWith('-') && word.length > 1 && !NUMBER_RE.test(word)) {
      const letter = word[1] as string
      const long = table.short[letter]
      shown = `-${letter}`
      if (long === undefined) refuse(enc, shown, `it is not ${article} ${enc} encoding option`)
      name = long
      if (word.length > 2) inlineValue = word.slice(2)
    } else {
      throw new SettingsError(`${enc} settings: unexpected argument ${quoteShort(word)}: ${enc} would take it as an input or output file name`, word.slice(0, 80))
    }
    const refusedWhy = table.refused[name]
    if (refusedWhy !== undefined) refuse(enc, shown === `--${name}` ? shown : `${shown} (--${name})`, refusedWhy)
    const spec = table.allowed[name]
    if (spec === undefined) refuse(enc, shown, `it is not on the list of ${enc} encoding options swarm accepts`)
    if (!spec.takesValue) {
      if (inlineValue !== undefined) throw new SettingsError(`${enc} settings: option ${shown} takes no value`, shown)
      args.push(`--${name}`)
      continue
    }
    let val = inlineValue
    if (val === undefined) {
      if (i + 1 >= words.length) throw new SettingsError(`${enc} settings: option ${shown} needs a value`, shown)
      val = words[++i] as string
    }
    const problem = spec.check?.(val)
    if (problem !== undefined) throw new SettingsError(`${enc} settings: value ${quoteShort(val)} of ${shown} ${problem}`, shown)
    values.set(name, val)
    args.push(`--${name}`, val)
  }
  return { args, values }
}
