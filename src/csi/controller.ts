/**
 * The CSI Controller service, volume half: CreateVolume, DeleteVolume, ControllerPublishVolume,
 * ControllerUnpublishVolume, ValidateVolumeCapabilities, ListVolumes, ControllerGetVolume,
 * GetCapacity, ControllerExpandVolume and ControllerGetCapabilities. Snapshots are in
 * `controller-snapshots.ts`.
 *
 * Publishing is cinderlib's remote-connection flow: the node plugin keeps its connector
 * properties in the key-value store under its node id; ControllerPublishVolume reads them,
 * exports and maps the volume for that node (`volume.connect`) and returns the connection's id
 * in `publish_context.connection_id`, which NodeStageVolume attaches.
 *
 * @module
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { ConnectorProperties } from '../initiator/properties.js';
import type { Volume } from '../library/volume.js';
import type { VolumeRecord } from '../persistence/store.js';
import { paginate } from './pagination.js';
import { allVolumes, backendFor, findSnapshotOrNone, findVolume, findVolumeOrNone, withOperationLock, type Plugin } from './plugin.js';
import { CsiError, invalidArgument, notFound } from './status.js';
import type { CapacityRange, CsiRequest, CsiVolume, VolumeCapability, VolumeCondition, VolumeContentSource } from './types.js';
import { GiB, checkCapabilities, checkCapability, isMultiNode, parseParameters, requireString, sizeFits, sizeGiBFor, type VolumeParameters } from './validate.js';

/** The key of a volume's publish context that names its Brick connection. */
export const CONNECTION_ID_KEY = 'connection_id';

/** The key-value entry where a node plugin keeps its `--max-volumes-per-node` (absent: no limit). */
export function maxVolumesKey(nodeId: string): string {
  return `csi-max-volumes/${nodeId}`;
}

/**
 * Refuse a new publication to a node that has as many connections as its limit.
 * @throws {@link CsiError} RESOURCE_EXHAUSTED
 */
async function checkNodeLimit(plugin: Plugin, nodeId: string): Promise<void> {
  const [limit] = await plugin.rt.store.getKeyValues(maxVolumesKey(nodeId));
  const max = Number(limit?.value ?? 0);
  if (!(max > 0)) return;
  const used = (await plugin.rt.store.getConnections()).filter((c) => c.attached_host === nodeId).length;
  if (used >= max) throw new CsiError(GrpcStatus.RESOURCE_EXHAUSTED, `node ${nodeId} has ${used} volumes published, its limit`);
}

/** The Controller capabilities this plugin implements, advertised exactly. */
export const CONTROLLER_CAPABILITIES = [
  'CREATE_DELETE_VOLUME',
  'PUBLISH_UNPUBLISH_VOLUME',
  'LIST_VOLUMES',
  'GET_CAPACITY',
  'CREATE_DELETE_SNAPSHOT',
  'LIST_SNAPSHOTS',
  'CLONE_VOLUME',
  'PUBLISH_READONLY',
  'EXPAND_VOLUME',
  'LIST_VOLUMES_PUBLISHED_NODES',
  'VOLUME_CONDITION',
  'GET_VOLUME',
] as const;

/** A Brick volume as a CSI `Volume`: capacity in bytes, its backend in the volume context, its content source. */
export function csiVolume(vol: Volume): CsiVolume {
  let contentSource: VolumeContentSource | null = null;
  if (vol.snapshotId) contentSource = { snapshot: { snapshot_id: vol.snapshotId } };
  else if (vol.sourceVolid) contentSource = { volume: { volume_id: vol.sourceVolid } };
  return { volume_id: vol.id, capacity_bytes: vol.size * GiB, volume_context: { backend: vol.backend.id }, content_source: contentSource };
}

