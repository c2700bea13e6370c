/**
 * A real data path for the FlashSystem simulator (lab only): its backing store on the shared LIO
 * backing (`sims/common/lio-backing.ts`). Each vdisk is a sparse file; a vdisk mapped to a host
 * becomes a LUN of real LIO iSCSI targets, one per simulated node (the node's `iscsi_name`,
 * listening on that node's portals), visible to the host's IQNs at the host's SCSI id (as on the
 * array, SCSI ids are per host). FlashCopy start copies the file (sparse), so snapshots and
 * clones hold the source's data.
 *
 * Needs root and the LIO modules (`target_core_mod`, `iscsi_target_mod`, `target_core_file`).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { createLioBacking, type LioTargetSpec } from '../common/lio-backing.js';
import type { SimHost, SimVdisk, SimulatorBackingStore } from './state.js';

/** One LIO target standing for a node. */
export type LioNodeTarget = LioTargetSpec;

/** Options of {@link createFlashSystemLioBacking}. */
export interface FlashSystemLioBackingOptions {
  /** Directory for the vdisk files (created; removed by `close`). */
  dir: string;
  targets: LioNodeTarget[];
  /** configfs target root; default `/sys/kernel/config/target`. */
  configfsRoot?: string;
}

/** The hooks plus helpers and teardown. */
export interface FlashSystemLioBacking extends SimulatorBackingStore {
  /** The file holding a vdisk's data. */
  fileOf(vdiskId: number): string;
  /** Remove every target, backstore and file. */
  close(): Promise<void>;
}

/** Create the data path. configfs objects appear with the first mapping. */
export function createFlashSystemLioBacking(options: FlashSystemLioBackingOptions): FlashSystemLioBacking {
  const lio = createLioBacking(options);
  const key = (id: number): string => `vdisk-${id}`;

  return {
    fileOf: (id) => lio.fileOf(key(id)),

    createVdisk(v: SimVdisk) {
      lio.createFile(key(v.id), v.capacity, true);
    },

    resizeVdisk(v: SimVdisk, newCapacity: number) {
      if (lio.isExported(key(v.id))) throw new Error('the lab backing cannot resize a mapped vdisk');
      lio.resize(key(v.id), newCapacity);
    },

    copyVdisk(source: SimVdisk, target: SimVdisk) {
      lio.copyFile(key(source.id), key(target.id), target.capacity);
    },

    mapVdisk(v: SimVdisk, host: SimHost, scsiId: number) {
      // LIO derives the NAA WWN from the serial's leading hex digits: make them unique.
      const volume = { key: key(v.id), size: v.capacity, serial: randomBytes(16).toString('hex') };
      for (const iqn of host.iscsiNames) lio.grant(volume, iqn, scsiId);
    },

    unmapVdisk(v: SimVdisk, host: SimHost) {
      for (const iqn of host.iscsiNames) lio.revoke(key(v.id), iqn);
    },

    deleteVdisk(v: SimVdisk) {
      lio.deleteFile(key(v.id));
    },

    close: () => lio.close(),
  };
}
