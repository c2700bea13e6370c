import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtureCopy, fixtureContext, hide, reveal } from './helpers.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { RbdConnector, listRbdMappings, parseRbdProperties } from '../../../src/initiator/connectors/rbd.js';
import { connectorFor } from '../../../src/initiator/factory.js';
import { createCapturingLogger } from '../../../src/log.js';
import '../../../src/initiator/connectors/index.js';
import { AttachJournal } from '../../../src/host/journal.js';
import { AuthenticationError, InvalidInputError, VolumePathNotRemovedError, ProcessExecutionError } from '../../../src/errors.js';

const IMAGE = 'volume-0c2f8e5a-6b1d-4f3e-9a7c-2d4e6f8a1b3c';
const KEY = 'AQBfT0RnAAAAABAAk3X5rQ2n1c9W0bV6yZ8f2Q==';
const KEYRING = `[client.cinder]\n\tkey = ${KEY}\n`;
const PROPS = { name: `volumes/${IMAGE}`, hosts: ['192.0.2.1', '2001:db8::2'], ports: ['6789', 6789], auth_username: 'cinder', cluster_name: 'ceph', keyring: KEYRING, auth_enabled: true, secret_type: 'ceph', secret_uuid: 'b0f2a6f4-1e1b-4c33-9c6e-0d7c6f1e2a3b', volume_id: '0c2f8e5a-6b1d-4f3e-9a7c-2d4e6f8a1b3c' };

/** A fake krbd: `rbd map` makes mapping 0 appear, `rbd unmap /dev/rbd0` removes it. */
function rbdHost(opts: { mapped?: boolean } = {}) {
  const fx = fixtureCopy('rbd/mapped');
  const parts = ['sys/bus/rbd/devices/0', 'dev/rbd0', `dev/rbd/volumes/${IMAGE}`];
  if (!opts.mapped) for (const p of parts) hide(fx.root, fx.stash, p);
  const seen: { conf?: string; confMode?: number; keyring?: string; keyringMode?: number; confDir?: string } = {};
  const ex = new RecordingExecutor();
  ex.on(['rbd', 'map'], (argv) => {
    const i = argv.indexOf('--conf');
    if (i > 0) {
      const confPath = argv[i + 1]!;
      seen.conf = readFileSync(confPath, 'utf8');
      seen.confMode = statSync(confPath).mode & 0o777;
      seen.confDir = confPath.slice(0, confPath.lastIndexOf('/'));
      const kp = /keyring = (\S+)/.exec(seen.conf)![1]!;
      seen.keyring = readFileSync(kp, 'utf8');
      seen.keyringMode = statSync(kp).mode & 0o777;
    }
    for (const p of parts) reveal(fx.root, fx.stash, p);
    return { stdout: '/dev/rbd0\n' };
  });
  ex.on(['rbd', 'unmap'], () => {
    for (const p of parts) hide(fx.root, fx.stash, p);
    return {};
  });
  const cap = createCapturingLogger();
  const { ctx } = fixtureContext(fx.root, ex);
  ctx.logger = cap.logger;
  return { ...fx, ctx, ex, seen, cap };
}

test('parse: name, monitors, user and cluster validated; IPv6 monitors bracketed', () => {
  const v = parseRbdProperties(PROPS);
  assert.deepEqual({ ...v, keyring: undefined }, { pool: 'volumes', image: IMAGE, monitors: ['192.0.2.1:6789', '[2001:db8::2]:6789'], user: 'cinder', clusterName: 'ceph', keyring: undefined, readOnly: false });
  const bad: [Record<string, unknown>, string][] = [
    [{}, 'name'],
    [{ name: 'justimage' }, 'name'],
    [{ name: 'pool/img@snap' }, 'name'],
    [{ name: 'p/i', hosts: ['a'], ports: [] }, 'ports'],
    [{ name: 'p/i', hosts: ['a b'], ports: [1] }, 'hosts'],
    [{ name: 'p/i', hosts: ['a'], ports: ['x'] }, 'ports[0]'],
    [{ name: 'p/i', auth_username: '--conf=/x' }, 'auth_username'],
    [{ name: 'p/i', cluster_name: '../c' }, 'cluster_name'],
    [{ name: 'p/i', keyring: 42 }, 'keyring'],
  ];
  for (const [p, field] of bad) assert.throws(() => parseRbdProperties(p), (e: unknown) => e instanceof InvalidInputError && e.field === field, JSON.stringify(p));
});

