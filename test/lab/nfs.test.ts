/**
 * Lab tests of the NFS connector against the kernel NFS server in the lab VM: the share is
 * mounted under <mount_point_base>/<md5(share)>, the volume file is reachable and carries data
 * both ways, a second volume shares the mount, and the last disconnect unmounts it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { assertNoLeftovers, probeLeftovers } from './fixtures/index.js';
import { createNfsExport } from './fixtures/nfs.js';
import { connectorFor } from '../../src/initiator/factory.js';
import '../../src/initiator/connectors/index.js';
import { ProcessExecutor } from '../../src/exec/executor.js';
import { createHostContext } from '../../src/host/context.js';
import { LockManager } from '../../src/host/lock.js';
import { VolumeDeviceNotFoundError } from '../../src/errors.js';

export { createNfsExport } from './fixtures/nfs.js';

// A short lock bound: LockManager keeps a timer of the bound alive after each lock, which would hold the process open.
const host = createHostContext({ executor: new ProcessExecutor({ defaultTimeoutMs: 120_000 }), locks: new LockManager('/run/brick-locks', 20_000) });
const BASE = '/run/brick-lab-nfs';

test('NFS: mount under the md5 mount point, data both ways, shared mount, unmount on last disconnect', async () => {
  const ex = await createNfsExport({ 'volume-a': 8 << 20, 'volume-b': 8 << 20 });
  // after the server is up: its own nfsd mount is not a leftover of the connector
  const baseline = probeLeftovers();
  try {
    const c = connectorFor('NFS', { ctx: host, mountPointBase: BASE });
    const mp = join(BASE, createHash('md5').update(ex.share).digest('hex'));
    const a = await c.connectVolume({ export: ex.share, name: 'volume-a' });
    assert.deepEqual(a, { type: 'file', path: join(mp, 'volume-a') });
    assert.ok(fs.readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mp && /^nfs4? /.test(l.split(' ')[2] + ' ')), 'the share is mounted at the hashed mount point');
    const data = randomBytes(4096);
    const fd = fs.openSync(a.path, 'r+');
    fs.writeSync(fd, data, 0, 4096, 4096);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    const back = Buffer.alloc(4096);
    const sf = fs.openSync(join(ex.dir, 'volume-a'), 'r');
    fs.readSync(sf, back, 0, 4096, 4096);
    fs.closeSync(sf);
    assert.ok(back.equals(data), 'bytes written through the mount are in the exported file');
    assert.equal(await c.extendVolume({ export: ex.share, name: 'volume-a' }), 8 << 20);
    const b = await c.connectVolume({ export: ex.share, name: 'volume-b' });
    assert.equal(b.path, join(mp, 'volume-b'));
    await c.disconnectVolume({ export: ex.share, name: 'volume-a' }, a);
    assert.ok(fs.existsSync(b.path), 'still mounted for volume-b');
    await c.disconnectVolume({ export: ex.share, name: 'volume-b' }, b);
    assert.ok(!fs.existsSync(mp), 'mount point removed after the last disconnect');
    await assertNoLeftovers(baseline);
  } finally {
    await ex.destroy();
  }
});

test('NFS: a missing volume file fails with the share unmounted again', async () => {
  const ex = await createNfsExport({ 'volume-a': 1 << 20 });
  const baseline = probeLeftovers();
  try {
    const c = connectorFor('NFS', { ctx: host, mountPointBase: BASE });
    await assert.rejects(c.connectVolume({ export: ex.share, name: 'volume-missing' }), (e: unknown) => e instanceof VolumeDeviceNotFoundError && e.field === 'name');
    await assertNoLeftovers(baseline);
  } finally {
    await ex.destroy();
  }
});
