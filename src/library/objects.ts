/**
 * cinderlib's object API: {@link Backend}, {@link Volume}, {@link Snapshot}, {@link Connection}.
 *
 * The error contract is cinderlib's: an operation that fails leaves the object in an `error`
 * status (the message kept in `error`), saves it, and throws. Transitional statuses
 * (`creating`, `deleting`, `extending`, ...) are saved before the driver is called, together
 * with the owning host and process; a later start that finds a transitional record whose owner
 * process on this host is dead marks it `error`, so a crash never leaves a record that claims
 * to be working. Objects are kept in an identity map: loading the same id twice yields the
 * same instance.
 *
 * Two levels of detach, as cinderlib: `connection.detach()` undoes the host-side attach only
 * (the connection stays listed and mapped); `connection.disconnect()` also terminates the
 * connection on the backend; `volume.detach()` does both for the local attachment.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { InvalidInputError, InvalidStateError, AlreadyExistsError, NotFoundError, InsufficientCapacityError } from '../errors.js';
import { driverFactory } from '../drivers/registry.js';
import type { ConnectionInfo, DriverSnapshot, DriverVolume, ModelUpdate, VolumeDriver, VolumeStats } from '../drivers/driver.js';
import { connectorFor } from '../initiator/factory.js';
import type { DeviceInfo, DisconnectOptions } from '../initiator/connector.js';
import { getConnectorProperties, type ConnectorProperties } from '../initiator/properties.js';
import { maskObject } from '../exec/mask.js';
import type { ConnectionRecord, SnapshotRecord, SnapshotStatus, VolumeRecord, VolumeStatus } from '../persistence/store.js';
import { nowIso } from '../persistence/store.js';
import { currentContext, type BrickContext } from './context.js';
import { join } from 'node:path';

const GiB = 1024 ** 3;
const BUSY_KEY = 'brick_busy_owner';
const TRANSITIONAL: ReadonlySet<string> = new Set(['creating', 'deleting', 'extending', 'attaching', 'detaching']);

/** A backend's configuration: Cinder's backend section. Extra keys go to the driver. */
export interface BackendConfig {
  /** Unique backend name. */
  volume_backend_name: string;
  /** Driver name (`file`, `lvm`, `netapp_eseries`, `ibm_flashsystem`) or a Cinder class path alias. */
  volume_driver: string;
  [key: string]: unknown;
}

/** Options for {@link Backend.createVolume}. */
export interface CreateVolumeOptions {
  /** Size in GiB: a positive integer. */
  size: number;
  name?: string;
  description?: string;
  /** Allow attaching to several hosts (only where the driver reports `multiattach`). */
  multiattach?: boolean;
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

function validateSize(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new InvalidInputError(field, `must be a number of GiB, got ${JSON.stringify(value)}`);
  if (!Number.isInteger(value)) throw new InvalidInputError(field, `must be a whole number of GiB, got ${value}`);
  if (value <= 0) throw new InvalidInputError(field, `must be at least 1 GiB, got ${value}`);
  return value;
}

function optionalText(value: unknown, field: string, max = 255): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new InvalidInputError(field, 'must be a string');
  if (value.length > max) throw new InvalidInputError(field, `must be at most ${max} characters`);
  return value;
}

function owner(ctx: BrickContext): string {
  return `${ctx.hostName}:${process.pid}`;
}

