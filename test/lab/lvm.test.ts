/**
 * Lab tests of the LVM backend with its three exports (LIO iSCSI through configfs, tgtd iSCSI,
 * nvmet NVMe/TCP), inside the lab VM with real LVM, real targets and the real initiator stack.
 *
 * 1. Driver level, per target helper: export, initialize connection for a *foreign* initiator
 *    (the host's own login must be refused by the ACL / allowed-hosts list), then for this host,
 *    connect with the connector, I/O, extend, disconnect, terminate, remove the export.
 * 2. The cinderlib functional suite (`cinderlib/tests/functional/test_basic.py`) through the
 *    library: stats, stats with creation, create (size on the host), create+delete twice,
 *    snapshots, attach/detach (two levels), disk I/O, extend detached and attached, clone,
 *    volume from snapshot; on LIO with thick LVs and multipath over two portals, on tgt with thin
 *    LVs, and on nvmet with thin LVs.
 *
 * Every test ends with the leftovers probe showing nothing beyond the baseline, and no target
 * object (LIO target, nvmet subsystem, tgt target) left behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import {
  startInitiatorDaemons,
  createVolumeGroup,
  assertNoLeftovers,
  probeLeftovers,
  modprobe,
  run,
  LAB_INITIATOR_IQN,
  LAB_HOST_NQN,
  writeSynced,
  readDirect,
  deviceSize,
  GiB,
  LibraryLifecycle,
  checkAttachDetach,
  checkCreateDeleteTwice,
  checkDiskIo,
  checkExtend,
  checkClone,
  checkVolumeFromSnapshot,
  type VolumeGroupFixture,
  type Leftovers,
} from './fixtures/index.js';
import { connectorFor } from '../../src/initiator/factory.js';
import '../../src/initiator/connectors/index.js';
import '../../src/drivers/index.js';
import { driverFactory } from '../../src/drivers/registry.js';
import { getConnectorProperties, type ConnectorProperties } from '../../src/initiator/properties.js';
import { createHostContext } from '../../src/host/context.js';
import { ProcessExecutor } from '../../src/exec/executor.js';
import type { Volume } from '../../src/library/index.js';
import { AuthenticationError, BrickError } from '../../src/errors.js';
import { randomAlnum } from '../../src/target/common.js';
import { randomUUID } from 'node:crypto';
import type { VolumeDriver } from '../../src/drivers/driver.js';

const VG = 'brick-lvm';
const THIN_VG = 'brick-thin';
const host = createHostContext({ executor: new ProcessExecutor({ defaultTimeoutMs: 120_000 }) });
const stateRoot = mkdtempSync(join(fs.existsSync('/run') ? '/run' : tmpdir(), 'brick-lvm-state-'));
let vg: VolumeGroupFixture | undefined;
let thinVg: VolumeGroupFixture | undefined;
let baseline: Partial<Leftovers> = {};
let tgtdStarted = false;

const CONFIGS: Record<string, Record<string, unknown>> = {
  // thick LVs, LIO, multipath over two portals: clone and volume-from-snapshot copy with dd
  lio: { volume_group: VG, target_helper: 'lioadm', target_ip_address: '127.0.0.1', target_secondary_ip_addresses: '127.0.0.2', volume_clear: 'none', use_multipath_for_image_xfer: true },
  // thin LVs (clone and volume-from-snapshot are thin snapshots), tgtd, single path
  tgt: { volume_group: THIN_VG, lvm_type: 'thin', target_helper: 'tgtadm', target_ip_address: '127.0.0.1', target_port: 3261 },
  // thin LVs, nvmet NVMe/TCP
  nvmet: { volume_group: THIN_VG, lvm_type: 'thin', target_helper: 'nvmet', target_protocol: 'nvmet_tcp', target_ip_address: '127.0.0.1', target_port: 4420 },
  // the driver-level tests: thick, one per helper
  'drv-lio': { volume_group: VG, target_helper: 'lioadm', target_ip_address: '127.0.0.1', target_secondary_ip_addresses: '127.0.0.2', volume_clear: 'none', use_multipath_for_image_xfer: true },
  'drv-tgt': { volume_group: VG, target_helper: 'tgtadm', target_ip_address: '127.0.0.1', target_port: 3261, volume_clear: 'zero', volume_clear_size: 16 },
  'drv-nvmet': { volume_group: VG, target_helper: 'nvmet', target_protocol: 'nvmet_tcp', target_ip_address: '127.0.0.1', target_port: 4420, volume_clear: 'none' },
};

/** No LIO target, nvmet subsystem or tgt target of ours is left. */
async function assertNoTargets(): Promise<void> {
  const lio = fs.existsSync('/sys/kernel/config/target/iscsi') ? fs.readdirSync('/sys/kernel/config/target/iscsi').filter((d) => d.startsWith('iqn.2010-10.org.openstack')) : [];
  assert.deepEqual(lio, [], 'no LIO target left');
  const core = fs.existsSync('/sys/kernel/config/target/core') ? fs.readdirSync('/sys/kernel/config/target/core').filter((d) => d.startsWith('iblock_')) : [];
  assert.deepEqual(core, [], 'no LIO backstore left');
  const subs = fs.existsSync('/sys/kernel/config/nvmet/subsystems') ? fs.readdirSync('/sys/kernel/config/nvmet/subsystems').filter((d) => d.startsWith('nqn.2010-10.org.openstack')) : [];
  assert.deepEqual(subs, [], 'no nvmet subsystem left');
  if (tgtdStarted) {
    const r = await run(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'target'], { checkExitCode: false });
    assert.equal(r.stdout.trim(), '', 'no tgt target left');
  }
}

