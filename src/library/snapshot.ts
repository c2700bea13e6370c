/**
 * {@link Snapshot}: cinderlib's `Snapshot`.
 *
 * A snapshot follows cinderlib's error contract through {@link DriverObject.runDriver}. Its record
 * carries the owner marker in `busy_owner`; a driver's model update for it keeps only
 * `provider_location` and `provider_id` (the snapshot record's columns).
 *
 * @module
 */
import { InvalidInputError, InvalidStateError, NotFoundError } from '../errors.js';
import type { DriverSnapshot, ModelUpdate } from '../drivers/driver.js';
import type { SnapshotRecord, SnapshotStatus } from '../persistence/store.js';
import type { BrickContext } from './context.js';
import { copyVolumeKey } from './encryption.js';
import { nameAndDescription, validateSize } from './input.js';
import { DriverObject, busyOwner, newBaseRecord, objectKey } from './record.js';
import { Volume } from './volume.js';

/**
 * A snapshot. cinderlib's `Snapshot`.
 *
 * State machine, every step under the parent volume's operation lock on freshly read records:
 *
 * - `creating` → `available` (Volume.createSnapshot; refused, with no record written, unless the
 *   volume is stored and `available` or `in-use`), or `error` when the driver fails.
 * - any status → `deleting` → record removed (delete; also when the volume record is gone), or
 *   `error`. A volume is not deleted while it has snapshots, so no snapshot outlives its volume.
 * - Snapshot.createVolume needs `available`; a refusal writes nothing.
 *
 * Recovery: a snapshot left `creating` or `deleting` by a dead process is marked `error`
 * ("interrupted while ...") by the next process that loads it; deleting it then removes whatever
 * the driver had made (a partial copy included).
 */
export class Snapshot extends DriverObject<SnapshotRecord, SnapshotStatus> {
  readonly volume: Volume;
  name!: string;
  description!: string;
  /** Source volume size in GiB at snapshot time. */
  volumeSize!: number;
  providerLocation!: string | null;
  providerId!: string | null;
  /** The owner marker `<host>:<pid>` while a process creates or deletes the snapshot, else null. */
  busyOwner!: string | null;

  /** @internal use Volume.createSnapshot */
  constructor(volume: Volume, rec: SnapshotRecord) {
    super(rec.id);
    this.volume = volume;
    this.assign(rec);
  }

  /** @internal a record for a snapshot of `volume` about to be created (status `creating`, version 0). */
  static newRecord(volume: Volume, o: { name: string; description: string }): SnapshotRecord {
    return {
      ...newBaseRecord(),
      backend: volume.backend.id,
      volume_id: volume.id,
      name: o.name,
      description: o.description,
      volume_size: volume.size,
      status: 'creating',
      provider_location: null,
      provider_id: null,
      error: null,
    };
  }

  /** @internal */
  assign(rec: SnapshotRecord): void {
    this.assignBase(rec);
    this.name = rec.name;
    this.description = rec.description;
    this.volumeSize = rec.volume_size;
    this.providerLocation = rec.provider_location;
    this.providerId = rec.provider_id;
    this.error = rec.error;
    this.busyOwner = rec.busy_owner ?? null;
  }

  /** The id of the source volume. */
  get volumeId(): string {
    return this.volume.id;
  }

