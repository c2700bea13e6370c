import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { TgtTarget, parseTgtShow, parseTgtPortals, encodeTgtRequest } from '../../../src/target/tgt.js';
import { parseTargetConfig } from '../../../src/target/config.js';
import { BackendError, InvalidStateError, ProcessExecutionError } from '../../../src/errors.js';
import type { DriverVolume } from '../../../src/drivers/driver.js';
import type { ConnectorProperties } from '../../../src/initiator/properties.js';
import { makeHostRoot } from './kernel.js';
import { makeContext, type TestContext } from './context.js';

const VOL_ID = '3e1c2a4b-5d6f-4a1b-9c8d-7e6f5a4b3c2d';
const IQN = `iqn.2010-10.org.openstack:volume-${VOL_ID}`;
const DEV = `/dev/vg0/volume-${VOL_ID}`;

/** `tgtadm --op show --mode target` as tgt 1.0.85 prints it (trimmed NOP lines kept). */
const SHOW_FIXTURE = `Target 1: iqn.2010-10.org.openstack:volume-a
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 3
            Initiator: iqn.1993-08.org.debian:01:abc alias: h1
            Connection: 0
                IP Address: 127.0.0.1
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            SCSI SN: beaf10
            Size: 0 MB, Block size: 1
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: null
            Backing store path: None
            Backing store flags: 
        LUN: 1
            Type: disk
            SCSI ID: a
            SCSI SN: a
            Size: 1074 MB, Block size: 512
            Online: Yes
            Removable media: No
            Prevent removal: No
            Readonly: No
            SWP: No
            Thin-provisioning: No
            Backing store type: rdwr
            Backing store path: /dev/vg0/volume-a
            Backing store flags: 
    Account information:
        userA
        outU (outgoing)
    ACL information:
        iqn.1993-08.org.debian:01:abc
Target 3: iqn.2010-10.org.openstack:volume-b
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            Backing store path: None
    Account information:
    ACL information:
        ALL
`;

interface FakeTarget {
  tid: number;
  iqn: string;
  luns: Map<number, string>;
  accounts: string[];
  acls: string[];
}

/** tgtd as the RecordingExecutor plays it: targets, LUNs, bound accounts, ACLs, portals. */
function fakeTgtd(t: TestContext) {
  const targets = new Map<number, FakeTarget>();
  const accounts = new Map<string, string>();
  const portals = ['0.0.0.0:3260'];
  const arg = (argv: string[], name: string) => argv[argv.indexOf(name) + 1]!;
  const show = () =>
    [...targets.values()]
      .map((x) => {
        const luns = [...x.luns.entries()].map(([l, p]) => `        LUN: ${l}\n            Type: disk\n            Backing store path: ${p}\n`).join('');
        return `Target ${x.tid}: ${x.iqn}\n    System information:\n        Driver: iscsi\n    I_T nexus information:\n    LUN information:\n        LUN: 0\n            Type: controller\n            Backing store path: None\n${luns}    Account information:\n${x.accounts.map((a) => `        ${a}\n`).join('')}    ACL information:\n${x.acls.map((a) => `        ${a}\n`).join('')}`;
      })
      .join('');
  t.exec.on(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'target'], () => ({ stdout: show() }));
  t.exec.on(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'portal'], () => ({ stdout: portals.map((p) => `Portal: ${p},1\n`).join('') }));
  t.exec.on(['tgtadm', '--lld', 'iscsi', '--op', 'new', '--mode', 'portal'], (argv) => {
    portals.push(arg(argv, '--params').replace(/^portal=/, ''));
    return {};
  });
  t.exec.on(['tgtadm', '--lld', 'iscsi', '--op', 'new', '--mode', 'target'], (argv) => {
    const tid = Number(arg(argv, '--tid'));
    if (targets.has(tid)) return { exitCode: 22, stderr: 'tgtadm: this target already exists' };
    targets.set(tid, { tid, iqn: arg(argv, '--targetname'), luns: new Map(), accounts: [], acls: [] });
    return {};
  });
  t.exec.on(['tgtadm', '--lld', 'iscsi', '--op', 'delete', '--mode', 'target'], (argv) => {
    targets.delete(Number(arg(argv, '--tid')));
    return {};
  });
  t.exec.on(['tgtadm', '--lld', 'iscsi', '--op', 'new', '--mode', 'logicalunit'], (argv) => {
    targets.get(Number(arg(argv, '--tid')))!.luns.set(Number(arg(argv, '--lun')), arg(argv, '--backing-store'));
    return {};
  });
  // tgtd's tgt_device_destroy refuses while SCSI commands are queued or executing on the LU.
  const state = { lunBusyFor: 0 };
  t.exec.on(['tgtadm', '--lld', 'iscsi', '--op', 'delete', '--mode', 'logicalunit'], (argv) => {
    if (state.lunBusyFor > 0) {
      state.lunBusyFor--;
      return { exitCode: 22, stderr: 'tgtadm: this logical unit is still active\n' };
    }
    targets.get(Number(arg(argv, '--tid')))!.luns.delete(Number(arg(argv, '--lun')));
    return {};
  });
  t.exec.on(['tgtadm', '--lld', 'iscsi', '--op', 'update', '--mode', 'logicalunit'], {});
  t.exec.on(['tgtadm', '--lld', 'iscsi', '--op', 'bind', '--mode', 'account'], (argv) => {
    const user = arg(argv, '--user');
    if (!accounts.has(user)) return { exitCode: 22, stderr: "tgtadm: can't find the account" };
    targets.get(Number(arg(argv, '--tid')))!.accounts.push(user);
    return {};
  });
  t.exec.on(['tgtadm', '--lld', 'iscsi', '--op', 'delete', '--mode', 'account'], (argv) => {
    accounts.delete(arg(argv, '--user'));
    return {};
  });
  t.exec.on(['tgtadm', '--lld', 'iscsi', '--mode', 'account', '--op', 'new'], (argv) => {
    accounts.set(arg(argv, '--user'), arg(argv, '--password'));
    return {};
  });
  t.exec.on(['tgtadm', '--lld', 'iscsi', '--op', 'bind', '--mode', 'target'], (argv) => {
    targets.get(Number(arg(argv, '--tid')))!.acls.push(arg(argv, '--initiator-name'));
    return {};
  });
  t.exec.on(['tgtadm', '--lld', 'iscsi', '--op', 'unbind', '--mode', 'target'], (argv) => {
    const x = targets.get(Number(arg(argv, '--tid')))!;
    x.acls = x.acls.filter((a) => a !== arg(argv, '--initiator-name'));
    return {};
  });
  return { targets, accounts, portals, state };
}

