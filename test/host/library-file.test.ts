/**
 * Host integration: the cinderlib flows on the file backend, on real loop devices (needs root
 * and loop devices, which the development and CI machines have).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setup, Backend, type BrickContext } from '../../src/library/index.js';
import { MemoryStore } from '../../src/persistence/memory.js';
import '../../src/drivers/index.js';
import '../../src/initiator/connectors/index.js';
import { listLoops } from '../../src/host/loop.js';
import { createHostContext } from '../../src/host/context.js';
import { pattern, blockTag, writeAt } from '../helpers/device-io.js';
import { InvalidInputError, InvalidStateError, InsufficientCapacityError, NotFoundError, ProtocolNotSupportedError, AlreadyExistsError, VolumeDeviceNotFoundError } from '../../src/errors.js';
import { connectorFor } from '../../src/initiator/factory.js';

const GiB = 1024 ** 3;
let dir: string;
let ctx: BrickContext;
let backend: Backend;

async function loopsUnder(path: string): Promise<string[]> {
  return (await listLoops(createHostContext())).filter((l) => l.backFile.startsWith(path)).map((l) => l.name);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'brick-host-'));
  ctx = setup({ stateDir: dir, persistence: new MemoryStore() });
  backend = await Backend.create({ volume_backend_name: 'hostfile', volume_driver: 'file', pool_path: join(dir, 'pool') });
});

after(async () => {
  for (const l of await loopsUnder(dir)) await createHostContext().executor.run(['losetup', '-d', l], { checkExitCode: false });
  await rm(dir, { recursive: true, force: true });
});

test('stats report capacity in GiB with Cinder keys; cached until refresh', async () => {
  const s = await backend.stats();
  assert.equal(s.volume_backend_name, 'hostfile');
  assert.equal(s.storage_protocol, 'local');
  assert.ok(typeof s.total_capacity_gb === 'number' && s.total_capacity_gb > 0);
  assert.ok(typeof s.free_capacity_gb === 'number' && s.free_capacity_gb > 0);
  const vol = await backend.createVolume({ size: 1 });
  assert.equal((await backend.stats()).provisioned_capacity_gb, s.provisioned_capacity_gb === undefined ? undefined : (await backend.stats()).provisioned_capacity_gb);
  const refreshed = await backend.stats({ refresh: true });
  assert.equal(refreshed.provisioned_capacity_gb, (s.provisioned_capacity_gb ?? 0) + 1);
  await vol.delete();
});

test('create, attach as a real loop device, I/O, snapshot, clone, extend attached, detach, delete: nothing left', async () => {
  const vol = await backend.createVolume({ size: 1, name: 'data', description: 'host test' });
  assert.equal(vol.status, 'available');
  assert.equal((await stat(join(dir, 'pool', `volume-${vol.id}.img`))).size, GiB);

  const conn = await vol.attach();
  assert.match(conn.path ?? '', /^\/dev\/loop\d+$/);
  assert.equal(vol.status, 'in-use');
  assert.equal(vol.localAttach, conn);
  assert.equal(conn.protocol, 'LOCAL');
  assert.equal((conn.conn_info as { driver_volume_type: string }).driver_volume_type, 'local');
  const dev = conn.path!;
  await writeAt(dev, 0, pattern('A'));
  await writeAt(dev, 1023, pattern('A-end'));
  assert.equal(await blockTag(dev, 0), 'A');

  const snap = await vol.createSnapshot({ name: 'before' });
  assert.equal(snap.status, 'available');
  await writeAt(dev, 0, pattern('B'));

  const fromSnap = await snap.createVolume({ name: 'restored' });
  const c2 = await fromSnap.attach();
  assert.equal(await blockTag(c2.path!, 0), 'A', 'volume from snapshot has the data as at snapshot time');
  assert.equal(await blockTag(c2.path!, 1023), 'A-end');
  await fromSnap.detach();

  const clone = await vol.clone({ name: 'copy' });
  const c3 = await clone.attach();
  assert.equal(await blockTag(c3.path!, 0), 'B', 'clone has the source data as now');
  await clone.detach();

  const bytes = await vol.extend(2);
  assert.equal(bytes, 2 * GiB, 'extend returns the size the host sees, in bytes');
  assert.equal(vol.size, 2);
  await writeAt(dev, 2047, pattern('C'));
  assert.equal(await blockTag(dev, 2047), 'C');
  assert.equal(await blockTag(dev, 0), 'B');

  await vol.detach();
  assert.equal(vol.status, 'available');
  assert.equal(vol.localAttach, null);
  assert.equal(vol.connections.length, 0);
  await vol.detach(); // not attached: a no-op

  await assert.rejects(vol.delete(), InvalidStateError, 'a volume with snapshots cannot be deleted');
  await snap.delete();
  await snap.delete();
  for (const v of [fromSnap, clone, vol]) await v.delete();
  await vol.delete(); // deleting twice succeeds
  assert.deepEqual(await loopsUnder(dir), []);
  assert.deepEqual((await readdir(join(dir, 'pool'))).filter((f) => f.endsWith('.img')), []);
  assert.deepEqual(await ctx.store.getVolumes({ backend: 'hostfile' }), []);
});

test('connection.detach keeps the connection listed; connection.disconnect removes it', async () => {
  const vol = await backend.createVolume({ size: 1 });
  const conn = await vol.attach();
  await conn.detach();
  assert.equal(conn.path, null);
  assert.equal(vol.connections.length, 1);
  assert.equal(conn.connected, true);
  await conn.disconnect();
  assert.equal(vol.connections.length, 0);
  assert.equal(conn.connected, false);
  assert.equal(vol.status, 'available');
  assert.deepEqual(await loopsUnder(join(dir, 'pool', `volume-${vol.id}`)), []);
  await vol.delete();
});

test('bad input is refused with a typed error naming the field, before anything changes', async () => {
  const before = (await ctx.store.getVolumes()).length;
  for (const size of [0, -1, 1.5, Number.NaN, '1' as unknown as number]) {
    await assert.rejects(backend.createVolume({ size }), (e: unknown) => e instanceof InvalidInputError && e.field === 'size');
  }
  await assert.rejects(backend.createVolume({ size: 1_000_000 }), (e: unknown) => e instanceof InsufficientCapacityError && e.field === 'size');
  assert.equal((await ctx.store.getVolumes()).length, before, 'no record written for refused creates');
  assert.throws(() => new Backend({ volume_backend_name: 'x', volume_driver: 'nope' }), (e: unknown) => e instanceof ProtocolNotSupportedError && e.field === 'volume_driver');
  assert.throws(() => new Backend({ volume_backend_name: 'hostfile', volume_driver: 'file', pool_path: '/elsewhere' }), AlreadyExistsError);
  assert.equal(new Backend({ volume_backend_name: 'hostfile', volume_driver: 'file', pool_path: join(dir, 'pool') }), backend, 'same name and config is the same backend');
  assert.throws(() => new Backend({ volume_backend_name: 'bad name!', volume_driver: 'file' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume_backend_name');
  await assert.rejects(backend.getVolume('no-such-id'), NotFoundError);

  const vol = await backend.createVolume({ size: 1 });
  await assert.rejects(vol.extend(1), (e: unknown) => e instanceof InvalidInputError && e.field === 'new_size');
  await vol.delete();
  await assert.rejects(vol.attach(), InvalidStateError, 'attaching a deleted volume is refused');
  await assert.rejects(connectorFor('LOCAL').connectVolume({ device_path: join(dir, 'missing') }), (e: unknown) => e instanceof VolumeDeviceNotFoundError && e.field === 'device_path');
  await assert.rejects(connectorFor('LOCAL').connectVolume({}), (e: unknown) => e instanceof InvalidInputError && e.field === 'device_path');
});

test('a failed driver operation leaves the volume in error, saved', async () => {
  const vol = await backend.createVolume({ size: 1 });
  await rm(join(dir, 'pool', `volume-${vol.id}.img`));
  await assert.rejects(vol.createSnapshot());
  const [stored] = await ctx.store.getSnapshots({ volume_id: vol.id });
  assert.equal(stored?.status, 'error');
  assert.match(stored?.error ?? '', /not found/);
  await assert.rejects(vol.attach());
  const [rec] = await ctx.store.getVolumes({ id: vol.id });
  assert.equal(rec?.status, 'error');
  assert.equal(vol.status, 'error');
});

test('objects loaded twice are the same instance', async () => {
  const vol = await backend.createVolume({ size: 1 });
  assert.equal(await backend.getVolume(vol.id), vol);
  assert.ok((await backend.getVolumes()).includes(vol));
  await vol.delete();
});

test('backend start and reads leave a lost export alone; ensureExports() re-creates it (Cinder init_host after a reboot)', async () => {
  const { detachLoop, loopsForFile } = await import('../../src/host/loop.js');
  const host = createHostContext();
  const vol = await backend.createVolume({ size: 1 });
  const conn = await vol.attach();
  const file = join(dir, 'pool', `volume-${vol.id}.img`);
  await detachLoop(host, conn.path!); // what a reboot does to a loop device
  assert.deepEqual(await loopsForFile(host, file), []);
  const ctx2 = setup({ stateDir: dir, persistence: ctx.store });
  const again = await Backend.create({ volume_backend_name: 'hostfile', volume_driver: 'file', pool_path: join(dir, 'pool') }, { context: ctx2 });
  await again.getVolumes();
  assert.deepEqual(await loopsForFile(host, file), [], 'starting a backend and reading from it change nothing (#13, defect 3)');
  assert.equal((await again.ensureExports()).find((o) => o.volumeId === vol.id)?.error, null);
  assert.equal((await loopsForFile(host, file)).length, 1, 'the loop device is back');
  const v2 = await again.getVolume(vol.id);
  const c2 = v2.connections[0]!;
  await c2.detach({ force: true, ignoreErrors: true });
  await c2.disconnect();
  await v2.delete();
  assert.deepEqual(await loopsForFile(host, file), []);
});

test('deleting a volume another object already deleted succeeds', async () => {
  const vol = await backend.createVolume({ size: 1 });
  const other = setup({ stateDir: dir, persistence: ctx.store });
  const b2 = await Backend.create({ volume_backend_name: 'hostfile', volume_driver: 'file', pool_path: join(dir, 'pool') }, { context: other });
  await (await b2.getVolume(vol.id)).delete();
  await vol.delete();
  assert.equal(vol.status, 'deleted');
});
