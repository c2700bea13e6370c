/**
 * Status flows on the fake driver, as the store sees them during each driver call: snapshot,
 * create from snapshot, clone, extend, connect / attach / detach / disconnect, delete.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BrickContext } from '../../../src/library/index.js';
import { consumer, fakeBackend, fakeConnector, type FakeDriver, type FakeMethod } from './fake-driver.js';

/** Record the stored status of volume `id` (or snapshot `id` when `kind` says so) inside each call of `method`. */
function watch(ctx: BrickContext, driver: FakeDriver, method: FakeMethod, id: () => string, kind: 'volume' | 'snapshot' = 'volume'): string[] {
  const seen: string[] = [];
  driver.during(method, async () => {
    const [rec] = kind === 'volume' ? await ctx.store.getVolumes({ id: id() }) : await ctx.store.getSnapshots({ id: id() });
    seen.push(rec?.status ?? 'missing');
  });
  return seen;
}

test('snapshot: creating while the driver runs, then available with the driver model update; delete: deleting, then gone', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 3 });
  let snapId = '';
  driver.during('createSnapshot', async () => {
    const [rec] = await ctx.store.getSnapshots({ volume_id: vol.id });
    snapId = rec?.id ?? '';
    assert.equal(rec?.status, 'creating');
  });
  const snap = await vol.createSnapshot({ name: 'daily', description: 'before upgrade' });
  assert.equal(snap.id, snapId);
  assert.equal(snap.status, 'available');
  assert.equal(snap.volumeSize, 3);
  assert.equal(snap.volumeId, vol.id);
  assert.equal(snap.providerLocation, `fake://snapshot-${snap.id}`);
  assert.equal(snap.providerId, `snap-${snap.id.slice(0, 8)}`);
  const [rec] = await ctx.store.getSnapshots({ id: snap.id });
  assert.deepEqual(
    { status: rec?.status, name: rec?.name, description: rec?.description, provider_location: rec?.provider_location, error: rec?.error },
    { status: 'available', name: 'daily', description: 'before upgrade', provider_location: `fake://snapshot-${snap.id}`, error: null },
  );
  assert.deepEqual(vol.snapshots, [snap]);
  assert.equal(vol.status, 'available'); // a snapshot does not change its volume's status

  const deleting = watch(ctx, driver, 'deleteSnapshot', () => snap.id, 'snapshot');
  await snap.delete();
  assert.deepEqual(deleting, ['deleting']);
  assert.equal(snap.status, 'deleted');
  assert.deepEqual(vol.snapshots, []);
  assert.deepEqual(await ctx.store.getSnapshots({ volume_id: vol.id }), []);
  assert.equal(ctx.objects.has(`snapshot:${snap.id}`), false);
  await snap.delete(); // deleting twice succeeds
  assert.equal(driver.callsOf('deleteSnapshot').length, 1);
});

test('create from snapshot and clone: the new volume is creating during the copy, then available with its origin', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 2, name: 'source' });
  const snap = await vol.createSnapshot();
  const fromSnap = watch(ctx, driver, 'createVolumeFromSnapshot', () => driver.callsOf('createVolumeFromSnapshot').at(-1)!.split(' ')[1]!);
  const restored = await snap.createVolume({ name: 'restored', size: 4 });
  assert.deepEqual(fromSnap, ['creating']);
  assert.equal(restored.status, 'available');
  assert.equal(restored.snapshotId, snap.id);
  assert.equal(restored.sourceVolid, null);
  assert.equal(restored.size, 4);
  assert.equal(restored.multiattach, false);
  assert.equal(restored.providerLocation, `fake://volume-${restored.id}`);

  const cloning = watch(ctx, driver, 'createClonedVolume', () => driver.callsOf('createClonedVolume').at(-1)!.split(' ')[1]!);
  const clone = await vol.clone({ name: 'copy' });
  assert.deepEqual(cloning, ['creating']);
  assert.equal(clone.status, 'available');
  assert.equal(clone.sourceVolid, vol.id);
  assert.equal(clone.snapshotId, null);
  assert.equal(clone.size, 2);
  assert.equal(vol.status, 'available');
  assert.deepEqual(
    (await backend.getVolumes()).map((v) => [v.name, v.status]).sort(),
    [
      ['copy', 'available'],
      ['restored', 'available'],
      ['source', 'available'],
    ],
  );
  // The source cannot go while its snapshot exists; its children can.
  await assert.rejects(vol.delete(), { code: 'INVALID_STATE' });
  await restored.delete();
  await clone.delete();
  await snap.delete();
  const deleting = watch(ctx, driver, 'deleteVolume', () => vol.id);
  await vol.delete();
  assert.deepEqual(deleting, ['deleting']);
  assert.deepEqual(await ctx.store.getVolumes(), []);
  assert.equal(driver.volumes.size, 0);
});

