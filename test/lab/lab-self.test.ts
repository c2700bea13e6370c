/**
 * Tests of the lab itself (they run inside the lab VM): a real iSCSI login to a LIO LUN over
 * two portals with data read back from the backstore file and a dm-multipath map over both
 * paths; CHAP; LUN resize; a portal taken down; an NVMe-oF TCP connect; an LVM VG with thick
 * and thin LVs; an AoE device. They drive iscsiadm / nvme / lvm directly: they test the lab
 * fixtures, not Brick's connectors. Each ends with the leftovers probe clean.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import {
  startInitiatorDaemons,
  createLioTarget,
  createNvmetTarget,
  createVolumeGroup,
  createAoeTarget,
  probeLeftovers,
  assertNoLeftovers,
  run,
  waitFor,
  LAB_INITIATOR_IQN,
  type LioTarget,
} from './fixtures/index.js';

const IQN = 'iqn.2026-11.lab.brick:self';

before(async () => {
  await startInitiatorDaemons({ initiatorIqn: LAB_INITIATOR_IQN });
});

/** The /dev/sdX names of the SCSI disks behind iSCSI sessions to `iqn`, keyed by portal. */
function sessionDisks(iqn: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const s of fs.readdirSync('/sys/class/iscsi_session')) {
    const base = `/sys/class/iscsi_session/${s}`;
    if (fs.readFileSync(`${base}/targetname`, 'utf8').trim() !== iqn) continue;
    const dev = fs.realpathSync(`${base}/device`);
    const conn = fs.readdirSync(dev).find((n) => n.startsWith('connection'))!;
    const cdir = `${dev}/${conn}/iscsi_connection/${conn}`;
    const portal = `${fs.readFileSync(`${cdir}/persistent_address`, 'utf8').trim()}:${fs.readFileSync(`${cdir}/persistent_port`, 'utf8').trim()}`;
    const disks: string[] = [];
    for (const t of fs.readdirSync(dev).filter((n) => n.startsWith('target'))) {
      for (const l of fs.readdirSync(`${dev}/${t}`).filter((n) => /^\d+:\d+:\d+:\d+$/.test(n))) {
        const blk = `${dev}/${t}/${l}/block`;
        if (fs.existsSync(blk)) disks.push(...fs.readdirSync(blk));
      }
    }
    out.set(portal, disks);
  }
  return out;
}

/** The disks among `disks` whose SCSI WWID (sysfs `device/wwid`, `naa.<hex>`) is `wwn` without udev's leading `3`. */
function disksOfLun(disks: string[], wwn: string): string[] {
  return disks.filter((d) => fs.readFileSync(`/sys/block/${d}/device/wwid`, 'utf8').trim() === `naa.${wwn.slice(1)}`);
}

async function discoverAndLogin(target: LioTarget, extraNodeSettings: [string, string][] = []): Promise<void> {
  await run(['iscsiadm', '-m', 'discovery', '-t', 'sendtargets', '-p', target.portals[0]!]);
  for (const p of target.portals) {
    for (const [k, v] of extraNodeSettings) await run(['iscsiadm', '-m', 'node', '-T', target.iqn, '-p', p, '-o', 'update', '-n', k, '-v', v]);
    await run(['iscsiadm', '-m', 'node', '-T', target.iqn, '-p', p, '--login']);
  }
}

async function logoutAndForget(target: LioTarget): Promise<void> {
  await run(['iscsiadm', '-m', 'node', '-T', target.iqn, '--logout'], { checkExitCode: [0, 21] });
  await run(['iscsiadm', '-m', 'node', '-T', target.iqn, '-o', 'delete'], { checkExitCode: [0, 21] });
  for (const p of target.portals) await run(['iscsiadm', '-m', 'discoverydb', '-t', 'sendtargets', '-p', p, '-o', 'delete'], { checkExitCode: [0, 6, 21] });
}