function ownerIsDead(ctx: BrickContext, value: string | undefined): boolean {
  if (!value) return true;
  const i = value.lastIndexOf(':');
  const host = value.slice(0, i);
  const pid = Number(value.slice(i + 1));
  if (host !== ctx.hostName || !Number.isInteger(pid)) return false; // another host's work: not ours to judge
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A storage backend: a configured driver plus the volumes it holds. cinderlib's `Backend`.
 *
 * Construction validates the configuration synchronously (unknown driver, bad name, a name
 * reused with another configuration) and starts the driver's setup; every method waits for it,
 * and `await backend.ready` (or `Backend.create`) surfaces setup errors at once.
 */
export class Backend {
  /** `volume_backend_name`. */
  readonly id!: string;
  /** The driver's configuration (without the backend name and driver keys). */
  readonly config!: Readonly<BackendConfig>;
  /** The driver. */
  readonly driver!: VolumeDriver;
  /** Resolves when the driver is set up and the backend's volumes are loaded. */
  readonly ready!: Promise<void>;
  /** The library context this backend belongs to. */
  readonly context!: BrickContext;
  private readonly fingerprint!: string;
  private loaded: Volume[] = [];
  private statsCache: VolumeStats | undefined;

  /**
   * @throws {@link InvalidInputError} (field `volume_backend_name`) for a missing or malformed name
   * @throws {@link ProtocolNotSupportedError} (field `volume_driver`) for an unknown driver
   * @throws {@link AlreadyExistsError} when the name is in use with a different configuration
   * @throws {@link InvalidConfigError} naming the driver option that is wrong
   */
  constructor(config: BackendConfig, options: { context?: BrickContext } = {}) {
    const ctx = options.context ?? currentContext();
    if (config === null || typeof config !== 'object') throw new InvalidInputError('backend config', 'must be an object');
    const name = config.volume_backend_name;
    if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) {
      throw new InvalidInputError('volume_backend_name', `must be 1-63 letters, digits, '_', '.', '-', got ${JSON.stringify(name)}`);
    }
    if (typeof config.volume_driver !== 'string') throw new InvalidInputError('volume_driver', 'is required');
    const fingerprint = stableJson(config);
    const existing = ctx.backends.get(name) as Backend | undefined;
    if (existing) {
      if (existing.fingerprint !== fingerprint) throw new AlreadyExistsError(`backend ${name} already exists with a different configuration`, { field: 'volume_backend_name' });
      return existing;
    }
    const { name: driverName, factory } = driverFactory(config.volume_driver);
    const driverConfig: Record<string, unknown> = { ...config };
    delete driverConfig.volume_backend_name;
    delete driverConfig.volume_driver;
    this.id = name;
    this.context = ctx;
    this.config = { ...config, volume_driver: driverName };
    this.fingerprint = fingerprint;
    this.driver = factory(driverConfig, {
      host: ctx.host,
      backendName: name,
      stateDir: join(ctx.stateDir, 'backends', name),
      onProgress: ctx.onProgress,
    });
    ctx.backends.set(name, this);
    this.ready = this.init();
    this.ready.catch(() => {
      ctx.backends.delete(name);
    });
  }

  /** Construct and wait until ready. @throws as the constructor, plus the driver's setup errors */
  static async create(config: BackendConfig, options: { context?: BrickContext } = {}): Promise<Backend> {
    const b = new Backend(config, options);
    await b.ready;
    return b;
  }

  private async init(): Promise<void> {
    await this.driver.doSetup();
    await this.driver.checkForSetupError();
    this.loaded = await this.loadVolumes();
    await this.ensureExports();
  }

  /**
   * Cinder's `init_host`: re-create the exports of volumes that have connections (after a reboot
   * of the target host, LIO/tgt/nvmet configuration and loop devices are gone). A failure is
   * logged and the volume left as it is; it does not stop the backend.
   */
  private async ensureExports(): Promise<void> {
    for (const vol of this.loaded) {
      if (vol.connections.length === 0 || vol.status === 'error' || vol.status === 'deleted') continue;
      try {
        vol.applyUpdate(await this.driver.ensureExport(vol.toDriver()));
      } catch (err) {
        this.context.host.logger.warn({ volume_id: vol.id, err: errorText(err) }, 'ensure_export failed at backend start');
      }
    }
  }

  /** Volumes of this backend loaded so far (kept current by this process's operations). */
  get volumes(): Volume[] {
    return [...this.loaded];
  }

  /** The backend's volumes as stored now (reloads from the store). */
  async getVolumes(filter: { name?: string; status?: VolumeStatus } = {}): Promise<Volume[]> {
    await this.ready;
    this.loaded = await this.loadVolumes();
    return this.loaded.filter((v) => (filter.name === undefined || v.name === filter.name) && (filter.status === undefined || v.status === filter.status));
  }

  /**
   * The volume with `id`.
   * @throws {@link NotFoundError} when it is not in this backend
   */
  async getVolume(id: string): Promise<Volume> {
    await this.ready;
    const [rec] = await this.context.store.getVolumes({ id, backend: this.id });
    if (!rec) throw new NotFoundError('volume', id);
    return this.volumeFromRecord(rec);
  }

  /** Every snapshot of this backend. */
  async getSnapshots(): Promise<Snapshot[]> {
    await this.ready;
    const out: Snapshot[] = [];
    for (const rec of await this.context.store.getSnapshots({ backend: this.id })) {
      const vol = await this.getVolume(rec.volume_id).catch(() => undefined);
      if (vol) out.push(await vol.snapshotFromRecord(rec));
    }
    return out;
  }

  private async loadVolumes(): Promise<Volume[]> {
    const out: Volume[] = [];
    for (const rec of await this.context.store.getVolumes({ backend: this.id })) out.push(await this.volumeFromRecord(rec));
    return out;
  }

  /** @internal the identity-mapped Volume for a record, recovering interrupted work. */
  async volumeFromRecord(rec: VolumeRecord): Promise<Volume> {
    const key = `volume:${rec.id}`;
    let vol = this.context.objects.get(key) as Volume | undefined;
    if (vol) {
      if (rec.version > vol.version) vol.assign(rec);
    } else {
      vol = new Volume(this, rec);
      this.context.objects.set(key, vol);
    }
    if (TRANSITIONAL.has(vol.status) && ownerIsDead(this.context, vol.adminMetadata[BUSY_KEY])) {
      await vol.markInterrupted();
    }
    await vol.loadChildren();
    return vol;
  }

  /** @internal */
  forget(vol: Volume): void {
    this.loaded = this.loaded.filter((v) => v !== vol);
    this.context.objects.delete(`volume:${vol.id}`);
    this.statsCache = undefined;
  }

  /** @internal */
  remember(vol: Volume): void {
    if (!this.loaded.includes(vol)) this.loaded.push(vol);
    this.statsCache = undefined;
  }

  /**
   * The driver's stats (Cinder keys, capacities in GiB). Cached: pass `refresh: true` to ask the
   * driver again (cinderlib `Backend.stats(refresh=False)`).
   */
  async stats(options: { refresh?: boolean } = {}): Promise<VolumeStats> {
    await this.ready;
    if (!this.statsCache || options.refresh) this.statsCache = await this.driver.getVolumeStats(options.refresh ?? false);
    return this.statsCache;
  }

  /**
   * Create a volume of `size` GiB. The input is validated before anything is stored or run.
   * @throws {@link InvalidInputError} (field `size`, `name`, `description`)
   * @throws {@link InsufficientCapacityError} (from the driver) when it does not fit; the volume is then saved in `error`
   */
  async createVolume(options: CreateVolumeOptions): Promise<Volume> {
    if (options === null || typeof options !== 'object') throw new InvalidInputError('options', 'must be an object with a size');
    const size = validateSize(options.size, 'size');
    const name = optionalText(options.name, 'name');
    const description = optionalText(options.description, 'description', 4096);
    await this.ready;
    const stats = await this.stats({ refresh: true });
    const free = typeof stats.free_capacity_gb === 'number' ? stats.free_capacity_gb : Infinity;
    const ratio = Number(stats.max_over_subscription_ratio ?? 1) || 1;
    if (size > free * ratio) {
      throw new InsufficientCapacityError(`size ${size} GiB exceeds the free capacity of backend ${this.id} (${free} GiB)`, { field: 'size' });
    }
    if (options.multiattach && stats.multiattach !== true && !(stats.pools ?? []).some((p) => p.multiattach)) {
      throw new InvalidInputError('multiattach', `backend ${this.id} does not support multiattach`);
    }
    const vol = new Volume(this, Volume.newRecord(this.id, { size, name, description, multiattach: options.multiattach ?? false }));
    this.context.objects.set(`volume:${vol.id}`, vol);
    await vol.runDriver('creating', 'available', () => this.driver.createVolume(vol.toDriver()));
    this.remember(vol);
    return vol;
  }

  /** This host's connector properties, for this backend's attaches (multipath as the driver wants). */
  async connectorProperties(): Promise<ConnectorProperties> {
    return getConnectorProperties({
      multipath: this.driver.useMultipath,
      host: this.context.hostName,
      myIp: this.context.myIp,
      hostRoot: this.context.host.hostRoot,
      ensureNvmeIdentity: this.driver.connectorProtocol === 'NVMEOF' ? this.context.host : undefined,
    });
  }

  /** Release the driver's resources and forget the backend's objects. */
  async close(): Promise<void> {
    await this.ready.catch(() => undefined);
    await this.driver.close?.();
    for (const v of this.loaded) this.context.objects.delete(`volume:${v.id}`);
    this.context.backends.delete(this.id);
  }
}

