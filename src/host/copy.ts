/**
 * Volume data copies for snapshots and clones, with progress: {@link copyVolumeData}, the one
 * helper the file, LVM and FlashSystem drivers call.
 *
 * Devices (LVs, attached LUNs) are copied by `dd` in bounded runs through the host's executor,
 * so a root helper serves a caller that cannot open the devices itself, every run has a
 * timeout, and progress is reported after each run. This is Cinder's
 * `volume_utils.copy_volume`: `dd` with `iflag=direct` / `oflag=direct` on block devices, and
 * `conv=sparse` where the destination may stay sparse.
 *
 * Files Brick owns (the file driver's volumes) are copied in-process instead, because that is
 * what keeps their snapshots fast: a reflink when the filesystem can, otherwise a streamed copy
 * of the data extents only. A reflink (`FICLONE`, btrfs/XFS/bcachefs) shares extents and takes constant time. Without one,
 * the copy visits only the source's data extents (lseek `SEEK_DATA`/`SEEK_HOLE`) and, within
 * them, skips writing chunks that are entirely zero, so a sparse 1 GiB volume with 8 MiB of
 * data costs about 8 MiB of reads and writes and stays sparse at the destination.
 *
 * @module
 */
import { constants } from 'node:fs';
import { copyFile, open, unlink, type FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { HostContext } from './context.js';
import { HostIoError } from '../errors.js';

const require = createRequire(import.meta.url);
const fsExt = require('fs-ext') as { seekSync(fd: number, offset: number, whence: number): number };
/** lseek(2) whence values from <unistd.h> (Linux): next data at or after offset, next hole at or after offset. */
const SEEK_DATA = 3;
const SEEK_HOLE = 4;

/**
 * The data extents of an open file as [start, end) byte ranges, from lseek SEEK_DATA/SEEK_HOLE
 * (Linux 3.1+). Falls back to one extent covering the file where the filesystem does not
 * support them.
 */
export function dataExtents(fd: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  let pos = 0;
  try {
    while (pos < size) {
      let start: number;
      try {
        start = fsExt.seekSync(fd, pos, SEEK_DATA);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENXIO') break; // no data after pos
        throw err;
      }
      const end = Math.min(fsExt.seekSync(fd, start, SEEK_HOLE), size);
      out.push([start, end]);
      pos = end;
    }
  } catch {
    return [[0, size]];
  }
  return out;
}

/** How a copy was done. */
export type CopyMethod = 'reflink' | 'stream' | 'dd';

/** Options for {@link copySparse}. */
export interface CopyOptions {
  /** Called after each chunk with (bytes done, bytes total). */
  onProgress?: (done: number, total: number) => void;
  /** Chunk size in bytes (default 4 MiB). */
  chunkBytes?: number;
  /** Try a reflink first (default true). */
  reflink?: boolean;
}

const ZEROS = Buffer.alloc(4 * 1024 * 1024);

function isZero(buf: Buffer, n: number): boolean {
  // Buffer.compare is a native memcmp: far faster than a JS loop over the bytes.
  for (let off = 0; off < n; off += ZEROS.length) {
    const len = Math.min(ZEROS.length, n - off);
    if (buf.compare(ZEROS, 0, len, off, off + len) !== 0) return false;
  }
  return true;
}

/** Open flags for a copy's source: never through a symlink (ELOOP), never blocking on a FIFO. */
const SOURCE_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** Open flags for a copy's destination: a new file only, never through a symlink. */
const DESTINATION_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Open copy source `src` with {@link SOURCE_FLAGS} and check it is a regular file. */
async function openSource(src: string): Promise<FileHandle> {
  const input = await open(src, SOURCE_FLAGS);
  if ((await input.stat()).isFile()) return input;
  await input.close();
  throw new HostIoError(`copy source ${src} is not a regular file`, { details: { path: src, errno: 'EINVAL' } });
}

/**
 * Reflink the open source (through `/proc/self/fd/<fd>`, which names the opened file itself,
 * not whatever `src` names now) to the new file `dst`.
 * @returns false when no reflink could be made (and nothing is left at `dst`)
 * @throws the fs error EEXIST when `dst` exists (a planted link included)
 */
async function tryReflink(input: FileHandle, dst: string): Promise<boolean> {
  try {
    await copyFile(`/proc/self/fd/${input.fd}`, dst, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw err;
    await unlink(dst).catch(() => undefined);
    return false;
  }
}

/**
 * Copy `src` to a new file `dst` (which must not exist), preserving size and holes: a reflink
 * when `reflink` allows and the filesystem can, else the streamed extent copy. Neither side is
 * reached through a symbolic link: the source is opened with `O_NOFOLLOW` and must be a regular
 * file, the destination is created with `O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600.
 * On failure the partial destination is removed.
 * @returns the method used
 * @throws the underlying fs error: ENOENT for a missing source, ELOOP for a source that is a
 *   symbolic link, EEXIST for an existing destination (a link included)
 * @throws {@link HostIoError} for a source that is not a regular file
 */
export async function copySparse(src: string, dst: string, options: CopyOptions = {}): Promise<CopyMethod> {
  const input = await openSource(src);
  let output: FileHandle | undefined;
  try {
    const total = (await input.stat()).size;
    if (options.reflink !== false && (await tryReflink(input, dst))) {
      options.onProgress?.(total, total);
      return 'reflink';
    }
    output = await open(dst, DESTINATION_FLAGS, 0o600);
    await streamExtents(input, output, total, options);
    return 'stream';
  } catch (err) {
    if (output) {
      await output.close().catch(() => undefined);
      output = undefined;
      await unlink(dst).catch(() => undefined);
    }
    throw err;
  } finally {
    await input.close();
    await output?.close();
  }
}

/** The streamed half of {@link copySparse}: the data extents of `input`, zero chunks skipped, then size and sync. */
async function streamExtents(input: FileHandle, output: FileHandle, total: number, options: CopyOptions): Promise<void> {
  const chunk = options.chunkBytes ?? 4 * 1024 * 1024;
  const buf = Buffer.allocUnsafe(chunk);
  // Visit only the data extents: holes stay holes and cost nothing to copy.
  for (const [start, end] of dataExtents(input.fd, total)) {
    let pos = start;
    while (pos < end) {
      const { bytesRead } = await input.read(buf, 0, Math.min(chunk, end - pos), pos);
      if (bytesRead === 0) break;
      if (!isZero(buf, bytesRead)) await output.write(buf, 0, bytesRead, pos);
      pos += bytesRead;
      options.onProgress?.(pos, total);
    }
  }
  options.onProgress?.(total, total);
  await output.truncate(total);
  await output.sync();
}

const MIB = 1024 * 1024;

/** Options for {@link copyVolumeData}. */
export interface VolumeCopyOptions {
  /** Bytes to copy, from offset 0 of both sides. */
  sizeBytes: number;
  /** Bytes per `dd` run (default 128 MiB), rounded down to whole blocks. Progress is reported after each run. */
  chunkBytes?: number;
  /** `dd` block size in bytes (default 1 MiB; a multiple of 512 for direct I/O). */
  blockBytes?: number;
  /** Add `conv=sparse`: blocks of zeros are skipped, not written (only for a destination that reads as zeros). Default false. */
  sparse?: boolean;
  /** Add `iflag=direct` / `oflag=direct` (default true: block devices, as Cinder's `copy_volume`). */
  direct?: boolean;
  /** Add `fdatasync` to the last run's `conv`, so the data is on stable storage when the copy returns. Default false. */
  sync?: boolean;
  /** Called with (bytes done, bytes total): 0 first, then after each run. */
  onProgress?: (done: number, total: number) => void;
  /** Bound on one `dd` run, ms (default 60 s plus 1 s per MiB of the run). */
  timeoutMs?: number;
  /**
   * `src` and `dst` are regular files this process owns (the file driver's): `dst` is created
   * (it must not exist) by {@link copySparse}, with a reflink unless `reflink` is false, and
   * `sizeBytes` is the size of `src`. Without it the copy runs `dd` through the executor.
   */
  ownedFiles?: { reflink: boolean };
}

function ddSize(bytes: number): string {
  if (bytes % MIB === 0) return `${bytes / MIB}M`;
  if (bytes % 1024 === 0) return `${bytes / 1024}K`;
  return String(bytes);
}

/**
 * The `dd` argvs of a chunked copy: `dd if=<src> of=<dst> bs=<block> skip=<n> seek=<n>
 * count=<n> [iflag=direct oflag=direct] conv=[sparse,]notrunc[,fdatasync]`, offsets and counts in
 * blocks (`fdatasync` on the last run only, with `sync`).
 * The last run may ask for more than is left; `dd` stops at the end of the source. Each run
 * comes with its length and the byte offset it ends at (for progress).
 */
export function ddChunkArgvs(src: string, dst: string, options: Pick<VolumeCopyOptions, 'sizeBytes' | 'chunkBytes' | 'blockBytes' | 'sparse' | 'direct' | 'sync'>): { argv: string[]; runBytes: number; endBytes: number }[] {
  const block = options.blockBytes ?? MIB;
  const perRun = Math.max(1, Math.floor((options.chunkBytes ?? 128 * MIB) / block));
  const blocks = Math.ceil(options.sizeBytes / block);
  const direct = options.direct === false ? [] : ['iflag=direct', 'oflag=direct'];
  const conv = options.sparse ? 'conv=sparse,notrunc' : 'conv=notrunc';
  const runs: { argv: string[]; runBytes: number; endBytes: number }[] = [];
  for (let done = 0; done < blocks; done += perRun) {
    const count = Math.min(perRun, blocks - done);
    const last = done + count >= blocks;
    const argv = ['dd', `if=${src}`, `of=${dst}`, `bs=${ddSize(block)}`, `skip=${done}`, `seek=${done}`, `count=${count}`, ...direct, last && options.sync ? `${conv},fdatasync` : conv];
    runs.push({ argv, runBytes: count * block, endBytes: Math.min(options.sizeBytes, (done + count) * block) });
  }
  return runs;
}

/**
 * Copy the first `sizeBytes` of `src` onto `dst` with progress (see the module notes).
 * Devices: `dd` runs through `ctx.executor` (root helper applied), each bounded by `timeoutMs`.
 * Owned files (`ownedFiles`): reflink or the in-process extent copy of {@link copySparse}.
 * @returns how the data was copied
 * @throws {@link ProcessExecutionError} / {@link ProcessTimeoutError} when a `dd` run fails or
 *   overruns; for owned files the fs error of {@link copySparse}
 */
export async function copyVolumeData(ctx: Pick<HostContext, 'executor'>, src: string, dst: string, options: VolumeCopyOptions): Promise<CopyMethod> {
  if (options.ownedFiles) {
    const fileOptions: CopyOptions = { reflink: options.ownedFiles.reflink };
    if (options.onProgress) fileOptions.onProgress = options.onProgress;
    return copySparse(src, dst, fileOptions);
  }
  const total = options.sizeBytes;
  options.onProgress?.(0, total);
  for (const run of ddChunkArgvs(src, dst, options)) {
    await ctx.executor.run(run.argv, { timeoutMs: options.timeoutMs ?? 60_000 + Math.ceil(run.runBytes / MIB) * 1_000 });
    options.onProgress?.(run.endBytes, total);
  }
  return 'dd';
}
