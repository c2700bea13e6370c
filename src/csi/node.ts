/**
 * The CSI Node service: NodeStageVolume, NodeUnstageVolume, NodePublishVolume,
 * NodeUnpublishVolume, NodeGetVolumeStats, NodeExpandVolume, NodeGetCapabilities, NodeGetInfo.
 *
 * Staging attaches the connection the controller made for this node (found by
 * `publish_context.connection_id` in the shared store; `connection.attach()` runs the protocol's
 * connector here and saves the device info in the connection record, which is what records the
 * staged volume). For mount access the device gets a file system when it is blank (never when
 * `blkid -p` finds anything on it) and is mounted at the staging path; publishing bind-mounts the
 * staging path at the target path. For block access the device stays as it is and publishing
 * bind-mounts the device node onto a file at the target path. Unstaging unmounts and detaches:
 * nothing is left on the host, the connection stays mapped until ControllerUnpublishVolume.
 *
 * @module
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Connection } from '../library/connection.js';
import type { ConnectorProperties } from '../initiator/properties.js';
import type { Volume } from '../library/volume.js';
import { CONNECTION_ID_KEY } from './controller.js';
import * as fs from './node-fs.js';
import { findVolume, findVolumeOrNone, withOperationLock, type Plugin } from './plugin.js';
import { CsiError, notFound } from './status.js';
import type { CsiRequest, VolumeCapability, VolumeCondition } from './types.js';
import { DEFAULT_FS_TYPE, checkCapability, isReadOnlyMode, requireString } from './validate.js';

/** The Node capabilities this plugin implements, advertised exactly. */
export const NODE_CAPABILITIES = ['STAGE_UNSTAGE_VOLUME', 'GET_VOLUME_STATS', 'EXPAND_VOLUME', 'VOLUME_CONDITION', 'SINGLE_NODE_MULTI_WRITER'] as const;

/** This node's connection of `vol` that is attached here, if any. */
function attachedHere(plugin: Plugin, vol: Volume): Connection | undefined {
  return vol.connections.find((c) => c.attachedHost === plugin.nodeId && c.device !== null);
}

/**
 * Marks, in a connection's connector properties, a connection the node plugin made itself
 * because NodeStageVolume came without a publish context; NodeUnstageVolume disconnects it.
 */
export const SELF_PUBLISHED_KEY = 'brick_csi_self_published';

/**
 * The connection to stage: the one the publish context names (which must be this volume's and
 * this node's), or, without a publish context (a CO that skips ControllerPublishVolume), this
 * node's connection, made here from the node's stored connector properties when there is none.
 * @throws {@link CsiError} NOT_FOUND when the named connection is gone (unpublished meanwhile);
 *   FAILED_PRECONDITION when it was made for another node
 */
async function connectionToStage(plugin: Plugin, vol: Volume, req: CsiRequest, cap: VolumeCapability): Promise<Connection> {
  const id = ((req.publish_context as Record<string, string> | null) ?? {})[CONNECTION_ID_KEY];
  await vol.refresh();
  if (id) {
    const conn = vol.connections.find((c) => c.id === id);
    if (!conn) throw notFound(`volume ${vol.id} has no connection ${id}: it is not published`);
    if (conn.attachedHost !== plugin.nodeId) throw new CsiError(GrpcStatus.FAILED_PRECONDITION, `connection ${id} was published to node ${conn.attachedHost}, not ${plugin.nodeId}`);
    return conn;
  }
  const mine = vol.connections.find((c) => c.attachedHost === plugin.nodeId);
  if (mine) return mine;
  const [kv] = await plugin.rt.store.getKeyValues(plugin.nodeId);
  const props = kv ? (JSON.parse(kv.value) as ConnectorProperties) : await vol.backend.connectorProperties();
  const mode = isReadOnlyMode(cap.access_mode?.mode) ? 'ro' : 'rw';
  return vol.connect({ ...props, [SELF_PUBLISHED_KEY]: true }, { attachedHost: plugin.nodeId, attachMode: mode });
}