/** A volume. cinderlib's `Volume`. Sizes in GiB. */
export class Volume {
  readonly backend: Backend;
  readonly id: string;
  name!: string;
  description!: string;
  size!: number;
  status!: VolumeStatus;
  multiattach!: boolean;
  providerLocation!: string | null;
  providerAuth!: string | null;
  providerId!: string | null;
  adminMetadata!: Record<string, string>;
  snapshotId!: string | null;
  sourceVolid!: string | null;
  error!: string | null;
  createdAt!: string;
  updatedAt!: string;
  /** Store version (optimistic concurrency). */
  version!: number;
  /** Snapshots of this volume. */
  snapshots: Snapshot[] = [];
  /** Connections (attachments) of this volume, on any host. */
  connections: Connection[] = [];

  /** @internal use Backend.createVolume / getVolume */
  constructor(backend: Backend, rec: VolumeRecord) {
    this.backend = backend;
    this.id = rec.id;
    this.assign(rec);
  }

  /** @internal */
  static newRecord(backend: string, o: { size: number; name: string; description: string; multiattach: boolean; snapshot_id?: string | null; source_volid?: string | null }): VolumeRecord {
    const now = nowIso();
    return {
      id: randomUUID(),
      version: 0,
      created_at: now,
      updated_at: now,
      backend,
      name: o.name,
      description: o.description,
      size: o.size,
      status: 'creating',
      provider_location: null,
      provider_auth: null,
      provider_id: null,
      admin_metadata: {},
      multiattach: o.multiattach,
      snapshot_id: o.snapshot_id ?? null,
      source_volid: o.source_volid ?? null,
      error: null,
    };
  }

  /** @internal */
  assign(rec: VolumeRecord): void {
    this.name = rec.name;
    this.description = rec.description;
    this.size = rec.size;
    this.status = rec.status;
    this.multiattach = rec.multiattach;
    this.providerLocation = rec.provider_location;
    this.providerAuth = rec.provider_auth;
    this.providerId = rec.provider_id;
    this.adminMetadata = { ...rec.admin_metadata };
    this.snapshotId = rec.snapshot_id;
    this.sourceVolid = rec.source_volid;
    this.error = rec.error;
    this.createdAt = rec.created_at;
    this.updatedAt = rec.updated_at;
    this.version = rec.version;
  }

