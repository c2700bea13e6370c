/**
 * The `file` backend: Brick's embedded default.
 *
 * Volumes are sparse files `volume-<id>.img` under a pool directory; snapshots are
 * `snapshot-<id>.img` copies (reflink where the filesystem supports it, otherwise a streamed,
 * hole-preserving copy with progress); clones and volumes from snapshots are copies too. The
 * export is a loop device over the volume's file, and the connection info is
 * `{ driver_volume_type: 'local', data: { device_path: '/dev/loopN' } }`, which os-brick's
 * `LocalConnector` (Brick's `LOCAL`) consumes. Stats come from `statfs(2)` of the pool directory.
 *
 * It plays the part Cinder's NFS/generic file drivers and cinderlib's LVM-on-loop demos play:
 * a backend that needs nothing but a directory and loop devices, so a newcomer can run every
 * flow on any Linux machine.
 *
 * Configuration keys (declared in {@link FILE_OPTIONS}): `pool_path` (directory, created when missing; default
 * `<stateDir>/volumes`), `max_over_subscription_ratio` (default 1.0: a volume may not exceed
 * free space), `reserved_percentage` (default 0), `use_reflink` (default true), `multiattach`
 * (default false: when true the pool reports Cinder's `multiattach` capability, so a volume
 * created with `multiattach` may be connected for several host names at once; they share the
 * one loop device, which goes away with the last connection).
 *
 * @module
 */
import { mkdir, open, readdir, rename, stat, statfs, unlink } from 'node:fs/promises';
import { join, basename, isAbsolute } from 'node:path';
import { InvalidConfigError, InvalidInputError, InsufficientCapacityError, NotFoundError, BackendError } from '../../errors.js';
import { attachLoop, detachLoop, loopsForFile, refreshLoopCapacity } from '../../host/loop.js';
import { copyVolumeData } from '../../host/copy.js';
import type { ConnectorProperties } from '../../initiator/properties.js';
import type { ConnectionInfo, DriverContext, DriverSnapshot, DriverVolume, ModelUpdate, VolumeDriver, VolumeStats } from '../driver.js';
import { configError, defineOption, readOption, requireConfigObject, type DriverOption } from '../../options.js';
import { registerDriver } from '../registry.js';

const GiB = 1024 ** 3;

/** Validated configuration of the file driver. */
export interface FileDriverConfig {
  pool_path: string;
  max_over_subscription_ratio: number;
  reserved_percentage: number;
  use_reflink: boolean;
  /** Report `multiattach` in the pool stats (default false). */
  multiattach: boolean;
}

/** The file driver's options. */
export const FILE_OPT = {
  poolPath: defineOption({ name: 'pool_path', type: 'string', defaultText: '`<state dir>/volumes`', help: 'Directory of the volume files (absolute; created, mode 0700, when missing).' }),
  maxOverSubscriptionRatio: defineOption({ name: 'max_over_subscription_ratio', type: 'float', min: 1, default: 1, help: 'How far provisioned sizes may exceed the free space (1: not at all).' }),
  reservedPercentage: defineOption({ name: 'reserved_percentage', type: 'float', min: 0, max: 100, default: 0, help: 'Percentage of the filesystem kept free.' }),
  useReflink: defineOption({ name: 'use_reflink', type: 'bool', default: true, help: 'Copy snapshots and clones with a reflink where the filesystem can (btrfs, XFS).' }),
  multiattach: defineOption({ name: 'multiattach', type: 'bool', default: false, help: 'Report the `multiattach` capability: a volume may be connected for several host names at once.' }),
} as const;

/** Every option of the `file` driver. */
export const FILE_OPTIONS: readonly DriverOption[] = Object.values(FILE_OPT);

/**
 * Validate the driver's options ({@link FILE_OPTIONS}).
 * @throws {@link InvalidConfigError} naming the key, e.g. `invalid pool_path: must be an absolute path`
 */
export function parseFileDriverConfig(config: Record<string, unknown>, ctx: Pick<DriverContext, 'stateDir'>): FileDriverConfig {
  requireConfigObject(config);
  const poolPath = readOption(config, FILE_OPT.poolPath);
  if (poolPath !== undefined && !isAbsolute(poolPath)) throw configError('pool_path', 'must be an absolute path');
  return {
    pool_path: poolPath ?? join(ctx.stateDir, 'volumes'),
    max_over_subscription_ratio: readOption(config, FILE_OPT.maxOverSubscriptionRatio),
    reserved_percentage: readOption(config, FILE_OPT.reservedPercentage),
    use_reflink: readOption(config, FILE_OPT.useReflink),
    multiattach: readOption(config, FILE_OPT.multiattach),
  };
}