/** The spec's volume condition from the Brick status: abnormal in `error`, with the error message. */
export function volumeCondition(vol: Pick<Volume, 'status' | 'error'>): VolumeCondition {
  const abnormal = vol.status === 'error' || vol.status.startsWith('error_');
  return { abnormal, message: abnormal ? (vol.error ?? `volume is ${vol.status}`) : `volume is ${vol.status}` };
}

function contentSourceOf(req: CsiRequest): { snapshotId?: string; volumeId?: string } {
  const src = req.volume_content_source as VolumeContentSource | null;
  if (!src) return {};
  if (src.type === 'snapshot') return { snapshotId: requireString(src.snapshot as CsiRequest, 'snapshot_id') };
  if (src.type === 'volume') return { volumeId: requireString(src.volume as CsiRequest, 'volume_id') };
  throw invalidArgument('volume_content_source must name a snapshot or a volume');
}

/** True when an existing volume of the same name satisfies the request (CreateVolume's idempotency). */
function compatible(rec: VolumeRecord, range: CapacityRange | null, source: { snapshotId?: string; volumeId?: string }, params: VolumeParameters): boolean {
  return (
    sizeFits(rec.size, range) &&
    (rec.snapshot_id ?? undefined) === source.snapshotId &&
    (rec.source_volid ?? undefined) === source.volumeId &&
    (params.backend === undefined || params.backend === rec.backend) &&
    (params.multiattach === undefined || params.multiattach === rec.multiattach)
  );
}

/**
 * CreateVolume: a new volume, or the volume made earlier under the same name.
 * @throws {@link CsiError} INVALID_ARGUMENT for bad parameters or a MULTI_NODE mode without multiattach, ALREADY_EXISTS for
 *   the name taken with another size, source or parameters, NOT_FOUND for a missing content source, OUT_OF_RANGE when
 *   whole GiB cannot fit the limit; Brick errors of the create, mapped by the server's status table
 */
export async function createVolume(plugin: Plugin, req: CsiRequest): Promise<{ volume: CsiVolume }> {
  const name = requireString(req, 'name');
  const caps = checkCapabilities(req.volume_capabilities);
  const params = parseParameters(req.parameters as Record<string, string>);
  const source = contentSourceOf(req);
  const range = req.capacity_range as CapacityRange | null;
  const multiNode = caps.some((c) => isMultiNode(c.access_mode?.mode));
  if (multiNode && params.multiattach === false) throw invalidArgument('a MULTI_NODE access mode needs parameters.multiattach "true"');
  return withOperationLock(plugin, `name-${name}`, async () => {
    const [existing] = (await plugin.rt.store.getVolumes({ name })).filter((r) => r.status !== 'deleted');
    if (existing) {
      if (!compatible(existing, range, source, params)) throw new CsiError(GrpcStatus.ALREADY_EXISTS, `a volume named ${JSON.stringify(name)} exists with a different size, source or parameters`);
      return { volume: csiVolume(await findVolume(plugin, existing.id)) };
    }
    const vol = await createFresh(plugin, name, range, source, { ...params, multiattach: params.multiattach ?? (multiNode || undefined) });
    return { volume: csiVolume(vol) };
  });
}

async function createFresh(plugin: Plugin, name: string, range: CapacityRange | null, source: { snapshotId?: string; volumeId?: string }, params: VolumeParameters): Promise<Volume> {
  const sameBackend = (backend: string) => {
    if (params.backend !== undefined && params.backend !== backend) throw invalidArgument(`the content source is on backend ${backend}, not ${params.backend}`);
  };
  if (source.snapshotId !== undefined) {
    const snap = await findSnapshotOrNone(plugin, source.snapshotId);
    if (!snap) throw notFound(`snapshot ${source.snapshotId} not found`);
    sameBackend(snap.volume.backend.id);
    if (params.multiattach) throw invalidArgument('a volume made from a snapshot cannot be multiattach');
    return snap.createVolume({ name, size: sizeGiBFor(range, snap.volumeSize) });
  }
  if (source.volumeId !== undefined) {
    const src = await findVolumeOrNone(plugin, source.volumeId);
    if (!src) throw notFound(`source volume ${source.volumeId} not found`);
    sameBackend(src.backend.id);
    if (params.multiattach !== undefined && params.multiattach !== src.multiattach) throw invalidArgument('a clone keeps the multiattach setting of its source');
    return src.clone({ name, size: sizeGiBFor(range, src.size) });
  }
  const backend = await backendFor(plugin, params.backend);
  return backend.createVolume({ size: sizeGiBFor(range), name, multiattach: params.multiattach });
}

