/**
 * The `postgresql` persistence plug-in: one PostgreSQL database (node-postgres `pg`) shared by
 * many hosts, for cinderlib's controller/consumer split (a consumer saves its connector
 * properties as a key-value; the controller reads them and saves the connection).
 *
 * cinderlib's `db` plug-in with a `postgresql://` URL, with Brick's own schema (see
 * {@link POSTGRESQL_MIGRATIONS}): one table per record kind, filterable fields as indexed
 * columns, the whole record as JSONB.
 *
 * Guarantees:
 * - every `set*` is one compare-and-set statement (`INSERT ... ON CONFLICT (id) DO NOTHING
 *   RETURNING` for version 0, `UPDATE ... WHERE id = $1 AND version = $2 RETURNING` otherwise).
 *   Under READ COMMITTED a concurrent `UPDATE` of the same row waits for the first writer and then
 *   re-checks its `WHERE` against the committed row, so of two writers holding the same version
 *   exactly one wins and the other gets {@link StaleRecordError}: no update is ever lost;
 * - migrations run in one transaction holding `pg_advisory_xact_lock`, so any number of processes
 *   may open the store on an empty database at the same time;
 * - errors never contain the password of the connection URL.
 *
 * One difference from the other plug-ins: a record whose strings contain U+0000 is refused with
 * {@link InvalidInputError} (field = the record kind), because JSONB cannot store that character.
 *
 * @module
 */
import type pg from 'pg';
import { BrickError, InvalidInputError, PersistenceError } from '../errors.js';
import { latestVersion, pendingMigrations } from './migrations/index.js';
import { POSTGRESQL_MIGRATIONS } from './migrations/postgresql.js';
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

/** Options of {@link PostgresStore.open}. */
export interface PostgresStoreOptions {
  /**
   * libpq-style URL, `postgresql://user:password@host:port/database?sslmode=...` (`postgres://`
   * too). A `schema` query parameter selects {@link PostgresStoreOptions.schema}.
   */
  connection: string;
  /**
   * Schema holding Brick's tables, created if missing: lower-case letters, digits and `_`,
   * starting with a letter or `_`, at most 63 characters. Default `public`.
   */
  schema?: string;
  /** Most connections the store's pool opens. Default 4. */
  poolSize?: number;
  /** How long to wait for a connection to the server, in ms. Default 10000. */
  connectTimeoutMs?: number;
  /** Server-side `statement_timeout` for every statement, in ms (0 = none). Default 30000. */
  statementTimeoutMs?: number;
}

/** Default {@link PostgresStoreOptions.connectTimeoutMs}: 10 s. */
export const DEFAULT_PG_CONNECT_TIMEOUT_MS = 10_000;
/** Default {@link PostgresStoreOptions.statementTimeoutMs}: 30 s. */
export const DEFAULT_PG_STATEMENT_TIMEOUT_MS = 30_000;

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;
/** First key of the two-int advisory lock that serializes migrations (`'br'`). */
const MIGRATION_LOCK_CLASS = 0x6272;

/** `url` with any password replaced by `***`, for messages and logs. */
export function redactConnectionUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/?#]*:)[^@/?#]*@/i, '$1***@');
}

/** 32-bit FNV-1a of `s`, as a signed int for `pg_advisory_xact_lock(int, int)`. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (const ch of Buffer.from(s, 'utf8')) {
    h ^= ch;
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

/**
 * Split the `schema` query parameter off a connection URL.
 * @throws {@link InvalidInputError} `connection` when the URL is not a `postgres(ql)://` URL
 */
export function parsePostgresUrl(connection: string): { connectionString: string; schema: string | undefined } {
  if (typeof connection !== 'string' || !/^postgres(ql)?:\/\//i.test(connection)) {
    throw new InvalidInputError('connection', 'must be a postgresql://user:password@host:port/database URL');
  }
  let url: URL;
  try {
    url = new URL(connection);
  } catch {
    throw new InvalidInputError('connection', `is not a valid URL: ${redactConnectionUrl(connection)}`);
  }
  const schema = url.searchParams.get('schema') ?? undefined;
  if (schema === undefined) return { connectionString: connection, schema };
  url.searchParams.delete('schema');
  return { connectionString: url.toString(), schema };
}

