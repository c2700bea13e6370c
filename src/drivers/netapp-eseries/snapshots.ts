/**
 * Snapshots on an E-Series array: snapshot images in per-volume snapshot groups, the
 * soft-delete index the oldest-first rule needs, read-only snapshot views and the volume copy
 * jobs that fill a new volume from a view. Cinder's `NetAppESeriesLibrary` snapshot methods
 * (`_create_es_snapshot_for_clone`, `_get_snapshot_group_for_snapshot`,
 * `_create_snapshot_volume`, `_copy_volume_high_priority_readonly`, `delete_snapshot`).
 *
 * Upstream keeps at most 32 images in a group and 3 groups per volume for snapshots, the 4th
 * group being reserved for clones (label suffix `SGCV`). The array deletes only the oldest
 * image of a group, so a deleted snapshot that is not the oldest is only marked in the
 * persistent record {@link SNAPSHOT_INDEX_KEY} until the older ones go.
 *
 * @module
 */
import { BackendError, InvalidStateError } from '../../errors.js';
import { waitFor } from '../../host/retry.js';
import type { DriverSnapshot } from '../driver.js';
import type { EseriesArray } from './array.js';
import { GIB, isNotFound, type EsImage, type EsSnapshotGroup, type EsView, type EsVolume, type EseriesVolume } from './types.js';
import {
  MAX_SNAPSHOT_COUNT,
  MAX_SNAPSHOT_GROUP_COUNT,
  NULL_REF,
  RESERVED_SNAPSHOT_GROUP_COUNT,
  SNAPSHOT_CLONE_GROUP_SUFFIX,
  compareNumeric,
  randomLabel,
  uuidToLabel,
} from './utils.js';
import { createVolumeOnArray, volumeSpecs } from './volumes.js';

/** Persistent-record key of the snapshot soft-delete index (group id -> deleted image ids). */
export const SNAPSHOT_INDEX_KEY = 'brick-snapshots';

/** Snapshots allowed per volume: 3 groups of 32 images (the 4th group is for clones). */
const SNAPSHOTS_PER_VOLUME = (MAX_SNAPSHOT_GROUP_COUNT - RESERVED_SNAPSHOT_GROUP_COUNT) * MAX_SNAPSHOT_COUNT;

/** A readable view of an image and how to remove it. */
interface View {
  id: string;
  cleanup: () => Promise<void>;
}

/** Snapshot images, views and copies of one array. */
export class Snapshots {
  constructor(private readonly array: EseriesArray) {}

  /** The images of snapshot group `groupId`, oldest first. */
  async imagesOf(groupId: string): Promise<EsImage[]> {
    const all = await this.array.client.get<EsImage[]>('/snapshot-images');
    return all.filter((i) => i.pitGroupRef === groupId).sort((a, b) => compareNumeric(a.pitSequenceNumber, b.pitSequenceNumber));
  }

  /** The snapshot groups whose base volume is `volumeRef`. */
  async groupsOf(volumeRef: string): Promise<EsSnapshotGroup[]> {
    return (await this.array.client.get<EsSnapshotGroup[]>('/snapshot-groups')).filter((g) => g.baseVolume === volumeRef);
  }

  /**
   * Take an image of `vol`: for a snapshot, in the volume's snapshot group with the newest
   * image that still has room; for a clone (`forClone`), in its `…SGCV` group. A group is
   * created when none fits; a group created here is removed again if the image fails.
   * @throws {@link InvalidStateError} when all snapshot slots of the volume are used
   */
  async createImage(vol: EsVolume, forClone: boolean): Promise<EsImage> {
    const groups = await this.groupsOf(vol.volumeRef);
    let group = forClone ? groups.find((g) => g.label.endsWith(SNAPSHOT_CLONE_GROUP_SUFFIX) && !g.consistencyGroup) : await this.groupWithRoom(groups);
    let createdGroup = false;
    if (!group) {
      group = await this.createGroup(vol, groups, forClone);
      createdGroup = true;
    }
    try {
      return await this.array.client.post<EsImage>('/snapshot-images', { groupId: group.id });
    } catch (err) {
      if (createdGroup) await this.array.client.delete(`/snapshot-groups/${group.id}`).catch(() => undefined);
      throw err;
    }
  }

