/**
 * Issue #13, defect 3: reads change nothing. Export recovery (Cinder's `init_host`
 * `ensure_export`) runs only through {@link Backend.ensureExports}, per volume under the
 * volume's lock, on a record read inside that lock; never at backend start or on a read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { LockTimeoutError } from '../../../src/errors.js';
import { setup, Backend, type BrickContext } from '../../../src/library/index.js';
import { consumer, fakeBackend, type FakeDriver } from './fake-driver.js';

/** A second process on the same store: its own context and its own `fake` backend instance. */
async function secondProcess(ctx: BrickContext, name: string): Promise<{ ctx2: BrickContext; backend2: Backend; driver2: FakeDriver }> {
  const ctx2 = setup({ stateDir: ctx.stateDir, hostRoot: ctx.hostRoot, persistence: ctx.store, executor: new RecordingExecutor(), hostName: 'unit-host', myIp: '192.0.2.10' });
  const backend2 = await Backend.create({ volume_backend_name: name, volume_driver: 'fake' }, { context: ctx2 });
  return { ctx2, backend2, driver2: backend2.driver as FakeDriver };
}

test('backend start and reads never call ensureExport, even for a connected volume', async (t) => {
  const { ctx, backend } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  await vol.connect(consumer('consumer-1'));
  const { backend2, driver2 } = await secondProcess(ctx, backend.id);
  await backend2.getVolumes();
  const again = await backend2.getVolume(vol.id);
  assert.equal(again.connections.length, 1, 'the connection is there to be recovered');
  await backend2.getSnapshots();
  await backend2.stats({ refresh: true });
  assert.deepEqual(driver2.callsOf('ensureExport'), []);
  assert.deepEqual(driver2.callsOf('createExport'), []);
});

test('ensureExports() ensures the export of connected volumes only, under the volume lock, and reports each', async (t) => {
  const { ctx, backend } = await fakeBackend(t);
  const connected = await backend.createVolume({ size: 1, name: 'connected' });
  await connected.connect(consumer('consumer-1'));
  await backend.createVolume({ size: 1, name: 'unconnected' });
  const broken = await backend.createVolume({ size: 1, name: 'broken' });
  await broken.connect(consumer('consumer-2'));
  const [rec] = await ctx.store.getVolumes({ id: broken.id });
  await ctx.store.setVolume({ ...rec!, status: 'error', error: 'set by the test' });

  const { ctx2, backend2, driver2 } = await secondProcess(ctx, backend.id);
  let lockHeld: boolean | undefined;
  driver2.during('ensureExport', async () => {
    // The lock is not re-entrant: a second holder must wait, so a short try times out.
    lockHeld = await ctx2.locks.withLock(`volume-${connected.id}`, async () => false, { timeoutMs: 50 }).catch((e: unknown) => e instanceof LockTimeoutError);
  });
  const outcomes = await backend2.ensureExports();
  assert.deepEqual(driver2.callsOf('ensureExport'), [`ensureExport ${connected.id}`]);
  assert.equal(lockHeld, true, 'ensureExport runs while volume-<id> is locked');
  assert.deepEqual(outcomes.map((o) => ({ volumeId: o.volumeId, backend: o.backend, error: o.error })), [{ volumeId: connected.id, backend: backend.id, error: null }]);
});

test('ensureExports() reads the record inside the lock: a connection removed since the backend loaded is not re-exported', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const vol = await backend.createVolume({ size: 1 });
  const conn = await vol.connect(consumer('consumer-1'));
  const { backend2, driver2 } = await secondProcess(ctx, backend.id);
  assert.equal((await backend2.getVolume(vol.id)).connections.length, 1, 'the second process saw the connection');
  await conn.disconnect(); // a concurrent `volume detach` in the first process
  assert.equal(driver.exports.has(vol.id), false);
  assert.deepEqual(await backend2.ensureExports(), []);
  assert.deepEqual(driver2.callsOf('ensureExport'), []);
});

test('ensureExports() reports a driver failure for that volume and goes on with the others', async (t) => {
  const { backend, driver } = await fakeBackend(t);
  const a = await backend.createVolume({ size: 1, name: 'a' });
  const b = await backend.createVolume({ size: 1, name: 'b' });
  await a.connect(consumer('consumer-1'));
  await b.connect(consumer('consumer-1'));
  driver.failNext('ensureExport');
  const outcomes = await backend.ensureExports();
  assert.equal(outcomes.length, 2);
  assert.match(String(outcomes[0]!.error?.message), /fake ensureExport failed/);
  assert.equal(outcomes[1]!.error, null);
  assert.equal(driver.callsOf('ensureExport').length, 2);
  const [rec] = await backend.context.store.getVolumes({ id: outcomes[0]!.volumeId });
  assert.equal(rec?.status, 'in-use', 'a failed recovery leaves the volume as it was');
});
