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
 * Configuration keys (declared in {@link FILE_OPTIONS}): `pool_path` (a private directory of the
 * running user, created 0700 when missing; default `<stateDir>/volumes`),
 * `max_over_subscription_ratio` (default 1.0: a volume may not exceed free space),
 * `reserved_percentage` (default 0), `use_reflink` (default true), `multiattach`
 * (default false: when true the pool reports Cinder's `multiattach` capability, so a volume
 * created with `multiattach` may be connected for several host names at once; they share the
 * one loop device, which goes away with the last connection).
 *
 * Safety (issue #13): root runs this driver, so neither its configuration nor the pool's
 * content may lead it to a file it did not make. `pool_path` must be a directory that can hold
 * files (not `/`, not under `/proc`, `/sys` or `/dev`, not on a pseudo filesystem), owned by
 * the running user and not writable by group or others (OpenSSH's `StrictModes` rule, see
 * `host/private-dir.ts`); anything else is an `InvalidConfigError` naming `pool_path` before
 * anything is created. Pool files are opened with `O_NOFOLLOW` and checked with `fstat`
 * (a regular file owned by the running user, one link); a pool file that is a symbolic link or
 * anything else is an `InvalidStateError` naming the volume or snapshot, and what it points to
 * is never opened, grown, copied, loop-attached or removed.
 *
 * @module
 */
import { constants, type Stats } from 'node:fs';
import { lstat, open, readdir, rename, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { join, basename, isAbsolute, resolve } from 'node:path';
import { InvalidConfigError, InvalidInputError, InvalidStateError, InsufficientCapacityError, NotFoundError, BackendError } from '../../errors.js';
import { attachLoop, detachLoop, loopsForFile, refreshLoopCapacity } from '../../host/loop.js';
import { copyVolumeData } from '../../host/copy.js';
import { checkDirectoryLocation, ensurePrivateDirectory, ownedFileProblem } from '../../host/private-dir.js';
import { getConnectorProperties, type ConnectorProperties } from '../../initiator/properties.js';
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
  poolPath: defineOption({ name: 'pool_path', type: 'string', defaultText: '`<state dir>/volumes`', help: 'Directory of the volume files: absolute, owned by the brick user and not writable by group or others (created 0700 when missing); `/`, /proc, /sys, /dev and pseudo filesystems are refused.' }),
  maxOverSubscriptionRatio: defineOption({ name: 'max_over_subscription_ratio', type: 'float', min: 1, default: 1, help: 'How far provisioned sizes may exceed the free space (1: not at all).' }),
  reservedPercentage: defineOption({ name: 'reserved_percentage', type: 'float', min: 0, max: 100, default: 0, help: 'Percentage of the filesystem kept free.' }),
  useReflink: defineOption({ name: 'use_reflink', type: 'bool', default: true, help: 'Copy snapshots and clones with a reflink where the filesystem can (btrfs, XFS).' }),
  multiattach: defineOption({ name: 'multiattach', type: 'bool', default: false, help: 'Report the `multiattach` capability: a volume may be connected for several host names at once.' }),
} as const;

/** Every option of the `file` driver. */
export const FILE_OPTIONS: readonly DriverOption[] = Object.values(FILE_OPT);

/**
 * Validate the driver's options ({@link FILE_OPTIONS}). Reads nothing: where `pool_path` lives is
 * checked by {@link FileDriver.doSetup}. `pool_path` comes back normalised (`resolve`).
 * @throws {@link InvalidConfigError} naming the key, e.g. `invalid pool_path: must be an absolute path`
 */
export function parseFileDriverConfig(config: Record<string, unknown>, ctx: Pick<DriverContext, 'stateDir'>): FileDriverConfig {
  requireConfigObject(config);
  const poolPath = readOption(config, FILE_OPT.poolPath);
  if (poolPath !== undefined && !isAbsolute(poolPath)) throw configError('pool_path', 'must be an absolute path');
  return {
    pool_path: resolve(poolPath ?? join(ctx.stateDir, 'volumes')),
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
  /** The effective user id pool directories and files must belong to. */
  private readonly uid = process.geteuid?.() ?? 0;

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

  /**
   * Make the pool a private directory of the running user (created 0700 with its missing
   * parents), after checking, before anything is created, that it can be one: see the module
   * notes and `ensurePrivateDirectory` in `host/private-dir.ts`.
   * @throws {@link InvalidConfigError} (field `pool_path`) for `/`, a path under `/proc`, `/sys`
   *   or `/dev` or on a pseudo filesystem, a path that is (or is below) a non-directory, one
   *   that cannot be created (read-only file system, no permission), a symbolic link, or a
   *   directory owned by another user or writable by group or others
   */
  async doSetup(): Promise<void> {
    ensurePrivateDirectory(this.config.pool_path, this.uid, 'pool_path');
    const own = await getConnectorProperties({ hostRoot: this.ctx.hostRoot });
    this.hostIdentity = { ...(own.initiator ? { initiator: own.initiator } : {}), ...(own.nqn ? { nqn: own.nqn } : {}), ...(own.nvme_hostid ? { nvme_hostid: own.nvme_hostid } : {}) };
  }

  /** This machine's initiator IQN, host NQN and NVMe host id, read at setup: what says a connector is of this machine. */
  private hostIdentity: Partial<Record<'initiator' | 'nqn' | 'nvme_hostid', string>> = {};

  /**
   * Check the pool again (it may have changed since {@link FileDriver.doSetup}) and probe that a
   * file can be created in it.
   * @throws {@link InvalidConfigError} (field `pool_path`) as {@link FileDriver.doSetup} (it creates nothing now), or when
   *   no file can be created in the pool (`EROFS` on a read-only mount, `EACCES`)
   */
  async checkForSetupError(): Promise<void> {
    const pool = this.config.pool_path;
    checkDirectoryLocation(pool, 'pool_path');
    const st = await lstat(pool).catch(() => undefined);
    if (!st) throw new InvalidConfigError(`pool_path ${pool}: does not exist`, { field: 'pool_path', details: { pool_path: pool } });
    ensurePrivateDirectory(pool, this.uid, 'pool_path');
    const probe = join(pool, `.brick-probe-${process.pid}`);
    try {
      await (await open(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)).close();
      await unlink(probe);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new InvalidConfigError(`pool_path ${pool}: is not writable: ${(err as Error).message}`, { field: 'pool_path', details: { pool_path: pool, errno: code } });
    }
  }

  /**
   * The {@link InvalidStateError} for pool file `file` of object `name` (`volume-<id>`,
   * `snapshot-<id>`) that is not a regular file of ours; `details` `{ name, file }`.
   */
  private unsafePoolFile(name: string, file: string, problem: string): InvalidStateError {
    return new InvalidStateError(`${name}: pool file ${file} ${problem}; refusing to use it (an administrator must remove or restore it)`, { details: { name, file } });
  }

  /**
   * Open the pool file of `name` with `flags | O_NOFOLLOW` and check it with `fstat`
   * (`ownedFileProblem`: a regular file of ours with one link). The caller closes the handle.
   * @throws {@link InvalidStateError} naming `name` for a symbolic link or any other file
   * @throws the fs error otherwise (ENOENT for a missing file)
   */
  private async openPoolFile(name: string, flags: number): Promise<FileHandle> {
    const file = this.pathFor(name);
    let fh: FileHandle;
    try {
      fh = await open(file, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw this.unsafePoolFile(name, file, 'is a symbolic link');
      throw err;
    }
    const problem = ownedFileProblem(await fh.stat(), this.uid);
    if (problem === undefined) return fh;
    await fh.close();
    throw this.unsafePoolFile(name, file, problem);
  }

  /**
   * `lstat` the pool file of `name` and check it as {@link FileDriver.openPoolFile} does, for
   * what works by path (`losetup`, `unlink`).
   * @returns its stats, or undefined when it does not exist
   * @throws {@link InvalidStateError} naming `name` for a symbolic link or any other file
   */
  private async checkPoolFile(name: string): Promise<Stats | undefined> {
    const file = this.pathFor(name);
    const st = await lstat(file).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    const problem = st && ownedFileProblem(st, this.uid);
    if (problem !== undefined) throw this.unsafePoolFile(name, file, problem);
    return st;
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
    const fh = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await fh.truncate(volume.size * GiB);
    } finally {
      await fh.close();
    }
    this.cachedStats = undefined;
    return { provider_location: file };
  }

  /**
   * Detach any loop device over the file and remove it; a missing file is fine (Cinder semantics).
   * @throws {@link InvalidStateError} naming the volume when its file is a symbolic link or not a regular file of ours (nothing is removed)
   */
  async deleteVolume(volume: DriverVolume): Promise<void> {
    const file = this.pathFor(volume.name);
    await this.checkPoolFile(volume.name);
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

  /**
   * Copy the pool file of `srcName` to the new pool file of `dstName` (reflink or extent copy,
   * see {@link copyVolumeData}, which opens the source with `O_NOFOLLOW` again).
   * @throws {@link NotFoundError} when the source file is missing
   * @throws {@link InvalidStateError} naming `srcName` when its file is a symbolic link or not a regular file of ours
   */
  private async copy(srcName: string, dstName: string, operation: string): Promise<string> {
    const src = this.pathFor(srcName);
    const dst = this.pathFor(dstName);
    let size: number;
    try {
      const fh = await this.openPoolFile(srcName, constants.O_RDONLY);
      size = (await fh.stat()).size;
      await fh.close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError('backing file', src);
      throw err;
    }
    await this.flushExport(src);
    await copyVolumeData(this.ctx, src, dst, {
      sizeBytes: size,
      ownedFiles: { reflink: this.config.use_reflink },
      onProgress: (done, total) => this.ctx.onProgress?.(operation, done, total),
    }).catch((err: NodeJS.ErrnoException) => {
      // Replaced by a link between the check above and the copy's own O_NOFOLLOW open.
      throw err.code === 'ELOOP' ? this.unsafePoolFile(srcName, src, 'is a symbolic link') : err;
    });
    this.cachedStats = undefined;
    return dst;
  }

  /** Copy the volume's file to `snapshot-<id>.img`. */
  async createSnapshot(snapshot: DriverSnapshot): Promise<ModelUpdate> {
    await this.ensureSpace(0, 'size');
    const dst = await this.copy(snapshot.volume.name, snapshot.name, `snapshot ${snapshot.id}`);
    return { provider_location: dst };
  }

  /**
   * Remove the snapshot's file; missing is fine.
   * @throws {@link InvalidStateError} naming the snapshot when its file is a symbolic link or not a regular file of ours (nothing is removed)
   */
  async deleteSnapshot(snapshot: DriverSnapshot): Promise<void> {
    await this.checkPoolFile(snapshot.name);
    await unlink(this.pathFor(snapshot.name)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    this.cachedStats = undefined;
  }

  /** Grow the pool file of `name` to `sizeGiB` on its `O_NOFOLLOW` handle ({@link FileDriver.openPoolFile}); never shrinks. */
  private async growTo(name: string, sizeGiB: number): Promise<void> {
    const fh = await this.openPoolFile(name, constants.O_RDWR);
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
    const dst = await this.copy(snapshot.name, volume.name, `volume ${volume.id} from snapshot ${snapshot.id}`);
    await this.growTo(volume.name, volume.size);
    return { provider_location: dst };
  }

  /** Copy the source volume's file, then grow it to the volume's size if larger. */
  async createClonedVolume(volume: DriverVolume, source: DriverVolume): Promise<ModelUpdate> {
    await this.ensureSpace(volume.size, 'size');
    const dst = await this.copy(source.name, volume.name, `clone ${volume.id} of ${source.id}`);
    await this.growTo(volume.name, volume.size);
    return { provider_location: dst };
  }

  /**
   * Grow the file and refresh the capacity of any loop device over it (`losetup --set-capacity`).
   * @throws {@link InsufficientCapacityError} (field `new_size`) when the growth exceeds the pool's usable free space
   * @throws {@link InvalidStateError} naming the volume when its file is a symbolic link or not a regular file of ours (nothing grows)
   */
  async extendVolume(volume: DriverVolume, newSize: number): Promise<void> {
    await this.ensureSpace(newSize - volume.size, 'new_size');
    const file = this.pathFor(volume.name);
    await this.growTo(volume.name, newSize);
    for (const dev of await loopsForFile(this.ctx, file)) await refreshLoopCapacity(this.ctx, dev);
    this.cachedStats = undefined;
  }

  /** Attach a loop device over the volume's file unless one already exists. Idempotent. */
  async createExport(volume: DriverVolume): Promise<ModelUpdate> {
    return this.ensureExport(volume);
  }

  /**
   * Make sure a loop device serves the volume (after a reboot none does). `losetup` opens the
   * file by path, so the path is checked with `lstat` right before.
   * @throws {@link NotFoundError} when the volume file is missing
   * @throws {@link InvalidStateError} naming the volume when its file is a symbolic link or not a regular file of ours,
   *   or smaller than `volume.size` GiB (`losetup` does not run)
   */
  async ensureExport(volume: DriverVolume): Promise<ModelUpdate> {
    const file = this.pathFor(volume.name);
    const st = await this.checkPoolFile(volume.name);
    if (!st) throw new NotFoundError('volume file', file);
    // A create killed before its ftruncate, or a clone killed mid-copy, leaves a short file under a
    // record in `error`: a loop device over it would be smaller than the volume (writes past its
    // end fail with ENOSPC). Larger is fine: an extend grows the file before the record.
    if (st.size < volume.size * GiB) {
      throw new InvalidStateError(`volume ${volume.id}: file ${volume.name}.img is ${st.size} bytes, smaller than the volume's ${volume.size} GiB (left by an interrupted operation); delete the volume`, {
        details: { volume_id: volume.id, name: volume.name, file_bytes: st.size, size_gb: volume.size },
      });
    }
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
   * Local volumes can only be used on this machine: a connector of another machine is refused,
   * since a LOCAL path such as `/dev/loop3` names some other device there. Another machine is one
   * whose NVMe host id, host NQN or initiator IQN differs from this one's (read at setup), or,
   * when neither side has those, whose `host` is not the library's `hostName`. A connector with
   * neither is accepted.
   * @throws {@link InvalidInputError} (field `connector`) when `connector` is not an object, (field
   *   `connector.host`) when it names another host
   */
  validateConnector(connector: ConnectorProperties): void {
    if (connector === null || typeof connector !== 'object') throw new InvalidInputError('connector', 'must be an object');
    // The export is a loop device of this machine, handed out as a LOCAL path: on any other
    // machine the same /dev/loopN is some other device (or none). Refuse rather than hand back a
    // wrong device. The machine is judged by the identities both sides have (NVMe host id, host
    // NQN, initiator IQN), and by the host name only when there is none to compare.
    const keys = (['nvme_hostid', 'nqn', 'initiator'] as const).filter((k) => typeof connector[k] === 'string' && this.hostIdentity[k]);
    const here = this.ctx.hostName;
    const other = keys.length > 0 ? keys.some((k) => connector[k] !== this.hostIdentity[k]) : Boolean(here && typeof connector.host === 'string' && connector.host !== here);
    if (other) {
      throw new InvalidInputError('connector.host', `the file backend's volumes are loop devices of ${here ?? 'the storage host'} and can only be attached on that machine, not on ${String(connector.host ?? 'another host')}: use a backend with a network export (LVM with an iSCSI or NVMe-oF target) for other hosts`);
    }
  }

  /** Capacity from statfs of the pool, provisioned from the volume files' sizes, allocated from their blocks (regular files only; links are not followed). GiB. */
  async getVolumeStats(refresh: boolean): Promise<VolumeStats> {
    if (this.cachedStats && !refresh) return this.cachedStats;
    const { total, free } = await this.freeBytes();
    let provisioned = 0;
    let allocated = 0;
    for (const name of await readdir(this.config.pool_path).catch(() => [] as string[])) {
      if (!/^volume-.*\.img$/.test(name)) continue;
      const st = await lstat(join(this.config.pool_path, name)).catch(() => null);
      if (!st?.isFile()) continue;
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
   * @throws {@link InvalidStateError} naming the volume when the renamed file was replaced by a link meanwhile (it is not grown)
   */
  async manageExisting(volume: DriverVolume, existingRef: Record<string, unknown>): Promise<ModelUpdate> {
    const src = this.existingFile(existingRef);
    const size = await this.manageExistingGetSize(volume, existingRef);
    const dst = this.pathFor(volume.name);
    await rename(src, dst);
    await this.growTo(volume.name, size);
    return { provider_location: dst, size };
  }

  /**
   * Size of the existing file in GiB, rounded up.
   * @throws {@link InvalidInputError} (field `existing_ref.source-name`) when it does not name a file in the pool
   *   directory, or names a symbolic link or anything but a regular file of ours with one link
   * @throws {@link NotFoundError} (field `existing_ref.source-name`) when the file does not exist
   */
  async manageExistingGetSize(_volume: DriverVolume, existingRef: Record<string, unknown>): Promise<number> {
    const src = this.existingFile(existingRef);
    const st = await lstat(src).catch(() => {
      throw new NotFoundError('file', src, { field: 'existing_ref.source-name' });
    });
    const problem = ownedFileProblem(st, this.uid);
    if (problem !== undefined) throw new InvalidInputError('existing_ref.source-name', `${src} ${problem}; only a regular file of the user running brick can be managed`);
    return Math.max(1, Math.ceil(st.size / GiB));
  }

  /** Leave the file where it is (Cinder's LVM driver does the same). */
  async unmanage(): Promise<void> {}
}

registerDriver('file', (config, ctx) => new FileDriver(config, ctx));