test('iSCSI: login over two portals, data through /dev/sdX lands in the backstore file, multipath map over both paths, LUN resize', async () => {
  const baseline = probeLeftovers();
  const target = await createLioTarget({ iqn: IQN, luns: [{ sizeMiB: 32 }, { sizeMiB: 16 }, { sizeMiB: 8, backstore: 'block' }] });
  try {
    assert.notEqual(target.luns[0]!.wwn, target.luns[1]!.wwn);
    await discoverAndLogin(target);
    const disks = await waitFor(
      () => {
        const m = sessionDisks(IQN);
        return m.size === 2 && [...m.values()].every((d) => d.length === 3) ? m : undefined;
      },
      { timeoutMs: 30_000, description: 'three disks on each of two sessions' },
    );
    assert.deepEqual([...disks.keys()].sort(), ['127.0.0.1:3260', '127.0.0.2:3260']);

    // The by-id link names the WWN the fixture computed from the serial.
    const lun0 = target.luns[0]!;
    const byId = `/dev/disk/by-id/scsi-${lun0.wwn}`;
    await waitFor(() => fs.existsSync(byId), { timeoutMs: 30_000, description: byId });

    // Both paths of each LUN report the WWID the fixture computed (VPD 0x83 NAA from the serial).
    const all = [...disks.values()].flat();
    for (const lun of target.luns) assert.equal(disksOfLun(all, lun.wwn).length, 2, `two paths with WWID ${lun.wwn}`);

    // Data written through one path's /dev/sdX is in the backstore file.
    const sd = disksOfLun(all, lun0.wwn)[0];
    assert.ok(sd, 'a disk of LUN 0');
    const pattern = Buffer.alloc(4096, 0);
    pattern.write(`brick-lab ${Date.now()}`);
    const pfile = '/tmp/brick-lab/pattern';
    fs.writeFileSync(pfile, pattern);
    await run(['dd', `if=${pfile}`, `of=/dev/${sd}`, 'bs=4096', 'count=1', 'seek=3', 'oflag=direct', 'conv=fsync']);
    const back = Buffer.alloc(4096);
    const fd = fs.openSync(lun0.file!, 'r');
    fs.readSync(fd, back, 0, 4096, 3 * 4096);
    fs.closeSync(fd);
    assert.ok(back.equals(pattern), 'the block written through the initiator is in the backstore file');

    // multipathd built one map per LUN, named by WWID, over both paths.
    for (const lun of target.luns) {
      const slaves = await waitFor(
        () => {
          for (const dm of fs.readdirSync('/sys/block').filter((b) => b.startsWith('dm-'))) {
            if (fs.readFileSync(`/sys/block/${dm}/dm/name`, 'utf8').trim() === lun.wwn) {
              const s = fs.readdirSync(`/sys/block/${dm}/slaves`);
              return s.length === 2 ? s : undefined;
            }
          }
          return undefined;
        },
        { timeoutMs: 60_000, description: `multipath map ${lun.wwn} with two paths` },
      );
      assert.equal(slaves.length, 2);
    }

    // Resize a fileio LUN (16 -> 24 MiB) and a block LUN over a loop device (8 -> 12 MiB); a
    // rescan of each path shows the new size.
    const MiB = 1024 * 1024;
    for (const [n, before, after] of [
      [1, 16, 24],
      [2, 8, 12],
    ] as const) {
      const paths = disksOfLun(all, target.luns[n]!.wwn);
      for (const d of paths) assert.equal(Number(fs.readFileSync(`/sys/block/${d}/size`, 'utf8').trim()) * 512, before * MiB);
      await target.resizeLun(n, after * MiB);
      for (const d of paths) fs.writeFileSync(`/sys/block/${d}/device/rescan`, '1');
      for (const d of paths) {
        await waitFor(() => Number(fs.readFileSync(`/sys/block/${d}/size`, 'utf8').trim()) * 512 === after * MiB, {
          timeoutMs: 20_000,
          description: `${d} (LUN ${n}) to show ${after} MiB`,
        });
      }
    }

    // Tear down: flush the maps, log out, forget the records.
    for (const lun of target.luns) await run(['multipath', '-f', lun.wwn]);
    await logoutAndForget(target);
  } finally {
    await target.destroy();
  }
  await assertNoLeftovers(baseline);
});

