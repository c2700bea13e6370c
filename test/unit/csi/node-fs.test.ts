/**
 * Unit tests for the node plugin's device comparison: NodeStageVolume called again must accept
 * a staging mount whose source names the attached device by another path (a multipath map is
 * `/dev/mapper/<wwid>` in the mount table and `/dev/dm-N` from the connector), found by csi-sanity
 * in the lab ("Node Service should be idempotent" on LIO iSCSI with multipath).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sameDevice } from '../../../src/csi/node-fs.js';
import { createHostContext } from '../../../src/host/context.js';

test('sameDevice: a link to a device node is the same device; different devices and plain files are not', async () => {
  const ctx = createHostContext();
  const dir = await mkdtemp(join(tmpdir(), 'brick-samedev-'));
  try {
    await symlink('/dev/null', join(dir, 'alias'));
    await writeFile(join(dir, 'a'), 'x');
    await writeFile(join(dir, 'b'), 'x');
    assert.equal(await sameDevice(ctx, '/dev/null', join(dir, 'alias')), true, 'another name of the same device node');
    assert.equal(await sameDevice(ctx, '/dev/null', '/dev/zero'), false, 'another device');
    assert.equal(await sameDevice(ctx, join(dir, 'a'), join(dir, 'b')), false, 'two plain files are not devices');
    assert.equal(await sameDevice(ctx, join(dir, 'a'), join(dir, 'a')), true, 'the same path');
    assert.equal(await sameDevice(ctx, '/dev/null', join(dir, 'missing')), false, 'a missing path');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
