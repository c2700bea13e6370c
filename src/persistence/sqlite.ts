/**
 * The `sqlite` persistence plug-in, Brick's default store: one SQLite file (better-sqlite3) in
 * WAL mode, shared safely by several processes on one host.
 *
 * It plays the part of cinderlib's `db` plug-in with a `sqlite:///...` URL, but with Brick's own
 * small schema (see {@link SQLITE_MIGRATIONS}) instead of Cinder's: one table per record kind
 * with the filterable fields as indexed columns and the whole record as JSON.
 *
 * Guarantees:
 * - every `set*` is a compare-and-set on `version` inside one `BEGIN IMMEDIATE` transaction
 *   (`INSERT ... ON CONFLICT DO NOTHING` for version 0, `UPDATE ... WHERE id = ? AND version = ?`
 *   otherwise), so of two writers holding the same version exactly one wins and the other gets
 *   {@link StaleRecordError};
 * - a process killed at any point (SIGKILL included) leaves each record either as it was before
 *   the interrupted transaction or as it was after it (SQLite's atomic commit; with the default
 *   `synchronous = FULL` this also holds across power loss);
 * - the file is created with mode 0600, and its directory, when Brick creates it, with 0700:
 *   connection records hold CHAP secrets, like Cinder's database. SQLite gives the `-wal` and
 *   `-shm` files the database file's mode.
 *
 * @module
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { BrickError, InvalidInputError, PersistenceError } from '../errors.js';
import { latestVersion, pendingMigrations } from './migrations/index.js';
import { SQLITE_MIGRATIONS } from './migrations/sqlite.js';
import type {
  BaseRecord,
  ConnectionFilter,
  ConnectionRecord,
  KeyValue,
  SnapshotFilter,
  SnapshotRecord,
  Store,
  VolumeFilter,
  VolumeRecord,
} from './store.js';
import { StaleRecordError } from './store.js';
import {
  CONNECTIONS,
  SNAPSHOTS,
  VOLUMES,
  checkKeyValue,
  checkRecord,
  columnValues,
  compareKeyValues,
  compareRecords,
  matchesRest,
  savedCopy,
  splitFilter,
  type TableSpec,
} from './tables.js';

/** Options of {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** Database file path, or `:memory:` for a private in-memory database (no WAL, not shared). */
  path: string;
  /**
   * How long a statement waits for another process's write lock before failing with
   * {@link PersistenceError}, in ms (SQLite `busy_timeout`). Default 10000.
   */
  busyTimeoutMs?: number;
  /**
   * SQLite `synchronous` level. `FULL` (default) syncs the WAL at every commit, so a committed
   * write survives power loss; `NORMAL` only survives process crashes. Default `FULL`.
   */
  synchronous?: 'FULL' | 'NORMAL';
}

/** Default {@link SqliteStoreOptions.busyTimeoutMs}: 10 s. */
export const DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 10_000;

interface RowBody {
  version: number;
  body: string;
}