test('iSCSI CHAP: discovery and session CHAP with an ACL; a wrong secret is refused', async () => {
  const baseline = probeLeftovers();
  const chap = { userid: 'labuser', password: 'labsecret12345' };
  const discoveryChap = { userid: 'discuser', password: 'discsecret1234' };
  const target = await createLioTarget({ iqn: `${IQN}-chap`, luns: [{ sizeMiB: 8 }], portals: ['127.0.0.1:3260'], chap, discoveryChap, acls: [LAB_INITIATOR_IQN] });
  const portal = target.portals[0]!;
  try {
    const disc = ['iscsiadm', '-m', 'discoverydb', '-t', 'sendtargets', '-p', portal];
    const setDisc = async (password: string): Promise<void> => {
      await run([...disc, '-o', 'update', '-n', 'discovery.sendtargets.auth.authmethod', '-v', 'CHAP']);
      await run([...disc, '-o', 'update', '-n', 'discovery.sendtargets.auth.username', '-v', discoveryChap.userid]);
      await run([...disc, '-o', 'update', '-n', 'discovery.sendtargets.auth.password', '-v', password]);
    };
    await run([...disc, '-o', 'new']);
    await setDisc('wrong-secret-000');
    const refused = await run([...disc, '--discover'], { checkExitCode: false });
    assert.notEqual(refused.exitCode, 0, 'discovery with a wrong CHAP secret fails');
    await setDisc(discoveryChap.password);
    const found = await run([...disc, '--discover']);
    assert.match(found.stdout, new RegExp(`${portal},1 ${target.iqn.replace(/\./g, '\\.')}`));

    const node = ['iscsiadm', '-m', 'node', '-T', target.iqn, '-p', portal];
    const setNode = async (password: string): Promise<void> => {
      await run([...node, '-o', 'update', '-n', 'node.session.auth.authmethod', '-v', 'CHAP']);
      await run([...node, '-o', 'update', '-n', 'node.session.auth.username', '-v', chap.userid]);
      await run([...node, '-o', 'update', '-n', 'node.session.auth.password', '-v', password]);
      await run([...node, '-o', 'update', '-n', 'node.session.initial_login_retry_max', '-v', '1']);
    };
    await setNode('wrong-secret-000');
    const denied = await run([...node, '--login'], { checkExitCode: false });
    assert.equal(denied.exitCode, 24, `login with a wrong CHAP secret is an authorization failure (24): ${denied.stderr}`);
    await setNode(chap.password);
    await run([...node, '--login']);
    await waitFor(() => sessionDisks(target.iqn).get(portal)?.length === 1, { timeoutMs: 30_000, description: 'the CHAP session disk' });
    await run(['multipath', '-f', target.luns[0]!.wwn], { checkExitCode: false });
    await logoutAndForget(target);
  } finally {
    await target.destroy();
  }
  await assertNoLeftovers(baseline);
});

test('iSCSI portal down and up: the session through that portal fails and recovers', async () => {
  const baseline = probeLeftovers();
  const target = await createLioTarget({ iqn: `${IQN}-paths`, luns: [{ sizeMiB: 8 }] });
  try {
    const fast: [string, string][] = [
      ['node.conn[0].timeo.noop_out_interval', '1'],
      ['node.conn[0].timeo.noop_out_timeout', '2'],
    ];
    await discoverAndLogin(target, fast);
    const state = (portal: string): string | undefined => {
      for (const s of fs.readdirSync('/sys/class/iscsi_session')) {
        const base = `/sys/class/iscsi_session/${s}`;
        if (fs.readFileSync(`${base}/targetname`, 'utf8').trim() !== target.iqn) continue;
        const conn = fs.readdirSync(`${base}/device`).find((n) => n.startsWith('connection'))!;
        const addr = fs.readFileSync(`${base}/device/${conn}/iscsi_connection/${conn}/persistent_address`, 'utf8').trim();
        if (portal.startsWith(`${addr}:`)) return fs.readFileSync(`${base}/state`, 'utf8').trim();
      }
      return undefined;
    };
    await waitFor(() => state('127.0.0.2:3260') === 'LOGGED_IN', { timeoutMs: 20_000, description: 'session on 127.0.0.2 logged in' });
    await target.portalDown('127.0.0.2:3260');
    await waitFor(() => state('127.0.0.2:3260') === 'FAILED', { timeoutMs: 60_000, description: 'session on 127.0.0.2 to fail' });
    assert.equal(state('127.0.0.1:3260'), 'LOGGED_IN');
    await target.portalUp('127.0.0.2:3260');
    await waitFor(() => state('127.0.0.2:3260') === 'LOGGED_IN', { timeoutMs: 90_000, description: 'session on 127.0.0.2 to recover' });
    await waitFor(async () => (await run(['multipath', '-f', target.luns[0]!.wwn], { checkExitCode: false })).exitCode === 0, {
      timeoutMs: 30_000,
      description: 'the multipath map to flush',
    });
    await logoutAndForget(target);
  } finally {
    await target.destroy();
  }
  await assertNoLeftovers(baseline);
});

