/**
 * Named locks that hold across threads of control in one process and across processes.
 *
 * os-brick serialises with oslo.concurrency's `synchronized('connect_volume', external=True)`:
 * one file lock for the whole host. Brick locks per name (per target, per volume) so that
 * unrelated attaches run in parallel, while two attaches of the same target, in this process
 * or in another, are serialised.
 *
 * Crash safety: the cross-process half is `flock(2)` on a lock file (via `fs-ext`). The kernel
 * drops an flock when the file descriptor closes, and that happens when the holding process
 * dies for any reason, so a crashed holder never leaves a stale lock. Lock files themselves are
 * left in place (removing them would race with a waiter that has already opened them).
 *
 * Safety: root takes these locks, so a local user must not be able to make root create or
 * open a file of the user's choosing through them (issue #13: a symlink planted in a shared
 * `/tmp/brick-locks` made root create its target). The lock directory is therefore private:
 * created 0700 when missing, and refused, before any lock file is opened, unless it is a real
 * directory (not a symlink) owned by the running user and not writable by group or others, in
 * a chain of parents only root or that user can change (the rule OpenSSH's `StrictModes`
 * applies to `~/.ssh`). Lock files are opened with `O_NOFOLLOW` and checked with `fstat` to be
 * regular files owned by the running user.
 *
 * @module
 */
import { openSync, closeSync, mkdirSync, lstatSync, statSync, fstatSync, constants, type Stats } from 'node:fs';
import { join, isAbsolute, resolve, dirname } from 'node:path';
import { homedir } from 'node:os';
import { createRequire } from 'node:module';
import { InvalidConfigError, LockTimeoutError } from '../errors.js';
import { delay } from './retry.js';

const require = createRequire(import.meta.url);
const fsExt = require('fs-ext') as { flockSync(fd: number, flags: 'ex' | 'exnb' | 'sh' | 'shnb' | 'un'): void };

/** Environment variables {@link defaultLockPath} reads (the caller passes `process.env`). */
export type LockPathEnv = Readonly<Record<string, string | undefined>>;

/**
 * The default lock directory (`lock_path`) for user `uid`: `/run/brick/locks` for root; for
 * anyone else a directory only that user can write, `$XDG_RUNTIME_DIR/brick/locks`, else
 * `$XDG_STATE_HOME/brick/locks`, else `~/.local/state/brick/locks` (relative XDG values are
 * ignored, as the XDG Base Directory specification asks). Never a shared temporary directory:
 * os-brick's `lock_path` is likewise a private state directory, not `/tmp`. Pure: reads nothing.
 */
export function defaultLockPath(uid: number, env: LockPathEnv): string {
  if (uid === 0) return '/run/brick/locks';
  for (const base of [env.XDG_RUNTIME_DIR, env.XDG_STATE_HOME]) {
    if (base && isAbsolute(base)) return join(base, 'brick', 'locks');
  }
  const home = env.HOME && isAbsolute(env.HOME) ? env.HOME : homedir();
  return join(home, '.local', 'state', 'brick', 'locks');
}

