/**
 * {@link Connection}: cinderlib's `Connection`, Cinder's volume attachment of a volume to a host.
 *
 * Unlike a volume or snapshot, a connection is not made by a driver step of its own: the volume's
 * `connect` exports and maps it (under the volume's error contract), and the connection runs the
 * host side through the protocol's connector. A failed host-side attach leaves it in `error`,
 * saved; its record has no `error` column, so the message is only in the thrown error. While a
 * process works through it, its record carries the owner marker in `busy_owner`.
 *
 * @module
 */
import { InvalidInputError, InvalidStateError } from '../errors.js';
import type { ConnectionInfo } from '../drivers/driver.js';
import { connectorFor } from '../initiator/factory.js';
import type { Connector, DeviceInfo, DisconnectOptions, VolumeCondition } from '../initiator/connector.js';
import type { ConnectorProperties } from '../initiator/properties.js';
import { maskObject } from '../exec/mask.js';
import type { ConnectionRecord } from '../persistence/store.js';
import type { BrickContext } from './context.js';
import { closeVolumeEncryption, extendVolumeEncryption, openVolumeEncryption } from './encryption.js';
import { StoredObject, busyOwner, newBaseRecord, objectKey, ownerIsDead } from './record.js';
import type { Volume } from './volume.js';

/**
 * A connection (Cinder's volume attachment) of a volume to a host. cinderlib's `Connection`.
 *
 * State machine, every step under the volume's operation lock:
 *
 * - Volume.connect stores the record `attaching` with the owner marker *before* the export and
 *   mapping are made, then saves the connection info and clears the marker: at rest, `attaching`
 *   means "connected, not attached on a host". A failed export or mapping removes the record.
 * - attach: `attaching` → `attached` (device saved), or `error` when the connector fails.
 * - detach (host side only): `attached` → `attaching`, device cleared.
 * - disconnect: from any status, terminate on the backend, remove the export with the last
 *   connection, remove the record (`detached` on the object).
 *
 * Recovery: a record whose owner marker names a dead process of this host is marked `error` by
 * the next process that loads it. Volume.detach finishes every connection of this host whatever
 * its status (detach if a device is recorded, then disconnect), so rerunning it completes an
 * attach or detach a crash interrupted.
 */
export class Connection extends StoredObject<ConnectionRecord, ConnectionRecord['status']> {
  readonly volume: Volume;
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
  /** The owner marker `<host>:<pid>` while a process attaches or detaches through it, else null. */
  busyOwner!: string | null;

  /** @internal */
  constructor(volume: Volume, rec: ConnectionRecord) {
    super(rec.id);
    this.volume = volume;
    this.assign(rec);
  }

  /**
   * @internal a record for a connection of `volume` just exported and mapped for `connector`
   * (status `attaching`, version 0). The attached host defaults to the connector's `host`.
   */
  static newRecord(volume: Volume, connector: ConnectorProperties, info: ConnectionInfo, options: { attachedHost?: string; attachMode?: 'rw' | 'ro' }): ConnectionRecord {
    return {
      ...newBaseRecord(),
      backend: volume.backend.id,
      volume_id: volume.id,
      status: 'attaching',
      protocol: volume.backend.driver.connectorProtocol,
      connector_info: { ...connector },
      conn_info: info as unknown as Record<string, unknown>,
      device: null,
      attached_host: options.attachedHost ?? (typeof connector.host === 'string' ? connector.host : null),
      attach_mode: options.attachMode ?? 'rw',
    };
  }

