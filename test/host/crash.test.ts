/**
 * Crash safety (issue 2, and issue 13 defect 5): a process killed in the middle of creating a
 * volume or a snapshot leaves either no record or one the next start reports as `error`, never a
 * half-written record or one that claims to be working forever; partial files are removed by
 * deleting what the next start marked `error`; an attach or detach killed at any point is
 * finished by `volume detach`, which also removes a loop device the killed process made.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setup, Backend, type Volume } from '../../src/library/index.js';
import { SqliteStore } from '../../src/persistence/sqlite.js';
import { registerDriver } from '../../src/drivers/registry.js';
import { FileDriver } from '../../src/drivers/file/driver.js';
import '../../src/drivers/index.js';
import '../../src/initiator/connectors/index.js';

const child = join(dirname(fileURLToPath(import.meta.url)), 'crash-child.js');

/** Start the child and SIGKILL it once `until` matches its output; resolves with the output. */
function runAndKill(args: string[], until: RegExp, extraMs = 0, env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    let killing = false;
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!killing && until.test(out)) {
        killing = true;
        setTimeout(() => p.kill('SIGKILL'), extraMs);
      }
    });
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (_code, signal) => (signal === 'SIGKILL' ? resolve(out) : reject(new Error(`child ended without being killed: ${err}`))));
  });
}