/** A fake tgtd management socket: decodes `struct tgtadm_req` + params and answers `struct tgtadm_rsp`. */
async function fakeIpc(root: string, accounts: Map<string, string>, requests: { mode: number; op: number; lld: string; len: number; params: string }[]): Promise<Server> {
  await mkdir(join(root, 'var/run/tgtd'), { recursive: true });
  const server = createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 120) return;
      const len = buf.readUInt32LE(72);
      if (buf.length < len) return;
      const params = buf.subarray(120, len).toString('utf8');
      const req = { mode: buf.readUInt32LE(0), op: buf.readUInt32LE(4), lld: buf.subarray(8, 72).toString('utf8').replace(/\0+$/, ''), len, params };
      requests.push(req);
      const m = /^user=([^,]+),password=([^\0]+)\0$/.exec(params);
      const rsp = Buffer.alloc(8);
      if (m && !accounts.has(m[1]!)) accounts.set(m[1]!, m[2]!);
      else rsp.writeUInt32LE(14, 0);
      rsp.writeUInt32LE(8, 4);
      sock.end(rsp);
    });
  });
  await new Promise<void>((resolve) => server.listen(join(root, 'var/run/tgtd/socket.0'), resolve));
  return server;
}

function connector(initiator: string): ConnectorProperties {
  return { platform: 'x86_64', os_type: 'linux2', ip: '10.0.0.5', host: 'h1', multipath: false, enforce_multipath: false, initiator };
}

test('parseTgtShow reads targets, LUNs, backing stores, incoming accounts, ACLs and sessions', () => {
  const ts = parseTgtShow(SHOW_FIXTURE);
  assert.equal(ts.length, 2);
  assert.deepEqual(ts[0], {
    tid: 1,
    iqn: 'iqn.2010-10.org.openstack:volume-a',
    luns: [0, 1],
    backingStores: { 1: '/dev/vg0/volume-a' },
    accounts: ['userA'],
    acls: ['iqn.1993-08.org.debian:01:abc'],
    sessions: 1,
  });
  assert.deepEqual(ts[1]!.acls, ['ALL']);
  assert.deepEqual(ts[1]!.accounts, []);
});

test('parseTgtPortals and the tgtadm_req encoding', () => {
  assert.deepEqual(parseTgtPortals('Portal: 0.0.0.0:3260,1\nPortal: [::]:3260,1\n'), ['0.0.0.0:3260', '[::]:3260']);
  const b = encodeTgtRequest(7, 0, 'user=u,password=p');
  assert.equal(b.length, 120 + 'user=u,password=p'.length + 1);
  assert.equal(b.readUInt32LE(0), 7);
  assert.equal(b.readUInt32LE(72), b.length);
  assert.equal(b.readInt32LE(76), -1);
  assert.equal(b.subarray(8, 13).toString(), 'iscsi');
  assert.equal(b[b.length - 1], 0);
});