/** Wrap anything that is not already a Brick error into a {@link PersistenceError}. */
function wrap(what: string, file: string, err: unknown): BrickError {
  if (err instanceof BrickError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  return new PersistenceError(`SQLite store ${file}: ${what} failed: ${msg}`, {
    cause: err,
    details: { path: file, operation: what, ...(typeof code === 'string' ? { sqlite_code: code } : {}) },
  });
}

/** Create the directory (0700) and the file (0600) if missing, before SQLite opens it. */
function prepareFile(file: string): void {
  const dir = path.dirname(file);
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
  }
  try {
    const fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600);
    fs.closeSync(fd);
    fs.chmodSync(file, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

/**
 * SQLite-backed {@link Store}.
 *
 * Construct with {@link SqliteStore.open}. The methods are async to fit the {@link Store}
 * contract, but each runs synchronously on the calling thread (better-sqlite3), which is fast
 * for a metadata store of this size.
 */
export class SqliteStore implements Store {
  /** Plug-in name. */
  readonly kind = 'sqlite';
  /** Absolute path of the database file (or `:memory:`). */
  readonly path: string;
  private db: Database.Database | null;

  private constructor(file: string, db: Database.Database) {
    this.path = file;
    this.db = db;
  }

  /**
   * Open (creating if needed) the database at `options.path`, switch it to WAL, set
   * `busy_timeout` and apply pending migrations.
   * @throws {@link InvalidInputError} `path` when it is empty or not a string
   * @throws {@link PersistenceError} when the file cannot be created or opened, is not an SQLite
   *   database, or a migration fails
   */
  static open(options: SqliteStoreOptions): SqliteStore {
    if (typeof options?.path !== 'string' || options.path === '') throw new InvalidInputError('path', 'must be a non-empty file path');
    const busy = options.busyTimeoutMs ?? DEFAULT_SQLITE_BUSY_TIMEOUT_MS;
    if (!Number.isSafeInteger(busy) || busy < 0) throw new InvalidInputError('busyTimeoutMs', 'must be an integer number of ms >= 0');
    const sync = options.synchronous ?? 'FULL';
    if (sync !== 'FULL' && sync !== 'NORMAL') throw new InvalidInputError('synchronous', "must be 'FULL' or 'NORMAL'");
    const memory = options.path === ':memory:';
    const file = memory ? ':memory:' : path.resolve(options.path);
    let db: Database.Database | undefined;
    try {
      if (!memory) prepareFile(file);
      db = new Database(file, { timeout: busy });
      if (!memory) {
        const mode = db.pragma('journal_mode = WAL', { simple: true });
        if (String(mode).toLowerCase() !== 'wal') throw new Error(`could not switch to WAL (journal_mode is ${String(mode)})`);
      }
      db.pragma(`synchronous = ${sync}`);
      db.pragma('foreign_keys = OFF');
      const store = new SqliteStore(file, db);
      store.migrate();
      return store;
    } catch (err) {
      db?.close();
      throw wrap('open', file, err);
    }
  }

  /** The highest applied schema migration. */
  get schemaVersion(): number {
    const row = this.handle().prepare('SELECT MAX(version) AS v FROM schema_version').get() as { v: number | null };
    return row.v ?? 0;
  }

  private migrate(): void {
    const db = this.handle();
    const run = db.transaction(() => {
      db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)');
      const current = (db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as { v: number | null }).v ?? 0;
      for (const m of pendingMigrations(SQLITE_MIGRATIONS, current)) {
        for (const stmt of m.statements('main')) db.exec(stmt);
        db.prepare('INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)').run(m.version, m.description, new Date().toISOString());
      }
    });
    // Cheap check first, so an up-to-date database does not take the write lock on every open.
    const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get();
    if (hasTable && this.schemaVersion >= latestVersion(SQLITE_MIGRATIONS)) return;
    run.immediate();
  }

  private handle(): Database.Database {
    if (!this.db) throw new PersistenceError(`SQLite store ${this.path} is closed`, { details: { path: this.path } });
    return this.db;
  }

  private list<R extends BaseRecord>(spec: TableSpec, filter: object | undefined): R[] {
    try {
      const { columns, rest } = splitFilter(spec, filter);
      const where = columns.map(([c, v]) => (v === null ? `${c} IS NULL` : `${c} = ?`));
      const params = columns.filter(([, v]) => v !== null).map(([, v]) => v);
      const sql = `SELECT version, body FROM ${spec.table}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at, id`;
      const rows = this.handle().prepare(sql).all(...params) as RowBody[];
      return rows
        .map((r) => ({ ...(JSON.parse(r.body) as R), version: r.version }))
        .filter((r) => matchesRest(r, rest))
        .sort(compareRecords);
    } catch (err) {
      throw wrap(`list ${spec.table}`, this.path, err);
    }
  }

  private set<R extends BaseRecord>(spec: TableSpec, rec: R): R {
    checkRecord(spec, rec);
    const db = this.handle();
    const saved = savedCopy(rec);
    const body = JSON.stringify(saved);
    const cols = columnValues(spec, saved);
    const names = spec.columns;
    try {
      const tx = db.transaction(() => {
        let changes: number;
        if (rec.version === 0) {
          changes = db
            .prepare(
              `INSERT INTO ${spec.table} (id, ${names.join(', ')}, version, created_at, updated_at, body) VALUES (?, ${names.map(() => '?').join(', ')}, 1, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
            )
            .run(rec.id, ...cols, saved.created_at, saved.updated_at, body).changes;
        } else {
          changes = db
            .prepare(
              `UPDATE ${spec.table} SET ${names.map((n) => `${n} = ?`).join(', ')}, version = version + 1, created_at = ?, updated_at = ?, body = ? WHERE id = ? AND version = ?`,
            )
            .run(...cols, saved.created_at, saved.updated_at, body, rec.id, rec.version).changes;
        }
        if (changes !== 1) {
          const cur = db.prepare(`SELECT version FROM ${spec.table} WHERE id = ?`).get(rec.id) as { version: number } | undefined;
          throw new StaleRecordError(spec.kind, rec.id, rec.version, cur ? cur.version : null);
        }
      });
      tx.immediate();
      return saved;
    } catch (err) {
      throw wrap(`set ${spec.kind} ${rec.id}`, this.path, err);
    }
  }

  private remove(spec: TableSpec, id: string): void {
    if (typeof id !== 'string' || id === '') throw new InvalidInputError(`${spec.kind}.id`, 'must be a non-empty string');
    try {
      this.handle().prepare(`DELETE FROM ${spec.table} WHERE id = ?`).run(id);
    } catch (err) {
      throw wrap(`delete ${spec.kind} ${id}`, this.path, err);
    }
  }

  /** @inheritdoc */
  async getVolumes(filter?: VolumeFilter): Promise<VolumeRecord[]> {
    return this.list<VolumeRecord>(VOLUMES, filter);
  }
  /** @inheritdoc */
  async setVolume(record: VolumeRecord): Promise<VolumeRecord> {
    return this.set(VOLUMES, record);
  }
  /** @inheritdoc */
  async deleteVolume(id: string): Promise<void> {
    this.remove(VOLUMES, id);
  }
  /** @inheritdoc */
  async getSnapshots(filter?: SnapshotFilter): Promise<SnapshotRecord[]> {
    return this.list<SnapshotRecord>(SNAPSHOTS, filter);
  }
  /** @inheritdoc */
  async setSnapshot(record: SnapshotRecord): Promise<SnapshotRecord> {
    return this.set(SNAPSHOTS, record);
  }
  /** @inheritdoc */
  async deleteSnapshot(id: string): Promise<void> {
    this.remove(SNAPSHOTS, id);
  }
  /** @inheritdoc */
  async getConnections(filter?: ConnectionFilter): Promise<ConnectionRecord[]> {
    return this.list<ConnectionRecord>(CONNECTIONS, filter);
  }
  /** @inheritdoc */
  async setConnection(record: ConnectionRecord): Promise<ConnectionRecord> {
    return this.set(CONNECTIONS, record);
  }
  /** @inheritdoc */
  async deleteConnection(id: string): Promise<void> {
    this.remove(CONNECTIONS, id);
  }

  /**
   * All key-values sorted by key, or the one with `key` (empty when missing).
   * @throws {@link PersistenceError} when SQLite fails
   */
  async getKeyValues(key?: string): Promise<KeyValue[]> {
    try {
      const db = this.handle();
      const rows = (
        key === undefined ? db.prepare('SELECT key, value FROM key_values ORDER BY key').all() : db.prepare('SELECT key, value FROM key_values WHERE key = ?').all(key)
      ) as KeyValue[];
      return rows.map((r) => ({ key: r.key, value: r.value })).sort(compareKeyValues);
    } catch (err) {
      throw wrap('list key_values', this.path, err);
    }
  }
  /** Insert or replace a key-value (cinderlib's upsert). @throws {@link InvalidInputError} `key_value.key` / `key_value.value` */
  async setKeyValue(kv: KeyValue): Promise<void> {
    checkKeyValue(kv);
    try {
      this.handle().prepare('INSERT INTO key_values (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(kv.key, kv.value);
    } catch (err) {
      throw wrap(`set key_value ${kv.key}`, this.path, err);
    }
  }
  /**
   * Delete a key-value; a missing key is a no-op.
   * @throws {@link InvalidInputError} (field `key_value.key`) for an empty or non-string key
   * @throws {@link PersistenceError} when SQLite fails
   */
  async deleteKeyValue(key: string): Promise<void> {
    if (typeof key !== 'string' || key === '') throw new InvalidInputError('key_value.key', 'must be a non-empty string');
    try {
      this.handle().prepare('DELETE FROM key_values WHERE key = ?').run(key);
    } catch (err) {
      throw wrap(`delete key_value ${key}`, this.path, err);
    }
  }

  /** Close the database (checkpointing the WAL when this is the last connection). Idempotent. */
  async close(): Promise<void> {
    const db = this.db;
    this.db = null;
    db?.close();
  }
}