/** NodeStageVolume: attach, then (mount access) make a file system on a blank device and mount it at the staging path. */
export async function nodeStage(plugin: Plugin, req: CsiRequest): Promise<Record<string, never>> {
  const id = requireString(req, 'volume_id');
  const staging = requireString(req, 'staging_target_path');
  const cap = checkCapability(req.volume_capability as VolumeCapability, 'volume_capability');
  return withOperationLock(plugin, id, async () => {
    const vol = await findVolume(plugin, id);
    const conn = await connectionToStage(plugin, vol, req, cap);
    const started = Date.now();
    const wasAttached = conn.device !== null;
    const device = (await conn.attach()).path;
    if (!wasAttached) plugin.metrics.attach('attach', conn.protocol, (Date.now() - started) / 1000);
    if (cap.access_type === 'block') return {};
    const ctx = plugin.rt.context;
    const mounted = await fs.mountAt(ctx, staging);
    if (mounted) {
      if (!(await fs.sameDevice(ctx, mounted.source, device))) throw new CsiError(GrpcStatus.ALREADY_EXISTS, `staging_target_path ${staging} holds ${mounted.source}, not volume ${id}`);
      return {};
    }
    const wanted = cap.mount?.fs_type || DEFAULT_FS_TYPE;
    let found = await fs.probeFileSystem(ctx, device);
    if (found === undefined) {
      await fs.makeFileSystem(ctx, device, wanted);
      found = wanted;
    } else if (cap.mount?.fs_type && found !== cap.mount.fs_type) {
      throw new CsiError(GrpcStatus.FAILED_PRECONDITION, `volume ${id} holds ${found}, not ${cap.mount.fs_type}: it is never reformatted`);
    }
    await fs.ensureDir(ctx, staging);
    await fs.mountDevice(ctx, device, staging, found, cap.mount?.mount_flags ?? []);
    return {};
  });
}

/** NodeUnstageVolume: unmount the staging path and detach this node's connection (disconnect one it made itself); idempotent. */
export async function nodeUnstage(plugin: Plugin, req: CsiRequest): Promise<Record<string, never>> {
  const id = requireString(req, 'volume_id');
  const staging = requireString(req, 'staging_target_path');
  return withOperationLock(plugin, id, async () => {
    await fs.unmountAll(plugin.rt.context, staging);
    const vol = await findVolumeOrNone(plugin, id);
    if (!vol) return {};
    await vol.refresh();
    for (const c of vol.connections.filter((x) => x.attachedHost === plugin.nodeId)) {
      if (c.device !== null) {
        const started = Date.now();
        await c.detach();
        plugin.metrics.attach('detach', c.protocol, (Date.now() - started) / 1000);
      }
      if (c.connectorInfo[SELF_PUBLISHED_KEY] === true) await c.disconnect();
    }
    return {};
  });
}

/** NodePublishVolume: bind-mount the staging path (mount) or the device (block) at the target path; read-only honoured. */
export async function nodePublish(plugin: Plugin, req: CsiRequest): Promise<Record<string, never>> {
  const id = requireString(req, 'volume_id');
  const target = requireString(req, 'target_path');
  const staging = requireString(req, 'staging_target_path');
  const cap = checkCapability(req.volume_capability as VolumeCapability, 'volume_capability');
  const readOnly = req.readonly === true || isReadOnlyMode(cap.access_mode?.mode);
  return withOperationLock(plugin, id, async () => {
    const ctx = plugin.rt.context;
    const vol = await findVolume(plugin, id);
    await vol.refresh();
    const conn = attachedHere(plugin, vol);
    if (!conn) throw new CsiError(GrpcStatus.FAILED_PRECONDITION, `volume ${id} is not staged on node ${plugin.nodeId}`);
    if (cap.access_type === 'block') {
      const now = await fs.pathKind(ctx, target);
      const dev = await fs.pathKind(ctx, conn.path!);
      if (now.blockDevice) {
        if (now.rdev !== dev.rdev) throw new CsiError(GrpcStatus.ALREADY_EXISTS, `target_path ${target} holds another device`);
        return {};
      }
      await fs.ensureFile(ctx, target);
      await fs.bindMount(ctx, conn.path!, target, readOnly);
      return {};
    }
    const source = await fs.mountAt(ctx, staging);
    if (!source) throw new CsiError(GrpcStatus.FAILED_PRECONDITION, `volume ${id} is not staged at ${staging}`);
    const existing = await fs.mountAt(ctx, target);
    if (existing) {
      const wasReadOnly = existing.options.includes('ro');
      if (existing.source !== source.source || wasReadOnly !== readOnly) throw new CsiError(GrpcStatus.ALREADY_EXISTS, `target_path ${target} is published with other options`);
      return {};
    }
    await fs.ensureDir(ctx, target);
    await fs.bindMount(ctx, staging, target, readOnly, cap.mount?.mount_flags ?? []);
    return {};
  });
}

