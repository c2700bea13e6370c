import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { FakeKernel } from './fake-kernel.js';
import { IscsiConnector } from '../../../src/initiator/connectors/iscsi/index.js';
import { connectorFor, knownProtocols } from '../../../src/initiator/factory.js';
import '../../../src/initiator/connectors/index.js';
import { BrickError, InvalidInputError, VolumeDeviceNotFoundError, TargetPortalLoginError, AuthenticationError, ProcessExecutionError, VolumePathNotRemovedError } from '../../../src/errors.js';
import { listSessions } from '../../../src/host/iscsiadm.js';

const IQN = 'iqn.2026-11.lab.brick:unit';
const P1 = '127.0.0.1:3260';
const P2 = '127.0.0.2:3260';
const WWID0 = '36001405a1b2c3d4e5f60718293a4b5c6';
const WWID1 = '36001405b2c3d4e5f60718293a4b5c6d7';

function kernel(luns = 2): FakeKernel {
  const k = new FakeKernel();
  k.addTarget({
    iqn: IQN,
    portals: [P1, P2],
    luns: Array.from({ length: luns }, (_, i) => ({ lun: i, wwid: i === 0 ? WWID0 : i === 1 ? WWID1 : `36001405c${String(i).padStart(24, '0')}`, sizeBytes: 64 << 20 })),
  });
  return k;
}

function make(k: FakeKernel, multipath: boolean, extra: Record<string, unknown> = {}, protocol = 'ISCSI'): IscsiConnector {
  return new IscsiConnector(k.ctx, { protocol, useMultipath: multipath, deviceScanAttempts: 3, forceMapAfterMs: 50, mapGraceMs: 200, readyTimeoutMs: 500, rescanBaseMs: 20, ...extra });
}

const single = (lun = 0, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ target_portal: P1, target_iqn: IQN, target_lun: lun, ...extra });
const multi = (lun = 0, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  target_portal: P1,
  target_iqn: IQN,
  target_lun: lun,
  target_portals: [P1, P2],
  target_iqns: [IQN, IQN],
  target_luns: [lun, lun],
  ...extra,
});

test('factory registers ISCSI and ISER; ISER logs in through the iser iface', async () => {
  assert.ok(knownProtocols().includes('ISCSI') && knownProtocols().includes('ISER'));
  const k = kernel();
  try {
    const c = connectorFor('iser', { ctx: k.ctx });
    assert.equal(c.protocol, 'ISER');
    assert.equal(c.getSearchPath(), '/dev/disk/by-path');
    k.executor.on(['iscsiadm', '-m', 'node'], (argv) => {
      assert.equal(argv[argv.indexOf('-I') + 1], 'iser');
      return { exitCode: 8 };
    });
    await assert.rejects(c.connectVolume(single()), TargetPortalLoginError);
  } finally {
    k.dispose();
  }
});

test('bad properties fail with the field named before any command runs', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    await assert.rejects(c.connectVolume({ target_portal: P1, target_iqn: IQN, target_lun: 'x' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'target_lun');
    await assert.rejects(c.disconnectVolume({ target_iqn: IQN }, null), (e: unknown) => e instanceof InvalidInputError && e.field === 'target_portal');
    await assert.rejects(c.extendVolume({ target_portal: '[::1', target_iqn: IQN }), (e: unknown) => e instanceof InvalidInputError && e.field === 'target_portal');
    assert.equal(k.executor.calls.length, 0);
  } finally {
    k.dispose();
  }
});

test('single path: record with manual scan, login, targeted scan of that LUN, device found under the session', async () => {
  const k = kernel();
  try {
    const c = make(k, false);
    const info = await c.connectVolume(single(1));
    assert.deepEqual(info, { type: 'block', path: '/dev/sdb', scsi_wwn: WWID1 });
    assert.deepEqual(k.scans, ['host2 - - 1'], 'one targeted scan (wildcards until the target directory exists)');
    const cmds = k.executor.commands();
    assert.deepEqual(cmds.slice(0, 2), [`iscsiadm -m node -T ${IQN} -p ${P1} -I default -o new`, `iscsiadm -m node -T ${IQN} -p ${P1} -I default --login`]);
    assert.ok(!cmds.some((c) => c.includes(' --rescan') || c.includes('-m session')), 'no session-wide rescans');
    const rec = fs.readFileSync(k.p(k.recordPath(IQN, P1)), 'utf8');
    assert.match(rec, /^node\.session\.scan = manual$/m);
    assert.match(rec, /^node\.startup = manual$/m);
    assert.match(rec, /^node\.session\.initial_login_retry_max = 1$/m);
    assert.match(rec, /^node\.session\.auth\.authmethod = None$/m);
    // Only LUN 1 was scanned in: LUN 0 of the same target has no SCSI device.
    assert.deepEqual(k.sessionDisks(k.sessions[0]!).map((d) => d.lun), [1]);
    assert.equal(k.sessions.length, 1);
  } finally {
    k.dispose();
  }
});

