/**
 * A real data path for the E-Series simulator: every mapped simulated volume becomes a LUN of
 * one real LIO iSCSI target (the array's target IQN, one network portal per simulated iSCSI
 * port) on a sparse file backstore, visible only to the initiators of the host (or host group)
 * it is mapped to. Snapshot images keep a sparse copy of the volume's file, and copy jobs copy
 * files, so clones hold the source's data and volumes from snapshots the data as at snapshot
 * time; expansions grow the file and the backstore.
 *
 * Needs root and the kernel's LIO modules (`target_core_mod`, `iscsi_target_mod`,
 * `target_core_file`) loaded; it is used in the lab VM. It writes configfs
 * (`/sys/kernel/config/target`) directly, the same layout as the lab's LIO fixture.
 *
 * @module
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
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

function write(path: string, value: string | number): void {
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

/**
 * Copy `src` to `dst` and size it to `size`, keeping holes: `cp --sparse=always` seeks over the
 * holes of a sparse file (a 1 GiB volume with a few written blocks copies in milliseconds,
 * where reading it through would take minutes under emulation).
 */
function sparseCopy(src: string, dst: string, size: number): void {
  unlinkQuiet(dst);
  execFileSync('cp', ['--sparse=always', src, dst], { timeout: 120_000 });
  fs.truncateSync(dst, size);
}