describe('tgt target helper', () => {
  let root: string;
  let cleanupRoot: () => Promise<void>;
  let t: TestContext;
  let volume: DriverVolume;
  let server: Server | undefined;

  beforeEach(async () => {
    ({ root, cleanup: cleanupRoot } = await makeHostRoot());
    t = await makeContext(root);
    volume = { id: VOL_ID, name: `volume-${VOL_ID}`, size: 1 };
    server = undefined;
  });
  afterEach(async () => {
    if (server) await new Promise((r) => server!.close(r));
    await t.cleanup();
    await cleanupRoot();
  });

  test('createExport: target, LUN 1 with scsi_id/sn, CHAP account over the tgtd socket (no secret in any argv), account bound', async () => {
    const d = fakeTgtd(t);
    const requests: { mode: number; op: number; lld: string; len: number; params: string }[] = [];
    server = await fakeIpc(root, d.accounts, requests);
    const tgt = new TgtTarget(parseTargetConfig({ target_helper: 'tgtadm', target_ip_address: '127.0.0.1' }), t.ctx);
    const upd = await tgt.createExport(volume, DEV);
    assert.equal(upd.provider_location, `127.0.0.1:3260,1 ${IQN} 1`);
    const [, user, pass] = upd.provider_auth!.split(' ');
    assert.equal(d.accounts.get(user!), pass, 'tgtd got the account through its socket');
    assert.equal(requests.length, 1);
    assert.equal(requests[0]!.mode, 7);
    assert.equal(requests[0]!.lld, 'iscsi');
    const x = d.targets.get(1)!;
    assert.equal(x.iqn, IQN);
    assert.equal(x.luns.get(1), DEV);
    assert.deepEqual(x.accounts, [user]);
    assert.deepEqual(x.acls, [], 'no initiator bound before initialize_connection');
    assert.ok(t.exec.commands().includes(`tgtadm --lld iscsi --op update --mode logicalunit --tid 1 --lun 1 --params scsi_id=${VOL_ID},scsi_sn=${VOL_ID}`));
    assert.ok(!t.exec.calls.some((c) => c.argv.join(' ').includes(pass!)), 'the CHAP secret is in no argv');
    assert.deepEqual(d.portals, ['0.0.0.0:3260'], 'the wildcard portal already serves port 3260');
  });

  test('without a usable tgtd socket the account is made with tgtadm, secret masked, and a warning logged', async () => {
    const d = fakeTgtd(t);
    const tgt = new TgtTarget(parseTargetConfig({ target_helper: 'tgtadm', target_ip_address: '127.0.0.1', target_port: 3261 }), t.ctx);
    const upd = await tgt.createExport(volume, DEV);
    const [, user, pass] = upd.provider_auth!.split(' ');
    assert.equal(d.accounts.get(user!), pass);
    assert.ok(!t.exec.shownText().includes(pass!), 'masked wherever the command is shown');
    assert.match(t.logs(), /process table/);
    assert.ok(!t.logs().includes(pass!));
    assert.deepEqual(d.portals, ['0.0.0.0:3260', '127.0.0.1:3261'], 'a portal on the configured port is added');
  });

  test('initialize/terminate connection bind and unbind the initiator name; removeExport deletes target and account', async () => {
    const d = fakeTgtd(t);
    server = await fakeIpc(root, d.accounts, []);
    const tgt = new TgtTarget(parseTargetConfig({ target_helper: 'tgtadm', target_ip_address: '127.0.0.1', target_secondary_ip_addresses: '127.0.0.2' }), t.ctx);
    const v = { ...volume, ...(await tgt.createExport(volume, DEV)) };
    const info = await tgt.initializeConnection(v, connector('iqn.2004-10.com.example:a'));
    assert.equal(info.driver_volume_type, 'iscsi');
    assert.deepEqual(info.data.target_portals, ['127.0.0.1:3260', '127.0.0.2:3260']);
    assert.deepEqual(info.data.target_luns, [1, 1]);
    assert.equal(info.data.auth_method, 'CHAP');
    assert.deepEqual(d.targets.get(1)!.acls, ['iqn.2004-10.com.example:a']);
    await tgt.initializeConnection(v, connector('iqn.2004-10.com.example:a'));
    assert.deepEqual(d.targets.get(1)!.acls, ['iqn.2004-10.com.example:a'], 'binding twice is idempotent');
    await tgt.terminateConnection(v, connector('iqn.2004-10.com.example:a'));
    assert.deepEqual(d.targets.get(1)!.acls, []);
    await tgt.removeExport(v);
    assert.equal(d.targets.size, 0);
    assert.equal(d.accounts.size, 0);
    assert.ok(t.exec.commands().includes('tgtadm --lld iscsi --op delete --mode target --tid 1 --force'));
  });

  test('ensureExport after tgtd restarted recreates target, LUN, account binding and the recorded initiators', async () => {
    const d = fakeTgtd(t);
    server = await fakeIpc(root, d.accounts, []);
    const tgt = new TgtTarget(parseTargetConfig({ target_helper: 'tgtadm' }), t.ctx);
    const v = { ...volume, ...(await tgt.createExport(volume, DEV)) };
    await tgt.initializeConnection(v, connector('iqn.2004-10.com.example:a'));
    d.targets.clear();
    d.accounts.clear();
    await tgt.ensureExport(v, DEV);
    const x = d.targets.get(1)!;
    assert.equal(x.luns.get(1), DEV);
    assert.deepEqual(x.acls, ['iqn.2004-10.com.example:a']);
    assert.deepEqual(x.accounts, [v.provider_auth!.split(' ')[1]]);
  });

  test('a new target takes the lowest free tid; initializeConnection without a target is an InvalidStateError', async () => {
    const d = fakeTgtd(t);
    server = await fakeIpc(root, d.accounts, []);
    d.targets.set(1, { tid: 1, iqn: 'iqn.2000-01.other:x', luns: new Map(), accounts: [], acls: [] });
    const tgt = new TgtTarget(parseTargetConfig({ target_helper: 'tgtadm' }), t.ctx);
    const upd = await tgt.createExport(volume, DEV);
    assert.match(upd.provider_location!, /,2 /);
    await assert.rejects(tgt.initializeConnection({ ...volume, id: 'other', name: 'volume-other', provider_location: '127.0.0.1:3260,9 iqn.2010-10.org.openstack:volume-other 1', provider_auth: 'CHAP a b' }, connector('iqn.2004-10.com.example:a')), InvalidStateError);
  });

  test('extendTarget re-creates LUN 1 so tgtd reads the new size', async () => {
    const d = fakeTgtd(t);
    server = await fakeIpc(root, d.accounts, []);
    const tgt = new TgtTarget(parseTargetConfig({ target_helper: 'tgtadm' }), t.ctx);
    const v = { ...volume, ...(await tgt.createExport(volume, DEV)) };
    const n = t.exec.calls.length;
    await tgt.extendTarget(v, DEV);
    const cmds = t.exec.commands().slice(n);
    assert.ok(cmds.includes('tgtadm --lld iscsi --op delete --mode logicalunit --tid 1 --lun 1'));
    assert.ok(cmds.includes(`tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 --backing-store ${DEV}`));
    assert.equal(d.targets.get(1)!.luns.get(1), DEV);
  });

  test('extendTarget retries a LUN tgtd reports busy (commands in flight) and then re-creates it', async () => {
    const d = fakeTgtd(t);
    server = await fakeIpc(root, d.accounts, []);
    const tgt = new TgtTarget(parseTargetConfig({ target_helper: 'tgtadm' }), t.ctx);
    const v = { ...volume, ...(await tgt.createExport(volume, DEV)) };
    d.state.lunBusyFor = 3;
    const n = t.exec.calls.length;
    await tgt.extendTarget(v, DEV);
    const cmds = t.exec.commands().slice(n);
    assert.equal(cmds.filter((c) => c === 'tgtadm --lld iscsi --op delete --mode logicalunit --tid 1 --lun 1').length, 4);
    assert.equal(d.targets.get(1)!.luns.get(1), DEV);
  });

  test('extendTarget gives up on a LUN that stays busy with a BackendError naming target_helper; other tgtadm errors are not retried', async () => {
    const d = fakeTgtd(t);
    server = await fakeIpc(root, d.accounts, []);
    const tgt = new TgtTarget(parseTargetConfig({ target_helper: 'tgtadm' }), t.ctx, { lunBusyMs: 150 });
    const v = { ...volume, ...(await tgt.createExport(volume, DEV)) };
    d.state.lunBusyFor = 1_000;
    await assert.rejects(tgt.extendTarget(v, DEV), (e: unknown) => {
      assert.ok(e instanceof BackendError);
      assert.equal(e.field, 'target_helper');
      assert.match(e.message, /busy with SCSI commands/);
      return true;
    });
    assert.equal(d.targets.get(1)!.luns.get(1), DEV, 'the LUN is still there when the delete never went through');
    d.state.lunBusyFor = 0;
    t.exec.on(['tgtadm', '--lld', 'iscsi', '--op', 'delete', '--mode', 'logicalunit'], { exitCode: 22, stderr: 'tgtadm: invalid request\n' });
    const n = t.exec.calls.length;
    await assert.rejects(tgt.extendTarget(v, DEV), ProcessExecutionError);
    assert.equal(t.exec.commands().slice(n).filter((c) => c.includes('--op delete --mode logicalunit')).length, 1);
  });
});