  /** @internal */
  assign(rec: ConnectionRecord): void {
    this.assignBase(rec);
    this.protocol = rec.protocol;
    this.connectorInfo = rec.connector_info;
    this.connInfo = rec.conn_info;
    this.device = rec.device as DeviceInfo | null;
    this.attachedHost = rec.attached_host;
    this.attachMode = rec.attach_mode;
    this.busyOwner = rec.busy_owner ?? null;
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
      ...this.baseRecord(),
      backend: this.volume.backend.id,
      volume_id: this.volume.id,
      status: this.status,
      protocol: this.protocol,
      connector_info: this.connectorInfo,
      conn_info: this.connInfo,
      device: this.device,
      attached_host: this.attachedHost,
      attach_mode: this.attachMode,
      ...(this.busyOwner ? { busy_owner: this.busyOwner } : {}),
    };
  }

  /** The record with secrets masked (for printing). */
  toJSON(): Record<string, unknown> {
    return maskObject(this.toRecord() as unknown as Record<string, unknown>);
  }

  protected get ctx(): BrickContext {
    return this.volume.backend.context;
  }

  protected async readRecord(): Promise<ConnectionRecord | undefined> {
    return (await this.ctx.store.getConnections({ id: this.id }))[0];
  }

  protected writeRecord(rec: ConnectionRecord): Promise<ConnectionRecord> {
    return this.ctx.store.setConnection(rec);
  }

  /**
   * The protocol's connector and the connection properties (`conn_info.data`).
   * @throws {@link InvalidInputError} (field `conn_info.data`) when the connection info has no data
   */
  private connector(): { connector: Connector; data: Record<string, unknown> } {
    const data = (this.connInfo as { data?: unknown }).data;
    if (!data || typeof data !== 'object') throw new InvalidInputError('conn_info.data', 'is missing from the connection');
    const useMultipath = Boolean(this.connectorInfo.multipath);
    return { connector: connectorFor(this.protocol, { useMultipath, ctx: this.ctx }), data: data as Record<string, unknown> };
  }

  /** The owner marker (`busy_owner`), or undefined. */
  ownerMark(): string | undefined {
    return this.busyOwner ?? undefined;
  }

  /** @internal */
  setOwnerMark(busy: boolean): void {
    this.busyOwner = busy ? busyOwner(this.ctx) : null;
  }

  /**
   * A connection at rest is `attaching` (connected, not attached on a host) or `attached`, with
   * no marker: it is interrupted only when it carries the marker of a process that is gone.
   */
  override interrupted(lockHeld = false): boolean {
    return this.busyOwner !== null && ownerIsDead(this.ctx, this.busyOwner, lockHeld);
  }

  /**
   * Attach on this host: run the protocol's connector and persist the device info, under the
   * volume's operation lock. For an encrypted volume the encryptor then opens the decrypted
   * device over it (formatting a LUKS volume on its first attach), and the device info saved and
   * returned is that one (`path` `/dev/mapper/crypt-volume-<id>`). A failed connect or open
   * leaves the connection in `error`, saved, with the connector's device disconnected, and rethrows.
   * @returns the device info
   * @throws {@link InvalidStateError} when the connection was disconnected
   * @throws {@link EncryptionError} when the encrypted device cannot be opened (reason `wrong-key`...)
   */
  async attach(): Promise<DeviceInfo> {
    return this.volume.locked(() => this.attachLocked());
  }

  /** @internal {@link attach} with the volume's operation lock held. */
  async attachLocked(): Promise<DeviceInfo> {
    if (!this.connected) throw new InvalidStateError(`connection ${this.id} is ${this.status}; connect the volume again`, { details: { connection_id: this.id } });
    if (this.device) return this.device;
    const { connector, data } = this.connector();
    this.setOwnerMark(true);
    await this.save();
    let device: DeviceInfo;
    try {
      device = await connector.connectVolume(data);
    } catch (err) {
      await this.markFailed(err);
      throw err;
    }
    try {
      this.device = await openVolumeEncryption(this.ctx, this.volume, device);
    } catch (err) {
      await connector.disconnectVolume(data, device, { force: true }).catch(() => undefined);
      await this.markFailed(err);
      throw err;
    }
    this.status = 'attached';
    this.attachedHost = this.attachedHost ?? this.ctx.hostName;
    this.setOwnerMark(false);
    await this.save();
    return this.device;
  }

  /**
   * Undo the host-side attach only; the connection stays listed and mapped (cinderlib
   * `Connection.detach`), under the volume's operation lock. Detaching a connection that is not
   * attached is a no-op. An encrypted device's mapping is closed before the connector detaches.
   * @throws {@link EncryptionError} when the mapping cannot be closed (still in use): the device stays attached
   */
  async detach(options: DisconnectOptions = {}): Promise<void> {
    await this.volume.locked(() => this.detachLocked(options));
  }

  /** @internal {@link detach} with the volume's operation lock held. */
  async detachLocked(options: DisconnectOptions = {}): Promise<void> {
    if (!this.device) return;
    const { connector, data } = this.connector();
    this.setOwnerMark(true);
    await this.save();
    let backing: DeviceInfo;
    try {
      backing = await closeVolumeEncryption(this.ctx, this.device);
    } catch (err) {
      // Still in use (mounted, open): nothing was detached, the connection stays as it was.
      this.setOwnerMark(false);
      await this.save().catch(() => undefined);
      throw err;
    }
    await connector.disconnectVolume(data, backing, options);
    this.device = null;
    if (this.status === 'attached') this.status = 'attaching';
    this.setOwnerMark(false);
    await this.save();
  }

  /**
   * The condition of the volume on the host where this connection is attached (the protocol
   * connector's `checkVolumeCondition` with the stored connection properties and device info):
   * `{ abnormal, message, paths: [{ name, state, portal?, detail? }] }`, see {@link VolumeCondition}.
   * Run it on the attaching host (`attachedHost`); it reads that host's sysfs and changes nothing.
   * Takes no lock: it only reads.
   * @throws {@link InvalidStateError} when the connection is not attached (no device info)
   * @throws {@link InvalidInputError} (field `conn_info.data` or a property) when the stored connection info is unusable
   */
  async checkCondition(): Promise<VolumeCondition> {
    if (!this.device) throw new InvalidStateError(`connection ${this.id} is not attached on a host`, { details: { connection_id: this.id } });
    const { connector, data } = this.connector();
    return connector.checkVolumeCondition(data, this.device);
  }

  /**
   * Make the host see the volume's new size; returns it in bytes: for an encrypted device, the
   * decrypted device's size after its mapping is resized.
   * @throws {@link EncryptionError} when the mapping cannot be resized
   */
  async extend(): Promise<number> {
    const { connector, data } = this.connector();
    const size = await connector.extendVolume(data);
    return this.device ? extendVolumeEncryption(this.ctx, this.volume, this.device, size) : size;
  }

  /**
   * Terminate the connection on the backend and forget it (cinderlib `Connection.disconnect`),
   * under the volume's operation lock. If the device is still attached on this host it is
   * detached first. The export is removed when no other connection uses the volume. Works from
   * any status, so a connection left by an interrupted attach or detach can always be removed.
   */
  async disconnect(options: DisconnectOptions = {}): Promise<void> {
    if (this.status === 'detached') return;
    await this.volume.locked(async () => {
      if (this.volume.connections.includes(this)) return this.disconnectLocked(options);
      this.status = 'detached'; // another process removed it meanwhile
      this.ctx.objects.delete(objectKey('connection', this.id));
    });
  }

  /** @internal {@link disconnect} with the volume's operation lock held. */
  async disconnectLocked(options: DisconnectOptions = {}): Promise<void> {
    if (this.status === 'detached') return;
    if (this.device && (this.attachedHost === null || this.attachedHost === this.ctx.hostName)) await this.detachLocked(options);
    const vol = this.volume;
    await vol.connectionRemoved(this, async () => {
      await vol.backend.driver.terminateConnection(vol.toDriver(), this.connectorInfo as ConnectorProperties, { force: options.force });
    });
    await this.ctx.store.deleteConnection(this.id);
    this.ctx.objects.delete(objectKey('connection', this.id));
    this.status = 'detached';
  }
}
