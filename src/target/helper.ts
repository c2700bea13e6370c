/**
 * The target-helper contract: how a local-storage driver (LVM) exports its block devices.
 *
 * Cinder splits a driver's control path (the LVM driver) from its data path (a "target
 * driver", `cinder/volume/targets/driver.py` `Target`): `create_export`, `ensure_export`,
 * `remove_export`, `initialize_connection`, `terminate_connection`, `validate_connector`,
 * `extend_target`. Brick keeps the split; the helper is chosen by `target_helper`.
 *
 * @module
 */
import type { ConnectionInfo, DriverVolume, ModelUpdate } from '../drivers/driver.js';
import type { ConnectorProperties } from '../initiator/properties.js';

/** A target helper: exports one block device per volume and maps it to hosts. */
export interface TargetHelper {
  /** `lioadm`, `tgtadm` or `nvmet`. */
  readonly helperName: string;
  /** Cinder's `storage_protocol` for stats: `iSCSI` or `NVMe-oF`. */
  readonly storageProtocol: string;
  /** The os-brick connector protocol hosts use: `ISCSI` or `NVMEOF`. */
  readonly connectorProtocol: string;
  /**
   * Fail now if the target subsystem cannot be used (configfs missing, tgtd not running).
   * @throws {@link BackendError} naming `target_helper`
   */
  checkForSetupError(): Promise<void>;
  /**
   * Export `devicePath` for `volume`. Idempotent: an existing export is kept and completed.
   * Returns `provider_location` and (iSCSI) `provider_auth` (`CHAP <user> <password>`).
   */
  createExport(volume: DriverVolume, devicePath: string): Promise<ModelUpdate>;
  /**
   * Recreate, from `provider_location`/`provider_auth` and the helper's saved mappings, an
   * export the target lost (target reboot, module reload). Does nothing for a volume never exported.
   */
  ensureExport(volume: DriverVolume, devicePath: string): Promise<void>;
  /** Remove the export and every mapping. A missing export is not an error. */
  removeExport(volume: DriverVolume): Promise<void>;
  /**
   * Map the exported volume to `connector`'s host (ACL / allowed host) and return the connection info.
   * @throws {@link InvalidStateError} when the volume has no export (`provider_location` empty)
   * @throws {@link InvalidInputError} when the connector lacks the key the protocol needs
   */
  initializeConnection(volume: DriverVolume, connector: ConnectorProperties): Promise<ConnectionInfo>;
  /** Unmap `connector`'s host (every host when null). Unmapping a host that is not mapped succeeds. */
  terminateConnection(volume: DriverVolume, connector: ConnectorProperties | null): Promise<void>;
  /** @throws {@link InvalidInputError} naming `connector.initiator` or `connector.nqn` */
  validateConnector(connector: ConnectorProperties): void;
  /** Make the target present the volume's new size after the device grew. */
  extendTarget(volume: DriverVolume, devicePath: string): Promise<void>;
}
