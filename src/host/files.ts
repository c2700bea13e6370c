/**
 * Plain files and directories on the host, for connectors that keep state or hand files to a
 * program: what a path is and how big, records under `/run` and a mount point base, private
 * temporary files for a secret a program reads, and whether a program is installed.
 *
 * Paths are absolute *host* paths mapped under the context's `hostRoot` (see {@link hostPath}),
 * as in {@link readAttr}, except where a function says otherwise: files made for a program the
 * Executor runs, and that program itself, live on the filesystem the Executor sees.
 *
 * These files are written by this process with its own rights; a write that needs root goes
 * through `writeFilePrivate` / `writeAttr` in `sysfs.ts`, the one privileged-write policy.
 *
 * @module
 */
import { mkdir, mkdtemp, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { HostContext } from './context.js';
import { hostPath } from './context.js';

/** What {@link statHostPath} finds at a path (links followed). */
export interface HostPathStat {
  /** `block` for a block device, `file` for a regular file, `directory`, or `other` (character device, socket, FIFO). */
  kind: 'block' | 'file' | 'directory' | 'other';
  /** Size in bytes as `stat` reports it: the file's length; 0 for a block device (read its size with `deviceSizeBytes`). */
  size: number;
}

/** The kind and size of host path `p` (symlinks followed), or `undefined` when it does not exist. Never throws. */
export async function statHostPath(ctx: Pick<HostContext, 'hostRoot'>, p: string): Promise<HostPathStat | undefined> {
  try {
    const st = await stat(hostPath(ctx.hostRoot, p));
    const kind = st.isBlockDevice() ? 'block' : st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'other';
    return { kind, size: st.size };
  } catch {
    return undefined;
  }
}

/** Options for {@link writeHostFile}. */
export interface WriteHostFileOptions {
  /** Create missing parent directories (mode 0755) first. Default false. */
  parents?: boolean;
}

/**
 * Write `content` to host path `p`, replacing the file, with this process's rights (for records
 * Brick keeps, such as attachment references under `/run/brick` or a mount point base).
 * @throws the file system's error (`ENOENT` for a missing parent, `EACCES`...) when the write fails
 */
export async function writeHostFile(ctx: Pick<HostContext, 'hostRoot'>, p: string, content: string, options: WriteHostFileOptions = {}): Promise<void> {
  const real = hostPath(ctx.hostRoot, p);
  if (options.parents) await mkdir(dirname(real), { recursive: true, mode: 0o755 });
  await writeFile(real, content);
}

/**
 * Remove the file at host path `p`; a file already gone is not an error.
 * @throws the file system's error for anything but a missing file (e.g. `EACCES`)
 */
export async function removeHostFile(ctx: Pick<HostContext, 'hostRoot'>, p: string): Promise<void> {
  await rm(hostPath(ctx.hostRoot, p), { force: true });
}

/**
 * Create directory `dir` (host path) and its parents, mode 0755: directly, or, when this process
 * may not (`EACCES`, `EPERM`), with `mkdir -p` through the Executor's root helper.
 * @throws the file system's error for other failures, or ProcessExecutionError from `mkdir`
 */
export async function makeHostDir(ctx: HostContext, dir: string): Promise<void> {
  try {
    await mkdir(hostPath(ctx.hostRoot, dir), { recursive: true, mode: 0o755 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
    await ctx.executor.run(['mkdir', '-p', hostPath(ctx.hostRoot, dir)], { timeoutMs: 30_000 });
  }
}

/** Remove empty directory `dir` (host path); never throws (a directory not empty, still mounted or gone stays as it is). */
export async function removeHostDir(ctx: Pick<HostContext, 'hostRoot'>, dir: string): Promise<void> {
  try {
    await rmdir(hostPath(ctx.hostRoot, dir));
  } catch {
    /* not empty, still mounted or already gone */
  }
}

/** A private temporary directory, given to the callback of {@link withPrivateTempDir}. */
export interface PrivateTempDir {
  /** Absolute path of the directory (mode 0700). */
  readonly path: string;
  /**
   * Write file `name` in the directory with mode 0600 and return its absolute path.
   * @throws the file system's error when the write fails
   */
  write(name: string, content: string): Promise<string>;
}

/**
 * Run `fn` with a fresh private directory (`<os temp dir>/<prefix>XXXXXX`, mode 0700) for files
 * that carry a secret a program reads by path (os-brick writes Ceph's keyring and conf file this
 * way), and remove the directory with everything in it when `fn` settles, whether it returns or
 * throws. The directory is on the filesystem the Executor's programs see, so it is not mapped
 * under the host root.
 * @returns what `fn` returns
 * @throws what `fn` throws, or the file system's error when the directory cannot be made
 */
export async function withPrivateTempDir<T>(prefix: string, fn: (dir: PrivateTempDir) => Promise<T>): Promise<T> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  const dir: PrivateTempDir = {
    path,
    async write(name, content) {
      const file = join(path, name);
      await writeFile(file, content, { mode: 0o600 });
      return file;
    },
  };
  try {
    return await fn(dir);
  } finally {
    await rm(path, { recursive: true, force: true });
  }
}

/**
 * True when program `path` (absolute) exists where the Executor runs it: the real filesystem,
 * not the host root (a vendor CLI such as Huawei's `sds_cli`). Never throws.
 */
export async function programExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