test('single path: an existing session is reused (no login)', async () => {
  const k = kernel();
  try {
    k.addSession(IQN, P1);
    const c = make(k, false);
    const info = await c.connectVolume(single(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    assert.equal(info.path, '/dev/sdb');
    assert.ok(!k.executor.commands().some((x) => x.includes('--login')));
    assert.equal(k.sessions.length, 1);
  } finally {
    k.dispose();
  }
});

test('single path: the first portal failing falls over to the next, and the failed one is cleaned', async () => {
  const k = kernel();
  try {
    k.targets[0]!.down.add(P1);
    const c = make(k, false);
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    assert.equal(info.path, '/dev/sdb');
    assert.equal(k.sessions.length, 1);
    assert.equal(k.sessions[0]!.portal, P2);
    assert.equal(k.hasRecord(IQN, P1), false, 'the record made for the dead portal was deleted');
  } finally {
    k.dispose();
  }
});

test('device never appears: deviceScanAttempts scans, then VolumeDeviceNotFound, session and record removed', async () => {
  const k = kernel();
  try {
    k.deadLuns.add(1);
    const c = make(k, false, { deviceScanAttempts: 2 });
    await assert.rejects(c.connectVolume(single(1)), VolumeDeviceNotFoundError);
    assert.deepEqual(k.scans, ['host2 - - 1', 'host2 - - 1'], 'exactly deviceScanAttempts targeted scans of that LUN');
    assert.equal(k.sessions.length, 0, 'logged out');
    assert.equal(k.hasRecord(IQN, P1), false, 'record deleted');
    assert.ok(k.executor.commands().filter((x) => x.includes('--login')).length === 1, 'rescans are not login retries');
  } finally {
    k.dispose();
  }
});

test('multipath: parallel logins to every portal, returns the map, multipath_id is the WWID', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    assert.equal(info.path, '/dev/dm-0');
    assert.equal(info.multipath_id, WWID0);
    assert.equal(info.scsi_wwn, WWID0);
    assert.equal(k.executor.commands().filter((x) => x.endsWith('--login')).length, 2);
    assert.equal(k.sessions.length, 2);
  } finally {
    k.dispose();
  }
});

test('multipath: logins really run in parallel', async () => {
  const k = kernel();
  try {
    let inFlight = 0;
    let peak = 0;
    const orig = k.executor;
    orig.on(/--login$/, async (argv) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 50));
      inFlight--;
      k.addSession(argv[4]!, argv[6]!);
      return {};
    });
    const c = make(k, true);
    await c.connectVolume(multi(0));
    assert.equal(peak, 2);
  } finally {
    k.dispose();
  }
});

test('multipath: one portal down gives a map with one path and a warning', async () => {
  const k = kernel();
  try {
    k.targets[0]!.down.add(P2);
    const c = make(k, true);
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    assert.equal(info.path, '/dev/dm-0');
    assert.deepEqual(fs.readdirSync(k.p('/sys/block/dm-0/slaves')).length, 1);
    assert.ok(k.log.lines().some((l) => l.level === 40 && String(l.msg).includes('path failed')));
    assert.ok(k.log.lines().some((l) => l.level === 40 && String(l.msg).includes('without every path') && JSON.stringify(l.failed_portals) === JSON.stringify([P2])));
    // The record made for the dead portal is removed once its login has failed.
    await c.settled();
    assert.equal(k.hasRecord(IQN, P2), false);
    await c.disconnectVolume(multi(0), info);
    assert.equal(k.sessions.length, 0);
  } finally {
    k.dispose();
  }
});

test('multipath: each new path is handed to multipathd at once (multipathd add path), without waiting for udev', async () => {
  const k = kernel();
  try {
    k.multipathd = false;
    const c = make(k, true, { earlyPathAdd: true, forceMapAfterMs: 5_000 });
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    assert.equal(info.path, '/dev/dm-0');
    const cmds = k.executor.commands();
    assert.ok(cmds.some((x) => x.startsWith('multipathd add path /dev/sd')));
    assert.ok(!cmds.includes(`multipath -a ${WWID0}`), 'no whitelisting needed when multipathd takes the path');
  } finally {
    k.dispose();
  }
});

