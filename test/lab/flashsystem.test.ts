/**
 * Lab test of the IBM FlashSystem driver against the SSH CLI simulator backed by real LIO
 * targets: the driver maps a vdisk over SSH, the simulator turns the mapping into a real LUN
 * (target = the node's iSCSI name on 127.0.0.1:3260, LUN = the host's SCSI id), and the ISCSI
 * connector attaches it. Data written through the device is in the vdisk's file and the other
 * way round; a FlashCopy clone holds the source's data. Every test ends with nothing left over
 * on the host and no host object left on the array.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
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
  type Leftovers,
} from './fixtures/index.js';
import { startFlashSystemSimulator, type FlashSystemSimulator } from '../../sims/flashsystem/index.js';
import { createFlashSystemLioBacking, type FlashSystemLioBacking } from '../../sims/flashsystem/lio-backing.js';
import { FlashSystemIscsiDriver } from '../../src/drivers/ibm-flashsystem/index.js';
import { ProcessExecutor } from '../../src/exec/executor.js';
import type { ConnectorProperties } from '../../src/initiator/properties.js';

const NODE_IQN = 'iqn.1986-03.com.ibm:2145.bricklab.node1';
const PASSWORD = 'lab-Passw0rd';
const executor = new ProcessExecutor({ defaultTimeoutMs: 120_000 });
let sim: FlashSystemSimulator;
let backing: FlashSystemLioBacking;
let driver: FlashSystemIscsiDriver;
let baseline: Partial<Leftovers> = {};
let lab: DriverLifecycle;

function connectorProps(): ConnectorProperties {
  return { platform: 'x86_64', os_type: 'linux2', ip: '127.0.0.1', host: 'brick-lab', multipath: false, enforce_multipath: false, initiator: LAB_INITIATOR_IQN };
}

before(async () => {
  baseline = await startSimulatorLab();
  backing = createFlashSystemLioBacking({ dir: join(LAB_SCRATCH, `flashsystem-${process.pid}`), targets: [{ iqn: NODE_IQN, portals: ['127.0.0.1:3260'] }] });
  sim = await startFlashSystemSimulator({
    users: [{ name: 'superuser', password: PASSWORD }],
    nodes: [{ id: 1, name: 'node1', ioGroupId: 0, wwnn: '500507680C000001', status: 'online', iscsiName: NODE_IQN, configNode: true }],
    ports: [{ id: 1, nodeId: 1, ip: '127.0.0.1', ip6: '', state: 'online', speed: '10Gb/s', failover: false }],
    poolCapacity: 64 * 1024 ** 3,
    copyDurationMs: 100,
    backing,
  });
  const { host, stateDir } = labDriverHost(LAB_SCRATCH, 'flashsystem-state-', executor);
  driver = new FlashSystemIscsiDriver(
    {
      san_ip: '127.0.0.1',
      san_ssh_port: sim.port,
      san_login: 'superuser',
      san_password: PASSWORD,
      san_ssh_host_key: sim.publicKey,
      flashsystem_connection_protocol: 'iSCSI',
      flashsystem_iscsi_portid: 1,
      target_ip_address: '127.0.0.1',
      flashsystem_lock_timeout: 30,
    },
    { ...host, backendName: 'flashsystem-lab', stateDir },
  );
  await driver.doSetup();
  await driver.checkForSetupError();
  lab = new DriverLifecycle(driver, host, connectorProps, false);
});

after(async () => {
  await driver?.close();
  await sim?.close();
  await backing?.close();
});

test('initialize connection -> attach -> data both ways -> detach -> terminate, nothing left', async () => {
  await driverRoundTrip(lab, {
    checkInfo: (info) => {
      assert.equal(info.driver_volume_type, 'iscsi');
      assert.equal(info.data.target_portal, '127.0.0.1:3260');
      assert.equal(info.data.target_iqn, NODE_IQN);
      assert.equal(info.data.target_lun, 1);
    },
    checkDevice: (device, v) => {
      assert.match(device.path, /^\/dev\/sd[a-z]+$/);
      verifyData(device.path, backing.fileOf(sim.state.findVdisk(v.name)!.id), 1 << 20);
    },
    afterTerminate: () => assert.equal(sim.state.hosts.size, 0, 'the host object is deleted with its last mapping'),
  });
  await assertNoLeftovers(baseline);
});

test('a FlashCopy clone holds the source data and attaches at its own LUN', async () => {
  const payload = randomBytes(4096);
  try {
    const src = await lab.create();
    writeSynced(backing.fileOf(sim.state.findVdisk(src.name)!.id), payload, 0);
    const clone = await lab.clone(src);
    // Attach both: the clone gets the next LUN of the same host.
    const srcInfo = await lab.initialize(src);
    await lab.withAttached(clone, ({ device }) => assert.ok(readDirect(device.path, 0).equals(payload), 'the clone has the source data'), {
      checkInfo: (info) => assert.deepEqual([srcInfo.data.target_lun, info.data.target_lun], [1, 2]),
    });
    await lab.terminate(src);
    assert.equal(sim.state.hosts.size, 0);
    await lab.delete(clone);
    await lab.delete(src);
  } finally {
    await lab.cleanup();
  }
  await assertNoLeftovers(baseline);
});

test('two nodes in the I/O group give two portals: a multipath attach over both node targets', async () => {
  const iqns = ['iqn.1986-03.com.ibm:2145.bricklab2.node1', 'iqn.1986-03.com.ibm:2145.bricklab2.node2'];
  const mpBacking = createFlashSystemLioBacking({
    dir: join(LAB_SCRATCH, `flashsystem-mp-${process.pid}`),
    targets: [
      { iqn: iqns[0]!, portals: ['127.0.0.1:3260'] },
      { iqn: iqns[1]!, portals: ['127.0.0.2:3260'] },
    ],
  });
  const mpSim = await startFlashSystemSimulator({
    users: [{ name: 'superuser', password: PASSWORD }],
    nodes: [
      { id: 1, name: 'node1', ioGroupId: 0, wwnn: '500507680C000011', status: 'online', iscsiName: iqns[0]!, configNode: true },
      { id: 2, name: 'node2', ioGroupId: 0, wwnn: '500507680C000012', status: 'online', iscsiName: iqns[1]!, configNode: false },
    ],
    ports: [
      { id: 1, nodeId: 1, ip: '127.0.0.1', ip6: '', state: 'online', speed: '10Gb/s', failover: false },
      { id: 1, nodeId: 2, ip: '127.0.0.2', ip6: '', state: 'online', speed: '10Gb/s', failover: false },
    ],
    poolCapacity: 16 * 1024 ** 3,
    backing: mpBacking,
  });
  const { host: mpHost, stateDir } = labDriverHost(LAB_SCRATCH, 'flashsystem-mp-state-', executor);
  const mpDriver = new FlashSystemIscsiDriver(
    {
      san_ip: '127.0.0.1',
      san_ssh_port: mpSim.port,
      san_login: 'superuser',
      san_password: PASSWORD,
      san_ssh_host_key: mpSim.hostKeyFingerprint,
      flashsystem_iscsi_portid: 1,
      target_ip_address: '127.0.0.1',
      use_multipath_for_image_xfer: true,
      flashsystem_lock_timeout: 30,
    },
    { ...mpHost, backendName: 'flashsystem-lab-mp', stateDir },
  );
  try {
    await mpDriver.doSetup();
    const mpLab = new DriverLifecycle(mpDriver, mpHost, () => ({ ...connectorProps(), multipath: true }), true);
    await driverRoundTrip(mpLab, {
      checkInfo: (info) => {
        assert.deepEqual(info.data.target_portals, ['127.0.0.1:3260', '127.0.0.2:3260']);
        assert.deepEqual(info.data.target_iqns, iqns);
      },
      checkDevice: (device, v) => {
        assert.match(device.path, /^\/dev\/(dm-\d+|mapper\/)/, `multipath device, got ${device.path}`);
        verifyData(device.path, mpBacking.fileOf(mpSim.state.findVdisk(v.name)!.id), 3 << 20);
      },
      afterTerminate: () => assert.equal(mpSim.state.hosts.size, 0),
    });
  } finally {
    await mpDriver.close();
    await mpSim.close();
    await mpBacking.close();
  }
  await assertNoLeftovers(baseline);
});