/** DeleteVolume: idempotent; a volume that is not there is deleted. */
export async function deleteVolume(plugin: Plugin, req: CsiRequest): Promise<Record<string, never>> {
  const id = requireString(req, 'volume_id');
  return withOperationLock(plugin, id, async () => {
    const vol = await findVolumeOrNone(plugin, id);
    await vol?.delete();
    return {};
  });
}

/**
 * ControllerPublishVolume: export and map the volume for the node's stored connector
 * properties; the connection id goes back in the publish context. Publishing again to the same
 * node with the same read-only flag returns the same connection.
 */
export async function controllerPublish(plugin: Plugin, req: CsiRequest): Promise<{ publish_context: Record<string, string> }> {
  const id = requireString(req, 'volume_id');
  const nodeId = requireString(req, 'node_id');
  checkCapability(req.volume_capability as VolumeCapability, 'volume_capability');
  const mode = req.readonly === true ? 'ro' : 'rw';
  return withOperationLock(plugin, id, async () => {
    const vol = await findVolume(plugin, id);
    const [kv] = await plugin.rt.store.getKeyValues(nodeId);
    if (!kv) throw notFound(`node ${nodeId} is not known: its node plugin has not stored connector properties`);
    await vol.refresh();
    const existing = vol.connections.find((c) => c.attachedHost === nodeId);
    if (existing) {
      if (existing.attachMode !== mode) throw new CsiError(GrpcStatus.ALREADY_EXISTS, `volume ${id} is published to ${nodeId} ${existing.attachMode === 'ro' ? 'read-only' : 'read-write'}`);
      return { publish_context: { [CONNECTION_ID_KEY]: existing.id } };
    }
    await checkNodeLimit(plugin, nodeId);
    const conn = await vol.connect(JSON.parse(kv.value) as ConnectorProperties, { attachedHost: nodeId, attachMode: mode });
    return { publish_context: { [CONNECTION_ID_KEY]: conn.id } };
  });
}

/** ControllerUnpublishVolume: terminate the node's connection (every node's when `node_id` is empty); idempotent. */
export async function controllerUnpublish(plugin: Plugin, req: CsiRequest): Promise<Record<string, never>> {
  const id = requireString(req, 'volume_id');
  const nodeId = typeof req.node_id === 'string' ? req.node_id : '';
  return withOperationLock(plugin, id, async () => {
    const vol = await findVolumeOrNone(plugin, id);
    if (!vol) return {};
    await vol.refresh();
    for (const c of vol.connections.filter((x) => nodeId === '' || x.attachedHost === nodeId)) await c.disconnect();
    return {};
  });
}

/** ValidateVolumeCapabilities: confirmed when every capability suits the volume (multi-node modes need multiattach). */
export async function validateCapabilities(plugin: Plugin, req: CsiRequest): Promise<Record<string, unknown>> {
  const id = requireString(req, 'volume_id');
  const caps = checkCapabilities(req.volume_capabilities);
  const vol = await findVolume(plugin, id);
  let params: VolumeParameters;
  try {
    params = parseParameters(req.parameters as Record<string, string>);
  } catch (err) {
    return { message: (err as Error).message };
  }
  if (params.backend !== undefined && params.backend !== vol.backend.id) return { message: `volume ${id} is on backend ${vol.backend.id}` };
  const unsupported = caps.find((c) => isMultiNode(c.access_mode?.mode) && !vol.multiattach);
  if (unsupported) return { message: `volume ${id} is not multiattach: ${unsupported.access_mode?.mode} is not supported` };
  return { confirmed: { volume_context: req.volume_context ?? {}, volume_capabilities: caps, parameters: req.parameters ?? {}, mutable_parameters: {} } };
}

