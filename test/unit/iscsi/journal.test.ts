import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeKernel } from './fake-kernel.js';
import { IscsiConnector } from '../../../src/initiator/connectors/iscsi/index.js';
import { iscsiIdentity, validateIscsiProperties } from '../../../src/initiator/connectors/iscsi/properties.js';
import { AttachJournal, openJournalScope, type ResourceEntry } from '../../../src/host/journal.js';
import type { Executor } from '../../../src/exec/executor.js';
import type { HostContext } from '../../../src/host/context.js';

const IQN = 'iqn.2026-11.lab.brick:journal';
const P1 = '127.0.0.1:3260';
const P2 = '127.0.0.2:3260';
const WWID0 = '36001405a1b2c3d4e5f60718293a4b5c6';

/** The fake kernel, with a hook that sees every scan as the kernel handles it. */
class WatchedKernel extends FakeKernel {
  scanSeen?: (host: number, value: string) => void;
  protected override onScan(host: number, value: string): void {
    this.scanSeen?.(host, value);
    super.onScan(host, value);
  }
}

interface Setup {
  k: WatchedKernel;
  journal: AttachJournal;
  ctx: HostContext;
  /** Called with every argv before the fake runs it. */
  beforeRun: ((argv: readonly string[]) => void)[];
  dispose(): void;
}

