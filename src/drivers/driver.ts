/**
 * The `VolumeDriver` interface: Cinder's volume driver contract, typed.
 *
 * Every storage backend (file, LVM, NetApp E-Series, IBM FlashSystem) implements it; the
 * library's Backend/Volume/Snapshot objects call it exactly as cinderlib calls a Cinder driver
 * (`cinder/volume/driver.py` `BaseVD`, `cinder/interface/volume_driver.py`). Sizes are GiB
 * integers, as in Cinder. Methods that can change what Cinder stores return a model update
 * (`provider_location`, `provider_auth`, `provider_id`, ...), which the library persists.
 *
 * @module
 */
import type { HostContext } from '../host/context.js';
import type { ConnectorProperties } from '../initiator/properties.js';

/** The volume as a driver sees it (a subset of Cinder's Volume OVO fields). */
export interface DriverVolume {
  id: string;
  /** Cinder's backend name for the volume: `volume-<id>`. */
  name: string;
  /** User-facing display name. */
  display_name?: string | null;
  /** Size in GiB. */
  size: number;
  provider_location?: string | null;
  provider_auth?: string | null;
  provider_id?: string | null;
  /** Whether the volume may be attached to several hosts. */
  multiattach?: boolean;
  /** Free-form metadata the driver may keep (e.g. an exported target name). */
  admin_metadata?: Record<string, string>;
}

/** The snapshot as a driver sees it. */
export interface DriverSnapshot {
  id: string;
  /** Cinder's backend name: `snapshot-<id>`. */
  name: string;
  volume_id: string;
  /** Source volume size in GiB at snapshot time. */
  volume_size: number;
  /** The source volume. */
  volume: DriverVolume;
  provider_location?: string | null;
  provider_id?: string | null;
}

/** What a driver may ask the library to store on the volume or snapshot. */
export interface ModelUpdate {
  provider_location?: string | null;
  provider_auth?: string | null;
  provider_id?: string | null;
  /** New size in GiB (e.g. after manage existing rounds up). */
  size?: number;
  admin_metadata?: Record<string, string>;
}

/** Cinder's connection info: `{ driver_volume_type, data }`; `data` are the connector's connection properties. */
export interface ConnectionInfo {
  /** `local`, `iscsi`, `iser`, `fibre_channel`, `nvmeof`, `aoe`, `nfs`, `rbd`, ... */
  driver_volume_type: string;
  data: Record<string, unknown>;
}

/** One pool's stats, Cinder's pool capability keys. Capacities in GiB. */
export interface PoolStats {
  pool_name: string;
  total_capacity_gb: number | 'unknown' | 'infinite';
  free_capacity_gb: number | 'unknown' | 'infinite';
  provisioned_capacity_gb?: number;
  allocated_capacity_gb?: number;
  thin_provisioning_support?: boolean;
  thick_provisioning_support?: boolean;
  max_over_subscription_ratio?: number | string;
  reserved_percentage?: number;
  multiattach?: boolean;
  QoS_support?: boolean;
  [key: string]: unknown;
}

/** Backend stats, Cinder's `get_volume_stats()` keys. Capacities in GiB. */
export interface VolumeStats extends Partial<PoolStats> {
  volume_backend_name: string;
  vendor_name: string;
  driver_version: string;
  storage_protocol: string;
  pools?: PoolStats[];
  [key: string]: unknown;
}

/**
 * What the library gives a driver besides its own configuration: the host seams (it is a
 * {@link HostContext}: executor, host root, logger, locks) and the backend's own settings.
 */
export interface DriverContext extends HostContext {
  /** The backend name (`volume_backend_name`). */
  backendName: string;
  /** A directory the driver may keep private state in (e.g. generated CHAP secrets). */
  stateDir: string;
  /**
   * The storage host's name (the library's `hostName`), for drivers whose exports are only
   * usable on the storage host itself (LOCAL paths such as the file backend's loop devices).
   */
  hostName?: string;
  /** Report copy progress (bytes done, bytes total) for long copies; the CLI shows a bar. */
  onProgress?: (operation: string, done: number, total: number) => void;
}

/** Options for terminate connection. */
export interface TerminateOptions {
  /** Terminate even if the driver cannot confirm the host is detached (Cinder's `force`). */
  force?: boolean;
}