/** An {@link InvalidConfigError} naming `lock_path` for directory `dir`. */
function unsafe(dir: string, reason: string, details: Record<string, unknown> = {}): InvalidConfigError {
  return new InvalidConfigError(`lock_path ${dir}: ${reason}`, { field: 'lock_path', details: { lock_path: dir, ...details } });
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
 * Check a parent of the lock directory: only root or `uid` may be able to rename or replace
 * what is in it. A symlink must be root's or `uid`'s (the kernel's `protected_symlinks` rule)
 * and leads to a directory checked the same way; a directory writable by group or others is
 * accepted only with the sticky bit (`S_ISVTX`, 0o1000, as on `/tmp`), where others cannot move
 * entries they do not own.
 */
function checkParent(dir: string, parent: string, uid: number): void {
  const link = lstatSync(parent);
  if (link.isSymbolicLink() && link.uid !== 0 && link.uid !== uid) throw unsafe(dir, `its parent ${parent} is a symbolic link owned by uid ${link.uid}`);
  const st = link.isSymbolicLink() ? statSync(parent) : link;
  if (!st.isDirectory()) throw unsafe(dir, `its parent ${parent} is not a directory`);
  if (st.uid !== 0 && st.uid !== uid) throw unsafe(dir, `its parent ${parent} is owned by uid ${st.uid}, neither root nor uid ${uid}`);
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
    throw unsafe(dir, `its parent ${parent} is writable by group or others without the sticky bit (mode ${(st.mode & 0o7777).toString(8)})`);
  }
}

/**
 * Make `dir` exist as a private directory of user `uid`, creating it and its missing parents
 * with mode 0700, one component at a time so that nothing is ever created through a link or
 * below a parent someone else controls.
 * @throws {@link InvalidConfigError} (field `lock_path`) when `dir` is relative, a symbolic
 *   link, not a directory, owned by another user or writable by group or others, or when a
 *   parent fails {@link checkParent}
 */
export function ensurePrivateDirectory(dir: string, uid: number): void {
  if (!isAbsolute(dir)) throw unsafe(dir, 'must be an absolute path');
  const target = resolve(dir);
  const chain: string[] = [];
  for (let p = target; p !== dirname(p); p = dirname(p)) chain.unshift(p);
  let parent = '/';
  for (const p of chain) {
    checkParent(dir, parent, uid);
    if (!lstatIfAny(p)) {
      try {
        mkdirSync(p, { mode: 0o700 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    parent = p;
  }
  const st = lstatSync(target);
  if (st.isSymbolicLink()) throw unsafe(dir, 'is a symbolic link; give the real directory');
  if (!st.isDirectory()) throw unsafe(dir, 'is not a directory');
  if (st.uid !== uid) throw unsafe(dir, `is owned by uid ${st.uid}, not by uid ${uid} that runs brick`, { owner: st.uid });
  if ((st.mode & 0o022) !== 0) throw unsafe(dir, `is writable by group or others (mode ${(st.mode & 0o7777).toString(8)}); it must be 0700`, { mode: st.mode & 0o7777 });
}

/**
 * Open (creating when missing, never truncating) lock file `file` in lock directory `dir` for
 * user `uid`: `O_NOFOLLOW`, so a symlink is never followed and nothing is created at its
 * target, then `fstat` on the open descriptor: a regular file, owned by `uid`, with one link.
 * Node opens every file close-on-exec, so a program the executor starts does not inherit it.
 * @returns the file descriptor (the caller closes it)
 * @throws {@link InvalidConfigError} (field `lock_path`, `details.lock_file`) for a symlink,
 *   another file type, another owner or a hard-linked file
 */
function openLockFile(dir: string, file: string, uid: number): number {
  const cloexec = (constants as { O_CLOEXEC?: number }).O_CLOEXEC ?? 0;
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | cloexec, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw unsafe(dir, `lock file ${file} is a symbolic link; refusing to follow it`, { lock_file: file });
    throw err;
  }
  try {
    const st = fstatSync(fd);
    const reason = !st.isFile() ? 'is not a regular file' : st.uid !== uid ? `is owned by uid ${st.uid}, not ${uid}` : st.nlink !== 1 ? `has ${st.nlink} hard links` : undefined;
    if (reason) throw unsafe(dir, `lock file ${file} ${reason}; remove it`, { lock_file: file });
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** Options for {@link LockManager.withLock}. */
export interface LockOptions {
  /** Give up after this many ms. Default: the manager's `defaultTimeoutMs`. */
  timeoutMs?: number;
}

/**
 * Hands out named locks. One manager per lock directory per process; names are free text
 * (sanitised into file names), e.g. `iscsi-iqn.2010-10.org.openstack:volume-1`.
 */
export class LockManager {
  /** Directory that holds the lock files. */
  readonly lockPath: string;
  private readonly defaultTimeoutMs: number;
  private readonly local = new Map<string, Promise<void>>();

  /** The effective user id lock directories and files must belong to. */
  private readonly uid = process.geteuid?.() ?? 0;

  /**
   * Nothing is touched here: the directory is created and checked when a lock is first taken,
   * and again on every lock after (a check is a few `lstat` calls).
   * @param lockPath directory for lock files (`lock_path`); created with its missing parents,
   *   mode 0700, when missing. See {@link defaultLockPath} for the usual choice.
   * @param defaultTimeoutMs bound on waiting for a lock, in ms (default 300 000, as long as the slowest attach may take)
   */
  constructor(lockPath: string, defaultTimeoutMs = 300_000) {
    this.lockPath = lockPath;
    this.defaultTimeoutMs = defaultTimeoutMs;
  }

  /** The lock file used for `name`. */
  fileFor(name: string): string {
    return join(this.lockPath, `brick-${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.lock`);
  }

  /**
   * Run `fn` while holding the lock `name`, in this process and across processes.
   * @throws {@link InvalidConfigError} (field `lock_path`) when the lock directory or the lock
   *   file is unsafe (see the module notes); `fn` does not run and nothing is created
   * @throws {@link LockTimeoutError} when the lock is not free within the timeout
   * @throws whatever `fn` throws (the lock is released first)
   */
  async withLock<T>(name: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    const deadline = Date.now() + timeoutMs;
    // In-process: chain on whoever holds or waits for this name.
    const previous = this.local.get(name) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = previous.then(() => mine);
    this.local.set(name, tail);
    try {
      // The timer racing the in-process wait is cancelled as soon as the wait ends, so a
      // process that took a lock is not kept alive until the timeout would have fired.
      const timer = new AbortController();
      const waited = await Promise.race([previous.then(() => true), delay(Math.max(0, deadline - Date.now()), timer.signal).then(() => false)]);
      timer.abort();
      if (!waited) throw new LockTimeoutError(name, timeoutMs);
      const fd = await this.acquireFile(name, deadline, timeoutMs);
      try {
        return await fn();
      } finally {
        try {
          fsExt.flockSync(fd, 'un');
        } finally {
          closeSync(fd);
        }
      }
    } finally {
      release();
      if (this.local.get(name) === tail) this.local.delete(name);
    }
  }

  private async acquireFile(name: string, deadline: number, timeoutMs: number): Promise<number> {
    ensurePrivateDirectory(this.lockPath, this.uid);
    const fd = openLockFile(this.lockPath, this.fileFor(name), this.uid);
    let interval = 5;
    for (;;) {
      try {
        fsExt.flockSync(fd, 'exnb');
        return fd;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') {
          closeSync(fd);
          throw err;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        closeSync(fd);
        throw new LockTimeoutError(name, timeoutMs);
      }
      await delay(Math.min(interval, left));
      interval = Math.min(interval * 2, 100);
    }
  }
}
