/**
 * The one real data path behind the storage simulators (lab only): each simulated volume is a
 * sparse file, and a volume mapped to a host becomes a LUN of real LIO iSCSI targets, visible
 * only to the initiators it is granted to, at the LUN the simulated array chose for them. The
 * E-Series simulator (one target, the array's IQN) and the FlashSystem simulator (one target
 * per node) adapt their backing hooks onto it (`sims/eseries/lio-backing.ts`,
 * `sims/flashsystem/lio-backing.ts`).
 *
 * Layout in configfs (`/sys/kernel/config/target`), the same as the lab's LIO fixture: a fileio
 * backstore per exported volume (`core/fileio_N/<name>`, serial chosen by the simulator), a LUN
 * of every target's `tpgt_1` linked to it, and per initiator an ACL whose `lun_<L>` links to
 * that LUN, so the initiator sees the volume at LUN L. The backstore and the target LUNs exist
 * while at least one initiator is granted; the targets appear with the first grant.
 *
 * Needs root and the LIO modules (`target_core_mod`, `iscsi_target_mod`, `target_core_file`).
 *
 * @module
 */
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** One LIO target: an IQN listening on some portals. */
export interface LioTargetSpec {
  /** Target IQN (the array's, or a node's `iscsi_name`). */
  iqn: string;
  /** Network portals `ip:port`, e.g. `['127.0.0.1:3260']`. */
  portals: string[];
}

/** Options of {@link createLioBacking}. */
export interface LioBackingOptions {
  /** Directory of the volume files (created; removed by `close`). */
  dir: string;
  targets: LioTargetSpec[];
  /** configfs target root; default `/sys/kernel/config/target`. */
  configfsRoot?: string;
}

/** What a grant needs to create the backstore the first time. */
export interface LioVolume {
  /** File and backstore key (a file `<dir>/<key>.img`). */
  key: string;
  /** Size in bytes. */
  size: number;
  /** The backstore's `vpd_unit_serial` (LIO derives the NAA WWN from its leading hex digits). */
  serial: string;
}

/** Files and exports of simulated volumes, keyed by a simulator-chosen name. */
export interface LioBacking {
  /** The file of `key` (it may not exist yet). */
  fileOf(key: string): string;
  /** Whether the file of `key` exists. */
  hasFile(key: string): boolean;
  /** Create the file of `key` as a sparse file of `size` bytes (an existing file is kept unless `replace`). */
  createFile(key: string, size: number, replace?: boolean): string;
  /** Copy the file of `fromKey` onto `toKey`'s (holes kept: `cp --sparse=always`) and size it to `size`. */
  copyFile(fromKey: string, toKey: string, size: number): void;
  /** Resize the file of `key`, and its backstore when exported. */
  resize(key: string, size: number): void;
  /** Revoke every grant of `key` and remove its file. */
  deleteFile(key: string): void;
  /** Whether `key` is exported (granted to at least one initiator). */
  isExported(key: string): boolean;
  /** The LUN per initiator of `key`. */
  grants(key: string): ReadonlyMap<string, number>;
  /** Let `initiator` see `volume` at `lun` on every target (exporting it first when needed; a grant at another LUN moves). */
  grant(volume: LioVolume, initiator: string, lun: number): void;
  /** Take `key` away from `initiator`; the export goes with the last grant. */
  revoke(key: string, initiator: string): void;
  /** Take `key` away from every initiator. */
  revokeAll(key: string): void;
  /** Remove every target, backstore and file. */
  close(): Promise<void>;
}

