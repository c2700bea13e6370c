import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, fixtureCopy, fixtureContext } from './helpers.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { RemoteFsConnector, parseMountFlags, parseRemoteFsProperties } from '../../../src/initiator/connectors/remotefs.js';
import { mountPointFor, nfsMountAttempts, parseProcMounts, shareHash } from '../../../src/host/mount.js';
import { connectorFor } from '../../../src/initiator/factory.js';
import '../../../src/initiator/connectors/index.js';
import { AttachJournal } from '../../../src/host/journal.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { InvalidInputError, VolumeDeviceNotFoundError, VolumePathNotRemovedError } from '../../../src/errors.js';

const SHARE = '192.0.2.10:/srv/cinder';
const VOL = 'volume-0c2f8e5a-6b1d-4f3e-9a7c-2d4e6f8a1b3c';
const OTHER = 'volume-7e1d3c5b-9f2a-4b6c-8d0e-1f3a5c7e9b2d';
const BASE = '/var/lib/brick/mnt';

/** A fake mount(8)/umount(8): mounting copies the export's files into the mount point and adds a /proc/mounts line. */
function nfsHost(opts: { refuse?: RegExp; busy?: boolean } = {}) {
  const fx = fixtureCopy('nfs/client');
  const mounts = join(fx.root, 'proc/mounts');
  const ex = new RecordingExecutor();
  ex.on(['mount'], (argv) => {
    if (opts.refuse && opts.refuse.test(argv.join(' '))) return { exitCode: 32, stderr: 'mount.nfs: Protocol not supported\n' };
    const target = argv[argv.length - 1]!;
    const source = argv[argv.length - 2]!;
    cpSync(join(FIXTURES, 'nfs/export'), join(fx.root, target), { recursive: true });
    const o = argv.includes('-o') ? argv[argv.indexOf('-o') + 1] : 'rw';
    appendFileSync(mounts, `${source} ${target} nfs4 ${o},relatime,addr=192.0.2.10 0 0\n`);
    return {};
  });
  ex.on(['umount'], (argv) => {
    const target = argv[argv.length - 1]!;
    if (opts.busy && !argv.includes('-l')) return { exitCode: 32, stderr: `umount: ${target}: target is busy.\n` };
    writeFileSync(mounts, readFileSync(mounts, 'utf8').split('\n').filter((l) => !l.includes(` ${target} `)).join('\n'));
    for (const f of readdirSync(join(fx.root, target))) rmSync(join(fx.root, target, f), { recursive: true });
    return {};
  });
  const { ctx } = fixtureContext(fx.root, ex);
  return { ...fx, ctx, ex, mounts };
}

test('mount helpers: /proc/mounts parsing, md5 mount points (os-brick compatible), NFS version ladder', () => {
  const m = parseProcMounts('srv:/a\\040b /mnt/x\\040y nfs4 rw,vers=4.2 0 0\n# comment\n\n');
  assert.deepEqual(m, [{ source: 'srv:/a b', target: '/mnt/x y', fstype: 'nfs4', options: ['rw', 'vers=4.2'] }]);
  // md5('192.0.2.10:/srv/cinder') as os-brick's RemoteFsClient computes it
  // md5 hex of the share string, as `printf %s SHARE | md5sum` prints it
  assert.equal(shareHash(SHARE), 'c88f4f57d7ad56ed59b0c22b51ef26c3');
  assert.equal(mountPointFor('/mnt/base', '127.0.0.1:/srv/nfs'), '/mnt/base/d5c077640592c9381d280865cf41ecf2');
  assert.deepEqual(nfsMountAttempts(undefined).map((a) => a.options), ['vers=4,minorversion=2', 'vers=4,minorversion=1', undefined]);
  assert.deepEqual(nfsMountAttempts('soft,timeo=30').map((a) => a.options), ['soft,timeo=30,vers=4,minorversion=2', 'soft,timeo=30,vers=4,minorversion=1', 'soft,timeo=30']);
  assert.deepEqual(nfsMountAttempts('nfsvers=3').map((a) => a.options), ['nfsvers=3']);
});

