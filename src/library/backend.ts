/**
 * {@link Backend}: cinderlib's `Backend`, a configured driver plus the volumes it holds.
 *
 * Backends are kept by name in the library context (cinderlib's `Backend.backends`), and their
 * volumes, snapshots and connections in its identity map: loading the same id twice yields the
 * same instance. Loading a volume whose record is transitional while its owner process on this
 * host is dead marks it `error` (see {@link DriverObject}).
 *
 * @module
 */
import { join } from 'node:path';
import { InvalidInputError, AlreadyExistsError, NotFoundError, InsufficientCapacityError, InvalidStateError } from '../errors.js';
import { loadDriverFactory, loadedDriverFactory, resolveDriverName } from '../drivers/registry.js';
import type { DriverFactory, VolumeDriver, VolumeStats } from '../drivers/driver.js';
import { getConnectorProperties, type ConnectorProperties } from '../initiator/properties.js';
import type { VolumeRecord, VolumeStatus } from '../persistence/store.js';
import { currentContext, type BrickContext } from './context.js';
import { nameAndDescription, validateSize } from './input.js';
import type { EncryptionDocument } from '../initiator/encryptors/index.js';
import { createVolumeKey, newVolumeEncryption } from './encryption.js';
import { TRANSITIONAL, errorText, identityMapped, objectKey } from './record.js';
import type { Snapshot } from './snapshot.js';
import { Volume } from './volume.js';

/** A backend's configuration: Cinder's backend section. Extra keys go to the driver. */
export interface BackendConfig {
  /** Unique backend name. */
  volume_backend_name: string;
  /** Driver name (`file`, `lvm`, `netapp_eseries`, `ibm_flashsystem`) or a Cinder class path alias. */
  volume_driver: string;
  [key: string]: unknown;
}

/** What {@link Backend.ensureExports} did for one connected volume. */
export interface EnsureExportOutcome {
  /** The volume's id. */
  volumeId: string;
  /** The backend's `volume_backend_name`. */
  backend: string;
  /** null when the driver's `ensureExport` returned (the export is there now), else what it threw. */
  error: Error | null;
}

/** Options for {@link Backend.createVolume}. */
export interface CreateVolumeOptions {
  /** Size in GiB: a positive integer. */
  size: number;
  name?: string;
  description?: string;
  /** Allow attaching to several hosts (only where the driver reports `multiattach`). */
  multiattach?: boolean;
  /**
   * Encrypt the volume on the host (os-brick's encryptors), with os-brick's keys: `provider`
   * (`luks` default, `luks2`, `plain`, or an os-brick class path), `cipher` (`aes-xts-plain64`),
   * `key_size` (bits), `control_location` (`front-end` only). A key is created in the context's
   * key manager and its id kept on the volume; the first attach formats a LUKS volume.
   */
  encryption?: EncryptionDocument;
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

/**
 * A storage backend: a configured driver plus the volumes it holds. cinderlib's `Backend`.
 *
 * Construction validates the configuration synchronously (unknown driver, bad name, a name
 * reused with another configuration) and starts the driver's setup; every method waits for it,
 * and `await backend.ready` (or `Backend.create`) surfaces setup errors at once. A built-in
 * driver's module is imported when the first backend of it is created, as part of `ready`; the
 * driver is then constructed there, so its option errors reject `ready` rather than being
 * thrown by the constructor (a driver already loaded is constructed at once, as before).
 */
export class Backend {
  /** `volume_backend_name`. */
  readonly id!: string;
  /** The driver's configuration (without the backend name and driver keys). */
  readonly config!: Readonly<BackendConfig>;
  private driverInstance: VolumeDriver | undefined;
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
   * @throws {@link InvalidConfigError} naming the driver option that is wrong, when the driver's
   *   module is loaded already (else {@link ready} rejects with it)
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
    const driverName = resolveDriverName(config.volume_driver);
    const loaded = loadedDriverFactory(driverName);
    const driverConfig: Record<string, unknown> = { ...config };
    delete driverConfig.volume_backend_name;
    delete driverConfig.volume_driver;
    this.id = name;
    this.context = ctx;
    this.config = { ...config, volume_driver: driverName };
    this.fingerprint = fingerprint;
    const makeDriver = (factory: DriverFactory): VolumeDriver =>
      (this.driverInstance = factory(driverConfig, {
        executor: ctx.executor,
        hostRoot: ctx.hostRoot,
        logger: ctx.logger,
        locks: ctx.locks,
        backendName: name,
        stateDir: join(ctx.stateDir, 'backends', name),
        hostName: ctx.hostName,
        onProgress: ctx.onProgress,
      }));
    if (loaded) makeDriver(loaded.factory);
    ctx.backends.set(name, this);
    this.ready = this.init(loaded ? undefined : async () => void makeDriver((await loadDriverFactory(driverName)).factory));
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

