/**
 * The metadata store interface: where Brick keeps volumes, snapshots, connections and
 * key-values between runs.
 *
 * cinderlib's persistence plug-in contract (`cinderlib/persistence/base.py`: `get_volumes`,
 * `get_snapshots`, `get_connections`, `get_key_values`, `set_*`, `delete_*`), async, with one
 * addition: every record carries a `version`, and `set*` is a compare-and-set on it, so two
 * processes sharing a store never silently overwrite each other's update (the later writer
 * gets a {@link StaleRecordError} and reloads). Deleting a missing record is a no-op.
 *
 * Plug-ins: `memory` (tests, throwaway use), `sqlite` (the default, better-sqlite3 in WAL
 * mode), `postgresql` (many hosts sharing one store).
 *
 * @module
 */
import { PersistenceError } from '../errors.js';

/** Status values a volume takes (Cinder's volume statuses). */
export type VolumeStatus = 'creating' | 'available' | 'in-use' | 'attaching' | 'detaching' | 'extending' | 'deleting' | 'deleted' | 'error' | 'error_deleting' | 'error_extending';

/** Status values a snapshot takes. */
export type SnapshotStatus = 'creating' | 'available' | 'deleting' | 'deleted' | 'error' | 'error_deleting';

/** Fields every record has. */
export interface BaseRecord {
  id: string;
  /** Optimistic-concurrency version: 0 for a record never saved; the store increments it on every set. */
  version: number;
  /** ISO-8601 timestamps. */
  created_at: string;
  updated_at: string;
}

/** A volume as stored. Sizes in GiB. */
export interface VolumeRecord extends BaseRecord {
  backend: string;
  /** Display name (may be empty). */
  name: string;
  description: string;
  size: number;
  status: VolumeStatus;
  provider_location: string | null;
  provider_auth: string | null;
  provider_id: string | null;
  admin_metadata: Record<string, string>;
  multiattach: boolean;
  /** The snapshot this volume was created from, if any. */
  snapshot_id: string | null;
  /** The volume this one was cloned from, if any. */
  source_volid: string | null;
  /** The last error message when status is `error*`. */
  error: string | null;
  /**
   * The key manager's id of the volume's encryption key (Cinder's `volumes.encryption_key_id`),
   * absent or null for a volume that is not encrypted. Kept in the record's JSON body: no column, no migration.
   */
  encryption_key_id?: string | null;
  /**
   * How the volume is encrypted on the host, with os-brick's keys (Cinder keeps this on the
   * volume type's encryption spec): absent or null when it is not. Kept in the record's JSON body.
   */
  encryption?: VolumeEncryptionRecord | null;
}

/** A volume's encryption as stored: os-brick's encryptor keys. */
export interface VolumeEncryptionRecord {
  /** `luks`, `luks2` or `plain`. */
  provider: string;
  /** cryptsetup cipher spec, when one was chosen. */
  cipher?: string;
  /** Key size in bits, when one was chosen. */
  key_size?: number;
  /** Always `front-end`: the host encrypts. */
  control_location: string;
}

/** A snapshot as stored. */
export interface SnapshotRecord extends BaseRecord {
  backend: string;
  volume_id: string;
  name: string;
  description: string;
  /** Source volume size in GiB at snapshot time. */
  volume_size: number;
  status: SnapshotStatus;
  provider_location: string | null;
  provider_id: string | null;
  error: string | null;
  /**
   * The owner marker `<host>:<pid>` while a process works on the snapshot (`creating`,
   * `deleting`), absent or null otherwise. Kept in the record's JSON body: no column, no migration.
   */
  busy_owner?: string | null;
}

/** A connection (Cinder's volume attachment) as stored. */
export interface ConnectionRecord extends BaseRecord {
  backend: string;
  volume_id: string;
  /** `attaching`, `attached`, `detached`, `error`. */
  status: 'attaching' | 'attached' | 'detached' | 'error';
  /** Connector protocol (`LOCAL`, `ISCSI`, ...). */
  protocol: string;
  /** The consumer host's connector properties. */
  connector_info: Record<string, unknown>;
  /** Cinder connection info `{ driver_volume_type, data }` (secrets included: the store must be protected like a Cinder DB). */
  conn_info: Record<string, unknown>;
  /** Device info from the host-side attach, or null while not attached on a host. */
  device: Record<string, unknown> | null;
  /** Name of the host that attached. */
  attached_host: string | null;
  /** `rw` or `ro`. */
  attach_mode: 'rw' | 'ro';
  /**
   * The owner marker `<host>:<pid>` while a process attaches or detaches through this connection,
   * absent or null at rest. Kept in the record's JSON body: no column, no migration.
   */
  busy_owner?: string | null;
}

/** A key-value pair (cinderlib's `KeyValue`). */
export interface KeyValue {
  key: string;
  value: string;
}

/** Filters for listing volumes. All given fields must match. */
export interface VolumeFilter {
  id?: string;
  backend?: string;
  name?: string;
  status?: VolumeStatus;
}

/** Filters for listing snapshots. */
export interface SnapshotFilter {
  id?: string;
  backend?: string;
  volume_id?: string;
  name?: string;
}

/** Filters for listing connections. */
export interface ConnectionFilter {
  id?: string;
  backend?: string;
  volume_id?: string;
}

/** The store contract every persistence plug-in implements. */
export interface Store {
  /** Plug-in name (`memory`, `sqlite`, `postgresql`). */
  readonly kind: string;
  getVolumes(filter?: VolumeFilter): Promise<VolumeRecord[]>;
  /**
   * Insert (version 0) or update (version = stored version) a volume; returns it with the new version.
   * @throws {@link StaleRecordError} when the stored version differs (someone else updated it)
   */
  setVolume(record: VolumeRecord): Promise<VolumeRecord>;
  /** Delete a volume record; missing is a no-op. */
  deleteVolume(id: string): Promise<void>;
  getSnapshots(filter?: SnapshotFilter): Promise<SnapshotRecord[]>;
  setSnapshot(record: SnapshotRecord): Promise<SnapshotRecord>;
  deleteSnapshot(id: string): Promise<void>;
  getConnections(filter?: ConnectionFilter): Promise<ConnectionRecord[]>;
  setConnection(record: ConnectionRecord): Promise<ConnectionRecord>;
  deleteConnection(id: string): Promise<void>;
  /** All key-values, or the one with `key` (empty array when missing). */
  getKeyValues(key?: string): Promise<KeyValue[]>;
  setKeyValue(kv: KeyValue): Promise<void>;
  deleteKeyValue(key: string): Promise<void>;
  /** Release the connection or file handle. */
  close(): Promise<void>;
}

/** A compare-and-set lost: the record changed since it was read. Reload and retry. */
export class StaleRecordError extends PersistenceError {
  constructor(kind: string, id: string, expected: number, found: number | null) {
    super(`${kind} ${id} was changed by another writer (expected version ${expected}, found ${found === null ? 'none' : found})`, {
      details: { kind, id, expected, found },
    });
  }
}

/** The current time as ISO-8601. */
export function nowIso(): string {
  return new Date().toISOString();
}
