/**
 * The LVM volume driver: Cinder's `LVMVolumeDriver` (`cinder/volume/drivers/lvm.py`) for
 * Brick. Volumes are logical volumes `volume-<id>` in one volume group; snapshots are LVM
 * snapshots `_snapshot-<id>` (LVM reserves names starting with `snapshot`); exports go
 * through a target helper (`lioadm`, `tgtadm`, `nvmet`, see `src/target`).
 *
 * Configuration keys (Cinder's names and defaults unless noted; declared in {@link LVM_OPTIONS}):
 * - `volume_group` (default `cinder-volumes`): the VG; it must exist.
 * - `lvm_type`: `default` (thick LVs, the default here; Cinder's default is `auto`) or `thin`
 *   (thin LVs in the pool `<volume_group>-pool`, created with 95% of the VG's free space when missing).
 * - `volume_clear`: `zero` (default) or `none`: overwrite a thick volume (and a thick snapshot's
 *   COW store) with zeros before deleting it; `volume_clear_size` MiB to clear (0 = all).
 *   Thin LVs are never cleared (the pool hands out zeroed blocks), as in Cinder.
 * - `max_over_subscription_ratio` (20.0), `reserved_percentage` (0): reported in the stats.
 * - `use_multipath_for_image_xfer` (false): attaches through the library use multipath.
 * - `lvm_copy_chunk_mib` (Brick, default 128): thick copies (clone, volume from snapshot)
 *   run `dd` one chunk at a time and report progress after each.
 * - the target keys of `src/target/config.ts`: `target_helper`, `target_protocol`,
 *   `target_prefix`, `target_ip_address`, `target_secondary_ip_addresses`
 *   (`iscsi_secondary_ip_addresses`), `target_port`, `nvmet_port_id`, `nvmet_ns_id`,
 *   `report_discard_supported`.
 *
 * @module
 */
import { BackendError, InvalidInputError, InvalidStateError, NotFoundError } from '../../errors.js';
import type { ConnectorProperties } from '../../initiator/properties.js';
import { copyVolumeData } from '../../host/copy.js';
import { createTargetHelper, type TargetHelperOptions } from '../../target/index.js';
import { parseTargetConfig, TARGET_OPTIONS, type TargetConfig } from '../../target/config.js';
import { configError, defineOption, readOption, requireConfigObject, type DriverOption } from '../../options.js';
import type { TargetHelper } from '../../target/helper.js';
import type {
  ConnectionInfo,
  DriverContext,
  DriverSnapshot,
  DriverVolume,
  ModelUpdate,
  PoolStats,
  TerminateOptions,
  VolumeDriver,
  VolumeStats,
} from '../driver.js';
import { escapeSnapshotName, hasSnapshotsIn, isValidLvmName, mapperName, VolumeGroup } from './lvm.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/** Validated LVM driver configuration. */
export interface LvmDriverConfig {
  volumeGroup: string;
  lvmType: 'default' | 'thin';
  volumeClear: 'none' | 'zero';
  /** MiB to clear; 0 = the whole volume. */
  volumeClearSizeMiB: number;
  maxOverSubscriptionRatio: number;
  reservedPercentage: number;
  useMultipath: boolean;
  copyChunkMiB: number;
  target: TargetConfig;
}

