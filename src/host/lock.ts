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
 * applies to `~/.ssh`; `ensurePrivateDirectory` in `private-dir.ts`, which the data and pool
 * directories share). Lock files are opened with `O_NOFOLLOW` and checked with `fstat` to be
 * regular files owned by the running user.
 *
 * @module
 */
import { openSync, closeSync, fstatSync, constants } from 'node:fs';
import { join, isAbsolute } from 'node:path';
import { homedir } from 'node:os';
import { createRequire } from 'node:module';
import { LockTimeoutError, type InvalidConfigError } from '../errors.js';
import { ensurePrivateDirectory, ownedFileProblem, privateDirectoryError } from './private-dir.js';
import { delay } from './retry.js';

const require = createRequire(import.meta.url);
type FsExt = { flockSync(fd: number, flags: 'ex' | 'exnb' | 'sh' | 'shnb' | 'un'): void };
let fsExtModule: FsExt | undefined;
/** fs-ext (a native addon), loaded on the first lock taken rather than with this module (issue 18). */
function fsExt(): FsExt {
  return (fsExtModule ??= require('fs-ext') as FsExt);
}

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

/** An {@link InvalidConfigError} naming `lock_path` for lock directory `dir`. */
function unsafe(dir: string, reason: string, details: Record<string, unknown> = {}): InvalidConfigError {
  return privateDirectoryError('lock_path', dir, reason, details);
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
    const reason = ownedFileProblem(fstatSync(fd), uid);
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
          fsExt().flockSync(fd, 'un');
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
    ensurePrivateDirectory(this.lockPath, this.uid, 'lock_path');
    const fd = openLockFile(this.lockPath, this.fileFor(name), this.uid);
    let interval = 5;
    for (;;) {
      try {
        fsExt().flockSync(fd, 'exnb');
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
