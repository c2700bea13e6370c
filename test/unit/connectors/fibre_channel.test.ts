import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { FcKernel } from './fc-kernel.js';
import { FibreChannelConnector, parseFcProperties } from '../../../src/initiator/connectors/fibre_channel.js';
import { fcByPathName, findFcTarget, formatFcLun, listFcHbas, onlineFcHbas, pciOfHba } from '../../../src/host/fc.js';
import { getConnectorProperties } from '../../../src/initiator/properties.js';
import { connectorFor } from '../../../src/initiator/factory.js';
import '../../../src/initiator/connectors/index.js';
import { AttachJournal } from '../../../src/host/journal.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidInputError, NotFoundError, ProcessExecutionError, VolumeDeviceNotFoundError, VolumePathNotRemovedError } from '../../../src/errors.js';

const A1 = '500507680b21ac11'; // host6 target 0, host7 target 1
const A2 = '500507680b22ac11'; // host7 target 0
const A3 = '500507680b23ac11'; // host6 via fc_remote_ports only (scsi_target_id 2)
const NAA = '600507680c8082b0f000000000000102';
const FAST = { scanWaitMs: 150, morePathsWaitMs: 300, wwidWaitMs: 300, mapWaitMs: 300, removalWaitMs: 500 };

function kernel(luns: { lun: number; wwpns: string[]; initiators?: string[]; naa?: string; sizeBytes?: number }[], multipathd = false): FcKernel {
  const k = new FcKernel();
  for (const l of luns) k.luns.push({ lun: l.lun, wwpns: l.wwpns, naa: l.naa ?? NAA, sizeBytes: l.sizeBytes ?? 1 << 30, ...(l.initiators ? { initiators: l.initiators } : {}) });
  k.multipathd = multipathd;
  return k;
}

function fc(k: FcKernel, multipath = false, attempts = 2): FibreChannelConnector {
  return new FibreChannelConnector(k.ctx, { useMultipath: multipath, deviceScanAttempts: attempts, timings: FAST });
}

test('parse: WWN string or list, LUN pairing, initiator_target_map, errors name the field', () => {
  assert.deepEqual(parseFcProperties({ target_wwn: '0x500507680B21AC11', target_lun: 1 }).targets, [{ wwpn: A1, lun: 1 }]);
  assert.deepEqual(parseFcProperties({ target_wwn: [A1, '50:05:07:68:0b:22:ac:11'], target_lun: 3 }).targets, [{ wwpn: A1, lun: 3 }, { wwpn: A2, lun: 3 }]);
  assert.deepEqual(parseFcProperties({ target_wwns: [A1, A2], target_luns: [1, 2] }).targets, [{ wwpn: A1, lun: 1 }, { wwpn: A2, lun: 2 }]);
  const m = parseFcProperties({ target_wwns: [A1, A2], target_lun: 4, initiator_target_map: { '21000024FF3A4C11': [A1] } });
  assert.deepEqual(m.initiatorTargets, { '21000024ff3a4c11': [{ wwpn: A1, lun: 4 }] });
  const bad: [Record<string, unknown>, string][] = [
    [{ target_lun: 1 }, 'target_wwn'],
    [{ target_wwn: 'xyz', target_lun: 1 }, 'target_wwn'],
    [{ target_wwns: [A1, '1234'], target_lun: 1 }, 'target_wwns[1]'],
    [{ target_wwns: [A1, A2, A3], target_luns: [1, 2] }, 'target_luns'],
    [{ target_wwn: A1, target_lun: -1 }, 'target_lun'],
    [{ target_wwn: A1, target_lun: 1, addressing_mode: 'SAM4' }, 'addressing_mode'],
    [{ target_wwn: A1, target_lun: 1, enable_wildcard_scan: 'yes' }, 'enable_wildcard_scan'],
    [{ target_wwn: A1, target_lun: 1, initiator_target_map: { nothex: [A1] } }, 'initiator_target_map'],
  ];
  for (const [p, field] of bad) assert.throws(() => parseFcProperties(p), (e: unknown) => e instanceof InvalidInputError && e.field === field, JSON.stringify(p));
});