test('parse: export, name and options are validated before anything runs', async () => {
  assert.deepEqual(parseMountFlags('-o nfsvers=3 -r'), ['-o', 'nfsvers=3', '-r']);
  assert.deepEqual(parseMountFlags('-onoatime'), ['-o', 'noatime']);
  const bad: [Record<string, unknown>, string][] = [
    [{ name: VOL }, 'export'],
    [{ export: 'no-colon-share', name: VOL }, 'export'],
    [{ export: '-oremount:/x', name: VOL }, 'export'],
    [{ export: SHARE }, 'name'],
    [{ export: SHARE, name: '../etc/passwd' }, 'name'],
    [{ export: SHARE, name: '/abs' }, 'name'],
    [{ export: SHARE, name: VOL, options: '--bind /' }, 'options'],
    [{ export: SHARE, name: VOL, options: '-o' }, 'options'],
    [{ export: SHARE, name: VOL, options: '-o a;b' }, 'options'],
  ];
  for (const [p, field] of bad) assert.throws(() => parseRemoteFsProperties(p, 'nfs'), (e: unknown) => e instanceof InvalidInputError && e.field === field, JSON.stringify(p));
  const k = nfsHost();
  try {
    const c = connectorFor('NFS', { ctx: k.ctx });
    await assert.rejects(c.connectVolume(bad[4]![0]), InvalidInputError);
    assert.deepEqual(k.ex.commands(), []);
  } finally {
    k.cleanup();
  }
});

test('connect mounts under <base>/<md5(export)>, tries NFS 4.2 first, and returns the file path', async () => {
  const k = nfsHost();
  try {
    const c = connectorFor('nfs', { ctx: k.ctx });
    assert.equal(c.protocol, 'NFS');
    const mp = `${BASE}/${shareHash(SHARE)}`;
    const info = await c.connectVolume({ export: SHARE, name: VOL, options: '-o soft' });
    assert.deepEqual(info, { type: 'file', path: `${mp}/${VOL}` });
    assert.deepEqual(k.ex.commands(), [`mount -t nfs -o vers=4,minorversion=2 -o soft ${SHARE} ${mp}`]);
    assert.equal(c.getSearchPath(), BASE);
    assert.equal(await c.extendVolume({ export: SHARE, name: VOL }), 'volume file\n'.length);
  } finally {
    k.cleanup();
  }
});

test('NFS falls back to 4.1 and then the default version', async () => {
  const k = nfsHost({ refuse: /minorversion/ });
  try {
    const c = new RemoteFsConnector(k.ctx, { fstype: 'nfs', protocol: 'NFS', mountPointBase: '/mnt/nfs/', mountOptions: 'noatime' });
    const info = await c.connectVolume({ export: SHARE, name: VOL });
    assert.equal(info.path, `/mnt/nfs/${shareHash(SHARE)}/${VOL}`);
    assert.deepEqual(k.ex.commands().map((x) => x.split(' ').slice(0, 5).join(' ')), ['mount -t nfs -o noatime,vers=4,minorversion=2', 'mount -t nfs -o noatime,vers=4,minorversion=1', 'mount -t nfs -o noatime']);
  } finally {
    k.cleanup();
  }
});

test('an already mounted share is not mounted again; the share is unmounted only when its last volume disconnects', async () => {
  const k = nfsHost();
  try {
    const c = connectorFor('NFS', { ctx: k.ctx });
    const mp = `${BASE}/${shareHash(SHARE)}`;
    await c.connectVolume({ export: SHARE, name: VOL });
    await c.connectVolume({ export: SHARE, name: OTHER });
    assert.equal(k.ex.commands().filter((x) => x.startsWith('mount')).length, 1);
    await c.disconnectVolume({ export: SHARE, name: VOL }, null);
    assert.equal(k.ex.commands().filter((x) => x.startsWith('umount')).length, 0, 'still used by the other volume');
    await c.disconnectVolume({ export: SHARE, name: OTHER }, null);
    assert.deepEqual(k.ex.commands().filter((x) => x.startsWith('umount')), [`umount ${mp}`]);
    assert.ok(!readFileSync(k.mounts, 'utf8').includes(mp));
    assert.ok(!existsSync(join(k.root, mp)), 'the empty mount point is removed');
    await c.disconnectVolume({ export: SHARE, name: OTHER }, null);
    assert.equal(k.ex.commands().length, 2, 'disconnecting again runs nothing');
  } finally {
    k.cleanup();
  }
});

