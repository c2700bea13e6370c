import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { deletePinnedDevice, devicePresent, pinDevice, waitForRemoval } from '../../../src/host/scsi.js';
import { createHostContext, type HostContext } from '../../../src/host/context.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { VolumePathNotRemovedError } from '../../../src/errors.js';

/** A host tree with SCSI disk `name` at `hctl` below host `host`, linked the way sysfs links it. */
function addDisk(root: string, hctl: string, name: string): void {
  const dev = `sys/devices/platform/host${hctl.split(':')[0]}/session1/target${hctl.split(':').slice(0, 3).join(':')}/${hctl}`;
  const link = (at: string, to: string) => {
    fs.mkdirSync(dirname(join(root, at)), { recursive: true });
    fs.symlinkSync(relative(dirname(join(root, at)), join(root, to)), join(root, at));
  };
  fs.mkdirSync(join(root, dev, 'block', name), { recursive: true });
  fs.writeFileSync(join(root, dev, 'state'), 'running\n');
  fs.writeFileSync(join(root, dev, 'delete'), '');
  fs.symlinkSync(`../../../${hctl}`, join(root, dev, 'block', name, 'device')); // as the kernel writes it
  link(`sys/block/${name}`, `${dev}/block/${name}`);
  link(`sys/bus/scsi/devices/${hctl}`, dev);
}

function removeDisk(root: string, hctl: string, name: string): void {
  fs.rmSync(fs.realpathSync(join(root, `sys/bus/scsi/devices/${hctl}`)), { recursive: true });
  fs.rmSync(join(root, `sys/bus/scsi/devices/${hctl}`));
  fs.rmSync(join(root, `sys/block/${name}`));
}

function host(): { root: string; ctx: HostContext; ex: RecordingExecutor } {
  const root = fs.mkdtempSync(join(tmpdir(), 'brick-scsi-'));
  const ex = new RecordingExecutor();
  return { root, ctx: createHostContext({ hostRoot: root, executor: ex }), ex };
}

test('a device pinned to its H:C:T:L: once gone, a new disk under the same name is neither deleted nor waited for', async () => {
  const { root, ctx, ex } = host();
  try {
    addDisk(root, '1:0:0:0', 'sda');
    const pinned = await pinDevice(ctx, 'sda');
    assert.deepEqual(pinned, { name: 'sda', hctl: { host: 1, channel: 0, target: 0, lun: 0 } });
    assert.equal(await pinDevice(ctx, 'sdz'), 'sdz', 'a name that is not there stays a bare name');
    // The kernel removes the disk and at once gives its name to another LUN's new path.
    removeDisk(root, '1:0:0:0', 'sda');
    addDisk(root, '1:0:0:7', 'sda');
    assert.equal(await devicePresent(ctx, pinned), false);
    assert.equal(await devicePresent(ctx, 'sda'), true, 'by name alone the new disk looks like the old one');
    await deletePinnedDevice(ctx, pinned);
    assert.equal(fs.readFileSync(join(root, 'sys/bus/scsi/devices/1:0:0:7/delete'), 'utf8'), '', 'the new disk was not deleted');
    await waitForRemoval(ctx, [pinned], 200);
    await assert.rejects(waitForRemoval(ctx, ['sda'], 200), (e: unknown) => e instanceof VolumePathNotRemovedError && /sda/.test(e.message));
    assert.equal(ex.calls.length, 0);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('a pinned device that is still there is deleted at its own address; a blocked one only with force', async () => {
  const { root, ctx } = host();
  try {
    addDisk(root, '3:0:0:2', 'sdc');
    const pinned = await pinDevice(ctx, 'sdc');
    fs.writeFileSync(join(root, 'sys/bus/scsi/devices/3:0:0:2/state'), 'blocked\n');
    await assert.rejects(deletePinnedDevice(ctx, pinned), /blocked/);
    assert.equal(fs.readFileSync(join(root, 'sys/bus/scsi/devices/3:0:0:2/delete'), 'utf8'), '');
    await deletePinnedDevice(ctx, pinned, { force: true });
    assert.equal(fs.readFileSync(join(root, 'sys/bus/scsi/devices/3:0:0:2/delete'), 'utf8'), '1');
    await assert.rejects(waitForRemoval(ctx, [pinned], 100), (e: unknown) => e instanceof VolumePathNotRemovedError && (e.details as { devices: string[] }).devices[0] === 'sdc');
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
