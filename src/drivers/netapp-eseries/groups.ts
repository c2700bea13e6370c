/**
 * Cinder generic volume groups on an E-Series array, backed by consistency groups: members,
 * consistency-group snapshots (one image per member, sharing a sequence number) and groups
 * created from a group snapshot or another group. Cinder's `NetAppESeriesLibrary` group
 * methods (`create_group`, `update_group`, `create_group_snapshot`, `delete_group_snapshot`,
 * `create_group_from_src`, `delete_group`).
 *
 * The array deletes only the oldest consistency-group snapshot, so a deleted one that is not
 * the oldest is marked in the persistent record {@link CG_SNAPSHOT_INDEX_KEY} until the older
 * ones go.
 *
 * @module
 */
import { BackendError, InvalidInputError, NotFoundError } from '../../errors.js';
import type { DriverSnapshot, DriverVolume, ModelUpdate } from '../driver.js';
import type { EseriesArray } from './array.js';
import type { Snapshots } from './snapshots.js';
import { isNotFound, type DriverGroup, type DriverGroupSnapshot, type EsCg, type EsImage, type EsVolume, type EseriesVolume, type ObjectUpdate } from './types.js';
import { compareNumeric, uuidToLabel } from './utils.js';

/** Persistent-record key of the consistency-group snapshot soft-delete index (CG id -> deleted sequence numbers). */
export const CG_SNAPSHOT_INDEX_KEY = 'brick-cg-snapshots';

/** The driver's volume operations a group operation is made of (the driver itself). */
export interface GroupVolumeOps {
  createVolumeFromSnapshot(volume: EseriesVolume, snapshot: DriverSnapshot): Promise<ModelUpdate>;
  createClonedVolume(volume: EseriesVolume, source: DriverVolume): Promise<ModelUpdate>;
  deleteVolume(volume: DriverVolume): Promise<void>;
}

/** The sources of {@link ConsistencyGroups.createFromSrc}: a group snapshot's snapshots or a group's volumes. */
export interface GroupSource {
  snapshots?: DriverSnapshot[];
  sourceVolumes?: DriverVolume[];
}

/** Consistency groups of one array. */
export class ConsistencyGroups {
  constructor(
    private readonly array: EseriesArray,
    private readonly snapshots: Snapshots,
    private readonly volumes: GroupVolumeOps,
  ) {}

  /**
   * The consistency group of Cinder group `groupId` (labelled base32 of the id).
   * @throws {@link NotFoundError} (`consistency group`) when the array has none
   */
  async findCg(groupId: string): Promise<EsCg> {
    const label = uuidToLabel(groupId, 'group.id');
    const cg = (await this.array.client.get<EsCg[]>('/consistency-groups')).find((c) => c.label === label);
    if (!cg) throw new NotFoundError('consistency group', groupId, { details: { label } });
    return cg;
  }

  /** Make `vol` a member of the consistency group of Cinder group `groupId` (20 % repository). */
  async addMember(groupId: string, vol: EsVolume): Promise<void> {
    const cg = await this.findCg(groupId);
    await this.array.client.post(`/consistency-groups/${cg.id}/member-volumes`, { volumeId: vol.volumeRef, repositoryPercent: 20.0 });
  }

  /** Cinder `create_group`: an E-Series consistency group labelled base32(group.id). */
  async create(group: DriverGroup): Promise<{ status: string }> {
    await this.array.client.post('/consistency-groups', {
      name: uuidToLabel(group.id, 'group.id'),
      fullWarnThresholdPercent: 75,
      repositoryFullPolicy: 'failbasewrites',
      autoDeleteThreshold: 0,
      rollbackPriority: 'medium',
    });
    return { status: 'available' };
  }