test('a missing volume file: VolumeDeviceNotFoundError (field name) and the share this call mounted is unmounted', async () => {
  const k = nfsHost();
  try {
    const c = connectorFor('NFS', { ctx: k.ctx });
    await assert.rejects(c.connectVolume({ export: SHARE, name: 'volume-missing' }), (e: unknown) => e instanceof VolumeDeviceNotFoundError && e.field === 'name');
    assert.deepEqual(k.ex.commands().map((x) => x.split(' ')[0]), ['mount', 'umount']);
    assert.ok(!readFileSync(k.mounts, 'utf8').includes(shareHash(SHARE)));
  } finally {
    k.cleanup();
  }
});

test('every mount attempt failing: VolumeDeviceNotFoundError (field export) with each error, mount point removed', async () => {
  const k = nfsHost({ refuse: /./ });
  try {
    const c = connectorFor('NFS', { ctx: k.ctx });
    await assert.rejects(c.connectVolume({ export: SHARE, name: VOL }), (e: unknown) => e instanceof VolumeDeviceNotFoundError && e.field === 'export' && /nfs_4\.2.*nfs_4\.1.*nfs:/.test(e.message));
    assert.ok(!existsSync(join(k.root, BASE, shareHash(SHARE))));
  } finally {
    k.cleanup();
  }
});

test('a busy share: error unless force (lazy unmount) or ignoreErrors', async () => {
  const k = nfsHost({ busy: true });
  try {
    const c = connectorFor('NFS', { ctx: k.ctx });
    await c.connectVolume({ export: SHARE, name: VOL });
    await assert.rejects(c.disconnectVolume({ export: SHARE, name: VOL }, null), VolumePathNotRemovedError);
    await c.connectVolume({ export: SHARE, name: VOL });
    await c.disconnectVolume({ export: SHARE, name: VOL }, null, { force: true });
    assert.ok(k.ex.commands().includes(`umount -l ${BASE}/${shareHash(SHARE)}`));
    assert.ok(!readFileSync(k.mounts, 'utf8').includes(shareHash(SHARE)));
  } finally {
    k.cleanup();
  }
});

test('GLUSTERFS uses mount -t glusterfs with no NFS version ladder', async () => {
  const k = nfsHost();
  try {
    const c = connectorFor('GLUSTERFS', { ctx: k.ctx, glusterfs_mount_point_base: '/mnt/gluster' });
    await c.connectVolume({ export: 'gl1:/vol0', name: VOL });
    assert.deepEqual(k.ex.commands(), [`mount -t glusterfs gl1:/vol0 /mnt/gluster/${shareHash('gl1:/vol0')}`]);
  } finally {
    k.cleanup();
  }
});

test('journal: the mount is recorded before mount(8) runs and removed after the last volume leaves; a refused mount leaves nothing', async () => {
  const k = nfsHost();
  const dir = mkdtempSync(join(tmpdir(), 'brick-nfs-journal-'));
  try {
    const journal = new AttachJournal(join(dir, 'journal'));
    const seen: Promise<boolean>[] = [];
    const mp = mountPointFor(BASE, SHARE);
    const spy = { rootHelper: k.ex.rootHelper, run: (argv: readonly string[], o?: Parameters<typeof k.ex.run>[1]) => {
      if (argv[0] === 'mount') seen.push(journal.resource('mount', mp).then((r) => r !== undefined));
      return k.ex.run(argv, o);
    } };
    const c = new RemoteFsConnector({ ...k.ctx, executor: spy, journal }, { fstype: 'nfs', protocol: 'NFS', mountPointBase: BASE });
    const props = { export: SHARE, name: VOL };
    await c.connectVolume(props);
    assert.deepEqual(await Promise.all(seen), [true], 'recorded before the mount');
    assert.deepEqual((await journal.resources()).map((r) => [r.kind, r.name, r.attrs.export]), [['mount', mp, SHARE]]);
    await c.disconnectVolume(props, null);
    assert.deepEqual(await journal.resources(), []);
    assert.deepEqual(await journal.attachments(), []);

    const refused = nfsHost({ refuse: /./ });
    try {
      await assert.rejects(new RemoteFsConnector({ ...refused.ctx, journal }, { fstype: 'nfs', protocol: 'NFS', mountPointBase: BASE }).connectVolume(props), VolumeDeviceNotFoundError);
      assert.deepEqual(await journal.resources(), []);
      assert.deepEqual(await journal.attachments(), []);
    } finally {
      refused.cleanup();
    }
  } finally {
    k.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
