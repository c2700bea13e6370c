/**
 * Issue #13, defect 1: root must not create files where a local user points it. The lock
 * directory is checked like OpenSSH's StrictModes (ours, a real directory, not writable by
 * group or others) and lock files are opened without following a symlink; the default lock
 * directory is private to the running user.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as lockModule from '../../../src/host/lock.js';
import { createHostContext, type HostContext } from '../../../src/host/context.js';
import { connectorFor, registerConnector } from '../../../src/initiator/factory.js';
import type { Connector } from '../../../src/initiator/connector.js';
import { parseConfig } from '../../../src/cli/config.js';
import { InvalidConfigError } from '../../../src/errors.js';

// A namespace import, so that each test reports on its own when a symbol is missing.
const { LockManager } = lockModule;
const defaultLockPath = (uid: number, env: Record<string, string | undefined>): string => lockModule.defaultLockPath(uid, env);
const isRoot = process.getuid?.() === 0;

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'brick-lock-safety-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A check for `assert.rejects`: an InvalidConfigError naming `lock_path` whose message matches `re`. */
function lockPathRefused(re: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof InvalidConfigError, `expected InvalidConfigError, got ${String(e)}`);
    assert.equal(e.field, 'lock_path');
    assert.match(e.message, re);
    return true;
  };
}

test('a lock file pre-planted as a symlink is refused and its target is never created', async () => {
  await withDir(async (dir) => {
    const locks = new LockManager(join(dir, 'locks'), 2_000);
    mkdirSync(locks.lockPath, { mode: 0o700 });
    const target = join(dir, 'anywhere');
    symlinkSync(target, locks.fileFor('aoe-e9.9'));
    let ran = false;
    await assert.rejects(
      locks.withLock('aoe-e9.9', async () => void (ran = true)),
      lockPathRefused(new RegExp(`${locks.fileFor('aoe-e9.9').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*symbolic link`)),
    );
    assert.equal(ran, false, 'the locked function must not run');
    assert.equal(existsSync(target), false, 'the symlink target must not be created');
  });
});

test('a lock file that is not a regular file (a FIFO) is refused', async () => {
  await withDir(async (dir) => {
    const locks = new LockManager(join(dir, 'locks'), 2_000);
    mkdirSync(locks.lockPath, { mode: 0o700 });
    assert.equal(spawnSync('mkfifo', [locks.fileFor('x')]).status, 0);
    await assert.rejects(locks.withLock('x', async () => 1), lockPathRefused(/not a regular file/));
  });
});

test('a lock directory writable by group or others (0777, 0770) is refused', async () => {
  await withDir(async (dir) => {
    for (const mode of [0o777, 0o770, 0o702]) {
      const lockDir = join(dir, `locks-${mode.toString(8)}`);
      mkdirSync(lockDir);
      chmodSync(lockDir, mode);
      await assert.rejects(new LockManager(lockDir, 2_000).withLock('x', async () => 1), lockPathRefused(/writable by group or others/));
      assert.equal(existsSync(join(lockDir, 'brick-x.lock')), false, 'no lock file is made in a refused directory');
    }
  });
});

test('a lock directory owned by another user is refused', { skip: !isRoot && 'needs root to chown' }, async () => {
  await withDir(async (dir) => {
    const lockDir = join(dir, 'locks');
    mkdirSync(lockDir, { mode: 0o700 });
    chownSync(lockDir, 65534, 65534);
    await assert.rejects(new LockManager(lockDir, 2_000).withLock('x', async () => 1), lockPathRefused(/owned by uid 65534/));
    assert.equal(existsSync(join(lockDir, 'brick-x.lock')), false);
  });
});

test('a lock directory that is a symlink (even to a good directory) is refused', async () => {
  await withDir(async (dir) => {
    const real = join(dir, 'real');
    mkdirSync(real, { mode: 0o700 });
    const link = join(dir, 'locks');
    symlinkSync(real, link);
    await assert.rejects(new LockManager(link, 2_000).withLock('x', async () => 1), lockPathRefused(/symbolic link/));
    assert.equal(existsSync(join(real, 'brick-x.lock')), false);
    // A dangling link is refused too, and nothing is created at its target.
    const dangling = join(dir, 'dangling');
    symlinkSync(join(dir, 'made-through-link'), dangling);
    await assert.rejects(new LockManager(dangling, 2_000).withLock('x', async () => 1), lockPathRefused(/symbolic link/));
    assert.equal(existsSync(join(dir, 'made-through-link')), false);
  });
});

