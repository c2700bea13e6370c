import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { AttachJournal, attachmentKey, openJournalScope, parseStatStart } from '../../../src/host/journal.js';

const BOOT = '7d1f9c7e-0000-4000-8000-000000000001';

function procReader(table: Record<string, string>): (p: string) => string | undefined {
  return (p) => table[p];
}

describe('host attach journal', () => {
  let dir: string;
  let proc: Record<string, string>;
  let journal: AttachJournal;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'brick-journal-'));
    proc = {
      'sys/kernel/random/boot_id': `${BOOT}\n`,
      [`${process.pid}/stat`]: `${process.pid} (node (x)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 0 0`,
    };
    journal = new AttachJournal(join(dir, 'journal'), { readProc: procReader(proc), now: () => new Date('2026-12-02T12:00:00Z') });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('parses the start time even when the command name holds spaces and parentheses', () => {
    assert.equal(parseStatStart(proc[`${process.pid}/stat`]), '424242');
    assert.equal(parseStatStart(undefined), '');
  });

  it('keys an attachment by identity, whatever order the portals come in', () => {
    const a = attachmentKey('ISCSI', { targets: ['iqn.x,10.0.0.1:3260', 'iqn.x,10.0.0.2:3260'], lun: 1 });
    const b = attachmentKey('iscsi', { targets: ['iqn.x,10.0.0.2:3260', 'iqn.x,10.0.0.1:3260'], lun: 1 });
    const c = attachmentKey('ISCSI', { targets: ['iqn.x,10.0.0.1:3260', 'iqn.x,10.0.0.2:3260'], lun: 2 });
    assert.equal(a, b);
    assert.notEqual(a, c);
    assert.match(a, /^iscsi-[0-9a-f]{24}$/);
  });

  it('records an attach with secrets masked, then its device info, then forgets it on detach', async () => {
    const props = { target_iqn: 'iqn.x', target_portal: '10.0.0.1:3260', target_lun: 1, auth_password: 's3cret' };
    const identity = { targets: ['iqn.x,10.0.0.1:3260'], lun: 1 };
    const scope = await openJournalScope(journal, 'attach', 'ISCSI', props, identity);
    await scope.intent('iscsi-session', 'iqn.x,10.0.0.1:3260');
    let entry = await journal.attachment(scope.key);
    assert.equal(entry?.phase, 'running');
    assert.equal(entry?.process.bootId, BOOT);
    assert.equal(entry?.process.start, '424242');
    const raw = fs.readFileSync(join(dir, 'journal', 'attachments', `${scope.key}.json`), 'utf8');
    assert.ok(!raw.includes('s3cret'), 'the CHAP secret must not be written');
    assert.equal((fs.statSync(join(dir, 'journal', 'attachments', `${scope.key}.json`)).mode & 0o777), 0o600);
    await scope.succeeded({ type: 'block', path: '/dev/sdb', scsi_wwn: '36001' });
    entry = await journal.attachment(scope.key);
    assert.deepEqual([entry?.operation, entry?.phase, entry?.deviceInfo?.path], ['attach', 'done', '/dev/sdb']);

    const detach = await openJournalScope(journal, 'detach', 'ISCSI', props, identity);
    assert.equal(detach.before?.deviceInfo?.path, '/dev/sdb', 'a detach in a new process learns the device the attach got');
    assert.equal((await journal.attachment(scope.key))?.deviceInfo?.path, '/dev/sdb', 'the running detach keeps the device info');
    assert.equal((await detach.resources()).length, 1);
    await detach.removed('iscsi-session', 'iqn.x,10.0.0.1:3260');
    await detach.succeeded();
    assert.equal(await journal.attachment(scope.key), undefined);
    assert.deepEqual(await journal.resources(), []);
  });

  it('a failed attach that cleaned up leaves nothing; one that left a resource stays as failed', async () => {
    const s1 = await openJournalScope(journal, 'attach', 'NVMEOF', {}, { targets: ['nqn.a,tcp,10.0.0.1,4420'], lun: 1 });
    await s1.failed(new Error('no device'));
    assert.equal(await journal.attachment(s1.key), undefined);
    const s2 = await openJournalScope(journal, 'attach', 'NVMEOF', {}, { targets: ['nqn.b,tcp,10.0.0.1,4420'], lun: 1 });
    await s2.intent('nvme-controller', 'nqn.b,tcp,10.0.0.1,4420');
    await s2.failed(new Error('no namespace'));
    const e = await journal.attachment(s2.key);
    assert.deepEqual([e?.phase, e?.error], ['failed', 'no namespace']);
  });

  it('keeps the first creator of a shared resource as its owner', async () => {
    const a = await openJournalScope(journal, 'attach', 'ISCSI', {}, { targets: ['iqn.x,p'], lun: 1 });
    const b = await openJournalScope(journal, 'attach', 'ISCSI', {}, { targets: ['iqn.x,p'], lun: 2 });
    await a.intent('iscsi-session', 'iqn.x,p');
    await b.intent('iscsi-session', 'iqn.x,p');
    const r = await journal.resource('iscsi-session', 'iqn.x,p');
    assert.equal(r?.attachment, a.key);
  });

  it('judges processes: alive, gone, recycled pid, earlier boot', () => {
    const me = journal.process();
    assert.equal(journal.isAlive(me), true);
    assert.equal(journal.isAlive({ ...me, start: '1' }), false, 'a recycled pid has another start time');
    assert.equal(journal.isAlive({ ...me, bootId: 'other' }), false);
    assert.equal(journal.isAlive({ pid: 999999, start: '5', bootId: BOOT }), false);
  });

  it('does nothing without a journal', async () => {
    const s = await openJournalScope(undefined, 'attach', 'ISCSI', {}, { targets: ['x'] });
    await s.intent('iscsi-session', 'x');
    await s.succeeded();
    assert.equal(s.key, '');
  });

  it('refuses a journal directory that is a symlink', async () => {
    fs.mkdirSync(join(dir, 'elsewhere'));
    fs.symlinkSync(join(dir, 'elsewhere'), join(dir, 'link'));
    const j = new AttachJournal(join(dir, 'link'), { readProc: procReader(proc) });
    await assert.rejects(() => j.begin('attach', 'ISCSI', {}, { targets: ['x'] }), { code: 'INVALID_CONFIG' });
    assert.deepEqual(fs.readdirSync(join(dir, 'elsewhere')), []);
  });

  it('survives a torn temporary file: readers see only whole records', async () => {
    const s = await openJournalScope(journal, 'attach', 'ISCSI', {}, { targets: ['iqn.y,p'], lun: 0 });
    fs.writeFileSync(join(dir, 'journal', 'attachments', '.tmp-1-abc'), '{"half');
    const all = await journal.attachments();
    assert.deepEqual(all.map((e) => e.key), [s.key]);
  });
});
