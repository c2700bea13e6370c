/**
 * Brick's public API: what a user of cinderlib and os-brick reaches for.
 *
 * - The object API (cinderlib): {@link setup}, {@link Backend}, {@link Volume}, {@link Snapshot},
 *   {@link Connection}, and serialization ({@link dump}, {@link load}, ...); {@link hostCleanup}, what
 *   attaches and detaches left on this host, listed and removed (`brick host cleanup`).
 * - Persistence: {@link openStore} and the three stores.
 * - Attaching (os-brick): {@link connectorFor}, {@link getConnectorProperties}, and the three
 *   wire documents' types (connector properties, connection info, device info).
 * - Writing a driver: the {@link VolumeDriver} contract and {@link registerDriver}.
 * - The error classes, each with a stable `code`, and {@link exitCodeFor}.
 *
 * Everything else is behind subpath exports:
 * - `brick/host`: the Linux mechanisms (sysfs, SCSI, multipath, iscsiadm, NVMe, FC, loop, mounts,
 *   locks), for people writing connectors;
 * - `brick/connectors`: the connector classes and their property validators;
 * - `brick/drivers`: the driver classes, their option declarations and the target helpers;
 * - `brick/testing`: the recording executor, fixture trees and the array simulators.
 *
 * @module
 */
export {
  BrickError,
  InvalidInputError,
  InvalidConfigError,
  NotFoundError,
  InvalidStateError,
  AlreadyExistsError,
  InsufficientCapacityError,
  ProcessExecutionError,
  ProcessTimeoutError,
  PrivilegeError,
  HostIoError,
  ConnectAbandonedError,
  LockTimeoutError,
  RetryExhaustedError,
  ProtocolNotSupportedError,
  VolumeDeviceNotFoundError,
  VolumePathNotRemovedError,
  TargetPortalLoginError,
  AuthenticationError,
  BackendError,
  BackendUnreachableError,
  ExtendError,
  EncryptionError,
  PersistenceError,
  VerificationError,
  exitCodeFor,
  exitCodeForCode,
  type BrickErrorCode,
  type BrickErrorOptions,
} from './errors.js';
export { createLogger, silentLogger, type Logger, type LoggerOptions } from './log.js';
export { ProcessExecutor, type Executor, type ExecOptions, type ExecResult, type ProcessExecutorOptions } from './exec/executor.js';
export { createHostContext, type HostContext, type HostContextOptions } from './host/context.js';
export { LockManager, type LockOptions } from './host/lock.js';
export { FileKeyManager, CallbackKeyManager, type KeyManager, type KeyCallbacks, type FileKeyManagerOptions } from './host/key-manager.js';

// The object API (cinderlib).
export { setup, currentContext, type SetupOptions, type BrickContext } from './library/context.js';
export { Backend, type BackendConfig, type CreateVolumeOptions } from './library/backend.js';
export { Volume } from './library/volume.js';
export { Snapshot } from './library/snapshot.js';
export { Connection } from './library/connection.js';
export { hostCleanup, type HostCleanupRequest } from './library/host-cleanup.js';
export type { HostCleanupResult, CleanupLeftover, CleanupAction } from './host/cleanup.js';
export {
  SERIALIZATION_FORMAT,
  json,
  jsons,
  dump,
  dumps,
  load,
  loadBackend,
  loadVolume,
  loadSnapshot,
  loadConnection,
  type BackendRef,
  type BackendJson,
  type VolumeJson,
  type SnapshotJson,
  type ConnectionJson,
  type SerializedObject,
  type Serializable,
  type JsonOptions,
  type LoadOptions,
} from './library/serialization.js';

// Persistence.
export {
  openStore,
  parseStoreUrl,
  defaultDataDir,
  defaultSqlitePath,
  type OpenStoreOptions,
  type StoreConfig,
} from './persistence/factory.js';
export { MemoryStore } from './persistence/memory.js';
export { SqliteStore, type SqliteStoreOptions } from './persistence/sqlite.js';
export { PostgresStore, type PostgresStoreOptions } from './persistence/postgresql.js';
export {
  StaleRecordError,
  type Store,
  type VolumeStatus,
  type SnapshotStatus,
  type VolumeRecord,
  type SnapshotRecord,
  type ConnectionRecord,
  type KeyValue,
} from './persistence/store.js';

// Attaching (os-brick).
import './initiator/connectors/index.js';
export { connectorFor, registerConnector, knownProtocols, canonicalProtocol, type ConnectorConstructor, type ResolvedConnectorOptions } from './initiator/factory.js';
export { getConnectorProperties, type ConnectorProperties, type ConnectorPropertiesOptions } from './initiator/properties.js';
export type { Connector, ConnectorOptions, ConnectionProperties, DeviceInfo, DisconnectOptions } from './initiator/connector.js';

// Drivers (Cinder's contract).
// The built-in drivers' modules load when a backend of theirs is created (issue 18).
export { registerDriver, knownDrivers, driverFactory, loadDriverFactory } from './drivers/registry.js';
export type {
  VolumeDriver,
  DriverFactory,
  DriverContext,
  DriverVolume,
  DriverSnapshot,
  ModelUpdate,
  ConnectionInfo,
  VolumeStats,
  PoolStats,
  TerminateOptions,
} from './drivers/driver.js';