test('extend: extending during the driver call, then back to the previous status at the new size', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  const extending = watch(ctx, driver, 'extendVolume', () => vol.id);
  assert.equal(await vol.extend(3), 3 * 1024 ** 3);
  assert.deepEqual(extending, ['extending']);
  assert.equal(vol.status, 'available');
  assert.equal(vol.size, 3);
  assert.equal((await ctx.store.getVolumes({ id: vol.id }))[0]?.size, 3);

  await vol.connect(consumer('consumer-1'));
  assert.equal(vol.status, 'in-use');
  await vol.extend(4);
  assert.deepEqual(extending, ['extending', 'extending']);
  assert.equal(vol.status, 'in-use');
});

test('connect and disconnect: attaching then in-use, export kept while another connection remains, available at the end', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t, { multiattach: true });
  const vol = await backend.createVolume({ size: 1, multiattach: true });
  const attaching = watch(ctx, driver, 'initializeConnection', () => vol.id);
  const c1 = await vol.connect(consumer('consumer-1'));
  const c2 = await vol.connect(consumer('consumer-2'), { attachMode: 'ro' });
  assert.deepEqual(attaching, ['attaching', 'attaching']);
  assert.equal(vol.status, 'in-use');
  assert.equal(vol.adminMetadata.fake_export, `export-${vol.id.slice(0, 8)}`); // the export's model update is kept
  assert.equal(vol.adminMetadata.brick_busy_owner, undefined); // and the owner marker is gone from the updated map
  assert.equal((await ctx.store.getVolumes({ id: vol.id }))[0]?.admin_metadata.brick_busy_owner, undefined);
  assert.deepEqual([c1.status, c1.attachedHost, c1.attachMode, c1.protocol], ['attaching', 'consumer-1', 'rw', 'FAKE']);
  assert.deepEqual([c2.attachedHost, c2.attachMode], ['consumer-2', 'ro']);
  assert.deepEqual(c1.connInfo, { driver_volume_type: 'fake', data: { volume_id: vol.id, device_path: `/dev/fake/${vol.id}`, size_gb: 1 } });
  assert.equal((await ctx.store.getConnections({ volume_id: vol.id })).length, 2);

  const detaching = watch(ctx, driver, 'terminateConnection', () => vol.id);
  await c1.disconnect();
  assert.deepEqual(detaching, ['detaching']);
  assert.equal(c1.status, 'detached');
  assert.equal(vol.status, 'in-use');
  assert.deepEqual(driver.callsOf('removeExport'), []);
  await c2.disconnect();
  assert.equal(vol.status, 'available');
  assert.deepEqual(driver.callsOf('removeExport'), [`removeExport ${vol.id}`]);
  assert.deepEqual(await ctx.store.getConnections(), []);
  assert.equal(driver.mappings.size, 0);
});

test('attach and detach on this host through the fake connector: two levels of detach', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  const conn = await vol.attach();
  assert.equal(conn.path, `/dev/fake/${vol.id}`);
  assert.equal(conn.status, 'attached');
  assert.equal(conn.attachedHost, 'unit-host');
  assert.equal(vol.localAttach, conn);
  assert.equal((await ctx.store.getConnections({ id: conn.id }))[0]?.device?.path, `/dev/fake/${vol.id}`);

  await conn.detach(); // host side only: the connection stays, mapped
  assert.equal(conn.path, null);
  assert.equal(conn.status, 'attaching');
  assert.equal(conn.connected, true);
  assert.equal(vol.localAttach, null);
  assert.deepEqual(driver.callsOf('terminateConnection'), []);
  assert.equal(await conn.attach().then((d) => d.path), `/dev/fake/${vol.id}`);

  await vol.detach(); // both levels
  assert.equal(conn.status, 'detached');
  assert.equal(vol.status, 'available');
  assert.deepEqual(driver.callsOf('terminateConnection'), [`terminateConnection ${vol.id}`]);
  assert.deepEqual(fakeConnector.calls.filter((c) => c.endsWith(vol.id)), [`connect ${vol.id}`, `disconnect ${vol.id}`, `connect ${vol.id}`, `disconnect ${vol.id}`]);
  await vol.detach(); // not attached here: a no-op
});

test('checkCondition runs the connector\'s check with the stored properties and device info; not attached is refused', async (t) => {
  const { backend } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  const conn = await vol.attach();
  fakeConnector.condition = { abnormal: true, message: 'sdc (10.0.0.2:3260) failed [dm F]', paths: [{ name: 'sdc', state: 'failed', portal: '10.0.0.2:3260' }] };
  try {
    assert.deepEqual(await conn.checkCondition(), fakeConnector.condition);
    assert.ok(fakeConnector.calls.includes(`condition /dev/fake/${vol.id}`));
  } finally {
    fakeConnector.condition = { abnormal: false, message: 'ok', paths: [] };
  }
  await conn.detach();
  await assert.rejects(conn.checkCondition(), (e: unknown) => (e as { code?: string }).code === 'INVALID_STATE');
  await vol.detach();
});
