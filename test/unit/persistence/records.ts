/**
 * Record builders shared by the persistence tests and their child-process worker.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { ConnectionRecord, SnapshotRecord, VolumeRecord } from '../../../src/persistence/store.js';

/** A complete, never-saved volume record (version 0). */
export function volume(over: Partial<VolumeRecord> = {}): VolumeRecord {
  return {
    id: randomUUID(),
    version: 0,
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: '2026-01-01T00:00:00.000Z',
    backend: 'lvm-1',
    name: 'vol',
    description: '',
    size: 1,
    status: 'available',
    provider_location: null,
    provider_auth: null,
    provider_id: null,
    admin_metadata: {},
    multiattach: false,
    snapshot_id: null,
    source_volid: null,
    error: null,
    ...over,
  };
}

/** A complete, never-saved snapshot record. */
export function snapshot(over: Partial<SnapshotRecord> = {}): SnapshotRecord {
  return {
    id: randomUUID(),
    version: 0,
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: '2026-01-01T00:00:00.000Z',
    backend: 'lvm-1',
    volume_id: 'vol-1',
    name: 'snap',
    description: '',
    volume_size: 1,
    status: 'available',
    provider_location: null,
    provider_id: null,
    error: null,
    ...over,
  };
}

/** A complete, never-saved connection record. */
export function connection(over: Partial<ConnectionRecord> = {}): ConnectionRecord {
  return {
    id: randomUUID(),
    version: 0,
    created_at: '2026-01-01T00:00:00.000Z',
    updated_at: '2026-01-01T00:00:00.000Z',
    backend: 'lvm-1',
    volume_id: 'vol-1',
    status: 'attached',
    protocol: 'ISCSI',
    connector_info: {},
    conn_info: {},
    device: null,
    attached_host: null,
    attach_mode: 'rw',
    ...over,
  };
}

/** Deterministic filler of about `kib` KiB derived from `id`, to detect torn or mixed writes. */
export function filler(id: string, kib = 64): string {
  const h = createHash('sha256').update(id).digest('hex');
  return h.repeat(Math.ceil((kib * 1024) / h.length));
}
