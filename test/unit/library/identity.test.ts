/**
 * The identity map on the fake driver: one object per id in a library context, so loading a
 * volume, snapshot or connection twice yields the same instance (cinderlib keeps the same
 * guarantee), updated in place when the store holds a newer version.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AlreadyExistsError } from '../../../src/errors.js';
import { Backend } from '../../../src/library/index.js';
import { consumer, fakeBackend } from './fake-driver.js';

test('a volume loaded twice, listed, or just created is the same instance', async (t) => {
  const { backend } = await fakeBackend(t);
  const created = await backend.createVolume({ size: 1, name: 'one' });
  const a = await backend.getVolume(created.id);
  const b = await backend.getVolume(created.id);
  assert.equal(a, created);
  assert.equal(b, created);
  const listed = await backend.getVolumes({ name: 'one' });
  assert.equal(listed.length, 1);
  assert.equal(listed[0], created);
  assert.ok(backend.volumes.includes(created));
});

test('snapshots and connections loaded again are the instances first made', async (t) => {
  const { backend } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  const snap = await vol.createSnapshot({ name: 's' });
  const conn = await vol.connect(consumer('consumer-1'));
  await vol.refresh();
  assert.equal(vol.snapshots[0], snap);
  assert.equal(vol.connections[0], conn);
  const [fromBackend] = await backend.getSnapshots();
  assert.equal(fromBackend, snap);
  assert.equal(fromBackend?.volume, vol);
});

test('a newer stored record updates the existing instance in place; an older one does not', async (t) => {
  const { ctx, backend } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1, name: 'before' });
  const [rec] = await ctx.store.getVolumes({ id: vol.id });
  const saved = await ctx.store.setVolume({ ...rec!, name: 'after', description: 'changed elsewhere' });
  const again = await backend.getVolume(vol.id);
  assert.equal(again, vol);
  assert.equal(vol.name, 'after');
  assert.equal(vol.description, 'changed elsewhere');
  assert.equal(vol.version, saved.version);

  vol.name = 'local edit';
  await backend.getVolume(vol.id); // same version in the store: the object keeps its own state
  assert.equal(vol.name, 'local edit');
});

test('a deleted volume leaves the identity map: its id no longer loads', async (t) => {
  const { ctx, backend } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  await vol.delete();
  assert.equal(ctx.objects.has(`volume:${vol.id}`), false);
  await assert.rejects(backend.getVolume(vol.id), { code: 'NOT_FOUND' });
});

test('a backend created twice with the same configuration is the same instance; another configuration is refused', async (t) => {
  const { ctx, backend } = await fakeBackend(t, { capacity_gb: 50 });
  const again = new Backend({ volume_backend_name: backend.id, volume_driver: 'fake', capacity_gb: 50 }, { context: ctx });
  assert.equal(again, backend);
  assert.throws(() => new Backend({ volume_backend_name: backend.id, volume_driver: 'fake', capacity_gb: 60 }, { context: ctx }), (err) => {
    assert.ok(err instanceof AlreadyExistsError);
    assert.equal(err.field, 'volume_backend_name');
    return true;
  });
});
