/**
 * The node plugin's host work on file systems and mounts: probe a device for a file system
 * (`blkid -p`), make one on a blank device, mount, bind-mount, unmount, grow a file system, and
 * measure a published volume. Every program runs through the context's Executor (argv arrays,
 * timeouts, the root helper); mount points are read from `/proc/mounts` under the host root.
 *
 * @module
 */
import { mkdir, open, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { HostContext } from '../host/context.js';
import { hostPath } from '../host/context.js';
import { findMount, mountFs, unmountFs, type MountEntry } from '../host/mount.js';
import { CsiError } from './status.js';

/** Bound on `mkfs` (a large device with a thick journal takes a while). */
const MKFS_TIMEOUT_MS = 600_000;
/** Bound on probes and mounts. */
const SHORT_TIMEOUT_MS = 60_000;
/** Bound on growing a file system online. */
const RESIZE_TIMEOUT_MS = 600_000;

/**
 * What `blkid -p` (low-level probe, no cache) finds on `device`: the file system type
 * (`ext4`, `xfs`...), `partition table` for a partitioned device, another signature's usage, or
 * undefined for a blank device (blkid's exit status 2: nothing found).
 * @throws ProcessExecutionError for any other failure of blkid
 */
export async function probeFileSystem(ctx: HostContext, device: string): Promise<string | undefined> {
  const r = await ctx.executor.run(['blkid', '-p', '-o', 'export', device], { timeoutMs: SHORT_TIMEOUT_MS, checkExitCode: [0, 2] });
  if (r.exitCode === 2) return undefined;
  const fields = new Map(r.stdout.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const));
  if (fields.get('TYPE')) return fields.get('TYPE');
  if (fields.get('PTTYPE')) return 'partition table';
  return fields.get('USAGE') || 'unknown signature';
}

/** `mkfs.<fsType>` on `device`, which the caller has found blank with {@link probeFileSystem}. */
export async function makeFileSystem(ctx: HostContext, device: string, fsType: string): Promise<void> {
  const argv = fsType === 'xfs' ? ['mkfs.xfs', '-q', device] : [`mkfs.${fsType}`, '-q', '-F', device];
  await ctx.executor.run(argv, { timeoutMs: MKFS_TIMEOUT_MS });
}

/** The mount whose target is `path`, if any. */
export async function mountAt(ctx: HostContext, path: string): Promise<MountEntry | undefined> {
  return findMount(ctx, path);
}

/** Create directory `path` (and its parents) when missing. */
export async function ensureDir(ctx: HostContext, path: string): Promise<void> {
  await mkdir(hostPath(ctx.hostRoot, path), { recursive: true, mode: 0o750 });
}

/**
 * Make `path` an empty regular file to bind a block device onto: created with its parent when
 * missing; an empty directory there (a CO that made the target as a directory) is replaced.
 * @throws {@link CsiError} FAILED_PRECONDITION when something else is there
 */
export async function ensureFile(ctx: HostContext, path: string): Promise<void> {
  const p = hostPath(ctx.hostRoot, path);
  const st = await stat(p).catch(() => undefined);
  if (st?.isDirectory()) {
    await rmdir(p).catch(() => {
      throw new CsiError(GrpcStatus.FAILED_PRECONDITION, `target_path ${path} is a directory that is not empty`);
    });
  } else if (st) {
    return;
  }
  await mkdir(dirname(p), { recursive: true, mode: 0o750 });
  await (await open(p, 'a', 0o640)).close();
}

/** Mount `device` (file system `fsType`) at `target`, with comma-joined `flags`. */
export async function mountDevice(ctx: HostContext, device: string, target: string, fsType: string, flags: readonly string[]): Promise<void> {
  await mountFs(ctx, { fstype: fsType, source: device, target, options: flags.length > 0 ? flags.join(',') : undefined, timeoutMs: SHORT_TIMEOUT_MS });
}

/**
 * Bind-mount `source` (a directory, or a device node onto a file) at `target`; read-only by a
 * second `remount,bind,ro`, which holds on every kernel (a bind mount ignores `ro` at first).
 */
