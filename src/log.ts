/**
 * Structured logging with pino, secrets redacted.
 *
 * Brick logs one JSON object per line (pino's format) when a destination is given, and nothing
 * by default (a library must not write to its host's stdout unasked). Every password-like key
 * (`auth_password`, `discovery_auth_password`, `password`, `san_password`, ...), at any depth up
 * to four levels, is censored by pino's redaction, and any object logged through
 * {@link Logger} methods can additionally be passed through `maskObject` by callers that log
 * whole connection-properties documents.
 *
 * @module
 */
import { pino, type Logger as PinoLogger, type DestinationStream, type LevelWithSilent } from 'pino';
import { Writable } from 'node:stream';

/** Brick's logger type: a pino logger. */
export type Logger = PinoLogger;

/** Keys that are always censored, at any of the first four levels of a logged object. */
export const REDACTED_KEYS = [
  'password',
  'auth_password',
  'discovery_auth_password',
  'san_password',
  'chap_secret',
  'chap_password',
  'target_chap_secret',
  'initiator_chap_secret',
  'secret',
  'passphrase',
  'private_key',
  'san_private_key',
  'keyring',
  'authorization',
] as const;

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const k of REDACTED_KEYS) {
    paths.push(k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`);
  }
  return paths;
}

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** pino level; default `info`. `silent` logs nothing. */
  level?: LevelWithSilent;
  /** Where the JSON lines go; default: nowhere (silent). */
  destination?: DestinationStream | NodeJS.WritableStream;
  /** Logger name, printed as `name`. Default `brick`. */
  name?: string;
}

/** A pino logger with Brick's redaction rules. With no destination it is silent. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.destination ? (options.level ?? 'info') : 'silent';
  return pino(
    {
      name: options.name ?? 'brick',
      level,
      redact: { paths: redactPaths(), censor: '***' },
      base: undefined,
    },
    (options.destination ?? undefined) as DestinationStream | undefined,
  );
}

/** A logger that discards everything. */
export const silentLogger: Logger = createLogger();

/**
 * A logger that keeps every line in memory, for tests that assert on what was (or was not)
 * logged. `lines()` returns the parsed JSON objects; `text()` the raw output.
 */
export function createCapturingLogger(level: LevelWithSilent = 'debug'): { logger: Logger; lines(): Record<string, unknown>[]; text(): string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  const logger = pino({ name: 'brick', level, redact: { paths: redactPaths(), censor: '***' }, base: undefined }, stream);
  return {
    logger,
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
