/**
 * Host integration: json / jsons / dump / dumps / load (cinderlib's serialization) for volumes,
 * snapshots, connections and whole backends, on the file backend with a real loop-device attach.
 * Every round trip is checked by comparing the stored records field by field.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setup, Backend, Volume, Snapshot, Connection, type BrickContext } from '../../src/library/index.js';
import { json, jsons, dump, dumps, load, loadVolume, loadSnapshot, loadConnection, loadBackend, type VolumeJson } from '../../src/library/serialization.js';
import { MemoryStore } from '../../src/persistence/memory.js';
import { SqliteStore } from '../../src/persistence/sqlite.js';
import type { ConnectionRecord, SnapshotRecord, Store, VolumeRecord } from '../../src/persistence/store.js';
import '../../src/drivers/index.js';
import '../../src/initiator/connectors/index.js';
import { listLoops } from '../../src/host/loop.js';
import { createHostContext } from '../../src/host/context.js';
import { InvalidInputError, NotFoundError } from '../../src/errors.js';
import { blockTag, pattern, writeAt } from '../helpers/device-io.js';

let dir: string;
let ctxA: BrickContext;
let backendA: Backend;
let config: { volume_backend_name: string; volume_driver: string; pool_path: string };
let contexts = 0;

async function loopsUnder(path: string): Promise<string[]> {
  return (await listLoops(createHostContext())).filter((l) => l.backFile.startsWith(path)).map((l) => l.name);
}

/** A second, independent library context (its own store and identity map) with the same backend configured. */
async function freshContext(store: Store = new MemoryStore(), hostName = 'node-a'): Promise<{ ctx: BrickContext; backend: Backend }> {
  const ctx = setup({ stateDir: join(dir, `ctx${++contexts}`), persistence: store, hostName });
  const backend = await Backend.create(config, { context: ctx });
  return { ctx, backend };
}

function withoutVersion<T extends { version: number }>(r: T): Omit<T, 'version'> {
  const { version: _v, ...rest } = r;
  return rest;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'brick-ser-'));
  config = { volume_backend_name: 'ser', volume_driver: 'file', pool_path: join(dir, 'pool') };
  ctxA = setup({ stateDir: join(dir, 'a'), persistence: new MemoryStore(), hostName: 'node-a' });
  backendA = await Backend.create(config, { context: ctxA });
});

after(async () => {
  for (const l of await loopsUnder(dir)) await createHostContext().executor.run(['losetup', '-d', l], { checkExitCode: false });
  await rm(dir, { recursive: true, force: true });
});

test('a volume with a snapshot and an attached connection round-trips through json, jsons, dump and dumps, every field', async () => {
  const vol = await backendA.createVolume({ size: 1, name: 'ser-data', description: 'round trip' });
  const snap = await vol.createSnapshot({ name: 'snap-1', description: 'first' });
  const conn = await vol.attach();
  assert.match(conn.path ?? '', /^\/dev\/loop\d+$/);
  await writeAt(conn.path!, 0, pattern('ser'));

  const form = json(vol);
  assert.equal(form.class, 'Volume');
  assert.equal(form.format, 1);
  assert.deepEqual(form.backend, { volume_backend_name: 'ser' });
  assert.deepEqual(form.record, vol.toRecord());
  assert.deepEqual(form.snapshots, [snap.toRecord()]);
  assert.deepEqual(form.connections, [conn.toRecord()]);
  assert.equal(form.connections[0]!.device?.path, conn.path, 'the device info is part of the form');
  assert.equal(jsons(vol), JSON.stringify(form), 'jsons is the compact text of json');
  assert.ok(!jsons(vol).includes(': '), 'compact: no spaces after colons');
  assert.deepEqual(await dump(vol), form, 'dump equals json when memory and store agree');
  assert.equal(await dumps(vol), JSON.stringify(form));

  // Into another context (another store, another identity map): every record is equal.
  const { ctx: ctxB, backend: backendB } = await freshContext();
  const loaded = await loadVolume(jsons(vol), { context: ctxB });
  assert.ok(loaded instanceof Volume);
  assert.notEqual(loaded, vol);
  assert.equal(loaded.backend, backendB);
  assert.deepEqual(loaded.toRecord(), vol.toRecord());
  assert.deepEqual(loaded.snapshots.map((s) => s.toRecord()), [snap.toRecord()]);
  assert.deepEqual(loaded.connections.map((c) => c.toRecord()), [conn.toRecord()]);
  assert.equal(loaded.snapshots[0]!.volume, loaded, 'back-reference restored');
  assert.equal(loaded.connections[0]!.volume, loaded, 'back-reference restored');
  assert.equal(loaded.localAttach?.path, conn.path, 'the same host name sees the local attach');
  assert.deepEqual(json(loaded), form, 'load(x.json).json == x.json');
  assert.ok(backendB.volumes.includes(loaded), 'a loaded volume is listed by its backend');
  assert.deepEqual(await ctxB.store.getVolumes(), [], 'without save nothing is written');

  // Identity map: loading again gives the same instances, in the other context and in the original one.
  assert.equal(await loadVolume(form, { context: ctxB }), loaded);
  assert.equal(loaded.snapshots[0], (await loadVolume(form, { context: ctxB })).snapshots[0]);
  assert.equal(await loadVolume(form, { context: ctxA }), vol);
  assert.equal(vol.connections.length, 1, 'loading into the owning context does not duplicate children');

  // Data is still there and the loaded connection can detach the real device.
  assert.equal(await blockTag(conn.path!, 0), 'ser');
  await vol.detach();
  await snap.delete();
  await vol.delete();
  assert.deepEqual(await loopsUnder(config.pool_path), []);
  await backendB.close();
});