  /** The stored shape. */
  toRecord(): SnapshotRecord {
    return {
      ...this.baseRecord(),
      backend: this.volume.backend.id,
      volume_id: this.volume.id,
      name: this.name,
      description: this.description,
      volume_size: this.volumeSize,
      status: this.status,
      provider_location: this.providerLocation,
      provider_id: this.providerId,
      error: this.error,
      ...(this.busyOwner ? { busy_owner: this.busyOwner } : {}),
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

  protected get ctx(): BrickContext {
    return this.volume.backend.context;
  }

  protected async readRecord(): Promise<SnapshotRecord | undefined> {
    return (await this.ctx.store.getSnapshots({ id: this.id }))[0];
  }

  protected writeRecord(rec: SnapshotRecord): Promise<SnapshotRecord> {
    return this.ctx.store.setSnapshot(rec);
  }

  /** The owner marker (`busy_owner`), or undefined. */
  ownerMark(): string | undefined {
    return this.busyOwner ?? undefined;
  }

  /** @internal */
  setOwnerMark(busy: boolean): void {
    this.busyOwner = busy ? busyOwner(this.ctx) : null;
  }

  /** @internal apply a driver model update: only `provider_location` and `provider_id` are kept. */
  applyUpdate(update: ModelUpdate | void): void {
    if (!update) return;
    if (update.provider_location !== undefined) this.providerLocation = update.provider_location;
    if (update.provider_id !== undefined) this.providerId = update.provider_id;
  }

  /**
   * Re-read the snapshot inside its volume's operation lock.
   * @returns false when the record is gone (someone else deleted it)
   */
  private async reload(): Promise<boolean> {
    const [rec] = await this.ctx.store.getSnapshots({ id: this.id });
    if (!rec) return false;
    if (rec.version > this.version) this.assign(rec);
    return true;
  }

  /**
   * Delete the snapshot (and whatever its driver made, a partial copy included), under its
   * volume's operation lock. Works from any status, `error` included, and also when the volume
   * record is already gone; deleting twice succeeds.
   * @throws {@link InvalidStateError} when a process of another host is working on it
   */
  async delete(): Promise<void> {
    if (this.status === 'deleted') return;
    await this.volume.locked(async () => {
      if (!(await this.reload())) return;
      if (!(await this.recoverIfInterrupted(true)) && this.status === 'creating') {
        throw new InvalidStateError(`snapshot ${this.id} is ${this.status} by ${this.busyOwner ?? 'another process'}; try again when it is done`, { details: { snapshot_id: this.id } });
      }
      await this.runDriver('deleting', 'deleted', () => this.volume.backend.driver.deleteSnapshot(this.toDriver()));
      await this.ctx.store.deleteSnapshot(this.id);
    }, 'run');
    this.status = 'deleted';
    this.volume.snapshots = this.volume.snapshots.filter((s) => s !== this);
    this.ctx.objects.delete(objectKey('snapshot', this.id));
  }

  /**
   * A new volume with the data the source had when the snapshot was taken, made under the source
   * volume's operation lock. Every check runs before the new record is written.
   * @param options.size GiB, at least the snapshot's volume size (default: the same)
   * @throws {@link InvalidStateError} unless the snapshot is `available`
   * @throws {@link InvalidInputError} (field `size`, `name`, `description`)
   * @throws {@link InsufficientCapacityError} (field `size`) when the volume exceeds the free capacity
   * @throws {@link NotFoundError} when the snapshot or its volume is no longer stored
   */
  async createVolume(options: { name?: string; description?: string; size?: number } = {}): Promise<Volume> {
    const wanted = options.size === undefined ? undefined : validateSize(options.size, 'size');
    const { name, description } = nameAndDescription(options);
    const backend = this.volume.backend;
    return this.volume.locked(async () => {
      if (!(await this.reload())) throw new NotFoundError('snapshot', this.id);
      if (this.status !== 'available') throw new InvalidStateError(`snapshot ${this.id} is ${this.status}, not available`, { details: { snapshot_id: this.id } });
      const size = wanted ?? this.volumeSize;
      if (size < this.volumeSize) throw new InvalidInputError('size', `must be at least the snapshot's volume size ${this.volumeSize} GiB`);
      await backend.ensureCapacity(size, 'size');
      const fields = { size, name, description, multiattach: false, snapshot_id: this.id, ...(await copyVolumeKey(this.ctx, this.volume)) };
      return Volume.createOn(backend, fields, (vol) => backend.driver.createVolumeFromSnapshot(vol.toDriver(), this.toDriver()));
    });
  }
}