  /** Cinder `delete_group`: delete the member volumes, then the consistency group (a missing group is fine). */
  async delete(group: DriverGroup, volumes: DriverVolume[]): Promise<{ modelUpdate: { status: string }; volumesModelUpdate: ObjectUpdate[] }> {
    const updates: ObjectUpdate[] = [];
    let failed = false;
    for (const v of volumes) {
      try {
        await this.volumes.deleteVolume(v);
        updates.push({ id: v.id, status: 'deleted' });
      } catch (err) {
        failed = true;
        this.array.log.warn({ volume_id: v.id, err: (err as Error).message }, 'could not delete a group member');
        updates.push({ id: v.id, status: 'error_deleting' });
      }
    }
    try {
      const cg = await this.findCg(group.id);
      await this.array.client.delete(`/consistency-groups/${cg.id}`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return { modelUpdate: { status: failed ? 'error_deleting' : 'deleted' }, volumesModelUpdate: updates };
  }

  /** Cinder `update_group`: add and remove consistency-group members (a member already gone is fine). */
  async update(group: DriverGroup, addVolumes: DriverVolume[], removeVolumes: DriverVolume[]): Promise<void> {
    const { client } = this.array;
    const cg = await this.findCg(group.id);
    for (const v of addVolumes) {
      const ev = await this.array.findVolume(v);
      await client.post(`/consistency-groups/${cg.id}/member-volumes`, { volumeId: ev.volumeRef, repositoryPercent: 20.0 });
    }
    for (const v of removeVolumes) {
      const ev = await this.array.findVolume(v);
      await client.delete(`/consistency-groups/${cg.id}/member-volumes/${ev.volumeRef}`).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
  }

  /**
   * Cinder `create_group_snapshot`: one consistency-group snapshot; each member snapshot gets its image as `provider_id`.
   * @throws {@link BackendError} when a snapshot's volume has no image (it is not a member)
   */
  async createSnapshot(groupSnapshot: DriverGroupSnapshot, snapshots: DriverSnapshot[]): Promise<ObjectUpdate[]> {
    const cg = await this.findCg(groupSnapshot.group_id);
    const images = await this.array.client.post<EsImage[]>(`/consistency-groups/${cg.id}/snapshots`, undefined);
    const updates: ObjectUpdate[] = [];
    for (const s of snapshots) {
      const vol = await this.array.findVolume({ ...s.volume, id: s.volume_id }, 'snapshot.volume_id');
      const img = images.find((i) => i.baseVol === vol.volumeRef);
      if (!img) throw new BackendError(`the consistency-group snapshot has no image of volume ${s.volume_id}; is it a member of the group?`);
      updates.push({ id: s.id, status: 'available', provider_id: img.id });
    }
    return updates;
  }

  /**
   * Cinder `delete_group_snapshot`: mark the snapshots' sequence number in
   * {@link CG_SNAPSHOT_INDEX_KEY} and delete the marked ones at the old end. A group that is
   * gone has nothing left to delete.
   */
  async deleteSnapshot(groupSnapshot: DriverGroupSnapshot, snapshots: DriverSnapshot[]): Promise<void> {
    let cg: EsCg;
    try {
      cg = await this.findCg(groupSnapshot.group_id);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      return;
    }
    const seqs = new Set<string>();
    for (const s of snapshots) {
      const img = await this.snapshots.findImage(s);
      if (img) seqs.add(img.pitSequenceNumber);
    }
    await this.array.updateIndex(CG_SNAPSHOT_INDEX_KEY, async (idx) => {
      const all = await this.array.client.get<EsImage[]>(`/consistency-groups/${cg.id}/snapshots`);
      const existing = [...new Set(all.map((i) => i.pitSequenceNumber))].sort(compareNumeric);
      const marked = new Set((idx[cg.id] ?? []).filter((q) => existing.includes(q)));
      for (const q of seqs) marked.add(q);
      while (existing.length > 0 && marked.has(existing[0]!)) {
        const q = existing.shift()!;
        await this.array.client.delete(`/consistency-groups/${cg.id}/snapshots/${q}`);
        marked.delete(q);
      }
      if (marked.size > 0) idx[cg.id] = [...marked];
      else delete idx[cg.id];
    });
  }

  /**
   * Cinder `create_group_from_src`: a new consistency group whose volumes are copies of a group
   * snapshot's snapshots or of a source group's volumes. Volumes are paired with their source
   * by `snapshot_id` / `source_volid`, else by position. On failure the volumes made so far and
   * the group are removed.
   * @throws {@link InvalidInputError} (`source`, `volumes[i].snapshot_id`, `volumes[i].source_volid`) for missing sources
   */
  async createFromSrc(group: DriverGroup, volumes: EseriesVolume[], source: GroupSource): Promise<(ObjectUpdate & ModelUpdate)[]> {
    const snaps = source.snapshots ?? [];
    const srcVols = source.sourceVolumes ?? [];
    if (snaps.length === 0 && srcVols.length === 0) throw new InvalidInputError('source', 'needs the group snapshot\'s snapshots or the source group\'s volumes');
    await this.create(group);
    const updates: (ObjectUpdate & ModelUpdate)[] = [];
    const made: DriverVolume[] = [];
    try {
      for (const [i, v] of volumes.entries()) {
        const update = await this.copySource(v, i, snaps, srcVols);
        made.push(v);
        updates.push({ id: v.id, status: 'available', ...update });
      }
      await this.update(group, made, []);
    } catch (err) {
      for (const v of made) await this.volumes.deleteVolume(v).catch(() => undefined);
      await this.delete(group, []).catch(() => undefined);
      throw err;
    }
    return updates;
  }

  /** Create volume `v` (position `i`) as a copy of its snapshot, or else of its source volume, outside any group. */
  private async copySource(v: EseriesVolume, i: number, snaps: DriverSnapshot[], srcVols: DriverVolume[]): Promise<ModelUpdate> {
    const plain: EseriesVolume = { ...v, group_id: null };
    if (snaps.length > 0) {
      const snap = snaps.find((s) => s.id === v.snapshot_id) ?? snaps[i];
      if (!snap) throw new InvalidInputError(`volumes[${i}].snapshot_id`, 'no matching snapshot in the group snapshot');
      return this.volumes.createVolumeFromSnapshot(plain, snap);
    }
    const src = srcVols.find((s) => s.id === v.source_volid) ?? srcVols[i];
    if (!src) throw new InvalidInputError(`volumes[${i}].source_volid`, 'no matching volume in the source group');
    return this.volumes.createClonedVolume(plain, src);
  }
}