/**
 * Cinder's volume driver contract (`cinder.volume.driver.VolumeDriver` and its `BaseVD` mixins),
 * as the library's objects call it. All sizes are GiB (whole numbers); every method may throw a
 * {@link BrickError}, typically `BackendError`, `BackendUnreachableError`, `NotFoundError`,
 * `InsufficientCapacityError` or `InvalidInputError` naming the field.
 *
 * **Who calls what, and when.** One {@link Backend} owns one driver. `doSetup` then
 * `checkForSetupError` run once, before any other method. The object methods then call:
 *
 * | library call | driver calls, in order |
 * |---|---|
 * | `backend.createVolume` | `createVolume` |
 * | `volume.createSnapshot` | `createSnapshot` |
 * | `snapshot.createVolume` | `createVolumeFromSnapshot` |
 * | `volume.clone` | `createClonedVolume` |
 * | `volume.extend` | `extendVolume` |
 * | `volume.delete` / `snapshot.delete` | `deleteVolume` / `deleteSnapshot` |
 * | `volume.connect` / `volume.attach` | `validateConnector`, `createExport`, `initializeConnection` (on failure: `terminateConnection`, then `removeExport` when no other connection exists) |
 * | `connection.disconnect` / `volume.detach` | `terminateConnection`, then `removeExport` when it was the last connection |
 * | `backend.stats` | `getVolumeStats` |
 * | `backend.close` | `close` |
 * | export recovery (Cinder `init_host`) | `ensureExport` for each volume that has connections |
 *
 * **Concurrency.** Calls for different objects can run at the same time, from one process or
 * from several processes and hosts sharing a store. A driver that keeps state on the host
 * (target configuration, generated secrets, the array's host objects) takes its own named locks
 * from the context's lock manager around each change to it.
 *
 * **Idempotence.** A call may be repeated after a crash or a timeout, with the same arguments:
 * `deleteVolume`, `deleteSnapshot`, `removeExport` and `terminateConnection` succeed when the
 * object, export or mapping is already gone; `createExport`, `ensureExport` and
 * `initializeConnection` return the same result for an export or mapping that already exists.
 * The create methods need not be idempotent: the library never re-runs them for one record
 * (an interrupted create leaves the record `error`, and deleting it calls `deleteVolume`).
 *
 * **Model updates.** A method that returns a {@link ModelUpdate} has these keys persisted on the
 * volume record: `provider_location`, `provider_auth`, `provider_id`, `size` and
 * `admin_metadata` (merged key by key); for a snapshot only `provider_location` and
 * `provider_id`. Any other key is ignored. `undefined` leaves a value as it is, `null` clears it.
 *
 * **`provider_location` / `provider_auth` formats** (Cinder's, per target helper):
 * - file driver: `provider_location` is the absolute path of the volume's file.
 * - `lioadm` / `tgtadm` (iSCSI): `ip:port[;ip2:port],<tid> <iqn> <lun>`
 *   ({@link formatIscsiLocation}; Cinder `ISCSITarget._iscsi_location`).
 * - `nvmet` (NVMe-oF): `ip[,ip2]:port <transport> <nqn> <nsid>` ({@link formatNvmetLocation}).
 * - `provider_auth` is `CHAP <username> <secret>` ({@link formatProviderAuth}) or null. It holds
 *   a CHAP secret: it is stored, passed to the connector as `auth_password`, and never logged or
 *   put in an error message.
 * - Array drivers (E-Series, FlashSystem) keep the array's object id in `provider_id` and leave
 *   `provider_location` null.
 */
