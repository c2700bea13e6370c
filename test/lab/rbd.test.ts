/**
 * Lab tests of the RBD connector against a real single-node Ceph (fixtures/ceph.ts: one
 * monitor, one manager, one BlueStore OSD on a loop device, pool `rbd`, cephx on) and the
 * kernel's rbd/libceph client: `rbd map` as cephx user `client.brick` with the keyring given as
 * connection-property contents (os-brick/cinderlib style), data through the device checked with
 * `rbd export`, extend after `rbd resize`, unmap, and a wrong key failing cleanly. The keyring
 * must never show in an argv the connector ran, nor in its log, and no temporary keyring file
 * may outlive a connect. A mapping and a dm-crypt mapping over it, left by an attach whose process
 * is gone, are closed and unmapped by `host cleanup` from their journal records. If Ceph cannot start, the test fails with the daemons' log tails.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startCeph, startUdevd, probeLeftovers, assertNoLeftovers, readDirect, run, modprobe, token, WatchingExecutor, type CephCluster } from './fixtures/index.js';
import { connectorFor } from '../../src/initiator/factory.js';
import '../../src/initiator/connectors/index.js';
import { ProcessExecutor } from '../../src/exec/executor.js';
import { createCapturingLogger } from '../../src/log.js';
import { AuthenticationError } from '../../src/errors.js';
import { LockManager } from '../../src/host/lock.js';
import { AttachJournal, attachmentKey } from '../../src/host/journal.js';
import { cleanupHost } from '../../src/host/cleanup.js';
import { createHostContext } from '../../src/host/context.js';

const MiB = 1 << 20;
let cluster: CephCluster | undefined;
let starting: Promise<CephCluster> | undefined;

/** Start Ceph once for the file (the first test pays for it); a failure carries the daemons' log tails. */
function ceph(): Promise<CephCluster> {
  starting ??= (async () => {
    await modprobe('libceph', 'rbd');
    await startUdevd();
    const t = Date.now();
    const c = await startCeph();
    cluster = c;
    process.stdout.write(`# ceph start ${Date.now() - t} ms: ${c.timings.map(([n, ms]) => `${n} ${ms} ms`).join(', ')}\n`);
    return c;
  })();
  return starting;
}

after(async () => {
  await cluster?.stop();
});

function keyOf(keyring: string): string {
  const m = /key\s*=\s*(\S+)/.exec(keyring);
  assert.ok(m, 'the keyring has a key line');
  return m[1]!;
}

/** Temporary keyring directories the connector made (`brick-rbd-*` under the temp dir). */
function tempDirs(): string[] {
  return fs.readdirSync(tmpdir()).filter((n) => n.startsWith('brick-rbd-'));
}

/** Device nodes and links under /dev that krbd/udev make: `/dev/rbdN` and anything but directories under `/dev/rbd/`. */
function rbdDevNodes(): string[] {
  const out = fs.readdirSync('/dev').filter((n) => /^rbd\d+/.test(n)).map((n) => `/dev/${n}`);
  const walk = (d: string): void => {
    let names: fs.Dirent[] = [];
    try {
      names = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of names) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(join(d, e.name));
    }
  };
  walk('/dev/rbd');
  return out;
}

function setup(c: CephCluster, image: string, keyring: string) {
  const ex = new WatchingExecutor();
  const log = createCapturingLogger('debug');
  const conn = connectorFor('RBD', { ctx: { executor: ex, logger: log.logger, locks: new LockManager('/run/brick-locks', 20_000) } });
  const props = { name: `rbd/${image}`, hosts: [c.monHost], ports: [String(c.monPort)], auth_username: 'brick', cluster_name: 'ceph', keyring, auth_enabled: true, access_mode: 'rw', volume_id: image };
  return { ex, log, conn, props };
}