test('multipath: with find_multipaths refusing a single path, the map is forced (multipath -a, then multipathd add path)', async () => {
  const k = kernel();
  try {
    k.multipathd = false;
    const known = new Set<string>();
    k.executor.on(['multipath', '-a'], (argv) => {
      known.add(argv[2]!);
      return {};
    });
    k.executor.on(['multipathd', 'add', 'path'], (argv) => {
      const disk = argv[3]!.replace('/dev/', '');
      const wwid = `3${fs.readFileSync(k.p(`/sys/block/${disk}/device/wwid`), 'utf8').trim().slice(4)}`;
      if (!known.has(wwid)) return { stdout: 'fail\n' };
      k.addToMap(wwid, disk, 64 << 20);
      return { stdout: 'ok\n' };
    });
    const c = make(k, true);
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    assert.equal(info.path, '/dev/dm-0');
    const cmds = k.executor.commands();
    const a = cmds.indexOf(`multipath -a ${WWID0}`);
    assert.ok(a > 0);
    assert.ok(cmds.slice(a).some((x) => x.startsWith('multipathd add path /dev/sd')));
  } finally {
    k.dispose();
  }
});

test('multipath: with multipathd running but slow, the map is built directly (dmsetup) over every path; nothing is forced', async () => {
  const k = kernel();
  try {
    k.multipathd = false;
    k.setMultipathdProcess(true);
    const c = make(k, true, { forceMapAfterMs: 5_000 });
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    assert.deepEqual(info, { type: 'block', path: '/dev/dm-0', scsi_wwn: WWID0, multipath_id: WWID0 });
    assert.deepEqual(fs.readdirSync(k.p('/sys/block/dm-0/slaves')).sort(), ['sdb', 'sdc']);
    const size = (64 << 20) / 512;
    // One group over both paths, in the order their devices appeared.
    const table = k.dmTables.get(WWID0)!;
    assert.match(table, new RegExp(`^0 ${size} multipath 0 0 1 1 service-time 0 2 2 (8:16 1 1 8:32 1 1|8:32 1 1 8:16 1 1)$`));
    const cmds = k.executor.commands();
    assert.ok(cmds.includes(`dmsetup create --noudevsync --concise ${WWID0},mpath-${WWID0},,,${table}`));
    assert.ok(!cmds.some((x) => x.startsWith('multipath -a') || x.startsWith('multipathd add path')), 'no forcing when the direct map exists');
    await c.disconnectVolume(multi(0), info);
    assert.equal(k.mapOf(WWID0), undefined);
    assert.equal(k.sessions.length, 0);
  } finally {
    k.dispose();
  }
});

test('multipath: maps asked for while dmsetup runs are loaded together; a dmsetup without --concise falls back to one map per run', async () => {
  for (const concise of [true, false]) {
    const k = kernel(4);
    try {
      k.multipathd = false;
      k.setMultipathdProcess(true);
      k.executor.on(['dmsetup', 'create'], async (argv) => {
        if (!concise && argv.includes('--concise')) return { exitCode: 1, stderr: 'dmsetup: unrecognized option --concise' };
        await new Promise((r) => setTimeout(r, 30));
        return k.dmsetupCreate(argv);
      });
      const c = make(k, true, { forceMapAfterMs: 5_000 });
      const infos = await Promise.all([0, 1, 2, 3].map((i) => c.connectVolume(multi(i))));
      assert.equal(new Set(infos.map((i) => i.multipath_id)).size, 4);
      const runs = k.executor.commands().filter((x) => x.startsWith('dmsetup create'));
      if (concise) {
        assert.ok(runs.every((x) => x.includes('--concise')));
        assert.ok(runs.length < 4, `4 maps in ${runs.length} dmsetup runs`);
      } else {
        assert.equal(runs.filter((x) => x.includes('--uuid')).length, 4, 'each map loaded alone after the refused batch');
      }
    } finally {
      k.dispose();
    }
  }
});

test('multipath: without a multipathd process no map is built directly; the os-brick force path is used', async () => {
  const k = kernel();
  try {
    k.multipathd = false;
    const c = make(k, true, { forceMapAfterMs: 50 });
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    assert.equal(info.path, '/dev/dm-0');
    const cmds = k.executor.commands();
    assert.ok(!cmds.some((x) => x.startsWith('dmsetup create')));
    assert.ok(cmds.includes(`multipath -a ${WWID0}`));
  } finally {
    k.dispose();
  }
});

