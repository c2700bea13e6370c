/**
 * The host-side copy (Cinder's `_copy_vdisk_data`) used when the array has no FlashCopy: both
 * vdisks mapped to this host, attached through the connector, copied with progress, detached
 * and unmapped. The simulator keeps each vdisk's data in a file; the test connector resolves
 * connection properties to those files the way the iSCSI connector resolves them to devices.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FlashSystemSimulator, SimVdisk } from '../../../sims/flashsystem/index.js';
import type { FlashSystemIscsiDriver, HostCopySeams } from '../../../src/drivers/ibm-flashsystem/index.js';
import type { Connector, DeviceInfo } from '../../../src/initiator/connector.js';
import { VolumeDeviceNotFoundError } from '../../../src/errors.js';
import { GIB, connector, driverContext, setupDriver, startSim, volume } from './helpers.js';

const COPY_IQN = 'iqn.2020-01.test:copy-host';
const SMALL = 4 * 1024 * 1024;

describe('ibm_flashsystem host-side copy (no FlashCopy)', () => {
  let sim: FlashSystemSimulator;
  let d: FlashSystemIscsiDriver;
  const dir = mkdtempSync(join(tmpdir(), 'fs-data-'));
  const fileOf = (v: SimVdisk) => join(dir, `vdisk-${v.id}.img`);
  const progress: number[] = [];
  const ddRuns: string[][] = [];
  const events: string[] = [];
  let failConnectFor: string | undefined;

  const fakeConnector: Connector = {
    protocol: 'ISCSI',
    async connectVolume(props): Promise<DeviceInfo> {
      const host = [...sim.state.hosts.values()].find((h) => h.iscsiNames.includes(COPY_IQN));
      const m = host && sim.state.mappingsOf({ hostId: host.id }).find((x) => x.scsiId === props.target_lun);
      if (!m) throw new VolumeDeviceNotFoundError(`no LUN ${String(props.target_lun)} for ${COPY_IQN}`);
      const vd = sim.state.vdisks.get(m.vdiskId)!;
      if (vd.name === failConnectFor) throw new VolumeDeviceNotFoundError(`injected: ${vd.name} did not appear`);
      assert.equal(props.target_portal, '192.168.1.10:3260');
      events.push(`connect ${vd.name}`);
      return { type: 'block', path: fileOf(vd) };
    },
    async disconnectVolume(_props, device) {
      events.push(`disconnect ${device?.path}`);
    },
    async extendVolume() {
      return 0;
    },
    async getVolumePaths() {
      return [];
    },
    async checkValidDevice() {
      return true;
    },
    async checkVolumeCondition() {
      return { abnormal: false, message: 'ok', paths: [] };
    },
    getSearchPath() {
      return null;
    },
  };
  const seams: HostCopySeams = { connectorProperties: async () => connector('copy host', COPY_IQN), connector: () => fakeConnector };

  before(async () => {
    sim = await startSim({
      flashCopy: false,
      poolCapacity: 64 * GIB,
      backing: {
        createVdisk: (v) => writeFileSync(fileOf(v), ''),
        resizeVdisk: (v, size) => truncateSync(fileOf(v), size),
        deleteVdisk: (v) => rmSync(fileOf(v), { force: true }),
      },
    });
    // Files are sparse: size them after creation, as the array would.
    const origCreate = sim.state.backing!.createVdisk!;
    sim.state.backing!.createVdisk = (v) => {
      origCreate(v);
      truncateSync(fileOf(v), v.capacity);
    };
    const ctx = driverContext(undefined, (_op, done) => progress.push(done));
    // The copy runs dd through the executor: play it with the real dd, minus direct I/O (tmpfs has none).
    ctx.executor.on(['dd'], (argv) => {
      ddRuns.push(argv);
      execFileSync(argv[0]!, argv.slice(1).filter((a) => !/^[io]flag=direct$/.test(a)));
      return {};
    });
    d = await setupDriver(sim, { volume_dd_blocksize: '1M' }, ctx, { hostCopy: seams });
  });
  after(async () => {
    await d.close();
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('detects the missing FlashCopy at set-up', () => {
    assert.equal(d.usesFlashCopy, false);
  });

  it('clones through the host: same bytes, progress to the end, mappings and host removed', async () => {
    // A small source (4 MiB, made directly on the array) keeps the copy quick.
    const src = volume(1);
    await sim.state.execute(`svctask mkvdisk -name '${src.name}' -mdiskgrp mdiskgrp0 -iogrp 0 -size ${SMALL} -unit b`);
    const srcDisk = sim.state.findVdisk(src.name)!;
    const marker = Buffer.from('brick flashsystem host copy marker');
    const tail = Buffer.alloc(4096, 0xab);
    const h = openSync(fileOf(srcDisk), 'r+');
    writeSync(h, marker, 0, marker.length, 0);
    writeSync(h, tail, 0, tail.length, SMALL - tail.length);
    closeSync(h);

    progress.length = 0;
    events.length = 0;
    ddRuns.length = 0;
    const clone = volume(2);
    await d.createClonedVolume(clone, src);
    const dstDisk = sim.state.findVdisk(clone.name)!;
    assert.equal(dstDisk.capacity, 2 * GIB);
    const copied = Buffer.alloc(SMALL);
    const r = openSync(fileOf(dstDisk), 'r');
    readSync(r, copied, 0, SMALL, 0);
    closeSync(r);
    assert.equal(statSync(fileOf(dstDisk)).size, 2 * GIB);
    assert.equal(copied.subarray(0, marker.length).toString(), marker.toString());
    assert.deepEqual(copied.subarray(SMALL - tail.length, SMALL), tail);
    assert.equal(progress.at(-1), SMALL);
    assert.ok(progress.length >= 3, `progress ${progress.join(',')}`);
    // dd through the executor, 1 MiB blocks in four runs, direct I/O, the last one syncing.
    const io = [`if=${fileOf(srcDisk)}`, `of=${fileOf(dstDisk)}`, 'bs=1M'];
    assert.deepEqual(ddRuns, [0, 1, 2, 3].map((n) => ['dd', ...io, `skip=${n}`, `seek=${n}`, 'count=1', 'iflag=direct', 'oflag=direct', n === 3 ? 'conv=notrunc,fdatasync' : 'conv=notrunc']));
    assert.deepEqual(progress, [0, 1, 2, 3, 4].map((n) => n * 1024 * 1024));
    assert.deepEqual(events.map((e) => e.split(' ')[0]), ['connect', 'connect', 'disconnect', 'disconnect']);
    assert.equal(sim.state.mappings.size, 0);
    assert.equal([...sim.state.hosts.values()].filter((x) => x.iscsiNames.includes(COPY_IQN)).length, 0);
  });

  it('a snapshot through the host keeps the source mapping that existed before', async () => {
    const src = volume(1);
    await sim.state.execute(`svctask mkvdisk -name '${src.name}' -mdiskgrp mdiskgrp0 -iogrp 0 -size ${SMALL} -unit b`);
    const hostConn = connector('copy host', COPY_IQN);
    const info = await d.initializeConnection(src, hostConn);
    const snap = { id: 'hs1', name: `snapshot-${src.id}`, volume_id: src.id, volume_size: 1, volume: src };
    await d.createSnapshot(snap);
    const srcDisk = sim.state.findVdisk(src.name)!;
    assert.equal(sim.state.mappingsOf({ vdiskId: srcDisk.id }).length, 1, 'the pre-existing mapping stays');
    assert.equal(sim.state.mappingsOf({ vdiskId: sim.state.findVdisk(snap.name)!.id }).length, 0);
    assert.equal((await d.initializeConnection(src, hostConn)).data.target_lun, info.data.target_lun);
    await d.terminateConnection(src, hostConn);
    assert.equal(sim.state.hosts.size, 0);
  });

  it('a failed attach deletes the new vdisk and undoes the mappings it made', async () => {
    const src = volume(1);
    await sim.state.execute(`svctask mkvdisk -name '${src.name}' -mdiskgrp mdiskgrp0 -iogrp 0 -size ${SMALL} -unit b`);
    const clone = volume(1);
    failConnectFor = clone.name;
    try {
      await assert.rejects(d.createClonedVolume(clone, src), VolumeDeviceNotFoundError);
    } finally {
      failConnectFor = undefined;
    }
    assert.equal(sim.state.findVdisk(clone.name), undefined);
    assert.equal(sim.state.mappings.size, 0);
    assert.equal(sim.state.hosts.size, 0);
  });
});
