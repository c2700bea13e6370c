import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flushMap, removeMap } from '../../../src/host/multipath.js';
import { createHostContext } from '../../../src/host/context.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { ProcessExecutionError } from '../../../src/errors.js';

const WWID = '36001405a1b2c3d4e5f60718293a4b5c6';

/**
 * A host root with map dm-0 (name = WWID) over sdb and sdc, optionally held by `holders`
 * (partition maps), and an executor playing dm: an open map refuses `dmsetup remove` (EBUSY)
 * and `multipath -f` ("map in use"); `multipath -f` also removes holders, as it does with kpartx.
 */
function fixture(opts: { holders?: string[]; open?: boolean; remakes?: number; multipathdKnows?: boolean } = {}) {
  const root = fs.mkdtempSync(join(tmpdir(), 'brick-mpflush-'));
  let minor = 0;
  let dm = '';
  const make = (holders: string[] = []) => {
    dm = join(root, `sys/block/dm-${minor++}`);
    fs.mkdirSync(join(dm, 'dm'), { recursive: true });
    fs.writeFileSync(join(dm, 'dm/name'), `${WWID}\n`);
    fs.writeFileSync(join(dm, 'dm/uuid'), `mpath-${WWID}\n`);
    fs.mkdirSync(join(dm, 'slaves/sdb'), { recursive: true });
    fs.mkdirSync(join(dm, 'slaves/sdc'), { recursive: true });
    fs.mkdirSync(join(dm, 'holders'), { recursive: true });
    for (const h of holders) fs.mkdirSync(join(dm, 'holders', h));
  };
  make(opts.holders);
  // remakes: how many times "multipathd" makes the map again (new minor) right after a removal
  const state = { open: opts.open === true, remakes: opts.remakes ?? 0 };
  const ex = new RecordingExecutor();
  const gone = () => {
    fs.rmSync(dm, { recursive: true, force: true });
    if (state.remakes > 0) {
      state.remakes--;
      make();
    }
  };
  const busy = { exitCode: 1, stderr: `device-mapper: remove ioctl on ${WWID}  failed: Device or resource busy\nCommand failed.\n` };
  ex.on(['dmsetup', 'remove', '--noudevsync'], () => {
    if (state.open || fs.readdirSync(join(dm, 'holders')).length > 0) return busy;
    gone();
    return {};
  });
  ex.on(['dmsetup', 'remove', '--force', '--noudevsync'], () => {
    gone();
    return {};
  });
  ex.on(['multipath', '-f'], () => {
    if (state.open) return { exitCode: 1, stderr: `${WWID}: map in use\n` };
    gone();
    return {};
  });
  ex.on(['multipathd', 'del', 'map'], () => {
    if (!opts.multipathdKnows) return { exitCode: 1, stdout: 'fail\n' };
    gone();
    return { stdout: 'ok\n' };
  });
  const ctx = createHostContext({ hostRoot: root, executor: ex });
  return { ctx, ex, state, exists: () => fs.existsSync(dm), done: () => fs.rmSync(root, { recursive: true, force: true }) };
}

test('flushMap: an unheld map goes with one dmsetup remove --noudevsync, no multipath -f', async () => {
  const f = fixture();
  try {
    await flushMap(f.ctx, WWID);
    assert.deepEqual(f.ex.commands(), [`dmsetup remove --noudevsync ${WWID}`]);
    assert.equal(f.exists(), false);
    await flushMap(f.ctx, WWID);
    assert.equal(f.ex.commands().length, 1, 'a map already gone runs nothing');
  } finally {
    f.done();
  }
});

test('flushMap: a map with holders (partition maps) goes straight to multipath -f', async () => {
  const f = fixture({ holders: ['dm-1'] });
  try {
    await flushMap(f.ctx, '/dev/dm-0');
    assert.deepEqual(f.ex.commands(), [`multipath -f ${WWID}`]);
    assert.equal(f.exists(), false);
  } finally {
    f.done();
  }
});

test('flushMap: an open map refused by dmsetup falls back to multipath -f, retried, and raises when it stays open', async () => {
  const f = fixture({ open: true });
  try {
    await assert.rejects(flushMap(f.ctx, WWID, { attempts: 2, delayMs: 1 }), ProcessExecutionError);
    assert.deepEqual(f.ex.commands(), [`dmsetup remove --noudevsync ${WWID}`, `multipath -f ${WWID}`, `multipath -f ${WWID}`]);
    assert.equal(f.exists(), true);
    f.state.open = false;
    await flushMap(f.ctx, WWID, { attempts: 2, delayMs: 1 });
    assert.equal(f.exists(), false);
  } finally {
    f.done();
  }
});

test('flushMap: a map multipathd makes again from a queued path event is removed again with dmsetup, bounded', async () => {
  const f = fixture({ remakes: 1 });
  try {
    await flushMap(f.ctx, WWID);
    assert.deepEqual(f.ex.commands(), [`dmsetup remove --noudevsync ${WWID}`, `dmsetup remove --noudevsync ${WWID}`]);
    assert.equal(f.exists(), false);
  } finally {
    f.done();
  }
  const g = fixture({ remakes: 10 });
  try {
    await flushMap(g.ctx, WWID, { attempts: 1 });
    const cmds = g.ex.commands();
    assert.equal(cmds.filter((c) => c.startsWith('dmsetup remove')).length, 3, 'three dmsetup removals at most');
    assert.equal(cmds.at(-1), `multipath -f ${WWID}`, 'then multipath -f');
  } finally {
    g.done();
  }
});

test('removeMap: multipathd refusing the map goes straight to dmsetup remove --force (no wait); multipathd removing it needs nothing more', async () => {
  const f = fixture({ open: true });
  try {
    const t0 = Date.now();
    await removeMap(f.ctx, WWID);
    assert.ok(Date.now() - t0 < 2_000, `removed in ${Date.now() - t0} ms`);
    assert.deepEqual(f.ex.commands(), [`multipathd del map ${WWID}`, `dmsetup remove --force --noudevsync ${WWID}`]);
    assert.equal(f.exists(), false);
  } finally {
    f.done();
  }
  const g = fixture({ multipathdKnows: true });
  try {
    await removeMap(g.ctx, WWID);
    assert.deepEqual(g.ex.commands(), [`multipathd del map ${WWID}`]);
    assert.equal(g.exists(), false);
  } finally {
    g.done();
  }
});