/** The LVM driver's own options (Cinder's names and defaults unless the help says otherwise). */
export const LVM_OPT = {
  volumeGroup: defineOption({ name: 'volume_group', type: 'string', default: 'cinder-volumes', help: 'The volume group of the volumes; it must exist.' }),
  lvmType: defineOption({ name: 'lvm_type', type: 'enum', choices: ['default', 'thin'], default: 'default', help: 'Thick LVs, or thin LVs in the pool `<volume_group>-pool` (created when missing). Cinder defaults to `auto`.' }),
  volumeClear: defineOption({ name: 'volume_clear', type: 'enum', choices: ['zero', 'none'], default: 'zero', help: 'Overwrite a thick volume (and a thick snapshot\'s COW store) with zeros before deleting it.' }),
  volumeClearSize: defineOption({ name: 'volume_clear_size', type: 'int', min: 0, max: 2 ** 31, default: 0, help: 'MiB to clear with `volume_clear` (0: all).' }),
  maxOverSubscriptionRatio: defineOption({ name: 'max_over_subscription_ratio', type: 'float', min: 1, default: 20.0, help: 'Reported in the stats.' }),
  reservedPercentage: defineOption({ name: 'reserved_percentage', type: 'int', min: 0, max: 100, default: 0, help: 'Reported in the stats.' }),
  useMultipath: defineOption({ name: 'use_multipath_for_image_xfer', type: 'bool', default: false, help: 'Attaches through the library use multipath.' }),
  copyChunkMib: defineOption({ name: 'lvm_copy_chunk_mib', type: 'int', min: 1, max: 65536, default: 128, help: 'Brick: MiB per `dd` run of a thick copy (progress is reported after each).' }),
  mirrors: defineOption({ name: 'lvm_mirrors', type: 'int', min: 0, max: 16, default: 0, help: 'Mirrored LVs are not supported: only 0 is accepted.' }),
} as const;

/** Every option of the `lvm` driver: its own, then the target-helper options. */
export const LVM_OPTIONS: readonly DriverOption[] = [...Object.values(LVM_OPT), ...TARGET_OPTIONS];

/**
 * Parse and validate an LVM backend configuration ({@link LVM_OPTIONS}).
 * @throws {@link InvalidConfigError} naming the offending key
 */
export function parseLvmConfig(config: Record<string, unknown>): LvmDriverConfig {
  requireConfigObject(config);
  const o = LVM_OPT;
  const volumeGroup = readOption(config, o.volumeGroup);
  if (!isValidLvmName(volumeGroup)) throw configError('volume_group', `${JSON.stringify(volumeGroup)} is not a valid LVM volume group name`);
  if (readOption(config, o.mirrors) !== 0) throw configError('lvm_mirrors', 'mirrored LVs are not supported by Brick; use 0');
  return {
    volumeGroup,
    lvmType: readOption(config, o.lvmType),
    volumeClear: readOption(config, o.volumeClear),
    volumeClearSizeMiB: readOption(config, o.volumeClearSize),
    maxOverSubscriptionRatio: readOption(config, o.maxOverSubscriptionRatio),
    reservedPercentage: readOption(config, o.reservedPercentage),
    useMultipath: readOption(config, o.useMultipath),
    copyChunkMiB: readOption(config, o.copyChunkMib),
    target: parseTargetConfig(config),
  };
}

function lvName(volume: DriverVolume, field = 'volume.name'): string {
  if (typeof volume?.name !== 'string' || !isValidLvmName(volume.name)) throw new InvalidInputError(field, `${JSON.stringify(volume?.name)} is not a valid logical volume name`);
  return volume.name;
}

function sizeGiB(n: unknown, field: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new InvalidInputError(field, `must be a whole number of GiB of at least 1, got ${JSON.stringify(n)}`);
  return n;
}

function round2(bytes: number): number {
  return Math.round((bytes / GiB) * 100) / 100;
}

/** Options for {@link LvmDriver} (tests inject a configfs emulation for the target helper). */
export interface LvmDriverOptions extends TargetHelperOptions {
  /** Use this target helper instead of building one from the configuration. */
  target?: TargetHelper;
}

/** The LVM driver. */
export class LvmDriver implements VolumeDriver {
  readonly driverName = 'lvm';
  readonly config: LvmDriverConfig;
  readonly target: TargetHelper;
  readonly vg: VolumeGroup;
  private cachedStats: VolumeStats | undefined;

  /** @throws {@link InvalidConfigError} naming the offending configuration key */
  constructor(config: Record<string, unknown>, private readonly ctx: DriverContext, options: LvmDriverOptions = {}) {
    this.config = parseLvmConfig(config);
    this.vg = new VolumeGroup(ctx, this.config.volumeGroup);
    this.target = options.target ?? createTargetHelper(this.config.target, ctx, options);
  }

