// The logging layer's public face: namespaced, levelled component loggers and the short forms of
// ids every log line uses. It imports nothing, so every layer (and the CLI) may use it.
export { logger, debugEnabled, type Logger, type LogLevel, type LogSink } from './logger.js'
export { shortJob, jobTag, shortChunk, shortPeer } from './ids.js'