  /** The stored shape (snake_case, as cinderlib serializes it). */
  toRecord(): VolumeRecord {
    return {
      id: this.id,
      version: this.version,
      created_at: this.createdAt,
      updated_at: this.updatedAt,
      backend: this.backend.id,
      name: this.name,
      description: this.description,
      size: this.size,
      status: this.status,
      provider_location: this.providerLocation,
      provider_auth: this.providerAuth,
      provider_id: this.providerId,
      admin_metadata: { ...this.adminMetadata },
      multiattach: this.multiattach,
      snapshot_id: this.snapshotId,
      source_volid: this.sourceVolid,
      error: this.error,
    };
  }

  /** The volume as the driver sees it (`name` is the backend name `volume-<id>`). */
  toDriver(): DriverVolume {
    return {
      id: this.id,
      name: `volume-${this.id}`,
      display_name: this.name,
      size: this.size,
      provider_location: this.providerLocation,
      provider_auth: this.providerAuth,
      provider_id: this.providerId,
      multiattach: this.multiattach,
      admin_metadata: { ...this.adminMetadata },
    };
  }

  /** The connection attached on this host (cinderlib `local_attach`), or null. */
  get localAttach(): Connection | null {
    return this.connections.find((c) => c.device !== null && c.attachedHost === this.backend.context.hostName) ?? null;
  }

  /** Save the current state to the store. */
  async save(): Promise<void> {
    this.updatedAt = nowIso();
    const saved = await this.backend.context.store.setVolume(this.toRecord());
    this.version = saved.version;
  }

  /** @internal apply a driver model update. */
  applyUpdate(update: ModelUpdate | void): void {
    if (!update) return;
    if (update.provider_location !== undefined) this.providerLocation = update.provider_location;
    if (update.provider_auth !== undefined) this.providerAuth = update.provider_auth;
    if (update.provider_id !== undefined) this.providerId = update.provider_id;
    if (update.size !== undefined) this.size = update.size;
    if (update.admin_metadata !== undefined) this.adminMetadata = { ...this.adminMetadata, ...update.admin_metadata };
  }

  /**
   * @internal Start from the stored state when another host or process saved the volume since
   * this object read it, and refuse while someone alive is in the middle of an operation on it.
   * @throws {@link InvalidStateError} when a live owner holds the volume in a transitional status
   */
  async syncFromStore(): Promise<void> {
    if (this.version === 0) return;
    const [cur] = await this.backend.context.store.getVolumes({ id: this.id });
    if (cur && cur.version > this.version) {
      this.assign(cur);
      if (TRANSITIONAL.has(cur.status) && !ownerIsDead(this.backend.context, cur.admin_metadata[BUSY_KEY])) {
        throw new InvalidStateError(`volume ${this.id} is ${cur.status} by ${cur.admin_metadata[BUSY_KEY] ?? 'another process'}; try again when it is done`, {
          details: { volume_id: this.id, status: cur.status },
        });
      }
    }
  }

  /**
   * @internal Run a driver step under cinderlib's error contract: save `transitional`, run,
   * save `done` (or `error` and rethrow).
   */
  async runDriver<T>(transitional: VolumeStatus, done: VolumeStatus | (() => VolumeStatus), fn: () => Promise<T>): Promise<T> {
    await this.syncFromStore();
    this.status = transitional;
    this.error = null;
    this.adminMetadata[BUSY_KEY] = owner(this.backend.context);
    await this.save();
    try {
      const result = await fn();
      if (result && typeof result === 'object' && !Array.isArray(result)) this.applyUpdate(result as ModelUpdate);
      this.status = typeof done === 'function' ? done() : done;
      delete this.adminMetadata[BUSY_KEY];
      // A 'deleted' outcome is never written: the caller removes the record next, so a crash in
      // between leaves the 'deleting' record (marked error on the next start), not a 'deleted' one.
      if (this.status !== 'deleted') await this.save();
      return result;
    } catch (err) {
      this.status = 'error';
      this.error = errorText(err);
      delete this.adminMetadata[BUSY_KEY];
      await this.save().catch(() => undefined);
      throw err;
    }
  }

  /** @internal a transitional record whose process died: mark it error. */
  async markInterrupted(): Promise<void> {
    const was = this.status;
    this.status = 'error';
    this.error = `interrupted while ${was}: the process that was working on it (${this.adminMetadata[BUSY_KEY] ?? 'unknown'}) is gone`;
    delete this.adminMetadata[BUSY_KEY];
    await this.save();
  }

  /**
   * Re-read the volume, its snapshots and its connections from the store (cinderlib
   * `Volume.refresh`), keeping object identity: how a controller sees the device info a
   * consumer host saved, or a consumer sees a connection the controller made.
   * @returns this volume
   * @throws {@link NotFoundError} when the volume is no longer stored
   */
  async refresh(): Promise<this> {
    const [rec] = await this.backend.context.store.getVolumes({ id: this.id });
    if (!rec) throw new NotFoundError('volume', this.id);
    if (rec.version > this.version) this.assign(rec);
    await this.loadChildren();
    return this;
  }

