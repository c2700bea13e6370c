/**
 * Lab test of `brick host doctor` on the real lab host: with the initiator daemons up it passes
 * (warnings allowed); with multipathd stopped, or with the initiator name file moved away, it
 * exits 1 and names the failed check and its fix. Every change is undone at the end.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startInitiatorDaemons, run, waitFor, LAB_SCRATCH } from './fixtures/index.js';
import type { DoctorCheck } from '../../src/host/doctor.js';

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const DAEMONS = { multipathDefaults: ['skip_kpartx yes'] };
const INITIATOR = '/etc/iscsi/initiatorname.iscsi';
const dir = join(LAB_SCRATCH, `doctor-${process.pid}`);
const config = join(dir, 'brick.yaml');

interface Outcome {
  code: number | null;
  ok: boolean;
  checks: DoctorCheck[];
}

async function doctor(): Promise<Outcome> {
  const r = await run([process.execPath, CLI, '--config', config, 'host', 'doctor', '--json'], { checkExitCode: false, timeoutMs: 120_000 });
  const doc = JSON.parse(r.stdout) as { ok: boolean; checks: DoctorCheck[] };
  return { code: r.exitCode, ...doc };
}

function check(o: Outcome, name: string): DoctorCheck {
  const c = o.checks.find((x) => x.name === name);
  assert.ok(c, `no check named ${name} in ${o.checks.map((x) => x.name).join(', ')}`);
  return c;
}

function multipathdPids(): string[] {
  return fs.readdirSync('/proc').filter((e) => {
    if (!/^\d+$/.test(e)) return false;
    try {
      return fs.readFileSync(`/proc/${e}/comm`, 'utf8').trim() === 'multipathd' && !/\) Z/.test(fs.readFileSync(`/proc/${e}/stat`, 'utf8'));
    } catch {
      return false;
    }
  });
}

before(async () => {
  await startInitiatorDaemons(DAEMONS);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(config, `lock_path: ${join(dir, 'locks')}\ndata_dir: ${join(dir, 'data')}\n`);
});

after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a healthy lab host passes: no errors, exit 0', async () => {
  const text = await run([process.execPath, CLI, '--config', config, 'host', 'doctor'], { checkExitCode: false, timeoutMs: 120_000 });
  console.log(text.stdout);
  const o = await doctor();
  assert.equal(o.code, 0, JSON.stringify(o.checks.filter((c) => !c.ok), null, 2));
  assert.equal(o.ok, true);
  assert.deepEqual(o.checks.filter((c) => !c.ok && c.severity === 'error'), []);
  for (const name of ['iscsid', 'iscsi initiator name', 'iscsi manual scan', 'multipathd', 'multipath skip_kpartx', 'multipath user_friendly_names', 'udev', 'nvme hostnqn', 'nvme hostid', 'module iscsi_tcp', 'module dm_multipath', 'module nvme_tcp', 'lock_path', 'data_dir']) {
    assert.equal(check(o, name).ok, true, `${name}: ${check(o, name).message}`);
  }
  // The lab runs multipathd with find_multipaths no: a warning, with the line to use.
  const fm = check(o, 'multipath find_multipaths');
  assert.equal(fm.ok, false);
  assert.equal(fm.severity, 'warning');
  assert.match(fm.fix ?? '', /find_multipaths yes/);
});

test('multipathd stopped: exit 1, the multipathd check fails naming how to start it', async () => {
  await run(['multipathd', 'shutdown'], { checkExitCode: false, timeoutMs: 30_000 });
  await waitFor(() => multipathdPids().length === 0, { timeoutMs: 20_000, intervalMs: 100, description: 'multipathd to exit' });
  fs.rmSync('/run/multipathd.pid', { force: true });
  try {
    const o = await doctor();
    assert.equal(o.code, 1);
    assert.equal(o.ok, false);
    const c = check(o, 'multipathd');
    assert.equal(c.ok, false);
    assert.equal(c.severity, 'error');
    assert.match(c.message, /not running/);
    assert.match(c.fix ?? '', /multipathd/);
    // The settings are still judged, from `multipath -t`.
    assert.match(check(o, 'multipath skip_kpartx').message, /multipath -t/);
  } finally {
    await startInitiatorDaemons(DAEMONS);
  }
  assert.equal((await doctor()).code, 0);
});

test('initiator name file moved away: exit 1, the check fails naming iscsi-iname', async () => {
  const saved = `${INITIATOR}.doctor-test`;
  fs.renameSync(INITIATOR, saved);
  try {
    const o = await doctor();
    assert.equal(o.code, 1);
    const c = check(o, 'iscsi initiator name');
    assert.equal(c.ok, false);
    assert.equal(c.severity, 'error');
    assert.match(c.message, /initiatorname\.iscsi is missing/);
    assert.match(c.fix ?? '', /iscsi-iname/);
  } finally {
    fs.renameSync(saved, INITIATOR);
  }
  assert.equal((await doctor()).code, 0);
});