test('RBD: rbd map as client.brick (keyring never in argv or logs), data, extend, unmap, nothing left', { timeout: 900_000 }, async () => {
  const c = await ceph();
  const image = `vol-${token()}`;
  await c.rbd(['create', '--size', '32', '--image-feature', 'layering', `rbd/${image}`]);
  const keyring = await c.createRbdUser('brick');
  const key = keyOf(keyring);
  const baseline = probeLeftovers();
  const dirsBefore = tempDirs();
  const { ex, log, conn, props } = setup(c, image, keyring);

  let t = Date.now();
  const info = await conn.connectVolume(props);
  const connectMs = Date.now() - t;
  assert.match(String(info.rbd_device), /^\/dev\/rbd\d+$/);
  assert.ok(info.path === `/dev/rbd/rbd/${image}` || info.path === info.rbd_device, `path ${info.path}`);
  assert.deepEqual(tempDirs(), dirsBefore, 'no temporary keyring directory outlives the map');
  // What rbd handed the kernel: the key goes through the kernel key store (key=client.brick), not as secret=<key> in the options.
  const configInfo = fs.readFileSync(`/sys/bus/rbd/devices/${String(info.rbd_device).slice('/dev/rbd'.length)}/config_info`, 'utf8').trim();
  process.stdout.write(`# krbd config_info: ${configInfo.split(key).join('<KEY>')}\n`);
  assert.ok(!configInfo.includes(key), 'the key is not in the kernel mapping options (sysfs config_info)');

  // A signature written with O_DIRECT through the device is in the image (read back with rbd export as client.admin).
  const sig = randomBytes(4096);
  const sigFile = join(c.dir, 'sig');
  fs.writeFileSync(sigFile, sig);
  await run(['dd', `if=${sigFile}`, `of=${info.path}`, 'bs=4096', `seek=${MiB / 4096}`, 'count=1', 'oflag=direct,sync', 'conv=notrunc', 'status=none'], { timeoutMs: 120_000 });
  assert.ok(readDirect(info.path, MiB).equals(sig), 'the signature reads back through the device');
  const exported = join(c.dir, 'export.img');
  await c.rbd(['export', `rbd/${image}`, exported], { timeoutMs: 300_000 });
  const back = Buffer.alloc(4096);
  const fd = fs.openSync(exported, 'r');
  fs.readSync(fd, back, 0, 4096, MiB);
  fs.closeSync(fd);
  fs.rmSync(exported, { force: true });
  assert.ok(back.equals(sig), 'the signature is in the RBD image (rbd export)');
  assert.equal(await conn.checkValidDevice(info.path), true);

  // Extend: the image grows in the cluster, the mapped device follows (krbd watches the header).
  assert.equal(await conn.extendVolume(props), 32 * MiB);
  await c.rbd(['resize', '--size', '48', `rbd/${image}`]);
  t = Date.now();
  let size = 0;
  for (let i = 0; i < 100 && size !== 48 * MiB; i++) {
    size = await conn.extendVolume(props);
    if (size !== 48 * MiB) await new Promise((r) => setTimeout(r, 200));
  }
  const extendMs = Date.now() - t;
  assert.equal(size, 48 * MiB, 'extendVolume reports the new size');
  const dev = String(info.rbd_device);
  assert.equal(Number((await run(['blockdev', '--getsize64', dev])).stdout.trim()), 48 * MiB, 'the block device grew');

  t = Date.now();
  await conn.disconnectVolume(props, info);
  const disconnectMs = Date.now() - t;
  assert.deepEqual(await conn.getVolumePaths(props), []);
  await assertNoLeftovers(baseline);
  await run(['udevadm', 'settle', '--timeout=30'], { checkExitCode: false, timeoutMs: 40_000 });
  assert.deepEqual(rbdDevNodes(), [], 'no /dev/rbd* left');
  assert.equal((await run(['rbd', 'showmapped'], { timeoutMs: 60_000 })).stdout.trim(), '', 'rbd showmapped is empty');
  assert.deepEqual(tempDirs(), dirsBefore, 'no temporary keyring left');

  // The keyring and its key never reached an argv or the log.
  const argvText = JSON.stringify(ex.argvs);
  assert.ok(ex.argvs.some((a) => a[0] === 'rbd' && a[1] === 'map'), 'rbd map ran');
  assert.ok(!argvText.includes(key), 'the key is in no argv');
  assert.ok(!log.text().includes(key), 'the key is not logged');
  process.stdout.write(`# rbd connect ${connectMs} ms, extend seen after ${extendMs} ms, disconnect ${disconnectMs} ms; argv: ${ex.argvs.map((a) => a.join(' ')).join(' ; ')}\n`);
  await c.rbd(['rm', '--no-progress', `rbd/${image}`], { timeoutMs: 300_000 });
});

