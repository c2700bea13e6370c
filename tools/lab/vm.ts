/**
 * The lab VM: a throwaway Linux guest booted with QEMU (software emulation, TCG) whose root is
 * this machine's own `/`, shared read-only over virtio-9p with a tmpfs overlay on top, plus a
 * writable 9p share (mounted at `/out` in the guest) that carries results back.
 *
 * Because the guest runs the host's Debian kernel package (`linux-image-amd64`) and the host's
 * installed programs, every storage tool installed on the host (open-iscsi, multipath-tools,
 * lvm2, nvme-cli, vblade, node) works in the guest with no image to build, and the guest kernel
 * has what the host kernel may lack: SCSI, iSCSI, device-mapper, NVMe-oF, LIO, nvmet, AoE.
 *
 * The boot path: QEMU loads `/boot/vmlinuz-<kver>` and a tiny busybox initramfs (built here,
 * cached per kernel version under `/var/cache/brick-lab/<kver>/`), whose `/init` loads the
 * virtio/9p/overlay modules, mounts the two shares and the overlay, and `switch_root`s into
 * `bash /out/.lab/stage2.sh`. That stage-2 script (written by the host for every run) mounts
 * the usual pseudo file systems, then runs the requested argv (read from a NUL-separated file,
 * so no shell string is ever built from it) and records its exit status. KVM is not used: on
 * the machines this project runs on it hangs; TCG is slow (guest JavaScript runs ~100x slower)
 * but dependable.
 *
 * Host processes are spawned with `child_process.spawn` and argv arrays (tools/ is outside
 * src/, but follows the same no-shell rule).
 *
 * @module
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

/** The Debian kernel the lab boots: its version and file paths. */
export interface LabKernel {
  /** Kernel release, e.g. `6.1.0-56-amd64` (the name of its `/lib/modules` directory). */
  version: string;
  /** The kernel image, e.g. `/boot/vmlinuz-6.1.0-56-amd64`. */
  image: string;
  /** The module tree, e.g. `/lib/modules/6.1.0-56-amd64`. */
  modulesDir: string;
}

/** What {@link labAvailable} found. */
export interface LabAvailability {
  /** True when a VM can be booted: qemu, a kernel with its modules, a static busybox. */
  ok: boolean;
  /** Human-readable reasons when `ok` is false (one per missing piece), naming the Debian package. */
  problems: string[];
  /** The kernel that would be booted, when one was found. */
  kernel?: LabKernel;
  /** The QEMU binary path, when found. */
  qemu?: string;
}

/** Options for {@link runInVm}. Environment overrides apply when a field is not given. */
export interface VmRunOptions {
  /** Working directory in the guest (the host path; the host root is visible at the same path). `/tmp` and `/run` are fresh tmpfs in the guest, but a working directory under them is carried over at its own path. Default `process.cwd()`. */
  cwd?: string;
  /** Extra environment variables for the command in the guest. `BRICK_LAB=1`, `LAB_OUT=/out`, `PATH`, `HOME` are always set. */
  env?: Readonly<Record<string, string>>;
  /** Whole-run timeout in ms (boot + command). Default: env `LAB_TIMEOUT` (seconds) or 1 200 s. */
  timeoutMs?: number;
  /** Boot timeout in ms: the guest must reach its stage-2 script within this. Default: env `LAB_BOOT_TIMEOUT` (seconds) or 180 s. */
  bootTimeoutMs?: number;
  /** Guest memory in MiB. Default: env `LAB_MEM` or 3 072. */
  memMiB?: number;
  /** Guest CPUs. Default: env `LAB_SMP` or 2. */
  smp?: number;
  /** Host directory shared read-write at `/out` in the guest. Default: a new temporary directory. */
  outDir?: string;
  /** Called with guest stdout bytes as they arrive (polled from the share). */
  onStdout?: (chunk: Buffer) => void;
  /** Called with guest stderr bytes as they arrive. */
  onStderr?: (chunk: Buffer) => void;
  /** Called once the guest has booted, with the boot time in ms (QEMU start to stage-2 script). */
  onBooted?: (bootMs: number) => void;
  /**
   * Wait for other lab VMs on this host to finish first (a lock file in the cache directory).
   * Default: true unless env `LAB_PARALLEL=1`. The machines this runs on have two cores; two
   * TCG guests at once each run at half speed and risk their timeouts. Waiting is first come,
   * first served, for at most env `LAB_LOCK_TIMEOUT` seconds (default 3 600).
   */
  serialize?: boolean;
}

