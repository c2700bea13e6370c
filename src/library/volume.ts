/**
 * {@link Volume}: cinderlib's `Volume`. Sizes in GiB.
 *
 * A volume follows cinderlib's error contract through {@link DriverObject.runDriver}; its record
 * carries the owner marker in `admin_metadata`, so an operation interrupted by a crash is found
 * and marked `error` on the next load. Operations on one volume, its snapshots and its connections
 * are serialised by the volume's operation lock, across the processes of a host. Two levels of detach, as cinderlib:
 * `connection.detach()` undoes the host-side attach only (the connection stays listed and
 * mapped); `connection.disconnect()` also terminates the connection on the backend;
 * `volume.detach()` does both for the local attachment.
 *
 * @module
 */
import { InvalidInputError, InvalidStateError, NotFoundError } from '../errors.js';
import type { ConnectionInfo, DriverVolume, ModelUpdate } from '../drivers/driver.js';
import type { DisconnectOptions } from '../initiator/connector.js';
import type { ConnectorProperties } from '../initiator/properties.js';
import type { ConnectionRecord, SnapshotRecord, VolumeEncryptionRecord, VolumeRecord, VolumeStatus } from '../persistence/store.js';
import type { Backend } from './backend.js';
import type { BrickContext } from './context.js';
import { Connection } from './connection.js';
import { copyVolumeKey, deleteVolumeKey } from './encryption.js';
import { nameAndDescription, validateSize } from './input.js';
import { BUSY_KEY, CREATE_INCOMPLETE_KEY, DriverObject, TRANSITIONAL, busyOwner, identityMapped, newBaseRecord, objectKey, ownerIsDead } from './record.js';
import { Snapshot } from './snapshot.js';

const GiB = 1024 ** 3;

/** The fields of a new volume record that the caller chooses. */
interface NewVolumeFields {
  size: number;
  name: string;
  description: string;
  multiattach: boolean;
  snapshot_id?: string | null;
  source_volid?: string | null;
  encryption?: VolumeEncryptionRecord | null;
  encryption_key_id?: string | null;
}

/**
 * A volume. cinderlib's `Volume`. Sizes in GiB.
 *
 * State machine (Cinder's volume statuses). Every operation runs under the volume's operation
 * lock ({@link Volume.locked}) on a freshly read record, checks all its preconditions (status,
 * size, capacity, input) before writing anything, then saves the transitional status with the
 * owner marker before the driver runs:
 *
 * - `creating` → `available` (Backend.createVolume, clone, Snapshot.createVolume), or `error`.
 * - `available`/`in-use` → `extending` → the status it left (extend; only from `available` or
 *   `in-use`, as in Cinder), or `error` when the driver fails.
 * - `available`/`in-use`/`error` → `attaching` → `in-use` (connect, attach), or `error`.
 * - `in-use`/`error` → `detaching` → `available` or `in-use` when other connections remain
 *   (disconnect, detach): a successful detach clears `error`.
 * - any non-transitional status → `deleting` → record removed (delete; refused while snapshots
 *   or connections exist), or `error`.
 * - A refused operation changes nothing. An object in `error` keeps the message in `error`; any
 *   status other than `error` has `error: null`.
 *
 * Recovery: a record left transitional by a process that died (its owner marker names a dead
 * process of this host) is marked `error` ("interrupted while ...") by the next process that
 * loads it or locks it. From there `delete` works, and `detach` finishes an interrupted attach or
 * detach (removing the export it left).
 */
export class Volume extends DriverObject<VolumeRecord, VolumeStatus> {
  readonly backend: Backend;
  name!: string;
  description!: string;
  size!: number;
  multiattach!: boolean;
  providerLocation!: string | null;
  providerAuth!: string | null;
  providerId!: string | null;
  adminMetadata!: Record<string, string>;
  snapshotId!: string | null;
  sourceVolid!: string | null;
  /** How the volume is encrypted on the host (os-brick's keys), or null when it is not. */
  encryption!: VolumeEncryptionRecord | null;
  /** The key manager's id of its key (Cinder's `encryption_key_id`), or null. */
  encryptionKeyId!: string | null;
  /** Snapshots of this volume. */
  snapshots: Snapshot[] = [];
  /** Connections (attachments) of this volume, on any host. */
  connections: Connection[] = [];

