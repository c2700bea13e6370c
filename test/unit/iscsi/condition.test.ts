/**
 * Volume condition of iSCSI attachments (issue #16) over the fake kernel: a healthy map, a path
 * dm-multipath failed (named with its portal), a portal with no path, a session down, a SCSI
 * device offline, the device gone, a read failure, a single-path attachment, bad input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { FakeKernel } from './fake-kernel.js';
import { IscsiConnector } from '../../../src/initiator/connectors/iscsi/index.js';
import '../../../src/initiator/connectors/index.js';
import { InvalidInputError } from '../../../src/errors.js';
import { listSessions } from '../../../src/host/iscsiadm.js';

const IQN = 'iqn.2026-11.lab.brick:cond';
const P1 = '127.0.0.1:3260';
const P2 = '127.0.0.2:3260';
const WWID = '36001405a1b2c3d4e5f60718293a4b5c6';

function kernel(): FakeKernel {
  const k = new FakeKernel();
  k.addTarget({ iqn: IQN, portals: [P1, P2], luns: [{ lun: 0, wwid: WWID, sizeBytes: 64 << 20 }] });
  return k;
}

function make(k: FakeKernel, multipath: boolean): IscsiConnector {
  return new IscsiConnector(k.ctx, { protocol: 'ISCSI', useMultipath: multipath, deviceScanAttempts: 3, forceMapAfterMs: 50, mapGraceMs: 200, readyTimeoutMs: 500, rescanBaseMs: 20, pathGraceMs: 300 });
}

const multi = { target_portal: P1, target_iqn: IQN, target_lun: 0, target_portals: [P1, P2], target_iqns: [IQN, IQN], target_luns: [0, 0] };
const single = { target_portal: P1, target_iqn: IQN, target_lun: 0 };

/** Connect over both portals and wait until both disks are in the map. */
async function attachBoth(k: FakeKernel, c: IscsiConnector) {
  const info = await c.connectVolume(multi);
  await c.settled();
  const dm = info.path.replace('/dev/', '');
  assert.equal(fs.readdirSync(k.p(`/sys/block/${dm}/slaves`)).length, 2, 'both paths in the map');
  const diskOf = (portal: string) => k.sessionDisks(k.sessions.find((s) => s.portal === portal)!)[0]!.disk!;
  return { info, d1: diskOf(P1), d2: diskOf(P2) };
}

test('healthy multipath map: normal, every path active with its portal', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    const { info, d1, d2 } = await attachBoth(k, c);
    const cond = await c.checkVolumeCondition(multi, info);
    assert.equal(cond.abnormal, false, cond.message);
    assert.equal(cond.message, 'ok: 2 of 2 paths active');
    assert.deepEqual(
      cond.paths.map((p) => [p.name, p.state, p.portal]).sort(),
      [[d1, 'active', P1], [d2, 'active', P2]].sort(),
    );
    assert.ok(k.executor.commands().some((x) => x.startsWith('dmsetup status ')), 'the kernel was asked for the paths\' state');
    assert.ok(k.executor.commands().some((x) => x.startsWith(`dd if=${info.path}`) && x.includes('iflag=direct')), 'the first block was read with O_DIRECT');
  } finally {
    k.dispose();
  }
});

test('one path failed by dm-multipath: abnormal, the failed path named with its portal', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    const { info, d1, d2 } = await attachBoth(k, c);
    k.failedPaths.add(d2);
    const cond = await c.checkVolumeCondition(multi, info);
    assert.equal(cond.abnormal, true);
    assert.match(cond.message, new RegExp(`^${d2} \\(${P2.replace(/\./g, '\\.')}\\) failed \\[dm F\\]$`));
    assert.deepEqual(cond.paths.find((p) => p.name === d1)?.state, 'active');
    assert.deepEqual(cond.paths.find((p) => p.name === d2), { name: d2, state: 'failed', portal: P2, detail: 'dm F' });
  } finally {
    k.dispose();
  }
});

