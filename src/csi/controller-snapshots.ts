/**
 * The CSI Controller service, snapshot half: CreateSnapshot, DeleteSnapshot and ListSnapshots,
 * over Brick snapshots (the CSI name kept as the snapshot's name).
 *
 * @module
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Snapshot } from '../library/snapshot.js';
import { paginate } from './pagination.js';
import { allVolumes, findSnapshotOrNone, findVolume, findVolumeOrNone, withOperationLock, type Plugin } from './plugin.js';
import { CsiError, invalidArgument } from './status.js';
import type { CsiRequest, CsiSnapshot } from './types.js';
import { GiB, SIDECAR_PREFIX, requireString } from './validate.js';

/** A Brick snapshot as a CSI `Snapshot` (size in bytes, ready once `available`). */
export function csiSnapshot(snap: Snapshot): CsiSnapshot {
  const ms = Date.parse(snap.createdAt);
  return {
    snapshot_id: snap.id,
    source_volume_id: snap.volumeId,
    size_bytes: snap.volumeSize * GiB,
    creation_time: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 },
    ready_to_use: snap.status === 'available',
  };
}

/**
 * CreateSnapshot: a new snapshot of the source volume, or the one made earlier under the same
 * name from the same volume (another source is ALREADY_EXISTS).
 * @throws {@link CsiError} INVALID_ARGUMENT for a parameter this plugin does not take, ALREADY_EXISTS for the name taken by a
 *   snapshot of another volume; Brick errors of the snapshot itself, mapped by the server's status table
 */
export async function createSnapshot(plugin: Plugin, req: CsiRequest): Promise<{ snapshot: CsiSnapshot }> {
  const name = requireString(req, 'name');
  const sourceId = requireString(req, 'source_volume_id');
  for (const key of Object.keys((req.parameters as Record<string, string> | null) ?? {})) {
    if (!key.startsWith(SIDECAR_PREFIX)) throw invalidArgument(`parameters.${key} is not a snapshot parameter of this plugin (it takes none)`);
  }
  return withOperationLock(plugin, `snapshot-name-${name}`, async () => {
    const [existing] = await plugin.rt.store.getSnapshots({ name });
    if (existing) {
      if (existing.volume_id !== sourceId) throw new CsiError(GrpcStatus.ALREADY_EXISTS, `a snapshot named ${JSON.stringify(name)} exists of another volume`);
      const snap = await findSnapshotOrNone(plugin, existing.id);
      if (snap) return { snapshot: csiSnapshot(snap) };
    }
    const vol = await findVolume(plugin, sourceId);
    return { snapshot: csiSnapshot(await vol.createSnapshot({ name })) };
  });
}

/** DeleteSnapshot: idempotent; a snapshot that is not there is deleted. */
export async function deleteSnapshot(plugin: Plugin, req: CsiRequest): Promise<Record<string, never>> {
  const id = requireString(req, 'snapshot_id');
  return withOperationLock(plugin, id, async () => {
    const snap = await findSnapshotOrNone(plugin, id);
    await snap?.delete();
    return {};
  });
}

/** ListSnapshots: every snapshot, or those of `snapshot_id` / `source_volume_id`, paged (see `pagination.ts`). */
export async function listSnapshots(plugin: Plugin, req: CsiRequest): Promise<Record<string, unknown>> {
  const snapshotId = typeof req.snapshot_id === 'string' ? req.snapshot_id : '';
  const sourceId = typeof req.source_volume_id === 'string' ? req.source_volume_id : '';
  let snaps: Snapshot[];
  if (snapshotId !== '') {
    const one = await findSnapshotOrNone(plugin, snapshotId);
    snaps = one && (sourceId === '' || one.volumeId === sourceId) ? [one] : [];
  } else if (sourceId !== '') {
    const vol = await findVolumeOrNone(plugin, sourceId);
    snaps = vol ? [...(await vol.refresh()).snapshots] : [];
  } else {
    snaps = (await allVolumes(plugin)).flatMap((v) => v.snapshots);
  }
  const page = paginate(snaps, (s) => ({ createdAt: s.createdAt, id: s.id }), String(req.starting_token ?? ''), Number(req.max_entries ?? 0));
  return { entries: page.entries.map((s) => ({ snapshot: csiSnapshot(s) })), next_token: page.nextToken };
}