  get connectorProtocol(): string {
    return this.target.connectorProtocol;
  }

  get useMultipath(): boolean {
    return this.config.useMultipath;
  }

  /** The thin pool's name, `<volume_group>-pool` as in Cinder. */
  get thinPool(): string {
    return `${this.config.volumeGroup}-pool`;
  }

  private get thin(): boolean {
    return this.config.lvmType === 'thin';
  }

  /** Nothing to connect to: the checks happen in {@link checkForSetupError}. */
  async doSetup(): Promise<void> {}

  /**
   * The VG must exist; with `lvm_type = thin` the pool is created when missing; the target
   * helper must be usable.
   * @throws {@link BackendError} (field `volume_group`) when the VG does not exist, (field `lvm_type`) when the thin pool
   *   cannot be created, (field `target_helper`) when the target helper cannot be used. This driver reports these as
   *   backend errors, not as the {@link InvalidConfigError} of the {@link VolumeDriver} contract.
   */
  async checkForSetupError(): Promise<void> {
    const vg = await this.vg.info();
    if (!vg) throw new BackendError(`volume_group ${this.config.volumeGroup} does not exist`, { field: 'volume_group' });
    if (this.thin && !(await this.vg.lv(this.thinPool))) {
      try {
        await this.vg.createThinPool(this.thinPool);
      } catch (e) {
        throw new BackendError(`cannot create thin pool ${this.config.volumeGroup}/${this.thinPool}: ${(e as Error).message}`, { field: 'lvm_type', cause: e });
      }
    }
    await this.target.checkForSetupError();
  }

  /**
   * Create `volume-<id>` of `volume.size` GiB (thin in the pool when `lvm_type = thin`).
   * @throws {@link InvalidInputError} (field `volume.name` or `volume.size`) for a name LVM refuses or a size that is not a whole number of GiB of at least 1
   * @throws {@link ProcessExecutionError} when `lvcreate` fails, a VG without enough free space included (this driver does not
   *   raise the {@link InsufficientCapacityError} of the {@link VolumeDriver} contract); {@link ProcessTimeoutError} when it hangs
   */
  async createVolume(volume: DriverVolume): Promise<void> {
    const name = lvName(volume);
    const size = sizeGiB(volume.size, 'volume.size');
    await this.vg.createVolume(name, size, this.thin ? this.thinPool : undefined);
  }

  private async clear(devicePath: string, sizeGiBValue: number): Promise<void> {
    if (this.config.volumeClear === 'none') return;
    const totalMiB = sizeGiBValue * 1024;
    const mib = this.config.volumeClearSizeMiB > 0 ? Math.min(this.config.volumeClearSizeMiB, totalMiB) : totalMiB;
    await this.ctx.executor.run(['dd', 'if=/dev/zero', `of=${devicePath}`, 'bs=1M', `count=${mib}`, 'oflag=direct', 'conv=notrunc'], {
      timeoutMs: 120_000 + Math.ceil(mib / 1024) * 120_000,
    });
  }

  /**
   * Delete the LV; a missing LV is success (Cinder's `_volume_not_present`).
   * @throws {@link InvalidStateError} when the volume has snapshots (Cinder's `VolumeIsBusy`)
   */
  async deleteVolume(volume: DriverVolume): Promise<void> {
    const name = lvName(volume);
    // One report of the VG answers both whether the LV is there and whether it has snapshots.
    const all = await this.vg.lvsIfPresent();
    const lv = all?.find((l) => l.name === name);
    if (!all || !lv) return;
    if (hasSnapshotsIn(all, name)) throw new InvalidStateError(`volume ${volume.id} has snapshots: delete them first`, { details: { volume_id: volume.id } });
    if (!this.thin && lv.pool === '') await this.clear(this.vg.devicePath(name), volume.size || Math.ceil(lv.sizeBytes / GiB));
    await this.vg.remove(name);
  }

