import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NvmetTarget, formatNvmetLocation, parseNvmetLocation } from '../../../src/target/nvmet.js';
import { parseTargetConfig } from '../../../src/target/config.js';
import { BackendError, InvalidInputError } from '../../../src/errors.js';
import type { DriverVolume } from '../../../src/drivers/driver.js';
import type { ConnectorProperties } from '../../../src/initiator/properties.js';
import { makeHostRoot, createdPaths, type KernelConfigfs } from './kernel.js';
import { makeContext, type TestContext } from './context.js';

const N = '/sys/kernel/config/nvmet';
const VOL_ID = '0f0e0d0c-0b0a-4908-8706-050403020100';
const NQN = `nqn.2010-10.org.openstack:volume-${VOL_ID}`;
const DEV = `/dev/vg0/volume-${VOL_ID}`;
const HOST_A = 'nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555';
const HOST_B = 'nqn.2014-08.org.nvmexpress:uuid:66666666-7777-8888-9999-000000000000';

function connector(nqn: string | undefined): ConnectorProperties {
  return { platform: 'x86_64', os_type: 'linux2', ip: '10.0.0.5', host: 'h1', multipath: false, enforce_multipath: false, nqn };
}

describe('nvmet target helper (configfs)', () => {
  let root: string;
  let fs: KernelConfigfs;
  let cleanupRoot: () => Promise<void>;
  let t: TestContext;
  let nvmet: NvmetTarget;
  let volume: DriverVolume;
  let baseline: string[];

  beforeEach(async () => {
    ({ root, configfs: fs, cleanup: cleanupRoot } = await makeHostRoot());
    t = await makeContext(root);
    nvmet = new NvmetTarget(parseTargetConfig({ target_helper: 'nvmet', target_protocol: 'nvmet_tcp', target_ip_address: '127.0.0.1', target_secondary_ip_addresses: ['127.0.0.2'] }), t.ctx, { configfs: fs });
    volume = { id: VOL_ID, name: `volume-${VOL_ID}`, size: 1 };
    baseline = await createdPaths(fs);
  });
  afterEach(async () => {
    await t.cleanup();
    await cleanupRoot();
  });

  test('provider_location round-trips in Cinder format', () => {
    const loc = { addresses: ['10.0.0.1', '10.0.0.2'], port: 4420, transport: 'tcp', nqn: NQN, nsid: 10 };
    assert.equal(formatNvmetLocation(loc), `10.0.0.1,10.0.0.2:4420 tcp ${NQN} 10`);
    assert.deepEqual(parseNvmetLocation(formatNvmetLocation(loc)), loc);
    assert.throws(() => parseNvmetLocation('garbage'), (e: unknown) => e instanceof InvalidInputError && e.field === 'provider_location');
  });

  test('createExport makes subsystem (no allow-any-host), namespace 10 with the volume uuid, and one TCP port per address', async () => {
    const upd = await nvmet.createExport(volume, DEV);
    assert.equal(upd.provider_location, `127.0.0.1,127.0.0.2:4420 tcp ${NQN} 10`);
    const sub = `${N}/subsystems/${NQN}`;
    assert.equal(await fs.read(`${sub}/attr_allow_any_host`), '0');
    assert.equal(await fs.read(`${sub}/namespaces/10/device_path`), DEV);
    assert.equal(await fs.read(`${sub}/namespaces/10/device_uuid`), VOL_ID);
    assert.equal(await fs.read(`${sub}/namespaces/10/enable`), '1');
    for (const [id, addr] of [['1', '127.0.0.1'], ['2', '127.0.0.2']] as const) {
      assert.equal(await fs.read(`${N}/ports/${id}/addr_trtype`), 'tcp');
      assert.equal(await fs.read(`${N}/ports/${id}/addr_adrfam`), 'ipv4');
      assert.equal(await fs.read(`${N}/ports/${id}/addr_traddr`), addr);
      assert.equal(await fs.read(`${N}/ports/${id}/addr_trsvcid`), '4420');
      assert.equal(await readlink(join(root, `${N}/ports/${id}/subsystems/${NQN}`)), join(root, sub));
    }
    assert.deepEqual(await nvmet.allowedHosts(volume), []);
  });

  test('initializeConnection allows only that host NQN and returns nvmeof connection info', async () => {
    const v = { ...volume, ...(await nvmet.createExport(volume, DEV)) };
    const info = await nvmet.initializeConnection(v, connector(HOST_A));
    assert.deepEqual(info, {
      driver_volume_type: 'nvmeof',
      data: {
        target_nqn: NQN,
        vol_uuid: VOL_ID,
        portals: [['127.0.0.1', '4420', 'tcp'], ['127.0.0.2', '4420', 'tcp']],
        ns_id: '10',
        host_nqn: HOST_A,
        volume_id: VOL_ID,
        discard: false,
      },
    });
    assert.deepEqual(await nvmet.allowedHosts(v), [HOST_A]);
    assert.equal(await readlink(join(root, `${N}/subsystems/${NQN}/allowed_hosts/${HOST_A}`)), join(root, `${N}/hosts/${HOST_A}`));
  });

  test('terminateConnection removes the host link and the host object once no subsystem uses it', async () => {
    const v = { ...volume, ...(await nvmet.createExport(volume, DEV)) };
    await nvmet.initializeConnection(v, connector(HOST_A));
    await nvmet.initializeConnection(v, connector(HOST_B));
    await nvmet.terminateConnection(v, connector(HOST_A));
    assert.deepEqual(await nvmet.allowedHosts(v), [HOST_B]);
    assert.deepEqual(await fs.list(`${N}/hosts`), [HOST_B]);
    await nvmet.terminateConnection(v, null);
    assert.deepEqual(await fs.list(`${N}/hosts`), []);
  });

  test('removeExport leaves the tree as it found it (ports without subsystems removed); twice is fine', async () => {
    const v = { ...volume, ...(await nvmet.createExport(volume, DEV)) };
    await nvmet.initializeConnection(v, connector(HOST_A));
    await nvmet.removeExport(v);
    assert.deepEqual(await createdPaths(fs), baseline);
    await nvmet.removeExport(v);
  });

  test('a port that serves another address is not taken over: BackendError naming nvmet_port_id, nothing left behind', async () => {
    await fs.mkdir(`${N}/ports/1`);
    await fs.write(`${N}/ports/1/addr_traddr`, '192.0.2.99');
    await fs.write(`${N}/ports/1/addr_trsvcid`, '4420');
    const before = await createdPaths(fs);
    await assert.rejects(nvmet.createExport(volume, DEV), (e: unknown) => e instanceof BackendError && e.field === 'nvmet_port_id');
    assert.deepEqual(await createdPaths(fs), before);
  });

  test('ensureExport after a reboot recreates subsystem, namespace, ports and allowed hosts', async () => {
    const v = { ...volume, ...(await nvmet.createExport(volume, DEV)) };
    await nvmet.initializeConnection(v, connector(HOST_A));
    const before = await createdPaths(fs);
    await fs.reboot();
    await nvmet.ensureExport(v, DEV);
    assert.deepEqual(await createdPaths(fs), before);
  });

  test('extendTarget asks nvmet to revalidate the namespace size', async () => {
    const v = { ...volume, ...(await nvmet.createExport(volume, DEV)) };
    await nvmet.extendTarget(v);
    assert.equal(await fs.read(`${N}/subsystems/${NQN}/namespaces/10/revalidate_size`), '1');
  });

  test('a connector without a host NQN is refused (field connector.nqn)', async () => {
    const v = { ...volume, ...(await nvmet.createExport(volume, DEV)) };
    await assert.rejects(nvmet.initializeConnection(v, connector(undefined)), (e: unknown) => e instanceof InvalidInputError && e.field === 'connector.nqn');
    assert.throws(() => nvmet.validateConnector(connector('iqn.not-an-nqn')), InvalidInputError);
  });
});
