/**
 * Private directories and files: where Brick keeps what root must not be tricked into touching
 * (the lock directory `lock_path`, the data directory `data_dir`, the file backend's
 * `pool_path`, and the files in them).
 *
 * A configured directory is refused with an {@link InvalidConfigError} naming its key, before
 * anything is created, when it cannot be a place for files: the root directory, anything under
 * `/proc`, `/sys` or `/dev`, anything on a pseudo filesystem (by `statfs(2)` `f_type` of its
 * nearest existing ancestor, which also catches a link into one), or a path whose existing part
 * is not a directory. It is then made private to the running user the way OpenSSH's
 * `StrictModes` treats `~/.ssh`: a real directory (not a symlink) owned by that user and not
 * writable by group or others, below parents only root or that user can change; when missing
 * it is created mode 0700, one component at a time.
 *
 * Files in such a directory are opened with `O_NOFOLLOW` and checked with `fstat`
 * ({@link ownedFileProblem}): a regular file owned by the running user with one link.
 *
 * @module
 */
import { accessSync, constants, lstatSync, mkdirSync, statSync, statfsSync, type Stats } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { InvalidConfigError } from '../errors.js';

/**
 * Pseudo filesystems no state may live on, by `statfs(2)` `f_type` (the kernel's
 * `include/uapi/linux/magic.h`): writes there reach the kernel, not a disk, or hang.
 */
export const PSEUDO_FILESYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1373, 'devtmpfs'],
  [0x1cd1, 'devpts'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x62656570, 'configfs'],
  [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'],
  [0xde5e81e4, 'efivarfs'],
]);

/** Trees refused by prefix whatever is mounted there (`/dev` is often a plain tmpfs). */
const PSEUDO_TREES = ['/proc', '/sys', '/dev'];

/**
 * The {@link InvalidConfigError} for configured directory `dir` under key `field`
 * (`lock_path`, `data_dir`, `pool_path`): message `<field> <dir>: <reason>`, `details` holding
 * `{ [field]: dir, ...details }`.
 */
export function privateDirectoryError(field: string, dir: string, reason: string, details: Record<string, unknown> = {}): InvalidConfigError {
  return new InvalidConfigError(`${field} ${dir}: ${reason}`, { field, details: { [field]: dir, ...details } });
}

/** Where the existing part of `target` ends: its nearest existing ancestor (links followed), or an error. */
function nearestExisting(field: string, dir: string, target: string): { path: string; stats: Stats } {
  for (let p = target; ; p = dirname(p)) {
    try {
      return { path: p, stats: statSync(p) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code === 'ENOENT' || code === 'ENOTDIR') && p !== dirname(p)) continue;
      throw privateDirectoryError(field, dir, `cannot be examined at ${p}: ${code ?? (err as Error).message}`);
    }
  }
}

/**
 * Refuse a directory that cannot hold files, before anything is created (see the module notes).
 * Reads only: `stat` of the path and its ancestors and one `statfs`.
 * @param field the configuration key that named `dir`, for the error
 * @throws {@link InvalidConfigError} (field `field`) for a relative path, `/`, a path under
 *   `/proc`, `/sys` or `/dev`, a path on a pseudo filesystem, or one whose existing part is
 *   not a directory
 */
export function checkDirectoryLocation(dir: string, field: string): void {
  if (!isAbsolute(dir)) throw privateDirectoryError(field, dir, 'must be an absolute path');
  const target = resolve(dir);
  if (target === '/') throw privateDirectoryError(field, dir, 'is the root directory; give a directory of its own');
  const tree = PSEUDO_TREES.find((t) => target === t || target.startsWith(`${t}/`));
  if (tree) throw privateDirectoryError(field, dir, `is under ${tree}, a pseudo filesystem that cannot hold files`);
  const { path, stats } = nearestExisting(field, dir, target);
  if (!stats.isDirectory()) throw privateDirectoryError(field, dir, path === target ? 'is not a directory' : `is not a directory: ${path} is not one`);
  const type = PSEUDO_FILESYSTEMS.get(Number(statfsSync(path).type));
  if (type) throw privateDirectoryError(field, dir, `is on a ${type} pseudo filesystem (at ${path}), which cannot hold files`, { fs_type: type });
}

