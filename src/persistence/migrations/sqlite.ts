/**
 * SQLite schema migrations (see {@link ./index.ts}). The `schema` argument is unused: SQLite
 * has one schema per file.
 *
 * @module
 */
import type { Migration } from './index.js';

function recordTable(table: string, columns: readonly string[]): string[] {
  const cols = columns.map((c) => `  ${c} TEXT NOT NULL,`).join('\n');
  return [
    `CREATE TABLE ${table} (
  id TEXT NOT NULL PRIMARY KEY,
${cols}
  version INTEGER NOT NULL CHECK (version >= 1),
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  body TEXT NOT NULL CHECK (json_valid(body))
) STRICT`,
    ...columns.map((c) => `CREATE INDEX ${table}_${c} ON ${table} (${c})`),
    `CREATE INDEX ${table}_created ON ${table} (created_at, id)`,
  ];
}

/** Every SQLite migration, in order. */
export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'volumes, snapshots, connections, key_values',
    statements: () => [
      ...recordTable('volumes', ['backend', 'name', 'status']),
      ...recordTable('snapshots', ['backend', 'volume_id', 'name', 'status']),
      ...recordTable('connections', ['backend', 'volume_id', 'status']),
      'CREATE TABLE key_values (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL) STRICT',
    ],
  },
];
