/**
 * `cleanupHost` for krbd and dm-crypt mappings (the RBD connector's and the encryptors' journal
 * records) over a fixture sysfs tree: a dm-crypt mapping over an RBD device left by a killed
 * encrypted attach is closed, then the image unmapped, in that order; what a connection claims
 * or a process holds stays; a mapping that changed under its record is not touched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cleanupHost, type HostCleanupResult } from '../../../src/host/cleanup.js';
import { AttachJournal, attachmentKey } from '../../../src/host/journal.js';
import { createHostContext, type HostContext } from '../../../src/host/context.js';
import { LockManager } from '../../../src/host/lock.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';

const BOOT = '11111111-2222-4333-8444-555555555555';

interface Env {
  root: string;
  ctx: HostContext;
  ex: RecordingExecutor;
  journal(): AttachJournal;
  put(path: string, text: string): void;
  done(): void;
}

/** A host root with one krbd mapping (`rbd0` of `volumes/vol-1`) and a dm-crypt mapping `crypt-vol-1` (`dm-0`) over it. */
function env(): Env {
  const root = mkdtempSync(join(tmpdir(), 'brick-cleanup-rbd-'));
  const put = (path: string, text: string) => {
    fs.mkdirSync(dirname(join(root, path)), { recursive: true });
    fs.writeFileSync(join(root, path), text);
  };
  const mkdir = (path: string) => fs.mkdirSync(join(root, path), { recursive: true });
  put('/sys/bus/rbd/devices/0/pool', 'volumes\n');
  put('/sys/bus/rbd/devices/0/name', 'vol-1\n');
  put('/sys/bus/rbd/devices/0/current_snap', '-\n');
  put('/sys/block/rbd0/dev', '251:0\n');
  mkdir('/sys/block/rbd0/holders/dm-0');
  put('/sys/block/dm-0/dev', '254:0\n');
  put('/sys/block/dm-0/dm/name', 'crypt-vol-1\n');
  put('/sys/block/dm-0/dm/uuid', 'CRYPT-LUKS2-0123456789abcdef0123456789abcdef-crypt-vol-1\n');
  mkdir('/sys/block/dm-0/slaves/rbd0');
  mkdir('/sys/block/dm-0/holders');
  put('/proc/self/mountinfo', '');
  put('/proc/swaps', 'Filename Type Size Used Priority\n');
  const ex = new RecordingExecutor();
  ex.on(['iscsiadm', '-m', 'node'], { exitCode: 21 });
  ex.on(['dmsetup', 'info'], () => ({ stdout: fs.existsSync(join(root, '/sys/block/dm-0')) ? 'crypt-vol-1|0\n' : '' }));
  ex.on((a) => a[0] === 'cryptsetup' && a[1] === 'close', (a) => {
    assert.ok(!fs.existsSync(join(root, '/sys/block/dm-0/holders/x')), 'nothing stacked on the crypt mapping');
    rmSync(join(root, '/sys/block/dm-0'), { recursive: true, force: true });
    rmSync(join(root, '/sys/block/rbd0/holders/dm-0'), { recursive: true, force: true });
    return a[2] === 'crypt-vol-1' ? {} : { exitCode: 4 };
  });
  ex.on((a) => a[0] === 'rbd' && a[1] === 'unmap', () => {
    assert.ok(!fs.existsSync(join(root, '/sys/block/dm-0')), 'the crypt mapping is closed before the image is unmapped');
    rmSync(join(root, '/sys/bus/rbd/devices/0'), { recursive: true, force: true });
    rmSync(join(root, '/sys/block/rbd0'), { recursive: true, force: true });
    return {};
  });
  const dir = mkdtempSync(join(tmpdir(), 'brick-cleanup-rbd-state-'));
  const ctx = createHostContext({ executor: ex, hostRoot: root, locks: new LockManager(join(dir, 'locks'), 5_000) });
  return {
    root,
    ctx,
    ex,
    put,
    journal: () => new AttachJournal(join(dir, 'journal'), { privateDirectory: false, readProc: (p) => (p === 'sys/kernel/random/boot_id' ? `${BOOT}\n` : undefined) }),
    done: () => {
      rmSync(root, { recursive: true, force: true });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Journal an RBD attach of `volumes/vol-1` and an encryptor open over it, as the connector and the encryptor do, by a process that is gone (kill -9). */
async function killedEncryptedAttach(j: AttachJournal): Promise<string> {
  const identity = { targets: ['volumes/vol-1'] };
  const key = attachmentKey('RBD', identity);
  await j.begin('attach', 'RBD', { name: 'volumes/vol-1', keyring: '[client.brick]\n\tkey = c2VjcmV0\n' }, identity);
  await j.intent(key, 'rbd-device', '/dev/rbd/volumes/vol-1', { pool: 'volumes', image: 'vol-1' });
  await j.intent(key, 'rbd-device', '/dev/rbd/volumes/vol-1', { device: '/dev/rbd0' });
  await j.intent(key, 'dm-crypt', '/dev/mapper/crypt-vol-1', { device: '/dev/rbd/volumes/vol-1', provider: 'luks2' });
  return key;
}

const summary = (r: HostCleanupResult) => r.leftovers.map((l) => `${l.kind} ${l.name} ${l.owned ? 'owned' : 'unowned'} ${l.action}`);
const mutating = (ex: RecordingExecutor) => ex.commands().filter((c) => !/^(iscsiadm -m node|dmsetup info)/.test(c));

test('a killed encrypted RBD attach: the dm-crypt mapping is closed, then the image unmapped, and the journal forgets both', async () => {
  const e = env();
  try {
    await killedEncryptedAttach(e.journal());
    const dry = await cleanupHost(e.ctx, e.journal(), { dryRun: true });
    assert.deepEqual(summary(dry), ['dm-crypt /dev/mapper/crypt-vol-1 owned remove', 'rbd-device /dev/rbd/volumes/vol-1 owned remove']);
    assert.deepEqual(mutating(e.ex), [], 'a dry run changes nothing');
    const r = await cleanupHost(e.ctx, e.journal());
    assert.deepEqual(summary(r), ['dm-crypt /dev/mapper/crypt-vol-1 owned removed', 'rbd-device /dev/rbd/volumes/vol-1 owned removed']);
    assert.deepEqual(mutating(e.ex), ['cryptsetup close crypt-vol-1', 'rbd unmap /dev/rbd0']);
    assert.deepEqual(await e.journal().resources(), []);
    assert.deepEqual(await e.journal().attachments(), []);
  } finally {
    e.done();
  }
});

test('a mapping a connection claims stays, and the image under it stays with it', async () => {
  const e = env();
  try {
    await killedEncryptedAttach(e.journal());
    fs.mkdirSync(join(e.root, '/dev/mapper'), { recursive: true });
    fs.symlinkSync('../dm-0', join(e.root, '/dev/mapper/crypt-vol-1'));
    e.put('/dev/dm-0', '');
    const r = await cleanupHost(e.ctx, e.journal(), { claims: { devicePaths: ['/dev/mapper/crypt-vol-1'] } });
    assert.deepEqual(summary(r), []);
    assert.deepEqual(mutating(e.ex), []);
    const byTarget = await cleanupHost(e.ctx, e.journal(), { claims: { targets: ['volumes/vol-1'] } });
    assert.deepEqual(summary(byTarget), [], 'an image a connection record names keeps the mapping over it too');
    assert.deepEqual(mutating(e.ex), []);
  } finally {
    e.done();
  }
});

test('an open crypt mapping is skipped, and so is the image it holds; a mapping that changed under its record is declined', async () => {
  const e = env();
  try {
    await killedEncryptedAttach(e.journal());
    e.ex.on(['dmsetup', 'info'], { stdout: 'crypt-vol-1|1\n' });
    const open = await cleanupHost(e.ctx, e.journal());
    assert.deepEqual(summary(open), ['dm-crypt /dev/mapper/crypt-vol-1 owned skip', 'rbd-device /dev/rbd/volumes/vol-1 owned skip']);
    assert.match(open.leftovers[0]!.reason, /open \(device-mapper open count 1\)/);
    assert.match(open.leftovers[1]!.reason, /held by \/dev\/dm-0/);
    assert.deepEqual(mutating(e.ex), []);
  } finally {
    e.done();
  }
  const f = env();
  try {
    await killedEncryptedAttach(f.journal());
    // Between the survey and the removal device 0 came to map another image: never unmapped.
    f.ex.on((a) => a[0] === 'cryptsetup' && a[1] === 'close', () => {
      rmSync(join(f.root, '/sys/block/dm-0'), { recursive: true, force: true });
      rmSync(join(f.root, '/sys/block/rbd0/holders/dm-0'), { recursive: true, force: true });
      f.put('/sys/bus/rbd/devices/0/name', 'someone-else\n');
      return {};
    });
    const r = await cleanupHost(f.ctx, f.journal());
    assert.deepEqual(summary(r), ['dm-crypt /dev/mapper/crypt-vol-1 owned removed', 'rbd-device /dev/rbd/volumes/vol-1 owned skip']);
    assert.match(r.leftovers[1]!.reason, /now maps volumes\/someone-else/);
    assert.ok(!mutating(f.ex).some((c) => c.startsWith('rbd unmap')), 'no unmap of a device that maps another image');
  } finally {
    f.done();
  }
});

test('records of mappings that are gone are pruned, not listed', async () => {
  const e = env();
  try {
    await killedEncryptedAttach(e.journal());
    rmSync(join(e.root, '/sys/block/dm-0'), { recursive: true, force: true });
    rmSync(join(e.root, '/sys/bus/rbd/devices/0'), { recursive: true, force: true });
    const r = await cleanupHost(e.ctx, e.journal());
    assert.deepEqual(summary(r), []);
    assert.equal(r.pruned, 3, 'two resource records and the attachment record');
    assert.deepEqual(await e.journal().resources(), []);
  } finally {
    e.done();
  }
});