test('LUN formatting and PCI names follow os-brick and udev path_id', () => {
  assert.equal(formatFcLun(0), '0');
  assert.equal(formatFcLun(255), '255');
  assert.equal(formatFcLun(256), '0x0100000000000000');
  assert.equal(formatFcLun(300), '0x012c000000000000');
  assert.equal(formatFcLun(16684), '0x412c000000000000');
  assert.equal(formatFcLun(0x12345), '0x2345000100000000');
  assert.deepEqual(pciOfHba('/sys/devices/pci0000:00/0000:00:03.0/0000:05:00.3/host2/fc_host/host2'), { pci: '0000:05:00.3' });
  assert.deepEqual(pciOfHba('/sys/devices/pci0000:20/0000:20:03.0/0000:21:00.2/net/ens2f2/ctlr_2/host3/fc_host/host3'), { pci: '0000:21:00.2' });
  assert.deepEqual(pciOfHba('/sys/devices/platform/smb/smb:motherboard/80040000000.peu0-c0/pci0000:00/0000:00:03.0/0000:05:00.3/host2/fc_host/host2'), { platform: 'platform-80040000000.peu0-c0', pci: '0000:05:00.3' });
  assert.equal(fcByPathName({ devicePath: '/sys/devices/pci0000:00/0000:00:03.0/0000:05:00.1/host7/fc_host/host7' }, A2, 300), `/dev/disk/by-path/pci-0000:05:00.1-fc-0x${A2}-lun-0x012c000000000000`);
});

test('HBAs and target ports from the fixture host: offline port excluded, rport fallback, -1 targets skipped', async () => {
  const k = kernel([]);
  try {
    const all = await listFcHbas(k.ctx);
    assert.deepEqual(all.map((h) => [h.hostDevice, h.portName, h.portState]), [['host6', '21000024ff3a4c10', 'Online'], ['host7', '21000024ff3a4c11', 'Online'], ['host8', '10000090fa1b2c3d', 'Linkdown']]);
    assert.equal(all[0]!.devicePath, '/sys/devices/pci0000:00/0000:00:03.0/0000:05:00.0/host6/fc_host/host6');
    assert.deepEqual((await onlineFcHbas(k.ctx)).map((h) => h.host), [6, 7]);
    assert.deepEqual((await getConnectorProperties({ hostRoot: k.root })).wwpns, ['21000024ff3a4c10', '21000024ff3a4c11']);
    assert.deepEqual(await findFcTarget(k.ctx, 6, A1), { channel: 0, target: 0 });
    assert.deepEqual(await findFcTarget(k.ctx, 7, `0x${A1.toUpperCase()}`), { channel: 0, target: 1 });
    assert.deepEqual(await findFcTarget(k.ctx, 6, A3), { channel: 0, target: 2 });
    assert.equal(await findFcTarget(k.ctx, 6, '500507680b24ac11'), undefined, 'scsi_target_id -1 is not a target');
    assert.equal(await findFcTarget(k.ctx, 6, A2), undefined);
  } finally {
    k.dispose();
  }
});

test('single path: one targeted scan, the by-path link and WWID are returned; disconnect flushes and deletes', async () => {
  const k = kernel([{ lun: 1, wwpns: [A2] }]);
  try {
    const c = fc(k);
    const props = { target_wwn: A2, target_lun: 1 };
    const info = await c.connectVolume(props);
    assert.deepEqual(k.scans, ['host7 0 0 1']);
    assert.deepEqual(info, { type: 'block', path: `/dev/disk/by-path/pci-0000:05:00.1-fc-0x${A2}-lun-1`, scsi_wwn: `3${NAA}` });
    assert.deepEqual(await c.getVolumePaths(props), [info.path]);
    await c.disconnectVolume(props, info);
    assert.deepEqual(k.executor.commands().filter((x) => !x.includes('/scan')), ['blockdev --flushbufs /dev/sdb', 'tee -a /sys/bus/scsi/devices/7:0:0:1/delete', `rm -f /dev/disk/by-id/scsi-3${NAA}`]);
    assert.deepEqual(k.disks(), []);
    const n = k.executor.calls.length;
    await c.disconnectVolume(props, info);
    assert.equal(k.executor.calls.length, n, 'nothing left to do');
  } finally {
    k.dispose();
  }
});