test('sysfs mappings are listed', async () => {
  const k = rbdHost({ mapped: true });
  try {
    assert.deepEqual((await listRbdMappings(k.ctx)).map((m) => [m.id, m.pool, m.image, m.device]), [['0', 'volumes', IMAGE, '/dev/rbd0'], ['1', 'images', 'image-7e1d3c5b', '/dev/rbd1']]);
  } finally {
    k.cleanup();
  }
});

test('connect maps with the keyring in a 0600 file (never argv or logs), removes it, and returns the udev link', async () => {
  const k = rbdHost();
  try {
    const c = connectorFor('RBD', { ctx: k.ctx });
    const info = await c.connectVolume(PROPS);
    assert.deepEqual(info, { type: 'block', path: `/dev/rbd/volumes/${IMAGE}`, rbd_device: '/dev/rbd0' });
    const cmd = k.ex.commands()[0]!;
    assert.match(cmd, new RegExp(`^rbd map ${IMAGE} --pool volumes --id cinder --mon_host 192\\.0\\.2\\.1:6789,\\[2001:db8::2\\]:6789 --conf /\\S+/ceph\\.conf$`));
    assert.ok(!cmd.includes(KEY) && !k.ex.shownText().includes(KEY));
    assert.equal(k.seen.confMode, 0o600);
    assert.equal(k.seen.keyringMode, 0o600);
    assert.equal(k.seen.keyring, KEYRING);
    assert.match(k.seen.conf!, /^\[global\]\nmon_host = 192\.0\.2\.1:6789,\[2001:db8::2\]:6789\nkeyring = /);
    assert.ok(!k.seen.conf!.includes(KEY));
    assert.ok(!existsSync(k.seen.confDir!), 'the temporary conf directory is gone after the map');
    await c.connectVolume(PROPS);
    assert.equal(k.ex.commands().length, 1, 'an image already mapped is not mapped again');
    assert.ok(!k.cap.text().includes(KEY), 'the key is not logged');
    assert.deepEqual(await c.getVolumePaths(PROPS), [`/dev/rbd/volumes/${IMAGE}`]);
    assert.equal(await c.extendVolume(PROPS), 1073741824);
  } finally {
    k.cleanup();
  }
});

test('the temporary keyring is removed when rbd map fails too, and the error carries no secret', async () => {
  const k = rbdHost();
  try {
    let dir = '';
    k.ex.on(['rbd', 'map'], (argv) => {
      dir = argv[argv.indexOf('--conf') + 1]!.replace(/\/[^/]+$/, '');
      return { exitCode: 110, stderr: `rbd: sysfs write failed\nrbd: map failed: (110) Connection timed out (key ${KEY})\n` };
    });
    const c = new RbdConnector(k.ctx);
    await assert.rejects(c.connectVolume(PROPS), (e: unknown) => e instanceof ProcessExecutionError && !e.message.includes(KEY) && !e.stderr.includes(KEY));
    assert.ok(dir && !existsSync(dir));
  } finally {
    k.cleanup();
  }
});

