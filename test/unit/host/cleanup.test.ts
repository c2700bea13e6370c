/**
 * `cleanupHost` (issue #16) over the fake iSCSI kernel (sessions, SCSI disks, multipathd maps,
 * node records) and a temporary journal: what is a leftover, whose it is, what stays, and the
 * order and form of the commands that remove it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeKernel } from '../iscsi/fake-kernel.js';
import { cleanupHost, type HostCleanupResult } from '../../../src/host/cleanup.js';
import { AttachJournal, attachmentKey, type AttachmentIdentity } from '../../../src/host/journal.js';
import { parseMountInfo } from '../../../src/host/cleanup-survey.js';
import { createHostContext, type HostContext } from '../../../src/host/context.js';
import { LockManager } from '../../../src/host/lock.js';
import type { Executor, ExecOptions, ExecResult } from '../../../src/exec/executor.js';
import type { RecordingExecutor } from '../../../src/exec/recording.js';

const IQN = 'iqn.2026-12.lab.brick:cleanup';
const ADMIN_IQN = 'iqn.2026-12.lab.admin:by-hand';
const P1 = '127.0.0.1:3260';
const P2 = '127.0.0.2:3260';
const W1 = '36001405aaaaaaaaaaaaaaaaaaaaaaaa1';
const W2 = '36001405aaaaaaaaaaaaaaaaaaaaaaaa2';
const WA = '36001405bbbbbbbbbbbbbbbbbbbbbbbb1';
const BOOT = '11111111-2222-4333-8444-555555555555';
const OLD_BOOT = '99999999-2222-4333-8444-555555555555';

/** The root helper's view: every command goes through `tee`/programs as argv, recorded in order. */
class SudoExecutor implements Executor {
  readonly rootHelper = ['sudo', '-n'];
  readonly commands: string[] = [];
  constructor(private readonly inner: RecordingExecutor) {}
  run(argv: readonly string[], options?: ExecOptions): Promise<ExecResult> {
    this.commands.push(argv.join(' '));
    return this.inner.run(argv, options);
  }
}

const READS = [/^iscsiadm -m node$/, /^dmsetup info /];
const mutating = (cmds: readonly string[]) => cmds.filter((c) => !READS.some((r) => r.test(c)));

interface Env {
  k: FakeKernel;
  ctx: HostContext;
  sudo: SudoExecutor;
  dir: string;
  journal(boot?: string, alive?: boolean): AttachJournal;
  done(): void;
}

