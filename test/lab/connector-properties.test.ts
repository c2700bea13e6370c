/**
 * Connector properties beside os-brick's (issue 17, part 5): in the lab VM, Debian's os-brick 6.1
 * `get_connector_properties` and `brick connector properties` are run on the same host, with and
 * without multipathd, and compared key by key. Every key os-brick reports must be in Brick's
 * document with the same value; Brick may add only the keys named in `BRICK_EXTRA_KEYS`.
 * Skipped when python3-os-brick is not installed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startInitiatorDaemons, run, waitFor, LAB_INITIATOR_IQN, OS_BRICK, osBrickPreamble } from './fixtures/index.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
/** Keys Brick reports that os-brick 6.1 does not: the NVMe host id (later os-brick releases report it). */
const BRICK_EXTRA_KEYS = ['nvme_hostid'];

const PY = String.raw`
import faulthandler, json, sys
# A hang (seen once: no answer within 120 s) prints every thread's stack to stderr and exits.
faulthandler.dump_traceback_later(150, exit=True)
${osBrickPreamble('brick-lab')}multipath, enforce = sys.argv[1] == '1', sys.argv[2] == '1'
try:
    print('RESULT ' + json.dumps(connector.get_connector_properties(None, '127.0.0.1', multipath, enforce, host='brick-lab')))
except Exception as e:
    print('ERROR ' + type(e).__name__ + ': ' + str(e))
`;

const haveOsBrick = fs.existsSync(OS_BRICK);

async function osBrick(multipath: boolean, enforce: boolean): Promise<Record<string, unknown> | string> {
  const r = await run(['/usr/bin/python3', '-c', PY, multipath ? '1' : '0', enforce ? '1' : '0'], { timeoutMs: 200_000, checkExitCode: false });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT ') || l.startsWith('ERROR '));
  assert.ok(line, `os-brick printed no result (exit ${r.exitCode}): ${r.stdout}\n${r.stderr.slice(-6000)}`);
  return line.startsWith('RESULT ') ? (JSON.parse(line.slice(7)) as Record<string, unknown>) : line.slice(6);
}

async function brick(args: string[]): Promise<{ doc?: Record<string, unknown>; exitCode: number | null; stderr: string }> {
  const r = await run(['node', CLI, 'connector', 'properties', '--json', '--my-ip', '127.0.0.1', '--host', 'brick-lab', ...args], { timeoutMs: 60_000, checkExitCode: false });
  // With --json an error is a JSON document on stdout; keep both streams for the message checks.
  return { ...(r.exitCode === 0 ? { doc: JSON.parse(r.stdout) as Record<string, unknown> } : {}), exitCode: r.exitCode, stderr: `${r.stderr}${r.exitCode === 0 ? '' : r.stdout}` };
}

function compare(ours: Record<string, unknown>, theirs: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(theirs)) assert.deepEqual(ours[k], v, `key ${JSON.stringify(k)}: Brick ${JSON.stringify(ours[k])}, os-brick ${JSON.stringify(v)}`);
  const extra = Object.keys(ours).filter((k) => !(k in theirs) && !BRICK_EXTRA_KEYS.includes(k));
  assert.deepEqual(extra, [], `keys only Brick reports: ${extra.join(', ')}`);
}

async function stopMultipathd(): Promise<void> {
  await run(['multipathd', 'shutdown'], { checkExitCode: false, timeoutMs: 30_000 });
  await waitFor(() => !fs.existsSync('/run/multipathd.pid'), { timeoutMs: 30_000, description: 'multipathd to stop' });
}

before(async () => {
  if (haveOsBrick) await startInitiatorDaemons({ initiatorIqn: LAB_INITIATOR_IQN });
});

after(async () => {
  // Leave multipathd running for the next test file.
  if (haveOsBrick) await startInitiatorDaemons({ initiatorIqn: LAB_INITIATOR_IQN });
});

test('with multipathd running: Brick reports what os-brick 6.1 reports, key by key', { skip: !haveOsBrick && 'python3-os-brick is not installed' }, async () => {
  for (const multipath of [true, false]) {
    const theirs = await osBrick(multipath, false);
    assert.equal(typeof theirs, 'object', `os-brick failed: ${String(theirs)}`);
    const ours = await brick(multipath ? ['--multipath'] : []);
    assert.equal(ours.exitCode, 0, ours.stderr);
    console.log(`multipath ${multipath}: os-brick ${JSON.stringify(theirs)}\n  brick ${JSON.stringify(ours.doc)}`);
    compare(ours.doc!, theirs as Record<string, unknown>);
    assert.equal(ours.doc!.multipath, multipath);
  }
});

test('without multipathd: multipath false for both, and an error for both when it is enforced', { skip: !haveOsBrick && 'python3-os-brick is not installed' }, async () => {
  await stopMultipathd();
  const theirs = await osBrick(true, false);
  assert.equal(typeof theirs, 'object', `os-brick failed: ${String(theirs)}`);
  const ours = await brick(['--multipath']);
  assert.equal(ours.exitCode, 0, ours.stderr);
  compare(ours.doc!, theirs as Record<string, unknown>);
  assert.equal(ours.doc!.multipath, false);

  const theirsEnforced = await osBrick(true, true);
  assert.equal(typeof theirsEnforced, 'string', 'os-brick raises when multipath is enforced without multipathd');
  const oursEnforced = await brick(['--multipath', '--enforce-multipath']);
  assert.notEqual(oursEnforced.exitCode, 0);
  assert.match(oursEnforced.stderr, /multipathd is not running/);
});