  /**
   * Snapshot `snapshot.volume` as `_snapshot-<id>` (thin snapshot, or thick COW snapshot as large as the origin).
   * @throws {@link InvalidInputError} (field `snapshot.volume.name` or `snapshot.name`) for a name LVM refuses
   * @throws {@link NotFoundError} (the volume `snapshot.volume_id`) when the source LV does not exist
   * @throws {@link ProcessExecutionError} when `lvs` or `lvcreate` fails (e.g. not enough free space for a thick snapshot);
   *   {@link ProcessTimeoutError} when one hangs
   */
  async createSnapshot(snapshot: DriverSnapshot): Promise<void> {
    const source = lvName(snapshot.volume, 'snapshot.volume.name');
    const name = escapeSnapshotName(lvName(snapshot as unknown as DriverVolume, 'snapshot.name'));
    const src = await this.vg.lv(source);
    if (!src) throw new NotFoundError('volume', snapshot.volume_id, { details: { lv: `${this.config.volumeGroup}/${source}` } });
    await this.vg.createSnapshot(name, source, src.pool !== '');
  }

  /** Delete the snapshot LV (zeroing a thick snapshot's COW store first when `volume_clear = zero`); a missing one is success. */
  async deleteSnapshot(snapshot: DriverSnapshot): Promise<void> {
    const name = escapeSnapshotName(lvName(snapshot as unknown as DriverVolume, 'snapshot.name'));
    const lv = await this.vg.lv(name);
    if (!lv) return;
    if (lv.pool === '' && this.config.volumeClear !== 'none') {
      await this.clear(`/dev/mapper/${mapperName(this.config.volumeGroup, name)}-cow`, snapshot.volume_size || Math.ceil(lv.sizeBytes / GiB));
    }
    await this.vg.remove(name);
  }

  /**
   * Copy `sizeGiBValue` GiB from `src` to `dst` with {@link copyVolumeData}: `dd` one chunk
   * (`lvm_copy_chunk_mib`) per run, direct I/O, reporting progress (bytes) through the context
   * after each (Cinder's `volume_utils.copy_volume`, in steps so progress is visible and every
   * run has a bound).
   */
  private async copy(src: string, dst: string, sizeGiBValue: number, operation: string): Promise<void> {
    await copyVolumeData(this.ctx, src, dst, {
      sizeBytes: sizeGiBValue * GiB,
      chunkBytes: this.config.copyChunkMiB * MiB,
      onProgress: (done, total) => this.ctx.onProgress?.(operation, done, total),
    });
  }

  /**
   * Thin: a thin snapshot of the snapshot named `volume-<id>`, activated for good and grown to
   * `volume.size`. Thick: a new LV filled from the snapshot with `dd` (progress reported).
   * @throws {@link InvalidInputError} (field `volume.size`) when smaller than the snapshot
   */
  async createVolumeFromSnapshot(volume: DriverVolume, snapshot: DriverSnapshot): Promise<void> {
    const name = lvName(volume);
    const size = sizeGiB(volume.size, 'volume.size');
    if (size < snapshot.volume_size) throw new InvalidInputError('volume.size', `must be at least the snapshot's ${snapshot.volume_size} GiB`);
    const snapName = escapeSnapshotName(lvName(snapshot as unknown as DriverVolume, 'snapshot.name'));
    const snap = await this.vg.lv(snapName);
    if (!snap) throw new NotFoundError('snapshot', snapshot.id, { details: { lv: `${this.config.volumeGroup}/${snapName}` } });
    if (snap.pool !== '') {
      await this.vg.createSnapshot(name, snapName, true);
      try {
        await this.vg.activate(name, { permanent: true });
        if (size > snapshot.volume_size) await this.vg.extend(name, size);
      } catch (e) {
        await this.vg.remove(name).catch(() => undefined);
        throw e;
      }
    } else {
      await this.vg.createVolume(name, size, this.thin ? this.thinPool : undefined);
      try {
        await this.vg.activate(snapName, { ignoreSkip: true });
        await this.copy(this.vg.devicePath(snapName), this.vg.devicePath(name), snapshot.volume_size, 'create volume from snapshot');
      } catch (e) {
        await this.vg.remove(name).catch(() => undefined);
        throw e;
      }
    }
  }