test('multipath: directMap false keeps os-brick behaviour even with multipathd running', async () => {
  const k = kernel();
  try {
    k.multipathd = false;
    k.setMultipathdProcess(true);
    const c = make(k, true, { directMap: false });
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    assert.equal(info.path, '/dev/dm-0');
    assert.ok(!k.executor.commands().some((x) => x.startsWith('dmsetup create')));
    assert.throws(() => make(k, true, { directMap: 'yes' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'directMap');
  } finally {
    k.dispose();
  }
});

test('multipath: a direct build that loses the race to multipathd returns multipathd\'s map', async () => {
  const k = kernel();
  try {
    k.multipathd = false;
    k.setMultipathdProcess(true);
    k.executor.on(['dmsetup', 'create'], (argv) => {
      // multipathd got there first: its map exists, device-mapper refuses the second one.
      const wwid = argv[argv.indexOf('--concise') + 1]!.split(',')[0]!;
      for (const d of ['sdb', 'sdc']) k.addToMap(wwid, d, 64 << 20);
      return { exitCode: 1, stderr: 'device-mapper: create ioctl failed: Device or resource busy' };
    });
    const c = make(k, true, { forceMapAfterMs: 5_000 });
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    assert.equal(info.path, '/dev/dm-0');
    assert.equal(info.multipath_id, WWID0);
    assert.ok(!k.executor.commands().some((x) => x.startsWith('multipath -a')));
  } finally {
    k.dispose();
  }
});

test('multipath: a map that never reads fails the connect with the device named, and everything it made is removed', async () => {
  const k = kernel();
  try {
    k.addToMap = ((orig) =>
      function (this: FakeKernel, wwid: string, disk: string, size: number): string {
        const dm = orig.call(this, wwid, disk, size);
        fs.rmSync(this.p(`/dev/${dm}`), { force: true });
        fs.mkdirSync(this.p(`/dev/${dm}`), { recursive: true }); // a read fails (EISDIR), as I/O errors would
        return dm;
      })(k.addToMap);
    const c = make(k, true, { readyTimeoutMs: 300 });
    await assert.rejects(c.connectVolume(multi(0)), (e: unknown) => e instanceof VolumeDeviceNotFoundError && /dm-0 exists but cannot be read/.test(e.message));
    assert.equal(k.mapOf(WWID0), undefined);
    assert.equal(k.sessions.length, 0);
    assert.equal(k.hasRecord(IQN, P1) || k.hasRecord(IQN, P2), false);
  } finally {
    k.dispose();
  }
});

test('multipath: no map at all returns the single device with a warning', async () => {
  const k = kernel();
  try {
    k.multipathd = false;
    k.executor.on(['multipathd', 'add', 'path'], { stdout: 'fail\n' });
    const c = make(k, true);
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    assert.match(info.path, /^\/dev\/sd[bc]$/);
    assert.equal(info.multipath_id, undefined);
    assert.equal(info.scsi_wwn, WWID0);
    assert.ok(k.log.lines().some((l) => l.level === 40 && String(l.msg).includes('single path')));
  } finally {
    k.dispose();
  }
});

test('multipath with one portal: sendtargets discovery, then every discovered portal', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    const info = await c.connectVolume(single(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    assert.equal(info.path, '/dev/dm-0');
    const cmds = k.executor.commands();
    assert.ok(cmds.includes(`iscsiadm -m discoverydb -t sendtargets -p ${P1} -I default --discover -o nonpersistent`));
    assert.equal(k.sessions.length, 2);
    await c.disconnectVolume(single(0), info);
    assert.equal(k.sessions.length, 0);
    assert.equal(k.hasRecord(IQN, P1) || k.hasRecord(IQN, P2), false);
  } finally {
    k.dispose();
  }
});

test('disconnect right after a multipath connect stops a path still logging in (also from another connector instance): it never scans, and nothing is left', async () => {
  for (const sameInstance of [true, false]) {
    const k = kernel();
    try {
      k.executor.on(/--login$/, async (argv) => {
        if (argv[6] === P2) await new Promise((r) => setTimeout(r, 300));
        k.addSession(argv[4]!, argv[6]!);
        return {};
      });
      const c = make(k, true);
      const info = await c.connectVolume(multi(0));
      assert.equal(info.path, '/dev/dm-0');
      const h1 = k.sessions.find((x) => x.portal === P1)!.host;
      // The library makes a new connector for each operation: the detach's must find the attach's paths.
      await (sameInstance ? c : make(k, true)).disconnectVolume(multi(0), info);
      await c.settled(); // nothing of the attach is still running afterwards
      assert.deepEqual(k.scans, [`host${h1} - - 0`], 'only the first portal scanned');
      assert.equal(k.sessions.length, 0, 'both sessions logged out');
      assert.equal(k.hasRecord(IQN, P1) || k.hasRecord(IQN, P2), false);
      assert.equal(k.mapOf(WWID0), undefined);
    } finally {
      k.dispose();
    }
  }
});

test('whole target down: TargetPortalLoginError, nothing left (no session, no record)', async () => {
  const k = kernel();
  try {
    k.targets[0]!.down.add(P1);
    k.targets[0]!.down.add(P2);
    const c = make(k, true);
    await assert.rejects(c.connectVolume(multi(0)), TargetPortalLoginError);
    assert.equal(k.sessions.length, 0);
    assert.equal(k.hasRecord(IQN, P1) || k.hasRecord(IQN, P2), false);
  } finally {
    k.dispose();
  }
});

test('CHAP: secret reaches the node record, never an argv or a log line', async () => {
  const k = kernel();
  try {
    const secret = 'S3cr3t-CHAP-value';
    k.targets[0]!.chap = { username: 'user1', password: secret };
    const c = make(k, true);
    const props = multi(0, { auth_method: 'CHAP', auth_username: 'user1', auth_password: secret });
    const info = await c.connectVolume(props);
    const rec = fs.readFileSync(k.p(k.recordPath(IQN, P1)), 'utf8');
    assert.match(rec, /^node\.session\.auth\.password = S3cr3t-CHAP-value$/m);
    assert.equal(fs.statSync(k.p(k.recordPath(IQN, P1))).mode & 0o777, 0o600);
    await c.disconnectVolume(props, info);
    for (const call of k.executor.calls) assert.ok(!call.argv.join(' ').includes(secret), call.argv.join(' '));
    assert.ok(!k.log.text().includes(secret));
    assert.ok(k.log.text().length > 0);
  } finally {
    k.dispose();
  }
});

test('CHAP: wrong secret is an AuthenticationError naming auth_password, with everything cleaned', async () => {
  const k = kernel();
  try {
    k.targets[0]!.chap = { username: 'user1', password: 'right' };
    const c = make(k, true);
    await assert.rejects(c.connectVolume(multi(0, { auth_method: 'CHAP', auth_username: 'user1', auth_password: 'wrong-one' })), (e: unknown) => {
      assert.ok(e instanceof AuthenticationError);
      assert.equal(e.field, 'auth_password');
      assert.ok(!e.message.includes('wrong-one'));
      return true;
    });
    assert.equal(k.sessions.length, 0);
    assert.equal(k.hasRecord(IQN, P1) || k.hasRecord(IQN, P2), false);
    assert.ok(!k.log.text().includes('wrong-one'));
  } finally {
    k.dispose();
  }
});

test('disconnect: flush the map, delete the devices, log out only when no other LUN uses the session', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    const [a, b] = await Promise.all([c.connectVolume(multi(0)), c.connectVolume(multi(1))]);
    assert.notEqual(a.path, b.path);
    assert.equal(k.sessions.length, 2, 'one session per portal shared by both LUNs');
    assert.equal(k.executor.commands().filter((x) => x.endsWith('--login')).length, 2, 'concurrent connects of one target log in once per portal');
    await c.disconnectVolume(multi(0), a);
    let cmds = k.executor.commands();
    assert.ok(cmds.includes(`dmsetup remove --noudevsync ${WWID0}`), 'the unheld map is removed without waiting for udev');
    assert.ok(!cmds.includes(`multipath -f ${WWID0}`));
    assert.ok(!cmds.some((x) => x.endsWith('--logout')), 'sessions carry LUN 1: no logout');
    assert.equal(k.sessions.length, 2);
    assert.ok(fs.existsSync(k.p(b.path)), 'LUN 1 is untouched');
    for (const s of k.sessions) assert.deepEqual(k.sessionDisks(s).map((d) => d.lun), [1]);
    await c.disconnectVolume(multi(1), b);
    cmds = k.executor.commands();
    assert.equal(cmds.filter((x) => x.endsWith('--logout')).length, 2);
    assert.equal(k.sessions.length, 0);
    assert.equal(k.hasRecord(IQN, P1) || k.hasRecord(IQN, P2), false);
    assert.deepEqual(fs.readdirSync(k.p('/sys/block')), []);
  } finally {
    k.dispose();
  }
});