function volumeEntry(vol: Volume): Record<string, unknown> {
  const nodes = [...new Set(vol.connections.map((c) => c.attachedHost).filter((h): h is string => typeof h === 'string'))];
  return { volume: csiVolume(vol), status: { published_node_ids: nodes, volume_condition: volumeCondition(vol) } };
}

/** ListVolumes: every volume of every backend, paged (see `pagination.ts`), with the nodes it is published to. */
export async function listVolumes(plugin: Plugin, req: CsiRequest): Promise<Record<string, unknown>> {
  const page = paginate(await allVolumes(plugin), (v) => ({ createdAt: v.createdAt, id: v.id }), String(req.starting_token ?? ''), Number(req.max_entries ?? 0));
  return { entries: page.entries.map(volumeEntry), next_token: page.nextToken };
}

/** ControllerGetVolume: one volume, its published nodes and condition. */
export async function controllerGetVolume(plugin: Plugin, req: CsiRequest): Promise<Record<string, unknown>> {
  const vol = await findVolume(plugin, requireString(req, 'volume_id'));
  await vol.refresh();
  return volumeEntry(vol);
}

/** GetCapacity: the free capacity of the backend the parameters name (the default backend otherwise), in bytes. */
export async function getCapacity(plugin: Plugin, req: CsiRequest): Promise<Record<string, unknown>> {
  if (Array.isArray(req.volume_capabilities) && req.volume_capabilities.length > 0) checkCapabilities(req.volume_capabilities);
  const params = parseParameters(req.parameters as Record<string, string>);
  const stats = await (await backendFor(plugin, params.backend)).stats({ refresh: true });
  const freeGiB = typeof stats.free_capacity_gb === 'number' ? stats.free_capacity_gb : 0;
  const ratio = Number(stats.max_over_subscription_ratio ?? 1) || 1;
  const available = Math.floor(freeGiB * ratio) * GiB;
  return { available_capacity: available, maximum_volume_size: { value: available }, minimum_volume_size: { value: GiB } };
}

/**
 * ControllerExpandVolume: grow the volume to the whole-GiB size the range asks for (nothing to do
 * when it is already that large). The node grows the device and file system afterwards.
 * @throws {@link CsiError} INVALID_ARGUMENT without a capacity range, NOT_FOUND for an unknown volume; Brick errors of the
 *   extend (e.g. INSUFFICIENT_CAPACITY as RESOURCE_EXHAUSTED), mapped by the server's status table
 */
export async function controllerExpand(plugin: Plugin, req: CsiRequest): Promise<Record<string, unknown>> {
  const id = requireString(req, 'volume_id');
  if (!req.capacity_range) throw invalidArgument('capacity_range is required');
  const gib = sizeGiBFor(req.capacity_range as CapacityRange);
  const cap = req.volume_capability as VolumeCapability | null;
  if (cap) checkCapability(cap, 'volume_capability');
  return withOperationLock(plugin, id, async () => {
    const vol = await findVolume(plugin, id);
    if (vol.size < gib) await vol.extend(gib);
    const nodeExpansion = cap?.access_type !== 'block' || vol.connections.length > 0;
    return { capacity_bytes: vol.size * GiB, node_expansion_required: nodeExpansion };
  });
}

/** ControllerGetCapabilities: exactly {@link CONTROLLER_CAPABILITIES}. */
export function controllerCapabilities(): Record<string, unknown> {
  return { capabilities: CONTROLLER_CAPABILITIES.map((type) => ({ rpc: { type } })) };
}