  /** Of the volume's own snapshot groups with room for an image, the one holding the newest image. */
  private async groupWithRoom(groups: EsSnapshotGroup[]): Promise<EsSnapshotGroup | undefined> {
    const candidates = groups.filter((g) => !g.label.includes(SNAPSHOT_CLONE_GROUP_SUFFIX) && !g.consistencyGroup && g.snapshotCount < MAX_SNAPSHOT_COUNT);
    if (candidates.length === 0) return undefined;
    const images = await this.array.client.get<EsImage[]>('/snapshot-images');
    const newest = (g: EsSnapshotGroup): bigint =>
      images.filter((i) => i.pitGroupRef === g.id).reduce((m, i) => (BigInt(i.pitSequenceNumber) > m ? BigInt(i.pitSequenceNumber) : m), -1n);
    candidates.sort((a, b) => (newest(b) > newest(a) ? 1 : newest(b) < newest(a) ? -1 : 0));
    return candidates[0];
  }

  /** A new snapshot group of `vol` (`groups` are its existing ones), within the per-volume limits. */
  private async createGroup(vol: EsVolume, groups: EsSnapshotGroup[], forClone: boolean): Promise<EsSnapshotGroup> {
    const limit = forClone ? MAX_SNAPSHOT_GROUP_COUNT : MAX_SNAPSHOT_GROUP_COUNT - RESERVED_SNAPSHOT_GROUP_COUNT;
    const own = groups.filter((g) => !g.consistencyGroup && (forClone || !g.label.endsWith(SNAPSHOT_CLONE_GROUP_SUFFIX)));
    if (groups.length >= MAX_SNAPSHOT_GROUP_COUNT || own.length >= limit) {
      throw new InvalidStateError(`volume ${vol.label} has no room for another snapshot: at most ${SNAPSHOTS_PER_VOLUME} snapshots per volume`, {
        details: { volume: vol.label, allowed: SNAPSHOTS_PER_VOLUME },
      });
    }
    const label = forClone ? `${randomLabel().slice(0, 26)}${SNAPSHOT_CLONE_GROUP_SUFFIX}` : randomLabel();
    return this.array.client.post<EsSnapshotGroup>('/snapshot-groups', {
      baseMappableObjectId: vol.volumeRef,
      name: label,
      storagePoolId: null,
      repositoryPercentage: 20.0,
      warningThreshold: 99,
      autoDeleteLimit: 0,
      fullPolicy: 'failbasewrites',
    });
  }

