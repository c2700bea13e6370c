/**
 * The `memory` persistence plug-in: everything in process memory, lost on exit.
 * cinderlib's `memory` plug-in, with the same compare-and-set semantics as the others.
 *
 * @module
 */
import type { ConnectionFilter, ConnectionRecord, KeyValue, SnapshotFilter, SnapshotRecord, Store, VolumeFilter, VolumeRecord, BaseRecord } from './store.js';
import { StaleRecordError } from './store.js';

function matches(rec: object, filter: object | undefined): boolean {
  if (!filter) return true;
  return Object.entries(filter).every(([k, v]) => v === undefined || (rec as Record<string, unknown>)[k] === v);
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

class Table<R extends BaseRecord> {
  private readonly rows = new Map<string, R>();
  constructor(private readonly kind: string) {}
  list(filter?: object): R[] {
    return [...this.rows.values()].filter((r) => matches(r, filter)).map(clone).sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
  }
  set(rec: R): R {
    const cur = this.rows.get(rec.id);
    const found = cur ? cur.version : null;
    if ((rec.version === 0 && cur) || (rec.version !== 0 && found !== rec.version)) throw new StaleRecordError(this.kind, rec.id, rec.version, found);
    const saved = { ...clone(rec), version: rec.version + 1 };
    this.rows.set(rec.id, saved);
    return clone(saved);
  }
  delete(id: string): void {
    this.rows.delete(id);
  }
}

/** In-memory store. */
export class MemoryStore implements Store {
  readonly kind = 'memory';
  private readonly volumes = new Table<VolumeRecord>('volume');
  private readonly snapshots = new Table<SnapshotRecord>('snapshot');
  private readonly connections = new Table<ConnectionRecord>('connection');
  private readonly kvs = new Map<string, string>();

  async getVolumes(filter?: VolumeFilter): Promise<VolumeRecord[]> {
    return this.volumes.list(filter);
  }
  async setVolume(record: VolumeRecord): Promise<VolumeRecord> {
    return this.volumes.set(record);
  }
  async deleteVolume(id: string): Promise<void> {
    this.volumes.delete(id);
  }
  async getSnapshots(filter?: SnapshotFilter): Promise<SnapshotRecord[]> {
    return this.snapshots.list(filter);
  }
  async setSnapshot(record: SnapshotRecord): Promise<SnapshotRecord> {
    return this.snapshots.set(record);
  }
  async deleteSnapshot(id: string): Promise<void> {
    this.snapshots.delete(id);
  }
  async getConnections(filter?: ConnectionFilter): Promise<ConnectionRecord[]> {
    return this.connections.list(filter);
  }
  async setConnection(record: ConnectionRecord): Promise<ConnectionRecord> {
    return this.connections.set(record);
  }
  async deleteConnection(id: string): Promise<void> {
    this.connections.delete(id);
  }
  async getKeyValues(key?: string): Promise<KeyValue[]> {
    if (key !== undefined) return this.kvs.has(key) ? [{ key, value: this.kvs.get(key)! }] : [];
    return [...this.kvs.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, value]) => ({ key: k, value }));
  }
  async setKeyValue(kv: KeyValue): Promise<void> {
    this.kvs.set(kv.key, kv.value);
  }
  async deleteKeyValue(key: string): Promise<void> {
    this.kvs.delete(key);
  }
  async close(): Promise<void> {}
}