function put(path: string, value: string | number): void {
  fs.writeFileSync(path, `${value}\n`);
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

function lowestFree(used: Iterable<number>, from: number): number {
  const set = new Set(used);
  let n = from;
  while (set.has(n)) n++;
  return n;
}

/** One exported volume: its backstore, its LUN index on the targets, and the initiators' LUNs. */
interface Exported {
  so: string;
  tpgLun: number;
  initiators: Map<string, number>;
}

/** Create the data path. Nothing appears in configfs until the first grant. */
export function createLioBacking(options: LioBackingOptions): LioBacking {
  const root = options.configfsRoot ?? '/sys/kernel/config/target';
  fs.mkdirSync(options.dir, { recursive: true });
  const fileOf = (key: string): string => join(options.dir, `${key}.img`);
  const tpgOf = (t: LioTargetSpec): string => join(root, 'iscsi', t.iqn, 'tpgt_1');
  const exported = new Map<string, Exported>();
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

  const freeHba = (): string => {
    const core = join(root, 'core');
    const used = fs.existsSync(core) ? fs.readdirSync(core).filter((d) => d.startsWith('fileio_')).map((d) => Number(d.slice(7))) : [];
    return join(core, `fileio_${lowestFree(used, 400)}`);
  };

  const exportVolume = (v: LioVolume): Exported => {
    const have = exported.get(v.key);
    if (have) return have;
    const file = createFile(v.key, v.size);
    const so = join(freeHba(), `sim_${v.key.replace(/[^A-Za-z0-9_-]/g, '_').slice(-24)}`);
    fs.mkdirSync(so, { recursive: true });
    put(join(so, 'control'), `fd_dev_name=${file},fd_dev_size=${v.size}`);
    put(join(so, 'enable'), 1);
    put(join(so, 'wwn', 'vpd_unit_serial'), v.serial);
    const tpgLun = lowestFree([...exported.values()].map((e) => e.tpgLun), 0);
    for (const t of options.targets) {
      const lun = join(tpgOf(t), 'lun', `lun_${tpgLun}`);
      fs.mkdirSync(lun);
      fs.symlinkSync(so, join(lun, 'bs'));
    }
    const e: Exported = { so, tpgLun, initiators: new Map() };
    exported.set(v.key, e);
    return e;
  };

  const unexport = (key: string): void => {
    const e = exported.get(key);
    if (!e) return;
    for (const t of options.targets) {
      const lun = join(tpgOf(t), 'lun', `lun_${e.tpgLun}`);
      unlinkQuiet(join(lun, 'bs'));
      rmdirQuiet(lun);
    }
    rmdirQuiet(e.so);
    rmdirQuiet(join(e.so, '..'));
    exported.delete(key);
  };

  const removeAcl = (initiator: string, lun: number): void => {
    for (const t of options.targets) {
      const acl = join(tpgOf(t), 'acls', initiator);
      unlinkQuiet(join(acl, `lun_${lun}`, 'map'));
      rmdirQuiet(join(acl, `lun_${lun}`));
      if (fs.existsSync(acl) && !fs.readdirSync(acl).some((d) => d.startsWith('lun_'))) rmdirQuiet(acl);
    }
  };

  const revoke = (key: string, initiator: string): void => {
    const e = exported.get(key);
    const lun = e?.initiators.get(initiator.toLowerCase());
    if (!e || lun === undefined) return;
    removeAcl(initiator.toLowerCase(), lun);
    e.initiators.delete(initiator.toLowerCase());
    if (e.initiators.size === 0) unexport(key);
  };

  const revokeAll = (key: string): void => {
    for (const initiator of [...(exported.get(key)?.initiators.keys() ?? [])]) revoke(key, initiator);
    unexport(key);
  };

  function createFile(key: string, size: number, replace = false): string {
    const file = fileOf(key);
    if (replace || !fs.existsSync(file)) {
      fs.writeFileSync(file, '');
      fs.truncateSync(file, size);
    }
    return file;
  }

  const closeTargets = (): void => {
    for (const t of options.targets) {
      const tpg = tpgOf(t);
      if (fs.existsSync(tpg)) {
        try {
          put(join(tpg, 'enable'), 0);
        } catch {
          /* never enabled */
        }
        for (const a of fs.existsSync(join(tpg, 'acls')) ? fs.readdirSync(join(tpg, 'acls')) : []) rmdirQuiet(join(tpg, 'acls', a));
        for (const np of fs.existsSync(join(tpg, 'np')) ? fs.readdirSync(join(tpg, 'np')) : []) rmdirQuiet(join(tpg, 'np', np));
        rmdirQuiet(tpg);
      }
      rmdirQuiet(join(root, 'iscsi', t.iqn));
    }
    targetsUp = false;
  };

  return {
    fileOf,
    hasFile: (key) => fs.existsSync(fileOf(key)),
    createFile,

    copyFile(fromKey, toKey, size) {
      const dst = fileOf(toKey);
      unlinkQuiet(dst);
      // cp seeks over the holes of a sparse file: a 1 GiB volume with a few written blocks copies
      // in milliseconds, where reading it through would take minutes under emulation.
      execFileSync('cp', ['--sparse=always', fileOf(fromKey), dst], { timeout: 120_000 });
      fs.truncateSync(dst, size);
    },

    resize(key, size) {
      if (fs.existsSync(fileOf(key))) fs.truncateSync(fileOf(key), size);
      const e = exported.get(key);
      if (e) put(join(e.so, 'control'), `fd_dev_size=${size}`);
    },

    deleteFile(key) {
      revokeAll(key);
      unlinkQuiet(fileOf(key));
    },

    isExported: (key) => exported.has(key),
    grants: (key) => new Map(exported.get(key)?.initiators ?? []),

    grant(volume, initiator, lun) {
      const iqn = initiator.toLowerCase();
      const had = exported.get(volume.key)?.initiators.get(iqn);
      if (had === lun) return;
      if (had !== undefined) revoke(volume.key, iqn);
      ensureTargets();
      const e = exportVolume(volume);
      for (const t of options.targets) {
        const dir = join(tpgOf(t), 'acls', iqn, `lun_${lun}`);
        fs.mkdirSync(dir, { recursive: true });
        fs.symlinkSync(join(tpgOf(t), 'lun', `lun_${e.tpgLun}`), join(dir, 'map'));
      }
      e.initiators.set(iqn, lun);
    },

    revoke,
    revokeAll,

    async close() {
      for (const key of [...exported.keys()]) revokeAll(key);
      if (targetsUp) closeTargets();
      fs.rmSync(options.dir, { recursive: true, force: true });
    },
  };
}