test('multipath over two HBAs and two array ports: narrow scans only, map returned, disconnect flushes the map and removes every path', async () => {
  const k = kernel([{ lun: 2, wwpns: [A1, A2] }], true);
  try {
    const c = fc(k, true);
    const props = { target_wwns: [A1, A2], target_lun: 2 };
    const info = await c.connectVolume(props);
    assert.deepEqual(k.scans.sort(), ['host6 0 0 2', 'host7 0 0 2', 'host7 0 1 2']);
    assert.equal(info.path, '/dev/dm-0');
    assert.equal(info.multipath_id, `3${NAA}`);
    assert.equal(k.disks().length, 3);
    await c.disconnectVolume(props, info);
    const cmds = k.executor.commands().filter((x) => !x.includes('/scan'));
    assert.equal(cmds[0], `dmsetup remove --noudevsync 3${NAA}`, 'an unheld map is removed without waiting for udev');
    assert.deepEqual(cmds.filter((x) => x.endsWith('/delete')).sort(), ['tee -a /sys/bus/scsi/devices/6:0:0:2/delete', 'tee -a /sys/bus/scsi/devices/7:0:0:2/delete', 'tee -a /sys/bus/scsi/devices/7:0:1:2/delete'], 'each path deleted at its own address');
    assert.ok(!cmds.some((x) => x.startsWith('blockdev')), 'paths of a flushed map are not flushed one by one');
    assert.deepEqual(k.disks(), []);
  } finally {
    k.dispose();
  }
});

test('multipath: multipathd runs but has made no map after directMapAfterMs: Brick loads it with device-mapper; without multipathd the single path is returned', async () => {
  for (const running of [true, false]) {
    const k = kernel([{ lun: 2, wwpns: [A1, A2] }], false);
    try {
      k.setMultipathdProcess(running);
      const c = new FibreChannelConnector(k.ctx, { useMultipath: true, deviceScanAttempts: 2, timings: { ...FAST, directMapAfterMs: 50 } });
      const props = { target_wwns: [A1, A2], target_lun: 2 };
      const info = await c.connectVolume(props);
      const creates = k.executor.commands().filter((x) => x.startsWith('dmsetup create'));
      if (running) {
        assert.equal(info.path, '/dev/dm-0', 'the map Brick loaded');
        assert.equal(info.multipath_id, `3${NAA}`);
        assert.equal(creates.length, 1, 'one dmsetup create');
        assert.match(creates[0]!, new RegExp(`^dmsetup create --noudevsync --concise 3${NAA},mpath-3${NAA},,,0 2097152 multipath 0 0 1 1 service-time 0 3 2 `));
      } else {
        assert.match(info.path, /^\/dev\/disk\/by-path\/.*-fc-0x[0-9a-f]{16}-lun-2$/, `a single path: ${info.path}`);
        assert.equal(info.multipath_id, undefined);
        assert.deepEqual(creates, [], 'no map loaded that no multipathd would check');
        assert.ok(!k.executor.commands().some((x) => x.startsWith('multipath')), 'nothing forced');
      }
      await c.disconnectVolume(props, info);
      assert.deepEqual(k.disks(), []);
    } finally {
      k.dispose();
    }
  }
});

test('a failing map flush follows os-brick: without force it raises at once (ignoreErrors too) and removes nothing; force goes on and raises the collected failures unless ignoreErrors', async () => {
  const k = kernel([{ lun: 2, wwpns: [A1, A2] }], true);
  try {
    const c = fc(k, true);
    const props = { target_wwns: [A1, A2], target_lun: 2 };
    let info = await c.connectVolume(props);
    k.openMaps.add(`3${NAA}`);
    for (const options of [{}, { ignoreErrors: true }]) {
      await assert.rejects(c.disconnectVolume(props, info, options), ProcessExecutionError, `the flush's own error (${JSON.stringify(options)})`);
      assert.equal(k.disks().length, 3, 'no path was deleted');
      assert.ok(k.mapOf(`3${NAA}`), 'the map is still there');
      assert.ok(!k.executor.commands().some((x) => x.endsWith('/delete') || x.startsWith('multipathd del map')));
    }
    await assert.rejects(c.disconnectVolume(props, info, { force: true }), (e: unknown) => {
      assert.ok(e instanceof VolumePathNotRemovedError);
      assert.deepEqual((e.details!.errors as string[]).map((m) => m.split(':')[0]), [`flush map 3${NAA}`], 'the chain carries the failed flush');
      assert.ok(e.cause instanceof ProcessExecutionError);
      return true;
    });
    assert.ok(k.executor.commands().includes(`multipathd del map 3${NAA}`), 'the map was removed without a flush');
    assert.equal(k.mapOf(`3${NAA}`), undefined);
    assert.deepEqual(k.disks(), [], 'every path was deleted');
    info = await c.connectVolume(props);
    assert.equal(k.disks().length, 3);
    await c.disconnectVolume(props, info, { force: true, ignoreErrors: true });
    assert.equal(k.mapOf(`3${NAA}`), undefined);
    assert.deepEqual(k.disks(), []);
  } finally {
    k.dispose();
  }
});

