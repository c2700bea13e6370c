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

test('iSCSI: login over two portals, data through /dev/sdX lands in the backstore file, multipath map over both paths', async () => {
  const baseline = probeLeftovers();
  const target = await createLioTarget({ iqn: IQN, luns: [{ sizeMiB: 32 }, { sizeMiB: 16 }] });
  try {
    assert.notEqual(target.luns[0]!.wwn, target.luns[1]!.wwn);
    await discoverAndLogin(target);
    const disks = await waitFor(
      () => {
        const m = sessionDisks(IQN);
        return m.size === 2 && [...m.values()].every((d) => d.length === 2) ? m : undefined;
      },
      { timeoutMs: 30_000, description: 'two disks on each of two sessions' },
    );
    assert.deepEqual([...disks.keys()].sort(), ['127.0.0.1:3260', '127.0.0.2:3260']);

    // The by-id link names the WWN the fixture computed from the serial.
    const lun0 = target.luns[0]!;
    const byId = `/dev/disk/by-id/scsi-${lun0.wwn}`;
    await waitFor(() => fs.existsSync(byId), { timeoutMs: 30_000, description: byId });

    // Data written through one path's /dev/sdX is in the backstore file.
    const sd = [...disks.values()]
      .flat()
      .find((d) => fs.readFileSync(`/sys/block/${d}/device/wwid`, 'utf8').includes(lun0.serial.replace(/-/g, '').slice(0, 20)) || fs.realpathSync(byId).endsWith(`/${d}`));
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

    // Resize LUN 1 and see the new size after a rescan of its paths.
    await target.resizeLun(1, 24 * 1024 * 1024);
    const lun1Disks = [...disks.values()].flat().filter((d) => fs.realpathSync(`/dev/disk/by-id/scsi-${target.luns[1]!.wwn}`) && fs.readFileSync(`/sys/block/${d}/size`, 'utf8').trim() === String((16 * 1024 * 1024) / 512));
    assert.equal(lun1Disks.length, 2);
    for (const d of lun1Disks) fs.writeFileSync(`/sys/block/${d}/device/rescan`, '1');
    for (const d of lun1Disks) {
      await waitFor(() => fs.readFileSync(`/sys/block/${d}/size`, 'utf8').trim() === String((24 * 1024 * 1024) / 512), {
        timeoutMs: 20_000,
        description: `${d} to show 24 MiB`,
      });
    }

    // Tear down: flush the maps, log out, forget the records.
    for (const lun of target.luns) await run(['multipath', '-f', lun.wwn]);
    await logoutAndForget(target);
  } finally {
    await target.destroy();
  }
  await assertNoLeftovers(baseline);
});
