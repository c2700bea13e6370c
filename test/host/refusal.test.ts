/**
 * Issue #13, defect 4 on the file backend: a refused operation leaves no trace. An extend, a
 * clone or a volume from a snapshot larger than the pool's free space fails with
 * INSUFFICIENT_CAPACITY before anything is written: the volume keeps its status and error, and
 * no new record or file appears.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setup, Backend } from '../../src/library/index.js';
import { SqliteStore } from '../../src/persistence/sqlite.js';
import { InsufficientCapacityError, exitCodeFor } from '../../src/errors.js';
import '../../src/drivers/index.js';

test('file backend: extend, clone and create-volume beyond the free space are refused and change nothing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-refusal-'));
  const ctx = setup({ stateDir: dir, persistence: SqliteStore.open({ path: join(dir, 'db.sqlite') }) });
  try {
    const backend = await Backend.create({ volume_backend_name: 'refusal', volume_driver: 'file', pool_path: `${dir}/pool` }, { context: ctx });
    const vol = await backend.createVolume({ size: 1 });
    const snap = await vol.createSnapshot();
    const before = await ctx.store.getVolumes({});
    const files = (await readdir(join(dir, 'pool'))).sort();
    const capacity = (err: unknown) => err instanceof InsufficientCapacityError && exitCodeFor(err) === exitCodeFor(new InsufficientCapacityError('x'));
    await assert.rejects(vol.extend(100000), capacity);
    await assert.rejects(vol.clone({ size: 100000 }), capacity);
    await assert.rejects(snap.createVolume({ size: 100000 }), capacity);
    assert.deepEqual(await ctx.store.getVolumes({}), before, 'no record changed or added');
    assert.deepEqual((await readdir(join(dir, 'pool'))).sort(), files, 'no file added');
    assert.equal(vol.status, 'available');
    assert.equal(vol.error, null);
    assert.equal(await vol.extend(2), 2 * 1024 ** 3);
    const [rec] = await ctx.store.getVolumes({ id: vol.id });
    assert.equal(rec?.status, 'available');
    assert.equal(rec?.error, null);
    assert.equal(rec?.size, 2);
  } finally {
    await ctx.store.close();
    await rm(dir, { recursive: true, force: true });
  }
});