  /**
   * The driver.
   * @throws {@link InvalidStateError} while its module is still loading or when it failed to load (await {@link ready} first)
   */
  get driver(): VolumeDriver {
    if (!this.driverInstance) throw new InvalidStateError(`backend ${this.id}: its driver is not loaded (await backend.ready)`, { details: { backend: this.id } });
    return this.driverInstance;
  }

  private async init(loadDriver?: () => Promise<void>): Promise<void> {
    await loadDriver?.();
    await this.driver.doSetup();
    await this.driver.checkForSetupError();
    this.loaded = await this.loadVolumes();
  }

  /**
   * Re-create the exports of this backend's connected volumes: Cinder's `init_host` step that
   * calls the driver's `ensure_export` after the target host rebooted (LIO, tgt and nvmet
   * configuration and loop devices are gone then). Nothing else runs it: constructing a backend
   * and reading from it change nothing; call this once after a reboot (`brick backend
   * ensure-exports` does).
   *
   * Each volume is handled under its per-volume lock (`volume-<id>`), on its record read again
   * inside the lock, so a connection removed since the backend loaded is not brought back. Volumes
   * with no connection, in `error` or `deleted`, or in a transitional status (an operation owns
   * them) are skipped. The driver's model update is saved when it changes the record.
   *
   * @returns one entry per volume whose export was ensured or failed, in store order; a driver
   *   failure is reported in its entry (`error`), logged, and leaves the volume as it was
   * @throws {@link LockTimeoutError} when a volume's lock is not free in time, and the store's errors
   */
  async ensureExports(): Promise<EnsureExportOutcome[]> {
    await this.ready;
    const out: EnsureExportOutcome[] = [];
    for (const { id } of await this.context.store.getVolumes({ backend: this.id })) {
      const outcome = await this.context.locks.withLock(`volume-${id}`, () => this.ensureExportLocked(id));
      if (outcome) out.push(outcome);
    }
    return out;
  }