  /** @internal load snapshots and connections from the store. */
  async loadChildren(): Promise<void> {
    const store = this.backend.context.store;
    const snaps: Snapshot[] = [];
    for (const r of await store.getSnapshots({ volume_id: this.id })) snaps.push(await this.snapshotFromRecord(r));
    this.snapshots = snaps;
    const conns: Connection[] = [];
    for (const r of await store.getConnections({ volume_id: this.id })) conns.push(this.connectionFromRecord(r));
    this.connections = conns;
  }

  /** @internal */
  async snapshotFromRecord(rec: SnapshotRecord): Promise<Snapshot> {
    const key = `snapshot:${rec.id}`;
    let s = this.backend.context.objects.get(key) as Snapshot | undefined;
    if (s) {
      if (rec.version > s.version) s.assign(rec);
    } else {
      s = new Snapshot(this, rec);
      this.backend.context.objects.set(key, s);
    }
    return s;
  }

  /** @internal */
  connectionFromRecord(rec: ConnectionRecord): Connection {
    const key = `connection:${rec.id}`;
    let c = this.backend.context.objects.get(key) as Connection | undefined;
    if (c) {
      if (rec.version > c.version) c.assign(rec);
    } else {
      c = new Connection(this, rec);
      this.backend.context.objects.set(key, c);
    }
    return c;
  }

  private ensureUsable(action: string): void {
    if (this.status === 'deleted') throw new InvalidStateError(`volume ${this.id} is deleted; cannot ${action}`, { details: { volume_id: this.id } });
    if (TRANSITIONAL.has(this.status)) throw new InvalidStateError(`volume ${this.id} is ${this.status}; cannot ${action} now`, { details: { volume_id: this.id, status: this.status } });
  }

  /**
   * Delete the volume. Refused while it has snapshots or connections; deleting a deleted volume succeeds.
   * @throws {@link InvalidStateError} when snapshots or connections exist
   */
  async delete(): Promise<void> {
    if (this.status === 'deleted') return;
    await this.backend.ready;
    if (this.version > 0 && (await this.backend.context.store.getVolumes({ id: this.id })).length === 0) {
      // Someone (another object, process or host) already deleted it: deleting twice succeeds.
      this.status = 'deleted';
      this.backend.forget(this);
      return;
    }
    await this.loadChildren();
    if (this.snapshots.length > 0) {
      throw new InvalidStateError(`volume ${this.id} has ${this.snapshots.length} snapshot(s); delete them first`, { details: { volume_id: this.id, snapshots: this.snapshots.map((s) => s.id) } });
    }
    if (this.connections.length > 0) {
      throw new InvalidStateError(`volume ${this.id} is attached (${this.connections.length} connection(s)); detach it first`, { details: { volume_id: this.id } });
    }
    if (TRANSITIONAL.has(this.status) && this.status !== 'deleting') this.ensureUsable('delete');
    await this.runDriver('deleting', 'deleted', () => this.backend.driver.deleteVolume(this.toDriver()));
    await this.backend.context.store.deleteVolume(this.id);
    this.status = 'deleted';
    this.backend.forget(this);
  }

  /**
   * Grow the volume to `newSize` GiB. When attached on this host the host-side device is
   * refreshed too, and the size the host sees is returned; otherwise `newSize` in bytes.
   * @returns the new size in bytes
   * @throws {@link InvalidInputError} (field `new_size`) unless `newSize` is a whole number larger than the current size
   */
  async extend(newSize: number): Promise<number> {
    const size = validateSize(newSize, 'new_size');
    await this.syncFromStore();
    if (size <= this.size) throw new InvalidInputError('new_size', `must be larger than the current size ${this.size} GiB, got ${size}`);
    this.ensureUsable('extend');
    await this.backend.ready;
    const previous = this.status;
    await this.runDriver('extending', previous, async () => {
      await this.backend.driver.extendVolume(this.toDriver(), size);
      this.size = size;
    });
    const local = this.localAttach;
    if (local) return local.extend();
    return size * GiB;
  }

  /**
   * Snapshot the volume.
   * @throws {@link InvalidInputError} (field `name`, `description`)
   */
  async createSnapshot(options: { name?: string; description?: string } = {}): Promise<Snapshot> {
    const name = optionalText(options.name, 'name');
    const description = optionalText(options.description, 'description', 4096);
    this.ensureUsable('snapshot');
    await this.backend.ready;
    const now = nowIso();
    const snap = new Snapshot(this, {
      id: randomUUID(),
      version: 0,
      created_at: now,
      updated_at: now,
      backend: this.backend.id,
      volume_id: this.id,
      name,
      description,
      volume_size: this.size,
      status: 'creating',
      provider_location: null,
      provider_id: null,
      error: null,
    });
    this.backend.context.objects.set(`snapshot:${snap.id}`, snap);
    await snap.runDriver('creating', 'available', () => this.backend.driver.createSnapshot(snap.toDriver()));
    this.snapshots.push(snap);
    return snap;
  }