  /**
   * Thin: a thin snapshot of the source, activated for good (Cinder's thin clone). Thick: a
   * temporary snapshot `clone-snap-<id>` of the source, a new LV, a `dd` copy with progress,
   * and the temporary snapshot removed again. The new LV is removed again when a later step fails.
   * @throws {@link InvalidInputError} (field `volume.name`, `source.name` or `volume.size`) for a name LVM refuses, or a size
   *   that is not a whole number of GiB or is smaller than the source's
   * @throws {@link NotFoundError} (the volume `source.id`) when the source LV does not exist
   * @throws {@link ProcessExecutionError} when an LVM command or a `dd` run of the copy fails (e.g. not enough free space);
   *   {@link ProcessTimeoutError} when one outlasts its bound
   */
  async createClonedVolume(volume: DriverVolume, source: DriverVolume): Promise<void> {
    const name = lvName(volume);
    const srcName = lvName(source, 'source.name');
    const size = sizeGiB(volume.size, 'volume.size');
    if (size < source.size) throw new InvalidInputError('volume.size', `must be at least the source's ${source.size} GiB`);
    const src = await this.vg.lv(srcName);
    if (!src) throw new NotFoundError('volume', source.id, { details: { lv: `${this.config.volumeGroup}/${srcName}` } });
    if (src.pool !== '') {
      await this.vg.createSnapshot(name, srcName, true);
      try {
        await this.vg.activate(name, { permanent: true });
        if (size > source.size) await this.vg.extend(name, size);
      } catch (e) {
        await this.vg.remove(name).catch(() => undefined);
        throw e;
      }
      return;
    }
    const temp = `clone-snap-${volume.id}`;
    await this.vg.createSnapshot(temp, srcName, false);
    try {
      await this.vg.createVolume(name, size, this.thin ? this.thinPool : undefined);
      try {
        await this.vg.activate(temp, { ignoreSkip: true });
        await this.copy(this.vg.devicePath(temp), this.vg.devicePath(name), source.size, 'clone volume');
      } catch (e) {
        await this.vg.remove(name).catch(() => undefined);
        throw e;
      }
    } finally {
      await this.vg.remove(temp);
    }
  }

  /**
   * `lvextend` to `newSize` GiB (a thick origin with snapshots is deactivated around it, as
   * Cinder does), then the target is told about the new size.
   * @throws {@link InvalidInputError} (field `new_size`) when not larger than the current size
   * @throws {@link NotFoundError} when the LV does not exist
   * @throws {@link ProcessExecutionError} when `lvextend` fails, a VG without enough free space included (not the
   *   {@link InsufficientCapacityError} of the {@link VolumeDriver} contract)
   */
  async extendVolume(volume: DriverVolume, newSize: number): Promise<void> {
    const name = lvName(volume);
    const size = sizeGiB(newSize, 'new_size');
    const lv = await this.vg.lv(name);
    if (!lv) throw new NotFoundError('volume', volume.id, { details: { lv: `${this.config.volumeGroup}/${name}` } });
    if (size * GiB <= lv.sizeBytes) throw new InvalidInputError('new_size', `must be larger than the current ${Math.ceil(lv.sizeBytes / GiB)} GiB`);
    const deactivate = lv.pool === '' && (await this.vg.hasSnapshots(name));
    if (deactivate) await this.vg.deactivate(name);
    try {
      await this.vg.extend(name, size);
    } finally {
      if (deactivate) await this.vg.activate(name);
    }
    await this.target.extendTarget({ ...volume, size }, this.vg.devicePath(name));
  }