/** Create the LIO-backed data path. Nothing is created in configfs until the first mapping. */
export function createLioBacking(options: LioBackingOptions): LioBacking {
  const root = options.configfsRoot ?? '/sys/kernel/config/target';
  const targetDir = join(root, 'iscsi', options.targetIqn);
  const tpg = join(targetDir, 'tpgt_1');
  fs.mkdirSync(options.dir, { recursive: true });
  const backstores = new Map<string, { file: string; hba: string; so: string; size: number }>();
  const mapped = new Map<string, { lun: number; initiators: Set<string> }>();
  let targetUp = false;

  const ensureTarget = (): void => {
    if (targetUp) return;
    fs.mkdirSync(tpg, { recursive: true });
    for (const p of options.portals) if (!fs.existsSync(join(tpg, 'np', p))) fs.mkdirSync(join(tpg, 'np', p));
    write(join(tpg, 'attrib', 'authentication'), 0);
    write(join(tpg, 'attrib', 'generate_node_acls'), 0);
    write(join(tpg, 'enable'), 1);
    targetUp = true;
  };

  const freeHba = (): string => {
    const core = join(root, 'core');
    const used = new Set(fs.readdirSync(core).filter((d) => d.startsWith('fileio_')).map((d) => Number(d.slice(7))));
    let n = 400;
    while (used.has(n)) n++;
    return join(core, `fileio_${n}`);
  };

  const ensureFile = (v: SimVolume): string => {
    const b = backstores.get(v.id);
    if (b) return b.file;
    const file = join(options.dir, `${v.id}.img`);
    if (!fs.existsSync(file)) {
      fs.writeFileSync(file, '');
      fs.truncateSync(file, v.capacity);
    }
    return file;
  };

  const ensureBackstore = (v: SimVolume): string => {
    const have = backstores.get(v.id);
    if (have) return have.so;
    const file = ensureFile(v);
    const hba = freeHba();
    const so = join(hba, `es_${v.id.slice(-12)}`);
    fs.mkdirSync(so, { recursive: true });
    write(join(so, 'control'), `fd_dev_name=${file},fd_dev_size=${v.capacity}`);
    write(join(so, 'enable'), 1);
    write(join(so, 'wwn', 'vpd_unit_serial'), v.wwn.toLowerCase());
    backstores.set(v.id, { file, hba, so, size: v.capacity });
    return so;
  };

  const removeAclLun = (iqn: string, lun: number): void => {
    const acl = join(tpg, 'acls', iqn);
    unlinkQuiet(join(acl, `lun_${lun}`, `map_${lun}`));
    rmdirQuiet(join(acl, `lun_${lun}`));
    if (fs.existsSync(acl) && fs.readdirSync(acl).every((e) => !e.startsWith('lun_'))) rmdirQuiet(acl);
  };

  const unmap = (volumeRef: string): void => {
    const m = mapped.get(volumeRef);
    if (!m) return;
    for (const iqn of m.initiators) removeAclLun(iqn, m.lun);
    const lunDir = join(tpg, 'lun', `lun_${m.lun}`);
    if (fs.existsSync(lunDir)) for (const e of fs.readdirSync(lunDir)) if (e.startsWith('bs')) unlinkQuiet(join(lunDir, e));
    rmdirQuiet(lunDir);
    mapped.delete(volumeRef);
  };

  const dropBackstore = (volumeRef: string): void => {
    const b = backstores.get(volumeRef);
    if (!b) return;
    rmdirQuiet(b.so);
    rmdirQuiet(b.hba);
    backstores.delete(volumeRef);
  };

  return {
    fileOf: (ref) => backstores.get(ref)?.file ?? (fs.existsSync(join(options.dir, `${ref}.img`)) ? join(options.dir, `${ref}.img`) : undefined),

    onMappingChanged({ volume, lun, initiators }) {
      ensureTarget();
      const so = ensureBackstore(volume);
      let m = mapped.get(volume.id);
      if (m && m.lun !== lun) {
        unmap(volume.id);
        m = undefined;
      }
      if (!m) {
        const lunDir = join(tpg, 'lun', `lun_${lun}`);
        fs.mkdirSync(lunDir);
        fs.symlinkSync(so, join(lunDir, 'bs'));
        m = { lun, initiators: new Set() };
        mapped.set(volume.id, m);
      }
      const want = new Set(initiators.map((i) => i.toLowerCase()));
      for (const iqn of [...m.initiators]) {
        if (!want.has(iqn)) {
          removeAclLun(iqn, lun);
          m.initiators.delete(iqn);
        }
      }
      for (const iqn of want) {
        if (m.initiators.has(iqn)) continue;
        const acl = join(tpg, 'acls', iqn);
        if (!fs.existsSync(acl)) fs.mkdirSync(acl);
        fs.mkdirSync(join(acl, `lun_${lun}`));
        fs.symlinkSync(join(tpg, 'lun', `lun_${lun}`), join(acl, `lun_${lun}`, `map_${lun}`));
        m.initiators.add(iqn);
      }
    },

    onUnmapped({ volume }) {
      unmap(volume.id);
    },

    onVolumeDeleted(volume) {
      unmap(volume.id);
      dropBackstore(volume.id);
      unlinkQuiet(join(options.dir, `${volume.id}.img`));
    },

    onCopyComplete({ sourceVolume, target, sourceImageId }) {
      const image = sourceImageId ? join(options.dir, `snap-${sourceImageId}.img`) : undefined;
      const src = image && fs.existsSync(image) ? image : join(options.dir, `${sourceVolume.id}.img`);
      const dst = ensureFile(target);
      if (fs.existsSync(src)) sparseCopy(src, dst, target.capacity);
    },

    onSnapshot({ volume, imageId }) {
      const src = join(options.dir, `${volume.id}.img`);
      if (fs.existsSync(src)) sparseCopy(src, join(options.dir, `snap-${imageId}.img`), volume.capacity);
    },

    onSnapshotDeleted(imageId) {
      unlinkQuiet(join(options.dir, `snap-${imageId}.img`));
    },

    onExtended(volume) {
      const file = join(options.dir, `${volume.id}.img`);
      if (fs.existsSync(file)) fs.truncateSync(file, volume.capacity);
      const b = backstores.get(volume.id);
      if (b) {
        write(join(b.so, 'control'), `fd_dev_size=${volume.capacity}`);
        b.size = volume.capacity;
      }
    },

    async close() {
      for (const ref of [...mapped.keys()]) unmap(ref);
      if (fs.existsSync(tpg)) {
        try {
          write(join(tpg, 'enable'), 0);
        } catch {
          /* never enabled */
        }
        for (const a of fs.existsSync(join(tpg, 'acls')) ? fs.readdirSync(join(tpg, 'acls')) : []) rmdirQuiet(join(tpg, 'acls', a));
        for (const np of fs.existsSync(join(tpg, 'np')) ? fs.readdirSync(join(tpg, 'np')) : []) rmdirQuiet(join(tpg, 'np', np));
        rmdirQuiet(tpg);
      }
      rmdirQuiet(targetDir);
      for (const ref of [...backstores.keys()]) dropBackstore(ref);
      fs.rmSync(options.dir, { recursive: true, force: true });
      targetUp = false;
    },
  };
}
