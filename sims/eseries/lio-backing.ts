/**
 * A real data path for the E-Series simulator: its backing hooks on the shared LIO backing
 * (`sims/common/lio-backing.ts`). Every mapped simulated volume becomes a LUN of one real LIO
 * iSCSI target (the array's target IQN, one network portal per simulated iSCSI port) on a sparse
 * file, visible only to the initiators of the host (or host group) it is mapped to, with the
 * volume's WWN as its serial. Snapshot images keep a sparse copy of the volume's file, and copy
 * jobs copy files, so clones hold the source's data and volumes from snapshots the data as at
 * snapshot time; expansions grow the file and the backstore.
 *
 * Needs root and the kernel's LIO modules; it is used in the lab VM.
 *
 * @module
 */
import { createLioBacking as createSharedLioBacking } from '../common/lio-backing.js';
import type { SimBackingHooks, SimVolume } from './simulator.js';

/** Options of {@link createLioBacking}. */
export interface LioBackingOptions {
  /** Directory for the backing files (created). */
  dir: string;
  /** The array's target IQN (the simulator's `targetIqn`). */
  targetIqn: string;
  /** Network portals `ip:port`, e.g. `['127.0.0.1:3260', '127.0.0.2:3260']`. */
  portals: string[];
  /** configfs target root; default `/sys/kernel/config/target`. */
  configfsRoot?: string;
}

/** The hooks plus teardown. */
export interface LioBacking extends SimBackingHooks {
  /** The backing file of a volume (created on its first mapping or copy). */
  fileOf(volumeRef: string): string | undefined;
  /** Remove the target, every backstore and every file. */
  close(): Promise<void>;
}

/** Create the LIO-backed data path. Nothing is created in configfs until the first mapping. */
export function createLioBacking(options: LioBackingOptions): LioBacking {
  const lio = createSharedLioBacking({
    dir: options.dir,
    targets: [{ iqn: options.targetIqn, portals: options.portals }],
    ...(options.configfsRoot !== undefined ? { configfsRoot: options.configfsRoot } : {}),
  });
  const asLio = (v: SimVolume) => ({ key: v.id, size: v.capacity, serial: v.wwn.toLowerCase() });
  const imageKey = (imageId: string): string => `snap-${imageId}`;

  return {
    fileOf: (ref) => (lio.hasFile(ref) ? lio.fileOf(ref) : undefined),

    onMappingChanged({ volume, lun, initiators }) {
      const want = new Set(initiators.map((i) => i.toLowerCase()));
      for (const [iqn, at] of lio.grants(volume.id)) if (!want.has(iqn) || at !== lun) lio.revoke(volume.id, iqn);
      for (const iqn of want) lio.grant(asLio(volume), iqn, lun);
    },

    onUnmapped({ volume }) {
      lio.revokeAll(volume.id);
    },

    onVolumeDeleted(volume) {
      lio.deleteFile(volume.id);
    },

    onCopyComplete({ sourceVolume, target, sourceImageId }) {
      const image = sourceImageId ? imageKey(sourceImageId) : undefined;
      const src = image && lio.hasFile(image) ? image : sourceVolume.id;
      lio.createFile(target.id, target.capacity);
      if (lio.hasFile(src)) lio.copyFile(src, target.id, target.capacity);
    },

    onSnapshot({ volume, imageId }) {
      if (lio.hasFile(volume.id)) lio.copyFile(volume.id, imageKey(imageId), volume.capacity);
    },

    onSnapshotDeleted(imageId) {
      lio.deleteFile(imageKey(imageId));
    },

    onExtended(volume) {
      lio.resize(volume.id, volume.capacity);
    },

    close: () => lio.close(),
  };
}
