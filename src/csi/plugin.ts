/**
 * What every CSI service works with: the Brick runtime (configuration, store, library context,
 * backends), this plugin's identity, and the lookups and per-volume operation lock the services
 * share.
 *
 * CSI ids are Brick ids: a CSI `volume_id` is the Brick volume id, a `snapshot_id` the Brick
 * snapshot id, and the backend of either is read from its stored record, so any process sharing
 * the store finds it. The CSI name of a volume or snapshot is kept as its Brick name.
 *
 * @module
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Runtime } from '../cli/runtime.js';
import type { Volume } from '../library/volume.js';
import type { Snapshot } from '../library/snapshot.js';
import type { Backend } from '../library/backend.js';
import { CsiError, invalidArgument, notFound } from './status.js';
import type { CsiMetrics } from './metrics.js';

/** Which services a `brick csi` process serves. */
export type PluginMode = 'controller' | 'node' | 'all';

/** The plugin: its identity and the Brick runtime behind it. */
export interface Plugin {
  /** The runtime built from `--config` as for every `brick` command. */
  readonly rt: Pick<Runtime, 'config' | 'context' | 'store' | 'logger' | 'backend' | 'allBackends'>;
  /** CSI driver name (reverse DNS), as GetPluginInfo reports it. */
  readonly driverName: string;
  /** Plugin version, as GetPluginInfo reports it. */
  readonly version: string;
  /** This node's id (NodeGetInfo; the key of its connector properties in the key-value store). */
  readonly nodeId: string;
  readonly mode: PluginMode;
  /** NodeGetInfo's `max_volumes_per_node` (0: no limit). */
  readonly maxVolumesPerNode: number;
  /** Where RPC and attach figures go (`NO_METRICS` without `--metrics-address`). */
  readonly metrics: CsiMetrics;
}

/**
 * Run `fn` holding the CSI operation lock `csi-<key>` (a volume id, or `name-<CSI name>` for a
 * volume still being created), in this process and across processes sharing the lock directory.
 * The lock is tried without waiting: when another call holds it the spec's "operation pending"
 * applies and this call is ABORTED, for the CO to retry.
 * @throws {@link CsiError} ABORTED when the lock is held; whatever `fn` throws
 */
export async function withOperationLock<T>(plugin: Plugin, key: string, fn: () => Promise<T>): Promise<T> {
  const name = `csi-${key}`;
  let started = false;
  try {
    return await plugin.rt.context.locks.withLock(
      name,
      () => {
        started = true;
        return fn();
      },
      { timeoutMs: 0 },
    );
  } catch (err) {
    if (!started && (err as { code?: string }).code === 'LOCK_TIMEOUT') throw new CsiError(GrpcStatus.ABORTED, `an operation on ${key} is already in progress`);
    throw err;
  }
}

/**
 * The volume with CSI `volume_id` (its backend read from the stored record).
 * @throws {@link CsiError} NOT_FOUND when no configured backend holds it
 */
export async function findVolume(plugin: Plugin, volumeId: string): Promise<Volume> {
  const [rec] = await plugin.rt.store.getVolumes({ id: volumeId });
  if (!rec || !plugin.rt.config.backends.some((b) => b.volume_backend_name === rec.backend)) throw notFound(`volume ${volumeId} not found`);
  const backend = await plugin.rt.backend(rec.backend);
  return backend.getVolume(volumeId);
}

/** The volume with `volumeId`, or undefined when there is none (for idempotent deletes). */
export async function findVolumeOrNone(plugin: Plugin, volumeId: string): Promise<Volume | undefined> {
  try {
    return await findVolume(plugin, volumeId);
  } catch (err) {
    if (err instanceof CsiError && err.grpcCode === GrpcStatus.NOT_FOUND) return undefined;
    if ((err as { code?: string }).code === 'NOT_FOUND') return undefined;
    throw err;
  }
}

/**
 * The snapshot with CSI `snapshot_id`, or undefined when there is none.
 */
export async function findSnapshotOrNone(plugin: Plugin, snapshotId: string): Promise<Snapshot | undefined> {
  const [rec] = await plugin.rt.store.getSnapshots({ id: snapshotId });
  if (!rec) return undefined;
  const volume = await findVolumeOrNone(plugin, rec.volume_id);
  await volume?.refresh();
  return volume?.snapshots.find((s) => s.id === snapshotId);
}

/**
 * The backend StorageClass parameter `backend` names, or the configured default.
 * @throws {@link CsiError} INVALID_ARGUMENT when it names no configured backend
 */
export async function backendFor(plugin: Plugin, name: string | undefined): Promise<Backend> {
  const wanted = name ?? plugin.rt.config.defaultBackend;
  if (!plugin.rt.config.backends.some((b) => b.volume_backend_name === wanted)) {
    throw invalidArgument(`parameters.backend ${JSON.stringify(wanted)} is not a configured backend (known: ${plugin.rt.config.backends.map((b) => b.volume_backend_name).join(', ')})`);
  }
  return plugin.rt.backend(wanted);
}

/** Every volume of every configured backend, as stored now. */
export async function allVolumes(plugin: Plugin): Promise<Volume[]> {
  return (await Promise.all((await plugin.rt.allBackends()).map((b) => b.getVolumes()))).flat();
}
