import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { createHostContext } from '../../../src/host/context.js';
import { LockManager } from '../../../src/host/lock.js';
import { deleteNode, parsePortal } from '../../../src/host/iscsiadm.js';
import { delay } from '../../../src/host/retry.js';

test('node record deletes of two portals of one target never overlap (iscsiadm fails them with status 6)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-nodedb-'));
  try {
    const ex = new RecordingExecutor();
    let inFlight = 0;
    let maxInFlight = 0;
    ex.on(/-o delete$/, async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await delay(30);
      const overlapped = inFlight > 1;
      inFlight--;
      return overlapped ? { exitCode: 6, stderr: 'iscsiadm: iface iter could not stat /etc/iscsi/nodes/x/127.0.0.2,3260.' } : {};
    });
    const ctx = createHostContext({ executor: ex, locks: new LockManager(dir) });
    const iqn = 'iqn.2010-10.org.openstack:volume-1';
    await Promise.all(['127.0.0.1:3260', '127.0.0.2:3260', '127.0.0.3:3260'].map((p) => deleteNode(ctx, iqn, parsePortal(p))));
    assert.equal(maxInFlight, 1);
    assert.equal(ex.calls.length, 3);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a database race with another program (status 6) is retried; other failures are not', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-nodedb-'));
  try {
    const ex = new RecordingExecutor();
    ex.on(/-o delete$/, {}).on(/-o delete$/, { exitCode: 6, stderr: 'could not stat' }, 1);
    const ctx = createHostContext({ executor: ex, locks: new LockManager(dir) });
    await deleteNode(ctx, 'iqn.x:t', parsePortal('127.0.0.1'));
    assert.equal(ex.calls.length, 2);
    const ex2 = new RecordingExecutor().on(/-o delete$/, { exitCode: 7, stderr: 'other failure' });
    await assert.rejects(deleteNode(createHostContext({ executor: ex2, locks: new LockManager(dir) }), 'iqn.x:t', parsePortal('127.0.0.1')), /status 7/);
    assert.equal(ex2.calls.length, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
