/**
 * {@link Snapshot}: cinderlib's `Snapshot`.
 *
 * A snapshot follows cinderlib's error contract through {@link DriverObject.runDriver}. Its record
 * has no metadata column, so it carries no owner marker; and a driver's model update for it keeps
 * only `provider_location` and `provider_id` (the snapshot record's columns).
 *
 * @module
 */
import { InvalidInputError, InvalidStateError } from '../errors.js';
import type { DriverSnapshot, ModelUpdate } from '../drivers/driver.js';
import type { SnapshotRecord, SnapshotStatus } from '../persistence/store.js';
import type { BrickContext } from './context.js';
import { nameAndDescription, validateSize } from './input.js';
import { DriverObject, newBaseRecord, objectKey } from './record.js';
import { Volume } from './volume.js';

/** A snapshot. cinderlib's `Snapshot`. */
export class Snapshot extends DriverObject<SnapshotRecord, SnapshotStatus> {
  readonly volume: Volume;
  name!: string;
  description!: string;
  /** Source volume size in GiB at snapshot time. */
  volumeSize!: number;
  providerLocation!: string | null;
  providerId!: string | null;

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

  protected writeRecord(rec: SnapshotRecord): Promise<SnapshotRecord> {
    return this.ctx.store.setSnapshot(rec);
  }

  /** @internal apply a driver model update: only `provider_location` and `provider_id` are kept. */
  applyUpdate(update: ModelUpdate | void): void {
    if (!update) return;
    if (update.provider_location !== undefined) this.providerLocation = update.provider_location;
    if (update.provider_id !== undefined) this.providerId = update.provider_id;
  }

  /** Delete the snapshot; deleting twice succeeds. */
  async delete(): Promise<void> {
    if (this.status === 'deleted') return;
    await this.runDriver('deleting', 'deleted', () => this.volume.backend.driver.deleteSnapshot(this.toDriver()));
    await this.ctx.store.deleteSnapshot(this.id);
    this.volume.snapshots = this.volume.snapshots.filter((s) => s !== this);
    this.ctx.objects.delete(objectKey('snapshot', this.id));
  }

  /**
   * A new volume with the data the source had when the snapshot was taken.
   * @param options.size GiB, at least the snapshot's volume size (default: the same)
   * @throws {@link InvalidStateError} unless the snapshot is `available`
   * @throws {@link InvalidInputError} (field `size`, `name`, `description`)
   */
  async createVolume(options: { name?: string; description?: string; size?: number } = {}): Promise<Volume> {
    if (this.status !== 'available') throw new InvalidStateError(`snapshot ${this.id} is ${this.status}, not available`, { details: { snapshot_id: this.id } });
    const size = options.size === undefined ? this.volumeSize : validateSize(options.size, 'size');
    if (size < this.volumeSize) throw new InvalidInputError('size', `must be at least the snapshot's volume size ${this.volumeSize} GiB`);
    const { name, description } = nameAndDescription(options);
    const backend = this.volume.backend;
    const fields = { size, name, description, multiattach: false, snapshot_id: this.id };
    return Volume.createOn(backend, fields, (vol) => backend.driver.createVolumeFromSnapshot(vol.toDriver(), this.toDriver()));
  }
}
