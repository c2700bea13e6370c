/**
 * Choosing and opening a persistence plug-in: cinderlib's `setup(persistence_config=...)`,
 * where the config is `{ storage: 'memory' }`, `{ storage: 'db', connection: URL }`, or a plug-in
 * instance.
 *
 * Brick accepts:
 * - a config object: `{ storage: 'memory' }`, `{ storage: 'sqlite', path? }` (the default,
 *   at {@link defaultSqlitePath}), `{ storage: 'postgresql', connection: 'postgresql://...' }`;
 * - a URL string: `memory://`, `sqlite:///abs/path.sqlite` (also SQLAlchemy's
 *   `sqlite:////abs/path`; `sqlite:relative/path`; `sqlite://` alone = the default file;
 *   `sqlite://:memory:`), `postgresql://...` or `postgres://...`;
 * - an object that already implements {@link Store}, used as is (cinderlib accepts a plug-in
 *   instance the same way).
 *
 * Nothing here reads `process.env`: the caller (the CLI) passes the environment explicitly.
 *
 * @module
 */
import os from 'node:os';
import path from 'node:path';
import { InvalidConfigError, InvalidInputError } from '../errors.js';
import { MemoryStore } from './memory.js';
import { PostgresStore, redactConnectionUrl } from './postgresql.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './store.js';

/** Environment variables the defaults depend on (`XDG_DATA_HOME`, `HOME`); pass `process.env`. */
export type Env = Readonly<Record<string, string | undefined>>;

/** The `memory` plug-in: nothing survives the process. */
export interface MemoryStoreConfig {
  storage: 'memory';
}

/** The `sqlite` plug-in (default). */
export interface SqliteStoreConfig {
  storage: 'sqlite';
  /** Database file; default {@link defaultSqlitePath}. `:memory:` for a private in-memory database. */
  path?: string;
  /** SQLite busy timeout in ms (default 10000). */
  busyTimeoutMs?: number;
  /** `FULL` (default) or `NORMAL`. */
  synchronous?: 'FULL' | 'NORMAL';
}

/** The `postgresql` plug-in. */
export interface PostgresStoreConfig {
  storage: 'postgresql';
  /** `postgresql://user:password@host:port/database` (a `schema` query parameter is honoured). */
  connection: string;
  /** Schema for Brick's tables (default `public`). */
  schema?: string;
  /** Pool size (default 4). */
  poolSize?: number;
  /** Connect timeout in ms (default 10000). */
  connectTimeoutMs?: number;
  /** Statement timeout in ms (default 30000, 0 = none). */
  statementTimeoutMs?: number;
}

/** A persistence configuration. */
export type StoreConfig = MemoryStoreConfig | SqliteStoreConfig | PostgresStoreConfig;

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /** Environment for the default data directory (`XDG_DATA_HOME`, `HOME`). Default `{}` (then the OS home directory). */
  env?: Env;
  /**
   * Data directory for the default SQLite file (`<dataDir>/brick.sqlite`) when the config names
   * no path. Default {@link defaultDataDir}`(env)`.
   */
  dataDir?: string;
}

/**
 * Brick's data directory: `$XDG_DATA_HOME/brick` when `XDG_DATA_HOME` is set to an absolute path
 * (the XDG Base Directory spec says relative values are ignored), else `$HOME/.local/share/brick`,
 * with `HOME` from `env` or else the OS account's home directory.
 */
export function defaultDataDir(env: Env = {}): string {
  const xdg = env.XDG_DATA_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'brick');
  const home = env.HOME && path.isAbsolute(env.HOME) ? env.HOME : os.homedir();
  return path.join(home, '.local', 'share', 'brick');
}

/** The default SQLite file: `defaultDataDir(env)/brick.sqlite`. */
export function defaultSqlitePath(env: Env = {}): string {
  return path.join(defaultDataDir(env), 'brick.sqlite');
}

/**
 * Turn a persistence URL into a config object (no I/O).
 * @throws {@link InvalidConfigError} with field `storage` for an unknown scheme or a malformed URL
 */
