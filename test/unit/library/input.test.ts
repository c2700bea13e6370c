/**
 * Input checks on the fake driver: a bad size, name, description or connector gives a typed error
 * naming the field, before the driver is called and before anything is stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidInputError, InsufficientCapacityError, InvalidStateError, ProtocolNotSupportedError, type BrickError } from '../../../src/errors.js';
import { Backend } from '../../../src/library/index.js';
import type { ConnectorProperties } from '../../../src/initiator/properties.js';
import { consumer, fakeBackend, type FakeDriver } from './fake-driver.js';

/** Asserts `p` rejects with an error of `cls` whose `field` is `field`. */
async function rejectsNaming(p: Promise<unknown>, cls: new (...args: never[]) => BrickError, field: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    assert.equal(err.field, field);
    return true;
  });
}

/** The driver calls that change something (setup and stats are not). */
function changingCalls(driver: FakeDriver): string[] {
  return driver.calls.filter((c) => !/^(doSetup|checkForSetupError|getVolumeStats)\b/.test(c));
}

test('createVolume: a bad size, name or description names the field; nothing reaches the driver or the store', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  for (const size of [0, -1, 1.5, Number.NaN, Infinity, '1', undefined, null]) {
    await rejectsNaming(backend.createVolume({ size } as never), InvalidInputError, 'size');
  }
  await rejectsNaming(backend.createVolume({ size: 1, name: 42 } as never), InvalidInputError, 'name');
  await rejectsNaming(backend.createVolume({ size: 1, name: 'n'.repeat(256) }), InvalidInputError, 'name');
  await rejectsNaming(backend.createVolume({ size: 1, description: 'd'.repeat(4097) }), InvalidInputError, 'description');
  await rejectsNaming(backend.createVolume(null as never), InvalidInputError, 'options');
  assert.deepEqual(changingCalls(driver), []);
  assert.deepEqual(await ctx.store.getVolumes(), []);
});

test('createVolume: more than the free capacity, or multiattach where the backend has none, is refused before the driver', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t, { capacity_gb: 10 });
  await rejectsNaming(backend.createVolume({ size: 11 }), InsufficientCapacityError, 'size');
  await rejectsNaming(backend.createVolume({ size: 1, multiattach: true }), InvalidInputError, 'multiattach');
  assert.deepEqual(changingCalls(driver), []);
  assert.deepEqual(await ctx.store.getVolumes(), []);
  const name255 = await backend.createVolume({ size: 10, name: 'n'.repeat(255), description: 'd'.repeat(4096) });
  assert.equal(name255.status, 'available');
});

test('extend, clone, snapshot and create-from-snapshot check their input before the driver', async (t) => {
  const { backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 2 });
  const snap = await vol.createSnapshot();
  const before = changingCalls(driver).length;
  for (const size of ['3', 2.5, 0, -3]) await rejectsNaming(vol.extend(size as never), InvalidInputError, 'new_size');
  await rejectsNaming(vol.extend(2), InvalidInputError, 'new_size'); // not larger than the current size
  await rejectsNaming(vol.extend(1), InvalidInputError, 'new_size');
  await rejectsNaming(vol.clone({ size: 1 }), InvalidInputError, 'size');
  await rejectsNaming(vol.clone({ size: 1.5 }), InvalidInputError, 'size');
  await rejectsNaming(vol.clone({ name: ['x'] } as never), InvalidInputError, 'name');
  await rejectsNaming(vol.createSnapshot({ description: 7 } as never), InvalidInputError, 'description');
  await rejectsNaming(snap.createVolume({ size: 1 }), InvalidInputError, 'size');
  await rejectsNaming(snap.createVolume({ name: 'n'.repeat(300) }), InvalidInputError, 'name');
  assert.equal(changingCalls(driver).length, before);
  assert.equal(vol.size, 2);
  assert.equal(vol.status, 'available');
  assert.equal(vol.error, null);
});

test('connect: a missing connector, or one the driver rejects, names the field; no export is made', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  await rejectsNaming(vol.connect(null as unknown as ConnectorProperties), InvalidInputError, 'connector');
  await rejectsNaming(vol.connect({ initiator: 'iqn.1993-08.org.debian:01:abc' } as ConnectorProperties), InvalidInputError, 'connector.host');
  assert.deepEqual(driver.callsOf('createExport'), []);
  assert.equal(vol.status, 'available');
  assert.deepEqual(await ctx.store.getConnections(), []);
});

test('operations on a deleted volume or an unavailable snapshot are refused with InvalidStateError', async (t) => {
  const { backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  const snap = await vol.createSnapshot();
  driver.failNext('deleteSnapshot');
  await assert.rejects(snap.delete());
  await assert.rejects(snap.createVolume(), InvalidStateError);
  await assert.rejects(vol.delete(), InvalidStateError); // it still has a snapshot
  await snap.delete();
  await vol.delete();
  for (const op of [() => vol.extend(5), () => vol.clone(), () => vol.createSnapshot(), () => vol.attach(), () => vol.connect(consumer('h'))]) {
    await assert.rejects(op(), InvalidStateError);
  }
  await vol.delete(); // deleting twice succeeds
});

test('backend configuration: a malformed name or an unknown driver names the field', async (t) => {
  const { ctx } = await fakeBackend(t);
  assert.throws(() => new Backend({ volume_backend_name: 'has space', volume_driver: 'fake' }, { context: ctx }), (err: unknown) => err instanceof InvalidInputError && err.field === 'volume_backend_name');
  assert.throws(() => new Backend({ volume_backend_name: 'ok', volume_driver: 'no_such_driver' }, { context: ctx }), (err: unknown) => err instanceof ProtocolNotSupportedError && err.field === 'volume_driver');
  assert.throws(() => new Backend({ volume_backend_name: 'ok' } as never, { context: ctx }), (err: unknown) => err instanceof InvalidInputError && err.field === 'volume_driver');
});
