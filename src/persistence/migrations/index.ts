/**
 * Schema migrations of the SQL persistence plug-ins, kept as code.
 *
 * Each store keeps a `schema_version` table (one row per applied migration: `version`,
 * `description`, `applied_at`) and, on open, applies the migrations newer than its highest row
 * in one transaction, serialized across processes (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a
 * transaction-scoped advisory lock). Migrations are append-only: a published one never changes.
 * A database whose schema is newer than this code knows is opened as is (migrations only add),
 * which lets hosts sharing one PostgreSQL store upgrade one at a time, as cinderlib tolerates a
 * newer Cinder schema (cinderlib bug #1868145).
 *
 * @module
 */

/** One schema step. */
export interface Migration {
  /** 1, 2, 3... in order, no gaps. */
  readonly version: number;
  /** What it does, stored in `schema_version.description`. */
  readonly description: string;
  /**
   * The SQL statements to run, in order. PostgreSQL statements are produced for a given schema
   * (an already quoted identifier).
   */
  readonly statements: (schema: string) => readonly string[];
}

/** The highest version in `migrations` (0 when empty). */
export function latestVersion(migrations: readonly Migration[]): number {
  return migrations.reduce((m, x) => Math.max(m, x.version), 0);
}

/** The migrations still to apply on a database at `current`, in order. */
export function pendingMigrations(migrations: readonly Migration[], current: number): Migration[] {
  return migrations.filter((m) => m.version > current).sort((a, b) => a.version - b.version);
}
