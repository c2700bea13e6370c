/**
 * Host integration: remote attach WITH shared persistence (cinderlib's documented pattern).
 *
 * Two library contexts play two hosts: `controller` manages the storage, `consumer` attaches.
 * Each opens its OWN store object on the SAME database (a SQLite file; and a PostgreSQL schema
 * when BRICK_TEST_PG_URL is set), so everything they share goes through the store:
 *
 * 1. consumer: its connector properties go into the key-value store under its node id;
 * 2. controller: reads them, `volume.connect(connector, { attachedHost: 'consumer' })`;
 * 3. consumer: loads the volume, finds the connection, `connection.attach()` (a real loop device
 *    for the file backend), does I/O; the device info is persisted;
 * 4. controller: `volume.refresh()` shows the device; after the consumer's `connection.detach()`
 *    it `disconnect`s; nothing is left on the host or in the store.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { setup, Backend, type BrickContext } from '../../src/library/index.js';
import { openStore } from '../../src/persistence/factory.js';
import type { Store } from '../../src/persistence/store.js';
import '../../src/drivers/index.js';
import '../../src/initiator/connectors/index.js';
import { listLoops } from '../../src/host/loop.js';
import { createHostContext } from '../../src/host/context.js';
import { InvalidStateError } from '../../src/errors.js';
import { blockTag, pattern, writeAt } from '../helpers/device-io.js';

const PG_URL = process.env.BRICK_TEST_PG_URL;
let dir: string;
const schemas: string[] = [];

async function loopsUnder(path: string): Promise<string[]> {
  return (await listLoops(createHostContext())).filter((l) => l.backFile.startsWith(path)).map((l) => l.name);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'brick-remote-shared-'));
});

after(async () => {
  for (const l of await loopsUnder(dir)) await createHostContext().executor.run(['losetup', '-d', l], { checkExitCode: false });
  await rm(dir, { recursive: true, force: true });
  if (PG_URL && schemas.length > 0) {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
    await client.end();
  }
});

interface Host {
  ctx: BrickContext;
  store: Store;
  backend: Backend;
}

/** One "host": its own store object (opened from `url`), context and Backend on the shared config. */
async function host(name: string, url: string, config: { volume_backend_name: string; volume_driver: string; pool_path: string }): Promise<Host> {
  const store = await openStore(url);
  const ctx = setup({ stateDir: join(dir, name), persistence: store, hostName: name });
  const backend = await Backend.create(config, { context: ctx });
  return { ctx, store, backend };
}

async function fileBytes(file: string, offset: number, length: number): Promise<string> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, offset);
    return buf.toString('latin1');
  } finally {
    await fh.close();
  }
}