/** The outcome of one {@link runInVm}. */
export interface VmRunResult {
  /** The guest command's exit status; 99 when the guest did not finish (see `failure`). */
  exitCode: number;
  /** Guest command standard output. */
  stdout: string;
  /** Guest command standard error. */
  stderr: string;
  /** QEMU start to guest stage-2 start, in ms; undefined when the guest never got there. */
  bootMs?: number;
  /** QEMU start to QEMU exit, in ms. */
  totalMs: number;
  /** The results share on the host (files the command wrote under `/out`). */
  outDir: string;
  /** The last lines of the serial console (kernel messages, init errors). */
  consoleTail: string;
  /** Why the run failed at the VM level (boot timeout, run timeout, QEMU error, guest kernel crash); undefined when the command ran to its end. */
  failure?: string;
  /** The guest kernel's crash line (`BUG: ...`, `Oops: ...`, `Kernel panic ...`) with the faulting `RIP:` line, when the guest kernel crashed; the run was then stopped a few seconds later instead of waiting for its timeout. */
  kernelOops?: string;
}

/** Console lines that mean the guest kernel has crashed (after which the guest command may hang forever). Soft-lockup and RCU-stall warnings, which a loaded TCG guest can print and survive, do not count. */
const OOPS_RE = /^.*(?:BUG: (?:kernel |unable to handle)|kernel BUG at|Oops: |general protection fault|Kernel panic - not syncing).*$/m;

/** The crash line and the following `RIP:` line in console text, or undefined. */
export function findKernelOops(consoleText: string): string | undefined {
  const m = OOPS_RE.exec(consoleText);
  if (!m) return undefined;
  const rip = /^.*RIP: .*$/m.exec(consoleText.slice(m.index));
  const clean = (l: string): string => l.replace(/^\[\s*[\d.]+\]\s*/, '').trim();
  return rip ? `${clean(m[0])}; ${clean(rip[0])}` : clean(m[0]);
}

/** Modules the initramfs loads (with their dependencies) before it can mount the shares. */
const INITRAMFS_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];

