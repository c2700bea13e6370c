/**
 * CLI output: tables for people (cli-table3), JSON for programs (`--json`), and errors as
 * one line on stderr (or a JSON object on stdout with `--json`).
 *
 * Text meant for a terminal never carries control characters from the data: names, descriptions
 * and messages are user input, and an ANSI escape or a newline in them could repaint or forge
 * the output. Tables and the one-line error show them escaped ({@link escapeForTerminal}); JSON
 * output keeps every string exact.
 *
 * @module
 */
import { createRequire } from 'node:module';
import type TableType from 'cli-table3';
import { BrickError } from '../errors.js';
import { maskText } from '../exec/mask.js';
import type { Volume, Snapshot, Connection } from '../library/index.js';

/** cli-table3, loaded on the first table (not for `--help` or JSON output: issue 18). */
function newTable(options: TableType.TableConstructorOptions): InstanceType<typeof TableType> {
  const Table = createRequire(import.meta.url)('cli-table3') as typeof TableType;
  return new Table(options);
}

/** Print `rows` as a table with `columns`, or as JSON. */
export function printRows(json: boolean, columns: string[], rows: Record<string, unknown>[]): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  const t = newTable({ head: columns.map(escapeForTerminal), style: { head: [], border: [] } });
  for (const r of rows) t.push(columns.map((c) => fmt(r[c])));
  process.stdout.write(`${t.toString()}\n`);
}

/** Print one object as a two-column table, or as JSON. */
export function printObject(json: boolean, obj: Record<string, unknown>): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(obj, null, 2)}\n`);
    return;
  }
  const t = newTable({ style: { head: [], border: [] } });
  for (const [k, v] of Object.entries(obj)) t.push({ [escapeForTerminal(k)]: fmt(v) });
  process.stdout.write(`${t.toString()}\n`);
}

/** C0 and C1 controls, DEL, and the Unicode bidirectional overrides and isolates. */
// eslint-disable-next-line no-control-regex
const unsafe = /[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `text` made safe to print on a terminal: newline, carriage return and tab become `\n`, `\r`
 * and `\t`; other control characters (C0, DEL, C1, so every ANSI escape) become `\xHH`;
 * Unicode bidirectional controls become `\uHHHH`. Everything else, backslashes included, is
 * printed as it is. Pure.
 */
export function escapeForTerminal(text: string): string {
  return text.replace(unsafe, (c) => {
    if (named[c] !== undefined) return named[c];
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

function fmt(v: unknown): string {
  if (v === null || v === undefined) return '';
  return escapeForTerminal(typeof v === 'object' ? JSON.stringify(v) : String(v));
}

/** A volume as the CLI shows it. */
export function volumeView(v: Volume): Record<string, unknown> {
  return {
    id: v.id,
    name: v.name,
    size: v.size,
    status: v.status,
    backend: v.backend.id,
    attached: v.localAttach?.path ?? null,
    snapshots: v.snapshots.map((s) => s.id),
    connections: v.connections.map((c) => c.id),
    source_volid: v.sourceVolid,
    snapshot_id: v.snapshotId,
    description: v.description,
    encryption: v.encryption,
    encryption_key_id: v.encryptionKeyId,
    created_at: v.createdAt,
    error: v.error,
  };
}

/** A snapshot as the CLI shows it. */
export function snapshotView(s: Snapshot): Record<string, unknown> {
  return { id: s.id, name: s.name, volume_id: s.volumeId, volume_size: s.volumeSize, status: s.status, created_at: s.createdAt, error: s.error };
}

/** A connection as the CLI shows it (secrets masked). */
export function connectionView(c: Connection): Record<string, unknown> {
  return { id: c.id, volume_id: c.volume.id, protocol: c.protocol, status: c.status, attached_host: c.attachedHost, path: c.path, device: c.device };
}

/** Print an error (masked): JSON on stdout with `--json`, else one line on stderr. */
export function printError(json: boolean, err: unknown): void {
  const body = err instanceof BrickError ? err.toJSON() : { error: 'Error', code: 'UNEXPECTED', message: err instanceof Error ? err.message : String(err) };
  body.message = maskText(String(body.message));
  if (json) process.stdout.write(`${JSON.stringify({ ok: false, ...body }, null, 2)}\n`);
  else process.stderr.write(`brick: error${body.code ? ` [${String(body.code)}]` : ''}: ${escapeForTerminal(String(body.message))}\n`);
}
