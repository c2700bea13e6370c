import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildMapTable, isMultipathdRunning } from '../../../src/host/multipath.js';
import { createHostContext } from '../../../src/host/context.js';

/** A fixture root with block devices `sdX` (dev number, size in sectors, ALUA state, holders). */
function fixture(disks: { name: string; dev: string; sectors: number; state?: string; holders?: string[] }[]): { root: string; done(): void } {
  const root = fs.mkdtempSync(join(tmpdir(), 'brick-mpdirect-'));
  for (const d of disks) {
    const b = join(root, 'sys/block', d.name);
    fs.mkdirSync(join(b, 'holders'), { recursive: true });
    fs.mkdirSync(join(b, 'device'), { recursive: true });
    fs.writeFileSync(join(b, 'dev'), `${d.dev}\n`);
    fs.writeFileSync(join(b, 'size'), `${d.sectors}\n`);
    if (d.state) fs.writeFileSync(join(b, 'device/access_state'), `${d.state}\n`);
    for (const h of d.holders ?? []) fs.mkdirSync(join(b, 'holders', h));
  }
  return { root, done: () => fs.rmSync(root, { recursive: true, force: true }) };
}

test('buildMapTable: one service-time group over every path without ALUA', async () => {
  const f = fixture([
    { name: 'sdb', dev: '8:16', sectors: 2048 },
    { name: 'sdc', dev: '8:32', sectors: 2048 },
  ]);
  try {
    const ctx = createHostContext({ hostRoot: f.root });
    assert.deepEqual(await buildMapTable(ctx, ['sdb', 'sdc']), { table: '0 2048 multipath 0 0 1 1 service-time 0 2 2 8:16 1 1 8:32 1 1' });
  } finally {
    f.done();
  }
});

test('buildMapTable: ALUA groups optimized paths first, non-optimized next, standby left out', async () => {
  const f = fixture([
    { name: 'sdb', dev: '8:16', sectors: 4096, state: 'active/non-optimized' },
    { name: 'sdc', dev: '8:32', sectors: 4096, state: 'standby' },
    { name: 'sdd', dev: '8:48', sectors: 4096, state: 'active/optimized' },
  ]);
  try {
    const ctx = createHostContext({ hostRoot: f.root });
    assert.deepEqual(await buildMapTable(ctx, ['sdb', 'sdc', 'sdd']), { table: '0 4096 multipath 0 0 2 1 service-time 0 1 2 8:48 1 1 service-time 0 1 2 8:16 1 1' });
    assert.deepEqual(await buildMapTable(ctx, ['sdc']), { refused: 'no active path' });
  } finally {
    f.done();
  }
});

test('buildMapTable refuses: no paths, unknown or different sizes, a path already held', async () => {
  const f = fixture([
    { name: 'sdb', dev: '8:16', sectors: 2048 },
    { name: 'sdc', dev: '8:32', sectors: 4096 },
    { name: 'sdd', dev: '8:48', sectors: 0 },
    { name: 'sde', dev: '8:64', sectors: 2048, holders: ['dm-3'] },
  ]);
  try {
    const ctx = createHostContext({ hostRoot: f.root });
    assert.deepEqual(await buildMapTable(ctx, []), { refused: 'no paths' });
    assert.deepEqual(await buildMapTable(ctx, ['sdb', 'sdc']), { refused: 'sizes differ' });
    assert.deepEqual(await buildMapTable(ctx, ['sdd']), { refused: 'size unknown' });
    assert.deepEqual(await buildMapTable(ctx, ['sdx']), { refused: 'size unknown' });
    assert.deepEqual(await buildMapTable(ctx, ['sdb', 'sde']), { refused: 'path in use' });
  } finally {
    f.done();
  }
});

test('isMultipathdRunning: pid file naming a live multipathd, else a /proc scan', async () => {
  const root = fs.mkdtempSync(join(tmpdir(), 'brick-mpd-'));
  try {
    const ctx = createHostContext({ hostRoot: root });
    fs.mkdirSync(join(root, 'proc/77'), { recursive: true });
    fs.writeFileSync(join(root, 'proc/77/comm'), 'bash\n');
    assert.equal(await isMultipathdRunning(ctx), false);
    fs.mkdirSync(join(root, 'proc/99'), { recursive: true });
    fs.writeFileSync(join(root, 'proc/99/comm'), 'multipathd\n');
    assert.equal(await isMultipathdRunning(ctx), true, 'found by /proc scan without a pid file');
    fs.mkdirSync(join(root, 'run'), { recursive: true });
    fs.writeFileSync(join(root, 'run/multipathd.pid'), '77\n');
    assert.equal(await isMultipathdRunning(ctx), false, 'a stale pid file naming another process');
    fs.writeFileSync(join(root, 'run/multipathd.pid'), '99\n');
    assert.equal(await isMultipathdRunning(ctx), true);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
