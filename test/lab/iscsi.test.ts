/**
 * Lab tests of the ISCSI connector against a real LIO target and the real open-iscsi, SCSI and
 * dm-multipath stack of the lab VM's kernel. Data written through the returned device is
 * checked in the target's backstore file (and the other way round); every test ends with the
 * leftovers probe empty.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { startInitiatorDaemons, createLioTarget, verifyData, readDirect, assertNoLeftovers, probeLeftovers, run, LAB_INITIATOR_IQN, WatchingExecutor, type LioTarget } from './fixtures/index.js';
import { connectorFor } from '../../src/initiator/factory.js';
import '../../src/initiator/connectors/index.js';
import type { Connector, DeviceInfo } from '../../src/initiator/connector.js';
import { createCapturingLogger } from '../../src/log.js';
import { BrickError, VolumePathNotRemovedError } from '../../src/errors.js';
import { createHostContext } from '../../src/host/context.js';
import { deletePinnedDevice, pinDevice, waitForRemoval } from '../../src/host/scsi.js';

const P1 = '127.0.0.1:3260';
const P2 = '127.0.0.2:3260';

let seq = 0;
function iqn(): string {
  return `iqn.2026-11.lab.brick:iscsi-${process.pid}-${++seq}`;
}

function connector(multipath: boolean, extra: Record<string, unknown> = {}): { c: Connector; ex: WatchingExecutor; log: ReturnType<typeof createCapturingLogger> } {
  const ex = new WatchingExecutor();
  const log = createCapturingLogger('debug');
  const c = connectorFor('ISCSI', { useMultipath: multipath, ctx: { executor: ex, logger: log.logger }, ...extra });
  return { c, ex, log };
}

function props(t: LioTarget, lun: number, multipath: boolean, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = { target_portal: t.portals[0], target_iqn: t.iqn, target_lun: lun, target_discovered: false, volume_id: `vol-${lun}` };
  if (multipath) Object.assign(base, { target_portals: t.portals, target_iqns: t.portals.map(() => t.iqn), target_luns: t.portals.map(() => lun) });
  return { ...base, ...extra };
}

async function until(probe: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return true;
}

/**
 * Run `fn`; when it fails, print the tail of the connector's debug log (seconds from the first
 * line, message, fields) to stderr, so a failure in CI can be read without a rerun.
 */
async function explained<T>(log: ReturnType<typeof createCapturingLogger>, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const lines = log.lines();
    const t0 = Number(lines[0]?.time ?? 0);
    const shown = lines.slice(-150).map((l) => {
      const { time, level: _level, msg, ...rest } = l;
      return `${((Number(time) - t0) / 1000).toFixed(2)} ${String(msg)} ${JSON.stringify(rest).slice(0, 300)}`;
    });
    process.stderr.write(`--- connector debug log: last ${shown.length} of ${lines.length} lines ---\n${shown.join('\n')}\n--- end of connector log ---\n`);
    throw err;
  }
}

const attached: { c: Connector; p: Record<string, unknown>; info: DeviceInfo }[] = [];

async function attach(c: Connector, p: Record<string, unknown>): Promise<DeviceInfo> {
  const info = await c.connectVolume(p);
  attached.push({ c, p, info });
  return info;
}

async function detach(c: Connector, p: Record<string, unknown>, info: DeviceInfo): Promise<void> {
  await c.disconnectVolume(p, info);
  const i = attached.findIndex((a) => a.info === info);
  if (i >= 0) attached.splice(i, 1);
}

/** Force-disconnect whatever a failed test left attached, so one failure does not cascade into the next tests. */
async function scrub(): Promise<void> {
  for (const a of attached.splice(0)) await a.c.disconnectVolume(a.p, a.info, { force: true, ignoreErrors: true }).catch(() => undefined);
}

function slaves(dev: string): string[] {
  const name = dev.replace('/dev/', '');
  try {
    return fs.readdirSync(`/sys/block/${name}/slaves`);
  } catch {
    return [];
  }
}