test('disconnect: a deleted path whose name the kernel gives at once to another LUN\'s new disk counts as gone, and that disk is left alone', async () => {
  const k = kernel();
  try {
    k.reuseNames = true;
    const c = make(k, true);
    const a = await c.connectVolume(multi(0));
    await c.settled();
    const lun0 = k.sessions.map((s) => k.sessionDisks(s).find((d) => d.lun === 0)!.disk!);
    assert.equal(lun0.length, 2, 'LUN 0 has a path through each portal');
    // The kernel frees an sd name with its disk and hands it to the next disk it probes: here
    // LUN 1's path through the second portal, joining for another volume while LUN 0 detaches.
    let reused: { freed: string; name: string; hctl: string } | undefined;
    k.onDiskRemoved = (disk) => {
      if (reused) return;
      const s = k.sessions.find((x) => x.portal === P2)!;
      reused = { freed: disk, name: k.addDisk(s, 1)!, hctl: `${s.host}:0:0:1` };
    };
    const started = Date.now();
    await c.disconnectVolume(multi(0), a);
    assert.ok(Date.now() - started < 5_000, `disconnect did not wait for the reused name (${Date.now() - started} ms)`);
    assert.ok(reused, 'a disk was added during the disconnect');
    assert.equal(reused.name, reused.freed, 'the freed name went to the new disk');
    assert.ok(lun0.includes(reused.name));
    assert.ok(fs.existsSync(k.p(`/sys/bus/scsi/devices/${reused.hctl}/block/${reused.name}`)), `LUN 1's disk ${reused.name} is still there`);
    assert.ok(fs.existsSync(k.p(`/dev/${reused.name}`)));
    for (const s of k.sessions) assert.ok(!k.sessionDisks(s).some((d) => d.lun === 0), 'LUN 0 is gone from every session');
    assert.deepEqual(k.sessions.map((s) => [s.portal, k.sessionDisks(s).map((d) => d.lun)]), [[P2, [1]]], 'the session carrying LUN 1 stays; the empty one is logged out');
  } finally {
    k.dispose();
  }
});

