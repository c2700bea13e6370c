/**
 * The connector contract: what every protocol's host-side attacher implements.
 *
 * It is os-brick's `InitiatorConnector` (`os_brick/initiator/initiator_connector.py`) in
 * TypeScript: `connectVolume(connection_properties)` attaches and returns the device info,
 * `disconnectVolume(connection_properties, device_info, force, ignore_errors)` detaches,
 * `extendVolume` rescans a grown volume, `getVolumePaths`, `getSearchPath`, `checkValidDevice`;
 * beyond os-brick, `checkVolumeCondition` says whether an attached volume is healthy (issue #16).
 * Connection properties are the `data` member of Cinder's connection info, with os-brick's
 * snake_case keys, and are validated by each connector before anything runs.
 *
 * @module
 */
import type { HostContext } from '../host/context.js';
import type { VolumeCondition } from '../host/condition.js';

export type { VolumeCondition, VolumePath, VolumePathState } from '../host/condition.js';

/**
 * The device info a connect returns (os-brick's `device_info`):
 * `{ type: 'block', path: '/dev/dm-3', scsi_wwn: '36001405...', multipath_id: '36001405...' }`.
 * `type` is `block` for a block device and `file` for a file on a mounted share.
 */
export interface DeviceInfo {
  type: 'block' | 'file';
  /** The device or file to use. */
  path: string;
  /** SCSI WWN (as `/dev/disk/by-id/scsi-<wwn>` names it) for SCSI protocols. */
  scsi_wwn?: string;
  /** dm-multipath map name (the WWID) when `path` is a multipath device. */
  multipath_id?: string;
  /** Protocol-specific extras (NVMe: `nqn`, `uuid`; local: nothing). */
  [key: string]: unknown;
}

/** Connection properties: the `data` of Cinder's connection info, with os-brick's keys. */
export type ConnectionProperties = Record<string, unknown>;

/** Options for {@link Connector.disconnectVolume}, os-brick's `force` / `ignore_errors`. */
export interface DisconnectOptions {
  /** Accept data loss (skip failing flushes) to leave a clean host. */
  force?: boolean;
  /** Do not raise at the end; errors are logged. */
  ignoreErrors?: boolean;
}

/** Options every connector takes (os-brick's `InitiatorConnector.__init__` arguments). */
export interface ConnectorOptions {
  /** Use multipath (dm-multipath for SCSI, native or dm for NVMe). Default false. */
  useMultipath?: boolean;
  /** Scan attempts while waiting for a device. Default 3 (os-brick's `device_scan_attempts`). */
  deviceScanAttempts?: number;
  /** Root helper prefix for privileged commands, e.g. `['sudo', '-n']`. Used when no executor is given. */
  rootHelper?: readonly string[];
  /** Injected seams (executor, host root, logger, locks); whatever is not given is the real host's. */
  ctx?: Partial<HostContext>;
  /** Protocol-specific options (e.g. `transport` for ISER). */
  [key: string]: unknown;
}

/** A host-side attacher for one protocol. */
export interface Connector {
  /** os-brick protocol name, upper case (`LOCAL`, `ISCSI`, ...). */
  readonly protocol: string;
  /**
   * Attach the volume and return its device info.
   * @throws {@link InvalidInputError} naming the field for bad properties, before anything runs
   * @throws {@link VolumeDeviceNotFoundError} and protocol errors on failure, after removing what this call created
   */
  connectVolume(properties: ConnectionProperties): Promise<DeviceInfo>;
  /**
   * Detach the volume. `deviceInfo` is what `connectVolume` returned (may be null when unknown).
   * Detaching something already gone succeeds.
   */
  disconnectVolume(properties: ConnectionProperties, deviceInfo: DeviceInfo | null, options?: DisconnectOptions): Promise<void>;
  /**
   * Make the host see the volume's new size; returns the new size in bytes.
   * @throws {@link ExtendError} when the size cannot be refreshed
   */
  extendVolume(properties: ConnectionProperties): Promise<number>;
  /** Paths where the volume's device appears (or would), without attaching. */
  getVolumePaths(properties: ConnectionProperties): Promise<string[]>;
  /** True when `path` exists and its first block reads (os-brick `check_valid_device`). */
  checkValidDevice(path: string): Promise<boolean>;
  /** The directory where this protocol's devices appear (`/dev/disk/by-path`), or null. */
  getSearchPath(): string | null;
  /**
   * The condition of the volume attached on this host with `deviceInfo` (what `connectVolume`
   * returned): `{ abnormal, message, paths: [{ name, state, portal?, detail? }] }`, see
   * {@link VolumeCondition} for the shape and the meaning of each path state (`active`,
   * `connecting`, `blocked`, `failed`, `missing`). Abnormal when the device is gone, a
   * multipath map misses paths (fewer than the portals of the properties) or has failed ones,
   * an iSCSI session is down, an NVMe-oF controller is not live, or the read test of the first
   * block fails. The message names each problem (`sdc (10.0.0.2:3260) failed [dm F]`); healthy
   * gives `ok: 2 of 2 paths active` (or `ok`). Changes nothing on the host; the CSI plugin's
   * NodeGetVolumeStats and `brick connection show` report it.
   * @throws {@link InvalidInputError} naming the field for bad properties, before anything is read
   */
  checkVolumeCondition(properties: ConnectionProperties, deviceInfo: DeviceInfo): Promise<VolumeCondition>;
}
