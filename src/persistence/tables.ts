/**
 * Table layout and record checks shared by the SQL persistence plug-ins (`sqlite`,
 * `postgresql`).
 *
 * Each record kind is one table whose indexed columns (`id`, `backend`, `volume_id`, `status`,
 * `name`, `version`, `created_at`, `updated_at`) copy fields of the record for filtering and
 * ordering, and whose `body` holds the whole record as JSON. The body is the source of truth for
 * every field except `version`, which the column holds (the store increments it on each set).
 *
 * @module
 */
import { InvalidInputError } from '../errors.js';
import type { BaseRecord, KeyValue } from './store.js';

/** Which record kind a table holds, its SQL name and its filterable columns. */
export interface TableSpec {
  /** Record kind as named in errors (`volume`, `snapshot`, `connection`). */
  readonly kind: 'volume' | 'snapshot' | 'connection';
  /** SQL table name. */
  readonly table: 'volumes' | 'snapshots' | 'connections';
  /**
   * Record fields copied into indexed text columns, besides `id`, `version`, `created_at` and
   * `updated_at` (every table has those). All are required strings in the record.
   */
  readonly columns: readonly string[];
}

/** `volumes`: filterable by id, backend, name, status. */
export const VOLUMES: TableSpec = { kind: 'volume', table: 'volumes', columns: ['backend', 'name', 'status'] };
/** `snapshots`: filterable by id, backend, volume_id, name, status. */
export const SNAPSHOTS: TableSpec = { kind: 'snapshot', table: 'snapshots', columns: ['backend', 'volume_id', 'name', 'status'] };
/** `connections`: filterable by id, backend, volume_id, status. */
export const CONNECTIONS: TableSpec = { kind: 'connection', table: 'connections', columns: ['backend', 'volume_id', 'status'] };

/** The three record tables. */
export const RECORD_TABLES: readonly TableSpec[] = [VOLUMES, SNAPSHOTS, CONNECTIONS];

/**
 * A list filter split into the part a SQL `WHERE` handles (indexed columns, exact match) and the
 * rest, matched in JavaScript against the decoded record exactly as the memory plug-in does.
 */
export interface SplitFilter {
  /** `[column, value]` pairs; a `null` value means `IS NULL`. */
  readonly columns: Array<[string, string | null]>;
  /** Remaining fields, compared with `===` against the record. */
  readonly rest: Record<string, unknown>;
}

/** Split `filter` for `spec`. Fields whose value is `undefined` are ignored (as in the memory store). */
export function splitFilter(spec: TableSpec, filter: object | undefined): SplitFilter {
  const columns: Array<[string, string | null]> = [];
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(filter ?? {})) {
    if (v === undefined) continue;
    if ((k === 'id' || spec.columns.includes(k)) && (typeof v === 'string' || v === null)) columns.push([k, v]);
    else rest[k] = v;
  }
  return { columns, rest };
}

/** Whether `rec` has every field of `rest` with an identical (`===`) value. */
export function matchesRest(rec: object, rest: Record<string, unknown>): boolean {
  return Object.entries(rest).every(([k, v]) => (rec as Record<string, unknown>)[k] === v);
}

/** List order of every store: `created_at`, then `id` (the memory store's comparator). */
export function compareRecords(a: BaseRecord, b: BaseRecord): number {
  return a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id);
}

/** Key-value list order of every store (the memory store's comparator). */
export function compareKeyValues(a: KeyValue, b: KeyValue): number {
  return a.key.localeCompare(b.key);
}

/**
 * Check the fields a SQL store copies into columns before anything is written.
 * @throws {@link InvalidInputError} naming `<kind>.<field>` (e.g. `volume.version`)
 */
export function checkRecord(spec: TableSpec, rec: BaseRecord): void {
  if (rec === null || typeof rec !== 'object') throw new InvalidInputError(spec.kind, 'must be an object');
  const r = rec as unknown as Record<string, unknown>;
  if (typeof r.id !== 'string' || r.id === '') throw new InvalidInputError(`${spec.kind}.id`, 'must be a non-empty string');
  if (typeof r.version !== 'number' || !Number.isSafeInteger(r.version) || r.version < 0) {
    throw new InvalidInputError(`${spec.kind}.version`, 'must be an integer >= 0 (0 for a record never saved)');
  }
  for (const f of ['created_at', 'updated_at', ...spec.columns]) {
    if (typeof r[f] !== 'string') throw new InvalidInputError(`${spec.kind}.${f}`, 'must be a string');
  }
}

/**
 * Check a key-value before it is written.
 * @throws {@link InvalidInputError} naming `key_value.key` or `key_value.value`
 */
export function checkKeyValue(kv: KeyValue): void {
  if (kv === null || typeof kv !== 'object') throw new InvalidInputError('key_value', 'must be an object');
  if (typeof kv.key !== 'string' || kv.key === '') throw new InvalidInputError('key_value.key', 'must be a non-empty string');
  if (typeof kv.value !== 'string') throw new InvalidInputError('key_value.value', 'must be a string');
}

/** The record as saved: a deep copy with `version` incremented. */
export function savedCopy<R extends BaseRecord>(rec: R): R {
  return { ...structuredClone(rec), version: rec.version + 1 };
}

/** Column values of `rec` in `spec.columns` order. */
export function columnValues(spec: TableSpec, rec: BaseRecord): string[] {
  return spec.columns.map((c) => (rec as unknown as Record<string, string>)[c]!);
}
