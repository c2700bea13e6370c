import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const runtime = new URL('../../../src/cli/runtime.js', import.meta.url).href;
const journalModule = new URL('../../../src/host/journal.js', import.meta.url).href;

/** Run a child that opens an attach scope and records an iSCSI session intent, with `env`; returns its signal and what the journal holds after. */
function child(env: Record<string, string>): { signal: NodeJS.Signals | null; resources: string[]; attachments: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'brick-kill-hook-'));
  try {
    const script = `
      const { journalKillHook } = await import(${JSON.stringify(runtime)});
      const { AttachJournal, openJournalScope } = await import(${JSON.stringify(journalModule)});
      const j = new AttachJournal(${JSON.stringify(join(dir, 'journal'))}, { onEvent: journalKillHook(process.env) });
      const s = await openJournalScope(j, 'attach', 'ISCSI', {}, { targets: ['iqn.x,p'], lun: 0 });
      await s.intent('iscsi-node', 'iqn.x,p');
      await s.intent('iscsi-session', 'iqn.x,p');
      await s.succeeded({ type: 'block', path: '/dev/sdb' });`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
    const list = (sub: string) => {
      try {
        return readdirSync(join(dir, 'journal', sub)).filter((n) => !n.startsWith('.'));
      } catch {
        return [];
      }
    };
    return { signal: r.signal, resources: list('resources'), attachments: list('attachments') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('BRICK_TEST_KILL_AT kills the process with SIGKILL at the named journal event, before that record is written', () => {
  const killed = child({ BRICK_TEST_KILL_AT: 'intent:iscsi-session' });
  assert.equal(killed.signal, 'SIGKILL');
  assert.equal(killed.resources.length, 1, 'the node record intent was written, the session intent was not');
  assert.equal(killed.attachments.length, 1);
  const untouched = child({ BRICK_TEST_KILL_AT: '' });
  assert.equal(untouched.signal, null);
  assert.equal(untouched.resources.length, 2);
});
