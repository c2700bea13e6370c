/**
 * The lab's initramfs: a tiny busybox image whose `/init` loads the virtio, 9p and overlay
 * modules, mounts the host root (read-only, with a tmpfs overlay) and the results share, and
 * `switch_root`s into the per-run stage-2 script on the share. Built here in Node (cpio "newc"
 * plus gzip, the format the kernel unpacks), cached per kernel version and rebuilt when one of
 * its inputs changes.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { moduleFiles, readModulesDep, type LabKernel } from './kernel.js';

/** Modules the initramfs loads (with their dependencies) before it can mount the shares. */
export const INITRAMFS_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];

/** The guest-side directory (under the results share) holding the run's control files. */
export const CONTROL = '.lab';

/** True when the ELF file at `path` has no program interpreter (is statically linked). */
function isStaticElf(path: string): boolean {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(path);
  } catch {
    return false;
  }
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2) return false;
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 > buf.length) return false;
    if (buf.readUInt32LE(off) === 3 /* PT_INTERP */) return false;
  }
  return true;
}

/** A statically linked busybox (Debian `busybox-static`), which the initramfs needs; undefined when there is none. */
export function findBusybox(): string | undefined {
  for (const p of ['/bin/busybox', '/usr/bin/busybox']) if (fs.existsSync(p) && isStaticElf(p)) return p;
  return undefined;
}

/** The busybox `/init` of the lab initramfs. Fixed text: the per-run behaviour lives in stage2.sh. */
function initScript(): string {
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
fail() { echo "brick-lab-init: $*"; sync; echo o > /proc/sysrq-trigger; sleep 60; }
echo "brick-lab-init: loading modules"
for m in $(cat /mods/order); do insmod "/mods/$m" || echo "brick-lab-init: insmod $m failed"; done
echo "brick-lab-init: mounting the host root"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /lower || fail "mounting the host root over 9p failed"
mount -t tmpfs -o mode=0755 tmpfs /upper || fail "tmpfs for the overlay failed"
mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot || fail "overlay mount failed"
mkdir -p /newroot/out
mount -t 9p -o trans=virtio,version=9p2000.L,rw,msize=262144 out /newroot/out || fail "mounting the results share failed"
[ -f /newroot/out/${CONTROL}/stage2.sh ] || fail "stage2.sh missing from the results share"
mount --move /dev /newroot/dev
umount /proc /sys
echo "brick-lab-init: switching root"
exec switch_root /newroot /bin/bash /out/${CONTROL}/stage2.sh
`;
}

/** Where the initramfs is cached: `/var/cache/brick-lab/<kver>` when writable, else `~/.cache/brick-lab/<kver>` (env `LAB_CACHE` overrides the base). */
export function cacheDir(kernel: LabKernel): string {
  const bases = process.env.LAB_CACHE ? [process.env.LAB_CACHE] : ['/var/cache/brick-lab', join(homedir(), '.cache', 'brick-lab')];
  for (const base of bases) {
    const dir = join(base, kernel.version);
    try {
      fs.mkdirSync(dir, { recursive: true });
      fs.accessSync(dir, fs.constants.W_OK);
      return dir;
    } catch {
      /* try the next */
    }
  }
  const dir = join(tmpdir(), 'brick-lab', kernel.version);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** One file of a cpio "newc" archive (the format the kernel unpacks as initramfs). */
interface CpioEntry {
  name: string;
  mode: number;
  data?: Buffer;
}

/** The archive: one `070701` header per entry (inode numbers from 1, owner root, one link), then the `TRAILER!!!` entry. */
function cpioNewc(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  const pad4 = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  let ino = 1;
  const push = (e: CpioEntry): void => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${e.name}\0`);
    const header =
      '070701' + hex(ino++) + hex(e.mode) + hex(0) + hex(0) + hex(1) + hex(0) + hex(data.length) + hex(0) + hex(0) + hex(0) + hex(0) + hex(name.length) + hex(0);
    parts.push(Buffer.from(header, 'ascii'), name, pad4(110 + name.length), data, pad4(data.length));
  };
  for (const e of entries) push(e);
  push({ name: 'TRAILER!!!', mode: 0 });
  return Buffer.concat(parts);
}

/** The module files the initramfs carries, in load order (dependencies first). */
function initramfsModules(kernel: LabKernel): string[] {
  const deps = readModulesDep(kernel);
  const seen = new Set<string>();
  const mods: string[] = [];
  for (const m of INITRAMFS_MODULES) mods.push(...moduleFiles(kernel, m, deps, seen));
  return mods;
}

/** A short hash of everything that goes into the image, so a changed input gets a new file name. */
function initramfsKey(init: string, mods: readonly string[], busybox: string): string {
  const bb = fs.statSync(busybox);
  return createHash('sha256')
    .update(init)
    .update(mods.join('\n'))
    .update(`${bb.size}:${bb.mtimeMs}`)
    .digest('hex')
    .slice(0, 12);
}

/** The files of the image: the directories `/init` mounts on, busybox, `/init`, the modules and their load order (`mods/order`). */
function initramfsEntries(kernel: LabKernel, init: string, mods: readonly string[], busybox: string): CpioEntry[] {
  const entries: CpioEntry[] = [];
  for (const d of ['bin', 'dev', 'proc', 'sys', 'mods', 'lower', 'upper', 'newroot']) entries.push({ name: d, mode: 0o40755 });
  entries.push({ name: 'bin/busybox', mode: 0o100755, data: fs.readFileSync(busybox) });
  entries.push({ name: 'init', mode: 0o100755, data: Buffer.from(init) });
  const order: string[] = [];
  for (const m of mods) {
    const base = m.split('/').at(-1)!;
    entries.push({ name: `mods/${base}`, mode: 0o100644, data: fs.readFileSync(join(kernel.modulesDir, m)) });
    order.push(base);
  }
  entries.push({ name: 'mods/order', mode: 0o100644, data: Buffer.from(order.join('\n') + '\n') });
  return entries;
}

/** Removes other images in `dir` older than a day. Newer ones may still be in use by a run that started with older code. */
function removeStaleImages(dir: string, keep: string): void {
  for (const old of fs.readdirSync(dir)) {
    const p = join(dir, old);
    if (/^initrd-[0-9a-f]+\.gz$/.test(old) && p !== keep && Date.now() - fs.statSync(p).mtimeMs > 86_400_000) fs.rmSync(p, { force: true });
  }
}

/**
 * The path of the cached initramfs for `kernel`, building it when missing. The file name
 * carries a hash of its inputs (init script, module list, busybox), so a changed input builds a
 * new one. Built in Node (cpio newc + gzip); no `cpio` program needed.
 * @throws Error when there is no static busybox, or the module tree or cache directory cannot be read or written
 */
export function ensureInitramfs(kernel: LabKernel): string {
  const busybox = findBusybox();
  if (!busybox) throw new Error('no statically linked busybox found (install Debian package busybox-static)');
  const mods = initramfsModules(kernel);
  const init = initScript();
  const dir = cacheDir(kernel);
  const target = join(dir, `initrd-${initramfsKey(init, mods, busybox)}.gz`);
  if (fs.existsSync(target)) return target;
  const tmp = `${target}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, gzipSync(cpioNewc(initramfsEntries(kernel, init, mods, busybox))));
  fs.renameSync(tmp, target);
  removeStaleImages(dir, target);
  return target;
}