before(async () => {
  await startInitiatorDaemons({ initiatorIqn: LAB_INITIATOR_IQN });
  await assertNoLeftovers();
});

after(async () => {
  const left = probeLeftovers();
  if (left.iscsiSessions.length > 0) process.stderr.write(`iscsi lab: sessions left at the end: ${left.iscsiSessions.join(', ')}\n`);
});

test('single path: connect, data both ways against the backstore, disconnect, nothing left', async () => {
  const t = await createLioTarget({ iqn: iqn(), luns: [{ sizeMiB: 32 }] });
  try {
    const { c } = connector(false);
    const info = await attach(c, props(t, 0, false));
    assert.equal(info.type, 'block');
    assert.match(info.path, /^\/dev\/sd[a-z]+$/);
    assert.equal(info.scsi_wwn, t.luns[0]!.wwn);
    assert.equal(info.multipath_id, undefined);
    verifyData(info.path, t.luns[0]!.file!, 1 << 20);
    assert.equal(await c.checkValidDevice(info.path), true);
    await until(async () => (await c.getVolumePaths(props(t, 0, false))).length > 0, 10_000);
    const paths = await c.getVolumePaths(props(t, 0, false));
    assert.deepEqual(paths, [`/dev/disk/by-path/ip-${P1}-iscsi-${t.iqn}-lun-0`]);
    await detach(c, props(t, 0, false), info);
    await assertNoLeftovers();
  } finally {
    await scrub();
    await t.destroy();
  }
});

test('the kernel gives a deleted disk\'s name to the next disk it probes: a pinned device is not waited for and the new disk is not deleted', async () => {
  const t = await createLioTarget({ iqn: iqn(), luns: [{ sizeMiB: 8 }, { sizeMiB: 8 }] });
  try {
    const ctx = createHostContext();
    const { c } = connector(false);
    const a = await attach(c, props(t, 0, false));
    const name = a.path.slice('/dev/'.length);
    const pinned = await pinDevice(ctx, name);
    assert.equal(typeof pinned, 'object', `${name} is pinned to its H:C:T:L`);
    await deletePinnedDevice(ctx, pinned);
    await waitForRemoval(ctx, [pinned], 10_000);
    // The sd index is freed when the last reference to the disk goes (udev's probes hold some);
    // LUN 1 is probed next and takes the lowest free index: the one LUN 0's disk gave up.
    await run(['udevadm', 'settle', '--timeout=30']);
    const b = await attach(c, props(t, 1, false));
    assert.equal(b.path, a.path, `the kernel reused the name (LUN 0 had ${a.path}, LUN 1 got ${b.path})`);
    await waitForRemoval(ctx, [pinned], 1_000);
    await assert.rejects(waitForRemoval(ctx, [name], 1_000), VolumePathNotRemovedError, 'by name alone the new disk looks like the old one');
    await deletePinnedDevice(ctx, pinned);
    assert.ok(readDirect(b.path, 0).length === 4096 && fs.existsSync(`/sys/block/${name}`), 'LUN 1\'s disk was not deleted');
    await detach(c, props(t, 1, false), b);
    await detach(c, props(t, 0, false), a);
    await assertNoLeftovers();
  } finally {
    await scrub();
    await t.destroy();
  }
});

test('multipath: map over both portals, data verified, disconnect removes map, devices, sessions and records', async () => {
  const t = await createLioTarget({ iqn: iqn(), luns: [{ sizeMiB: 32 }] });
  try {
    const { c } = connector(true);
    const info = await attach(c, props(t, 0, true));
    assert.match(info.path, /^\/dev\/dm-\d+$/);
    assert.equal(info.multipath_id, t.luns[0]!.wwn);
    assert.equal(info.scsi_wwn, t.luns[0]!.wwn);
    await until(() => slaves(info.path).length >= 2, 30_000);
    assert.equal(slaves(info.path).length, 2, 'both paths joined the map');
    verifyData(info.path, t.luns[0]!.file!, 2 << 20);
    await detach(c, props(t, 0, true), info);
    await assertNoLeftovers();
  } finally {
    await scrub();
    await t.destroy();
  }
});