async function noLeftovers(): Promise<void> {
  await assertNoLeftovers(baseline);
  await assertNoTargets();
}

/** Free the loop file's pages (the guest's /tmp is RAM) before a volume goes away. */
async function discard(path: string): Promise<void> {
  await run(['blkdiscard', path], { checkExitCode: false });
}

const t0 = Date.now();
function mark(what: string): void {
  process.stderr.write(`lvm lab: ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}

before(async () => {
  await startInitiatorDaemons({ initiatorIqn: LAB_INITIATOR_IQN });
  mark('initiator daemons up');
  await modprobe('loop', 'target_core_mod', 'iscsi_target_mod', 'target_core_iblock', 'nvmet', 'nvmet_tcp', 'dm_snapshot', 'dm_thin_pool');
  vg = await createVolumeGroup({ name: VG, sizeMiB: 8192 });
  thinVg = await createVolumeGroup({ name: THIN_VG, sizeMiB: 4096, thinPool: `${THIN_VG}-pool`, thinPoolSizeMiB: 3072 });
  // The pool's `-tpool` device appears with its first thin LV and stays: bring the pool to that
  // steady state before the leftovers baseline is taken.
  await run(['lvcreate', '-T', '-V', '4m', '-n', 'warm-up', `${THIN_VG}/${THIN_VG}-pool`], { timeoutMs: 120_000 });
  await run(['lvremove', '-f', `${THIN_VG}/warm-up`], { timeoutMs: 120_000 });
  if (fs.existsSync('/usr/sbin/tgtd')) {
    await run(['tgtd', '--iscsi', 'portal=127.0.0.1:3261'], { timeoutMs: 30_000 });
    await run(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'target'], { timeoutMs: 30_000 });
    tgtdStarted = true;
  }
  baseline = probeLeftovers();
  mark('setup done');
});

after(async () => {
  mark('tests done');
  if (tgtdStarted) await run(['tgtadm', '--op', 'delete', '--mode', 'system'], { checkExitCode: false });
  await thinVg?.destroy();
  await vg?.destroy();
  rmSync(stateRoot, { recursive: true, force: true });
  mark('teardown done');
});

function makeDriver(label: string): VolumeDriver {
  const stateDir = join(stateRoot, `driver-${label}`);
  return driverFactory('lvm').factory(CONFIGS[`drv-${label}`]!, { ...host, backendName: `drv-${label}`, stateDir });
}

function pattern(seed: string): Buffer {
  return Buffer.from(seed.repeat(Math.ceil(4096 / seed.length)).slice(0, 4096));
}

function foreignConnector(real: ConnectorProperties): ConnectorProperties {
  return { ...real, initiator: 'iqn.2026-11.lab.brick:someone-else', nqn: 'nqn.2014-08.org.nvmexpress:uuid:00000000-1111-2222-3333-444444444444', host: 'other-host' };
}

for (const label of ['lio', 'tgt', 'nvmet'] as const) {
  test(`driver ${label}: a foreign initiator's mapping does not let this host in; mapped, it connects, does I/O, extends, and everything is undone`, async (t) => {
    if (label === 'tgt' && !tgtdStarted) return t.skip('tgt is not installed');
    const d = makeDriver(label);
    await d.checkForSetupError();
    const protocol = d.connectorProtocol;
    const real = await getConnectorProperties({ multipath: d.useMultipath, host: 'lab' });
    assert.equal(real.initiator ?? LAB_INITIATOR_IQN, LAB_INITIATOR_IQN);
    const vol = { id: `d0${label === 'lio' ? '1' : label === 'tgt' ? '2' : '3'}00000-0000-4000-8000-000000000001`, name: '', size: 1 };
    vol.name = `volume-${vol.id}`;
    const c = connectorFor(protocol, { useMultipath: d.useMultipath, ctx: host, deviceScanAttempts: 1 });
    let v: import('../../src/drivers/driver.js').DriverVolume = { ...vol };
    let info: Awaited<ReturnType<typeof c.connectVolume>> | undefined;
    try {
      await d.createVolume(vol);
      v = { ...v, ...(await d.createExport(v, real)) };
      assert.ok(v.provider_location, 'provider_location set');
      const foreign = await d.initializeConnection(v, foreignConnector(real));
      const props = protocol === 'NVMEOF' ? { ...foreign.data, host_nqn: real.nqn ?? LAB_HOST_NQN } : foreign.data;
      mark(`${label}: exported`);
      const withLv = probeLeftovers();
      await assert.rejects(c.connectVolume(props), (e: unknown) => e instanceof BrickError, 'this host is not mapped yet');
      mark(`${label}: refused`);
      await assertNoLeftovers(withLv);
      const ci = await d.initializeConnection(v, real);
      assert.equal(ci.driver_volume_type, protocol === 'NVMEOF' ? 'nvmeof' : 'iscsi');
      if (protocol === 'ISCSI') {
        assert.equal(ci.data.auth_method, 'CHAP');
        assert.equal(ci.data.target_iqn, `iqn.2010-10.org.openstack:${vol.name}`);
      } else {
        assert.equal(ci.data.vol_uuid, vol.id);
        assert.equal(ci.data.host_nqn, real.nqn);
      }
      info = await c.connectVolume(ci.data);
      mark(`${label}: connected`);
      assert.ok(fs.existsSync(info.path), `device ${info.path} exists`);
      assert.equal(deviceSize(info.path), GiB);
      const data = pattern(`brick-${label}-`);
      writeSynced(info.path, data, 8192);
      assert.ok(readDirect(info.path, 8192).equals(data), 'data written reads back through the export');
      await d.extendVolume(v, 2);
      const bytes = await c.extendVolume(ci.data);
      assert.equal(bytes, 2 * GiB, 'the host sees the new size');
      await c.disconnectVolume(ci.data, info);
      info = undefined;
      await d.terminateConnection(v, real);
      await d.terminateConnection(v, foreignConnector(real));
      await d.removeExport(v);
      await discard(`/dev/${VG}/${vol.name}`);
      await d.deleteVolume({ ...v, size: 2 });
      await noLeftovers();
    } finally {
      if (info) await c.disconnectVolume(v as unknown as Record<string, unknown>, info, { force: true, ignoreErrors: true }).catch(() => undefined);
      await d.removeExport(v).catch(() => undefined);
      await d.deleteVolume({ ...v, size: 2 }).catch(() => undefined);
    }
  });
}

