/**
 * The host seams every OS-touching component receives: the Executor that runs programs and
 * the host root under which `/sys`, `/dev`, `/etc` and `/run` are read, plus the logger and
 * the lock manager. Unit tests pass a {@link RecordingExecutor} and a fixture tree; the lab and
 * production pass a {@link ProcessExecutor} and `/`.
 *
 * @module
 */
import { accessSync } from 'node:fs';
import { join } from 'node:path';
import type { Executor } from '../exec/executor.js';
import { ProcessExecutor } from '../exec/executor.js';
import { silentLogger, type Logger } from '../log.js';
import type { AttachJournal } from './journal.js';
import { LockManager, defaultLockPath } from './lock.js';

/** The injected seams. */
export interface HostContext {
  /** Runs programs. */
  executor: Executor;
  /** Filesystem root for `/sys`, `/dev`, `/etc`, `/run` reads and sysfs writes. `/` in production. */
  hostRoot: string;
  /** Structured logger (secrets redacted). */
  logger: Logger;
  /** Named cross-process locks. */
  locks: LockManager;
  /**
   * The host attach journal (`host/journal.ts`): connectors record what they create before
   * creating it. Absent for a bare connector with no state directory; then nothing is recorded.
   */
  journal?: AttachJournal;
}

/** Options for {@link createHostContext}; every field defaults to the real host. */
export interface HostContextOptions {
  executor?: Executor;
  rootHelper?: readonly string[];
  hostRoot?: string;
  logger?: Logger;
  /**
   * Lock directory (os-brick's and Brick's `lock_path`), used when `locks` is not given.
   * Default {@link defaultLockPath} for the running user: `/run/brick/locks` for root, a
   * per-user directory otherwise; never a shared temporary directory.
   */
  lockPath?: string;
  locks?: LockManager;
  /** The attach journal; default none. */
  journal?: AttachJournal;
}

/**
 * A {@link HostContext} with real defaults for whatever is not given. The default lock
 * directory depends on the running user and, for a user other than root, on `XDG_RUNTIME_DIR`,
 * `XDG_STATE_HOME` and `HOME` in `process.env` (as the default executor's environment does);
 * pass `lockPath` or `locks` to decide it explicitly.
 */
export function createHostContext(options: HostContextOptions = {}): HostContext {
  const logger = options.logger ?? silentLogger;
  return {
    executor: options.executor ?? new ProcessExecutor({ rootHelper: options.rootHelper ?? [], logger }),
    hostRoot: options.hostRoot ?? '/',
    logger,
    locks: options.locks ?? new LockManager(options.lockPath ?? defaultLockPath(process.geteuid?.() ?? 0, process.env)),
    ...(options.journal ? { journal: options.journal } : {}),
  };
}

/**
 * The path of absolute host path `p` under `hostRoot`: `hostPath('/fixture', '/sys/class')` is
 * `/fixture/sys/class`; with root `/` it is `p` itself.
 */
export function hostPath(hostRoot: string, p: string): string {
  return hostRoot === '/' || hostRoot === '' ? p : join(hostRoot, p);
}

/**
 * True when absolute host path `p` exists under `ctx.hostRoot` (symlinks followed, so a dangling
 * link does not count). Never throws. A synchronous system call behind the promise, as the
 * sysfs readers are (see `sysfs.ts`, where it is also exported as `pathExists`).
 */
export async function hostPathExists(ctx: Pick<HostContext, 'hostRoot'>, p: string): Promise<boolean> {
  try {
    accessSync(hostPath(ctx.hostRoot, p));
    return true;
  } catch {
    return false;
  }
}
