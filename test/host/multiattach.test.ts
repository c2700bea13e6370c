/**
 * Host integration: multi-attach (which cinderlib never had). One volume connected to two hosts
 * at once where the driver reports `multiattach`, detached in either order.
 *
 * Three library contexts share one SQLite file through their own store objects: `controller`
 * connects the volume for `host-a` and `host-b`; each host attaches its connection (the file
 * backend with `multiattach: true`, both on the volume's one real loop device), writes and reads
 * what the other wrote; then the hosts detach and the controller disconnects them one by one.
 * The export must survive the first disconnect and go with the last.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setup, Backend, type BrickContext, type Connection, type Volume } from '../../src/library/index.js';
import { openStore } from '../../src/persistence/factory.js';
import type { Store } from '../../src/persistence/store.js';
import '../../src/drivers/index.js';
import '../../src/initiator/connectors/index.js';
import { listLoops } from '../../src/host/loop.js';
import { createHostContext } from '../../src/host/context.js';
import { InvalidInputError, InvalidStateError } from '../../src/errors.js';
import { blockTag, pattern, writeAt } from '../helpers/device-io.js';

let dir: string;
let n = 0;

async function loopsUnder(path: string): Promise<string[]> {
  return (await listLoops(createHostContext())).filter((l) => l.backFile.startsWith(path)).map((l) => l.name);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'brick-multiattach-'));
});

after(async () => {
  for (const l of await loopsUnder(dir)) await createHostContext().executor.run(['losetup', '-d', l], { checkExitCode: false });
  await rm(dir, { recursive: true, force: true });
});

interface Host {
  name: string;
  ctx: BrickContext;
  store: Store;
  backend: Backend;
}

async function hosts(config: Record<string, unknown> & { volume_backend_name: string; volume_driver: string }, names: string[]): Promise<Host[]> {
  const url = `sqlite://${join(dir, `shared-${++n}.sqlite`)}`;
  const out: Host[] = [];
  for (const name of names) {
    const store = await openStore(url);
    const ctx = setup({ stateDir: join(dir, `${name}-${n}`), persistence: store, hostName: name });
    out.push({ name, ctx, store, backend: await Backend.create(config, { context: ctx }) });
  }
  return out;
}

async function closeAll(hs: Host[]): Promise<void> {
  for (const h of hs) await h.backend.close();
  for (const h of hs) await h.store.close();
}

/** The consumer side: load the volume, find this host's connection, attach it. */
async function attachOn(h: Host, volumeId: string): Promise<{ vol: Volume; conn: Connection; path: string }> {
  const vol = await h.backend.getVolume(volumeId);
  const conn = vol.connections.find((c) => c.attachedHost === h.name);
  assert.ok(conn, `${h.name} finds its connection`);
  const dev = await conn.attach();
  return { vol, conn, path: dev.path };
}

for (const order of [
  ['host-a', 'host-b'],
  ['host-b', 'host-a'],
] as const) {
  test(`one volume connected to two hosts; detached ${order[0]} first, then ${order[1]}`, async () => {
    const pool = join(dir, `pool-${order[0]}`);
    const config = { volume_backend_name: `multi-${order[0]}`, volume_driver: 'file', pool_path: pool, multiattach: true };
    const [controller, a, b] = await hosts(config, ['controller', 'host-a', 'host-b']);
    const byName = { 'host-a': a!, 'host-b': b! };
    try {
      const stats = await controller!.backend.stats({ refresh: true });
      assert.equal(stats.multiattach, true, 'the file driver reports multiattach when configured');
      assert.equal(stats.pools?.[0]?.multiattach, true);

      const vol = await controller!.backend.createVolume({ size: 1, name: 'shared-disk', multiattach: true });
      assert.equal(vol.multiattach, true);
      const connA = await vol.connect(await a!.backend.connectorProperties(), { attachedHost: 'host-a' });
      const connB = await vol.connect(await b!.backend.connectorProperties(), { attachedHost: 'host-b' });
      assert.notEqual(connA.id, connB.id);
      assert.deepEqual(vol.connections.map((c) => c.attachedHost).sort(), ['host-a', 'host-b']);
      assert.equal(vol.status, 'in-use');

      const onA = await attachOn(a!, vol.id);
      const onB = await attachOn(b!, vol.id);
      assert.equal(onA.conn.id, connA.id);
      assert.equal(onB.conn.id, connB.id);
      assert.equal(onA.path, onB.path, 'both hosts use the one export');
      await writeAt(onA.path, 0, pattern('from-a'));
      await writeAt(onB.path, 1, pattern('from-b'));
      assert.equal(await blockTag(onB.path, 0), 'from-a', 'host-b reads what host-a wrote');
      assert.equal(await blockTag(onA.path, 1), 'from-b', 'host-a reads what host-b wrote');

      await vol.refresh();
      assert.deepEqual(
        vol.connections.map((c) => [c.attachedHost, c.path]).sort(),
        [
          ['host-a', onA.path],
          ['host-b', onB.path],
        ],
        'the controller sees both attachments',
      );

      // First host detaches, the controller disconnects it: the other host keeps working.
      const [first, second] = [byName[order[0]], byName[order[1]]];
      const firstSide = first === a ? onA : onB;
      const secondSide = second === a ? onA : onB;
      await firstSide.conn.detach();
      await vol.refresh();
      const firstConn = vol.connections.find((c) => c.attachedHost === first.name)!;
      await firstConn.disconnect();
      assert.equal(vol.status, 'in-use', 'still connected to the other host');
      assert.deepEqual(vol.connections.map((c) => c.attachedHost), [second.name]);
      assert.deepEqual(await loopsUnder(pool), [secondSide.path], 'the export stays while a connection remains');
      await writeAt(secondSide.path, 2, pattern(`after-${first.name}`));
      assert.equal(await blockTag(secondSide.path, 2), `after-${first.name}`);
      assert.equal(await blockTag(secondSide.path, 0), 'from-a');
      await secondSide.vol.refresh();
      assert.deepEqual(secondSide.vol.connections.map((c) => c.id), [secondSide.conn.id], `${second.name} sees only its own connection left`);

      // Second host detaches, the controller disconnects it: the export goes.
      await secondSide.conn.detach();
      await vol.refresh();
      await vol.connections[0]!.disconnect();
      assert.equal(vol.status, 'available');
      assert.deepEqual(vol.connections, []);
      assert.deepEqual(await loopsUnder(pool), [], 'the last disconnect removes the export');
      assert.deepEqual(await controller!.store.getConnections({ volume_id: vol.id }), []);
      await vol.delete();
      assert.deepEqual(await controller!.store.getVolumes({ backend: config.volume_backend_name }), []);
    } finally {
      await closeAll([controller!, a!, b!]);
    }
  });
}