  /** {@link ensureExports} for one volume, its lock held: undefined when it is skipped. */
  private async ensureExportLocked(id: string): Promise<EnsureExportOutcome | undefined> {
    const [rec] = await this.context.store.getVolumes({ id, backend: this.id });
    if (!rec) return undefined;
    const vol = await this.volumeFromRecord(rec); // loads the connections as stored now
    if (vol.connections.length === 0 || vol.status === 'error' || vol.status === 'deleted' || TRANSITIONAL.has(vol.status)) return undefined;
    try {
      const before = stableJson(vol.toRecord());
      vol.applyUpdate(await this.driver.ensureExport(vol.toDriver()));
      if (stableJson(vol.toRecord()) !== before) await vol.save();
      return { volumeId: id, backend: this.id, error: null };
    } catch (err) {
      this.context.logger.warn({ volume_id: id, err: errorText(err) }, 'ensure_export failed');
      return { volumeId: id, backend: this.id, error: err instanceof Error ? err : new Error(errorText(err)) };
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

  /**
   * Every snapshot of this backend, as stored. A snapshot whose volume record is gone (left by
   * an older Brick) is listed too, with a stand-in volume of status `deleted`, so it can be deleted.
   */
  async getSnapshots(): Promise<Snapshot[]> {
    await this.ready;
    const out: Snapshot[] = [];
    for (const rec of await this.context.store.getSnapshots({ backend: this.id })) {
      const vol = (await this.getVolume(rec.volume_id).catch(() => undefined)) ?? Volume.standIn(this, rec);
      out.push(await vol.snapshotFromRecord(rec));
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
    const vol = identityMapped(this.context, 'volume', rec, () => new Volume(this, rec));
    await vol.recoverIfInterrupted();
    await vol.loadChildren();
    return vol;
  }

  /** @internal */
  forget(vol: Volume): void {
    this.loaded = this.loaded.filter((v) => v !== vol);
    this.context.objects.delete(objectKey('volume', vol.id));
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
   * With `encryption`, the key is created first (see {@link CreateVolumeOptions.encryption}).
   * @throws {@link InvalidInputError} (field `size`, `name`, `description`, `encryption.*`)
   * @throws {@link InsufficientCapacityError} (from the driver) when it does not fit; the volume is then saved in `error`
   */
  async createVolume(options: CreateVolumeOptions): Promise<Volume> {
    if (options === null || typeof options !== 'object') throw new InvalidInputError('options', 'must be an object with a size');
    const size = validateSize(options.size, 'size');
    const { name, description } = nameAndDescription(options);
    const encryption = options.encryption === undefined || options.encryption === null ? undefined : newVolumeEncryption(options.encryption);
    const stats = await this.ensureCapacity(size, 'size');
    if (options.multiattach && stats.multiattach !== true && !(stats.pools ?? []).some((p) => p.multiattach)) {
      throw new InvalidInputError('multiattach', `backend ${this.id} does not support multiattach`);
    }
    const fields = { size, name, description, multiattach: options.multiattach ?? false, ...(encryption ? await createVolumeKey(this.context, encryption) : {}) };
    return Volume.createOn(this, fields, (vol) => this.driver.createVolume(vol.toDriver()));
  }

  /**
   * Refuse `sizeGb` more GiB than the backend can hold, before anything is written: Cinder's
   * capacity filter on the driver's fresh stats (`getVolumeStats(true)`): free capacity less the
   * reserved percentage of the total, times `max_over_subscription_ratio`. A free capacity of
   * `unknown` or `infinite` never refuses. The driver still checks when it runs.
   * @param field the input named in the error (`size`, `new_size`)
   * @returns the stats it read
   * @throws {@link InsufficientCapacityError} naming `field`
   */
  async ensureCapacity(sizeGb: number, field: string): Promise<VolumeStats> {
    await this.ready;
    const stats = await this.stats({ refresh: true });
    const free = typeof stats.free_capacity_gb === 'number' ? stats.free_capacity_gb : Infinity;
    const total = typeof stats.total_capacity_gb === 'number' ? stats.total_capacity_gb : 0;
    const reserved = (total * (Number(stats.reserved_percentage ?? 0) || 0)) / 100;
    const ratio = Number(stats.max_over_subscription_ratio ?? 1) || 1;
    const limit = (free - reserved) * ratio;
    if (sizeGb > limit) {
      throw new InsufficientCapacityError(`${field} ${sizeGb} GiB exceeds the free capacity of backend ${this.id} (${Math.max(0, Math.floor(limit))} GiB)`, {
        field,
        details: { requested_gb: sizeGb, free_gb: Math.max(0, Math.floor(limit)) },
      });
    }
    return stats;
  }

  /** This host's connector properties, for this backend's attaches (multipath as the driver wants). */
  async connectorProperties(): Promise<ConnectorProperties> {
    await this.ready;
    return getConnectorProperties({
      multipath: this.driver.useMultipath,
      host: this.context.hostName,
      myIp: this.context.myIp,
      hostRoot: this.context.hostRoot,
      ctx: this.context,
      probePrograms: this.driver.connectorProtocol === 'NVMEOF',
      ensureNvmeIdentity: this.driver.connectorProtocol === 'NVMEOF' ? this.context : undefined,
    });
  }

  /** Release the driver's resources and forget the backend's objects. */
  async close(): Promise<void> {
    await this.ready.catch(() => undefined);
    await this.driverInstance?.close?.();
    for (const v of this.loaded) this.context.objects.delete(objectKey('volume', v.id));
    this.context.backends.delete(this.id);
  }
}