/** The guest-side directory (under the results share) holding the run's control files. */
const CONTROL = '.lab';

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`environment variable ${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = Number(x);
    const ny = Number(y);
    if (x !== y) return Number.isFinite(nx) && Number.isFinite(ny) && x !== '' && y !== '' ? nx - ny : x < y ? -1 : 1;
  }
  return 0;
}

/**
 * The newest kernel that has both `/boot/vmlinuz-<v>` and `/lib/modules/<v>/modules.dep`
 * (what Debian's `linux-image-amd64` installs). Env `LAB_KERNEL` picks a version explicitly.
 * @returns undefined when none is installed
 */
export function findKernel(): LabKernel | undefined {
  let versions: string[];
  try {
    versions = fs.readdirSync('/lib/modules');
  } catch {
    return undefined;
  }
  const wanted = process.env.LAB_KERNEL;
  const usable = versions
    .filter((v) => (wanted ? v === wanted : true))
    .filter((v) => fs.existsSync(`/boot/vmlinuz-${v}`) && fs.existsSync(`/lib/modules/${v}/modules.dep`))
    .sort(compareVersions);
  const version = usable.at(-1);
  if (!version) return undefined;
  return { version, image: `/boot/vmlinuz-${version}`, modulesDir: `/lib/modules/${version}` };
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

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

function findBusybox(): string | undefined {
  for (const p of ['/bin/busybox', '/usr/bin/busybox']) if (fs.existsSync(p) && isStaticElf(p)) return p;
  return undefined;
}

/**
 * Whether a lab VM can be booted on this machine: `qemu-system-x86_64` on PATH (Debian
 * `qemu-system-x86`), a kernel image with its modules (`linux-image-amd64`), a statically
 * linked busybox (`busybox-static`), and a kernel image readable by this user. The lead's test
 * orchestrator calls this to decide whether the lab suite runs. Cheap: no process is started.
 */
export function labAvailable(): LabAvailability {
  const problems: string[] = [];
  const qemu = findOnPath('qemu-system-x86_64');
  if (!qemu) problems.push('qemu-system-x86_64 not found on PATH (Debian package qemu-system-x86)');
  const kernel = findKernel();
  if (!kernel) problems.push('no kernel with modules found (/boot/vmlinuz-<v> + /lib/modules/<v>; Debian package linux-image-amd64)');
  else {
    try {
      fs.accessSync(kernel.image, fs.constants.R_OK);
    } catch {
      problems.push(`${kernel.image} is not readable by this user (run as root)`);
    }
    for (const m of INITRAMFS_MODULES) {
      if (moduleFiles(kernel, m).length === 0 && !isBuiltin(kernel, m)) problems.push(`kernel module ${m} not found for ${kernel.version}`);
    }
  }
  if (!findBusybox()) problems.push('no statically linked busybox at /bin/busybox (Debian package busybox-static)');
  if (!findOnPath('bash')) problems.push('bash not found on PATH');
  const result: LabAvailability = { ok: problems.length === 0, problems };
  if (kernel) result.kernel = kernel;
  if (qemu) result.qemu = qemu;
  return result;
}

function readModulesDep(kernel: LabKernel): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of fs.readFileSync(join(kernel.modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const mod = line.slice(0, colon);
    map.set(mod, line.slice(colon + 1).trim().split(/\s+/).filter(Boolean));
  }
  return map;
}

function moduleName(path: string): string {
  return (path.split('/').at(-1) ?? '').replace(/\.ko(\.[a-z]+)?$/, '').replace(/-/g, '_');
}

function isBuiltin(kernel: LabKernel, name: string): boolean {
  try {
    return fs
      .readFileSync(join(kernel.modulesDir, 'modules.builtin'), 'utf8')
      .split('\n')
      .some((l) => moduleName(l) === name);
  } catch {
    return false;
  }
}

/**
 * The module files (paths relative to the module tree) needed to load `name`, dependencies
 * first, as modprobe would load them.
 */
function moduleFiles(kernel: LabKernel, name: string, deps = readModulesDep(kernel), seen = new Set<string>()): string[] {
  const entry = [...deps.keys()].find((k) => moduleName(k) === name);
  if (!entry) return [];
  const out: string[] = [];
  const visit = (mod: string): void => {
    if (seen.has(mod)) return;
    seen.add(mod);
    for (const d of [...(deps.get(mod) ?? [])].reverse()) visit(d);
    out.push(mod);
  };
  visit(entry);
  return out;
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

/**
 * The stage-2 script, run by bash as PID 1 in the switched root. It prepares what the storage
 * tools expect (tmpfs `/run` and `/tmp`, `/run/lock`, configfs, `127.0.0.2` on `lo`), then runs
 * the argv from `argv` (NUL-separated) with the environment from `env` (NUL-separated
 * `NAME=value`) in the directory named by `cwd`, and records its exit status in `rc`.
 */
function stage2Script(): string {
  const c = `/out/${CONTROL}`;
  return `# brick lab stage 2 (PID 1 in the guest); written by tools/lab/vm.ts for each run
mount -t proc proc /proc
mount -t sysfs sys /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# A working directory under /tmp or /run (a checkout there, as CI may make) would vanish under
# the fresh tmpfs mounts below: set it aside first and put it back at the same path after.
workdir="$(cat ${c}/cwd)"
keep=""
case "$workdir" in /tmp/*|/run/*) mkdir -p /.brick-keep && mount --bind "$workdir" /.brick-keep && keep=1 ;; esac
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
if [ -n "$keep" ]; then mkdir -p "$workdir" && mount --move /.brick-keep "$workdir"; fi
mkdir -p /run/lock /run/lvm /run/udev /var/lock /run/multipath
modprobe configfs 2>/dev/null
mount -t configfs none /sys/kernel/config 2>/dev/null
ip link set lo up
ip addr add 127.0.0.2/8 dev lo 2>/dev/null
hostname lab
read -r up _ < /proc/uptime
printf '%s\\n' "$up" > ${c}/booted
echo "brick-lab: stage 2 up after $up s of guest time; running the command" 
mapfile -d '' -t argv < ${c}/argv
mapfile -d '' -t envv < ${c}/env
cd "$(cat ${c}/cwd)" || cd /
env -i "\${envv[@]}" "\${argv[@]}" > ${c}/stdout 2> ${c}/stderr < /dev/null
printf '%s\\n' "$?" > ${c}/rc.tmp
sync
mv ${c}/rc.tmp ${c}/rc
sync
echo o > /proc/sysrq-trigger
sleep 60
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

/**
 * The path of the cached initramfs for `kernel`, building it when missing. The file name
 * carries a hash of its inputs (init script, module list, busybox), so a changed input builds a
 * new one. Built in Node (cpio newc + gzip); no `cpio` program needed.
 */
