/**
 * Lab test: remote attach through PostgreSQL-shared state, over real iSCSI (issue 9).
 *
 * Two "hosts" in the lab VM, each a library context with its own PostgreSQL store object on one
 * database (a throwaway server started in the guest by tools/ci/postgres.sh):
 * - `controller` manages an LVM backend (a VG on a loop device) exported by LIO (`lioadm`);
 * - `consumer` is the open-iscsi initiator, with its own initiator name.
 * The consumer publishes its connector properties in the key-value store; the controller maps
 * the volume for that initiator (LIO ACL) and persists the connection; the consumer finds it,
 * logs in and attaches, data is verified on the LV, the device info is persisted for the
 * detach; the controller disconnects; nothing is left behind (sessions, SCSI devices, ACLs,
 * targets, LVs, records).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { execFile } from 'node:child_process';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startInitiatorDaemons, createVolumeGroup, modprobe, probeLeftovers, assertNoLeftovers, type VolumeGroupFixture, type Leftovers } from './fixtures/index.js';
import { setup, Backend } from '../../src/library/index.js';
import { openStore } from '../../src/persistence/factory.js';
import type { Store } from '../../src/persistence/store.js';
import '../../src/drivers/index.js';
import '../../src/initiator/connectors/index.js';
import { blockTag, pattern, writeAt } from '../helpers/device-io.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CONSUMER_IQN = 'iqn.2026-11.lab.brick:consumer';
const CONTROLLER_IQN = 'iqn.2026-11.lab.brick:controller';
const PG_DIR = '/tmp/brick-pg-remote';
const STATE = '/tmp/brick-lab-remote';
const LIO = '/sys/kernel/config/target/iscsi';

let vg: VolumeGroupFixture | undefined;
let pgUrl: string;
let baseline: Partial<Leftovers>;

function postgres(action: string): Promise<string> {
  return new Promise((res, rej) => {
    execFile('bash', [join(REPO, 'tools/ci/postgres.sh'), action], { env: { ...process.env, BRICK_PG_DIR: PG_DIR }, timeout: 300_000 }, (err, stdout, stderr) => {
      if (err) rej(new Error(`tools/ci/postgres.sh ${action} failed: ${err.message}\n${stderr}`));
      else res(stdout.trim());
    });
  });
}

function targets(): string[] {
  try {
    return fs.readdirSync(LIO).filter((n) => n.startsWith('iqn.'));
  } catch {
    return [];
  }
}

before(async () => {
  await startInitiatorDaemons({ initiatorIqn: CONSUMER_IQN });
  await modprobe('loop', 'target_core_mod', 'iscsi_target_mod', 'target_core_iblock');
  const started = Date.now();
  pgUrl = await postgres('start');
  process.stderr.write(`remote-pg: PostgreSQL up in the guest in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  vg = await createVolumeGroup({ name: 'brick-remote', sizeMiB: 1200 });
  baseline = probeLeftovers(); // the VG's own loop device is the fixture's, not a leftover
});

after(async () => {
  await vg?.destroy().catch(() => undefined);
  await postgres('destroy').catch(() => undefined);
  fs.rmSync(STATE, { recursive: true, force: true });
});

interface Host {
  store: Store;
  backend: Backend;
}

async function host(name: string, url: string, config: Record<string, unknown> & { volume_backend_name: string; volume_driver: string }): Promise<Host> {
  const store = await openStore(url);
  const ctx = setup({ stateDir: join(STATE, name), persistence: store, hostName: name });
  return { store, backend: await Backend.create(config, { context: ctx }) };
}

test('controller on LVM/LIO and consumer on open-iscsi share state through PostgreSQL: connect, attach, I/O, detach, disconnect, nothing left', async () => {
  const url = new URL(pgUrl);
  url.searchParams.set('schema', 'brick_remote_lab');
  const config = {
    volume_backend_name: 'lvm-remote',
    volume_driver: 'lvm',
    volume_group: vg!.name,
    target_helper: 'lioadm',
    target_ip_address: '127.0.0.1',
    volume_clear: 'none',
  };
  const controller = await host('controller', url.toString(), config);
  const consumer = await host('consumer', url.toString(), config);
  const targetsBefore = targets();
  try {
    // consumer: publish this host's connector properties under its node id
    const props = await consumer.backend.connectorProperties();
    assert.equal(props.initiator, CONSUMER_IQN, 'the consumer reports the initiator name iscsid runs with');
    assert.equal(props.host, 'consumer');
    await consumer.store.setKeyValue({ key: 'consumer', value: JSON.stringify(props) });

    // controller: create, read the consumer's properties, connect for it
    const vol = await controller.backend.createVolume({ size: 1, name: 'remote-lab' });
    const [kv] = await controller.store.getKeyValues('consumer');
    assert.ok(kv);
    const connectorInfo = JSON.parse(kv.value) as typeof props;
    const conn = await vol.connect(connectorInfo, { attachedHost: 'consumer' });
    const info = conn.connInfo as { driver_volume_type: string; data: { target_iqn: string; target_portal: string; target_lun: number; auth_method?: string } };
    assert.equal(info.driver_volume_type, 'iscsi');
    assert.equal(info.data.target_portal, '127.0.0.1:3260');
    assert.equal(info.data.auth_method, 'CHAP');
    assert.ok(targets().includes(info.data.target_iqn), 'the controller exported the LV as a LIO target');
    const acls = fs.readdirSync(join(LIO, info.data.target_iqn, 'tpgt_1', 'acls'));
    assert.deepEqual(acls, [CONSUMER_IQN], `mapped for the consumer initiator only, not ${CONTROLLER_IQN}`);

    // consumer: find the connection through the shared store and attach
    const cvol = await consumer.backend.getVolume(vol.id);
    const cconn = cvol.connections.find((c) => c.attachedHost === 'consumer');
    assert.ok(cconn, 'the consumer finds its connection in the shared store');
    const device = await cconn.attach();
    assert.match(device.path, /^\/dev\/sd[a-z]+$/);
    await writeAt(device.path, 0, pattern('remote-pg'));
    await writeAt(device.path, 1000, pattern('remote-pg-end'));
    const lv = `/dev/${vg!.name}/volume-${vol.id}`;
    assert.equal(await blockTag(lv, 0), 'remote-pg', 'data written over iSCSI is on the LV');
    assert.equal(await blockTag(lv, 1000), 'remote-pg-end');
    assert.equal(await blockTag(device.path, 1000), 'remote-pg-end');

    // controller: sees the device info the consumer persisted
    await vol.refresh();
    assert.deepEqual(vol.connections.find((c) => c.id === conn.id)?.device, device);

    // consumer detaches (from a fresh context: the device info comes from the store)
    const later = await host('consumer', url.toString(), config);
    const lvol = await later.backend.getVolume(vol.id);
    await lvol.connections[0]!.detach();
    await later.backend.close();
    await later.store.close();
    assert.ok(!fs.existsSync(device.path), `${device.path} is gone after the detach`);

    // controller disconnects: ACL and target go, the volume is available again
    await vol.refresh();
    await conn.disconnect();
    assert.equal(vol.status, 'available');
    assert.deepEqual(targets(), targetsBefore, 'the LIO target was removed');
    await vol.delete();
    assert.deepEqual(await controller.store.getVolumes({ backend: 'lvm-remote' }), []);
    assert.deepEqual(await controller.store.getConnections({ volume_id: vol.id }), []);
    await consumer.store.deleteKeyValue('consumer');
    assert.ok(!fs.existsSync(lv), 'the LV was removed');
  } finally {
    await controller.backend.close();
    await consumer.backend.close();
    await controller.store.close();
    await consumer.store.close();
  }
  await assertNoLeftovers(baseline, { timeoutMs: 20_000 });
});
