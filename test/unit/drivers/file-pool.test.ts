/**
 * Issue #13, defect 6: the file backend's configuration is not trusted blindly. A pool path that
 * cannot hold volumes (`/`, a pseudo filesystem, a file, an unwritable directory) and a pool
 * directory others could change (writable by group or others) are refused with INVALID_CONFIG
 * naming `pool_path`, before anything is created. No root needed: every directory here is a
 * temporary one the test owns.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileDriver } from '../../../src/drivers/file/driver.js';
import { createFixtureTree, fixtureContext } from '../../../src/testing/fixture-tree.js';
import { InvalidConfigError } from '../../../src/errors.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'brick-pool-'));
  try {
    await fn(dir);
  } finally {
    chmodSync(dir, 0o700);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Construct and set up a file driver over `poolPath` as `Backend` does (doSetup, then checkForSetupError). */
async function setUpPool(poolPath: string, stateDir: string): Promise<FileDriver> {
  const { ctx } = fixtureContext(createFixtureTree({}).root);
  const driver = new FileDriver({ pool_path: poolPath }, { ...ctx, backendName: 'pool-test', stateDir });
  await driver.doSetup();
  await driver.checkForSetupError();
  return driver;
}

/** A check for `assert.rejects`: InvalidConfigError naming `pool_path` whose message matches `re`. */
function poolPathRefused(re: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof InvalidConfigError, `expected InvalidConfigError, got ${String(e)}`);
    assert.equal(e.field, 'pool_path');
    assert.match(e.message, re);
    return true;
  };
}

/** Reject after `ms`: bounds a setup that would otherwise hang. */
function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

test('pool_path under /proc fails fast with INVALID_CONFIG naming pool_path', { timeout: 10_000 }, async () => {
  await withDir(async (dir) => {
    for (const pool of ['/proc/brick', '/proc/self/brick']) {
      await assert.rejects(within(3_000, setUpPool(pool, dir)), poolPathRefused(/pseudo filesystem|\/proc/));
    }
    // Through a link the prefix cannot see: statfs of the nearest existing ancestor does.
    symlinkSync('/proc', join(dir, 'proc-link'));
    await assert.rejects(within(3_000, setUpPool(join(dir, 'proc-link', 'brick'), dir)), poolPathRefused(/on a proc pseudo filesystem/));
    assert.equal(existsSync('/proc/brick'), false);
  });
});

test('pool_path under /sys or /dev, or / itself, is refused before anything is created', async () => {
  await withDir(async (dir) => {
    for (const pool of ['/sys/brick-pool', '/dev/brick-pool', '/dev/shm/brick-pool', '/', '//', '/tmp/..']) {
      await assert.rejects(within(3_000, setUpPool(pool, dir)), poolPathRefused(/pseudo filesystem|root directory|\/sys|\/dev/), pool);
    }
    assert.equal(existsSync('/dev/brick-pool'), false);
    assert.equal(existsSync('/dev/shm/brick-pool'), false);
    assert.equal(existsSync('/sys/brick-pool'), false);
  });
});

test('pool_path that is a file, or below a file, is INVALID_CONFIG naming pool_path (not UNEXPECTED)', async () => {
  await withDir(async (dir) => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'data');
    await assert.rejects(setUpPool(file, dir), poolPathRefused(/not a directory/));
    await assert.rejects(setUpPool(join(file, 'pool'), dir), poolPathRefused(/not a directory/));
    assert.equal(statSync(file).size, 4, 'the file is untouched');
  });
});

test('a pool directory writable by group or others is refused, not used; nothing is created in it', async () => {
  await withDir(async (dir) => {
    for (const mode of [0o777, 0o775, 0o702]) {
      const pool = join(dir, `pool-${mode.toString(8)}`);
      mkdirSync(pool);
      chmodSync(pool, mode);
      await assert.rejects(setUpPool(pool, dir), poolPathRefused(/writable by group or others/));
      assert.deepEqual(readdirSync(pool), [], 'no probe or volume file is made in a refused pool');
    }
  });
});

test('a pool below a directory others can write (without the sticky bit) is refused before it is created', async () => {
  await withDir(async (dir) => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    await assert.rejects(setUpPool(join(open, 'pool', 'deeper'), dir), poolPathRefused(/writable by group or others/));
    assert.deepEqual(readdirSync(open), [], 'nothing is created below the unsafe parent');
  });
});

test('a missing pool directory is created 0700 with its missing parents 0700', async () => {
  await withDir(async (dir) => {
    const pool = join(dir, 'a', 'b', 'pool');
    const driver = await setUpPool(pool, dir);
    assert.equal(driver.config.pool_path, pool);
    for (const p of [join(dir, 'a'), join(dir, 'a', 'b'), pool]) assert.equal(statSync(p).mode & 0o7777, 0o700, p);
  });
});

test('an unwritable pool directory is INVALID_CONFIG naming pool_path', { skip: process.getuid?.() === 0 ? 'root writes anywhere: the read-only mount case is in test/host/pool-safety' : false }, async () => {
  await withDir(async (dir) => {
    const pool = join(dir, 'pool');
    mkdirSync(pool, { mode: 0o500 });
    await assert.rejects(setUpPool(pool, dir), poolPathRefused(/not writable/));
    const parent = join(dir, 'ro');
    mkdirSync(parent, { mode: 0o500 });
    await assert.rejects(setUpPool(join(parent, 'pool'), dir), poolPathRefused(/cannot be created|EACCES/));
  });
});