test('every field of every record survives, including non-default values', async () => {
  const vol = await backendA.createVolume({ size: 1, name: 'all-fields' });
  const snap = await vol.createSnapshot({ name: 's' });
  // Give every field a distinctive, non-default value (in memory only; nothing runs).
  vol.description = 'dësc ✓';
  vol.status = 'error';
  vol.providerAuth = 'CHAP user s3cret';
  vol.providerId = 'pid-1';
  vol.adminMetadata = { a: '1', b: 'two' };
  vol.multiattach = true;
  vol.snapshotId = '11111111-1111-4111-8111-111111111111';
  vol.sourceVolid = '22222222-2222-4222-8222-222222222222';
  vol.error = 'boom';
  vol.version = 7;
  snap.status = 'error';
  snap.providerId = 'sp-1';
  snap.error = 'snap boom';
  snap.description = 'snap desc';
  const now = new Date().toISOString();
  const connRec: ConnectionRecord = {
    id: '33333333-3333-4333-8333-333333333333',
    version: 4,
    created_at: now,
    updated_at: now,
    backend: 'ser',
    volume_id: vol.id,
    status: 'attached',
    protocol: 'ISCSI',
    connector_info: { host: 'node-x', initiator: 'iqn.1993-08.org.debian:01:abc', multipath: true, wwpns: ['5000c50012345678'] },
    conn_info: { driver_volume_type: 'iscsi', data: { target_iqn: 'iqn.2010-10.org.openstack:v', target_portal: '192.0.2.1:3260', target_lun: 1, auth_password: 'pw', nested: { x: [1, null, true] } } },
    device: { type: 'block', path: '/dev/sdx', scsi_wwn: '36001405abc', multipath_id: '36001405abc' },
    attached_host: 'node-x',
    attach_mode: 'ro',
  };
  const conn = vol.connectionFromRecord(connRec);
  vol.connections.push(conn);

  const volRec: VolumeRecord = vol.toRecord();
  const snapRec: SnapshotRecord = snap.toRecord();
  const { ctx: ctxB } = await freshContext();
  const loaded = await loadVolume(JSON.parse(JSON.stringify(json(vol))), { context: ctxB });
  assert.deepEqual(loaded.toRecord(), volRec);
  assert.deepEqual(loaded.snapshots[0]!.toRecord(), snapRec);
  assert.deepEqual(loaded.connections[0]!.toRecord(), connRec);
  assert.equal(loaded.connections[0]!.attachedHost, 'node-x');
  assert.equal(loaded.localAttach, null, 'attached on another host: not a local attach here');

  // Snapshot and connection forms carry their volume's record and rebuild the back-reference.
  const { ctx: ctxC } = await freshContext();
  const s2 = await loadSnapshot(jsons(snap), { context: ctxC });
  assert.ok(s2 instanceof Snapshot);
  assert.deepEqual(s2.toRecord(), snapRec);
  assert.deepEqual(s2.volume.toRecord(), volRec);
  const c2 = await loadConnection(json(conn), { context: ctxC });
  assert.ok(c2 instanceof Connection);
  assert.deepEqual(c2.toRecord(), connRec);
  assert.equal(c2.volume, s2.volume, 'both children hang off the same identity-mapped volume');
  assert.deepEqual(json(c2), json(conn));
  assert.deepEqual(json(s2), json(snap));

  // Save into a SQLite store (cinderlib's migration: dump, new persistence, load(save=True)).
  const sqlite = SqliteStore.open({ path: join(dir, 'migrated.sqlite') });
  const { ctx: ctxD } = await freshContext(sqlite);
  const saved = await loadVolume(jsons(vol), { context: ctxD, save: true });
  assert.deepEqual(withoutVersion(saved.toRecord()), withoutVersion(volRec));
  assert.deepEqual(withoutVersion((await sqlite.getVolumes({ id: vol.id }))[0]!), withoutVersion(volRec));
  assert.deepEqual(withoutVersion((await sqlite.getSnapshots({ id: snap.id }))[0]!), withoutVersion(snapRec));
  assert.deepEqual(withoutVersion((await sqlite.getConnections({ id: connRec.id }))[0]!), withoutVersion(connRec));
  assert.equal(saved.version, (await sqlite.getVolumes({ id: vol.id }))[0]!.version, 'saved objects carry the store version');
  assert.equal(saved.connections[0]!.version, 1);
  // Saving again overwrites (no stale-record error) and bumps the version.
  const again = await loadVolume(jsons(vol), { context: ctxD, save: true });
  assert.equal(again, saved);
  assert.equal(saved.version, 2);
  await sqlite.close();

  // Clean up the real objects (restore what the driver needs).
  vol.connections = [];
  vol.status = 'available';
  vol.version = (await ctxA.store.getVolumes({ id: vol.id }))[0]!.version;
  snap.status = 'available';
  await snap.delete();
  await vol.delete();
});