  private async activeDevice(volume: DriverVolume): Promise<string> {
    const name = lvName(volume);
    const lv = await this.vg.lv(name);
    if (!lv) throw new NotFoundError('volume', volume.id, { details: { lv: `${this.config.volumeGroup}/${name}` } });
    if (lv.attr[4] !== 'a') await this.vg.activate(name, { ignoreSkip: true });
    return this.vg.devicePath(name);
  }

  /** Activate the LV and export it (idempotent); returns `provider_location` / `provider_auth`. */
  async createExport(volume: DriverVolume, _connector: ConnectorProperties): Promise<ModelUpdate> {
    return this.target.createExport(volume, await this.activeDevice(volume));
  }

  /** Recreate an export the target lost (after a reboot), from what `provider_location`/`provider_auth` say. */
  async ensureExport(volume: DriverVolume): Promise<void> {
    if (!volume.provider_location) return;
    await this.target.ensureExport(volume, await this.activeDevice(volume));
  }

  /** Remove the target export (and every mapping); a missing export is fine. */
  async removeExport(volume: DriverVolume): Promise<void> {
    await this.target.removeExport(volume);
  }

  /** Map the volume to the connector's host (ACL / allowed host) and return Cinder's connection info (`iscsi` or `nvmeof`). */
  async initializeConnection(volume: DriverVolume, connector: ConnectorProperties): Promise<ConnectionInfo> {
    return this.target.initializeConnection(volume, connector);
  }

  /** Unmap the connector's host (every host when null); the export stays until {@link removeExport}. */
  async terminateConnection(volume: DriverVolume, connector: ConnectorProperties | null, _options?: TerminateOptions): Promise<void> {
    await this.target.terminateConnection(volume, connector);
  }

  /** @throws {@link InvalidInputError} naming `connector.initiator` (iSCSI) or `connector.nqn` (NVMe-oF) when missing */
  validateConnector(connector: ConnectorProperties): void {
    if (connector === null || typeof connector !== 'object') throw new InvalidInputError('connector', 'must be an object');
    this.target.validateConnector(connector);
  }

  /**
   * Cinder's LVM stats, one pool named after the backend. Thick: VG size and free space,
   * provisioned = size - free. Thin: the pool's size and unused data space, provisioned = the
   * sum of the thin LVs' virtual sizes. `allocated_capacity_gb` and `total_volumes` count the
   * `volume-*` LVs. Cached until asked with `refresh` (Cinder: `get_volume_stats(refresh=False)` returns the last report).
   * @throws {@link BackendError} (field `volume_group`) when the VG does not exist; (field `lvm_type`) when `lvm_type = thin`
   *   and the thin pool does not exist
   * @throws {@link ProcessExecutionError} when `vgs` or `lvs` fails; {@link ProcessTimeoutError} when one hangs
   */
  async getVolumeStats(refresh: boolean): Promise<VolumeStats> {
    if (this.cachedStats && !refresh) return this.cachedStats;
    // Thin stats come from the LV report alone (the pool's size and data%): `vgs` only for thick.
    const vg = this.thin ? undefined : await this.vg.info();
    const lvs = this.thin || vg ? await this.vg.lvsIfPresent() : undefined;
    if (!lvs) throw new BackendError(`volume_group ${this.config.volumeGroup} does not exist`, { field: 'volume_group' });
    const volumes = lvs.filter((l) => l.name.startsWith('volume-'));
    let total: number;
    let free: number;
    let provisioned: number;
    if (this.thin) {
      const pool = lvs.find((l) => l.name === this.thinPool);
      if (!pool) throw new BackendError(`thin pool ${this.config.volumeGroup}/${this.thinPool} does not exist`, { field: 'lvm_type' });
      total = pool.sizeBytes;
      free = pool.sizeBytes * (1 - (Number.isFinite(pool.dataPercent) ? pool.dataPercent : 0) / 100);
      provisioned = lvs.filter((l) => l.pool === this.thinPool).reduce((s, l) => s + l.sizeBytes, 0);
    } else {
      total = vg!.sizeBytes;
      free = vg!.freeBytes;
      provisioned = total - free;
    }
    const pool: PoolStats = {
      pool_name: this.ctx.backendName,
      total_capacity_gb: round2(total),
      free_capacity_gb: round2(free),
      provisioned_capacity_gb: round2(provisioned),
      allocated_capacity_gb: round2(volumes.reduce((s, l) => s + l.sizeBytes, 0)),
      total_volumes: volumes.length,
      thin_provisioning_support: this.thin,
      thick_provisioning_support: !this.thin,
      max_over_subscription_ratio: this.config.maxOverSubscriptionRatio,
      reserved_percentage: this.config.reservedPercentage,
      location_info: `LVMVolumeDriver:${this.ctx.backendName}:${this.config.volumeGroup}:${this.config.lvmType}:0`,
      multiattach: true,
      QoS_support: false,
      backend_state: 'up',
    };
    this.cachedStats = {
      volume_backend_name: this.ctx.backendName,
      vendor_name: 'Open Source',
      driver_version: '3.0.0',
      storage_protocol: this.target.storageProtocol,
      ...pool,
      pools: [pool],
    };
    return this.cachedStats;
  }

