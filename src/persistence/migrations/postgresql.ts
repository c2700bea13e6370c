/**
 * PostgreSQL schema migrations (see {@link ./index.ts}). Statements are generated for the
 * store's schema; record bodies are JSONB; text columns sort with `COLLATE "C"` in queries.
 *
 * @module
 */
import type { Migration } from './index.js';

function recordTable(s: string, table: string, columns: readonly string[]): string[] {
  const cols = columns.map((c) => `  ${c} TEXT NOT NULL,`).join('\n');
  return [
    `CREATE TABLE ${s}.${table} (
  id TEXT NOT NULL PRIMARY KEY,
${cols}
  version INTEGER NOT NULL CHECK (version >= 1),
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  body JSONB NOT NULL
)`,
    ...columns.map((c) => `CREATE INDEX ${table}_${c} ON ${s}.${table} (${c})`),
    `CREATE INDEX ${table}_created ON ${s}.${table} (created_at COLLATE "C", id COLLATE "C")`,
  ];
}

/** Every PostgreSQL migration, in order. */
export const POSTGRESQL_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'volumes, snapshots, connections, key_values',
    statements: (s) => [
      ...recordTable(s, 'volumes', ['backend', 'name', 'status']),
      ...recordTable(s, 'snapshots', ['backend', 'volume_id', 'name', 'status']),
      ...recordTable(s, 'connections', ['backend', 'volume_id', 'status']),
      `CREATE TABLE ${s}.key_values (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)`,
    ],
  },
];