  /** @internal use Backend.createVolume / getVolume */
  constructor(backend: Backend, rec: VolumeRecord) {
    super(rec.id);
    this.backend = backend;
    this.assign(rec);
  }

  /** @internal a record for a volume about to be created (status `creating`, version 0). */
  static newRecord(backend: string, o: NewVolumeFields): VolumeRecord {
    return {
      ...newBaseRecord(),
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
      ...(o.encryption_key_id ? { encryption: o.encryption ?? null, encryption_key_id: o.encryption_key_id } : {}),
    };
  }

  /**
   * @internal A stand-in (status `deleted`, not in the identity map) for the volume of a snapshot
   * record whose volume record is gone, so that the snapshot can be listed and deleted.
   */
  static standIn(backend: Backend, snap: SnapshotRecord): Volume {
    const rec = Volume.newRecord(backend.id, { size: snap.volume_size, name: '', description: '', multiattach: false });
    return new Volume(backend, { ...rec, id: snap.volume_id, status: 'deleted' });
  }

  /**
   * @internal Create a new volume on `backend`: a `creating` record entered in the identity map,
   * then `available` once `driverCreate` succeeds (cinderlib's error contract otherwise), and
   * listed in the backend's volumes. The record carries {@link CREATE_INCOMPLETE_KEY} until the
   * success is saved, so a failed or interrupted create stays unusable (deletable only).
   * @throws whatever `driverCreate` throws, the volume then saved in `error`
   */
  static async createOn(backend: Backend, fields: NewVolumeFields, driverCreate: (vol: Volume) => Promise<ModelUpdate | void>): Promise<Volume> {
    const vol = new Volume(backend, Volume.newRecord(backend.id, fields));
    vol.adminMetadata[CREATE_INCOMPLETE_KEY] = 'creating';
    backend.context.objects.set(objectKey('volume', vol.id), vol);
    await vol.runDriver('creating', () => {
      delete vol.adminMetadata[CREATE_INCOMPLETE_KEY];
      return 'available';
    }, () => driverCreate(vol));
    backend.remember(vol);
    return vol;
  }

  /** @internal */
  assign(rec: VolumeRecord): void {
    this.assignBase(rec);
    this.name = rec.name;
    this.description = rec.description;
    this.size = rec.size;
    this.multiattach = rec.multiattach;
    this.providerLocation = rec.provider_location;
    this.providerAuth = rec.provider_auth;
    this.providerId = rec.provider_id;
    this.adminMetadata = { ...rec.admin_metadata };
    this.snapshotId = rec.snapshot_id;
    this.sourceVolid = rec.source_volid;
    this.error = rec.error;
    this.encryption = rec.encryption ?? null;
    this.encryptionKeyId = rec.encryption_key_id ?? null;
  }

