/**
 * Lab tests of the AOE connector: vblade exports a file on one end of a veth pair, the kernel's
 * aoe driver sees it on the other; the connector discovers it, data goes both ways, and
 * aoe-flush removes the device on disconnect.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createAoeTarget, assertNoLeftovers, probeLeftovers } from './fixtures/index.js';
import { connectorFor } from '../../src/initiator/factory.js';
import '../../src/initiator/connectors/index.js';
import { ProcessExecutor } from '../../src/exec/executor.js';
import { createHostContext } from '../../src/host/context.js';
import { LockManager } from '../../src/host/lock.js';
import { VolumeDeviceNotFoundError } from '../../src/errors.js';

// A short lock bound: LockManager keeps a timer of the bound alive after each lock, which would hold the process open.
const host = createHostContext({ executor: new ProcessExecutor({ defaultTimeoutMs: 60_000 }), locks: new LockManager('/run/brick-locks', 20_000) });

test('AoE: discover, data both ways, extend, aoe-flush on disconnect, nothing left', async () => {
  const baseline = probeLeftovers();
  const t = await createAoeTarget({ shelf: 7, slot: 3, sizeMiB: 16 });
  try {
    const c = connectorFor('AOE', { ctx: host, deviceScanAttempts: 5 });
    const props = { target_shelf: 7, target_lun: 3 };
    const info = await c.connectVolume(props);
    assert.deepEqual(info, { type: 'block', path: '/dev/etherd/e7.3', device: 'e7.3' });
    const data = randomBytes(4096);
    const fd = fs.openSync(info.path, 'r+');
    fs.writeSync(fd, data, 0, 4096, 1 << 20);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    const back = Buffer.alloc(4096);
    const ff = fs.openSync(t.file, 'r');
    fs.readSync(ff, back, 0, 4096, 1 << 20);
    fs.closeSync(ff);
    assert.ok(back.equals(data), 'bytes written to the AoE device are in the vblade file');
    assert.equal(await c.checkValidDevice(info.path), true);
    assert.equal(await c.extendVolume(props), 16 << 20);
    assert.deepEqual(await c.getVolumePaths(props), ['/dev/etherd/e7.3']);
    await c.disconnectVolume(props, info);
    assert.ok(!fs.existsSync(info.path));
    await assertNoLeftovers(baseline);
  } finally {
    await t.destroy();
  }
});

test('AoE: a shelf nobody exports is not found after the scan attempts', async () => {
  const baseline = probeLeftovers();
  const c = connectorFor('AOE', { ctx: host, deviceScanAttempts: 2, timings: { discoveryWaitMs: 1_000 } });
  await assert.rejects(c.connectVolume({ target_shelf: 9, target_lun: 9 }), VolumeDeviceNotFoundError);
  await assertNoLeftovers(baseline);
});