export function ensureInitramfs(kernel: LabKernel): string {
  const busybox = findBusybox();
  if (!busybox) throw new Error('no statically linked busybox found (install Debian package busybox-static)');
  const deps = readModulesDep(kernel);
  const seen = new Set<string>();
  const mods: string[] = [];
  for (const m of INITRAMFS_MODULES) mods.push(...moduleFiles(kernel, m, deps, seen));
  const init = initScript();
  const bb = fs.statSync(busybox);
  const key = createHash('sha256')
    .update(init)
    .update(mods.join('\n'))
    .update(`${bb.size}:${bb.mtimeMs}`)
    .digest('hex')
    .slice(0, 12);
  const dir = cacheDir(kernel);
  const target = join(dir, `initrd-${key}.gz`);
  if (fs.existsSync(target)) return target;
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
  const tmp = `${target}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, gzipSync(cpioNewc(entries)));
  fs.renameSync(tmp, target);
  // Other versions may still be in use by a run that started with older code: remove only stale ones.
  for (const old of fs.readdirSync(dir)) {
    const p = join(dir, old);
    if (/^initrd-[0-9a-f]+\.gz$/.test(old) && p !== target && Date.now() - fs.statSync(p).mtimeMs > 86_400_000) fs.rmSync(p, { force: true });
  }
  return target;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Take the host-wide lab lock: a pid file created with O_EXCL (a stale one whose process is
 * gone is removed). Waiters queue first-come first-served through ticket files
 * (`queue/<ms>-<pid>`) next to the lock, so a long line of lab runs cannot starve one of them.
 */
async function acquireLock(path: string, timeoutMs: number, onWait: (holder: string, position: number) => void): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  const queue = join(dirname(path), 'queue');
  fs.mkdirSync(queue, { recursive: true });
  const ticket = `${String(Date.now()).padStart(15, '0')}-${process.pid}`;
  fs.writeFileSync(join(queue, ticket), '');
  const leave = (): void => fs.rmSync(join(queue, ticket), { force: true });
  let told = false;
  try {
    for (;;) {
      const waiting = fs
        .readdirSync(queue)
        .filter((t) => {
          const pid = Number(t.split('-')[1]);
          if (t === ticket || (Number.isInteger(pid) && pid > 0 && pidAlive(pid))) return true;
          fs.rmSync(join(queue, t), { force: true });
          return false;
        })
        .sort();
      let holder = '';
      if (waiting[0] === ticket) {
        try {
          fs.writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
          leave();
          return () => {
            try {
              if (fs.readFileSync(path, 'utf8').trim() === String(process.pid)) fs.rmSync(path, { force: true });
            } catch {
              /* already gone */
            }
          };
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        try {
          holder = fs.readFileSync(path, 'utf8').trim();
        } catch {
          continue;
        }
        const pid = Number(holder);
        if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) {
          fs.rmSync(path, { force: true });
          continue;
        }
      } else {
        try {
          holder = fs.readFileSync(path, 'utf8').trim();
        } catch {
          holder = 'none yet';
        }
      }
      if (!told) {
        onWait(holder, waiting.indexOf(ticket));
        told = true;
      }
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for the lab VM lock ${path} (held by pid ${holder})`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  } catch (e) {
    leave();
    throw e;
  }
}

/** Reads the growing file `path` from `offset`, handing new bytes to `sink`; returns the new offset. */
function drain(path: string, offset: number, sink?: (b: Buffer) => void): number {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch {
    return offset;
  }
  try {
    const buf = Buffer.alloc(256 * 1024);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, offset);
      if (n <= 0) break;
      offset += n;
      sink?.(Buffer.from(buf.subarray(0, n)));
    }
  } finally {
    fs.closeSync(fd);
  }
  return offset;
}

/**
 * Boot a lab VM, run `argv` as root inside it, and bring back its output and exit status.
 * The guest sees the host root read-only at `/` (with a tmpfs overlay, so it may write
 * anywhere), the results share read-write at `/out`, and env `BRICK_LAB=1`, `LAB_OUT=/out`.
 * Never throws for a guest-side failure: a guest that does not boot, or a run that exceeds its
 * timeout, comes back with `exitCode` 99, `failure` set and the console tail.
 * @throws Error when the lab is not available on this host (see {@link labAvailable}) or argv is empty
 */