test('a key the monitors refuse (rbd map exit 13, as the lab shows) is an AuthenticationError naming keyring, with no secret and no temporary file', async () => {
  const k = rbdHost();
  try {
    let dir = '';
    k.ex.on(['rbd', 'map'], (argv) => {
      dir = argv[argv.indexOf('--conf') + 1]!.replace(/\/[^/]+$/, '');
      return { exitCode: 13, stderr: `rbd: couldn't connect to the cluster! (key ${KEY})\n` };
    });
    const c = new RbdConnector(k.ctx);
    const err = await c.connectVolume(PROPS).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof AuthenticationError, String(err));
    assert.equal(err.code, 'AUTHENTICATION_FAILED');
    assert.equal(err.field, 'keyring');
    assert.match(err.message, new RegExp(`^Ceph refused the key of client\\.cinder mapping volumes/${IMAGE} \\(rbd map exited with status 13: .*couldn't connect to the cluster!`));
    assert.ok(err.cause instanceof ProcessExecutionError);
    assert.ok(!err.message.includes(KEY) && !JSON.stringify(err.toJSON()).includes(KEY), 'no secret in the error');
    assert.ok(dir && !existsSync(dir), 'the temporary keyring is gone');
    assert.deepEqual(await c.getVolumePaths(PROPS), [], 'nothing mapped');
  } finally {
    k.cleanup();
  }
});

test('without a keyring no conf file is written; read-only access maps read-only', async () => {
  const k = rbdHost();
  try {
    const c = new RbdConnector(k.ctx);
    await c.connectVolume({ name: `volumes/${IMAGE}`, access_mode: 'ro' });
    assert.deepEqual(k.ex.commands(), [`rbd map ${IMAGE} --pool volumes --read-only`]);
  } finally {
    k.cleanup();
  }
});

test('disconnect unmaps the device found in sysfs; nothing mapped is success; failures honour ignoreErrors', async () => {
  const k = rbdHost({ mapped: true });
  try {
    const c = new RbdConnector(k.ctx);
    await c.disconnectVolume(PROPS, null);
    assert.deepEqual(k.ex.commands(), ['rbd unmap /dev/rbd0']);
    assert.deepEqual(await c.getVolumePaths(PROPS), []);
    await c.disconnectVolume(PROPS, null);
    assert.equal(k.ex.commands().length, 1);
    await c.connectVolume(PROPS);
    k.ex.on(['rbd', 'unmap'], { exitCode: 16, stderr: 'rbd: sysfs write failed\nrbd: unmap failed: (16) Device or resource busy\n' });
    await assert.rejects(c.disconnectVolume(PROPS, null), VolumePathNotRemovedError);
    await c.disconnectVolume(PROPS, null, { ignoreErrors: true });
    await assert.rejects(c.disconnectVolume(PROPS, null, { force: true }), VolumePathNotRemovedError);
    assert.equal(k.ex.commands().at(-1), 'rbd unmap -o force /dev/rbd0');
  } finally {
    k.cleanup();
  }
});

test('journal: the mapping is recorded (pool, image, then /dev/rbdN) before rbd map and removed after rbd unmap', async () => {
  const k = rbdHost();
  const dir = mkdtempSync(join(tmpdir(), 'brick-rbd-journal-'));
  try {
    const journal = new AttachJournal(join(dir, 'journal'));
    const name = `/dev/rbd/volumes/${IMAGE}`;
    let before: Promise<boolean> | undefined;
    const spy = { rootHelper: k.ex.rootHelper, run: (argv: readonly string[], o?: Parameters<typeof k.ex.run>[1]) => {
      if (argv[0] === 'rbd' && argv[1] === 'map') before = journal.resource('rbd-device', name).then((r) => r !== undefined);
      return k.ex.run(argv, o);
    } };
    const c = new RbdConnector({ ...k.ctx, executor: spy, journal });
    await c.connectVolume(PROPS);
    assert.equal(await before, true);
    assert.deepEqual((await journal.resource('rbd-device', name))?.attrs, { pool: 'volumes', image: IMAGE, device: '/dev/rbd0' });
    await c.disconnectVolume(PROPS, null);
    assert.deepEqual(await journal.resources(), []);
    assert.deepEqual(await journal.attachments(), []);
  } finally {
    k.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