test('large LUNs: SAM keeps the number, SAM2 sets the flat-space bit; by-path names use the 64-bit form', async () => {
  const k = kernel([{ lun: 300, wwpns: [A2] }, { lun: 16684, wwpns: [A2], naa: '600507680c8082b0f000000000000555' }]);
  try {
    const c = fc(k);
    const sam = await c.connectVolume({ target_wwn: A2, target_lun: 300 });
    assert.equal(sam.path, `/dev/disk/by-path/pci-0000:05:00.1-fc-0x${A2}-lun-0x012c000000000000`);
    const sam2 = await c.connectVolume({ target_wwn: A2, target_lun: 300, addressing_mode: 'SAM2' });
    assert.equal(sam2.path, `/dev/disk/by-path/pci-0000:05:00.1-fc-0x${A2}-lun-0x412c000000000000`);
    assert.deepEqual(k.scans, ['host7 0 0 300', 'host7 0 0 16684']);
  } finally {
    k.dispose();
  }
});

test('initiator_target_map limits scans to the named HBA and its targets; the offline HBA is never scanned', async () => {
  const k = kernel([{ lun: 5, wwpns: [A1, A2] }]);
  try {
    const c = fc(k);
    await c.connectVolume({ target_wwns: [A1, A2], target_lun: 5, initiator_target_map: { '21000024ff3a4c11': [A1] } });
    assert.deepEqual(k.scans, ['host7 0 1 5']);
  } finally {
    k.dispose();
  }
});

test('a target found only through fc_remote_ports gets a narrow scan with its scsi_target_id', async () => {
  const k = kernel([{ lun: 7, wwpns: [A3] }]);
  try {
    const info = await fc(k).connectVolume({ target_wwn: A3, target_lun: 7 });
    assert.deepEqual(k.scans, ['host6 0 2 7']);
    assert.equal(info.path, `/dev/disk/by-path/pci-0000:05:00.0-fc-0x${A3}-lun-7`);
  } finally {
    k.dispose();
  }
});

test('no HBA sees the target: wildcard "- - L" scans of the online HBAs, or none when enable_wildcard_scan is false', async () => {
  const k = kernel([]);
  try {
    const unseen = '500507680b99ac99';
    await assert.rejects(fc(k, false, 2).connectVolume({ target_wwn: unseen, target_lun: 9 }), (e: unknown) => e instanceof VolumeDeviceNotFoundError && e.field === 'target_wwn');
    assert.deepEqual(k.scans, ['host6 - - 9', 'host7 - - 9', 'host6 - - 9', 'host7 - - 9']);
    k.scans.length = 0;
    await assert.rejects(fc(k, false, 2).connectVolume({ target_wwn: unseen, target_lun: 9, enable_wildcard_scan: false }), VolumeDeviceNotFoundError);
    assert.deepEqual(k.scans, []);
  } finally {
    k.dispose();
  }
});

test('LUN masked away from one HBA: the volume attaches on the path that sees it', async () => {
  const k = kernel([{ lun: 3, wwpns: [A1], initiators: ['21000024ff3a4c10'] }], true);
  try {
    const info = await fc(k, true).connectVolume({ target_wwn: A1, target_lun: 3 });
    assert.equal(k.disks().length, 1);
    assert.equal(info.path, '/dev/dm-0');
  } finally {
    k.dispose();
  }
});

test('no online HBA: NotFoundError before any scan', async () => {
  const k = kernel([{ lun: 1, wwpns: [A2] }]);
  try {
    for (const h of ['host6', 'host7']) fs.writeFileSync(k.p(`/sys/class/fc_host/${h}/port_state`), 'Linkdown\n');
    await assert.rejects(connectorFor('FIBRE_CHANNEL', { ctx: k.ctx }).connectVolume({ target_wwn: A2, target_lun: 1 }), NotFoundError);
    assert.deepEqual(k.scans, []);
  } finally {
    k.dispose();
  }
});