export async function runInVm(argv: readonly string[], options: VmRunOptions = {}): Promise<VmRunResult> {
  if (argv.length === 0 || !argv[0]) throw new Error('runInVm: argv must name a program');
  const avail = labAvailable();
  if (!avail.ok || !avail.kernel || !avail.qemu) throw new Error(`the lab VM cannot run here:\n  ${avail.problems.join('\n  ')}`);
  const kernel = avail.kernel;
  const timeoutMs = options.timeoutMs ?? envNumber('LAB_TIMEOUT', 1200) * 1000;
  const bootTimeoutMs = options.bootTimeoutMs ?? envNumber('LAB_BOOT_TIMEOUT', 180) * 1000;
  const memMiB = options.memMiB ?? envNumber('LAB_MEM', 3072);
  const smp = options.smp ?? envNumber('LAB_SMP', 2);
  const serialize = options.serialize ?? process.env.LAB_PARALLEL !== '1';

  const outDir = resolve(options.outDir ?? fs.mkdtempSync(join(tmpdir(), 'brick-lab-')));
  if (outDir.includes(',')) throw new Error(`runInVm: the results directory path must not contain a comma (QEMU option syntax): ${outDir}`);
  const control = join(outDir, CONTROL);
  fs.rmSync(control, { recursive: true, force: true });
  fs.mkdirSync(control, { recursive: true });
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/root',
    LANG: 'C.UTF-8',
    TERM: 'dumb',
    ...(options.env ?? {}),
    BRICK_LAB: '1',
    LAB_OUT: '/out',
  };
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`runInVm: invalid environment variable name ${JSON.stringify(k)}`);
    if (v.includes('\0')) throw new Error(`runInVm: environment variable ${k} contains a NUL byte`);
  }
  for (const a of argv) if (a.includes('\0')) throw new Error('runInVm: an argument contains a NUL byte');
  if (argv[0].includes('=')) throw new Error('runInVm: the program name must not contain "=" (env(1) would read it as an assignment)');
  fs.writeFileSync(join(control, 'argv'), argv.map((a) => `${a}\0`).join(''));
  fs.writeFileSync(join(control, 'env'), Object.entries(env).map(([k, v]) => `${k}=${v}\0`).join(''));
  fs.writeFileSync(join(control, 'cwd'), options.cwd ?? process.cwd());
  fs.writeFileSync(join(control, 'stage2.sh'), stage2Script());

  let release: (() => void) | undefined;
  if (serialize) {
    release = await acquireLock(join(dirname(cacheDir(kernel)), 'vm.lock'), envNumber('LAB_LOCK_TIMEOUT', 3600) * 1000, (holder, position) =>
      process.stderr.write(`lab: waiting for other lab VMs on this host (running: pid ${holder}; ${position} ahead of us); LAB_PARALLEL=1 skips this\n`),
    );
  }
  try {
    // Built (or found) only now that it is our turn, so it cannot go stale while we wait.
    const initrd = ensureInitramfs(kernel);
    return await boot(avail.qemu, kernel, initrd, { outDir, control, timeoutMs, bootTimeoutMs, memMiB, smp, options });
  } finally {
    release?.();
  }
}

interface BootPlan {
  outDir: string;
  control: string;
  timeoutMs: number;
  bootTimeoutMs: number;
  memMiB: number;
  smp: number;
  options: VmRunOptions;
}