test('json shows memory, dump reloads from the store', async () => {
  const vol = await backendA.createVolume({ size: 1, name: 'lazy' });
  // Another context sharing the store (another process, in effect) snapshots the volume.
  const { ctx: ctxB, backend: backendB } = await freshContext(ctxA.store);
  void ctxB;
  const other = await backendB.getVolume(vol.id);
  const snap = await other.createSnapshot({ name: 'from-b' });
  assert.deepEqual(json(vol).snapshots, [], 'json does not read the store');
  const d = await dump(vol);
  assert.deepEqual(d.snapshots.map((s) => s.id), [snap.id], 'dump reloads the snapshots');
  await snap.delete();
  await vol.delete();
  await backendB.close();
});

test('a whole backend round-trips; the library-level json/dump list every backend; allBackendInfo creates the backend', async () => {
  const v1 = await backendA.createVolume({ size: 1, name: 'b1' });
  const v2 = await backendA.createVolume({ size: 1, name: 'b2' });
  const s1 = await v1.createSnapshot({ name: 'b1-s' });

  const form = await dump(backendA);
  assert.equal(form.class, 'Backend');
  assert.deepEqual(form.backend, { volume_backend_name: 'ser' });
  assert.deepEqual(form.volumes.map((v) => v.record.id).sort(), [v1.id, v2.id].sort());
  const all = await dump(ctxA);
  assert.deepEqual(all, [form], 'dump() of the context lists every backend');
  assert.deepEqual(json(ctxA), [json(backendA)]);

  // A context without the backend: the name alone is not enough ...
  const bare = setup({ stateDir: join(dir, 'bare'), persistence: new MemoryStore(), hostName: 'node-a' });
  await assert.rejects(load(form, { context: bare }), (e: unknown) => e instanceof NotFoundError && e.field === 'backend.volume_backend_name');
  // ... the whole configuration is.
  const full = json(backendA, { allBackendInfo: true });
  assert.equal((full.backend as { volume_driver?: string }).volume_driver, 'file');
  assert.equal((full.backend as { pool_path?: string }).pool_path, config.pool_path);
  const b = await loadBackend(JSON.stringify(full), { context: bare });
  assert.ok(bare.backends.get('ser') === b);
  const byId = new Map(b.volumes.map((v) => [v.id, v]));
  for (const v of [v1, v2]) {
    assert.deepEqual(byId.get(v.id)?.toRecord(), v.toRecord());
  }
  assert.deepEqual(byId.get(v1.id)!.snapshots.map((s) => s.toRecord()), [s1.toRecord()]);
  assert.deepEqual(json(b), json(backendA, {}), 'the reloaded backend serializes the same');
  // An array (what dump() of a context returns) loads into an array.
  const arr = await load(all, { context: bare });
  assert.ok(Array.isArray(arr) && arr[0] === b);
  await b.close();

  await s1.delete();
  await v1.delete();
  await v2.delete();
});

test('malformed documents are refused with the field named, before anything is stored', async () => {
  const vol = await backendA.createVolume({ size: 1, name: 'bad' });
  const good = json(vol);
  const { ctx: ctxB } = await freshContext();
  const field = (f: string) => (e: unknown) => e instanceof InvalidInputError && e.field === f;
  await assert.rejects(load('{not json', { context: ctxB }), field('document'));
  await assert.rejects(load({ ...good, class: 'Disk' }, { context: ctxB }), field('class'));
  await assert.rejects(load({ ...good, format: 2 }, { context: ctxB }), field('format'));
  await assert.rejects(load({ ...good, record: { ...good.record, status: 'exploded' } }, { context: ctxB, save: true }), field('record.status'));
  await assert.rejects(load({ ...good, record: { ...good.record, size: 0 } }, { context: ctxB }), field('record.size'));
  const { id: _id, ...noId } = good.record;
  await assert.rejects(load({ ...good, record: noId }, { context: ctxB }), field('record.id'));
  await assert.rejects(load({ ...good, record: { ...good.record, extra: 1 } }, { context: ctxB }), field('record'));
  const orphan: VolumeJson = { ...good, snapshots: [{ ...(json(await vol.createSnapshot()).record), volume_id: '44444444-4444-4444-8444-444444444444' }] };
  await assert.rejects(load(orphan, { context: ctxB, save: true }), field('snapshots.0.volume_id'));
  await assert.rejects(load([good, { ...good, record: { ...good.record, backend: 'other' } }], { context: ctxB }), field('1.record.backend'));
  await assert.rejects(loadSnapshot(good, { context: ctxB }), field('class'));
  assert.deepEqual(await ctxB.store.getVolumes(), [], 'nothing was saved');
  assert.deepEqual(await ctxB.store.getSnapshots(), []);
  for (const s of [...vol.snapshots]) await s.delete();
  await vol.delete();
});