  /**
   * A new volume with this volume's data (Cinder `create_cloned_volume`).
   * @param options.size GiB, at least the source's size (default: the same)
   */
  async clone(options: { name?: string; description?: string; size?: number } = {}): Promise<Volume> {
    const size = options.size === undefined ? this.size : validateSize(options.size, 'size');
    if (size < this.size) throw new InvalidInputError('size', `a clone cannot be smaller than its source (${this.size} GiB)`);
    const name = optionalText(options.name, 'name');
    const description = optionalText(options.description, 'description', 4096);
    this.ensureUsable('clone');
    await this.backend.ready;
    const vol = new Volume(this.backend, Volume.newRecord(this.backend.id, { size, name, description, multiattach: this.multiattach, source_volid: this.id }));
    this.backend.context.objects.set(`volume:${vol.id}`, vol);
    await vol.runDriver('creating', 'available', () => this.backend.driver.createClonedVolume(vol.toDriver(), this.toDriver()));
    this.backend.remember(vol);
    return vol;
  }

  /**
   * Export and map the volume for `connector` (another host's connector properties) and
   * persist the connection, without attaching on this host. cinderlib `Volume.connect`.
   * A failure undoes the export and mapping, saves the volume in `error`, and throws.
   * @throws {@link InvalidInputError} when the driver rejects the connector (field names the missing key)
   */
  async connect(connector: ConnectorProperties, options: { attachedHost?: string; attachMode?: 'rw' | 'ro' } = {}): Promise<Connection> {
    if (connector === null || typeof connector !== 'object') throw new InvalidInputError('connector', 'must be an object of connector properties');
    this.ensureUsable('connect');
    await this.backend.ready;
    await this.refresh(); // other hosts may have connected, disconnected or saved the volume since we read it
    if (this.connections.length > 0 && !this.multiattach) {
      const sameHost = this.connections.find((c) => c.attachedHost === (options.attachedHost ?? connector.host ?? null));
      if (!sameHost) throw new InvalidStateError(`volume ${this.id} is already connected to ${this.connections[0]!.attachedHost} and is not multiattach`, { details: { volume_id: this.id } });
    }
    const driver = this.backend.driver;
    driver.validateConnector(connector);
    const previous = this.connections.length > 0 ? 'in-use' : 'available';
    let exported = false;
    let mapped = false;
    let info: ConnectionInfo | undefined;
    try {
      info = await this.runDriver('attaching', 'in-use', async () => {
        this.applyUpdate(await driver.createExport(this.toDriver(), connector));
        exported = true;
        const ci = await driver.initializeConnection(this.toDriver(), connector);
        mapped = true;
        return ci;
      });
    } catch (err) {
      if (mapped) await driver.terminateConnection(this.toDriver(), connector).catch(() => undefined);
      if (exported && previous === 'available') await driver.removeExport(this.toDriver()).catch(() => undefined);
      throw err;
    }
    const now = nowIso();
    const conn = new Connection(this, {
      id: randomUUID(),
      version: 0,
      created_at: now,
      updated_at: now,
      backend: this.backend.id,
      volume_id: this.id,
      status: 'attaching',
      protocol: driver.connectorProtocol,
      connector_info: { ...connector },
      conn_info: info as unknown as Record<string, unknown>,
      device: null,
      attached_host: options.attachedHost ?? (typeof connector.host === 'string' ? connector.host : null),
      attach_mode: options.attachMode ?? 'rw',
    });
    await conn.save();
    this.backend.context.objects.set(`connection:${conn.id}`, conn);
    this.connections.push(conn);
    return conn;
  }

  /**
   * Attach the volume to this host: connector properties, export, initialize connection,
   * connector connect. Returns the connection (its `path` is the device). cinderlib `Volume.attach`.
   * A failure after the mapping undoes it (terminate connection, remove export).
   * @throws {@link InvalidStateError} for a deleted volume or one already attached here
   */
  async attach(): Promise<Connection> {
    this.ensureUsable('attach');
    if (this.localAttach) throw new InvalidStateError(`volume ${this.id} is already attached on this host at ${this.localAttach.path}`, { details: { volume_id: this.id } });
    const connector = await this.backend.connectorProperties();
    const conn = await this.connect(connector, { attachedHost: this.backend.context.hostName });
    try {
      await conn.attach();
    } catch (err) {
      await conn.disconnect({ force: true }).catch(() => undefined);
      this.status = 'error';
      this.error = errorText(err);
      await this.save().catch(() => undefined);
      throw err;
    }
    return conn;
  }

  /**
   * Detach the volume from this host and terminate its connection (cinderlib `Volume.detach`).
   * Detaching a volume that is not attached here is a no-op.
   */
  async detach(options: DisconnectOptions = {}): Promise<void> {
    await this.backend.ready;
    await this.loadChildren();
    const local = this.localAttach;
    if (!local) return;
    await local.detach(options);
    await local.disconnect(options);
  }

  /** @internal called after a connection is removed. */
  async connectionRemoved(conn: Connection, driverCleanup: () => Promise<void>): Promise<void> {
    // Count the connections as stored, not as this (possibly stale) object last saw them: another
    // host's connection must keep the export, and the volume save below needs the current version.
    await this.refresh();
    this.connections = this.connections.filter((c) => c !== conn);
    const remaining = this.connections.length;
    await this.runDriver('detaching', remaining > 0 ? 'in-use' : 'available', async () => {
      await driverCleanup();
      if (remaining === 0) await this.backend.driver.removeExport(this.toDriver());
    });
  }
}