test('multipath with one portal given: sendtargets discovery finds both portals', async () => {
  const t = await createLioTarget({ iqn: iqn(), luns: [{ sizeMiB: 16 }] });
  try {
    const { c } = connector(true);
    const p = props(t, 0, false);
    const info = await attach(c, p);
    assert.match(info.path, /^\/dev\/dm-\d+$/);
    await until(() => slaves(info.path).length >= 2, 30_000);
    assert.equal(slaves(info.path).length, 2);
    await detach(c, p, info);
    await assertNoLeftovers();
  } finally {
    await scrub();
    await t.destroy();
  }
});

test('CHAP: right credentials attach; the secret is in no argv and no log line', async () => {
  const secret = `Sx${randomBytes(6).toString('hex')}`;
  const t = await createLioTarget({ iqn: iqn(), luns: [{ sizeMiB: 16 }], chap: { userid: 'brickuser', password: secret } });
  try {
    const { c, ex, log } = connector(true);
    const p = props(t, 0, true, { auth_method: 'CHAP', auth_username: 'brickuser', auth_password: secret });
    const info = await attach(c, p);
    verifyData(info.path, t.luns[0]!.file!, 0);
    await detach(c, p, info);
    assert.ok(ex.argvs.length > 0);
    assert.ok(!ex.argvs.some((a) => a.join(' ').includes(secret)), 'no argv carries the CHAP secret');
    assert.ok(!log.text().includes(secret), 'no log line carries the CHAP secret');
    await assertNoLeftovers();
  } finally {
    await scrub();
    await t.destroy();
  }
});

test('CHAP: wrong secret fails with a clear authentication error and leaves nothing', async () => {
  const t = await createLioTarget({ iqn: iqn(), luns: [{ sizeMiB: 16 }], chap: { userid: 'brickuser', password: 'RightSecret123' } });
  try {
    const { c, ex, log } = connector(true);
    const p = props(t, 0, true, { auth_method: 'CHAP', auth_username: 'brickuser', auth_password: 'WrongSecret456' });
    await assert.rejects(c.connectVolume(p), (e: unknown) => {
      assert.ok(e instanceof BrickError);
      assert.equal(e.code, 'AUTHENTICATION_FAILED', e.message);
      assert.ok(!e.message.includes('WrongSecret456'));
      return true;
    });
    assert.ok(!ex.argvs.some((a) => a.join(' ').includes('WrongSecret456')));
    assert.ok(!log.text().includes('WrongSecret456'));
    await assertNoLeftovers();
  } finally {
    await scrub();
    await t.destroy();
  }
});

test('one portal down at connect: a map with one path, a warning, in bounded time', async () => {
  const t = await createLioTarget({ iqn: iqn(), luns: [{ sizeMiB: 16 }] });
  try {
    await t.portalDown(P2).catch((e: unknown) => process.stderr.write(`lab fixture portalDown: ${(e as Error).message} (network portal removed anyway)\n`));
    const { c, log } = connector(true);
    const started = Date.now();
    const info = await attach(c, props(t, 0, true));
    const ms = Date.now() - started;
    assert.match(info.path, /^\/dev\/dm-\d+$/);
    assert.equal(slaves(info.path).length, 1);
    assert.ok(ms < 60_000, `connect took ${ms} ms`);
    assert.ok(log.lines().some((l) => l.level === 40), 'a warning was logged');
    verifyData(info.path, t.luns[0]!.file!, 0);
    await detach(c, props(t, 0, true), info);
    await assertNoLeftovers();
  } finally {
    await scrub();
    await t.portalUp(P2).catch(() => undefined);
    await t.destroy();
  }
});