/** The file driver. */
export class FileDriver implements VolumeDriver {
  readonly driverName = 'file';
  readonly connectorProtocol = 'LOCAL';
  readonly useMultipath = false;
  /** Validated options. */
  readonly config: FileDriverConfig;
  private cachedStats: VolumeStats | undefined;

  constructor(config: Record<string, unknown>, private readonly ctx: DriverContext) {
    this.config = parseFileDriverConfig(config, ctx);
  }

  /**
   * The file that backs volume `name` (`volume-<id>`) or snapshot `snapshot-<id>`.
   * @throws {@link InvalidInputError} (field `name`) for a name that is not letters, digits, `_`, `.` and `-`, or starts with `.`
   */
  pathFor(name: string): string {
    if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith('.')) throw new InvalidInputError('name', `${JSON.stringify(name)} is not a valid backend object name`);
    return join(this.config.pool_path, `${name}.img`);
  }

  /** Create the pool directory (mode 0700). */
  async doSetup(): Promise<void> {
    await mkdir(this.config.pool_path, { recursive: true, mode: 0o700 });
  }

  /** @throws {@link InvalidConfigError} (field `pool_path`) when the pool is not a writable directory */
  async checkForSetupError(): Promise<void> {
    let st;
    try {
      st = await stat(this.config.pool_path);
    } catch {
      throw new InvalidConfigError(`file backend pool_path ${this.config.pool_path} does not exist`, { field: 'pool_path' });
    }
    if (!st.isDirectory()) throw new InvalidConfigError(`file backend pool_path ${this.config.pool_path} is not a directory`, { field: 'pool_path' });
    const probe = join(this.config.pool_path, `.brick-probe-${process.pid}`);
    try {
      await (await open(probe, 'w')).close();
      await unlink(probe);
    } catch (err) {
      throw new InvalidConfigError(`file backend pool_path ${this.config.pool_path} is not writable: ${(err as Error).message}`, { field: 'pool_path' });
    }
  }

  private async freeBytes(): Promise<{ total: number; free: number }> {
    const s = await statfs(this.config.pool_path);
    return { total: s.blocks * s.bsize, free: s.bavail * s.bsize };
  }

  private async ensureSpace(sizeGiB: number, field: string): Promise<void> {
    const { total, free } = await this.freeBytes();
    const usable = free - (total * this.config.reserved_percentage) / 100;
    const limit = usable * this.config.max_over_subscription_ratio;
    if (sizeGiB * GiB > limit) {
      throw new InsufficientCapacityError(`${field} ${sizeGiB} GiB exceeds the free space of file backend ${this.ctx.backendName} (${(limit / GiB).toFixed(2)} GiB)`, {
        field,
        details: { requested_gb: sizeGiB, free_gb: Math.floor(limit / GiB) },
      });
    }
  }

  /**
   * Create a sparse file of `volume.size` GiB.
   * @throws {@link InsufficientCapacityError} (field `size`) when the size exceeds the pool's usable free space
   *   (after `reserved_percentage`, times `max_over_subscription_ratio`)
   * @throws {@link InvalidInputError} (field `name`) for a bad `volume.name` ({@link FileDriver.pathFor}); the fs error (`EEXIST`) when the file exists
   */
  async createVolume(volume: DriverVolume): Promise<ModelUpdate> {
    await this.ensureSpace(volume.size, 'size');
    const file = this.pathFor(volume.name);
    const fh = await open(file, 'wx', 0o600);
    try {
      await fh.truncate(volume.size * GiB);
    } finally {
      await fh.close();
    }
    this.cachedStats = undefined;
    return { provider_location: file };
  }

  /** Detach any loop device over the file and remove it; a missing file is fine (Cinder semantics). */
  async deleteVolume(volume: DriverVolume): Promise<void> {
    const file = this.pathFor(volume.name);
    await this.removeExport(volume);
    await unlink(file).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    this.cachedStats = undefined;
  }

  /** Flush the exported loop device (if any) so the file holds everything written through it. */
  private async flushExport(file: string): Promise<void> {
    for (const dev of await loopsForFile(this.ctx, file)) {
      await this.ctx.executor.run(['blockdev', '--flushbufs', dev], { timeoutMs: 60_000 });
    }
  }

  /** Copy a volume or snapshot file this driver owns (reflink or extent copy, see {@link copyVolumeData}). */
  private async copy(src: string, dst: string, operation: string): Promise<void> {
    let size: number;
    try {
      size = (await stat(src)).size;
    } catch {
      throw new NotFoundError('backing file', src);
    }
    await this.flushExport(src);
    await copyVolumeData(this.ctx, src, dst, {
      sizeBytes: size,
      ownedFiles: { reflink: this.config.use_reflink },
      onProgress: (done, total) => this.ctx.onProgress?.(operation, done, total),
    });
    this.cachedStats = undefined;
  }

  /** Copy the volume's file to `snapshot-<id>.img`. */
  async createSnapshot(snapshot: DriverSnapshot): Promise<ModelUpdate> {
    await this.ensureSpace(0, 'size');
    const dst = this.pathFor(snapshot.name);
    await this.copy(this.pathFor(snapshot.volume.name), dst, `snapshot ${snapshot.id}`);
    return { provider_location: dst };
  }

  /** Remove the snapshot's file; missing is fine. */
  async deleteSnapshot(snapshot: DriverSnapshot): Promise<void> {
    await unlink(this.pathFor(snapshot.name)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    this.cachedStats = undefined;
  }

  private async growTo(file: string, sizeGiB: number): Promise<void> {
    const fh = await open(file, 'r+');
    try {
      const cur = (await fh.stat()).size;
      if (sizeGiB * GiB > cur) await fh.truncate(sizeGiB * GiB);
    } finally {
      await fh.close();
    }
  }

  /** Copy the snapshot's file to the new volume, then grow it to the volume's size if larger. */
  async createVolumeFromSnapshot(volume: DriverVolume, snapshot: DriverSnapshot): Promise<ModelUpdate> {
    await this.ensureSpace(volume.size, 'size');
    const dst = this.pathFor(volume.name);
    await this.copy(this.pathFor(snapshot.name), dst, `volume ${volume.id} from snapshot ${snapshot.id}`);
    await this.growTo(dst, volume.size);
    return { provider_location: dst };
  }

  /** Copy the source volume's file, then grow it to the volume's size if larger. */
  async createClonedVolume(volume: DriverVolume, source: DriverVolume): Promise<ModelUpdate> {
    await this.ensureSpace(volume.size, 'size');
    const dst = this.pathFor(volume.name);
    await this.copy(this.pathFor(source.name), dst, `clone ${volume.id} of ${source.id}`);
    await this.growTo(dst, volume.size);
    return { provider_location: dst };
  }

  /**
   * Grow the file and refresh the capacity of any loop device over it (`losetup --set-capacity`).
   * @throws {@link InsufficientCapacityError} (field `new_size`) when the growth exceeds the pool's usable free space
   */
  async extendVolume(volume: DriverVolume, newSize: number): Promise<void> {
    await this.ensureSpace(newSize - volume.size, 'new_size');
    const file = this.pathFor(volume.name);
    await this.growTo(file, newSize);
    for (const dev of await loopsForFile(this.ctx, file)) await refreshLoopCapacity(this.ctx, dev);
    this.cachedStats = undefined;
  }

  /** Attach a loop device over the volume's file unless one already exists. Idempotent. */
  async createExport(volume: DriverVolume): Promise<ModelUpdate> {
    return this.ensureExport(volume);
  }

  /** Make sure a loop device serves the volume (after a reboot none does). */
  async ensureExport(volume: DriverVolume): Promise<ModelUpdate> {
    const file = this.pathFor(volume.name);
    await stat(file).catch(() => {
      throw new NotFoundError('volume file', file);
    });
    const existing = await loopsForFile(this.ctx, file);
    if (existing.length === 0) await attachLoop(this.ctx, file, { directIo: true });
    return { provider_location: file };
  }

  /** Detach every loop device over the volume's file. */
  async removeExport(volume: DriverVolume): Promise<void> {
    const file = this.pathFor(volume.name);
    for (const dev of await loopsForFile(this.ctx, file)) await detachLoop(this.ctx, dev);
  }

  /**
   * `{ driver_volume_type: 'local', data: { device_path: '/dev/loopN' } }` for the volume's loop device.
   * @throws {@link BackendError} when the volume is not exported
   */
  async initializeConnection(volume: DriverVolume, connector: ConnectorProperties): Promise<ConnectionInfo> {
    this.validateConnector(connector);
    const file = this.pathFor(volume.name);
    const [dev] = await loopsForFile(this.ctx, file);
    if (!dev) throw new BackendError(`volume ${volume.id} is not exported (no loop device over ${file}); create the export first`);
    return { driver_volume_type: 'local', data: { device_path: dev, volume_id: volume.id } };
  }

  /** Nothing to unmap: the loop device is the export and goes with `removeExport`. */
  async terminateConnection(): Promise<void> {}

  /**
   * Local volumes can only be used on this host; any connector object is accepted.
   * @throws {@link InvalidInputError} (field `connector`) when `connector` is not an object
   */
  validateConnector(connector: ConnectorProperties): void {
    if (connector === null || typeof connector !== 'object') throw new InvalidInputError('connector', 'must be an object');
  }

  /** Capacity from statfs of the pool, provisioned from the files' sizes, allocated from their blocks. GiB. */
  async getVolumeStats(refresh: boolean): Promise<VolumeStats> {
    if (this.cachedStats && !refresh) return this.cachedStats;
    const { total, free } = await this.freeBytes();
    let provisioned = 0;
    let allocated = 0;
    for (const name of await readdir(this.config.pool_path).catch(() => [] as string[])) {
      if (!/^volume-.*\.img$/.test(name)) continue;
      const st = await stat(join(this.config.pool_path, name)).catch(() => null);
      if (!st) continue;
      provisioned += st.size;
      allocated += st.blocks * 512;
    }
    const round = (b: number) => Math.round((b / GiB) * 100) / 100;
    const pool = {
      pool_name: this.ctx.backendName,
      total_capacity_gb: round(total),
      free_capacity_gb: round(free),
      provisioned_capacity_gb: round(provisioned),
      allocated_capacity_gb: round(allocated),
      thin_provisioning_support: true,
      thick_provisioning_support: false,
      max_over_subscription_ratio: this.config.max_over_subscription_ratio,
      reserved_percentage: this.config.reserved_percentage,
      multiattach: this.config.multiattach,
      QoS_support: false,
    };
    this.cachedStats = {
      volume_backend_name: this.ctx.backendName,
      vendor_name: 'Brick',
      driver_version: '1.0.0',
      storage_protocol: 'local',
      ...pool,
      pools: [pool],
    };
    return this.cachedStats;
  }

  private existingFile(ref: Record<string, unknown>): string {
    const name = ref['source-name'];
    if (typeof name !== 'string' || name === '' || name.includes('/') || name.startsWith('.')) {
      throw new InvalidInputError('existing_ref.source-name', 'must name a file in the pool directory');
    }
    return join(this.config.pool_path, basename(name));
  }

  /**
   * Rename `existing_ref['source-name']` (a file in the pool) to `volume-<id>.img`, growing it to whole GiB.
   * @throws {@link InvalidInputError} (field `existing_ref.source-name`) when it does not name a file in the pool directory
   * @throws {@link NotFoundError} (field `existing_ref.source-name`) when the file does not exist
   */
  async manageExisting(volume: DriverVolume, existingRef: Record<string, unknown>): Promise<ModelUpdate> {
    const src = this.existingFile(existingRef);
    const size = await this.manageExistingGetSize(volume, existingRef);
    const dst = this.pathFor(volume.name);
    await rename(src, dst);
    await this.growTo(dst, size);
    return { provider_location: dst, size };
  }

  /**
   * Size of the existing file in GiB, rounded up.
   * @throws {@link InvalidInputError} (field `existing_ref.source-name`) when it does not name a file in the pool directory
   * @throws {@link NotFoundError} (field `existing_ref.source-name`) when the file does not exist
   */
  async manageExistingGetSize(_volume: DriverVolume, existingRef: Record<string, unknown>): Promise<number> {
    const src = this.existingFile(existingRef);
    const st = await stat(src).catch(() => {
      throw new NotFoundError('file', src, { field: 'existing_ref.source-name' });
    });
    return Math.max(1, Math.ceil(st.size / GiB));
  }

  /** Leave the file where it is (Cinder's LVM driver does the same). */
  async unmanage(): Promise<void> {}
}

registerDriver('file', (config, ctx) => new FileDriver(config, ctx), ['brick.drivers.file.FileDriver']);