/** A snapshot. cinderlib's `Snapshot`. */
export class Snapshot {
  readonly volume: Volume;
  readonly id: string;
  name!: string;
  description!: string;
  volumeSize!: number;
  status!: SnapshotStatus;
  providerLocation!: string | null;
  providerId!: string | null;
  error!: string | null;
  createdAt!: string;
  updatedAt!: string;
  version!: number;

  /** @internal use Volume.createSnapshot */
  constructor(volume: Volume, rec: SnapshotRecord) {
    this.volume = volume;
    this.id = rec.id;
    this.assign(rec);
  }

  /** @internal */
  assign(rec: SnapshotRecord): void {
    this.name = rec.name;
    this.description = rec.description;
    this.volumeSize = rec.volume_size;
    this.status = rec.status;
    this.providerLocation = rec.provider_location;
    this.providerId = rec.provider_id;
    this.error = rec.error;
    this.createdAt = rec.created_at;
    this.updatedAt = rec.updated_at;
    this.version = rec.version;
  }

  /** The id of the source volume. */
  get volumeId(): string {
    return this.volume.id;
  }

  /** The stored shape. */
  toRecord(): SnapshotRecord {
    return {
      id: this.id,
      version: this.version,
      created_at: this.createdAt,
      updated_at: this.updatedAt,
      backend: this.volume.backend.id,
      volume_id: this.volume.id,
      name: this.name,
      description: this.description,
      volume_size: this.volumeSize,
      status: this.status,
      provider_location: this.providerLocation,
      provider_id: this.providerId,
      error: this.error,
    };
  }

  /** The snapshot as the driver sees it. */
  toDriver(): DriverSnapshot {
    return {
      id: this.id,
      name: `snapshot-${this.id}`,
      volume_id: this.volume.id,
      volume_size: this.volumeSize,
      volume: this.volume.toDriver(),
      provider_location: this.providerLocation,
      provider_id: this.providerId,
    };
  }

  /** Save to the store. */
  async save(): Promise<void> {
    this.updatedAt = nowIso();
    this.version = (await this.volume.backend.context.store.setSnapshot(this.toRecord())).version;
  }

  /** @internal cinderlib's error contract for snapshots. */
  async runDriver<T>(transitional: SnapshotStatus, done: SnapshotStatus, fn: () => Promise<T>): Promise<T> {
    this.status = transitional;
    this.error = null;
    await this.save();
    try {
      const r = await fn();
      if (r && typeof r === 'object') {
        const u = r as ModelUpdate;
        if (u.provider_location !== undefined) this.providerLocation = u.provider_location;
        if (u.provider_id !== undefined) this.providerId = u.provider_id;
      }
      this.status = done;
      if (done !== 'deleted') await this.save(); // the caller removes the record (see Volume.runDriver)
      return r;
    } catch (err) {
      this.status = 'error';
      this.error = errorText(err);
      await this.save().catch(() => undefined);
      throw err;
    }
  }

  /** Delete the snapshot; deleting twice succeeds. */
  async delete(): Promise<void> {
    if (this.status === 'deleted') return;
    await this.runDriver('deleting', 'deleted', () => this.volume.backend.driver.deleteSnapshot(this.toDriver()));
    await this.volume.backend.context.store.deleteSnapshot(this.id);
    this.volume.snapshots = this.volume.snapshots.filter((s) => s !== this);
    this.volume.backend.context.objects.delete(`snapshot:${this.id}`);
  }

  /**
   * A new volume with the data the source had when the snapshot was taken.
   * @param options.size GiB, at least the snapshot's volume size (default: the same)
   */
  async createVolume(options: { name?: string; description?: string; size?: number } = {}): Promise<Volume> {
    if (this.status !== 'available') throw new InvalidStateError(`snapshot ${this.id} is ${this.status}, not available`, { details: { snapshot_id: this.id } });
    const size = options.size === undefined ? this.volumeSize : validateSize(options.size, 'size');
    if (size < this.volumeSize) throw new InvalidInputError('size', `must be at least the snapshot's volume size ${this.volumeSize} GiB`);
    const name = optionalText(options.name, 'name');
    const description = optionalText(options.description, 'description', 4096);
    const backend = this.volume.backend;
    const vol = new Volume(backend, Volume.newRecord(backend.id, { size, name, description, multiattach: false, snapshot_id: this.id }));
    backend.context.objects.set(`volume:${vol.id}`, vol);
    await vol.runDriver('creating', 'available', () => backend.driver.createVolumeFromSnapshot(vol.toDriver(), this.toDriver()));
    backend.remember(vol);
    return vol;
  }
}

/** A connection (Cinder's volume attachment) of a volume to a host. cinderlib's `Connection`. */
export class Connection {
  readonly volume: Volume;
  readonly id: string;
  status!: ConnectionRecord['status'];
  /** Connector protocol (`LOCAL`, `ISCSI`, `NVMEOF`, ...). */
  protocol!: string;
  /** The attaching host's connector properties. */
  connectorInfo!: Record<string, unknown>;
  /** Cinder connection info `{ driver_volume_type, data }`. */
  connInfo!: Record<string, unknown>;
  /** Device info from the host-side attach, or null. */
  device!: DeviceInfo | null;
  attachedHost!: string | null;
  attachMode!: 'rw' | 'ro';
  createdAt!: string;
  updatedAt!: string;
  version!: number;