export function parseStoreUrl(url: string): StoreConfig {
  const m = /^([a-z][a-z0-9+.-]*):(.*)$/is.exec(url.trim());
  if (!m) throw new InvalidConfigError(`invalid storage: ${JSON.stringify(redactConnectionUrl(url))} is not a URL (memory://, sqlite:///path, postgresql://...)`, { field: 'storage' });
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  switch (scheme) {
    case 'memory':
      if (rest !== '' && rest !== '//') throw new InvalidConfigError('invalid storage: memory:// takes no path', { field: 'storage' });
      return { storage: 'memory' };
    case 'sqlite': {
      let p: string;
      if (rest.startsWith('//')) {
        // sqlite://            -> default file
        // sqlite://:memory:    -> in-memory
        // sqlite:///abs/path   -> /abs/path (file-URL style)
        // sqlite:////abs/path  -> /abs/path (SQLAlchemy style)
        const after = rest.slice(2);
        if (after === '') return { storage: 'sqlite' };
        if (after === ':memory:') return { storage: 'sqlite', path: ':memory:' };
        if (!after.startsWith('/')) throw new InvalidConfigError('invalid storage: sqlite:// URLs take an absolute path (sqlite:///var/lib/brick.sqlite) or use sqlite:relative/path', { field: 'storage' });
        p = after.replace(/^\/+/, '/');
      } else {
        p = rest;
      }
      p = p.replace(/[?#].*$/, '');
      try {
        p = decodeURIComponent(p);
      } catch {
        throw new InvalidConfigError('invalid storage: sqlite URL path has a malformed %-escape', { field: 'storage' });
      }
      if (p === '') return { storage: 'sqlite' };
      return { storage: 'sqlite', path: p };
    }
    case 'postgres':
    case 'postgresql':
      return { storage: 'postgresql', connection: url.trim() };
    default:
      throw new InvalidConfigError(`invalid storage: unknown scheme ${JSON.stringify(scheme)} (known: memory, sqlite, postgresql)`, { field: 'storage' });
  }
}

function isStore(v: unknown): v is Store {
  const s = v as Partial<Store> | null;
  return !!s && typeof s === 'object' && typeof s.kind === 'string' && typeof s.getVolumes === 'function' && typeof s.setVolume === 'function' && typeof s.close === 'function';
}

/**
 * Open a store. With no config (or a sqlite config without `path`), the SQLite file
 * `<options.dataDir>/brick.sqlite`, else {@link defaultSqlitePath}`(options.env)`.
 * @throws {@link InvalidConfigError} field `storage` for an unknown plug-in or URL; field `path` /
 *   `connection` when that setting is missing or malformed
 * @throws {@link PersistenceError} when the store cannot be opened (file not creatable, server
 *   unreachable, migration failure)
 */
export async function openStore(config?: StoreConfig | string | Store, options: OpenStoreOptions = {}): Promise<Store> {
  if (isStore(config)) return config;
  const cfg: StoreConfig = config === undefined ? { storage: 'sqlite' } : typeof config === 'string' ? parseStoreUrl(config) : config;
  if (!cfg || typeof cfg !== 'object') throw new InvalidConfigError('invalid storage: expected a URL string or an object with a storage key', { field: 'storage' });
  try {
    switch (cfg.storage) {
      case 'memory':
        return new MemoryStore();
      case 'sqlite': {
        if (cfg.path !== undefined && (typeof cfg.path !== 'string' || cfg.path === '')) {
          throw new InvalidConfigError('invalid path: must be a non-empty file path', { field: 'path' });
        }
        return SqliteStore.open({
          path: cfg.path ?? (options.dataDir !== undefined ? path.join(options.dataDir, 'brick.sqlite') : defaultSqlitePath(options.env)),
          ...(cfg.busyTimeoutMs !== undefined ? { busyTimeoutMs: cfg.busyTimeoutMs } : {}),
          ...(cfg.synchronous !== undefined ? { synchronous: cfg.synchronous } : {}),
        });
      }
      case 'postgresql': {
        if (typeof cfg.connection !== 'string' || cfg.connection === '') {
          throw new InvalidConfigError('invalid connection: the postgresql store needs a postgresql://user:password@host:port/database URL', { field: 'connection' });
        }
        const { storage: _storage, ...rest } = cfg;
        return await PostgresStore.open(rest);
      }
      default: {
        const name = (cfg as { storage?: unknown }).storage;
        throw new InvalidConfigError(`invalid storage: ${JSON.stringify(name)} is not a persistence plug-in (known: memory, sqlite, postgresql)`, { field: 'storage' });
      }
    }
  } catch (err) {
    if (err instanceof InvalidInputError) throw new InvalidConfigError(err.message, { field: err.field, cause: err });
    throw err;
  }
}