function boot(qemu: string, kernel: LabKernel, initrd: string, plan: BootPlan): Promise<VmRunResult> {
  const { outDir, control, options } = plan;
  const qemuArgs = [
    '-accel', 'tcg,thread=multi',
    '-cpu', 'max',
    '-m', String(plan.memMiB),
    '-smp', String(plan.smp),
    '-nodefaults', '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
    '-kernel', kernel.image,
    '-initrd', initrd,
    '-append', 'console=ttyS0 loglevel=4 panic=-1 mitigations=off random.trust_cpu=on',
    '-fsdev', 'local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap',
    '-device', 'virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot',
    '-fsdev', `local,id=out,path=${outDir},security_model=none`,
    '-device', 'virtio-9p-pci,fsdev=out,mount_tag=out',
    '-device', 'virtio-rng-pci',
  ];
  const started = Date.now();
  const consoleChunks: Buffer[] = [];
  let consoleBytes = 0;
  const keepConsole = (b: Buffer): void => {
    consoleChunks.push(b);
    consoleBytes += b.length;
    while (consoleBytes > 64 * 1024 && consoleChunks.length > 1) consoleBytes -= consoleChunks.shift()!.length;
  };
  const consoleLog = fs.createWriteStream(join(control, 'console.log'));
  const child = spawn(qemu, qemuArgs, { stdio: ['ignore', 'pipe', 'pipe'], detached: false });
  child.stdout.on('data', (b: Buffer) => {
    keepConsole(b);
    consoleLog.write(b);
  });
  child.stderr.on('data', (b: Buffer) => {
    keepConsole(b);
    consoleLog.write(b);
  });

  const stdoutParts: Buffer[] = [];
  const stderrParts: Buffer[] = [];
  let outOff = 0;
  let errOff = 0;
  let bootMs: number | undefined;
  let oopsSeenAt: number | undefined;
  let kernelOops: string | undefined;
  let failure: string | undefined;
  const poll = (): void => {
    if (bootMs === undefined && fs.existsSync(join(control, 'booted'))) {
      bootMs = Date.now() - started;
      options.onBooted?.(bootMs);
    }
    outOff = drain(join(control, 'stdout'), outOff, (b) => {
      stdoutParts.push(b);
      options.onStdout?.(b);
    });
    errOff = drain(join(control, 'stderr'), errOff, (b) => {
      stderrParts.push(b);
      options.onStderr?.(b);
    });
    const now = Date.now() - started;
    if (oopsSeenAt === undefined) {
      const crash = findKernelOops(Buffer.concat(consoleChunks).toString('utf8'));
      if (crash) {
        oopsSeenAt = now;
        kernelOops = crash;
      }
    }
    if (!failure && oopsSeenAt !== undefined && now - oopsSeenAt > 5_000) {
      // Leave the trace a few seconds to reach the console, then stop: the guest command may never return.
      failure = `the guest kernel crashed: ${kernelOops}`;
      child.kill('SIGKILL');
    } else if (!failure && bootMs === undefined && now > plan.bootTimeoutMs) {
      failure = `the guest did not boot within ${plan.bootTimeoutMs} ms`;
      child.kill('SIGKILL');
    } else if (!failure && now > plan.timeoutMs) {
      failure = `the run did not finish within ${plan.timeoutMs} ms (LAB_TIMEOUT)`;
      child.kill('SIGKILL');
    }
  };
  const timer = setInterval(poll, 250);
  const onSignal = (sig: NodeJS.Signals): void => {
    child.kill('SIGKILL');
    failure = `interrupted by ${sig}`;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  return new Promise((resolvePromise) => {
    child.on('error', (e) => {
      failure = `QEMU could not start: ${e.message}`;
    });
    child.on('close', (code, signal) => {
      clearInterval(timer);
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      consoleLog.end();
      poll();
      const totalMs = Date.now() - started;
      let exitCode = 99;
      const rcFile = join(control, 'rc');
      if (!failure && fs.existsSync(rcFile)) {
        exitCode = Number(fs.readFileSync(rcFile, 'utf8').trim());
        if (!Number.isInteger(exitCode)) exitCode = 99;
      } else if (!failure) {
        failure =
          bootMs === undefined
            ? `the guest stopped before it booted (QEMU exit ${code ?? signal})`
            : `the guest stopped before the command finished (QEMU exit ${code ?? signal})`;
      }
      const consoleText = Buffer.concat(consoleChunks).toString('utf8');
      const consoleTail =
        consoleText.trim() === ''
          ? '(the serial console stayed silent: QEMU did not start the kernel, or it was still decompressing)'
          : consoleText.split('\n').slice(-40).join('\n');
      const result: VmRunResult = {
        exitCode,
        stdout: Buffer.concat(stdoutParts).toString('utf8'),
        stderr: Buffer.concat(stderrParts).toString('utf8'),
        totalMs,
        outDir,
        consoleTail,
      };
      if (bootMs !== undefined) result.bootMs = bootMs;
      if (failure) result.failure = failure;
      kernelOops ??= findKernelOops(consoleText);
      if (kernelOops) result.kernelOops = kernelOops;
      resolvePromise(result);
    });
  });
}

/** Which QEMU would be used and its version line (for reports); undefined when not installed. */
export function qemuVersion(): string | undefined {
  const q = findOnPath('qemu-system-x86_64');
  if (!q) return undefined;
  const r = spawnSync(q, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return r.stdout.split('\n')[0];
}