interface RowBody {
  version: number;
  body: unknown;
}

/**
 * PostgreSQL-backed {@link Store}. Construct with {@link PostgresStore.open}; call
 * {@link PostgresStore.close} to end its connection pool (the process will not exit before).
 */
export class PostgresStore implements Store {
  /** Plug-in name. */
  readonly kind = 'postgresql';
  /** The connection URL with its password masked. */
  readonly location: string;
  /** Schema holding the tables. */
  readonly schema: string;
  private readonly q: string;
  private pool: pg.Pool | null;

  private constructor(pool: pg.Pool, location: string, schema: string) {
    this.pool = pool;
    this.location = location;
    this.schema = schema;
    this.q = `"${schema}"`;
  }

  /**
   * Connect, create the schema if missing and apply pending migrations (serialized across
   * processes by an advisory lock).
   * @throws {@link InvalidInputError} `connection`, `schema`, `poolSize`, `connectTimeoutMs` or
   *   `statementTimeoutMs` when malformed
   * @throws {@link PersistenceError} when the server cannot be reached, refuses the login, or a
   *   migration fails (message carries the URL with the password masked)
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const { connectionString, schema: urlSchema } = parsePostgresUrl(options?.connection);
    const schema = options.schema ?? urlSchema ?? 'public';
    if (!SCHEMA_RE.test(schema)) throw new InvalidInputError('schema', 'must be lower-case letters, digits and _, starting with a letter or _, at most 63 characters');
    const max = options.poolSize ?? 4;
    if (!Number.isSafeInteger(max) || max < 1) throw new InvalidInputError('poolSize', 'must be an integer >= 1');
    const connectTimeout = options.connectTimeoutMs ?? DEFAULT_PG_CONNECT_TIMEOUT_MS;
    if (!Number.isSafeInteger(connectTimeout) || connectTimeout < 1) throw new InvalidInputError('connectTimeoutMs', 'must be an integer number of ms >= 1');
    const statementTimeout = options.statementTimeoutMs ?? DEFAULT_PG_STATEMENT_TIMEOUT_MS;
    if (!Number.isSafeInteger(statementTimeout) || statementTimeout < 0) throw new InvalidInputError('statementTimeoutMs', 'must be an integer number of ms >= 0');
    const location = redactConnectionUrl(connectionString);
    // pg is imported here, not with this module: only a PostgreSQL store pays for it (issue 18).
    const { default: pgModule } = await import('pg');
    const pool = new pgModule.Pool({
      connectionString,
      max,
      connectionTimeoutMillis: connectTimeout,
      statement_timeout: statementTimeout,
      idleTimeoutMillis: 10_000,
      application_name: 'brick',
    });
    // An idle client losing its server must not crash the process; the next query reports it.
    pool.on('error', () => {});
    const store = new PostgresStore(pool, location, schema);
    try {
      await store.migrate();
    } catch (err) {
      await pool.end().catch(() => {});
      throw store.wrap('open', err);
    }
    return store;
  }

  private wrap(what: string, err: unknown): BrickError {
    if (err instanceof BrickError) return err;
    const raw = err instanceof Error ? err.message : String(err);
    const e = err as { code?: unknown } | null;
    const code = typeof e?.code === 'string' ? e.code : undefined;
    return new PersistenceError(`PostgreSQL store ${this.location}: ${what} failed: ${redactConnectionUrl(raw)}`, {
      cause: err,
      details: { location: this.location, schema: this.schema, operation: what, ...(code ? { pg_code: code } : {}) },
    });
  }

  private handle(): pg.Pool {
    if (!this.pool) throw new PersistenceError(`PostgreSQL store ${this.location} is closed`, { details: { location: this.location } });
    return this.pool;
  }

  /** The highest applied schema migration. @throws {@link PersistenceError} */
  async schemaVersion(): Promise<number> {
    try {
      const r = await this.handle().query<{ v: number | null }>(`SELECT MAX(version) AS v FROM ${this.q}.schema_version`);
      return r.rows[0]?.v ?? 0;
    } catch (err) {
      throw this.wrap('read schema_version', err);
    }
  }