test('NVMe-oF TCP: connect shows the namespace with its UUID, data lands in the backing file, disconnect leaves nothing', async () => {
  const baseline = probeLeftovers();
  const nqn = 'nqn.2026-11.lab.brick:nvme-self';
  const uuid = '3f1c9a52-7b6e-4d21-9c0a-5e8d2b7f6a14';
  const target = await createNvmetTarget({ nqn, namespaces: [{ sizeMiB: 16, uuid }], ports: [{ addr: '127.0.0.1', port: 4420 }] });
  try {
    await run(['nvme', 'connect', '-t', 'tcp', '-a', '127.0.0.1', '-s', '4420', '-n', nqn]);
    const ns = await waitFor(
      () => {
        for (const s of fs.readdirSync('/sys/class/nvme-subsystem')) {
          const base = `/sys/class/nvme-subsystem/${s}`;
          if (fs.readFileSync(`${base}/subsysnqn`, 'utf8').trim() !== nqn) continue;
          return fs.readdirSync(base).find((n) => /^nvme\d+n\d+$/.test(n));
        }
        return undefined;
      },
      { timeoutMs: 30_000, description: `a namespace of ${nqn}` },
    );
    assert.equal(fs.readFileSync(`/sys/block/${ns}/uuid`, 'utf8').trim(), uuid);
    assert.equal(Number(fs.readFileSync(`/sys/block/${ns}/size`, 'utf8').trim()) * 512, 16 * 1024 * 1024);
    const pattern = Buffer.alloc(4096, 0x5a);
    fs.writeFileSync('/tmp/brick-lab/nvme-pattern', pattern);
    await run(['dd', 'if=/tmp/brick-lab/nvme-pattern', `of=/dev/${ns}`, 'bs=4096', 'count=1', 'seek=2', 'oflag=direct', 'conv=fsync']);
    const back = Buffer.alloc(4096);
    const fd = fs.openSync(target.namespaces[0]!.file!, 'r');
    fs.readSync(fd, back, 0, 4096, 2 * 4096);
    fs.closeSync(fd);
    assert.ok(back.equals(pattern), 'the block written through nvme-tcp is in the backing file');
    await run(['nvme', 'disconnect', '-n', nqn]);
  } finally {
    await target.destroy();
  }
  await assertNoLeftovers(baseline);
});

test('LVM: a VG on a loop device with thick and thin LVs, created and removed', async () => {
  const baseline = probeLeftovers();
  const vg = await createVolumeGroup({ name: 'brick_lab_self', sizeMiB: 64, thinPool: 'pool' });
  try {
    await run(['lvcreate', '--yes', '--size', '8m', '--name', 'thick', vg.name]);
    await run(['lvcreate', '--yes', '--virtualsize', '32m', '--thin', `${vg.name}/pool`, '--name', 'thin']);
    const lvs = await run(['lvs', '--noheadings', '-o', 'lv_name,lv_size', '--units', 'm', '--nosuffix', vg.name]);
    const names = lvs.stdout.split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
    assert.ok(names.includes('thick') && names.includes('thin') && names.includes('pool'), lvs.stdout);
    assert.ok(fs.statSync(`/dev/${vg.name}/thick`).isBlockDevice());
    assert.ok(fs.statSync(`/dev/${vg.name}/thin`).isBlockDevice());
    await run(['lvremove', '--yes', `${vg.name}/thick`, `${vg.name}/thin`]);
    assert.equal(fs.existsSync(`/dev/${vg.name}/thick`), false);
  } finally {
    await vg.destroy();
  }
  await assertNoLeftovers(baseline);
});

test('AoE: vblade over a veth pair is discovered as /dev/etherd/e<shelf>.<slot>', async () => {
  const baseline = probeLeftovers();
  const aoe = await createAoeTarget({ shelf: 7, slot: 1, sizeMiB: 8 });
  try {
    await run(['aoe-discover']);
    const sys = '/sys/block/etherd!e7.1';
    await waitFor(() => fs.existsSync(sys) && fs.readFileSync(`${sys}/size`, 'utf8').trim() !== '0', {
      timeoutMs: 30_000,
      description: 'AoE device e7.1',
    });
    assert.equal(Number(fs.readFileSync(`${sys}/size`, 'utf8').trim()) * 512, 8 * 1024 * 1024);
    assert.ok(fs.existsSync('/dev/etherd/e7.1'));
  } finally {
    await aoe.destroy();
  }
  await assertNoLeftovers(baseline);
});