  private refName(existingRef: Record<string, unknown>): string {
    const name = existingRef?.['source-name'];
    if (typeof name !== 'string' || !isValidLvmName(name)) throw new InvalidInputError('existing_ref.source-name', 'must name a logical volume of the volume group');
    if (name === this.thinPool) throw new InvalidInputError('existing_ref.source-name', 'the thin pool cannot be managed as a volume');
    return name;
  }

  /**
   * Rename the LV `existing_ref['source-name']` to `volume-<id>` (Cinder's `manage_existing`).
   * @throws {@link InvalidInputError} (field `existing_ref.source-name`) when it is not an LV name, or names the thin pool
   * @throws {@link NotFoundError} (field `existing_ref.source-name`) when the LV does not exist
   * @throws {@link InvalidStateError} when it is a snapshot, or already carries Brick's name for another volume
   */
  async manageExisting(volume: DriverVolume, existingRef: Record<string, unknown>): Promise<ModelUpdate> {
    const from = this.refName(existingRef);
    const to = lvName(volume);
    const lv = await this.vg.lv(from);
    if (!lv) throw new NotFoundError('logical volume', `${this.config.volumeGroup}/${from}`, { field: 'existing_ref.source-name' });
    if (lv.attr[0] === 's' || lv.origin !== '') throw new InvalidStateError(`${from} is a snapshot; only volumes can be managed`, { field: 'existing_ref.source-name' });
    if (from !== to) {
      if (/^volume-[0-9a-f-]{36}$/.test(from)) throw new InvalidStateError(`${from} already looks managed (Cinder's ManageExistingAlreadyManaged)`, { field: 'existing_ref.source-name' });
      await this.vg.rename(from, to);
    }
    return { size: Math.ceil(lv.sizeBytes / GiB) };
  }

  /**
   * Size of the LV `existing_ref['source-name']` in GiB, rounded up.
   * @throws {@link InvalidInputError} (field `existing_ref.source-name`) when it is not an LV name, or names the thin pool
   * @throws {@link NotFoundError} (field `existing_ref.source-name`) when the LV does not exist
   */
  async manageExistingGetSize(_volume: DriverVolume, existingRef: Record<string, unknown>): Promise<number> {
    const name = this.refName(existingRef);
    const lv = await this.vg.lv(name);
    if (!lv) throw new NotFoundError('logical volume', `${this.config.volumeGroup}/${name}`, { field: 'existing_ref.source-name' });
    return Math.ceil(lv.sizeBytes / GiB);
  }

  /** Leave the LV as it is (keeping its `volume-<id>` name, as Cinder's LVM driver does); only its export is removed. */
  async unmanage(volume: DriverVolume): Promise<void> {
    await this.target.removeExport(volume);
  }
}
