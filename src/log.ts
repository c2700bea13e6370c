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
import { createRequire } from 'node:module';
import type { pino as PinoFactory, Logger as PinoLogger, DestinationStream, LevelWithSilent } from 'pino';
import { Writable } from 'node:stream';

/**
 * pino, loaded on the first logger made (a `brick --help` makes none: issue 18). pino is a
 * CommonJS package, so it loads synchronously here.
 */
function loadPino(): typeof PinoFactory {
  return (createRequire(import.meta.url)('pino') as { pino: typeof PinoFactory }).pino;
}

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
  return loadPino()(
    {
      name: options.name ?? 'brick',
      level,
      redact: { paths: redactPaths(), censor: '***' },
      base: undefined,
    },
    (options.destination ?? undefined) as DestinationStream | undefined,
  );
}

let silent: Logger | undefined;

/**
 * A logger that discards everything. It is a stand-in for a silent pino logger that is made
 * (and pino loaded) on its first use, so that importing a module that defaults to it costs
 * nothing; every property and method is the real logger's, methods bound to it.
 */
export const silentLogger: Logger = new Proxy({} as Logger, {
  get(_target, prop) {
    silent ??= createLogger();
    const value: unknown = Reflect.get(silent, prop);
    return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(silent) : value;
  },
  set(_target, prop, value) {
    silent ??= createLogger();
    return Reflect.set(silent, prop, value);
  },
  has(_target, prop) {
    silent ??= createLogger();
    return Reflect.has(silent, prop);
  },
});

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
  const logger = loadPino()({ name: 'brick', level, redact: { paths: redactPaths(), censor: '***' }, base: undefined }, stream);
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
