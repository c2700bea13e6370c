import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LockManager } from '../../../src/host/lock.js';
import { retry, waitFor, delay } from '../../../src/host/retry.js';
import { LockTimeoutError, RetryExhaustedError, InvalidInputError } from '../../../src/errors.js';

test('the same lock name serialises; different names run in parallel', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-lock-'));
  try {
    const locks = new LockManager(dir);
    const events: string[] = [];
    const job = (name: string, tag: string) =>
      locks.withLock(name, async () => {
        events.push(`start ${tag}`);
        await delay(40);
        events.push(`end ${tag}`);
      });
    await Promise.all([job('target-a', 'a1'), job('target-a', 'a2'), job('target-b', 'b1')]);
    const i = (e: string) => events.indexOf(e);
    assert.ok(i('end a1') < i('start a2'), `a1 and a2 must not overlap: ${events.join(', ')}`);
    assert.ok(i('start b1') < i('end a1'), `b1 runs while a1 holds its lock: ${events.join(', ')}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a lock held by another process blocks until that process dies, then is free (crash-safe)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-lock-'));
  try {
    const locks = new LockManager(dir);
    const file = locks.fileFor('iqn.2010-10.org.openstack:volume-1');
    // flock(1) holds the same kind of lock in another process until it is killed.
    const holder = spawn('flock', ['--exclusive', '--no-fork', file, 'sleep', '30'], { stdio: 'ignore' });
    await waitFor(async () => {
      try {
        await locks.withLock('iqn.2010-10.org.openstack:volume-1', async () => undefined, { timeoutMs: 1 });
        return false;
      } catch (e) {
        return e instanceof LockTimeoutError;
      }
    }, { timeoutMs: 5000, description: 'the other process to hold the lock' });
    await assert.rejects(locks.withLock('iqn.2010-10.org.openstack:volume-1', async () => 1, { timeoutMs: 150 }), LockTimeoutError);
    setTimeout(() => holder.kill('SIGKILL'), 100);
    const got = await locks.withLock('iqn.2010-10.org.openstack:volume-1', async () => 'mine', { timeoutMs: 5000 });
    assert.equal(got, 'mine');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an error inside the locked function releases the lock', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-lock-'));
  try {
    const locks = new LockManager(dir);
    await assert.rejects(locks.withLock('x', async () => { throw new Error('boom'); }), /boom/);
    assert.equal(await locks.withLock('x', async () => 2, { timeoutMs: 500 }), 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('retry: bounded attempts, last error rethrown, retryIf stops early', async () => {
  let n = 0;
  await assert.rejects(retry(async () => { n++; throw new Error(`fail ${n}`); }, { attempts: 3, delayMs: 1 }), /fail 3/);
  assert.equal(n, 3);
  n = 0;
  await assert.rejects(retry(async () => { n++; throw new TypeError('fatal'); }, { attempts: 5, delayMs: 1, retryIf: (e) => !(e instanceof TypeError) }), TypeError);
  assert.equal(n, 1);
  assert.equal(await retry(async (a) => { if (a < 2) throw new Error('x'); return a; }, { attempts: 3, delayMs: 1 }), 2);
  await assert.rejects(retry(async () => 1, { attempts: 0 }), InvalidInputError);
});

test('waitFor returns the probe value or times out with what it waited for', async () => {
  let k = 0;
  assert.equal(await waitFor(() => (++k >= 3 ? 'ready' : undefined), { timeoutMs: 2000, intervalMs: 1, description: 'x' }), 'ready');
  await assert.rejects(waitFor(() => false, { timeoutMs: 50, intervalMs: 5, description: 'the device /dev/sdz' }), (e: unknown) => e instanceof RetryExhaustedError && /the device \/dev\/sdz/.test(e.message));
});

test('taking a lock leaves no timer behind: a process that used a lock exits at once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-lock-'));
  try {
    const lockModule = new URL('../../../src/host/lock.js', import.meta.url).href;
    const script = `const { LockManager } = await import(${JSON.stringify(lockModule)}); await new LockManager(${JSON.stringify(dir)}, 60000).withLock('x', async () => 1);`;
    const t0 = Date.now();
    const code = await new Promise<number | null>((resolve) => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' }).on('close', resolve));
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 20_000, `process took ${Date.now() - t0} ms to exit with a 60 s lock timeout`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