test('without multiattach a second host is refused, and a multiattach volume needs a backend that reports it', async () => {
  const pool = join(dir, 'pool-single');
  const [controller, a, b] = await hosts({ volume_backend_name: 'single', volume_driver: 'file', pool_path: pool }, ['controller', 'host-a', 'host-b']);
  try {
    assert.equal((await controller!.backend.stats({ refresh: true })).multiattach, false);
    await assert.rejects(controller!.backend.createVolume({ size: 1, multiattach: true }), (e: unknown) => e instanceof InvalidInputError && e.field === 'multiattach');
    const vol = await controller!.backend.createVolume({ size: 1 });
    const connA = await vol.connect(await a!.backend.connectorProperties(), { attachedHost: 'host-a' });
    await assert.rejects(vol.connect(await b!.backend.connectorProperties(), { attachedHost: 'host-b' }), InvalidStateError);
    assert.deepEqual(vol.connections.map((c) => c.id), [connA.id], 'the refused connect left nothing behind');
    assert.deepEqual((await controller!.store.getConnections({ volume_id: vol.id })).map((c) => c.id), [connA.id]);
    assert.equal(vol.status, 'in-use');
    await connA.disconnect();
    assert.deepEqual(await loopsUnder(pool), []);
    await vol.delete();
  } finally {
    await closeAll([controller!, a!, b!]);
  }
});

test('a host disconnects its own connection from a stale view: the other host keeps the export', async () => {
  const pool = join(dir, 'pool-stale');
  const config = { volume_backend_name: 'multi-stale', volume_driver: 'file', pool_path: pool, multiattach: true };
  const [controller, a, b] = await hosts(config, ['controller', 'host-a', 'host-b']);
  try {
    const vol = await controller!.backend.createVolume({ size: 1, multiattach: true });
    await vol.connect(await a!.backend.connectorProperties(), { attachedHost: 'host-a' });
    const onA = await attachOn(a!, vol.id); // host-a's view: one connection, the volume as it was
    await vol.connect(await b!.backend.connectorProperties(), { attachedHost: 'host-b' }); // the controller saves the volume again
    const onB = await attachOn(b!, vol.id);
    await writeAt(onB.path, 0, pattern('b-before'));
    assert.deepEqual(onA.vol.connections.map((c) => c.attachedHost), ['host-a'], 'host-a has not seen host-b yet');

    await onA.conn.disconnect(); // detaches on host-a and terminates, from the stale view
    assert.equal(onA.conn.status, 'detached');
    assert.equal(onA.vol.status, 'in-use', 'host-b still holds a connection');
    assert.deepEqual(await loopsUnder(pool), [onB.path], 'the export host-b uses is not removed');
    assert.equal(await blockTag(onB.path, 0), 'b-before');

    await vol.refresh();
    assert.deepEqual(vol.connections.map((c) => c.attachedHost), ['host-b']);
    await onB.conn.disconnect(); // host-b from its own view, which is stale too now
    assert.equal(onB.vol.status, 'available');
    assert.deepEqual(await loopsUnder(pool), []);
    await vol.refresh();
    assert.equal(vol.status, 'available');
    await vol.delete();
    assert.deepEqual(await controller!.store.getVolumes({ backend: config.volume_backend_name }), []);
  } finally {
    await closeAll([controller!, a!, b!]);
  }
});

test('an out-of-date Volume object picks up the stored state before extend and delete', async () => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { setup, Backend } = await import('../../src/library/index.js');
  const { SqliteStore } = await import('../../src/persistence/sqlite.js');
  const dir = await mkdtemp(join(tmpdir(), 'brick-stale-'));
  try {
    const cfg = { volume_backend_name: 'stale', volume_driver: 'file', pool_path: join(dir, 'pool') };
    const a = setup({ stateDir: dir, hostName: 'a', persistence: SqliteStore.open({ path: join(dir, 'db.sqlite') }) });
    const b = setup({ stateDir: dir, hostName: 'b', persistence: SqliteStore.open({ path: join(dir, 'db.sqlite') }) });
    const va = await (await Backend.create(cfg, { context: a })).createVolume({ size: 1 });
    const vb = await (await Backend.create(cfg, { context: b })).getVolume(va.id);
    await va.extend(2); // b's object still says 1 GiB
    assert.equal(vb.size, 1);
    await vb.extend(3); // no StaleRecordError: b starts from the stored state
    assert.equal(vb.size, 3);
    const [rec] = await b.store.getVolumes({ id: va.id });
    assert.equal(rec?.size, 3);
    await va.delete(); // a's object is now out of date in turn
    assert.deepEqual(await a.store.getVolumes({ id: va.id }), []);
    await a.store.close();
    await b.store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
