/** A DriverContext for target and LVM unit tests: RecordingExecutor, temp host root, temp state and lock dirs. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { createHostContext } from '../../../src/host/context.js';
import { LockManager, type LockOptions } from '../../../src/host/lock.js';
import { createCapturingLogger } from '../../../src/log.js';
import type { DriverContext } from '../../../src/drivers/driver.js';

/**
 * Real file locks with a short bound: LockManager.withLock leaves its timeout timer running
 * after the lock is taken, which would keep the test process alive for the helpers' 120 s bound.
 */
class ShortLocks extends LockManager {
  override withLock<T>(name: string, fn: () => Promise<T>, _options?: LockOptions): Promise<T> {
    return super.withLock(name, fn, { timeoutMs: 5_000 });
  }
}

export interface TestContext {
  ctx: DriverContext;
  exec: RecordingExecutor;
  stateDir: string;
  progress: [string, number, number][];
  logs: () => string;
  cleanup: () => Promise<void>;
}

export async function makeContext(hostRoot: string): Promise<TestContext> {
  const stateDir = await mkdtemp(join(tmpdir(), 'brick-state-'));
  const exec = new RecordingExecutor();
  const captured = createCapturingLogger();
  const progress: [string, number, number][] = [];
  const ctx: DriverContext = {
    ...createHostContext({ executor: exec, hostRoot, locks: new ShortLocks(join(stateDir, 'locks')), logger: captured.logger }),
    backendName: 'lvm-test',
    stateDir,
    onProgress: (op, done, total) => progress.push([op, done, total]),
  };
  return { ctx, exec, stateDir, progress, logs: () => captured.text(), cleanup: () => rm(stateDir, { recursive: true, force: true }) };
}