test('a SCSI device transport-offline is failed, a blocked one is blocked: both abnormal', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    const { info, d1 } = await attachBoth(k, c);
    fs.writeFileSync(k.p(`/sys/block/${d1}/device/state`), 'transport-offline\n');
    let cond = await c.checkVolumeCondition(multi, info);
    assert.equal(cond.abnormal, true);
    assert.match(cond.message, new RegExp(`${d1} \\(${P1.replace(/\./g, '\\.')}\\) failed \\[device transport-offline\\]`));
    fs.writeFileSync(k.p(`/sys/block/${d1}/device/state`), 'blocked\n');
    cond = await c.checkVolumeCondition(multi, info);
    assert.equal(cond.abnormal, true);
    assert.equal(cond.paths.find((p) => p.name === d1)?.state, 'blocked');
  } finally {
    k.dispose();
  }
});

test('a portal with no path (fewer paths than portals): abnormal, the portal named as missing', async () => {
  const k = kernel();
  try {
    k.targets[0]!.down.add(P2);
    const c = make(k, true);
    const info = await c.connectVolume(multi);
    await c.settled();
    const cond = await c.checkVolumeCondition(multi, info);
    assert.equal(cond.abnormal, true);
    assert.equal(cond.message, `${P2} missing [no session]`);
    assert.equal(cond.paths.length, 2);
    assert.equal(cond.paths.filter((p) => p.state === 'active').length, 1);
  } finally {
    k.dispose();
  }
});

test('a session down (FAILED): abnormal, its path named', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    const { info, d2 } = await attachBoth(k, c);
    const s = (await listSessions(k.ctx)).find((x) => x.portal.text === P2)!;
    fs.writeFileSync(k.p(`/sys/class/iscsi_session/session${s.id}/state`), 'FAILED\n');
    const cond = await c.checkVolumeCondition(multi, info);
    assert.equal(cond.abnormal, true);
    assert.match(cond.message, new RegExp(`^${d2} \\(${P2.replace(/\./g, '\\.')}\\) failed \\[session FAILED\\]$`));
  } finally {
    k.dispose();
  }
});

test('the device gone: abnormal, every portal missing', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    const { info } = await attachBoth(k, c);
    k.removeMap(info.path.replace('/dev/', ''));
    const cond = await c.checkVolumeCondition(multi, info);
    assert.equal(cond.abnormal, true);
    assert.equal(cond.message, `device ${info.path} is gone`);
  } finally {
    k.dispose();
  }
});

test('every path active but the read fails: abnormal, read test named', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    const { info } = await attachBoth(k, c);
    k.unreadable.add(info.path);
    const cond = await c.checkVolumeCondition(multi, info);
    assert.equal(cond.abnormal, true);
    assert.equal(cond.message, `read test of ${info.path} failed`);
    assert.ok(cond.paths.every((p) => p.state === 'active'));
  } finally {
    k.dispose();
  }
});

test('no path active: abnormal, and no read is tried (it would hang on a queueing map)', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    const { info, d1, d2 } = await attachBoth(k, c);
    k.failedPaths.add(d1);
    k.failedPaths.add(d2);
    const before = k.executor.commands().filter((x) => x.startsWith('dd ')).length;
    const cond = await c.checkVolumeCondition(multi, info);
    assert.equal(cond.abnormal, true);
    assert.match(cond.message, new RegExp(`no path of ${info.path} is active$`));
    assert.equal(k.executor.commands().filter((x) => x.startsWith('dd ')).length, before);
  } finally {
    k.dispose();
  }
});

test('single path: the one portal that carries the device; other portals are not expected', async () => {
  const k = kernel();
  try {
    const c = make(k, false);
    const props = { ...single, target_portals: [P1, P2], target_iqns: [IQN, IQN], target_luns: [0, 0] };
    const info = await c.connectVolume(props);
    const cond = await c.checkVolumeCondition(props, info);
    assert.equal(cond.abnormal, false, cond.message);
    assert.deepEqual(cond.paths, [{ name: info.path.replace('/dev/', ''), state: 'active', portal: P1 }]);
  } finally {
    k.dispose();
  }
});

test('bad properties are refused naming the field, before anything is read', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    await assert.rejects(c.checkVolumeCondition({ target_iqn: IQN, target_lun: 0 }, { type: 'block', path: '/dev/dm-0' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'target_portal');
    assert.equal(k.executor.commands().length, 0);
  } finally {
    k.dispose();
  }
});
