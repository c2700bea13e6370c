/**
 * Lab test of the NetApp E-Series driver against the SANtricity simulator backed by a real LIO
 * target: the driver maps a simulated volume, the simulator turns the mapping into a real LUN
 * for this host's IQN on two portals (127.0.0.1 and 127.0.0.2, the two simulated controllers),
 * and the ISCSI connector attaches it with multipath. Data is written through the device and
 * read back from the backing file (and the other way round); a clone made by a copy job holds
 * the source's data. Then the cinderlib functional flows run through the library (Backend,
 * Volume, Snapshot) against the same simulated array with real I/O: stats, create, attach
 * and detach, snapshots, disk I/O, extend detached and attached, clone, volume from snapshot.
 * Every test ends with nothing left behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startInitiatorDaemons, assertNoLeftovers, probeLeftovers, modprobe, LAB_INITIATOR_IQN, LAB_SCRATCH, readDirect, writeSynced, type Leftovers } from './fixtures/index.js';
import { startEseriesSimulator, type EseriesSimulator } from '../../sims/eseries/simulator.js';
import { createLioBacking, type LioBacking } from '../../sims/eseries/lio-backing.js';
import { NetAppEseriesIscsiDriver } from '../../src/drivers/netapp-eseries/driver.js';
import { connectorFor } from '../../src/initiator/factory.js';
import '../../src/initiator/connectors/index.js';
import { createHostContext } from '../../src/host/context.js';
import { LockManager } from '../../src/host/lock.js';
import { ProcessExecutor } from '../../src/exec/executor.js';
import type { ConnectorProperties } from '../../src/initiator/properties.js';
import type { DriverVolume } from '../../src/drivers/driver.js';
import { uuidToLabel } from '../../src/drivers/netapp-eseries/utils.js';
import '../../src/drivers/index.js';
import { setup, Backend, type Volume, type BrickContext } from '../../src/library/index.js';

const TARGET_IQN = 'iqn.1992-08.com.netapp:2800.600a098000a4b28d00000000brick';
const executor = new ProcessExecutor({ defaultTimeoutMs: 120_000 });
let sim: EseriesSimulator;
let backing: LioBacking;
let driver: NetAppEseriesIscsiDriver;
let baseline: Partial<Leftovers> = {};
let host: ReturnType<typeof createHostContext>;

function connectorProps(): ConnectorProperties {
  return { platform: 'x86_64', os_type: 'linux', ip: '127.0.0.1', host: 'lab', multipath: true, enforce_multipath: false, initiator: LAB_INITIATOR_IQN };
}

function vol(sizeGiB = 1): DriverVolume {
  const id = randomUUID();
  return { id, name: `volume-${id}`, size: sizeGiB };
}


before(async () => {
  await startInitiatorDaemons({ initiatorIqn: LAB_INITIATOR_IQN });
  await modprobe('target_core_mod', 'iscsi_target_mod', 'target_core_file');
  baseline = probeLeftovers();
  backing = createLioBacking({ dir: join(LAB_SCRATCH, `eseries-${process.pid}`), targetIqn: TARGET_IQN, portals: ['127.0.0.1:3260', '127.0.0.2:3260'] });
  sim = await startEseriesSimulator({ targetIqn: TARGET_IQN, backing, copyPendingMs: 20, copyDurationMs: 100 });
  const stateDir = fs.mkdtempSync(join(LAB_SCRATCH, 'eseries-state-'));
  host = createHostContext({ executor, locks: new LockManager(join(stateDir, 'locks'), 30_000) });
  driver = new NetAppEseriesIscsiDriver(
    {
      netapp_server_hostname: '127.0.0.1',
      netapp_server_port: sim.port,
      netapp_login: 'rw',
      netapp_password: 'rw',
      netapp_controller_ips: '10.113.1.10,10.113.1.11',
      netapp_poll_interval: 0.05,
      use_multipath_for_image_xfer: true,
    },
    { host, backendName: 'eseries-lab', stateDir },
  );
  await driver.doSetup();
  await driver.checkForSetupError();
});

after(async () => {
  await driver?.close();
  await sim?.close();
  await backing?.close();
});

test('initialize connection -> multipath attach -> data both ways -> detach -> terminate, nothing left', async () => {
  const v = vol(1);
  await driver.createVolume(v);
  const info = await driver.initializeConnection(v, connectorProps());
  assert.equal(info.driver_volume_type, 'iscsi');
  assert.equal((info.data.target_portals as string[]).length, 2);
  const c = connectorFor(driver.connectorProtocol, { useMultipath: driver.useMultipath, host });
  const device = await c.connectVolume(info.data);
  try {
    assert.match(device.path, /^\/dev\/(dm-\d+|mapper\/)/, `multipath device, got ${device.path}`);
    const ref = sim.state.findVolume(uuidToLabel(v.id))!.id;
    const file = backing.fileOf(ref)!;
    const data = randomBytes(4096);
    writeSynced(device.path, data, 1 << 20);
    const back = Buffer.alloc(4096);
    const ff = fs.openSync(file, 'r');
    try {
      fs.readSync(ff, back, 0, 4096, 1 << 20);
    } finally {
      fs.closeSync(ff);
    }
    assert.ok(back.equals(data), 'data written to the device is in the backing file');
    const data2 = randomBytes(4096);
    writeSynced(file, data2, 2 << 20);
    assert.ok(readDirect(device.path, 2 << 20).equals(data2), 'data written to the backing file reads back through the device');
  } finally {
    await c.disconnectVolume(info.data, device);
    await driver.terminateConnection(v, connectorProps());
  }
  assert.equal(sim.state.mappingOf(sim.state.findVolume(uuidToLabel(v.id))!.id), undefined);
  await driver.deleteVolume(v);
  await assertNoLeftovers(baseline);
});

test('a clone made by a copy job holds the source data and attaches', async () => {
  const v = vol(1);
  await driver.createVolume(v);
  const c = connectorFor(driver.connectorProtocol, { useMultipath: driver.useMultipath, host });
  const payload = randomBytes(4096);
  {
    const info = await driver.initializeConnection(v, connectorProps());
    const device = await c.connectVolume(info.data);
    try {
      const fd = fs.openSync(device.path, 'r+');
      try {
        fs.writeSync(fd, payload, 0, 4096, 0);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    } finally {
      await c.disconnectVolume(info.data, device);
      await driver.terminateConnection(v, connectorProps());
    }
  }
  const clone = vol(1);
  await driver.createClonedVolume(clone, v);
  const info = await driver.initializeConnection(clone, connectorProps());
  const device = await c.connectVolume(info.data);
  try {
    assert.ok(readDirect(device.path, 0).equals(payload), 'the clone holds the source data');
  } finally {
    await c.disconnectVolume(info.data, device);
    await driver.terminateConnection(clone, connectorProps());
  }
  await driver.deleteVolume(clone);
  await driver.deleteVolume(v);
  await assertNoLeftovers(baseline);
});

// ---------------------------------------------------------------- cinderlib flows through the library

const GiB = 2 ** 30;
let ctx: BrickContext;
let backend: Backend;
const made: Volume[] = [];
const pattern = Buffer.alloc(4096, 0);
randomBytes(4096).copy(pattern);

function devSize(dev: string): number {
  return Number(execFileSync('blockdev', ['--getsize64', dev]).toString().trim());
}


async function create(size = 1): Promise<Volume> {
  const v = await backend.createVolume({ size, name: 'ftest-eseries' });
  made.push(v);
  assert.equal(v.status, 'available');
  assert.equal(v.size, size);
  return v;
}

async function sizeOnHost(v: Volume, detach = true): Promise<number> {
  const conn = v.localAttach ?? (await v.attach());
  const gib = devSize(conn.path!) / GiB;
  if (detach) await v.detach();
  return gib;
}

async function write(v: Volume, buf: Buffer): Promise<void> {
  const conn = v.localAttach ?? (await v.attach());
  writeSynced(conn.path!, buf);
  await v.detach();
}

async function read(v: Volume): Promise<Buffer> {
  const conn = v.localAttach ?? (await v.attach());
  const b = readDirect(conn.path!, 0);
  await v.detach();
  return b;
}

async function cleanup(): Promise<void> {
  const errors: unknown[] = [];
  for (const v of made.splice(0).reverse()) {
    try {
      for (const s of [...(v.snapshots ?? [])]) await s.delete();
      if (v.localAttach) await v.detach({ force: true });
      for (const c of [...v.connections]) await c.disconnect({ force: true });
      if (v.status !== 'deleted') await v.delete();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length) throw errors[0];
}

const lt = (name: string, fn: () => Promise<void>) =>
  test(`cinderlib eseries: ${name}`, async () => {
    try {
      await fn();
    } finally {
      await cleanup();
    }
    await assertNoLeftovers(baseline);
  });

lt('setup, stats and stats with creation', async () => {
  const stateDir = fs.mkdtempSync(join(LAB_SCRATCH, 'eseries-lib-'));
  ctx = setup({ stateDir, hostName: 'lab', executor, lockPath: join(stateDir, 'locks') });
  backend = await Backend.create(
    {
      volume_backend_name: 'eseries-lib',
      volume_driver: 'cinder.volume.drivers.netapp.eseries.iscsi_driver.NetAppEseriesISCSIDriver',
      netapp_server_hostname: '127.0.0.1',
      netapp_server_port: sim.port,
      netapp_login: 'rw',
      netapp_password: 'rw',
      netapp_controller_ips: '10.113.1.10,10.113.1.11',
      netapp_poll_interval: 0.05,
      use_multipath_for_image_xfer: true,
    },
    { context: ctx },
  );
  const s = await backend.stats({ refresh: true });
  assert.equal(s.volume_backend_name, 'eseries-lib');
  assert.equal(s.vendor_name, 'NetApp');
  const sum = (st: typeof s) => (st.pools ?? []).reduce((a, p) => a + Number(p.provisioned_capacity_gb ?? 0), 0);
  const count = (st: typeof s) => (st.pools ?? []).reduce((a, p) => a + Number(p.total_volumes ?? 0), 0);
  const v = await create(1 + Math.floor(Math.random() * 2));
  assert.deepEqual(await backend.stats({ refresh: false }), s, 'cached without refresh');
  const after = await backend.stats({ refresh: true });
  assert.equal(count(after) - count(s), 1);
  assert.equal(Math.round(sum(after) - sum(s)), v.size);
});

lt('create volume: the host sees its size over multipath; detach removes the connection', async () => {
  const v = await create();
  assert.equal(await sizeOnHost(v, false), v.size);
  const conn = v.localAttach!;
  assert.ok(v.connections.includes(conn));
  assert.match(conn.path!, /^\/dev\/(dm-\d+|mapper\/)/);
  await v.detach();
  assert.equal(v.localAttach, null);
  assert.ok(!v.connections.includes(conn));
  assert.equal(sim.state.mappingOf(sim.state.findVolume(uuidToLabel(v.id))!.id), undefined, 'the array mapping is gone');
});

lt('create and delete, twice; snapshot create and delete, twice', async () => {
  const v = await create();
  const s = await v.createSnapshot({ name: v.id });
  assert.equal(s.status, 'available');
  await s.delete();
  assert.equal(s.status, 'deleted');
  await s.delete();
  await backend.driver.deleteSnapshot(s.toDriver());
  await v.delete();
  assert.equal(v.status, 'deleted');
  await v.delete();
  await backend.driver.deleteVolume(v.toDriver());
});

lt('disk I/O: a pattern written through the device reads back', async () => {
  const v = await create();
  await write(v, pattern);
  assert.ok((await read(v)).equals(pattern));
});

lt('extend detached and attached (the host sees the new size)', async () => {
  const v = await create();
  assert.equal(await sizeOnHost(v), 1);
  await v.extend(2);
  assert.equal(await sizeOnHost(v, false), 2);
  const bytes = await v.extend(3);
  assert.equal(bytes, 3 * GiB);
  assert.equal(await sizeOnHost(v), 3);
});

lt('clone: same size, same data', async () => {
  const v = await create();
  await write(v, pattern);
  const c = await v.clone();
  made.push(c);
  assert.equal(c.size, v.size);
  assert.ok((await read(c)).equals(pattern));
});

lt('volume from snapshot holds the data as at snapshot time', async () => {
  const v = await create();
  await write(v, pattern);
  const s = await v.createSnapshot();
  await write(v, Buffer.from(pattern).reverse());
  const n = await s.createVolume();
  made.push(n);
  assert.ok((await read(n)).equals(pattern), 'the snapshot-time data, not the overwritten data');
  assert.ok((await read(v)).equals(Buffer.from(pattern).reverse()));
});

lt('close the backend', async () => {
  await backend.close();
});
