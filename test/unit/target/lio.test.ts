import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readlink, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { LioTarget } from '../../../src/target/lio.js';
import { parseTargetConfig } from '../../../src/target/config.js';
import { InvalidInputError, InvalidStateError } from '../../../src/errors.js';
import type { DriverVolume } from '../../../src/drivers/driver.js';
import type { ConnectorProperties } from '../../../src/initiator/properties.js';
import { makeHostRoot, createdPaths, type KernelConfigfs } from './kernel.js';
import { makeContext, type TestContext } from './context.js';

const T = '/sys/kernel/config/target';
const VOL_ID = '6b3c2f0e-8a1d-4c55-9f2e-1d2b3c4d5e6f';
const IQN = 'iqn.2010-10.org.openstack:volume-' + VOL_ID;
const DEV = '/dev/cinder-volumes/volume-' + VOL_ID;

function connector(initiator: string, multipath = false): ConnectorProperties {
  return { platform: 'x86_64', os_type: 'linux2', ip: '10.0.0.5', host: 'h1', multipath, enforce_multipath: false, initiator };
}

describe('LIO target helper (configfs)', () => {
  let root: string;
  let fs: KernelConfigfs;
  let cleanupRoot: () => Promise<void>;
  let t: TestContext;
  let lio: LioTarget;
  let volume: DriverVolume;
  let baseline: string[];

  beforeEach(async () => {
    ({ root, configfs: fs, cleanup: cleanupRoot } = await makeHostRoot());
    t = await makeContext(root);
    lio = new LioTarget(parseTargetConfig({ target_ip_address: '127.0.0.1', target_secondary_ip_addresses: '127.0.0.2' }), t.ctx, { configfs: fs });
    volume = { id: VOL_ID, name: `volume-${VOL_ID}`, size: 1 };
    baseline = await createdPaths(fs);
  });
  afterEach(async () => {
    await t.cleanup();
    await cleanupRoot();
  });

  test('createExport builds backstore, target, LUN 0, portals with CHAP on and no demo mode; returns Cinder provider_location/auth', async () => {
    const upd = await lio.createExport(volume, DEV);
    assert.equal(upd.provider_location, `127.0.0.1:3260;127.0.0.2:3260,1 ${IQN} 0`);
    assert.match(upd.provider_auth!, /^CHAP [A-Za-z0-9]{20} [A-Za-z0-9]{16}$/);
    const so = `${T}/core/iblock_0/volume-${VOL_ID}`;
    assert.equal(await fs.read(`${so}/udev_path`), DEV);
    assert.equal(await fs.read(`${so}/control`), `udev_path=${DEV}`);
    assert.equal(await fs.read(`${so}/enable`), '1');
    assert.equal(await fs.read(`${so}/wwn/vpd_unit_serial`), VOL_ID);
    const tpg = `${T}/iscsi/${IQN}/tpgt_1`;
    assert.equal(await fs.read(`${tpg}/attrib/authentication`), '1');
    assert.equal(await fs.read(`${tpg}/attrib/generate_node_acls`), '0');
    assert.equal(await fs.read(`${tpg}/enable`), '1');
    assert.deepEqual(await fs.list(`${tpg}/np`), ['127.0.0.1:3260', '127.0.0.2:3260']);
    assert.equal(await readlink(join(root, `${tpg}/lun/lun_0/brick_lun`)), join(root, so));
    assert.deepEqual(await fs.list(`${tpg}/acls`), [], 'no initiator is allowed before initialize_connection');
    assert.equal(t.exec.calls.length, 0, 'LIO needs no program: configfs only');
  });

  test('createExport twice is idempotent and keeps the CHAP credentials already in provider_auth', async () => {
    const first = await lio.createExport(volume, DEV);
    const after1 = await createdPaths(fs);
    const second = await lio.createExport({ ...volume, ...first }, DEV);
    assert.equal(second.provider_auth, first.provider_auth);
    assert.equal(second.provider_location, first.provider_location);
    assert.deepEqual(await createdPaths(fs), after1);
  });

  test('a second volume gets its own HBA index and backstore', async () => {
    await lio.createExport(volume, DEV);
    const other = { id: 'aaaaaaaa-1111-2222-3333-444444444444', name: 'volume-aaaaaaaa-1111-2222-3333-444444444444', size: 1 };
    await lio.createExport(other, '/dev/cinder-volumes/' + other.name);
    assert.deepEqual(await fs.list(`${T}/core`), ['iblock_0', 'iblock_1']);
    assert.deepEqual(await fs.list(`${T}/core/iblock_1`), ['hba_info', 'hba_mode', other.name]);
  });

  test('initializeConnection adds an ACL with the CHAP pair (no newline) and LUN 0 mapped, and returns iSCSI connection info', async () => {
    const upd = await lio.createExport(volume, DEV);
    const [, user, pass] = upd.provider_auth!.split(' ');
    const v = { ...volume, ...upd };
    const info = await lio.initializeConnection(v, connector('iqn.1993-08.org.debian:01:host1'));
    const acl = `${T}/iscsi/${IQN}/tpgt_1/acls/iqn.1993-08.org.debian:01:host1`;
    assert.equal(await readFile(join(root, acl, 'auth/userid'), 'utf8'), user);
    assert.equal(await readFile(join(root, acl, 'auth/password'), 'utf8'), pass);
    assert.equal(await readlink(join(root, acl, 'lun_0/brick_lun')), join(root, `${T}/iscsi/${IQN}/tpgt_1/lun/lun_0`));
    assert.deepEqual(info, {
      driver_volume_type: 'iscsi',
      data: {
        target_discovered: false,
        target_portals: ['127.0.0.1:3260', '127.0.0.2:3260'],
        target_iqns: [IQN, IQN],
        target_luns: [0, 0],
        target_portal: '127.0.0.1:3260',
        target_iqn: IQN,
        target_lun: 0,
        volume_id: VOL_ID,
        auth_method: 'CHAP',
        auth_username: user,
        auth_password: pass,
        encrypted: false,
        discard: false,
      },
    });
    assert.deepEqual(await lio.aclInitiators(v), ['iqn.1993-08.org.debian:01:host1'], 'only the mapped initiator has an ACL');
  });

  test('terminateConnection removes only that initiator ACL; null removes all', async () => {
    const v = { ...volume, ...(await lio.createExport(volume, DEV)) };
    await lio.initializeConnection(v, connector('iqn.2004-10.com.example:a'));
    await lio.initializeConnection(v, connector('iqn.2004-10.com.example:b'));
    await lio.terminateConnection(v, connector('iqn.2004-10.com.example:a'));
    assert.deepEqual(await lio.aclInitiators(v), ['iqn.2004-10.com.example:b']);
    await lio.terminateConnection(v, connector('iqn.2004-10.com.example:a'));
    await lio.terminateConnection(v, null);
    assert.deepEqual(await lio.aclInitiators(v), []);
  });

  test('removeExport tears everything down in configfs order (the kernel emulation refuses a wrong order)', async () => {
    const v = { ...volume, ...(await lio.createExport(volume, DEV)) };
    await lio.initializeConnection(v, connector('iqn.2004-10.com.example:a'));
    await lio.removeExport(v);
    assert.deepEqual(await createdPaths(fs), baseline);
    await lio.removeExport(v);
  });

  test('ensureExport after a target reboot recreates target, portals, CHAP and the mapped ACLs', async () => {
    const v = { ...volume, ...(await lio.createExport(volume, DEV)) };
    await lio.initializeConnection(v, connector('iqn.2004-10.com.example:a'));
    const before = await createdPaths(fs);
    await fs.reboot();
    assert.deepEqual(await createdPaths(fs), baseline);
    await lio.ensureExport(v, DEV);
    assert.deepEqual(await createdPaths(fs), before);
    const [, user] = v.provider_auth!.split(' ');
    assert.equal(await fs.read(`${T}/iscsi/${IQN}/tpgt_1/acls/iqn.2004-10.com.example:a/auth/userid`), user);
    const state = await readdir(join(t.stateDir, 'lioadm'));
    const saved = await readFile(join(t.stateDir, 'lioadm', state[0]!), 'utf8');
    assert.ok(!saved.includes(v.provider_auth!.split(' ')[2]!), 'the mapping record holds no secret');
  });

  test('ensureExport of a volume never exported does nothing', async () => {
    await lio.ensureExport(volume, DEV);
    assert.deepEqual(await createdPaths(fs), baseline);
  });

  test('a connector without an initiator IQN is refused before configfs is touched', async () => {
    const v = { ...volume, ...(await lio.createExport(volume, DEV)) };
    const before = await createdPaths(fs);
    const bad = { ...connector('x'), initiator: undefined };
    await assert.rejects(lio.initializeConnection(v, bad), (e: unknown) => e instanceof InvalidInputError && e.field === 'connector.initiator');
    assert.throws(() => lio.validateConnector(bad), InvalidInputError);
    assert.deepEqual(await createdPaths(fs), before);
  });

  test('initializeConnection of an unexported volume is an InvalidStateError naming provider_location', async () => {
    await assert.rejects(lio.initializeConnection(volume, connector('iqn.2004-10.com.example:a')), (e: unknown) => e instanceof InvalidStateError && e.field === 'provider_location');
  });

  test('a failure half way through createExport rolls the partial export back', async () => {
    fs.failWrites.set(`${T}/iscsi/${IQN}/tpgt_1/enable`, 'EINVAL');
    await assert.rejects(lio.createExport(volume, DEV), /EINVAL/);
    assert.deepEqual(await createdPaths(fs), baseline);
  });

  test('connection info uses singular keys only for one portal and no multipath', async () => {
    const single = new LioTarget(parseTargetConfig({ target_ip_address: '192.0.2.10', target_port: '3261', report_discard_supported: 'true' }), t.ctx, { configfs: fs });
    const v = { ...volume, ...(await single.createExport(volume, DEV)) };
    const info = await single.initializeConnection(v, connector('iqn.2004-10.com.example:a'));
    assert.equal(info.data.target_portal, '192.0.2.10:3261');
    assert.equal(info.data.target_portals, undefined);
    assert.equal(info.data.discard, true);
    const mp = await single.initializeConnection(v, connector('iqn.2004-10.com.example:a', true));
    assert.deepEqual(mp.data.target_portals, ['192.0.2.10:3261']);
  });
});