test('disconnect of something already gone succeeds, touches nothing and warns of nothing', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    // Another volume of the same target is attached: its sessions carry LUN 1.
    const other = await c.connectVolume(multi(1));
    await c.settled();
    const sessionsBefore = k.sessions.map((s) => [s.portal, k.sessionDisks(s)]);
    const ran = k.executor.commands().length;
    const logged = k.log.lines().length;
    await c.disconnectVolume(multi(0), { type: 'block', path: '/dev/dm-7', multipath_id: WWID0 });
    await c.disconnectVolume(single(0), null);
    assert.deepEqual(k.executor.commands().slice(ran), [], 'no flush, delete, map removal, logout or record deletion was attempted');
    const lines = k.log.lines().slice(logged);
    assert.equal(lines.filter((l) => l.msg === 'iscsi: disconnect_volume').length, 2, 'both disconnects ran');
    assert.deepEqual(lines.filter((l) => (l.level as number) >= 40), [], 'no warning: nothing failed');
    assert.deepEqual(k.sessions.map((s) => [s.portal, k.sessionDisks(s)]), sessionsBefore, 'the sessions and the other LUN are untouched');
    assert.ok(fs.existsSync(k.p(`/sys/block/${other.path.replace('/dev/', '')}`)), "the other volume's map is still there");
    assert.ok(k.hasRecord(IQN, P1) && k.hasRecord(IQN, P2), 'the node records stay');
  } finally {
    k.dispose();
  }
});

test('disconnect: a failed map flush without force raises and removes nothing (ignoreErrors too, as in os-brick); force removes and raises the collected failures; force with ignoreErrors does not raise', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    k.openMaps.add(WWID0);
    await assert.rejects(c.disconnectVolume(multi(0), info), BrickError);
    assert.ok(k.executor.commands().includes(`multipath -f ${WWID0}`), 'dmsetup refused the open map: multipath -f was tried');
    assert.ok(fs.existsSync(k.p('/sys/block/dm-0')));
    assert.equal(k.sessions.length, 2);
    assert.ok(!k.executor.commands().some((x) => x.endsWith('--logout')));
    // As in os-brick, ignoreErrors without force does not make a failed flush go on: it raises the flush's own error.
    await assert.rejects(c.disconnectVolume(multi(0), info, { ignoreErrors: true }), ProcessExecutionError);
    assert.ok(fs.existsSync(k.p('/sys/block/dm-0')));
    assert.equal(k.sessions.length, 2);
    assert.equal(k.sessions.flatMap((s) => k.sessionDisks(s)).length, 2, 'no path was deleted');
    await assert.rejects(c.disconnectVolume(multi(0), info, { force: true }), (e: unknown) => {
      assert.ok(e instanceof VolumePathNotRemovedError, 'one error carrying every failure');
      assert.deepEqual((e.details!.errors as string[]).map((m) => m.split(':')[0]), [`flush map ${WWID0}`]);
      return true;
    });
    assert.ok(k.executor.commands().includes(`multipathd del map ${WWID0}`));
    assert.equal(fs.existsSync(k.p('/sys/block/dm-0')), false);
    assert.equal(k.sessions.length, 0);
    const k2 = kernel();
    try {
      const c2 = make(k2, true);
      const info2 = await c2.connectVolume(multi(0));
      await c2.settled(); // paths still joining in the background first: this test is not about them
      k2.openMaps.add(WWID0);
      await c2.disconnectVolume(multi(0), info2, { force: true, ignoreErrors: true });
      assert.equal(k2.sessions.length, 0);
    } finally {
      k2.dispose();
    }
  } finally {
    k.dispose();
  }
});

test('extend: a map whose paths multipathd dropped (size mismatch) is still found by WWID and resized', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    k.growLun(IQN, 0, 128 << 20);
    // multipathd fails and drops paths whose size no longer matches the map: no holders left.
    for (const b of fs.readdirSync(k.p('/sys/block')).filter((n) => n.startsWith('sd'))) {
      for (const h of fs.readdirSync(k.p(`/sys/block/${b}/holders`))) fs.rmSync(k.p(`/sys/block/${b}/holders/${h}`), { force: true });
    }
    const size = await c.extendVolume(multi(0));
    assert.ok(k.executor.commands().includes(`multipathd resize map ${WWID0}`), 'the map was resized');
    assert.equal(size, 128 << 20);
    await c.disconnectVolume(multi(0), info, { force: true, ignoreErrors: true });
  } finally {
    k.dispose();
  }
});

