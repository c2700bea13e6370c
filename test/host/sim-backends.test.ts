/**
 * The array drivers through the library, against their simulators: the backend configurations
 * `brick sim eseries|flashsystem` print are the ones proven here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setup, Backend } from '../../src/library/index.js';
import { MemoryStore } from '../../src/persistence/memory.js';
import '../../src/drivers/index.js';
import { startEseriesSimulator } from '../../sims/eseries/simulator.js';
import { startFlashSystemSimulator } from '../../sims/flashsystem/index.js';
import { InvalidInputError } from '../../src/errors.js';

const connector = { platform: 'x86_64', os_type: 'linux2', ip: '127.0.0.1', host: 'consumer-1', multipath: true, enforce_multipath: false, initiator: 'iqn.1993-08.org.debian:01:consumer1' };

async function lifeCycle(backend: Backend): Promise<void> {
  const stats = await backend.stats({ refresh: true });
  assert.equal(stats.volume_backend_name, backend.id);
  assert.ok((stats.pools ?? []).length >= 1 || typeof stats.total_capacity_gb === 'number', 'capacity reported, per pool or for the backend');
  const vol = await backend.createVolume({ size: 1, name: 'sim-vol' });
  assert.equal(vol.status, 'available');
  const snap = await vol.createSnapshot();
  const fromSnap = await snap.createVolume();
  assert.equal(fromSnap.status, 'available');
  const clone = await vol.clone();
  assert.equal(clone.status, 'available');
  await vol.extend(2);
  assert.equal(vol.size, 2);
  const conn = await vol.connect(connector, { attachedHost: 'consumer-1' });
  const info = conn.connInfo as { driver_volume_type: string; data: Record<string, unknown> };
  assert.equal(info.driver_volume_type, 'iscsi');
  assert.ok(typeof info.data.target_iqn === 'string' || Array.isArray(info.data.target_iqns), JSON.stringify(info.data));
  assert.equal(vol.status, 'in-use');
  await conn.disconnect();
  assert.equal(vol.status, 'available');
  await assert.rejects(vol.connect({ ...connector, initiator: undefined } as never), InvalidInputError, 'a connector without an initiator is refused');
  await snap.delete();
  for (const v of [fromSnap, clone, vol]) await v.delete();
  assert.deepEqual(await backend.getVolumes(), []);
}

test('NetApp E-Series driver through the library against the Web Services simulator', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-eseries-'));
  const sim = await startEseriesSimulator({ password: 'ws-secret', arrayPassword: 'array-secret' });
  try {
    const ctx = setup({ stateDir: dir, persistence: new MemoryStore() });
    const u = new URL(sim.url);
    const backend = await Backend.create(
      {
        volume_backend_name: 'eseries-sim',
        volume_driver: 'netapp_eseries',
        netapp_server_hostname: u.hostname,
        netapp_server_port: Number(u.port),
        netapp_transport_type: 'http',
        netapp_login: 'rw',
        netapp_password: 'ws-secret',
        netapp_sa_password: 'array-secret',
        netapp_controller_ips: sim.state.options.controllerAddresses.join(','),
      },
      { context: ctx },
    );
    await lifeCycle(backend);
    await backend.close();
  } finally {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('IBM FlashSystem driver through the library against the SSH CLI simulator', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-flash-'));
  const sim = await startFlashSystemSimulator({ users: [{ name: 'superuser', password: 'fs-secret' }] });
  try {
    const ctx = setup({ stateDir: dir, persistence: new MemoryStore() });
    const backend = await Backend.create(
      {
        volume_backend_name: 'flashsystem-sim',
        volume_driver: 'ibm_flashsystem',
        san_ip: sim.host,
        san_ssh_port: sim.port,
        san_login: 'superuser',
        san_password: 'fs-secret',
        san_ssh_host_key: sim.hostKeyFingerprint,
        flashsystem_connection_protocol: 'iSCSI',
      },
      { context: ctx },
    );
    await lifeCycle(backend);
    await backend.close();
  } finally {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  }
});