export async function bindMount(ctx: HostContext, source: string, target: string, readOnly: boolean, flags: readonly string[] = []): Promise<void> {
  await ctx.executor.run(['mount', '--bind', source, target], { timeoutMs: SHORT_TIMEOUT_MS });
  const extra = flags.filter((f) => f !== 'bind' && f !== 'ro' && f !== 'rw');
  if (readOnly || extra.length > 0) {
    const options = ['remount', 'bind', ...(readOnly ? ['ro'] : []), ...extra].join(',');
    try {
      await ctx.executor.run(['mount', '-o', options, target], { timeoutMs: SHORT_TIMEOUT_MS });
    } catch (err) {
      await unmountFs(ctx, target).catch(() => undefined);
      throw err;
    }
  }
}

/** Unmount every mount stacked at `target` (a publish retried after a crash may have stacked two). */
export async function unmountAll(ctx: HostContext, target: string): Promise<void> {
  for (let i = 0; i < 8 && (await mountAt(ctx, target)); i++) await unmountFs(ctx, target, { timeoutMs: SHORT_TIMEOUT_MS });
}

/** Remove a publish target (a directory or the file a block device was bound onto); missing is fine. */
export async function removeTarget(ctx: HostContext, path: string): Promise<void> {
  const p = hostPath(ctx.hostRoot, path);
  const st = await stat(p).catch(() => undefined);
  if (!st) return;
  if (st.isDirectory()) await rmdir(p);
  else await rm(p, { force: true });
}

/** What a published or staged path is: a mounted directory, a bound block device, or neither. */
export interface PathKind {
  exists: boolean;
  blockDevice: boolean;
  /** Device number of a block device node (`st_rdev`). */
  rdev: number;
}

/** Whether `path` exists and is a block device node. */
export async function pathKind(ctx: HostContext, path: string): Promise<PathKind> {
  const st = await stat(hostPath(ctx.hostRoot, path)).catch(() => undefined);
  return { exists: st !== undefined, blockDevice: st?.isBlockDevice() ?? false, rdev: st?.rdev ?? 0 };
}

/**
 * Whether two paths name the same device: the same path, or device nodes with the same device
 * number. A mount table names a multipath device `/dev/mapper/<wwid>` where the connector gives
 * `/dev/dm-N`, and an iSCSI disk may appear through a `/dev/disk/by-*` link.
 */
export async function sameDevice(ctx: HostContext, a: string, b: string): Promise<boolean> {
  if (a === b) return true;
  const [sa, sb] = await Promise.all([stat(hostPath(ctx.hostRoot, a)).catch(() => undefined), stat(hostPath(ctx.hostRoot, b)).catch(() => undefined)]);
  const isDevice = (s: typeof sa): boolean => s !== undefined && (s.isBlockDevice() || s.isCharacterDevice());
  return isDevice(sa) && isDevice(sb) && sa!.rdev === sb!.rdev && sa!.isBlockDevice() === sb!.isBlockDevice();
}

/** Byte and inode counts of the file system mounted at `path` (`statfs(2)`). */
export async function fileSystemUsage(ctx: HostContext, path: string): Promise<{ bytes: { total: number; available: number; used: number }; inodes: { total: number; available: number; used: number } }> {
  const s = await statfs(hostPath(ctx.hostRoot, path));
  return {
    bytes: { total: s.blocks * s.bsize, available: s.bavail * s.bsize, used: (s.blocks - s.bfree) * s.bsize },
    inodes: { total: s.files, available: s.ffree, used: s.files - s.ffree },
  };
}

/** Size of the block device at `path` in bytes (`blockdev --getsize64`, which takes a bound device file too). */
export async function blockDeviceBytes(ctx: HostContext, path: string): Promise<number> {
  const { stdout } = await ctx.executor.run(['blockdev', '--getsize64', path], { timeoutMs: SHORT_TIMEOUT_MS });
  return Number(stdout.trim());
}

/**
 * Grow the file system mounted at `mountPoint` from `device` online to the device's size:
 * `resize2fs` for ext2/3/4, `xfs_growfs` for XFS.
 * @throws {@link CsiError} FAILED_PRECONDITION for a file system Brick cannot grow
 */
export async function growFileSystem(ctx: HostContext, device: string, mountPoint: string, fsType: string): Promise<void> {
  if (/^ext[234]$/.test(fsType)) await ctx.executor.run(['resize2fs', device], { timeoutMs: RESIZE_TIMEOUT_MS });
  else if (fsType === 'xfs') await ctx.executor.run(['xfs_growfs', mountPoint], { timeoutMs: RESIZE_TIMEOUT_MS });
  else throw new CsiError(GrpcStatus.FAILED_PRECONDITION, `cannot grow a ${fsType} file system`);
}
