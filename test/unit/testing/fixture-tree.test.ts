import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFixtureTree, fixtureContext } from '../../../src/testing/fixture-tree.js';
import { hostPathExists } from '../../../src/host/context.js';
import { InvalidInputError } from '../../../src/errors.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';

test('a fixture tree holds files, links and directories at host paths, and the kernel-like changes show through a context', async () => {
  const tree = createFixtureTree({
    '/sys/class/scsi_host/host2/proc_name': 'iscsi_tcp\n',
    '/dev/disk/by-id/wwn-0x5': { link: '../../sdb' },
    '/sys/block/sdb/holders': { dir: true },
  });
  try {
    assert.equal(readFileSync(join(tree.root, 'sys/class/scsi_host/host2/proc_name'), 'utf8'), 'iscsi_tcp\n');
    assert.equal(readlinkSync(join(tree.root, 'dev/disk/by-id/wwn-0x5')), '../../sdb');
    const { ctx, executor } = fixtureContext(tree.root);
    assert.ok(executor instanceof RecordingExecutor);
    assert.equal(ctx.hostRoot, tree.root);
    assert.equal(await hostPathExists(ctx, '/sys/block/sdb/holders'), true);
    tree.remove('/sys/block/sdb');
    assert.equal(await hostPathExists(ctx, '/sys/block/sdb/holders'), false);
    tree.write({ '/sys/class/scsi_host/host2/proc_name': 'tcp\n' });
    assert.equal(readFileSync(join(tree.root, 'sys/class/scsi_host/host2/proc_name'), 'utf8'), 'tcp\n');
  } finally {
    tree.cleanup();
  }
  assert.equal(existsSync(tree.root), false);
});

test('a fixture tree refuses a path that is relative or climbs out, naming the field', () => {
  const tree = createFixtureTree();
  try {
    assert.throws(() => tree.write({ 'sys/x': '1\n' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'path');
    assert.throws(() => tree.write({ '/sys/../../etc/x': '1\n' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'path');
  } finally {
    tree.cleanup();
  }
});

test('a fixture tree copied from captured files leaves out the .gitkeep markers of empty directories', () => {
  const src = mkdtempSync(join(tmpdir(), 'brick-fx-src-'));
  try {
    mkdirSync(join(src, 'sys/block/sda/holders'), { recursive: true });
    writeFileSync(join(src, 'sys/block/sda/holders/.gitkeep'), '');
    writeFileSync(join(src, 'sys/block/sda/size'), '2048\n');
    const tree = createFixtureTree({}, { copyFrom: src });
    try {
      assert.equal(existsSync(join(tree.root, 'sys/block/sda/holders')), true);
      assert.equal(existsSync(join(tree.root, 'sys/block/sda/holders/.gitkeep')), false);
      assert.equal(readFileSync(join(tree.root, 'sys/block/sda/size'), 'utf8'), '2048\n');
    } finally {
      tree.cleanup();
    }
  } finally {
    rmSync(src, { recursive: true, force: true });
  }
});