test('extend: rescans every path, resizes the map, returns bytes', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    k.growLun(IQN, 0, 128 << 20);
    const size = await c.extendVolume(multi(0));
    assert.equal(size, 128 << 20);
    assert.equal(new Set(k.rescanned).size, 2, 'both paths rescanned');
    assert.ok(k.executor.commands().includes(`multipathd resize map ${WWID0}`));
    await c.disconnectVolume(multi(0), info);
    await assert.rejects(c.extendVolume(multi(0)), VolumeDeviceNotFoundError);
  } finally {
    k.dispose();
  }
});

test('eight LUNs at once: one record and one login per portal, every LUN scanned once per portal, each connect gets its own map', async () => {
  const k = kernel(8);
  try {
    const holds = new Map<string, number>();
    const withLock = k.ctx.locks.withLock.bind(k.ctx.locks);
    k.ctx.locks.withLock = ((name: string, fn: () => Promise<unknown>, o?: object) => {
      holds.set(name, (holds.get(name) ?? 0) + 1);
      return withLock(name, fn, o);
    }) as typeof k.ctx.locks.withLock;
    // Logins take a moment, as real ones do: every connect has queued its paths by the time the sessions exist.
    k.executor.on(/--login$/, async (argv) => {
      await new Promise((r) => setTimeout(r, 50));
      k.addSession(argv[4]!, argv[6]!);
      return {};
    });
    const c = make(k, true);
    const infos = await Promise.all(Array.from({ length: 8 }, (_, i) => c.connectVolume(multi(i))));
    // The portal locks were taken for batches, not once per LUN.
    for (const portal of ['127.0.0.1:3260', '127.0.0.2:3260']) assert.ok((holds.get(`iscsi-${IQN}-${portal}`) ?? 0) <= 2, `${portal}: ${holds.get(`iscsi-${IQN}-${portal}`)} holds`);
    assert.equal(new Set(infos.map((i) => i.path)).size, 8);
    infos.forEach((info, i) => assert.equal(fs.readFileSync(k.p(`/sys/block/${info.path.slice(5)}/dm/uuid`), 'utf8').trim(), `mpath-${info.multipath_id}`, `LUN ${i}`));
    // Portals take different LUNs first: in each host's own scan order, a LUN comes earlier on
    // one host than on the other (with both scanning in arrival order, every LUN would tie).
    const order = new Map<string, string[]>();
    for (const x of k.scans) {
      const [host, , , lun] = x.split(' ');
      order.set(host!, [...(order.get(host!) ?? []), lun!]);
    }
    const [a, b] = [...order.values()];
    const earlier = { a: 0, b: 0 };
    for (let lun = 0; lun < 8; lun++) {
      const ia = a!.indexOf(String(lun));
      const ib = b!.indexOf(String(lun));
      if (ia >= 0 && (ib < 0 || ia < ib)) earlier.a++;
      else if (ib >= 0 && (ia < 0 || ib < ia)) earlier.b++;
    }
    assert.ok(earlier.a >= 3 && earlier.b >= 3, `LUNs scanned earlier per host ${JSON.stringify(earlier)}: ${JSON.stringify(k.scans)}`);
    await c.settled(); // second paths join in the background
    const cmds = k.executor.commands();
    assert.equal(cmds.filter((x) => x.endsWith('-o new')).length, 2);
    assert.equal(cmds.filter((x) => x.endsWith('--login')).length, 2);
    assert.equal(k.scans.length, 16);
    for (let lun = 0; lun < 8; lun++) assert.equal(k.scans.filter((x) => x.endsWith(` ${lun}`)).length, 2, `LUN ${lun}`);
    await Promise.all(infos.map((info, i) => c.disconnectVolume(multi(i), info)));
    assert.equal(k.sessions.length, 0);
  } finally {
    k.dispose();
  }
});

test('concurrent connects to a dead target: one login attempt per portal, every connect fails cleanly', async () => {
  const k = kernel(3);
  try {
    k.targets[0]!.down.add(P1);
    k.targets[0]!.down.add(P2);
    const c = make(k, true);
    const results = await Promise.allSettled([0, 1, 2].map((i) => c.connectVolume(multi(i))));
    for (const r of results) assert.ok(r.status === 'rejected' && r.reason instanceof TargetPortalLoginError);
    const logins = k.executor.commands().filter((x) => x.endsWith('--login'));
    assert.ok(logins.length <= 4, `at most one login per portal per lock hold, got ${logins.length}`);
    assert.equal(k.hasRecord(IQN, P1) || k.hasRecord(IQN, P2), false);
  } finally {
    k.dispose();
  }
});