  /** @internal */
  constructor(volume: Volume, rec: ConnectionRecord) {
    this.volume = volume;
    this.id = rec.id;
    this.assign(rec);
  }

  /** @internal */
  assign(rec: ConnectionRecord): void {
    this.status = rec.status;
    this.protocol = rec.protocol;
    this.connectorInfo = rec.connector_info;
    this.connInfo = rec.conn_info;
    this.device = rec.device as DeviceInfo | null;
    this.attachedHost = rec.attached_host;
    this.attachMode = rec.attach_mode;
    this.createdAt = rec.created_at;
    this.updatedAt = rec.updated_at;
    this.version = rec.version;
  }

  /** cinderlib's `connector_info` (snake_case alias). */
  get connector_info(): Record<string, unknown> {
    return this.connectorInfo;
  }
  /** cinderlib's `conn_info` (snake_case alias). */
  get conn_info(): Record<string, unknown> {
    return this.connInfo;
  }
  /** True while the connection exists on the backend (not yet disconnected). */
  get connected(): boolean {
    return this.status === 'attaching' || this.status === 'attached';
  }
  /** True when the volume is attached on a host through this connection. */
  get attached(): boolean {
    return this.device !== null;
  }
  /** The device path on the host, or null. */
  get path(): string | null {
    return this.device?.path ?? null;
  }

  /** The stored shape. */
  toRecord(): ConnectionRecord {
    return {
      id: this.id,
      version: this.version,
      created_at: this.createdAt,
      updated_at: this.updatedAt,
      backend: this.volume.backend.id,
      volume_id: this.volume.id,
      status: this.status,
      protocol: this.protocol,
      connector_info: this.connectorInfo,
      conn_info: this.connInfo,
      device: this.device,
      attached_host: this.attachedHost,
      attach_mode: this.attachMode,
    };
  }

  /** The record with secrets masked (for printing). */
  toJSON(): Record<string, unknown> {
    return maskObject(this.toRecord() as unknown as Record<string, unknown>);
  }

  /** Save to the store. */
  async save(): Promise<void> {
    this.updatedAt = nowIso();
    this.version = (await this.volume.backend.context.store.setConnection(this.toRecord())).version;
  }

  private connector() {
    const data = (this.connInfo as { data?: unknown }).data;
    if (!data || typeof data !== 'object') throw new InvalidInputError('conn_info.data', 'is missing from the connection');
    const ctx = this.volume.backend.context;
    const useMultipath = Boolean(this.connectorInfo.multipath);
    return { connector: connectorFor(this.protocol, { useMultipath, host: ctx.host }), data: data as Record<string, unknown> };
  }

  /**
   * Attach on this host: run the protocol's connector and persist the device info.
   * @returns the device info
   */
  async attach(): Promise<DeviceInfo> {
    if (!this.connected) throw new InvalidStateError(`connection ${this.id} is ${this.status}; connect the volume again`, { details: { connection_id: this.id } });
    if (this.device) return this.device;
    const { connector, data } = this.connector();
    try {
      this.device = await connector.connectVolume(data);
    } catch (err) {
      this.status = 'error';
      await this.save().catch(() => undefined);
      throw err;
    }
    this.status = 'attached';
    this.attachedHost = this.attachedHost ?? this.volume.backend.context.hostName;
    await this.save();
    return this.device;
  }

  /**
   * Undo the host-side attach only; the connection stays listed and mapped (cinderlib
   * `Connection.detach`). Detaching a connection that is not attached is a no-op.
   */
  async detach(options: DisconnectOptions = {}): Promise<void> {
    if (!this.device) return;
    const { connector, data } = this.connector();
    await connector.disconnectVolume(data, this.device, options);
    this.device = null;
    if (this.status === 'attached') this.status = 'attaching';
    await this.save();
  }

  /** Make the host see the volume's new size; returns it in bytes. */
  async extend(): Promise<number> {
    const { connector, data } = this.connector();
    return connector.extendVolume(data);
  }

  /**
   * Terminate the connection on the backend and forget it (cinderlib `Connection.disconnect`).
   * If the device is still attached on this host it is detached first. The export is removed
   * when no other connection uses the volume.
   */
  async disconnect(options: DisconnectOptions = {}): Promise<void> {
    if (this.status === 'detached') return;
    if (this.device && (this.attachedHost === null || this.attachedHost === this.volume.backend.context.hostName)) await this.detach(options);
    const vol = this.volume;
    await vol.connectionRemoved(this, async () => {
      await vol.backend.driver.terminateConnection(vol.toDriver(), this.connectorInfo as ConnectorProperties, { force: options.force });
    });
    await vol.backend.context.store.deleteConnection(this.id);
    vol.backend.context.objects.delete(`connection:${this.id}`);
    this.status = 'detached';
  }
}