/** `lstat`, or undefined when nothing is there. */
function lstatIfAny(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Check a parent of `dir`: only root or `uid` may be able to rename or replace what is in it.
 * A symlink must be root's or `uid`'s (the kernel's `protected_symlinks` rule) and leads to a
 * directory checked the same way; a directory writable by group or others is accepted only
 * with the sticky bit (`S_ISVTX`, 0o1000, as on `/tmp`), where others cannot move entries they
 * do not own.
 */
function checkParent(field: string, dir: string, parent: string, uid: number): void {
  const link = lstatSync(parent);
  if (link.isSymbolicLink() && link.uid !== 0 && link.uid !== uid) throw privateDirectoryError(field, dir, `its parent ${parent} is a symbolic link owned by uid ${link.uid}`);
  const st = link.isSymbolicLink() ? statSync(parent) : link;
  if (!st.isDirectory()) throw privateDirectoryError(field, dir, `its parent ${parent} is not a directory`);
  if (st.uid !== 0 && st.uid !== uid) throw privateDirectoryError(field, dir, `its parent ${parent} is owned by uid ${st.uid}, neither root nor uid ${uid}`);
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
    throw privateDirectoryError(field, dir, `its parent ${parent} is writable by group or others without the sticky bit (mode ${(st.mode & 0o7777).toString(8)})`);
  }
}

/** `mkdir` one component, mode 0700; a failure other than EEXIST is refused naming `field`. */
function makeComponent(field: string, dir: string, p: string): void {
  try {
    mkdirSync(p, { mode: 0o700 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') return;
    const why = e.code === 'EROFS' ? 'read-only file system' : e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied' : e.message;
    throw privateDirectoryError(field, dir, `cannot be created: ${p}: ${e.code ?? 'error'} (${why})`, { errno: e.code });
  }
}

/** Every component of absolute `dir` from the top down: `/a/b` gives `['/a', '/a/b']`. */
function componentChain(dir: string): string[] {
  const chain: string[] = [];
  for (let p = resolve(dir); p !== dirname(p); p = dirname(p)) chain.unshift(p);
  return chain;
}

/**
 * Make `dir` exist as a private directory of user `uid` (see the module notes): refused first
 * by {@link checkDirectoryLocation}, then created with its missing parents, mode 0700, one
 * component at a time, each parent checked before anything is made in it, so that nothing is
 * ever created through a link, below a parent someone else controls, or at all when `dir` is
 * refused.
 * @param field the configuration key that named `dir` (`lock_path`, `data_dir`, `pool_path`)
 * @throws {@link InvalidConfigError} (field `field`) as {@link checkDirectoryLocation}; when a
 *   component cannot be created (a read-only file system, no permission); when `dir` is a
 *   symbolic link, not a directory, owned by another user or writable by group or others; or
 *   when a parent fails the parent rule (another owner, writable by others without the sticky bit)
 */
export function ensurePrivateDirectory(dir: string, uid: number, field: string): void {
  checkDirectoryLocation(dir, field);
  const target = resolve(dir);
  const chain = componentChain(dir);
  let parent = '/';
  for (const p of chain) {
    checkParent(field, dir, parent, uid);
    if (!lstatIfAny(p)) makeComponent(field, dir, p);
    parent = p;
  }
  checkOwnDirectory(field, dir, lstatSync(target), uid);
}

/** The rules for the directory itself, from its `lstat`: a real directory of `uid`, not writable by group or others. */
function checkOwnDirectory(field: string, dir: string, st: Stats, uid: number): void {
  if (st.isSymbolicLink()) throw privateDirectoryError(field, dir, 'is a symbolic link; give the real directory');
  if (!st.isDirectory()) throw privateDirectoryError(field, dir, 'is not a directory');
  if (st.uid !== uid) throw privateDirectoryError(field, dir, `is owned by uid ${st.uid}, not by uid ${uid} that runs brick`, { owner: st.uid });
  if ((st.mode & 0o022) !== 0) throw privateDirectoryError(field, dir, `is writable by group or others (mode ${(st.mode & 0o7777).toString(8)}); it must be 0700`, { mode: st.mode & 0o7777 });
}

/** What {@link privateDirectoryProblem} found. */
export interface PrivateDirectoryVerdict {
  /** Why `dir` cannot be used (the message {@link ensurePrivateDirectory} would throw), or undefined when it can. */
  problem?: string;
  /** True when `dir` does not exist yet (it would be created, mode 0700, at first use). */
  missing: boolean;
}

/**
 * Judge `dir` by the rules of {@link ensurePrivateDirectory} without creating or changing
 * anything (for `brick host doctor`): the location rules, the parent rule for every existing
 * parent, the directory's own rules when it exists, and, when it does not, whether its nearest
 * existing ancestor is writable by this process (`access(2)` `W_OK`) so that it could be
 * created. Reads only. Never throws.
 * @param field the configuration key that named `dir` (`lock_path`, `data_dir`)
 */
export function privateDirectoryProblem(dir: string, uid: number, field: string): PrivateDirectoryVerdict {
  try {
    checkDirectoryLocation(dir, field);
    const target = resolve(dir);
    const chain = componentChain(dir);
    let parent = '/';
    for (const p of chain) {
      checkParent(field, dir, parent, uid);
      if (!lstatIfAny(p)) {
        try {
          accessSync(parent, constants.W_OK);
        } catch {
          return { problem: `${field} ${dir}: cannot be created: ${parent} is not writable by this process`, missing: true };
        }
        return { missing: true };
      }
      parent = p;
    }
    checkOwnDirectory(field, dir, lstatSync(target), uid);
    return { missing: false };
  } catch (err) {
    return { problem: (err as Error).message, missing: false };
  }
}

/**
 * Why a file in a private directory must not be used, from its `fstat` (or `lstat`): not a
 * regular file (a symbolic link, a FIFO, a device...), owned by someone other than `uid`, or
 * with more than one hard link (another name could reach it). Undefined when it is fine.
 */
export function ownedFileProblem(st: Stats, uid: number): string | undefined {
  if (st.isSymbolicLink()) return 'is a symbolic link';
  if (!st.isFile()) return 'is not a regular file';
  if (st.uid !== uid) return `is owned by uid ${st.uid}, not ${uid}`;
  if (st.nlink !== 1) return `has ${st.nlink} hard links`;
  return undefined;
}