export interface VolumeDriver {
  /** Driver name as configured (`file`, `lvm`, `netapp_eseries`, `ibm_flashsystem`). */
  readonly driverName: string;
  /**
   * Cinder `do_setup`: connect to the array, read the volume group, create pools. Called once,
   * before any other method.
   * @throws {@link InvalidConfigError} naming the option at fault; `BackendUnreachableError` when the array cannot be reached
   */
  doSetup(): Promise<void>;
  /**
   * Cinder `check_for_setup_error`: fail now, with a clear error, if the backend cannot work
   * (missing volume group, pool, program or privilege). Called once, after {@link doSetup}.
   * @throws {@link InvalidConfigError} or `PrivilegeError` saying what to fix. Some drivers use other classes: LVM reports
   *   a missing volume group, thin pool or unusable target helper as `BackendError` (field `volume_group`, `lvm_type` or
   *   `target_helper`), FlashSystem an unfinished {@link doSetup} as `InvalidStateError`
   */
  checkForSetupError(): Promise<void>;
  /**
   * Create `volume` (`volume.size` GiB, named `volume.name`). Not re-run for one record.
   * @returns persisted keys (see the interface's notes), e.g. `provider_id`
   * @throws `InsufficientCapacityError` when the pool cannot hold it (the LVM driver passes on `lvcreate`'s
   *   `ProcessExecutionError` instead)
   */
  createVolume(volume: DriverVolume): Promise<ModelUpdate | void>;
  /** Delete the volume's storage. Idempotent: a volume that no longer exists on the backend counts as deleted. */
  deleteVolume(volume: DriverVolume): Promise<void>;
  /** Take a point-in-time copy of `snapshot.volume`. Not re-run for one record. */
  createSnapshot(snapshot: DriverSnapshot): Promise<ModelUpdate | void>;
  /** Delete the snapshot. Idempotent: a missing snapshot counts as deleted. */
  deleteSnapshot(snapshot: DriverSnapshot): Promise<void>;
  /** Create `volume` (at least `snapshot.volume_size` GiB) holding the snapshot's data. Not re-run for one record. */
  createVolumeFromSnapshot(volume: DriverVolume, snapshot: DriverSnapshot): Promise<ModelUpdate | void>;
  /** Create `volume` (at least `source.size` GiB) holding `source`'s data. Not re-run for one record. */
  createClonedVolume(volume: DriverVolume, source: DriverVolume): Promise<ModelUpdate | void>;
  /**
   * Grow `volume` to `newSize` GiB (always larger than `volume.size`). May be called while the
   * volume is exported and attached; the export must then serve the new size.
   * @throws `InsufficientCapacityError` when the pool cannot hold the growth (the LVM driver passes on `lvextend`'s
   *   `ProcessExecutionError` instead)
   */
  extendVolume(volume: DriverVolume, newSize: number): Promise<void>;
  /**
   * Export the volume for `connector`'s host (create the target, LUN or loop device).
   * Idempotent: an existing export is kept and its location returned again.
   * @returns `provider_location` / `provider_auth` for the export
   */
  createExport(volume: DriverVolume, connector: ConnectorProperties): Promise<ModelUpdate | void>;
  /**
   * Re-create the export of a volume that has connections, after the target host lost its
   * configuration (reboot). Idempotent, and must not disturb a working export.
   */
  ensureExport(volume: DriverVolume): Promise<ModelUpdate | void>;
  /** Remove the export. Idempotent; called when the volume's last connection goes away. */
  removeExport(volume: DriverVolume): Promise<void>;
  /**
   * Map the volume to the host described by `connector` and return the connection info
   * (`{ driver_volume_type, data }` with the protocol's os-brick keys). Idempotent: mapping the
   * same host twice returns the same LUN / namespace.
   */
  initializeConnection(volume: DriverVolume, connector: ConnectorProperties): Promise<ConnectionInfo>;
  /**
   * Unmap the volume from `connector`'s host (from all hosts when `connector` is null).
   * Idempotent: an absent mapping counts as removed. `options.force` (Cinder's `force`)
   * terminates even when the driver cannot confirm that the host detached.
   */
  terminateConnection(volume: DriverVolume, connector: ConnectorProperties | null, options?: TerminateOptions): Promise<void>;
  /**
   * Check, before anything is changed, that `connector` carries what this driver needs.
   * @throws {@link InvalidInputError} naming the connector key the driver needs (e.g. `initiator`)
   */
  validateConnector(connector: ConnectorProperties): void;
  /** Capacity and capability report with Cinder's keys (GiB); `refresh` asks the backend again instead of a cached value. */
  getVolumeStats(refresh: boolean): Promise<VolumeStats>;
  /**
   * Bring an existing backend object under management, renaming it into Brick's naming.
   * @throws {@link InvalidInputError} (field `existing_ref` or one of its keys) when the reference is malformed
   * @throws `NotFoundError` with that field when it names nothing on the backend (file, LVM, FlashSystem; E-Series throws
   *   InvalidInputError, as Cinder's `ManageExistingInvalidReference`); a driver may refuse an object it cannot manage
   *   (a snapshot, a mapped vdisk) with `InvalidStateError`
   */
  manageExisting(volume: DriverVolume, existingRef: Record<string, unknown>): Promise<ModelUpdate | void>;
  /**
   * Size in GiB (rounded up) of the object `existingRef` names.
   * @throws {@link InvalidInputError} (field `existing_ref` or one of its keys) when the reference is malformed
   * @throws `NotFoundError` with that field when it names nothing on the backend (E-Series: InvalidInputError, as for
   *   {@link manageExisting}); FlashSystem refuses a mapped vdisk with `InvalidStateError`
   */
  manageExistingGetSize(volume: DriverVolume, existingRef: Record<string, unknown>): Promise<number>;
  /** Stop managing the volume without deleting it. */
  unmanage(volume: DriverVolume): Promise<void>;
  /** Release connections and timers (called by `backend.close()`). Optional. */
  close?(): Promise<void>;
  /**
   * The connector protocol the host uses for this backend's connection info
   * (`LOCAL`, `ISCSI`, `NVMEOF`).
   */
  readonly connectorProtocol: string;
  /** Whether the backend wants multipath for attaches (Cinder's `use_multipath_for_image_xfer`). */
  readonly useMultipath: boolean;
}

/** Builds a driver from its configuration (the backend's options minus `volume_backend_name` and `volume_driver`). */
export type DriverFactory = (config: Record<string, unknown>, ctx: DriverContext) => VolumeDriver;
