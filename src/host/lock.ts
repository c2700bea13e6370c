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
 * @module
 */
import { openSync, closeSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { LockTimeoutError } from '../errors.js';
import { delay } from './retry.js';

const require = createRequire(import.meta.url);
const fsExt = require('fs-ext') as { flockSync(fd: number, flags: 'ex' | 'exnb' | 'sh' | 'shnb' | 'un'): void };

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

  /**
   * @param lockPath directory for lock files; created when missing (mode 0700)
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
    mkdirSync(this.lockPath, { recursive: true, mode: 0o700 });
    const fd = openSync(this.fileFor(name), 'a', 0o600);
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