test('a lock path that is a file is refused', async () => {
  await withDir(async (dir) => {
    const file = join(dir, 'locks');
    writeFileSync(file, '');
    await assert.rejects(new LockManager(file, 2_000).withLock('x', async () => 1), lockPathRefused(/not a directory/));
  });
});

test('a lock directory inside a directory others can write (no sticky bit) is refused', async () => {
  await withDir(async (dir) => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    await assert.rejects(new LockManager(join(open, 'locks'), 2_000).withLock('x', async () => 1), lockPathRefused(/writable by group or others/));
    assert.equal(existsSync(join(open, 'locks')), false, 'nothing is created below an unsafe parent');
  });
});

test('a fresh lock directory is created 0700 with its parents, and lock files 0600', async () => {
  await withDir(async (dir) => {
    const lockDir = join(dir, 'a', 'b', 'locks');
    const locks = new LockManager(lockDir, 2_000);
    assert.equal(await locks.withLock('x', async () => 'held'), 'held');
    const st = lstatSync(lockDir);
    assert.ok(st.isDirectory());
    assert.equal(st.mode & 0o7777, 0o700);
    assert.equal(lstatSync(join(dir, 'a')).mode & 0o077, 0, 'parents it made are private too');
    const f = lstatSync(locks.fileFor('x'));
    assert.ok(f.isFile());
    assert.equal(f.mode & 0o777, 0o600);
    // The same directory is accepted again (the lock file is reused, not truncated or refused).
    assert.equal(await locks.withLock('x', async () => 'again'), 'again');
  });
});

test('default lock directory: /run/brick/locks for root, a per-user directory otherwise, never a shared temp directory', () => {
  assert.equal(defaultLockPath(0, { XDG_RUNTIME_DIR: '/run/user/1000', HOME: '/home/u', TMPDIR: '/tmp' }), '/run/brick/locks');
  assert.equal(defaultLockPath(1000, { XDG_RUNTIME_DIR: '/run/user/1000', HOME: '/home/u' }), '/run/user/1000/brick/locks');
  assert.equal(defaultLockPath(1000, { HOME: '/home/u', TMPDIR: '/tmp' }), '/home/u/.local/state/brick/locks');
  assert.equal(defaultLockPath(1000, { XDG_STATE_HOME: '/srv/state', HOME: '/home/u' }), '/srv/state/brick/locks');
  assert.equal(defaultLockPath(1000, { XDG_RUNTIME_DIR: 'relative', HOME: '/home/u' }), '/home/u/.local/state/brick/locks', 'a relative XDG path is ignored');
  const expected = isRoot ? '/run/brick/locks' : defaultLockPath(process.getuid?.() ?? 0, process.env);
  assert.equal(createHostContext().locks.lockPath, expected);
});

test('connectorFor: the default lock directory follows the same rule, and `lockPath` chooses another', async () => {
  let seen: HostContext | undefined;
  registerConnector('LOCKPROBE', (ctx) => {
    seen = ctx;
    return { protocol: 'LOCKPROBE' } as unknown as Connector;
  });
  connectorFor('LOCKPROBE');
  assert.equal(seen!.locks.lockPath, isRoot ? '/run/brick/locks' : defaultLockPath(process.getuid?.() ?? 0, process.env));
  assert.doesNotMatch(seen!.locks.lockPath, /^\/tmp\b|brick-locks$/);
  connectorFor('LOCKPROBE', { lockPath: '/srv/brick/locks' });
  assert.equal(seen!.locks.lockPath, '/srv/brick/locks');
});

test('CLI config: lock_path defaults to /run/brick/locks for root and <data_dir>/locks otherwise', () => {
  const env = { HOME: '/home/u' };
  assert.equal(parseConfig('', 'default', env, 0).lockPath, '/run/brick/locks');
  assert.equal(parseConfig('', 'default', env, 1000).lockPath, '/home/u/.local/share/brick/locks');
  assert.equal(parseConfig('lock_path: /srv/locks\n', 'b.yaml', env, 0).lockPath, '/srv/locks');
});
