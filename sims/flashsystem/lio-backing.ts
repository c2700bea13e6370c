/**
 * A real data path for the FlashSystem simulator (lab only): each vdisk is a sparse file; a
 * vdisk mapped to a host becomes a LUN of a real LIO iSCSI target, one target per simulated
 * node (the node's `iscsi_name`, listening on that node's iSCSI portals), visible to the host's
 * IQNs at the host's SCSI id. As on the array, the SCSI id is per host: the target's own LUN
 * index is the vdisk id, and each initiator ACL maps it at the host's SCSI id. FlashCopy start
 * copies the file (sparse), so snapshots and clones hold the source's data.
 *
 * Needs root and the LIO modules (`target_core_mod`, `iscsi_target_mod`, `target_core_file`);
 * it writes configfs (`/sys/kernel/config/target`) directly.
 *
 * @module
 */
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { SimHost, SimVdisk, SimulatorBackingStore } from './state.js';

/** One LIO target standing for a node. */
export interface LioNodeTarget {
  /** The node's `iscsi_name`. */
  iqn: string;
  /** `ip:port` portals of the node. */
  portals: string[];
}

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

function put(path: string, value: string | number): void {
  fs.writeFileSync(path, String(value));
}

function rmdirQuiet(path: string): void {
  try {
    fs.rmdirSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

function unlinkQuiet(path: string): void {
  try {
    fs.unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Create the data path. configfs objects appear with the first mapping. */
export function createFlashSystemLioBacking(options: FlashSystemLioBackingOptions): FlashSystemLioBacking {
  const root = options.configfsRoot ?? '/sys/kernel/config/target';
  fs.mkdirSync(options.dir, { recursive: true });
  const fileOf = (id: number): string => join(options.dir, `vdisk-${id}.img`);
  const tpgOf = (t: LioNodeTarget): string => join(root, 'iscsi', t.iqn, 'tpgt_1');
  const backstores = new Map<number, string>();
  /** vdisk id -> (initiator IQN -> SCSI id). */
  const exported = new Map<number, Map<string, number>>();
  let targetsUp = false;

  const ensureTargets = (): void => {
    if (targetsUp) return;
    for (const t of options.targets) {
      const tpg = tpgOf(t);
      fs.mkdirSync(tpg, { recursive: true });
      for (const p of t.portals) if (!fs.existsSync(join(tpg, 'np', p))) fs.mkdirSync(join(tpg, 'np', p));
      put(join(tpg, 'attrib', 'authentication'), 0);
      put(join(tpg, 'attrib', 'generate_node_acls'), 0);
      put(join(tpg, 'enable'), 1);
    }
    targetsUp = true;
  };

  const ensureBackstore = (v: SimVdisk): string => {
    const have = backstores.get(v.id);
    if (have) return have;
    const so = join(root, 'core', `fileio_${700 + v.id}`, `fs_vdisk_${v.id}`);
    fs.mkdirSync(so, { recursive: true });
    put(join(so, 'control'), `fd_dev_name=${fileOf(v.id)},fd_dev_size=${v.capacity}`);
    put(join(so, 'enable'), 1);
    // LIO derives the NAA WWN from the serial's leading hex digits: make them unique.
    put(join(so, 'wwn', 'vpd_unit_serial'), randomBytes(16).toString('hex'));
    backstores.set(v.id, so);
    for (const t of options.targets) {
      const lun = join(tpgOf(t), 'lun', `lun_${v.id}`);
      fs.mkdirSync(lun);
      fs.symlinkSync(so, join(lun, 'bs'));
    }
    return so;
  };

  const dropBackstore = (id: number): void => {
    const so = backstores.get(id);
    if (!so) return;
    for (const t of options.targets) {
      const lun = join(tpgOf(t), 'lun', `lun_${id}`);
      unlinkQuiet(join(lun, 'bs'));
      rmdirQuiet(lun);
    }
    rmdirQuiet(so);
    rmdirQuiet(join(so, '..'));
    backstores.delete(id);
  };

  const removeAcl = (vdiskId: number, iqn: string, scsiId: number): void => {
    for (const t of options.targets) {
      const acl = join(tpgOf(t), 'acls', iqn);
      unlinkQuiet(join(acl, `lun_${scsiId}`, `vdisk_${vdiskId}`));
      rmdirQuiet(join(acl, `lun_${scsiId}`));
      if (fs.existsSync(acl) && !fs.readdirSync(acl).some((e) => e.startsWith('lun_'))) rmdirQuiet(acl);
    }
  };

  return {
    fileOf,

    createVdisk(v: SimVdisk) {
      fs.writeFileSync(fileOf(v.id), '');
      fs.truncateSync(fileOf(v.id), v.capacity);
    },

    resizeVdisk(v: SimVdisk, newCapacity: number) {
      if (backstores.has(v.id)) throw new Error('the lab backing cannot resize a mapped vdisk');
      fs.truncateSync(fileOf(v.id), newCapacity);
    },

    copyVdisk(source: SimVdisk, target: SimVdisk) {
      execFileSync('cp', ['--sparse=always', fileOf(source.id), fileOf(target.id)], { timeout: 120_000 });
      fs.truncateSync(fileOf(target.id), target.capacity);
    },

    mapVdisk(v: SimVdisk, host: SimHost, scsiId: number) {
      ensureTargets();
      ensureBackstore(v);
      const m = exported.get(v.id) ?? new Map<string, number>();
      exported.set(v.id, m);
      for (const iqn of host.iscsiNames.map((q) => q.toLowerCase())) {
        for (const t of options.targets) {
          const dir = join(tpgOf(t), 'acls', iqn, `lun_${scsiId}`);
          fs.mkdirSync(dir, { recursive: true });
          fs.symlinkSync(join(tpgOf(t), 'lun', `lun_${v.id}`), join(dir, `vdisk_${v.id}`));
        }
        m.set(iqn, scsiId);
      }
    },

    unmapVdisk(v: SimVdisk, host: SimHost, scsiId: number) {
      const m = exported.get(v.id);
      for (const iqn of host.iscsiNames.map((q) => q.toLowerCase())) {
        removeAcl(v.id, iqn, scsiId);
        m?.delete(iqn);
      }
      if (m && m.size === 0) {
        exported.delete(v.id);
        dropBackstore(v.id);
      }
    },

    deleteVdisk(v: SimVdisk) {
      const m = exported.get(v.id);
      if (m) for (const [iqn, scsi] of m) removeAcl(v.id, iqn, scsi);
      exported.delete(v.id);
      dropBackstore(v.id);
      unlinkQuiet(fileOf(v.id));
    },

    async close() {
      for (const [id, m] of [...exported]) {
        for (const [iqn, scsi] of m) removeAcl(id, iqn, scsi);
      }
      exported.clear();
      for (const id of [...backstores.keys()]) dropBackstore(id);
      if (targetsUp) {
        for (const t of options.targets) {
          const tpg = tpgOf(t);
          try {
            put(join(tpg, 'enable'), 0);
          } catch {
            /* already gone */
          }
          for (const a of fs.existsSync(join(tpg, 'acls')) ? fs.readdirSync(join(tpg, 'acls')) : []) rmdirQuiet(join(tpg, 'acls', a));
          for (const np of fs.existsSync(join(tpg, 'np')) ? fs.readdirSync(join(tpg, 'np')) : []) rmdirQuiet(join(tpg, 'np', np));
          rmdirQuiet(tpg);
          rmdirQuiet(join(root, 'iscsi', t.iqn));
        }
        targetsUp = false;
      }
      fs.rmSync(options.dir, { recursive: true, force: true });
    },
  };
}