test('whole target down: a clean login error and nothing left', async () => {
  const t = await createLioTarget({ iqn: iqn(), luns: [{ sizeMiB: 16 }] });
  try {
    await t.portalDown(P1);
    await t.portalDown(P2).catch((e: unknown) => process.stderr.write(`lab fixture portalDown: ${(e as Error).message} (network portal removed anyway)\n`));
    const { c } = connector(true);
    const started = Date.now();
    await assert.rejects(c.connectVolume(props(t, 0, true)), (e: unknown) => {
      assert.ok(e instanceof BrickError);
      assert.equal(e.code, 'TARGET_PORTAL_LOGIN_FAILED', e.message);
      return true;
    });
    assert.ok(Date.now() - started < 120_000);
    await assertNoLeftovers();
  } finally {
    await scrub();
    await t.portalUp(P1).catch(() => undefined);
    await t.portalUp(P2).catch(() => undefined);
    await t.destroy();
  }
});

test('eight LUNs of one target at once: each device is its own LUN; disconnecting one leaves the others working', async () => {
  const n = 8;
  const t = await createLioTarget({ iqn: iqn(), luns: Array.from({ length: n }, () => ({ sizeMiB: 8 })) });
  try {
    const sigs = t.luns.map((l) => Buffer.from(`BRICK-LUN-${l.lun}-${randomBytes(8).toString('hex')}`.padEnd(64, '.')));
    t.luns.forEach((l, i) => {
      const fd = fs.openSync(l.file!, 'r+');
      fs.writeSync(fd, sigs[i]!, 0, 64, 0);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    });
    const { c, log } = connector(true);
    await explained(log, async () => {
      const infos: DeviceInfo[] = await Promise.all(t.luns.map((l) => attach(c, props(t, l.lun, true))));
      assert.equal(new Set(infos.map((i) => i.path)).size, n, 'eight distinct devices');
      infos.forEach((info, i) => {
        assert.equal(info.multipath_id, t.luns[i]!.wwn);
        assert.ok(readDirect(info.path, 0).subarray(0, 64).equals(sigs[i]!), `${info.path} carries LUN ${i}'s signature`);
      });
      await detach(c, props(t, 0, true), infos[0]!);
      assert.equal(probeLeftovers().iscsiSessions.filter((s) => s.includes(t.iqn)).length, 2, 'sessions kept for the other LUNs');
      for (let i = 1; i < n; i++) assert.ok(readDirect(infos[i]!.path, 0).subarray(0, 64).equals(sigs[i]!), `LUN ${i} still reads`);
      await Promise.all(infos.slice(1).map((info, k) => detach(c, props(t, k + 1, true), info)));
      await assertNoLeftovers();
    });
  } finally {
    await scrub();
    await t.destroy();
  }
});

test('extend: the LUN grows on the target, extendVolume returns the new size in bytes', async () => {
  const t = await createLioTarget({ iqn: iqn(), luns: [{ sizeMiB: 16 }] });
  try {
    const { c } = connector(true);
    const p = props(t, 0, true);
    const info = await attach(c, p);
    await until(() => slaves(info.path).length >= 2, 30_000);
    await t.resizeLun(0, 48 * 1024 * 1024);
    const size = await c.extendVolume(p);
    assert.equal(size, 48 * 1024 * 1024);
    assert.equal(Number(fs.readFileSync(`/sys/block/${info.path.slice(5)}/size`, 'utf8').trim()) * 512, size);
    await detach(c, p, info);
    await assertNoLeftovers();
  } finally {
    await scrub();
    await t.destroy();
  }
});

test('a bad portal is refused naming the field, before anything runs', async () => {
  const { c } = connector(false);
  await assert.rejects(c.connectVolume({ target_portal: '127.0.0.1:99999', target_iqn: 'iqn.2026-11.x:y', target_lun: 0 }), (e: unknown) => e instanceof BrickError && e.field === 'target_portal');
  await assertNoLeftovers();
});
