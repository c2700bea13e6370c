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

/** What the library gives a driver besides its own configuration. */
export interface DriverContext {
  /** Host seams (executor, host root, logger, locks). */
  host: HostContext;
  /** The backend name (`volume_backend_name`). */
  backendName: string;
  /** A directory the driver may keep private state in (e.g. generated CHAP secrets). */
  stateDir: string;
  /** Report copy progress (bytes done, bytes total) for long copies; the CLI shows a bar. */
  onProgress?: (operation: string, done: number, total: number) => void;
}

/** Options for terminate connection. */
export interface TerminateOptions {
  /** Terminate even if the driver cannot confirm the host is detached (Cinder's `force`). */
  force?: boolean;
}

/**
 * Cinder's volume driver contract. All sizes in GiB; every method may throw a {@link BrickError}
 * (typically `BackendError`, `NotFoundError`, `InsufficientCapacityError`, `InvalidInputError`).
 */
export interface VolumeDriver {
  /** Driver name as configured (`file`, `lvm`, `netapp_eseries`, `ibm_flashsystem`). */
  readonly driverName: string;
  /** Cinder `do_setup`: connect to the array, read the VG, create pools. */
  doSetup(): Promise<void>;
  /** Cinder `check_for_setup_error`: fail now, with a clear error, if the backend cannot work. */
  checkForSetupError(): Promise<void>;
  createVolume(volume: DriverVolume): Promise<ModelUpdate | void>;
  /** Deleting a volume that no longer exists on the backend succeeds. */
  deleteVolume(volume: DriverVolume): Promise<void>;
  createSnapshot(snapshot: DriverSnapshot): Promise<ModelUpdate | void>;
  deleteSnapshot(snapshot: DriverSnapshot): Promise<void>;
  createVolumeFromSnapshot(volume: DriverVolume, snapshot: DriverSnapshot): Promise<ModelUpdate | void>;
  createClonedVolume(volume: DriverVolume, source: DriverVolume): Promise<ModelUpdate | void>;
  /** Grow `volume` to `newSize` GiB. */
  extendVolume(volume: DriverVolume, newSize: number): Promise<void>;
  createExport(volume: DriverVolume, connector: ConnectorProperties): Promise<ModelUpdate | void>;
  ensureExport(volume: DriverVolume): Promise<ModelUpdate | void>;
  removeExport(volume: DriverVolume): Promise<void>;
  /** Map the volume to the host described by `connector` and return the connection info. */
  initializeConnection(volume: DriverVolume, connector: ConnectorProperties): Promise<ConnectionInfo>;
  /** Unmap the volume from `connector`'s host (all hosts when null). */
  terminateConnection(volume: DriverVolume, connector: ConnectorProperties | null, options?: TerminateOptions): Promise<void>;
  /** @throws {@link InvalidInputError} naming the connector key the driver needs (e.g. `initiator`) */
  validateConnector(connector: ConnectorProperties): void;
  getVolumeStats(refresh: boolean): Promise<VolumeStats>;
  /** Bring an existing backend object under management, renaming it into Brick's naming. */
  manageExisting(volume: DriverVolume, existingRef: Record<string, unknown>): Promise<ModelUpdate | void>;
  /** Size in GiB (rounded up) of the object `existingRef` names. */
  manageExistingGetSize(volume: DriverVolume, existingRef: Record<string, unknown>): Promise<number>;
  /** Stop managing the volume without deleting it. */
  unmanage(volume: DriverVolume): Promise<void>;
  /** Release connections and timers (called by `backend.close()`). */
  close?(): Promise<void>;
  /**
   * The connector protocol the host uses for this backend's connection info
   * (`LOCAL`, `ISCSI`, `NVMEOF`), and whether the backend wants multipath for attaches
   * (Cinder's `use_multipath_for_image_xfer`).
   */
  readonly connectorProtocol: string;
  readonly useMultipath: boolean;
}

/** Builds a driver from its configuration (the backend's options minus `volume_backend_name` and `volume_driver`). */
export type DriverFactory = (config: Record<string, unknown>, ctx: DriverContext) => VolumeDriver;
