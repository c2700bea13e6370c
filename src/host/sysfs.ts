/**
 * Small, safe accessors for sysfs (and other kernel-provided trees under `/sys`, `/dev`, `/etc`).
 *
 * Every path given here is an absolute *host* path (`/sys/block/sdb/device/wwid`); it is mapped
 * under the context's `hostRoot` with {@link hostPath}, so unit tests run the same code against a
 * fixture tree copied from a real kernel. Reads never throw for a missing file (sysfs entries
 * come and go while devices are added and removed): they return `undefined` or an empty list.
 *
 * Writes that need root have one policy, {@link writeAsRoot}, after os-brick's `echo_scsi_command`
 * (`tee -a` as root): when the context's executor has a root helper (Brick runs unprivileged),
 * the value is piped on stdin to `tee` through the Executor; when it has none (Brick runs as
 * root, or a test), Node writes the file itself, which costs no process. Every privileged write
 * of a host attribute or file in `host/` goes through it ({@link writeAttr}, {@link writeFilePrivate}).
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
import { readFileSync, readdirSync, readlinkSync, realpathSync, lstatSync } from 'node:fs';
import { writeFile, chmod } from 'node:fs/promises';
import { HostIoError } from '../errors.js';
import type { HostContext } from './context.js';
import { hostPath, hostPathExists } from './context.js';

/** Strip the context's host root from a path produced by `realpath` under it. */
function toHostAbsolute(ctx: Pick<HostContext, 'hostRoot'>, p: string): string {
  const root = ctx.hostRoot;
  if (root === '/' || root === '') return p;
  const r = root.endsWith('/') ? root.slice(0, -1) : root;
  return p.startsWith(r + '/') ? p.slice(r.length) : p === r ? '/' : p;
}

/**
 * Content of the text attribute at host path `p`, trimmed of surrounding whitespace, or
 * `undefined` when it does not exist or cannot be read.
 */
export async function readAttr(ctx: Pick<HostContext, 'hostRoot'>, p: string): Promise<string | undefined> {
  try {
    return readFileSync(hostPath(ctx.hostRoot, p), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Raw bytes of the binary attribute at host path `p` (e.g. `vpd_pg83`), or `undefined`. */
export async function readBinaryAttr(ctx: Pick<HostContext, 'hostRoot'>, p: string): Promise<Buffer | undefined> {
  try {
    return readFileSync(hostPath(ctx.hostRoot, p));
  } catch {
    return undefined;
  }
}

/** Names in directory `p` (host path), sorted; empty when it does not exist. */
export async function listDir(ctx: Pick<HostContext, 'hostRoot'>, p: string): Promise<string[]> {
  try {
    return readdirSync(hostPath(ctx.hostRoot, p)).sort();
  } catch {
    return [];
  }
}

/** True when host path `p` exists (a dangling symlink does not count). Never throws. The same function as {@link hostPathExists}. */
export const pathExists: (ctx: Pick<HostContext, 'hostRoot'>, p: string) => Promise<boolean> = hostPathExists;

/** True when host path `p` itself exists, even as a dangling symlink. */
export async function entryExists(ctx: Pick<HostContext, 'hostRoot'>, p: string): Promise<boolean> {
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
export async function resolvePath(ctx: Pick<HostContext, 'hostRoot'>, p: string): Promise<string | undefined> {
  try {
    return toHostAbsolute(ctx, realpathSync.native(hostPath(ctx.hostRoot, p)));
  } catch {
    return undefined;
  }
}

/** The target of symlink `p` as stored (relative or absolute), or `undefined`. */
export async function readLink(ctx: Pick<HostContext, 'hostRoot'>, p: string): Promise<string | undefined> {
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

/** How {@link writeAsRoot} writes: append or replace, the mode of a created file, the values to mask. */
interface RootWrite {
  append: boolean;
  /** Mode the file ends with (set with `chmod` after the write); none for an attribute. */
  mode?: number;
  /** Values to mask in the `tee` command's log lines and errors. */
  secrets?: readonly string[];
  timeoutMs: number;
}

/**
 * The one way Brick writes a file or kernel attribute that needs root: with a root helper
 * (Brick runs unprivileged), `content` is piped on stdin to `tee [-a] PATH` through the
 * Executor, so it never appears in a process argument, then `chmod` sets `mode`; without one
 * (Brick runs as root, or a test over a fixture tree), Node writes the file under the host root.
 * @throws {@link HostIoError} (details `{ path, errno }`) when Node's write fails
 * @throws ProcessExecutionError / ProcessTimeoutError from `tee` or `chmod`
 */
async function writeAsRoot(ctx: HostContext, p: string, content: string, how: RootWrite, what: string): Promise<void> {
  if (ctx.executor.rootHelper.length > 0) {
    await ctx.executor.run(how.append ? ['tee', '-a', p] : ['tee', p], { input: content, timeoutMs: how.timeoutMs, ...(how.secrets ? { secrets: how.secrets } : {}) });
    if (how.mode !== undefined) await ctx.executor.run(['chmod', how.mode.toString(8), p], { timeoutMs: 10_000 });
    return;
  }
  const real = hostPath(ctx.hostRoot, p);
  try {
    await writeFile(real, content, { flag: how.append ? 'a' : 'w', ...(how.mode !== undefined ? { mode: how.mode } : {}) });
    if (how.mode !== undefined) await chmod(real, how.mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new HostIoError(`writing ${what} failed: ${code}`, { details: { path: p, errno: code } });
  }
}

/**
 * Write `value` to the sysfs attribute at host path `p` (`/sys/class/scsi_host/host2/scan`,
 * `/sys/block/sdb/device/delete`), as root through {@link writeAsRoot}'s policy (os-brick's
 * `echo_scsi_command`: `tee -a` as root). The kernel performs the action synchronously during
 * the write (a scan of one LUN returns after the INQUIRY completes), so errors it reports
 * (EINVAL, ENODEV) surface here.
 * @throws {@link HostIoError} (details `{ path, errno }`) when the write fails
 * @throws ProcessExecutionError / ProcessTimeoutError from `tee` when a root helper is used
 */
export async function writeAttr(ctx: HostContext, p: string, value: string, options: WriteAttrOptions = {}): Promise<void> {
  // Through the root helper the write always appends (`tee -a`), as os-brick does.
  const append = ctx.executor.rootHelper.length > 0 || options.append === true;
  await writeAsRoot(ctx, p, value, { append, timeoutMs: options.timeoutMs ?? 30_000 }, `${JSON.stringify(value)} to ${p}`);
}

/**
 * Replace the whole content of the regular file at host path `p` (creating it with `mode`,
 * default 0600), as root through {@link writeAsRoot}'s policy, without the content ever
 * appearing in a process argument. Used for files that may carry secrets (iSCSI node records
 * with CHAP passwords, whose values are given in `secrets` to mask) and for host identity
 * files under `/etc`.
 * @throws {@link HostIoError} (details `{ path, errno }`) when the write fails
 * @throws ProcessExecutionError / ProcessTimeoutError from `tee` or `chmod` when a root helper is used
 */
export async function writeFilePrivate(ctx: HostContext, p: string, content: string, mode = 0o600, secrets: readonly string[] = []): Promise<void> {
  await writeAsRoot(ctx, p, content, { append: false, mode, secrets, timeoutMs: 30_000 }, p);
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