/** The fake kernel with two targets, `iscsiadm -m node` / `-m session -r N --logout` / `dmsetup info` answered from it. */
function env(): Env {
  const k = new FakeKernel();
  k.addTarget({ iqn: IQN, portals: [P1, P2], luns: [{ lun: 1, wwid: W1, sizeBytes: 64 << 20 }, { lun: 2, wwid: W2, sizeBytes: 64 << 20 }] });
  k.addTarget({ iqn: ADMIN_IQN, portals: [P1], luns: [{ lun: 0, wwid: WA, sizeBytes: 64 << 20 }] });
  k.executor.on((a) => a.join(' ') === 'iscsiadm -m node', () => {
    const lines: string[] = [];
    const base = k.p('/etc/iscsi/nodes');
    for (const iqn of fs.readdirSync(base)) for (const rec of fs.readdirSync(join(base, iqn))) lines.push(`${rec.replace(',', ':')},1 ${iqn}`);
    return lines.length > 0 ? { stdout: `${lines.join('\n')}\n` } : { exitCode: 21 };
  });
  k.executor.on((a) => a[0] === 'iscsiadm' && a[2] === 'session' && a[5] === '--logout', (a) => {
    const s = k.sessions.find((x) => x.id === Number(a[4]));
    if (!s) return { exitCode: 21 };
    k.removeSession(s);
    return {};
  });
  k.executor.on(['dmsetup', 'info'], () => {
    const lines: string[] = [];
    for (const dm of fs.readdirSync(k.p('/sys/block')).filter((d) => d.startsWith('dm-'))) {
      const name = fs.readFileSync(k.p(`/sys/block/${dm}/dm/name`), 'utf8').trim();
      lines.push(`${name}|${k.openMaps.has(name) ? 1 : 0}`);
    }
    return { stdout: `${lines.join('\n')}\n` };
  });
  const sudo = new SudoExecutor(k.executor);
  const dir = mkdtempSync(join(tmpdir(), 'brick-cleanup-'));
  const ctx = createHostContext({ executor: sudo, hostRoot: k.root, logger: k.ctx.logger, locks: new LockManager(join(dir, 'locks'), 5_000) });
  return {
    k,
    ctx,
    sudo,
    dir,
    // Without `<pid>/stat` in the table the recording process counts as gone (a kill -9); with it, alive.
    journal: (boot = BOOT, alive = false) =>
      new AttachJournal(join(dir, 'journal'), {
        privateDirectory: false,
        readProc: (p) => (p === 'sys/kernel/random/boot_id' ? `${boot}\n` : alive && p === `${process.pid}/stat` ? `${process.pid} (node) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 0` : undefined),
      }),
    done: () => {
      k.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const identity = (lun: number): AttachmentIdentity => ({ targets: [`${IQN},${P1}`, `${IQN},${P2}`], lun });

/** Play an iSCSI multipath attach of `lun` on the fake kernel, journaling as the connector does, up to `stopAfter`. */
async function attach(e: Env, j: AttachJournal, lun: number, stopAfter: 'sessions' | 'devices' | 'map' | 'done'): Promise<string> {
  const key = attachmentKey('ISCSI', identity(lun));
  await j.begin('attach', 'ISCSI', { target_iqn: IQN, target_lun: lun, auth_password: 'secret' }, identity(lun));
  const sessions = [];
  for (const p of [P1, P2]) {
    await j.intent(key, 'iscsi-node', `${IQN},${p}`);
    if (!e.k.hasRecord(IQN, p)) await e.k.executor.run(['iscsiadm', '-m', 'node', '-T', IQN, '-p', p, '-I', 'default', '-o', 'new']);
    await j.intent(key, 'iscsi-session', `${IQN},${p}`);
    sessions.push(e.k.sessions.find((s) => s.iqn === IQN && s.portal === p) ?? e.k.addSession(IQN, p));
  }
  if (stopAfter === 'sessions') return key;
  e.k.multipathd = stopAfter !== 'devices';
  const wwid = lun === 1 ? W1 : W2;
  for (const s of sessions) {
    await j.intent(key, 'scsi-device', `${s.host}:0:0:${lun}`, { wwid });
    e.k.addDisk(s, lun);
  }
  if (stopAfter === 'devices') return key;
  await j.intent(key, 'multipath-map', wwid);
  if (stopAfter === 'done') await j.attached(key, { type: 'block', path: `/dev/${e.k.mapOf(wwid)}`, scsi_wwn: wwid, multipath_id: wwid });
  return key;
}

function byKind(r: HostCleanupResult): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const l of r.leftovers) (out[l.kind] ??= []).push(`${l.name} ${l.owned ? 'owned' : 'unowned'} ${l.action}`);
  return out;
}

test('an interrupted attach (sessions, devices, map) is listed as owned and removed in the safe order, devices deleted at their address', async () => {
  const e = env();
  try {
    const j = e.journal();
    const key = await attach(e, j, 1, 'map');
    const dm = e.k.mapOf(W1)!;
    assert.ok(dm);
    const r = await cleanupHost(e.ctx, e.journal());
    assert.deepEqual(byKind(r), {
      'multipath-map': [`${W1} owned removed`],
      'scsi-device': ['2:0:0:1 owned removed', '3:0:0:1 owned removed'],
      'iscsi-session': [`${IQN},${P1} owned removed`, `${IQN},${P2} owned removed`],
      'iscsi-node': [`${IQN},${P1} owned removed`, `${IQN},${P2} owned removed`],
    });
    assert.equal(r.removed, 7);
    assert.equal(r.ownedRemaining, 0);
    assert.match(r.leftovers[0]!.reason, /interrupted attach/);
    assert.deepEqual(mutating(e.sudo.commands), [
      `dmsetup remove --noudevsync ${W1}`,
      'blockdev --flushbufs /dev/sdb',
      'tee -a /sys/bus/scsi/devices/2:0:0:1/delete',
      'blockdev --flushbufs /dev/sdc',
      'tee -a /sys/bus/scsi/devices/3:0:0:1/delete',
      'iscsiadm -m session -r 1 --logout',
      'iscsiadm -m session -r 2 --logout',
      `iscsiadm -m node -T ${IQN} -p ${P1} -I default -o delete`,
      `iscsiadm -m node -T ${IQN} -p ${P2} -I default -o delete`,
    ]);
    assert.deepEqual(e.k.sessions, []);
    assert.equal(e.k.mapOf(W1), undefined);
    assert.deepEqual(await j.resources(), [], 'every removal is recorded in the journal');
    assert.equal(await j.attachment(key), undefined, 'the cleaned attachment record is dropped');
    assert.equal(r.pruned, 1);
    const again = await cleanupHost(e.ctx, e.journal());
    assert.deepEqual([again.leftovers, again.removed], [[], 0]);
  } finally {
    e.done();
  }
});

test('a completed attach is in use even with nothing holding it open; a killed attach of another LUN on the same sessions loses only its own devices', async () => {
  const e = env();
  try {
    const j = e.journal();
    await attach(e, j, 1, 'done');
    await attach(e, j, 2, 'map');
    const r = await cleanupHost(e.ctx, e.journal());
    assert.deepEqual(byKind(r), { 'multipath-map': [`${W2} owned removed`], 'scsi-device': ['2:0:0:2 owned removed', '3:0:0:2 owned removed'] });
    assert.ok(e.k.mapOf(W1), 'the completed attach keeps its map');
    assert.equal(e.k.sessions.length, 2, 'the sessions carry a LUN in use');
    assert.ok(!mutating(e.sudo.commands).some((c) => c.includes('2:0:0:1') || c.includes('3:0:0:1') || c.includes('logout') || c.includes('-o delete')));
  } finally {
    e.done();
  }
});

test('claims from the store protect like a completed attach', async () => {
  const e = env();
  try {
    await attach(e, e.journal(), 1, 'map');
    const r = await cleanupHost(e.ctx, e.journal(), { dryRun: true, claims: { wwids: [W1], targets: [`${IQN},${P1}`, `${IQN},${P2}`] } });
    assert.deepEqual(r.leftovers, []);
  } finally {
    e.done();
  }
});

test('an operation whose process still runs is in progress: nothing of it is touched', async () => {
  const e = env();
  try {
    await attach(e, e.journal(BOOT, true), 1, 'map');
    const r = await cleanupHost(e.ctx, e.journal(BOOT, true));
    assert.deepEqual(r.leftovers, []);
    assert.deepEqual(mutating(e.sudo.commands), []);
  } finally {
    e.done();
  }
});

test("the administrator's own session is listed as unowned and left alone unless --include-unowned", async () => {
  const e = env();
  try {
    e.k.multipathd = false;
    const s = e.k.addSession(ADMIN_IQN, P1);
    e.k.addDisk(s, 0);
    const r = await cleanupHost(e.ctx, e.journal());
    assert.deepEqual(byKind(r), { 'scsi-device': ['2:0:0:0 unowned none'], 'iscsi-session': [`${ADMIN_IQN},${P1} unowned none`] });
    assert.match(r.leftovers[1]!.reason, /no journal record or connection record accounts for it/);
    assert.deepEqual(mutating(e.sudo.commands), []);
    assert.equal(r.ownedRemaining, 0);
    assert.equal(e.k.sessions.length, 1);
    const all = await cleanupHost(e.ctx, e.journal(), { includeUnowned: true });
    assert.deepEqual(byKind(all), { 'scsi-device': ['2:0:0:0 unowned removed'], 'iscsi-session': [`${ADMIN_IQN},${P1} unowned removed`] });
    assert.deepEqual(e.k.sessions, []);
  } finally {
    e.done();
  }
});

test('an open or held leftover map is skipped with the reason, and what is under it stays', async () => {
  const e = env();
  try {
    await attach(e, e.journal(), 1, 'map');
    e.k.openMaps.add(W1);
    const r = await cleanupHost(e.ctx, e.journal());
    const map = r.leftovers.find((l) => l.kind === 'multipath-map')!;
    assert.equal(map.action, 'skip');
    assert.match(map.reason, /open \(device-mapper open count 1\).*never touched/);
    assert.deepEqual(byKind(r)['scsi-device'], ['2:0:0:1 owned skip', '3:0:0:1 owned skip']);
    assert.deepEqual(byKind(r)['iscsi-session'], [`${IQN},${P1} owned skip`, `${IQN},${P2} owned skip`]);
    assert.deepEqual(mutating(e.sudo.commands), []);
    assert.equal(r.ownedRemaining, 7);

    e.k.openMaps.clear();
    const dm = e.k.mapOf(W1)!;
    fs.mkdirSync(e.k.p(`/sys/devices/virtual/block/${dm}/holders/dm-9`), { recursive: true });
    const held = await cleanupHost(e.ctx, e.journal(), { dryRun: true });
    assert.match(held.leftovers[0]!.reason, new RegExp(`/dev/${dm} is held by /dev/dm-9`));
    assert.equal(held.leftovers[0]!.action, 'skip');
  } finally {
    e.done();
  }
});

test('a mounted SCSI device of a leftover is skipped', async () => {
  const e = env();
  try {
    await attach(e, e.journal(), 1, 'devices');
    const dev = fs.readFileSync(e.k.p('/sys/block/sdb/dev'), 'utf8').trim();
    fs.mkdirSync(e.k.p('/proc/self'), { recursive: true });
    fs.writeFileSync(e.k.p('/proc/self/mountinfo'), `22 1 ${dev} / /mnt/data rw,relatime shared:1 - ext4 /dev/sdb rw\n`);
    const r = await cleanupHost(e.ctx, e.journal());
    assert.deepEqual(byKind(r)['scsi-device'], ['2:0:0:1 owned skip', '3:0:0:1 owned removed']);
    assert.match(r.leftovers[0]!.reason, /\/dev\/sdb is mounted at \/mnt\/data/);
    assert.equal(r.leftovers.find((l) => l.name === `${IQN},${P1}` && l.kind === 'iscsi-session')!.action, 'skip');
    assert.ok(!e.sudo.commands.some((c) => c.includes('2:0:0:1')));
  } finally {
    e.done();
  }
});

test('a dry run lists the same leftovers and runs no command that changes anything, nor writes the journal', async () => {
  const e = env();
  try {
    await attach(e, e.journal(), 1, 'map');
    const snapshot = () => fs.readdirSync(join(e.dir, 'journal'), { recursive: true, encoding: 'utf8' }).sort();
    const before = snapshot();
    const r = await cleanupHost(e.ctx, e.journal(), { dryRun: true });
    assert.equal(r.leftovers.length, 7);
    assert.ok(r.leftovers.every((l) => l.owned && l.action === 'remove'));
    assert.equal(r.removed, 0);
    assert.equal(r.ownedRemaining, 7);
    assert.deepEqual(mutating(e.sudo.commands), []);
    assert.deepEqual(e.sudo.commands.sort(), ['dmsetup info -c --noheadings --separator | -o name,open', 'iscsiadm -m node']);
    assert.deepEqual(snapshot(), before);
    assert.ok(e.k.mapOf(W1));
    for (const l of r.leftovers) assert.deepEqual(Object.keys(l), ['kind', 'name', 'owned', 'action', 'reason']);
  } finally {
    e.done();
  }
});

test('records from an earlier boot are pruned: a device now at the recorded address is not Brick\'s', async () => {
  const e = env();
  try {
    const old = e.journal(OLD_BOOT);
    const key = attachmentKey('ISCSI', identity(1));
    await old.begin('attach', 'ISCSI', {}, identity(1));
    await old.intent(key, 'scsi-device', '2:0:0:0', { wwid: W1 });
    await old.intent(key, 'iscsi-session', `${ADMIN_IQN},${P1}`);
    await old.attached(key, { type: 'block', path: '/dev/sda', scsi_wwn: W1 });
    e.k.multipathd = false;
    e.k.addDisk(e.k.addSession(ADMIN_IQN, P1), 0);
    const now = e.journal();
    const dry = await cleanupHost(e.ctx, now, { dryRun: true });
    assert.equal(dry.pruned, 3, 'two resource records and the attachment would go');
    assert.deepEqual(byKind(dry), { 'scsi-device': ['2:0:0:0 unowned none'], 'iscsi-session': [`${ADMIN_IQN},${P1} unowned none`] });
    const r = await cleanupHost(e.ctx, now);
    assert.equal(r.pruned, 3);
    assert.equal(r.removed, 0);
    assert.deepEqual(await now.resources(), []);
    assert.deepEqual(await now.attachments(), []);
    assert.equal(e.k.sessions.length, 1);
  } finally {
    e.done();
  }
});

test('a node record from an earlier boot is still Brick\'s: it is a leftover when nothing claims its target', async () => {
  const e = env();
  try {
    const old = e.journal(OLD_BOOT);
    const key = attachmentKey('ISCSI', identity(1));
    await old.begin('attach', 'ISCSI', {}, identity(1));
    await old.intent(key, 'iscsi-node', `${IQN},${P1}`);
    await e.k.executor.run(['iscsiadm', '-m', 'node', '-T', IQN, '-p', P1, '-I', 'default', '-o', 'new']);
    await old.attached(key, { type: 'block', path: '/dev/dm-0' });
    const claimed = await cleanupHost(e.ctx, e.journal(), { dryRun: true, claims: { targets: [`${IQN},${P1}`] } });
    assert.deepEqual(claimed.leftovers, []);
    const r = await cleanupHost(e.ctx, e.journal());
    assert.deepEqual(byKind(r), { 'iscsi-node': [`${IQN},${P1} owned removed`] });
    assert.match(r.leftovers[0]!.reason, /before the last reboot/);
    assert.ok(!e.k.hasRecord(IQN, P1));
  } finally {
    e.done();
  }
});

test('loop devices over pool files no connection exports are leftovers; exported ones stay', async () => {
  const e = env();
  try {
    for (const [n, f] of [['loop0', '/pool/volume-a.img'], ['loop1', '/pool/volume-b.img'], ['loop2', '/elsewhere/x.img']] as const) {
      fs.mkdirSync(e.k.p(`/sys/block/${n}/loop`), { recursive: true });
      fs.writeFileSync(e.k.p(`/sys/block/${n}/loop/backing_file`), `${f}\n`);
    }
    e.k.executor.on(['losetup', '--detach'], {});
    const r = await cleanupHost(e.ctx, e.journal(), { claims: { poolPaths: ['/pool/'], exportedFiles: ['/pool/volume-a.img'] } });
    assert.deepEqual(byKind(r), { 'loop-device': ['/dev/loop1 owned removed'] });
    assert.match(r.leftovers[0]!.reason, /pool file \/pool\/volume-b.img that no connection record exports/);
    assert.deepEqual(mutating(e.sudo.commands), ['losetup --detach /dev/loop1']);
  } finally {
    e.done();
  }
});

test('mountinfo parsing: mount point, source, type and device number, escapes decoded', () => {
  assert.deepEqual(parseMountInfo('36 35 98:0 / /mnt/my\\040disk rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n40 1 0:53 / /var/lib/nfs rw shared:2 - nfs4 srv:/export rw\n'), [
    { name: '/mnt/my disk', source: '/dev/root', fstype: 'ext3', dev: '98:0' },
    { name: '/var/lib/nfs', source: 'srv:/export', fstype: 'nfs4', dev: '0:53' },
  ]);
});

test('NVMe-oF: an interrupted connect loses its controller; a completed one, a PCIe drive and a busy namespace are kept', async () => {
  const { createFixtureTree, fixtureContext } = await import('../../../src/testing/fixture-tree.js');
  const nqn = (n: number) => `nqn.2026-12.lab.brick:sub${n}`;
  const entries: Record<string, string | { dir: true }> = {};
  const controller = (i: number, sub: string, transport: string, addr: string) => {
    entries[`/sys/class/nvme/nvme${i}/subsysnqn`] = `${sub}\n`;
    entries[`/sys/class/nvme/nvme${i}/transport`] = `${transport}\n`;
    entries[`/sys/class/nvme/nvme${i}/address`] = addr ? `traddr=${addr},trsvcid=4420\n` : '0000:00:04.0\n';
    entries[`/sys/class/nvme/nvme${i}/state`] = 'live\n';
    entries[`/sys/class/nvme/nvme${i}/nvme${i}n1/nsid`] = '1\n';
    entries[`/sys/block/nvme${i}n1/dev`] = `259:${i}\n`;
    entries[`/sys/block/nvme${i}n1/holders`] = { dir: true };
  };
  controller(0, 'nqn.2014.08.org.nvmexpress:local-drive', 'pcie', '');
  controller(1, nqn(1), 'tcp', '127.0.0.1');
  controller(2, nqn(2), 'tcp', '127.0.0.1');
  controller(3, nqn(3), 'tcp', '127.0.0.1');
  controller(4, nqn(4), 'tcp', '127.0.0.1');
  entries['/proc/self/mountinfo'] = '30 1 259:4 / /srv/busy rw - xfs /dev/nvme4n1 rw\n';
  const tree = createFixtureTree(entries);
  const dir = mkdtempSync(join(tmpdir(), 'brick-cleanup-nvme-'));
  try {
    const { ctx, executor } = fixtureContext(tree.root);
    executor.on(['iscsiadm', '-m', 'node'], { exitCode: 21 });
    executor.on(['nvme', 'disconnect'], {});
    const j = new AttachJournal(join(dir, 'journal'), { privateDirectory: false, readProc: (p) => (p === 'sys/kernel/random/boot_id' ? BOOT : undefined) });
    const name = (n: number) => `${nqn(n)},tcp,127.0.0.1,4420`;
    for (const n of [1, 2, 4]) {
      const id = { targets: [name(n)], lun: 1 };
      await j.begin('attach', 'NVMEOF', {}, id);
      await j.intent(attachmentKey('NVMEOF', id), 'nvme-controller', name(n));
    }
    await j.attached(attachmentKey('NVMEOF', { targets: [name(2)], lun: 1 }), { type: 'block', path: '/dev/nvme2n1' });
    const r = await cleanupHost(ctx, j);
    assert.deepEqual(byKind(r), { 'nvme-controller': [`${name(1)} owned removed`, `${name(3)} unowned none`, `${name(4)} owned skip`] });
    assert.match(r.leftovers[2]!.reason, /\/dev\/nvme4n1 is mounted at \/srv\/busy/);
    assert.deepEqual(mutating(executor.commands()), ['nvme disconnect -d /dev/nvme1']);
  } finally {
    tree.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a device recorded under another of its designators (T10 while udev was still making links) is still the one recorded', async () => {
  const e = env();
  try {
    e.k.multipathd = false;
    const j = e.journal();
    const key = attachmentKey('ISCSI', identity(1));
    await j.begin('attach', 'ISCSI', {}, identity(1));
    const s = e.k.addSession(IQN, P1); // a session Brick did not record: only the device's own record makes it Brick's
    const disk = e.k.addDisk(s, 1)!;
    fs.symlinkSync(`../../${disk}`, e.k.p('/dev/disk/by-id/scsi-1LIO-ORG_FILEIO:aaaa-1'));
    await j.intent(key, 'scsi-device', `${s.host}:0:0:1`, { wwid: '1LIO-ORG_FILEIO:aaaa-1' });
    const r = await cleanupHost(e.ctx, e.journal());
    assert.deepEqual(byKind(r), { 'scsi-device': [`${s.host}:0:0:1 owned removed`], 'iscsi-session': [`${IQN},${P1} unowned none`] });
  } finally {
    e.done();
  }
});
