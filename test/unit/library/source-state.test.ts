/**
 * Issue #13, defect 8: a volume in `error` holds data nobody can vouch for, so it is not a
 * source for a snapshot or a clone (Cinder accepts only `available` and `in-use` sources). The
 * refusal is an InvalidStateError (exit 4) and changes nothing: no new record, no driver call.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackendError, InvalidStateError, exitCodeFor } from '../../../src/errors.js';
import { fakeBackend } from './fake-driver.js';

test('a volume in error cannot be snapshotted or cloned, and the refusal leaves no trace', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  driver.failNext('extendVolume', new BackendError('fake array refused to grow'));
  await assert.rejects(vol.extend(2), BackendError);
  assert.equal(vol.status, 'error');
  const before = { volumes: (await ctx.store.getVolumes({})).length, snapshots: (await ctx.store.getSnapshots({})).length, calls: driver.calls.length };
  for (const attempt of [() => vol.createSnapshot(), () => vol.clone()]) {
    await assert.rejects(attempt(), (err: unknown) => err instanceof InvalidStateError && exitCodeFor(err) === 4 && /error/.test((err as Error).message));
  }
  assert.equal((await ctx.store.getVolumes({})).length, before.volumes);
  assert.equal((await ctx.store.getSnapshots({})).length, before.snapshots);
  assert.equal(driver.calls.length, before.calls);
  const [rec] = await ctx.store.getVolumes({ id: vol.id });
  assert.equal(rec?.status, 'error');
});