/**
 * LIO reads a `CHAP_N` that starts with `0x`/`0b` as hex/base64 and so never matches the ACL's
 * user name (see `hasChapEncodingPrefix`): why generated user names never start so. An `x0` name
 * is the control and must connect. A kernel with the fix accepts the prefixed names: that is
 * reported, not failed.
 */
test('driver lio: CHAP user names starting 0x or 0b (which generated names avoid) against this kernel; x0 connects', async (t) => {
  const d = makeDriver('lio');
  await d.checkForSetupError();
  const real = await getConnectorProperties({ multipath: false, host: 'lab' });
  const c = connectorFor('ISCSI', { useMultipath: false, ctx: host, deviceScanAttempts: 1 });
  for (const prefix of ['0x', '0b', 'x0']) {
    const id = randomUUID();
    const v: import('../../src/drivers/driver.js').DriverVolume = { id, name: `volume-${id}`, size: 1, provider_auth: `CHAP ${prefix}${randomAlnum(18)} ${randomAlnum(16)}` };
    try {
      await d.createVolume(v);
      Object.assign(v, await d.createExport(v, real));
      const ci = await d.initializeConnection(v, real);
      const outcome = await c.connectVolume(ci.data).then(
        async (info) => {
          await c.disconnectVolume(ci.data, info);
          return 'connected';
        },
        (e: unknown) => e,
      );
      if (prefix === 'x0') assert.equal(outcome, 'connected', 'the control name connects');
      else if (outcome === 'connected') t.diagnostic(`${prefix}: this kernel accepts a CHAP_N with an encoding prefix`);
      else {
        assert.ok(outcome instanceof AuthenticationError, `${prefix}: refused as an authentication failure, not ${String(outcome)}`);
        t.diagnostic(`${prefix}: refused by LIO (AUTHENTICATION_FAILED), as the kernel's extract_param() predicts`);
      }
      await d.terminateConnection(v, real);
    } finally {
      await d.removeExport(v).catch(() => undefined);
      await discard(`/dev/${VG}/${v.name}`);
      await d.deleteVolume(v).catch(() => undefined);
    }
  }
  await noLeftovers();
});