test('RBD: a wrong key fails the connect with a Brick error, no mapping and no keyring file left', { timeout: 600_000 }, async () => {
  const c = await ceph();
  const image = `vol-${token()}`;
  await c.rbd(['create', '--size', '16', '--image-feature', 'layering', `rbd/${image}`]);
  await c.createRbdUser('brick');
  const wrongKey = (await run(['ceph-authtool', '--gen-print-key'])).stdout.trim();
  const keyring = `[client.brick]\n\tkey = ${wrongKey}\n`;
  const baseline = probeLeftovers();
  const dirsBefore = tempDirs();
  const { ex, log, conn, props } = setup(c, image, keyring);
  const t = Date.now();
  const err = await conn.connectVolume(props).then(
    () => undefined,
    (e: unknown) => e,
  );
  const ms = Date.now() - t;
  assert.ok(err instanceof AuthenticationError, `an AuthenticationError, got ${String(err)}`);
  assert.equal(err.field, 'keyring');
  process.stdout.write(`# wrong key: failed after ${ms} ms with ${err.code}: ${err.message}\n`);
  assert.ok(!err.message.includes(wrongKey) && !JSON.stringify(err.details ?? {}).includes(wrongKey), 'the key is not in the error');
  assert.ok(!JSON.stringify(ex.argvs).includes(wrongKey) && !log.text().includes(wrongKey), 'nor in argv or logs');
  await assertNoLeftovers(baseline);
  assert.deepEqual(rbdDevNodes(), []);
  assert.deepEqual(tempDirs(), dirsBefore, 'no temporary keyring left');
  await c.rbd(['rm', '--no-progress', `rbd/${image}`], { timeoutMs: 300_000 });
});

test('RBD: a map and a dm-crypt mapping over it, left by a killed encrypted attach, are removed by host cleanup from the journal, in order', { timeout: 600_000 }, async () => {
  const c = await ceph();
  const image = `vol-${token()}`;
  await c.rbd(['create', '--size', '16', '--image-feature', 'layering', `rbd/${image}`]);
  const baseline = probeLeftovers();
  const dir = fs.mkdtempSync('/run/brick-rbd-journal-');
  try {
    const bootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8');
    // The attaching process as the journal sees it (alive), and the same journal read after a kill -9 (its pid gone).
    const journal = (alive: boolean) =>
      new AttachJournal(join(dir, 'journal'), { readProc: (p) => (p === 'sys/kernel/random/boot_id' ? bootId : alive ? readProcFile(p) : undefined) });
    const j = journal(true);
    const identity = { targets: [`rbd/${image}`] };
    const key = attachmentKey('RBD', identity);
    const record = `/dev/rbd/rbd/${image}`;
    // What the RBD connector and the encryptor journal, then do, before the process is killed.
    await j.begin('attach', 'RBD', { name: `rbd/${image}` }, identity);
    await j.intent(key, 'rbd-device', record, { pool: 'rbd', image });
    const dev = (await c.rbd(['map', `rbd/${image}`])).stdout.trim();
    assert.match(dev, /^\/dev\/rbd\d+$/);
    const mapName = `crypt-${image}`;
    await j.intent(key, 'dm-crypt', `/dev/mapper/${mapName}`, { device: record, provider: 'plain' });
    const keyFile = join(dir, 'key');
    fs.writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
    await run(['cryptsetup', 'open', '--type', 'plain', '--cipher', 'aes-xts-plain64', '--key-size', '256', '--key-file', keyFile, dev, mapName], { timeoutMs: 120_000 });
    assert.ok(fs.existsSync(`/dev/mapper/${mapName}`));

    const ctx = createHostContext({ executor: new ProcessExecutor({ defaultTimeoutMs: 120_000 }), locks: new LockManager('/run/brick-locks', 20_000) });
    const dry = await cleanupHost(ctx, journal(false), { dryRun: true });
    const mine = (r: typeof dry) => r.leftovers.filter((l) => l.name === record || l.name === `/dev/mapper/${mapName}`).map((l) => `${l.kind} ${l.owned ? 'owned' : 'unowned'} ${l.action}`);
    assert.deepEqual(mine(dry), ['dm-crypt owned remove', 'rbd-device owned remove']);
    const r = await cleanupHost(ctx, journal(false));
    process.stdout.write(`# host cleanup: ${JSON.stringify(r.leftovers.map((l) => [l.kind, l.name, l.action]))}\n`);
    assert.deepEqual(mine(r), ['dm-crypt owned removed', 'rbd-device owned removed']);
    assert.ok(!fs.existsSync(`/dev/mapper/${mapName}`), 'the dm-crypt mapping is closed');
    assert.equal((await run(['rbd', 'showmapped'], { timeoutMs: 60_000 })).stdout.trim(), '', 'rbd showmapped is empty');
    assert.deepEqual(await journal(false).resources(), [], 'the journal forgot both records');
    await assertNoLeftovers(baseline);
    await run(['udevadm', 'settle', '--timeout=30'], { checkExitCode: false, timeoutMs: 40_000 });
    assert.deepEqual(rbdDevNodes(), [], 'no /dev/rbd* left');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  await c.rbd(['rm', '--no-progress', `rbd/${image}`], { timeoutMs: 300_000 });
});

function readProcFile(p: string): string | undefined {
  try {
    return fs.readFileSync(join('/proc', p), 'utf8');
  } catch {
    return undefined;
  }
}