test('locks are per target portal and IQN, in files (cross-process)', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    await c.connectVolume(multi(0));
    const files = fs.readdirSync(k.ctx.locks.lockPath);
    assert.ok(files.some((f) => f.includes('127.0.0.1_3260')) && files.some((f) => f.includes('127.0.0.2_3260')), files.join(','));
    assert.ok(files.some((f) => f.includes('lun-0')));
    assert.ok(!files.some((f) => /connect_volume/.test(f)));
  } finally {
    k.dispose();
  }
});

test('getVolumePaths lists existing by-path links only; sessions come from sysfs', async () => {
  const k = kernel();
  try {
    const c = make(k, true);
    assert.deepEqual(await c.getVolumePaths(multi(0)), []);
    await c.connectVolume(multi(0));
    // The second path may join just after the connect returned (it returns on the first path in the map).
    const deadline = Date.now() + 5_000;
    while ((await c.getVolumePaths(multi(0))).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual((await c.getVolumePaths(multi(0))).sort(), [`/dev/disk/by-path/ip-${P1}-iscsi-${IQN}-lun-0`, `/dev/disk/by-path/ip-${P2}-iscsi-${IQN}-lun-0`]);
    const sessions = await listSessions(k.ctx);
    assert.deepEqual(sessions.map((s) => [s.targetIqn, s.portal.text, s.state]).sort(), [
      [IQN, P1, 'LOGGED_IN'],
      [IQN, P2, 'LOGGED_IN'],
    ]);
    assert.equal(await c.checkValidDevice('/dev/dm-0'), true);
    assert.equal(await c.checkValidDevice('/dev/nope'), false);
  } finally {
    k.dispose();
  }
});

test('disconnect removes a LUN the kernel probed but gave no block device, then logs out', async () => {
  const k = kernel();
  try {
    const s = k.addSession(IQN, P1);
    k.addDisk(s, 0, false);
    assert.deepEqual(k.sessionDisks(s), [{ lun: 0, disk: undefined }]);
    const c = make(k, false);
    await c.disconnectVolume(single(0), null);
    assert.equal(k.sessions.length, 0);
    assert.ok(k.executor.commands().some((x) => x.endsWith('--logout')));
  } finally {
    k.dispose();
  }
});

test('multipath without a map: a path device that exists but does not read is skipped, not fatal', async () => {
  const k = kernel();
  try {
    k.multipathd = false;
    k.executor.on(['multipathd', 'add', 'path'], { stdout: 'fail\n' });
    let bad: string | undefined;
    k.executor.on(['dd'], (argv) => {
      const dev = argv.find((a) => a.startsWith('if='))!.slice(3);
      bad ??= dev;
      return dev === bad ? { exitCode: 1, stderr: 'Input/output error' } : {};
    });
    const c = make(k, true);
    const info = await c.connectVolume(multi(0));
    await c.settled(); // paths still joining in the background first: this test is not about them
    assert.ok(bad);
    assert.match(info.path, /^\/dev\/sd[bc]$/);
    assert.notEqual(info.path, bad);
    assert.ok(k.log.lines().some((l) => l.level === 40 && String(l.msg).includes('does not read')));
  } finally {
    k.dispose();
  }
});

test('a path whose session already shows its target: the scan names the full address and the device is found there, pinned to it', async () => {
  const k = kernel(3);
  try {
    const s = k.addSession(IQN, P1);
    k.addDisk(s, 0); // another volume's LUN: the session's target directory exists
    const c = make(k, false);
    const info = await c.connectVolume(single(2));
    assert.equal(info.path, '/dev/sdc');
    assert.deepEqual(k.scans, [`host${s.host} 0 0 2`]);
    await c.disconnectVolume(single(2), info);
    assert.deepEqual(k.sessionDisks(s), [{ lun: 0, disk: 'sdb' }], 'only the LUN of the volume went; the other one and the session stay');
  } finally {
    k.dispose();
  }
});

test('multipath: a map of another WWID holding the path is never returned', async () => {
  const k = kernel();
  try {
    k.multipathd = false;
    k.executor.on(['multipathd', 'add', 'path'], { stdout: 'fail\n' });
    // Whatever device LUN 0 gets on either portal, a foreign map already holds it (a merge gone wrong).
    const realAdd = k.addScsiDisk.bind(k);
    k.addScsiDisk = (d) => {
      const name = realAdd(d);
      if (name && d.lun === 0) k.addToMap(WWID1, name, d.sizeBytes());
      return name;
    };
    const c = make(k, true);
    const info = await c.connectVolume(multi(0));
    await c.settled();
    assert.notEqual(info.multipath_id, WWID1);
    assert.match(info.path, /^\/dev\/sd[bc]$/, 'a path device, with a warning, rather than the foreign map');
    assert.equal(info.scsi_wwn, WWID0);
  } finally {
    k.dispose();
  }
});
