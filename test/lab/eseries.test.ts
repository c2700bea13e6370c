/**
 * Lab test of the NetApp E-Series driver against the SANtricity simulator backed by a real LIO
 * target: the driver maps a simulated volume, the simulator turns the mapping into a real LUN
 * for this host's IQN on two portals (127.0.0.1 and 127.0.0.2, the two simulated controllers),
 * and the ISCSI connector attaches it with multipath. Data is written through the device and
 * read back from the backing file (and the other way round); a clone made by a copy job holds
 * the source's data. Every test ends with nothing left behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startInitiatorDaemons, assertNoLeftovers, probeLeftovers, modprobe, LAB_INITIATOR_IQN, LAB_SCRATCH, type Leftovers } from './fixtures/index.js';
import { startEseriesSimulator, type EseriesSimulator } from '../../sims/eseries/simulator.js';
import { createLioBacking, type LioBacking } from '../../sims/eseries/lio-backing.js';
import { NetAppEseriesISCSIDriver } from '../../src/drivers/netapp-eseries/driver.js';
import { connectorFor } from '../../src/initiator/factory.js';
import '../../src/initiator/connectors/index.js';
import { createHostContext } from '../../src/host/context.js';
import { LockManager } from '../../src/host/lock.js';
import { ProcessExecutor } from '../../src/exec/executor.js';
import type { ConnectorProperties } from '../../src/initiator/properties.js';
import type { DriverVolume } from '../../src/drivers/driver.js';
import { uuidToLabel } from '../../src/drivers/netapp-eseries/utils.js';

const TARGET_IQN = 'iqn.1992-08.com.netapp:2800.600a098000a4b28d00000000brick';
const executor = new ProcessExecutor({ defaultTimeoutMs: 120_000 });
let sim: EseriesSimulator;
let backing: LioBacking;
let driver: NetAppEseriesISCSIDriver;
let baseline: Partial<Leftovers> = {};
let host: ReturnType<typeof createHostContext>;

function connectorProps(): ConnectorProperties {
  return { platform: 'x86_64', os_type: 'linux', ip: '127.0.0.1', host: 'lab', multipath: true, enforce_multipath: false, initiator: LAB_INITIATOR_IQN };
}

function vol(sizeGiB = 1): DriverVolume {
  const id = randomUUID();
  return { id, name: `volume-${id}`, size: sizeGiB };
}

function readDirect(dev: string, offset: number, length = 4096): Buffer {
  return execFileSync('dd', [`if=${dev}`, 'bs=4096', `skip=${offset / 4096}`, `count=${length / 4096}`, 'iflag=direct', 'status=none'], { maxBuffer: 1 << 24 });
}

before(async () => {
  await startInitiatorDaemons({ initiatorIqn: LAB_INITIATOR_IQN });
  await modprobe('target_core_mod', 'iscsi_target_mod', 'target_core_file');
  baseline = probeLeftovers();
  backing = createLioBacking({ dir: join(LAB_SCRATCH, `eseries-${process.pid}`), targetIqn: TARGET_IQN, portals: ['127.0.0.1:3260', '127.0.0.2:3260'] });
  sim = await startEseriesSimulator({ targetIqn: TARGET_IQN, backing, copyPendingMs: 20, copyDurationMs: 100 });
  const stateDir = fs.mkdtempSync(join(LAB_SCRATCH, 'eseries-state-'));
  host = createHostContext({ executor, locks: new LockManager(join(stateDir, 'locks'), 30_000) });
  driver = new NetAppEseriesISCSIDriver(
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
    const fd = fs.openSync(device.path, 'r+');
    try {
      fs.writeSync(fd, data, 0, 4096, 1 << 20);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    const back = Buffer.alloc(4096);
    const ff = fs.openSync(file, 'r');
    try {
      fs.readSync(ff, back, 0, 4096, 1 << 20);
    } finally {
      fs.closeSync(ff);
    }
    assert.ok(back.equals(data), 'data written to the device is in the backing file');
    const data2 = randomBytes(4096);
    const wf = fs.openSync(file, 'r+');
    try {
      fs.writeSync(wf, data2, 0, 4096, 2 << 20);
      fs.fsyncSync(wf);
    } finally {
      fs.closeSync(wf);
    }
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
