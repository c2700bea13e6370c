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
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import {
  assertNoLeftovers,
  LAB_INITIATOR_IQN,
  LAB_SCRATCH,
  readDirect,
  writeSynced,
  verifyData,
  startSimulatorLab,
  labDriverHost,
  DriverLifecycle,
  driverRoundTrip,
  LibraryLifecycle,
  checkAttachDetach,
  checkCreateDeleteTwice,
  checkDiskIo,
  checkExtend,
  checkClone,
  checkVolumeFromSnapshot,
  type Leftovers,
} from './fixtures/index.js';
import { startEseriesSimulator, type EseriesSimulator } from '../../sims/eseries/simulator.js';
import { createLioBacking, type LioBacking } from '../../sims/eseries/lio-backing.js';
import { NetAppEseriesIscsiDriver } from '../../src/drivers/netapp-eseries/driver.js';
import { ProcessExecutor } from '../../src/exec/executor.js';
import type { ConnectorProperties } from '../../src/initiator/properties.js';
import { uuidToLabel } from '../../src/drivers/netapp-eseries/utils.js';

const TARGET_IQN = 'iqn.1992-08.com.netapp:2800.600a098000a4b28d00000000brick';
const executor = new ProcessExecutor({ defaultTimeoutMs: 120_000 });
let sim: EseriesSimulator;
let backing: LioBacking;
let driver: NetAppEseriesIscsiDriver;
let baseline: Partial<Leftovers> = {};
let lab: DriverLifecycle;

function connectorProps(): ConnectorProperties {
  return { platform: 'x86_64', os_type: 'linux', ip: '127.0.0.1', host: 'lab', multipath: true, enforce_multipath: false, initiator: LAB_INITIATOR_IQN };
}

/** The driver options that reach the simulated array (its web services on this host, two controllers), with multipath. */
function arrayOptions(): Record<string, unknown> {
  return {
    netapp_server_hostname: '127.0.0.1',
    netapp_server_port: sim.port,
    netapp_login: 'rw',
    netapp_password: 'rw',
    netapp_controller_ips: '10.113.1.10,10.113.1.11',
    netapp_poll_interval: 0.05,
    use_multipath_for_image_xfer: true,
  };
}

/** The simulated array's mapping of a volume; undefined once it is unmapped. */
function mappingOf(id: string): unknown {
  return sim.state.mappingOf(sim.state.findVolume(uuidToLabel(id))!.id);
}

before(async () => {
  baseline = await startSimulatorLab();
  backing = createLioBacking({ dir: join(LAB_SCRATCH, `eseries-${process.pid}`), targetIqn: TARGET_IQN, portals: ['127.0.0.1:3260', '127.0.0.2:3260'] });
  sim = await startEseriesSimulator({ targetIqn: TARGET_IQN, backing, copyPendingMs: 20, copyDurationMs: 100 });
  const { host, stateDir } = labDriverHost(LAB_SCRATCH, 'eseries-state-', executor);
  driver = new NetAppEseriesIscsiDriver(arrayOptions(), { ...host, backendName: 'eseries-lab', stateDir });
  await driver.doSetup();
  await driver.checkForSetupError();
  lab = new DriverLifecycle(driver, host, connectorProps);
});

after(async () => {
  await driver?.close();
  await sim?.close();
  await backing?.close();
});

test('initialize connection -> multipath attach -> data both ways -> detach -> terminate, nothing left', async () => {
  await driverRoundTrip(lab, {
    checkInfo: (info) => {
      assert.equal(info.driver_volume_type, 'iscsi');
      assert.equal((info.data.target_portals as string[]).length, 2);
    },
    checkDevice: (device, v) => {
      assert.match(device.path, /^\/dev\/(dm-\d+|mapper\/)/, `multipath device, got ${device.path}`);
      verifyData(device.path, backing.fileOf(sim.state.findVolume(uuidToLabel(v.id))!.id)!, 1 << 20);
    },
    afterTerminate: (v) => assert.equal(mappingOf(v.id), undefined),
  });
  await assertNoLeftovers(baseline);
});

test('a clone made by a copy job holds the source data and attaches', async () => {
  const payload = randomBytes(4096);
  try {
    const v = await lab.create();
    await lab.withAttached(v, ({ device }) => writeSynced(device.path, payload, 0));
    const clone = await lab.clone(v);
    await lab.withAttached(clone, ({ device }) => assert.ok(readDirect(device.path, 0).equals(payload), 'the clone holds the source data'));
    await lab.delete(clone);
    await lab.delete(v);
  } finally {
    await lab.cleanup();
  }
  await assertNoLeftovers(baseline);
});

// ---------------------------------------------------------------- cinderlib flows through the library

const pattern = Buffer.alloc(4096, 0);
randomBytes(4096).copy(pattern);
const lib = new LibraryLifecycle({ label: 'eseries', checkNothingLeft: () => assertNoLeftovers(baseline) });

lib.test('setup, stats and stats with creation', async () => {
  const stateDir = fs.mkdtempSync(join(LAB_SCRATCH, 'eseries-lib-'));
  const backend = await lib.start(
    { volume_backend_name: 'eseries-lib', volume_driver: 'cinder.volume.drivers.netapp.eseries.iscsi_driver.NetAppEseriesISCSIDriver', ...arrayOptions() },
    { stateDir, executor },
  );
  const s = await backend.stats({ refresh: true });
  assert.equal(s.volume_backend_name, 'eseries-lib');
  assert.equal(s.vendor_name, 'NetApp');
  const sum = (st: typeof s) => (st.pools ?? []).reduce((a, p) => a + Number(p.provisioned_capacity_gb ?? 0), 0);
  const count = (st: typeof s) => (st.pools ?? []).reduce((a, p) => a + Number(p.total_volumes ?? 0), 0);
  const v = await lib.create(1 + Math.floor(Math.random() * 2));
  assert.deepEqual(await backend.stats({ refresh: false }), s, 'cached without refresh');
  const after = await backend.stats({ refresh: true });
  assert.equal(count(after) - count(s), 1);
  assert.equal(Math.round(sum(after) - sum(s)), v.size);
});

lib.test('create volume: the host sees its size over multipath; detach removes the connection', async () => {
  const v = await checkAttachDetach(lib, (conn) => assert.match(conn.path!, /^\/dev\/(dm-\d+|mapper\/)/));
  assert.equal(mappingOf(v.id), undefined, 'the array mapping is gone');
});

lib.test('create and delete, twice; snapshot create and delete, twice', () => checkCreateDeleteTwice(lib));

lib.test('disk I/O: a pattern written through the device reads back', () => checkDiskIo(lib, pattern));

lib.test('extend detached and attached (the host sees the new size)', () => checkExtend(lib));

lib.test('clone: same size, same data', () => checkClone(lib, pattern));

lib.test('volume from snapshot holds the data as at snapshot time', () => checkVolumeFromSnapshot(lib, pattern));

lib.test('close the backend', async () => {
  await lib.backend.close();
});
