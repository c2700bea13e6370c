/**
 * cinderlib's error contract on the fake driver: a failed driver call leaves the object in
 * `error`, saved with the error's message, and throws that error; the transitional status is
 * saved (with the owner marker, for volumes) before the driver runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { BackendError, InsufficientCapacityError, InvalidStateError, VolumeDeviceNotFoundError } from '../../../src/errors.js';
import { nowIso } from '../../../src/persistence/store.js';
import { consumer, fakeBackend, fakeConnector } from './fake-driver.js';

const BUSY_KEY = 'brick_busy_owner';

test('a failed create saves the volume in error with the message, without the owner marker, and throws the driver error', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const boom = new InsufficientCapacityError('the fake pool is full');
  driver.failNext('createVolume', boom);
  await assert.rejects(backend.createVolume({ size: 2, name: 'doomed' }), (err) => err === boom);
  const [rec] = await ctx.store.getVolumes({ backend: backend.id });
  assert.equal(rec?.status, 'error');
  assert.equal(rec?.error, 'the fake pool is full');
  assert.equal(rec?.name, 'doomed');
  assert.equal(rec?.admin_metadata[BUSY_KEY], undefined);
  const [vol] = await backend.getVolumes();
  assert.equal(vol?.status, 'error');
  assert.equal(vol?.error, 'the fake pool is full');
});

test('the transitional status and the owner marker are saved before the driver is called', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const seen: { status?: string; owner?: string }[] = [];
  driver.during('createVolume', async () => {
    const [rec] = await ctx.store.getVolumes({ backend: backend.id });
    seen.push({ status: rec?.status, owner: rec?.admin_metadata[BUSY_KEY] });
  });
  const vol = await backend.createVolume({ size: 1 });
  assert.deepEqual(seen, [{ status: 'creating', owner: `unit-host:${process.pid}` }]);
  assert.equal(vol.status, 'available');
  assert.equal(vol.error, null);
  assert.equal(vol.adminMetadata[BUSY_KEY], undefined);
  const [rec] = await ctx.store.getVolumes({ id: vol.id });
  assert.equal(rec?.status, 'available');
  assert.equal(rec?.provider_location, `fake://volume-${vol.id}`);
  assert.equal(rec?.admin_metadata[BUSY_KEY], undefined);
});

test('a failed extend leaves the volume in error at its old size; the next operation clears the error', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  driver.failNext('extendVolume', new BackendError('fake array refused to grow'));
  await assert.rejects(vol.extend(3), BackendError);
  assert.equal(vol.status, 'error');
  assert.equal(vol.error, 'fake array refused to grow');
  assert.equal(vol.size, 1);
  const [rec] = await ctx.store.getVolumes({ id: vol.id });
  assert.equal(rec?.status, 'error');
  assert.equal(rec?.error, 'fake array refused to grow');
  assert.equal(rec?.size, 1);
  await vol.delete();
  assert.equal(vol.status, 'deleted');
  assert.equal((await ctx.store.getVolumes({ id: vol.id })).length, 0);
});

test('a failed delete keeps the record, in error with the message', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  driver.failNext('deleteVolume', new BackendError('volume busy on the fake array'));
  await assert.rejects(vol.delete(), /volume busy on the fake array/);
  const [rec] = await ctx.store.getVolumes({ id: vol.id });
  assert.equal(rec?.status, 'error');
  assert.equal(rec?.error, 'volume busy on the fake array');
  assert.ok(driver.volumes.has(vol.id));
});

test('a failed snapshot create or delete saves the snapshot in error with the message', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  driver.failNext('createSnapshot', new BackendError('no snapshot space'));
  await assert.rejects(vol.createSnapshot({ name: 's1' }), /no snapshot space/);
  const [failed] = await ctx.store.getSnapshots({ volume_id: vol.id });
  assert.equal(failed?.status, 'error');
  assert.equal(failed?.error, 'no snapshot space');
  assert.equal(failed?.name, 's1');

  const snap = await vol.createSnapshot({ name: 's2' });
  driver.failNext('deleteSnapshot', new BackendError('snapshot in use'));
  await assert.rejects(snap.delete(), /snapshot in use/);
  assert.equal(snap.status, 'error');
  assert.equal(snap.error, 'snapshot in use');
  assert.equal((await ctx.store.getSnapshots({ id: snap.id }))[0]?.error, 'snapshot in use');
  // The volume itself is untouched by its snapshot's failures.
  assert.equal(vol.status, 'available');
});

test('a failed create from a snapshot or clone saves the new volume in error; the source stays available', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  const snap = await vol.createSnapshot();
  driver.failNext('createVolumeFromSnapshot', new BackendError('copy from snapshot failed'));
  await assert.rejects(snap.createVolume({ name: 'restored' }), /copy from snapshot failed/);
  driver.failNext('createClonedVolume', new BackendError('clone failed'));
  await assert.rejects(vol.clone({ name: 'copy' }), /clone failed/);
  const byName = new Map((await ctx.store.getVolumes({ backend: backend.id })).map((r) => [r.name, r]));
  assert.equal(byName.get('restored')?.status, 'error');
  assert.equal(byName.get('restored')?.error, 'copy from snapshot failed');
  assert.equal(byName.get('restored')?.snapshot_id, snap.id);
  assert.equal(byName.get('copy')?.status, 'error');
  assert.equal(byName.get('copy')?.error, 'clone failed');
  assert.equal(byName.get('copy')?.source_volid, vol.id);
  assert.equal(vol.status, 'available');
  assert.equal(snap.status, 'available');
});

test('a failed initialize connection undoes the export, stores no connection and saves the volume in error', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  driver.failNext('initializeConnection', new BackendError('host group full'));
  await assert.rejects(vol.connect(consumer('consumer-1')), /host group full/);
  assert.equal(vol.status, 'error');
  assert.equal(vol.error, 'host group full');
  assert.deepEqual(driver.callsOf('removeExport'), [`removeExport ${vol.id}`]);
  assert.equal(driver.exports.size, 0);
  assert.equal((await ctx.store.getConnections({ volume_id: vol.id })).length, 0);
  assert.equal((await ctx.store.getVolumes({ id: vol.id }))[0]?.error, 'host group full');
});

test('a failed host-side attach disconnects (terminate, remove export) and saves the volume in error with the message', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  fakeConnector.failNextConnect(new VolumeDeviceNotFoundError('fake device never appeared'));
  await assert.rejects(vol.attach(), VolumeDeviceNotFoundError);
  assert.equal(vol.status, 'error');
  assert.equal(vol.error, 'fake device never appeared');
  assert.deepEqual(driver.callsOf('terminateConnection'), [`terminateConnection ${vol.id}`]);
  assert.equal(driver.mappings.size, 0);
  assert.equal(driver.exports.size, 0);
  assert.equal(vol.connections.length, 0);
  assert.equal((await ctx.store.getConnections({ volume_id: vol.id })).length, 0);
  assert.equal((await ctx.store.getVolumes({ id: vol.id }))[0]?.status, 'error');
});

test('a failed connect of an existing connection leaves the connection in error, saved', async (t) => {
  const { ctx, backend } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  const conn = await vol.connect(await backend.connectorProperties());
  fakeConnector.failNextConnect(new VolumeDeviceNotFoundError('no such fake device'));
  await assert.rejects(conn.attach(), /no such fake device/);
  assert.equal(conn.status, 'error');
  assert.equal(conn.connected, false);
  assert.equal((await ctx.store.getConnections({ id: conn.id }))[0]?.status, 'error');
});

test('a transitional record whose owner process on this host is gone is marked error when loaded', async (t) => {
  const { ctx, backend } = await fakeBackend(t);
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  const now = nowIso();
  await ctx.store.setVolume({
    id: '00000000-0000-4000-8000-000000000001',
    version: 0,
    created_at: now,
    updated_at: now,
    backend: backend.id,
    name: 'crashed',
    description: '',
    size: 1,
    status: 'extending',
    provider_location: null,
    provider_auth: null,
    provider_id: null,
    admin_metadata: { [BUSY_KEY]: `unit-host:${dead}` },
    multiattach: false,
    snapshot_id: null,
    source_volid: null,
    error: null,
  });
  const vol = await backend.getVolume('00000000-0000-4000-8000-000000000001');
  assert.equal(vol.status, 'error');
  assert.match(vol.error ?? '', new RegExp(`^interrupted while extending: the process that was working on it \\(unit-host:${dead}\\) is gone$`));
  assert.equal(vol.adminMetadata[BUSY_KEY], undefined);
  assert.equal((await ctx.store.getVolumes({ id: vol.id }))[0]?.status, 'error');
});

test('a volume whose create failed or was interrupted is never connected, attached, extended, snapshotted or cloned, only deleted; a failed attach does not block the next one', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const INCOMPLETE = 'brick_create_incomplete';
  // The torture test's case: a create killed before its storage existed, recovered as error.
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  const now = nowIso();
  const base = { version: 0, created_at: now, updated_at: now, backend: backend.id, description: '', size: 1, provider_location: null, provider_auth: null, provider_id: null, multiattach: false, snapshot_id: null, source_volid: null, error: null };
  await ctx.store.setVolume({ ...base, id: '00000000-0000-4000-8000-000000000002', name: 'killed', status: 'creating', admin_metadata: { [BUSY_KEY]: `unit-host:${dead}`, [INCOMPLETE]: 'creating' } });
  const killed = await backend.getVolume('00000000-0000-4000-8000-000000000002');
  assert.equal(killed.status, 'error');
  driver.failNext('createVolume', new BackendError('the fake pool broke'));
  await assert.rejects(backend.createVolume({ size: 1, name: 'failed' }), /the fake pool broke/);
  const failed = (await backend.getVolumes()).find((v) => v.name === 'failed')!;
  assert.equal(failed.adminMetadata[INCOMPLETE], 'creating', 'a failed create keeps the mark');
  const before = driver.calls.length;
  for (const vol of [killed, failed]) {
    for (const [what, op] of [
      ['attach', () => vol.attach()],
      ['connect', () => vol.connect(consumer('consumer-1'))],
      ['extend', () => vol.extend(2)],
      ['snapshot', () => vol.createSnapshot()],
      ['clone', () => vol.clone()],
    ] as const) {
      await assert.rejects(op(), (e: unknown) => e instanceof InvalidStateError && e.message.includes('never completely created') && e.message.includes(`cannot ${what}`), `${vol.name}: ${what}`);
    }
  }
  assert.deepEqual(driver.calls.slice(before), [], 'no driver call for a refused operation');
  assert.deepEqual(await ctx.store.getConnections({}), [], 'no connection record');
  assert.equal((await ctx.store.getVolumes({ id: killed.id }))[0]?.status, 'error', 'a refusal changes nothing');
  await killed.delete();
  await failed.delete();
  assert.deepEqual((await ctx.store.getVolumes({})).map((v) => v.name), []);

  // A volume created normally drops the mark; a failed attach leaves it in error but attachable.
  const ok = await backend.createVolume({ size: 1 });
  assert.equal(ok.adminMetadata[INCOMPLETE], undefined);
  assert.equal((await ctx.store.getVolumes({ id: ok.id }))[0]?.admin_metadata[INCOMPLETE], undefined);
  fakeConnector.failNextConnect(new VolumeDeviceNotFoundError('fake device never appeared'));
  await assert.rejects(ok.attach(), VolumeDeviceNotFoundError);
  assert.equal(ok.status, 'error');
  await ok.attach();
  assert.equal(ok.status, 'in-use');
  await ok.detach();
  assert.equal(ok.status, 'available');
});