async function scenario(label: string, url: string): Promise<void> {
  const config = { volume_backend_name: `shared-${label}`, volume_driver: 'file', pool_path: join(dir, `pool-${label}`) };
  const controller = await host('controller', url, config);
  const consumer = await host('consumer', url, config);
  assert.notEqual(controller.store, consumer.store, 'two store objects');
  try {
    // 1. consumer publishes its connector properties under its node id
    const props = await consumer.backend.connectorProperties();
    assert.equal(props.host, 'consumer');
    await consumer.store.setKeyValue({ key: 'consumer', value: JSON.stringify(props) });

    // 2. controller creates a volume and connects it for the consumer
    const vol = await controller.backend.createVolume({ size: 1, name: 'shared' });
    const [kv] = await controller.store.getKeyValues('consumer');
    assert.ok(kv, 'the controller finds the consumer connector properties');
    const connectorInfo = JSON.parse(kv.value) as typeof props;
    assert.deepEqual(connectorInfo, props);
    const conn = await vol.connect(connectorInfo, { attachedHost: 'consumer' });
    assert.equal(conn.attachedHost, 'consumer');
    assert.equal(conn.device, null, 'connect maps; it does not attach');
    assert.equal(vol.status, 'in-use');
    assert.equal(vol.localAttach, null, 'not attached on the controller');

    // 3. consumer loads the volume and attaches through the connection the controller made
    const cvol = await consumer.backend.getVolume(vol.id);
    assert.notEqual(cvol, vol, 'the consumer has its own objects');
    assert.deepEqual(cvol.connections.map((c) => c.id), [conn.id]);
    const cconn = cvol.connections[0]!;
    assert.deepEqual(cconn.connectorInfo, props);
    assert.deepEqual(cconn.connInfo, conn.connInfo);
    const device = await cconn.attach();
    assert.match(device.path, /^\/dev\/loop\d+$/);
    assert.equal(cconn.status, 'attached');
    assert.equal(cvol.localAttach, cconn, 'attached on the consumer');
    await writeAt(device.path, 0, pattern(`shared-${label}`));
    await writeAt(device.path, 512, pattern(`shared-${label}-mid`));
    assert.equal(await blockTag(device.path, 512), `shared-${label}-mid`);
    assert.match(await fileBytes(vol.providerLocation!, 512 * 1024 * 1024, 64), new RegExp(`^brick-test shared-${label}-mid `), 'the data is in the controller volume');

    // 4. the controller sees the device info the consumer persisted
    assert.equal(conn.device, null, 'not yet: the controller has not re-read the store');
    await vol.refresh();
    assert.deepEqual(vol.connections.map((c) => c.id), [conn.id]);
    assert.equal(vol.connections[0], conn, 'refresh keeps identity');
    assert.deepEqual(conn.device, device);
    assert.equal(conn.status, 'attached');
    assert.equal(vol.localAttach, null, 'attached on another host, so not local to the controller');
    await assert.rejects(vol.delete(), InvalidStateError, 'a connected volume cannot be deleted');

    // the consumer detaches later, from a new process (a new context and store object): the
    // device info it needs comes from the store. The connection stays (mapped) until the
    // controller disconnects.
    const later = await host('consumer', url, config);
    const lvol = await later.backend.getVolume(vol.id);
    const lconn = lvol.connections[0]!;
    assert.notEqual(lconn, cconn);
    assert.deepEqual(lconn.device, device, 'the device info was persisted by the attach');
    assert.equal(lvol.localAttach, lconn);
    assert.equal(await blockTag(lconn.path!, 0), `shared-${label}`);
    await lconn.detach();
    assert.equal(lconn.device, null);
    await later.backend.close();
    await later.store.close();
    await vol.refresh();
    assert.equal(conn.device, null, 'the detach is persisted');
    assert.equal(conn.connected, true);
    await conn.disconnect();
    assert.equal(conn.status, 'detached');
    assert.equal(vol.status, 'available');
    assert.deepEqual(await controller.store.getConnections({ volume_id: vol.id }), []);
    assert.deepEqual(await loopsUnder(config.pool_path), [], 'the export is removed with the last connection');
    await cvol.refresh();
    assert.deepEqual(cvol.connections, [], 'the consumer sees the connection gone');
    assert.equal(cvol.status, 'available');

    await vol.delete();
    await consumer.store.deleteKeyValue('consumer');
    assert.deepEqual(await consumer.store.getVolumes({ backend: config.volume_backend_name }), []);
    assert.deepEqual(await consumer.store.getKeyValues('consumer'), []);
    assert.deepEqual(await loopsUnder(config.pool_path), []);
  } finally {
    await controller.backend.close();
    await consumer.backend.close();
    await controller.store.close();
    await consumer.store.close();
  }
}

test('shared SQLite file: consumer publishes its connector, controller connects, consumer attaches, controller disconnects', async () => {
  await scenario('sqlite', `sqlite://${join(dir, 'shared.sqlite')}`);
});

test('shared PostgreSQL: the same flow through two PostgreSQL store objects', { skip: PG_URL ? false : 'BRICK_TEST_PG_URL is not set (start one with tools/ci/postgres.sh)' }, async () => {
  const schema = `brick_remote_${process.pid}`;
  schemas.push(schema);
  const url = new URL(PG_URL!);
  url.searchParams.set('schema', schema);
  await scenario('pg', url.toString());
});