function setup(): Setup {
  const k = new WatchedKernel();
  k.addTarget({ iqn: IQN, portals: [P1, P2], luns: [{ lun: 0, wwid: WWID0, sizeBytes: 64 << 20 }] });
  const dir = mkdtempSync(join(tmpdir(), 'brick-iscsi-journal-'));
  const journal = new AttachJournal(join(dir, 'journal'));
  const beforeRun: ((argv: readonly string[]) => void)[] = [];
  const spy: Executor = {
    rootHelper: k.executor.rootHelper,
    run: (argv, options) => {
      for (const f of beforeRun) f(argv);
      return k.executor.run(argv, options);
    },
  };
  return {
    k,
    journal,
    ctx: { ...k.ctx, executor: spy, journal },
    beforeRun,
    dispose: () => {
      k.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function make(ctx: HostContext, extra: Record<string, unknown> = {}): IscsiConnector {
  return new IscsiConnector(ctx, { protocol: 'ISCSI', useMultipath: true, deviceScanAttempts: 2, forceMapAfterMs: 50, mapGraceMs: 200, readyTimeoutMs: 500, rescanBaseMs: 20, ...extra });
}

const multi = { target_portal: P1, target_iqn: IQN, target_lun: 0, target_portals: [P1, P2], target_iqns: [IQN, IQN], target_luns: [0, 0] };

/** The resource records, as `kind name` lines, sorted. */
async function kinds(journal: AttachJournal): Promise<string[]> {
  return (await journal.resources()).map((r: ResourceEntry) => `${r.kind} ${r.name}`).sort();
}

test('iscsi multipath connect: node record, session, scanned device and map are each recorded before the command that makes them', async () => {
  const s = setup();
  const { k, journal } = s;
  try {
    k.multipathd = false; // Brick builds the map itself (dmsetup create)
    k.setMultipathdProcess(true);
    const checks: Promise<string | undefined>[] = [];
    const expectRecord = (kind: ResourceEntry['kind'], name: string, what: string): void => {
      // resource() reads the file synchronously when called: this is the journal as it was at the command.
      checks.push(journal.resource(kind, name).then((r) => (r ? undefined : `${what}: no ${kind} ${name} recorded yet`)));
    };
    s.beforeRun.push((argv) => {
      const portal = argv[argv.indexOf('-p') + 1]!;
      if (argv[0] === 'iscsiadm' && argv.includes('new')) expectRecord('iscsi-node', `${IQN},${portal}`, argv.join(' '));
      if (argv[0] === 'iscsiadm' && argv.includes('--login')) expectRecord('iscsi-session', `${IQN},${portal}`, argv.join(' '));
      if (argv[0] === 'dmsetup' && argv[1] === 'create') expectRecord('multipath-map', WWID0, 'dmsetup create');
    });
    k.scanSeen = (host, value) => {
      const [, , lun] = value.split(' ');
      expectRecord('scsi-device', `${host}:0:0:${lun}`, `scan of host${host}`);
    };
    const c = make(s.ctx, { forceMapAfterMs: 5_000 });
    const info = await c.connectVolume(multi);
    await c.settled();
    assert.equal(info.path, '/dev/dm-0');
    assert.ok(checks.length >= 7, `every command was looked at (${checks.length})`);
    assert.deepEqual((await Promise.all(checks)).filter(Boolean), []);

    const key = s.journal ? (await journal.attachments())[0]!.key : '';
    const entry = await journal.attachment(key);
    assert.deepEqual([entry?.operation, entry?.phase, entry?.deviceInfo?.path, entry?.deviceInfo?.multipath_id], ['attach', 'done', '/dev/dm-0', WWID0]);
    assert.deepEqual(entry?.identity, iscsiIdentity(validateIscsiProperties(multi)));
    assert.deepEqual(await kinds(journal), [
      `iscsi-node ${IQN},${P1}`,
      `iscsi-node ${IQN},${P2}`,
      `iscsi-session ${IQN},${P1}`,
      `iscsi-session ${IQN},${P2}`,
      `multipath-map ${WWID0}`,
      'scsi-device 2:0:0:0',
      'scsi-device 3:0:0:0',
    ]);
    const dev = await journal.resource('scsi-device', '2:0:0:0');
    assert.equal(dev?.attrs.wwid, WWID0, 'the scanned device carries its WWID once known');
    assert.equal(dev?.attachment, key);

    await make(s.ctx).disconnectVolume(multi, info);
    assert.deepEqual(await kinds(journal), [], 'every removal is recorded');
    assert.deepEqual(await journal.attachments(), [], 'the attachment is gone');
    assert.equal(k.sessions.length, 0);
  } finally {
    s.dispose();
  }
});

test('iscsi: a connect that fails and cleans up leaves no attachment and no resource record', async () => {
  const s = setup();
  try {
    s.k.deadLuns.add(0); // sessions and scans, but no disk ever
    await assert.rejects(make(s.ctx).connectVolume(multi), { code: 'VOLUME_DEVICE_NOT_FOUND' });
    assert.equal(s.k.sessions.length, 0);
    assert.deepEqual(await kinds(s.journal), []);
    assert.deepEqual(await s.journal.attachments(), []);
  } finally {
    s.dispose();
  }
});

test('iscsi: a connect refused at every portal leaves nothing in the journal', async () => {
  const s = setup();
  try {
    s.k.targets[0]!.down.add(P1);
    s.k.targets[0]!.down.add(P2);
    await assert.rejects(make(s.ctx, { useMultipath: false }).connectVolume(multi), { code: 'TARGET_PORTAL_LOGIN_FAILED' });
    assert.deepEqual(await kinds(s.journal), []);
    assert.deepEqual(await s.journal.attachments(), []);
  } finally {
    s.dispose();
  }
});

test('iscsi: a disconnect with no device info uses the one the attach recorded', async () => {
  const s = setup();
  try {
    const info = await make(s.ctx).connectVolume(multi);
    assert.equal(info.path, '/dev/dm-0');
    await make(s.ctx).disconnectVolume(multi, null);
    assert.equal(fs.existsSync(s.k.p('/sys/block/dm-0')), false);
    assert.equal(s.k.sessions.length, 0);
    assert.deepEqual(await kinds(s.journal), []);
    assert.deepEqual(await s.journal.attachments(), []);
  } finally {
    s.dispose();
  }
});

test('iscsi: an attach interrupted after its paths were removed leaves a map only the journal knows; a disconnect with no device info removes it', async () => {
  const s = setup();
  const { k, journal } = s;
  try {
    const info = await make(s.ctx).connectVolume(multi);
    assert.equal(info.path, '/dev/dm-0');
    // As a kill -9 would leave it: phase running, no device info, and the path devices already
    // deleted below a map that is still there (nothing on the host leads from the LUN to it).
    const entry = (await journal.attachments())[0]!;
    const { deviceInfo: _dropped, ...rest } = entry;
    fs.writeFileSync(join(journal.dir, 'attachments', `${entry.key}.json`), JSON.stringify({ ...rest, phase: 'running' }));
    for (const h of ['2:0:0:0', '3:0:0:0']) fs.writeFileSync(k.p(`/sys/bus/scsi/devices/${h}/delete`), '1');
    await new Promise((r) => setTimeout(r, 100)); // the fake kernel handles the deletes
    assert.ok(fs.existsSync(k.p('/sys/block/dm-0')), 'the map outlived its paths');

    await make(s.ctx).disconnectVolume(multi, null);
    assert.equal(fs.existsSync(k.p('/sys/block/dm-0')), false, 'the map the journal named was removed');
    assert.equal(k.sessions.length, 0);
    assert.deepEqual(await kinds(journal), []);
    assert.deepEqual(await journal.attachments(), []);
  } finally {
    s.dispose();
  }
});

test('iscsi: a node record an interrupted discovery attach made on a portal the properties do not name is deleted by the disconnect', async () => {
  const s = setup();
  const { k, journal } = s;
  try {
    const props = { target_portal: P1, target_iqn: IQN, target_lun: 0 };
    // As a kill -9 right after `iscsiadm -m node -T IQN -p P2 -o new` of a discovery attach would leave it.
    const scope = await openJournalScope(journal, 'attach', 'ISCSI', props, iscsiIdentity(validateIscsiProperties(props)));
    await scope.intent('iscsi-node', `${IQN},${P2}`);
    await k.executor.run(['iscsiadm', '-m', 'node', '-T', IQN, '-p', P2, '-I', 'default', '-o', 'new']);
    assert.ok(k.hasRecord(IQN, P2));

    await make(s.ctx).disconnectVolume(props, null);
    assert.equal(k.hasRecord(IQN, P2), false);
    assert.deepEqual(await kinds(journal), []);
    assert.deepEqual(await journal.attachments(), []);
  } finally {
    s.dispose();
  }
});