  /**
   * The image of a Cinder snapshot: by `provider_id`, else (the legacy layout) the oldest
   * image of a group labelled base32(snapshot.id).
   * @returns the image, or undefined when it is gone
   */
  async findImage(snapshot: DriverSnapshot): Promise<EsImage | undefined> {
    if (snapshot.provider_id) {
      try {
        return await this.array.client.get<EsImage>(`/snapshot-images/${encodeURIComponent(snapshot.provider_id)}`);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    const label = uuidToLabel(snapshot.id, 'snapshot.id');
    const group = (await this.array.client.get<EsSnapshotGroup[]>('/snapshot-groups')).find((g) => g.label === label);
    if (!group) return undefined;
    return (await this.imagesOf(group.id))[0];
  }

  /**
   * Delete an image as far as the oldest-first rule allows: mark it in the index, delete every
   * marked image at the old end of its group, and the group too once it is empty.
   */
  async deleteImage(image: EsImage): Promise<void> {
    const groupRef = image.pitGroupRef;
    await this.array.updateIndex(SNAPSHOT_INDEX_KEY, async (idx) => {
      const images = await this.imagesOf(groupRef);
      const marked = new Set((idx[groupRef] ?? []).filter((id) => images.some((i) => i.id === id)));
      marked.add(image.id);
      const remaining = [...images];
      while (remaining.length > 0 && marked.has(remaining[0]!.id)) {
        const oldest = remaining.shift()!;
        await this.deleteIfPresent(`/snapshot-images/${oldest.id}`);
        marked.delete(oldest.id);
      }
      if (remaining.length === 0) {
        await this.deleteIfPresent(`/snapshot-groups/${groupRef}`);
        delete idx[groupRef];
      } else if (marked.size > 0) idx[groupRef] = [...marked];
      else delete idx[groupRef];
    });
  }

  /** Drop the index entries of snapshot groups that went with their volume. */
  async forgetGroups(groupIds: string[]): Promise<void> {
    if (groupIds.length === 0) return;
    await this.array.updateIndex(SNAPSHOT_INDEX_KEY, (idx) => {
      for (const g of groupIds) delete idx[g];
    });
  }

  private async deleteIfPresent(path: string): Promise<void> {
    await this.array.client.delete(path).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }

  /**
   * A new volume for `volume` (at least as large as the image) filled by a copy job from a
   * read-only view of `image`. The view is always removed, the new volume too if the copy fails.
   * @param preferPool the pool to use when the volume asks for none and it has room
   * @throws {@link RetryExhaustedError} when the copy exceeds `netapp_copy_timeout`
   * @throws {@link BackendError} when the copy job fails or halts
   */
  async copyImageToNewVolume(volume: EseriesVolume, image: EsImage, preferPool?: string): Promise<EsVolume> {
    const { client, log } = this.array;
    const label = uuidToLabel(volume.id);
    const imageGib = image.pitCapacity ? Math.ceil(Number(image.pitCapacity) / GIB) : volume.size;
    const target = await createVolumeOnArray(this.array, volume, label, Math.max(volume.size, imageGib), volumeSpecs(volume), preferPool);
    let view: View | undefined;
    try {
      view = await this.createView(image);
      await this.copyVolume(view.id, target.volumeRef);
      return target;
    } catch (err) {
      await client.delete(`/ssc/volumes/${target.volumeRef}`).catch((e: unknown) => log.warn({ err: (e as Error).message }, 'could not remove the failed copy target'));
      throw err;
    } finally {
      if (view) await view.cleanup().catch((e: unknown) => log.warn({ err: (e as Error).message }, 'could not remove a snapshot view'));
    }
  }

  /** A read-only view of `image`: a snapshot volume, or for a consistency-group image the member of a group view. */
  private async createView(image: EsImage): Promise<View> {
    const { client } = this.array;
    const cg = image.consistencyGroupId && image.consistencyGroupId !== NULL_REF ? image.consistencyGroupId : undefined;
    if (!cg) {
      const v = await client.post<EsView>('/snapshot-volumes', {
        snapshotImageId: image.pitRef,
        fullThreshold: 99,
        storagePoolId: null,
        name: randomLabel(),
        viewMode: 'readOnly',
        repositoryPercentage: 99,
        baseMappableObjectId: image.baseVol,
        repositoryPoolId: null,
      });
      return { id: v.id, cleanup: async () => void (await client.delete(`/snapshot-volumes/${v.id}`)) };
    }
    const cgView = await client.post<{ cgViewRef: string }>(`/consistency-groups/${cg}/views/`, { name: randomLabel(), accessMode: 'readOnly', pitId: image.id });
    const cleanup = async (): Promise<void> => void (await client.delete(`/consistency-groups/${cg}/views/${cgView.cgViewRef}`));
    const members = await client.get<EsView[]>(`/consistency-groups/${cg}/views/${cgView.cgViewRef}/views`);
    const mine = members.find((m) => m.basePIT === image.id);
    if (!mine) {
      await cleanup().catch(() => undefined);
      throw new BackendError(`the consistency-group view of image ${image.id} has no member view for it`);
    }
    return { id: mine.id, cleanup };
  }

  /** Copy `sourceId` onto `targetId` with a volume copy job, reporting progress, bounded by `netapp_copy_timeout`. */
  private async copyVolume(sourceId: string, targetId: string): Promise<void> {
    const { client, config, ctx } = this.array;
    const job = await client.post<{ volcopyRef: string }>('/volume-copy-jobs', { sourceId, targetId, copyPriority: 'priority4', targetWriteProtected: 'true' });
    try {
      const status = await waitFor(async () => {
        const j = await client.get<{ status: string; percentComplete?: number }>(`/volume-copy-jobs/${job.volcopyRef}`);
        if (j.percentComplete !== undefined) ctx.onProgress?.('volume copy', j.percentComplete, 100);
        return ['inProgress', 'pending', 'unknown'].includes(j.status) ? undefined : j.status;
      }, this.array.pollOptions(config.copyTimeoutMs, `volume copy job ${job.volcopyRef}`));
      if (status === 'failed' || status === 'halted') {
        throw new BackendError(`volume copy job ${job.volcopyRef} ended with status ${status}`, { details: { status } });
      }
    } finally {
      await client.delete(`/volume-copy-jobs/${job.volcopyRef}`).catch(() => undefined);
    }
  }
}