/** NodeUnpublishVolume: unmount and remove the target path; idempotent. */
export async function nodeUnpublish(plugin: Plugin, req: CsiRequest): Promise<Record<string, never>> {
  const id = requireString(req, 'volume_id');
  const target = requireString(req, 'target_path');
  return withOperationLock(plugin, id, async () => {
    await fs.unmountAll(plugin.rt.context, target);
    await fs.removeTarget(plugin.rt.context, target);
    return {};
  });
}

/**
 * The node's view of a volume's health: it is attached here, a mount-access path is mounted, and
 * the protocol connector's condition check (`connection.checkCondition()`: device present, every
 * path of the map and session or controller up, the first block reads) finds nothing wrong. The
 * connector's message names the failed paths (`sdc (10.0.0.2:3260) failed [dm F]`).
 */
async function nodeCondition(plugin: Plugin, vol: Volume, path: string, blockDevice: boolean): Promise<VolumeCondition> {
  const conn = attachedHere(plugin, vol);
  if (!conn) return { abnormal: true, message: `volume ${vol.id} is not attached on node ${plugin.nodeId}` };
  if (!blockDevice && !(await fs.mountAt(plugin.rt.context, path))) return { abnormal: true, message: `${path} is not mounted` };
  try {
    const c = await conn.checkCondition();
    return { abnormal: c.abnormal, message: c.abnormal ? c.message : `volume is attached at ${conn.path}: ${c.message}` };
  } catch (err) {
    return { abnormal: true, message: `the condition of ${conn.path} could not be checked: ${(err as Error).message}` };
  }
}

/**
 * NodeGetVolumeStats: bytes and inodes of a mounted volume, the size of a block volume, and the volume's condition.
 * @throws {@link CsiError} INVALID_ARGUMENT for a missing volume id or path, NOT_FOUND when `volume_path` does not exist
 */
export async function nodeGetVolumeStats(plugin: Plugin, req: CsiRequest): Promise<Record<string, unknown>> {
  const id = requireString(req, 'volume_id');
  const path = requireString(req, 'volume_path');
  const vol = await findVolume(plugin, id);
  await vol.refresh();
  const kind = await fs.pathKind(plugin.rt.context, path);
  if (!kind.exists) throw notFound(`volume_path ${path} does not exist`);
  const condition = await nodeCondition(plugin, vol, path, kind.blockDevice);
  if (kind.blockDevice) {
    return { usage: [{ unit: 'BYTES', total: await fs.blockDeviceBytes(plugin.rt.context, path), available: 0, used: 0 }], volume_condition: condition };
  }
  const u = await fs.fileSystemUsage(plugin.rt.context, path);
  return { usage: [{ unit: 'BYTES', ...u.bytes }, { unit: 'INODES', ...u.inodes }], volume_condition: condition };
}

/** NodeExpandVolume: the connector makes the host see the new size, then a mounted file system grows online. */
export async function nodeExpand(plugin: Plugin, req: CsiRequest): Promise<Record<string, unknown>> {
  const id = requireString(req, 'volume_id');
  const path = requireString(req, 'volume_path');
  const cap = req.volume_capability as VolumeCapability | null;
  if (cap) checkCapability(cap, 'volume_capability');
  return withOperationLock(plugin, id, async () => {
    const ctx = plugin.rt.context;
    const vol = await findVolume(plugin, id);
    await vol.refresh();
    const kind = await fs.pathKind(ctx, path);
    if (!kind.exists) throw notFound(`volume_path ${path} does not exist`);
    const conn = attachedHere(plugin, vol);
    if (!conn) throw new CsiError(GrpcStatus.FAILED_PRECONDITION, `volume ${id} is not staged on node ${plugin.nodeId}`);
    const bytes = await conn.extend();
    const mounted = kind.blockDevice || cap?.access_type === 'block' ? undefined : await fs.mountAt(ctx, path);
    if (mounted) await fs.growFileSystem(ctx, conn.path!, path, mounted.fstype);
    return { capacity_bytes: bytes };
  });
}

/** NodeGetCapabilities: exactly {@link NODE_CAPABILITIES}. */
export function nodeCapabilities(): Record<string, unknown> {
  return { capabilities: NODE_CAPABILITIES.map((type) => ({ rpc: { type } })) };
}

/** NodeGetInfo: the node id and the volume limit; no topology. */
export function nodeInfo(plugin: Plugin): Record<string, unknown> {
  return { node_id: plugin.nodeId, max_volumes_per_node: plugin.maxVolumesPerNode };
}