  /** The stored shape (snake_case, as cinderlib serializes it). */
  toRecord(): VolumeRecord {
    return {
      ...this.baseRecord(),
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
      ...(this.encryptionKeyId ? { encryption: this.encryption, encryption_key_id: this.encryptionKeyId } : {}),
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

  protected get ctx(): BrickContext {
    return this.backend.context;
  }

  protected async readRecord(): Promise<VolumeRecord | undefined> {
    return (await this.ctx.store.getVolumes({ id: this.id }))[0];
  }

  protected writeRecord(rec: VolumeRecord): Promise<VolumeRecord> {
    return this.ctx.store.setVolume(rec);
  }

  /** The volume record keeps the owner marker in `admin_metadata` ({@link BUSY_KEY}). */
  ownerMark(): string | undefined {
    return this.adminMetadata[BUSY_KEY];
  }

  /** @internal */
  setOwnerMark(busy: boolean): void {
    if (busy) this.adminMetadata[BUSY_KEY] = busyOwner(this.ctx);
    else delete this.adminMetadata[BUSY_KEY];
  }

  /** A volume starts every driver step from the stored state ({@link syncFromStore}). */
  protected override async beforeTransition(): Promise<void> {
    await this.syncFromStore();
  }

  /** The connection attached on this host (cinderlib `local_attach`), or null. */
  get localAttach(): Connection | null {
    return this.connections.find((c) => c.device !== null && c.attachedHost === this.backend.context.hostName) ?? null;
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
   * @internal Run `fn` holding the volume's operation lock (`volume-<id>` in the context's lock
   * directory), so that operations on one volume never overlap, in this process or another on
   * this host. Inside the lock the volume, its snapshots and its connections are first re-read
   * from the store, and records left transitional by a dead owner (or by this process, which runs
   * nothing on the volume outside the lock) are marked `error`: `fn` checks its preconditions on
   * that fresh state.
   * @param ifGone what to do when the volume record is gone: `throw` (default) a
   *   {@link NotFoundError}; `run` `fn` anyway (deleting what a deleted volume left behind)
   * @throws {@link InvalidStateError} when this object already knows the volume is deleted (unless `ifGone` is `run`)
   * @throws {@link NotFoundError} when the volume is no longer stored (unless `ifGone` is `run`)
   * @throws {@link InvalidStateError} when a process of another host holds it in a transitional status
   * @throws {@link LockTimeoutError} when the lock is not free within the context's lock timeout
   */
  async locked<T>(fn: () => Promise<T>, ifGone: 'throw' | 'run' = 'throw'): Promise<T> {
    if (ifGone === 'throw' && this.status === 'deleted') throw new InvalidStateError(`volume ${this.id} is deleted`, { details: { volume_id: this.id } });
    await this.backend.ready;
    return this.ctx.locks.withLock(`volume-${this.id}`, async () => {
      const [rec] = await this.ctx.store.getVolumes({ id: this.id });
      if (!rec) {
        if (ifGone === 'run') return fn();
        throw new NotFoundError('volume', this.id);
      }
      if (rec.version > this.version) this.assign(rec);
      if (!(await this.recoverIfInterrupted(true)) && TRANSITIONAL.has(this.status)) {
        throw new InvalidStateError(`volume ${this.id} is ${this.status} by ${this.ownerMark() ?? 'another process'}; try again when it is done`, {
          details: { volume_id: this.id, status: this.status },
        });
      }
      await this.loadChildren(true);
      return fn();
    });
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

  /**
   * @internal Load snapshots and connections from the store, marking `error` those whose owner
   * is gone (start-up recovery; see {@link StoredObject.interrupted}).
   * @param lockHeld the caller holds the volume's operation lock
   */
  async loadChildren(lockHeld = false): Promise<void> {
    const store = this.backend.context.store;
    const snaps: Snapshot[] = [];
    for (const r of await store.getSnapshots({ volume_id: this.id })) snaps.push(await this.snapshotFromRecord(r, lockHeld));
    this.snapshots = snaps;
    const conns: Connection[] = [];
    for (const r of await store.getConnections({ volume_id: this.id })) {
      const conn = this.connectionFromRecord(r);
      await conn.recoverIfInterrupted(lockHeld);
      conns.push(conn);
    }
    this.connections = conns;
  }

  /** @internal the identity-mapped Snapshot for a record, marked `error` when its owner is gone. */
  async snapshotFromRecord(rec: SnapshotRecord, lockHeld = false): Promise<Snapshot> {
    const snap = identityMapped(this.backend.context, 'snapshot', rec, () => new Snapshot(this, rec));
    await snap.recoverIfInterrupted(lockHeld);
    return snap;
  }

  /** @internal the identity-mapped Connection for a record. */
  connectionFromRecord(rec: ConnectionRecord): Connection {
    return identityMapped(this.backend.context, 'connection', rec, () => new Connection(this, rec));
  }

  /** @throws {@link InvalidStateError} for a deleted volume, one in a transitional status, or one whose create never finished ({@link CREATE_INCOMPLETE_KEY}) */
  private ensureUsable(action: string): void {
    if (this.status === 'deleted') throw new InvalidStateError(`volume ${this.id} is deleted; cannot ${action}`, { details: { volume_id: this.id } });
    if (TRANSITIONAL.has(this.status)) throw new InvalidStateError(`volume ${this.id} is ${this.status}; cannot ${action} now`, { details: { volume_id: this.id, status: this.status } });
    if (this.adminMetadata[CREATE_INCOMPLETE_KEY] !== undefined) {
      throw new InvalidStateError(`volume ${this.id} was never completely created (${this.status}${this.error ? `: ${this.error}` : ''}); cannot ${action} it, only delete it`, {
        details: { volume_id: this.id, status: this.status },
      });
    }
  }

  /**
   * A snapshot or clone source must be `available` or `in-use` (Cinder's API checks the same):
   * a volume in `error` holds data nobody can vouch for.
   * @throws {@link InvalidStateError} for any other status
   */
  private ensureSource(action: string): void {
    this.ensureUsable(action);
    if (this.status !== 'available' && this.status !== 'in-use') {
      throw new InvalidStateError(`volume ${this.id} is ${this.status}; cannot ${action} it until it is available or in-use`, { details: { volume_id: this.id, status: this.status } });
    }
  }

  /**
   * Delete the volume. Refused while it has snapshots or connections, checked under the volume's
   * operation lock on the stored state; deleting a deleted volume succeeds.
   * @throws {@link InvalidStateError} when snapshots or connections exist, or a process of another host is working on it
   */
  async delete(): Promise<void> {
    if (this.status === 'deleted') return;
    const gone = await this.locked(async () => {
      if (this.version > 0 && (await this.ctx.store.getVolumes({ id: this.id })).length === 0) return true;
      if (this.snapshots.length > 0) {
        throw new InvalidStateError(`volume ${this.id} has ${this.snapshots.length} snapshot(s); delete them first`, { details: { volume_id: this.id, snapshots: this.snapshots.map((s) => s.id) } });
      }
      if (this.connections.length > 0) {
        throw new InvalidStateError(`volume ${this.id} is attached (${this.connections.length} connection(s)); detach it first`, { details: { volume_id: this.id } });
      }
      await this.runDriver('deleting', 'deleted', () => this.backend.driver.deleteVolume(this.toDriver()));
      await this.ctx.store.deleteVolume(this.id);
      await deleteVolumeKey(this.ctx, this.id, this.encryptionKeyId);
      return true;
    }, 'run');
    // Whoever deleted it (this call, another object, process or host), deleting twice succeeds.
    if (gone) {
      this.status = 'deleted';
      this.backend.forget(this);
    }
  }

  /**
   * Grow the volume to `newSize` GiB. Only an `available` or `in-use` volume is extended (as in
   * Cinder: a volume in `error` is refused), and only when the backend's free capacity allows it;
   * a refusal changes nothing. When attached on this host the host-side device is refreshed too,
   * and the size the host sees is returned; otherwise `newSize` in bytes.
   * @returns the new size in bytes
   * @throws {@link InvalidInputError} (field `new_size`) unless `newSize` is a whole number larger than the current size
   * @throws {@link InvalidStateError} unless the volume is `available` or `in-use`
   * @throws {@link InsufficientCapacityError} (field `new_size`) when the growth exceeds the free capacity
   */
  async extend(newSize: number): Promise<number> {
    const size = validateSize(newSize, 'new_size');
    return this.locked(async () => {
      if (size <= this.size) throw new InvalidInputError('new_size', `must be larger than the current size ${this.size} GiB, got ${size}`);
      this.ensureSource('extend');
      await this.backend.ensureCapacity(size - this.size, 'new_size');
      const previous = this.status;
      await this.runDriver('extending', previous, async () => {
        await this.backend.driver.extendVolume(this.toDriver(), size);
        this.size = size;
      });
      const local = this.localAttach;
      if (local) return local.extend();
      return size * GiB;
    });
  }

  /**
   * Snapshot the volume, under its operation lock: a volume deleted meanwhile fails the snapshot
   * before any record is written.
   * @throws {@link InvalidInputError} (field `name`, `description`)
   * @throws {@link InvalidStateError} unless the volume is `available` or `in-use`
   * @throws {@link NotFoundError} when the volume is no longer stored
   */
  async createSnapshot(options: { name?: string; description?: string } = {}): Promise<Snapshot> {
    const { name, description } = nameAndDescription(options);
    return this.locked(async () => {
      this.ensureSource('snapshot');
      const snap = new Snapshot(this, Snapshot.newRecord(this, { name, description }));
      this.ctx.objects.set(objectKey('snapshot', snap.id), snap);
      await snap.runDriver('creating', 'available', () => this.backend.driver.createSnapshot(snap.toDriver()));
      this.snapshots.push(snap);
      return snap;
    });
  }

  /**
   * A new volume with this volume's data (Cinder `create_cloned_volume`), made under the source's
   * operation lock. Every check runs before the new record is written.
   * @param options.size GiB, at least the source's size (default: the same)
   * @throws {@link InvalidInputError} (field `size`, `name`, `description`)
   * @throws {@link InvalidStateError} unless the volume is `available` or `in-use`
   * @throws {@link InsufficientCapacityError} (field `size`) when the clone exceeds the free capacity
   * @throws {@link NotFoundError} when the source is no longer stored
   */
  async clone(options: { name?: string; description?: string; size?: number } = {}): Promise<Volume> {
    const wanted = options.size === undefined ? undefined : validateSize(options.size, 'size');
    const { name, description } = nameAndDescription(options);
    return this.locked(async () => {
      const size = wanted ?? this.size;
      if (size < this.size) throw new InvalidInputError('size', `a clone cannot be smaller than its source (${this.size} GiB)`);
      this.ensureSource('clone');
      await this.backend.ensureCapacity(size, 'size');
      const fields = { size, name, description, multiattach: this.multiattach, source_volid: this.id, ...(await copyVolumeKey(this.ctx, this)) };
      return Volume.createOn(this.backend, fields, (vol) => this.backend.driver.createClonedVolume(vol.toDriver(), this.toDriver()));
    });
  }

  /**
   * Export and map the volume for `connector` (another host's connector properties) and
   * persist the connection, without attaching on this host. cinderlib `Volume.connect`.
   * Runs under the volume's operation lock. The connection is stored (`attaching`, with the owner
   * marker) before the export is made, so a crash leaves a record that `detach`/`disconnect`
   * finishes. A failure undoes the export and mapping, removes the connection record, saves the
   * volume in `error`, and throws.
   * @throws {@link InvalidInputError} when the driver rejects the connector (field names the missing key)
   * @throws {@link InvalidStateError} when the volume is connected to another host and is not multiattach
   */
  async connect(connector: ConnectorProperties, options: { attachedHost?: string; attachMode?: 'rw' | 'ro' } = {}): Promise<Connection> {
    if (connector === null || typeof connector !== 'object') throw new InvalidInputError('connector', 'must be an object of connector properties');
    return this.locked(() => this.connectLocked(connector, options));
  }

  /** {@link connect} with the operation lock held. */
  private async connectLocked(connector: ConnectorProperties, options: { attachedHost?: string; attachMode?: 'rw' | 'ro' }): Promise<Connection> {
    this.ensureUsable('connect');
    if (this.connections.length > 0 && !this.multiattach) {
      const sameHost = this.connections.find((c) => c.attachedHost === (options.attachedHost ?? connector.host ?? null));
      if (!sameHost) throw new InvalidStateError(`volume ${this.id} is already connected to ${this.connections[0]!.attachedHost} and is not multiattach`, { details: { volume_id: this.id } });
    }
    this.backend.driver.validateConnector(connector);
    const previous = this.connections.length > 0 ? 'in-use' : 'available';
    const conn = new Connection(this, Connection.newRecord(this, connector, { driver_volume_type: '', data: {} }, options));
    conn.setOwnerMark(true);
    await conn.save();
    this.ctx.objects.set(objectKey('connection', conn.id), conn);
    try {
      conn.connInfo = (await this.exportAndMap(connector, previous)) as unknown as Record<string, unknown>;
    } catch (err) {
      await this.ctx.store.deleteConnection(conn.id);
      this.ctx.objects.delete(objectKey('connection', conn.id));
      throw err;
    }
    conn.setOwnerMark(false);
    await conn.save();
    this.connections.push(conn);
    return conn;
  }

  /**
   * Create the export and initialize the connection for `connector` under the error contract
   * (`attaching`, then `in-use`). A failure terminates a mapping that was made and removes an
   * export that no other connection uses, then rethrows.
   * @param previous the volume's status before: `available` when no other connection uses the export
   */
  private async exportAndMap(connector: ConnectorProperties, previous: 'available' | 'in-use'): Promise<ConnectionInfo> {
    const driver = this.backend.driver;
    let exported = false;
    let mapped = false;
    try {
      return await this.runDriver('attaching', 'in-use', async () => {
        this.applyUpdate(await driver.createExport(this.toDriver(), connector));
        exported = true;
        const ci = await driver.initializeConnection(this.toDriver(), connector);
        mapped = true;
        // Cinder's volume manager tells the host the volume is encrypted (os-brick's flag).
        if (this.encryptionKeyId && ci.data && typeof ci.data === 'object') ci.data.encrypted = true;
        return ci;
      });
    } catch (err) {
      if (mapped) await driver.terminateConnection(this.toDriver(), connector).catch(() => undefined);
      if (exported && previous === 'available') await driver.removeExport(this.toDriver()).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Attach the volume to this host: connector properties, export, initialize connection,
   * connector connect, all under the volume's operation lock. Returns the connection (its `path`
   * is the device). cinderlib `Volume.attach`. A failure after the mapping undoes it (terminate
   * connection, remove export); a crash leaves a connection record that {@link detach} finishes.
   * @throws {@link InvalidStateError} for a deleted volume or one already attached here
   */
  async attach(): Promise<Connection> {
    const connector = await this.backend.connectorProperties();
    return this.locked(async () => {
      this.ensureUsable('attach');
      if (this.localAttach) throw new InvalidStateError(`volume ${this.id} is already attached on this host at ${this.localAttach.path}`, { details: { volume_id: this.id } });
      const conn = await this.connectLocked(connector, { attachedHost: this.ctx.hostName });
      try {
        await conn.attachLocked();
      } catch (err) {
        await conn.disconnectLocked({ force: true }).catch(() => undefined);
        await this.markFailed(err);
        throw err;
      }
      return conn;
    });
  }

  /**
   * Detach the volume from this host and terminate its connections here (cinderlib
   * `Volume.detach`), under the volume's operation lock. Every connection of this host is
   * finished, attached or not, whatever its status: so running it again completes an attach or a
   * detach that a crash interrupted (and removes the export it left). Detaching a volume that has
   * no connection here is a no-op.
   */
  async detach(options: DisconnectOptions = {}): Promise<void> {
    if (this.status === 'deleted') return;
    await this.locked(async () => {
      for (const conn of this.connections.filter((c) => c.attachedHost === this.ctx.hostName)) {
        await conn.detachLocked(options);
        await conn.disconnectLocked(options);
      }
    }).catch((err: unknown) => {
      if (!(err instanceof NotFoundError)) throw err;
    });
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