  private async migrate(): Promise<void> {
    const client = await this.handle().connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [MIGRATION_LOCK_CLASS, fnv1a(this.schema)]);
      // CREATE SCHEMA checks the database's CREATE privilege even with IF NOT EXISTS: only
      // issue it when the schema is missing, so a user without that privilege can open an
      // existing schema.
      const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [this.schema]);
      if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${this.q}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${this.q}.schema_version (version INTEGER NOT NULL PRIMARY KEY, description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
      );
      const cur = await client.query<{ v: number | null }>(`SELECT MAX(version) AS v FROM ${this.q}.schema_version`);
      const current = cur.rows[0]?.v ?? 0;
      if (current < latestVersion(POSTGRESQL_MIGRATIONS)) {
        for (const m of pendingMigrations(POSTGRESQL_MIGRATIONS, current)) {
          for (const stmt of m.statements(this.q)) await client.query(stmt);
          await client.query(`INSERT INTO ${this.q}.schema_version (version, description) VALUES ($1, $2)`, [m.version, m.description]);
        }
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  private async list<R extends BaseRecord>(spec: TableSpec, filter: object | undefined): Promise<R[]> {
    try {
      const { columns, rest } = splitFilter(spec, filter);
      const params: string[] = [];
      const where = columns.map(([c, v]) => {
        if (v === null) return `${c} IS NULL`;
        params.push(v);
        return `${c} = $${params.length}`;
      });
      const sql = `SELECT version, body FROM ${this.q}.${spec.table}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at COLLATE "C", id COLLATE "C"`;
      const r = await this.handle().query<RowBody>(sql, params);
      return r.rows
        .map((row) => ({ ...(row.body as R), version: row.version }))
        .filter((rec) => matchesRest(rec, rest))
        .sort(compareRecords);
    } catch (err) {
      throw this.wrap(`list ${spec.table}`, err);
    }
  }

  private async set<R extends BaseRecord>(spec: TableSpec, rec: R): Promise<R> {
    checkRecord(spec, rec);
    const pool = this.handle();
    const saved = savedCopy(rec);
    const names = spec.columns;
    const json = JSON.stringify(saved);
    // JSONB cannot hold U+0000 (JSON.stringify writes it as an unescaped-backslash `\u0000`).
    if (/(?:^|[^\\])(?:\\\\)*\\u0000/.test(json)) {
      throw new InvalidInputError(spec.kind, 'a string field contains a NUL character (U+0000), which PostgreSQL cannot store');
    }
    const values: unknown[] = [rec.id, ...columnValues(spec, saved), saved.created_at, saved.updated_at, json];
    const n = names.length;
    // $1 id, $2..$(n+1) columns, then created_at, updated_at, body.
    const ca = `$${n + 2}`;
    const ua = `$${n + 3}`;
    const body = `$${n + 4}::jsonb`;
    let sql: string;
    if (rec.version === 0) {
      sql = `INSERT INTO ${this.q}.${spec.table} (id, ${names.join(', ')}, version, created_at, updated_at, body) VALUES ($1, ${names.map((_, i) => `$${i + 2}`).join(', ')}, 1, ${ca}, ${ua}, ${body}) ON CONFLICT (id) DO NOTHING RETURNING version`;
    } else {
      values.push(rec.version);
      sql = `UPDATE ${this.q}.${spec.table} SET ${names.map((c, i) => `${c} = $${i + 2}`).join(', ')}, version = version + 1, created_at = ${ca}, updated_at = ${ua}, body = ${body} WHERE id = $1 AND version = $${n + 5} RETURNING version`;
    }
    let r: pg.QueryResult<{ version: number }>;
    try {
      r = await pool.query<{ version: number }>(sql, values);
    } catch (err) {
      throw this.wrap(`set ${spec.kind} ${rec.id}`, err);
    }
    if (r.rowCount === 1 && r.rows[0]?.version === saved.version) return saved;
    let found: number | null = null;
    try {
      const cur = await pool.query<{ version: number }>(`SELECT version FROM ${this.q}.${spec.table} WHERE id = $1`, [rec.id]);
      found = cur.rows[0]?.version ?? null;
    } catch {
      // The compare-and-set already failed; the found version is only for the message.
    }
    throw new StaleRecordError(spec.kind, rec.id, rec.version, found);
  }

  private async remove(spec: TableSpec, id: string): Promise<void> {
    if (typeof id !== 'string' || id === '') throw new InvalidInputError(`${spec.kind}.id`, 'must be a non-empty string');
    try {
      await this.handle().query(`DELETE FROM ${this.q}.${spec.table} WHERE id = $1`, [id]);
    } catch (err) {
      throw this.wrap(`delete ${spec.kind} ${id}`, err);
    }
  }

  /** @inheritdoc */
  getVolumes(filter?: VolumeFilter): Promise<VolumeRecord[]> {
    return this.list<VolumeRecord>(VOLUMES, filter);
  }
  /** @inheritdoc */
  setVolume(record: VolumeRecord): Promise<VolumeRecord> {
    return this.set(VOLUMES, record);
  }
  /** @inheritdoc */
  deleteVolume(id: string): Promise<void> {
    return this.remove(VOLUMES, id);
  }
  /** @inheritdoc */
  getSnapshots(filter?: SnapshotFilter): Promise<SnapshotRecord[]> {
    return this.list<SnapshotRecord>(SNAPSHOTS, filter);
  }
  /** @inheritdoc */
  setSnapshot(record: SnapshotRecord): Promise<SnapshotRecord> {
    return this.set(SNAPSHOTS, record);
  }
  /** @inheritdoc */
  deleteSnapshot(id: string): Promise<void> {
    return this.remove(SNAPSHOTS, id);
  }
  /** @inheritdoc */
  getConnections(filter?: ConnectionFilter): Promise<ConnectionRecord[]> {
    return this.list<ConnectionRecord>(CONNECTIONS, filter);
  }
  /** @inheritdoc */
  setConnection(record: ConnectionRecord): Promise<ConnectionRecord> {
    return this.set(CONNECTIONS, record);
  }
  /** @inheritdoc */
  deleteConnection(id: string): Promise<void> {
    return this.remove(CONNECTIONS, id);
  }

  /**
   * All key-values sorted by key, or the one with `key` (empty when missing).
   * @throws {@link PersistenceError} when PostgreSQL fails
   */
  async getKeyValues(key?: string): Promise<KeyValue[]> {
    try {
      const r =
        key === undefined
          ? await this.handle().query<KeyValue>(`SELECT key, value FROM ${this.q}.key_values ORDER BY key COLLATE "C"`)
          : await this.handle().query<KeyValue>(`SELECT key, value FROM ${this.q}.key_values WHERE key = $1`, [key]);
      return r.rows.map((row) => ({ key: row.key, value: row.value })).sort(compareKeyValues);
    } catch (err) {
      throw this.wrap('list key_values', err);
    }
  }
  /** Insert or replace a key-value (cinderlib's upsert). @throws {@link InvalidInputError} `key_value.key` / `key_value.value` */
  async setKeyValue(kv: KeyValue): Promise<void> {
    checkKeyValue(kv);
    try {
      await this.handle().query(`INSERT INTO ${this.q}.key_values (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, [kv.key, kv.value]);
    } catch (err) {
      throw this.wrap(`set key_value ${kv.key}`, err);
    }
  }
  /**
   * Delete a key-value; a missing key is a no-op.
   * @throws {@link InvalidInputError} (field `key_value.key`) for an empty or non-string key
   * @throws {@link PersistenceError} when PostgreSQL fails
   */
  async deleteKeyValue(key: string): Promise<void> {
    if (typeof key !== 'string' || key === '') throw new InvalidInputError('key_value.key', 'must be a non-empty string');
    try {
      await this.handle().query(`DELETE FROM ${this.q}.key_values WHERE key = $1`, [key]);
    } catch (err) {
      throw this.wrap(`delete key_value ${key}`, err);
    }
  }

  /** End the connection pool. Idempotent. */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    await pool?.end();
  }
}
