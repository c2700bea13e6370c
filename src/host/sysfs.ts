/**
 * Small, safe accessors for sysfs (and other kernel-provided trees under `/sys`, `/dev`, `/etc`).
 *
 * Every path given here is an absolute *host* path (`/sys/block/sdb/device/wwid`); it is mapped
 * under the context's `hostRoot` with {@link hostPath}, so unit tests run the same code against a
 * fixture tree copied from a real kernel. Reads never throw for a missing file (sysfs entries
 * come and go while devices are added and removed): they return `undefined` or an empty list.
 *
 * Writes follow os-brick's `echo_scsi_command` (`tee -a` as root): when the context's executor
 * has a root helper (Brick runs unprivileged), the value is piped on stdin to `tee -a PATH`
 * through the Executor; when it has none (Brick runs as root, or a test), Node writes the file
 * itself, which costs no process.
 *
 * Reads are synchronous system calls behind the promise-returning signatures. sysfs attributes
 * are generated in memory and answer in microseconds, while a round trip through libuv's thread
 * pool waits behind every other pending file operation and event-loop turn: in the lab VM an
 * attribute read took 0.25 ms synchronously against 3 ms through `fs/promises`, and with eight
 * multipath attaches polling at once one session lookup grew to over a second. The lookups run
 * inside per-portal locks, so their latency is paid once per LUN in a row. Writes stay
 * asynchronous: a write to `scan` or `delete` blocks in the kernel for the whole operation.
 *
 * @module
 */
import { readFileSync, readdirSync, readlinkSync, realpathSync, accessSync, lstatSync } from 'node:fs';
import { writeFile, chmod } from 'node:fs/promises';
import { BrickError } from '../errors.js';
import type { HostContext } from './context.js';
import { hostPath } from './context.js';

/** Strip the context's host root from a path produced by `realpath` under it. */
function toHostAbsolute(ctx: HostContext, p: string): string {
  const root = ctx.hostRoot;
  if (root === '/' || root === '') return p;
  const r = root.endsWith('/') ? root.slice(0, -1) : root;
  return p.startsWith(r + '/') ? p.slice(r.length) : p === r ? '/' : p;
}

/**
 * Content of the text attribute at host path `p`, trimmed of surrounding whitespace, or
 * `undefined` when it does not exist or cannot be read.
 */
export async function readAttr(ctx: HostContext, p: string): Promise<string | undefined> {
  try {
    return readFileSync(hostPath(ctx.hostRoot, p), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Raw bytes of the binary attribute at host path `p` (e.g. `vpd_pg83`), or `undefined`. */
export async function readBinaryAttr(ctx: HostContext, p: string): Promise<Buffer | undefined> {
  try {
    return readFileSync(hostPath(ctx.hostRoot, p));
  } catch {
    return undefined;
  }
}

/** Names in directory `p` (host path), sorted; empty when it does not exist. */
export async function listDir(ctx: HostContext, p: string): Promise<string[]> {
  try {
    return readdirSync(hostPath(ctx.hostRoot, p)).sort();
  } catch {
    return [];
  }
}

/** True when host path `p` exists (a dangling symlink does not count). */
export async function pathExists(ctx: HostContext, p: string): Promise<boolean> {
  try {
    accessSync(hostPath(ctx.hostRoot, p));
    return true;
  } catch {
    return false;
  }
}

/** True when host path `p` itself exists, even as a dangling symlink. */
export async function entryExists(ctx: HostContext, p: string): Promise<boolean> {
  try {
    lstatSync(hostPath(ctx.hostRoot, p));
    return true;
  } catch {
    return false;
  }
}

/**
 * The canonical host path of `p` (symlinks resolved, e.g. `/sys/class/iscsi_session/session1/device`
 * -> `/sys/devices/platform/host2/session1`), or `undefined` when it does not resolve.
 */
export async function resolvePath(ctx: HostContext, p: string): Promise<string | undefined> {
  try {
    return toHostAbsolute(ctx, realpathSync.native(hostPath(ctx.hostRoot, p)));
  } catch {
    return undefined;
  }
}

/** The target of symlink `p` as stored (relative or absolute), or `undefined`. */
export async function readLink(ctx: HostContext, p: string): Promise<string | undefined> {
  try {
    return readlinkSync(hostPath(ctx.hostRoot, p));
  } catch {
    return undefined;
  }
}

/** Options for {@link writeAttr}. */
export interface WriteAttrOptions {
  /** Bound on the `tee` process when a root helper is used, in ms. Default 30 000. */
  timeoutMs?: number;
  /** Open the attribute for appending, as os-brick's `tee -a` does (the kernel ignores the offset of a sysfs write; a file standing in for it in a fixture keeps every value written). Default false. */
  append?: boolean;
}

/**
 * Write `value` to the sysfs attribute at host path `p` (`/sys/class/scsi_host/host2/scan`,
 * `/sys/block/sdb/device/delete`). The kernel performs the action synchronously during the
 * write (a scan of one LUN returns after the INQUIRY completes), so errors it reports (EINVAL,
 * ENODEV) surface here.
 * @throws {@link BrickError} (code `BRICK_ERROR`, details `{ path, errno }`) when the write fails
 * @throws ProcessExecutionError / ProcessTimeoutError from `tee` when a root helper is used
 */
export async function writeAttr(ctx: HostContext, p: string, value: string, options: WriteAttrOptions = {}): Promise<void> {
  if (ctx.executor.rootHelper.length > 0) {
    await ctx.executor.run(['tee', '-a', p], { input: value, timeoutMs: options.timeoutMs ?? 30_000 });
    return;
  }
  try {
    await writeFile(hostPath(ctx.hostRoot, p), value, { flag: options.append ? 'a' : 'w' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new BrickError(`writing ${JSON.stringify(value)} to ${p} failed: ${code}`, 'BRICK_ERROR', { details: { path: p, errno: code } });
  }
}

/**
 * Replace the whole content of the regular file at host path `p` (creating it with `mode`),
 * without the content ever appearing in a process argument: Node writes it directly when no
 * root helper is configured, otherwise it is piped on stdin to `tee PATH`. Used for files that
 * may carry secrets (iSCSI node records with CHAP passwords).
 * @throws {@link BrickError} when the write fails
 */
export async function writeFilePrivate(ctx: HostContext, p: string, content: string, mode = 0o600, secrets: readonly string[] = []): Promise<void> {
  if (ctx.executor.rootHelper.length > 0) {
    await ctx.executor.run(['tee', p], { input: content, timeoutMs: 30_000, secrets });
    await ctx.executor.run(['chmod', mode.toString(8), p], { timeoutMs: 10_000 });
    return;
  }
  try {
    await writeFile(hostPath(ctx.hostRoot, p), content, { mode });
    await chmod(hostPath(ctx.hostRoot, p), mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new BrickError(`writing ${p} failed: ${code}`, 'BRICK_ERROR', { details: { path: p, errno: code } });
  }
}

/** Read a whole file at host path `p` as text (not trimmed); `undefined` when missing. With a root helper and no read access, falls back to `cat` through the Executor. */
export async function readFilePrivileged(ctx: HostContext, p: string): Promise<string | undefined> {
  try {
    return readFileSync(hostPath(ctx.hostRoot, p), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' && ctx.executor.rootHelper.length > 0) {
      const r = await ctx.executor.run(['cat', p], { timeoutMs: 30_000, checkExitCode: false });
      return r.exitCode === 0 ? r.stdout : undefined;
    }
    return undefined;
  }
}
