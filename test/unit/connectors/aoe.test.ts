import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtureCopy, fixtureContext, hide, reveal } from './helpers.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { AoeConnector, parseAoeProperties } from '../../../src/initiator/connectors/aoe.js';
import { connectorFor } from '../../../src/initiator/factory.js';
import '../../../src/initiator/connectors/index.js';
import { AttachJournal } from '../../../src/host/journal.js';
import { InvalidInputError, VolumeDeviceNotFoundError, VolumePathNotRemovedError } from '../../../src/errors.js';

const FAST = { discoveryWaitMs: 100, removalWaitMs: 100 };
const DEV = 'dev/etherd/e1.1';
const BLK = 'sys/block/etherd!e1.1';

/** A fake aoe driver: aoe-discover finds e1.1 on the `discoverAfter`-th call; aoe-flush removes it. */
function aoeKernel(opts: { attached?: boolean; discoverAfter?: number; flushFails?: boolean } = {}) {
  const fx = fixtureCopy('aoe/vblade-e1.1');
  if (!opts.attached) {
    hide(fx.root, fx.stash, DEV);
    hide(fx.root, fx.stash, BLK);
  }
  let discovers = 0;
  const ex = new RecordingExecutor();
  ex.on(['aoe-discover'], () => {
    discovers++;
    if (discovers >= (opts.discoverAfter ?? 1)) {
      reveal(fx.root, fx.stash, DEV);
      reveal(fx.root, fx.stash, BLK);
    }
    return {};
  });
  ex.on(['aoe-revalidate'], {});
  ex.on(['aoe-flush'], () => {
    if (opts.flushFails) return { exitCode: 1, stderr: 'aoe-flush: /dev/etherd/flush: Permission denied\n' };
    hide(fx.root, fx.stash, DEV);
    hide(fx.root, fx.stash, BLK);
    return {};
  });
  const { ctx } = fixtureContext(fx.root, ex);
  return { ...fx, ctx, ex };
}

test('parse: shelf and lun validated, numeric strings accepted', () => {
  assert.deepEqual(parseAoeProperties({ target_shelf: '1', target_lun: 1 }), { shelf: 1, lun: 1, device: 'e1.1', path: '/dev/etherd/e1.1' });
  for (const [p, field] of [[{ target_lun: 1 }, 'target_shelf'], [{ target_shelf: 65535, target_lun: 1 }, 'target_shelf'], [{ target_shelf: 1, target_lun: 255 }, 'target_lun'], [{ target_shelf: 1, target_lun: '1; rm' }, 'target_lun'], [{ target_shelf: -1, target_lun: 0 }, 'target_shelf']] as const) {
    assert.throws(() => parseAoeProperties(p as Record<string, unknown>), (e: unknown) => e instanceof InvalidInputError && e.field === field);
  }
});

test('connect discovers, waits for the device and returns it; disconnect flushes it away', async () => {
  const k = aoeKernel({ discoverAfter: 2 });
  try {
    const c = new AoeConnector(k.ctx, { deviceScanAttempts: 3, timings: FAST });
    const info = await c.connectVolume({ target_shelf: 1, target_lun: 1 });
    assert.deepEqual(info, { type: 'block', path: '/dev/etherd/e1.1', device: 'e1.1' });
    assert.deepEqual(k.ex.commands(), ['aoe-discover', 'aoe-discover']);
    assert.deepEqual(await c.getVolumePaths({ target_shelf: 1, target_lun: 1 }), ['/dev/etherd/e1.1']);
    await c.disconnectVolume({ target_shelf: 1, target_lun: 1 }, info);
    assert.deepEqual(k.ex.commands().slice(2), ['aoe-flush e1.1']);
    assert.deepEqual(await c.getVolumePaths({ target_shelf: 1, target_lun: 1 }), []);
    await c.disconnectVolume({ target_shelf: 1, target_lun: 1 }, info);
    assert.equal(k.ex.commands().length, 3, 'a second disconnect runs nothing');
  } finally {
    k.cleanup();
  }
});

test('an already known device is revalidated, not rediscovered', async () => {
  const k = aoeKernel({ attached: true });
  try {
    const c = connectorFor('aoe', { ctx: k.ctx, timings: FAST });
    assert.equal((await c.connectVolume({ target_shelf: 1, target_lun: 1 })).path, '/dev/etherd/e1.1');
    assert.deepEqual(k.ex.commands(), ['aoe-revalidate e1.1']);
  } finally {
    k.cleanup();
  }
});

test('a device that never appears: VolumeDeviceNotFoundError after deviceScanAttempts discoveries', async () => {
  const k = aoeKernel({ discoverAfter: 99 });
  try {
    const c = new AoeConnector(k.ctx, { deviceScanAttempts: 3, timings: FAST });
    await assert.rejects(c.connectVolume({ target_shelf: 1, target_lun: 1 }), VolumeDeviceNotFoundError);
    assert.deepEqual(k.ex.commands(), ['aoe-discover', 'aoe-discover', 'aoe-discover']);
  } finally {
    k.cleanup();
  }
});

test('a failing flush raises VolumePathNotRemovedError unless ignoreErrors', async () => {
  const k = aoeKernel({ attached: true, flushFails: true });
  try {
    const c = new AoeConnector(k.ctx, { deviceScanAttempts: 1, timings: FAST });
    await assert.rejects(c.disconnectVolume({ target_shelf: 1, target_lun: 1 }, null), VolumePathNotRemovedError);
    await c.disconnectVolume({ target_shelf: 1, target_lun: 1 }, null, { ignoreErrors: true });
  } finally {
    k.cleanup();
  }
});

test('extend revalidates and reads the new size from sysfs', async () => {
  const k = aoeKernel({ attached: true });
  try {
    k.ex.on(['aoe-revalidate'], () => {
      writeFileSync(join(k.root, BLK, 'size'), '262144\n');
      return {};
    });
    const c = new AoeConnector(k.ctx, { deviceScanAttempts: 1, timings: FAST });
    assert.equal(await c.extendVolume({ target_shelf: 1, target_lun: 1 }), 134217728);
    assert.equal(c.getSearchPath(), '/dev/etherd');
  } finally {
    k.cleanup();
  }
});

test('journal: the device is recorded before aoe-discover and removed after aoe-flush; a device that never appears leaves nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brick-aoe-journal-'));
  const journal = new AttachJournal(join(dir, 'journal'));
  const k = aoeKernel();
  try {
    let recorded: Promise<boolean> | undefined;
    k.ex.on(['aoe-discover'], () => {
      recorded ??= journal.resource('aoe-device', '/dev/etherd/e1.1').then((r) => r !== undefined);
      reveal(k.root, k.stash, DEV);
      reveal(k.root, k.stash, BLK);
      return {};
    });
    const c = new AoeConnector({ ...k.ctx, journal }, { deviceScanAttempts: 2, timings: FAST });
    await c.connectVolume({ target_shelf: 1, target_lun: 1 });
    assert.equal(await recorded, true);
    await c.disconnectVolume({ target_shelf: 1, target_lun: 1 }, null);
    assert.deepEqual(await journal.resources(), []);
    assert.deepEqual(await journal.attachments(), []);
  } finally {
    k.cleanup();
  }
  const never = aoeKernel({ discoverAfter: 99 });
  try {
    await assert.rejects(new AoeConnector({ ...never.ctx, journal }, { deviceScanAttempts: 1, timings: FAST }).connectVolume({ target_shelf: 1, target_lun: 1 }));
    assert.deepEqual(await journal.resources(), []);
    assert.deepEqual(await journal.attachments(), []);
  } finally {
    never.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
