/**
 * Mounting remote filesystems (NFS, GlusterFS, Quobyte) for file-backed volumes.
 *
 * Follows os-brick's `RemoteFsClient` (`os_brick/remotefs/remotefs.py`): a share is mounted at
 * `<mount_point_base>/<md5 hex of the share string>`; `/proc/mounts` says whether it already
 * is; NFS mounts try version 4.2, then 4.1 (for pNFS), then the unversioned default, unless the
 * caller's options already pin a version (`vers=`, `nfsvers=`, `v3`...). `mount` and `umount`
 * run through the Executor as root.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type { HostContext } from './context.js';
import { readAttr } from './sysfs.js';

// The mount-point directory helpers live in files.ts; re-exported so the package's root export keeps them.
export { makeHostDir, removeHostDir } from './files.js';

/** Default timeout of a mount attempt (ms): an unreachable NFS server makes mount.nfs retry for minutes. */
export const MOUNT_TIMEOUT_MS = 120_000;

/** One line of `/proc/mounts`. */
export interface MountEntry {
  source: string;
  target: string;
  fstype: string;
  options: string[];
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parse `/proc/mounts` (or `/proc/self/mounts`); octal escapes (`\040` for a space) are decoded. Pure. */
export function parseProcMounts(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[0]!.startsWith('#')) continue;
    out.push({ source: unescapeMount(f[0]!), target: unescapeMount(f[1]!), fstype: f[2]!, options: f[3]!.split(',') });
  }
  return out;
}

/** The host's mounts (`/proc/mounts` under the host root); empty when unreadable. */
export async function readMounts(ctx: Pick<HostContext, 'hostRoot'>): Promise<MountEntry[]> {
  return parseProcMounts((await readAttr(ctx, '/proc/mounts')) ?? '');
}

/** The mount entry whose target is `target` (the last one, as the kernel stacks mounts), if any. */
export async function findMount(ctx: Pick<HostContext, 'hostRoot'>, target: string): Promise<MountEntry | undefined> {
  const t = posix.normalize(target).replace(/\/$/, '');
  return (await readMounts(ctx)).filter((m) => m.target === t).pop();
}

/** md5 hex of `share`: os-brick's `_get_hash_str`, so that Brick and os-brick pick the same mount point. Pure. */
export function shareHash(share: string): string {
  return createHash('md5').update(share, 'utf8').digest('hex');
}

/** `<base>/<md5(share)>`: the mount point os-brick's RemoteFsClient uses for `share`. Pure. */
export function mountPointFor(base: string, share: string): string {
  return posix.join(base, shareHash(share));
}

/** True when comma-separated `options` already name an NFS version. Pure. */
export function nfsVersionPinned(options: string | undefined): boolean {
  return (options ?? '').split(',').some((o) => /^(nfsvers|vers)=|^v\d/.test(o.trim()));
}

function setOption(options: string | undefined, key: string, value: string): string {
  const kept = (options ?? '').split(',').map((o) => o.trim()).filter((o) => o !== '' && !o.startsWith(`${key}=`) && o !== key);
  kept.push(`${key}=${value}`);
  return kept.join(',');
}

/**
 * The `-o` option strings to try, in order, for an NFS mount with base `options`: 4.2, 4.1,
 * then `options` as given; only `options` when a version is pinned. Pure.
 */
export function nfsMountAttempts(options: string | undefined): { label: string; options: string | undefined }[] {
  if (nfsVersionPinned(options)) return [{ label: 'nfs', options }];
  return [
    { label: 'nfs_4.2', options: setOption(setOption(options, 'vers', '4'), 'minorversion', '2') },
    { label: 'nfs_4.1', options: setOption(setOption(options, 'vers', '4'), 'minorversion', '1') },
    { label: 'nfs', options: options && options.trim() !== '' ? options : undefined },
  ];
}

/** What to mount. */
export interface MountRequest {
  fstype: string;
  source: string;
  target: string;
  /** Comma-separated `-o` options. */
  options?: string;
  /** Extra argv flags placed before source and target (os-brick's `flags`, e.g. `['-o', 'nfsvers=3']`). */
  flags?: readonly string[];
  timeoutMs?: number;
}

/** `mount -t <fstype> [-o options] [flags...] <source> <target>` as root. @throws ProcessExecutionError / ProcessTimeoutError */
export async function mountFs(ctx: HostContext, req: MountRequest): Promise<void> {
  const argv = ['mount', '-t', req.fstype];
  if (req.options) argv.push('-o', req.options);
  argv.push(...(req.flags ?? []), req.source, req.target);
  await ctx.executor.run(argv, { timeoutMs: req.timeoutMs ?? MOUNT_TIMEOUT_MS });
}

/** `umount [-l] <target>` as root. `lazy` detaches now and cleans up when the last user goes. */
export async function unmountFs(ctx: HostContext, target: string, options: { lazy?: boolean; timeoutMs?: number } = {}): Promise<void> {
  await ctx.executor.run(options.lazy ? ['umount', '-l', target] : ['umount', target], { timeoutMs: options.timeoutMs ?? MOUNT_TIMEOUT_MS });
}