test('extend rescans every path and returns the new size', async () => {
  const k = kernel([{ lun: 1, wwpns: [A1] }]);
  try {
    const c = fc(k);
    const props = { target_wwn: A1, target_lun: 1 };
    await c.connectVolume(props);
    assert.equal(k.disks().length, 2);
    k.luns[0]!.sizeBytes = 2 << 30;
    assert.equal(await c.extendVolume(props), 2 << 30);
    assert.equal(k.executor.commands().filter((x) => x.endsWith('/device/rescan')).length, 2);
  } finally {
    k.dispose();
  }
});

test('journal: scanned paths and the map are recorded; a disconnect in a new process with no device info removes them and empties the journal', async () => {
  const k = kernel([{ lun: 2, wwpns: [A1, A2] }], true);
  const dir = fs.mkdtempSync(join(tmpdir(), 'brick-fc-journal-'));
  try {
    const journal = new AttachJournal(join(dir, 'journal'));
    const ctx = { ...k.ctx, journal };
    const props = { target_wwns: [A1, A2], target_lun: 2 };
    const info = await new FibreChannelConnector(ctx, { useMultipath: true, deviceScanAttempts: 2, timings: FAST }).connectVolume(props);
    assert.equal(info.path, '/dev/dm-0');
    const kinds = async () => (await journal.resources()).map((r) => `${r.kind} ${r.name}`).sort();
    assert.deepEqual(await kinds(), [`multipath-map 3${NAA}`, 'scsi-device 6:0:0:2', 'scsi-device 7:0:0:2', 'scsi-device 7:0:1:2']);
    assert.equal((await journal.resource('scsi-device', '6:0:0:2'))?.attrs.wwid, `3${NAA}`);
    await new FibreChannelConnector(ctx, { useMultipath: true, deviceScanAttempts: 2, timings: FAST }).disconnectVolume(props, null);
    assert.deepEqual(k.disks(), []);
    assert.deepEqual(await kinds(), []);
    assert.deepEqual(await journal.attachments(), []);
  } finally {
    k.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('journal: a connect that finds no path leaves nothing recorded', async () => {
  const k = kernel([{ lun: 2, wwpns: [A1] }]);
  const dir = fs.mkdtempSync(join(tmpdir(), 'brick-fc-journal-'));
  try {
    const journal = new AttachJournal(join(dir, 'journal'));
    await assert.rejects(new FibreChannelConnector({ ...k.ctx, journal }, { useMultipath: false, deviceScanAttempts: 1, timings: FAST }).connectVolume({ target_wwn: A1, target_lun: 5 }), VolumeDeviceNotFoundError);
    assert.deepEqual(await journal.resources(), []);
    assert.deepEqual(await journal.attachments(), []);
  } finally {
    k.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('condition: the map\'s paths by target port; a failed one named; an HBA of the initiator_target_map without the LUN is missing', async () => {
  const k = kernel([{ lun: 2, wwpns: [A1, A2] }], true);
  try {
    const c = fc(k, true);
    const props = { target_wwns: [A1, A2], target_lun: 2 };
    const info = await c.connectVolume(props);
    let cond = await c.checkVolumeCondition(props, info);
    assert.equal(cond.abnormal, false, cond.message);
    assert.equal(cond.paths.length, 3);
    assert.deepEqual(cond.paths.map((p) => p.portal).sort(), [A1, A1, A2]);
    const bad = cond.paths.find((p) => p.portal === A2)!.name;
    k.failedPaths.add(bad);
    cond = await c.checkVolumeCondition(props, info);
    assert.equal(cond.abnormal, true);
    assert.equal(cond.message, `${bad} (${A2}) failed [dm F]`);
    k.failedPaths.clear();
    // host6 is mapped to A2 as well, but does not see it.
    cond = await c.checkVolumeCondition({ ...props, initiator_target_map: { '21000024ff3a4c10': [A1, A2], '21000024ff3a4c11': [A1, A2] } }, info);
    assert.equal(cond.abnormal, true);
    assert.match(cond.message, new RegExp(`^host6 \\(${A2}\\) missing \\[target port not seen\\]$`));
  } finally {
    k.dispose();
  }
});