/** The cinderlib functional suite for one backend, through the library. */
function cinderlibSuite(label: keyof typeof CONFIGS): void {
  const data = pattern('0123456789');
  const lab = new LibraryLifecycle({
    label,
    beforeDelete: (v) => discard(`/dev/${String(CONFIGS[label]!.volume_group)}/volume-${v.id}`),
    checkNothingLeft: noLeftovers,
    skipReason: () => (label === 'tgt' && !tgtdStarted ? 'tgt is not installed' : undefined),
  });

  lab.test('setup, stats and stats with creation', async () => {
    const backend = await lab.start(
      { volume_backend_name: `lvm-${label}`, volume_driver: 'cinder.volume.drivers.lvm.LVMVolumeDriver', ...CONFIGS[label] },
      { stateDir: join(stateRoot, `lib-${label}`), executor: host.executor, lockPath: join(stateRoot, `locks-${label}`) },
    );
    const s = await backend.stats({ refresh: true });
    assert.equal(s.volume_backend_name, `lvm-${label}`);
    assert.ok('vendor_name' in s);
    for (const p of s.pools ?? [s]) {
      assert.ok('free_capacity_gb' in p && 'total_capacity_gb' in p);
    }
    const sum = (st: typeof s) => (st.pools ?? [st]).reduce((a, p) => a + Number(p.allocated_capacity_gb ?? p.provisioned_capacity_gb ?? 0), 0);
    const initial = sum(s);
    const count = (st: typeof s) => (st.pools ?? [st]).reduce((a, p) => a + Number(p.total_volumes ?? 0), 0);
    const v = await lab.create(1 + Math.floor(Math.random() * 2));
    assert.deepEqual(await backend.stats({ refresh: false }), s, 'cached without refresh');
    const after = await backend.stats({ refresh: true });
    assert.notEqual(count(after), count(s));
    assert.notEqual(sum(after), initial);
    assert.equal(sum(after) - initial, v.size);
  });

  lab.test('create volume: the host sees its size; attach lists the connection; detach removes it', async () => {
    await checkAttachDetach(lab);
  });

  lab.test('create and delete, twice; snapshot create and delete, twice', () => checkCreateDeleteTwice(lab));

  lab.test('connection.detach keeps the connection listed, disconnect removes it', async () => {
    const v = await lab.create();
    const conn = await v.attach();
    assert.equal(conn.attached, true);
    assert.ok(fs.existsSync(conn.path!));
    await conn.detach();
    assert.equal(conn.attached, false);
    assert.equal(v.localAttach, null);
    assert.ok(v.connections.includes(conn));
    await conn.disconnect();
    assert.ok(!v.connections.includes(conn));
  });

  lab.test('disk I/O: a pattern written through the device reads back', () => checkDiskIo(lab, data));

  lab.test('extend detached (through a second handle) and attached while read (extend returns bytes)', () =>
    checkExtend(lab, {
      detached: async (v, gib) => (await lab.backend.getVolume(v.id)).extend(gib),
      attached: (v, gib) => extendWhileRead(v, gib),
    }),
  );

  lab.test('clone: same size, same data', () => checkClone(lab, data));

  lab.test('volume from snapshot holds the data as at snapshot time', () => checkVolumeFromSnapshot(lab, data));

  lab.test('close the backend', async () => {
    await lab.backend.close();
  });
}

/**
 * Online extend with I/O in flight: tgt refuses to re-create a LUN that has SCSI commands queued
 * ("this logical unit is still active"), which udev's and multipathd's reads of a just-attached
 * device also cause.
 */
async function extendWhileRead(v: Volume, gib: number): Promise<number> {
  const reader = spawn('dd', [`if=${v.localAttach!.path!}`, 'of=/dev/null', 'bs=4k', 'count=262144', 'iflag=direct'], { stdio: 'ignore' });
  const readerDone = new Promise((resolve) => reader.once('exit', resolve));
  await delay(300);
  try {
    assert.equal(reader.exitCode, null, 'the reader is still reading when extend starts');
    return await v.extend(gib);
  } finally {
    reader.kill('SIGKILL');
    await readerDone;
  }
}

for (const label of ['lio', 'tgt', 'nvmet'] as const) cinderlibSuite(label);