test('killed inside the driver create: the next start sees the volume in error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-crash-'));
  try {
    const out = await runAndKill(['hang', dir, join(dir, 'db.sqlite')], /CREATING (\S+)\n/);
    const id = /CREATING (\S+)/.exec(out)![1]!;
    registerDriver('hang', (config, ctx) => new FileDriver(config, ctx));
    const ctx = setup({ stateDir: dir, persistence: SqliteStore.open({ path: join(dir, 'db.sqlite') }) });
    const backend = await Backend.create({ volume_backend_name: 'crash', volume_driver: 'hang', pool_path: `${dir}/pool` }, { context: ctx });
    const vols = await backend.getVolumes();
    assert.equal(vols.length, 1);
    assert.equal(vols[0]!.id, id);
    assert.equal(vols[0]!.status, 'error');
    assert.match(vols[0]!.error ?? '', /interrupted while creating/);
    const [rec] = await ctx.store.getVolumes({ id });
    assert.equal(rec?.status, 'error', 'the error status is saved, not only reported');
    await vols[0]!.delete();
    assert.deepEqual(await ctx.store.getVolumes(), []);
    await ctx.store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('killed at an arbitrary moment of a create/delete loop: every record is complete', async () => {
  for (const delay of [0, 37, 113]) {
    const dir = await mkdtemp(join(tmpdir(), 'brick-crash-'));
    try {
      const out = await runAndKill(['loop', dir, join(dir, 'db.sqlite')], /CREATED \S+\n(?:.*\n){2}/, delay);
      assert.match(out, /CREATED/);
      const ctx = setup({ stateDir: dir, persistence: SqliteStore.open({ path: join(dir, 'db.sqlite') }) });
      const backend = await Backend.create({ volume_backend_name: 'crash', volume_driver: 'file', pool_path: `${dir}/pool` }, { context: ctx });
      const vols = await backend.getVolumes();
      for (const v of vols) {
        assert.ok(['available', 'error'].includes(v.status), `volume ${v.id} is ${v.status}`);
        assert.ok(typeof v.size === 'number' && v.size === 1, 'record is complete');
        if (v.status === 'available') await stat(join(dir, 'pool', `volume-${v.id}.img`));
      }
      await ctx.store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});

/** A fresh library context (a new "process") on the store and pool under `dir`, with the file backend. */
async function open(dir: string) {
  const ctx = setup({ stateDir: dir, persistence: SqliteStore.open({ path: join(dir, 'db.sqlite') }) });
  const backend = await Backend.create({ volume_backend_name: 'crash', volume_driver: 'file', pool_path: `${dir}/pool` }, { context: ctx });
  return { ctx, backend };
}

/** The loop devices over `file` (`losetup -j`). */
function loopsOver(file: string): string[] {
  return execFileSync('losetup', ['-j', file], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':')[0]!);
}

/** Detach every loop device over a file under `dir` (clean-up after a failed test). */
async function dropLoops(dir: string): Promise<void> {
  for (const name of await readdir(join(dir, 'pool')).catch(() => [] as string[])) {
    for (const dev of loopsOver(join(dir, 'pool', name))) execFileSync('losetup', ['-d', dev]);
  }
}

/**
 * Run `body` on a fresh directory with one 1 GiB file-backend volume made by an earlier
 * "process" (its store closed again); the directory and any loop device left over it go after.
 * `prepare` runs on the volume before that process ends (e.g. to attach it).
 */
async function withVolume(body: (dir: string, volId: string) => Promise<void>, prepare?: (vol: Volume) => Promise<unknown>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'brick-crash-'));
  try {
    const first = await open(dir);
    const vol = await first.backend.createVolume({ size: 1 });
    await prepare?.(vol);
    await first.ctx.store.close();
    await body(dir, vol.id);
  } finally {
    await dropLoops(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

test('killed while snapshotting: the next start sees the snapshot in error, and deleting it removes the partial file', async () => {
  await withVolume(async (dir, volId) => {
    const out = await runAndKill(['snapshot-hang', dir, join(dir, 'db.sqlite'), volId], /SNAPSHOTTING (\S+)\n/);
    const snapId = /SNAPSHOTTING (\S+)/.exec(out)![1]!;
    const partial = join(dir, 'pool', `snapshot-${snapId}.img`);
    await stat(partial);
    const { ctx, backend } = await open(dir);
    const [snap] = await backend.getSnapshots();
    assert.equal(snap?.id, snapId);
    assert.equal(snap?.status, 'error');
    assert.match(snap?.error ?? '', /interrupted while creating/);
    assert.equal((await ctx.store.getSnapshots({ id: snapId }))[0]?.status, 'error', 'the error status is saved');
    await snap!.delete();
    await assert.rejects(stat(partial), /ENOENT/);
    await (await backend.getVolume(volId)).delete();
    assert.deepEqual(await readdir(join(dir, 'pool')), []);
    await ctx.store.close();
  });
});

test('killed in volume detach after the host side was undone: volume detach finishes it, then delete works', async () => {
  await withVolume(async (dir, volId) => {
    const file = join(dir, 'pool', `volume-${volId}.img`);
    assert.equal(loopsOver(file).length, 1);
    await runAndKill(['detach', dir, join(dir, 'db.sqlite'), volId], /HANG losetup --detach/, 0, { BRICK_HANG_BEFORE: '^losetup --detach' });
    const { ctx, backend } = await open(dir);
    const again = await backend.getVolume(volId);
    await again.detach();
    assert.deepEqual(await ctx.store.getConnections({}), []);
    assert.deepEqual(loopsOver(file), []);
    assert.equal(again.status, 'available');
    await again.delete();
    assert.deepEqual(await ctx.store.getVolumes({}), []);
    await ctx.store.close();
  }, (vol) => vol.attach());
});

test('killed in volume attach right after losetup: volume detach removes the stray loop device', async () => {
  await withVolume(async (dir, volId) => {
    const file = join(dir, 'pool', `volume-${volId}.img`);
    await runAndKill(['attach', dir, join(dir, 'db.sqlite'), volId], /HANG losetup --find/, 0, { BRICK_HANG_AFTER: '^losetup --find' });
    assert.equal(loopsOver(file).length, 1, 'the killed attach made a loop device');
    const { ctx, backend } = await open(dir);
    const again = await backend.getVolume(volId);
    assert.equal(again.status, 'error');
    assert.match(again.error ?? '', /interrupted while attaching/);
    await again.detach();
    assert.deepEqual(loopsOver(file), []);
    assert.deepEqual(await ctx.store.getConnections({}), []);
    assert.equal(again.status, 'available');
    assert.equal(again.error, null);
    await again.delete();
    assert.deepEqual(await ctx.store.getVolumes({}), []);
    await ctx.store.close();
  });
});
