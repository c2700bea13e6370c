import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { doctorExitCode, doctorFromConfig, printDoctorReport } from '../../../src/cli/host-doctor.js';
import type { DoctorReport } from '../../../src/host/doctor.js';
import { createFixtureTree, fixtureContext, type FixtureTree } from '../../../src/testing/index.js';

/** What `fn` writes to stdout. */
function captured(fn: () => void): string {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    fn();
  } finally {
    process.stdout.write = write;
  }
  return out;
}

const failing: DoctorReport = {
  ok: false,
  checks: [
    { name: 'iscsid', ok: true, severity: 'info', message: 'iscsid is running', fix: null },
    { name: 'multipathd', ok: false, severity: 'error', message: 'multipathd is not running', fix: 'systemctl enable --now multipathd' },
    { name: 'multipath skip_kpartx', ok: false, severity: 'warning', message: 'skip_kpartx is no', fix: 'in /etc/multipath.conf: defaults { skip_kpartx yes }' },
  ],
};

describe('brick host doctor (CLI)', () => {
  let dir: string;
  let tree: FixtureTree;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'brick-doctor-cli-'));
    tree = createFixtureTree({ '/proc/net/unix': 'Num RefCount Protocol Flags Type St Inode Path\n' });
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    tree.cleanup();
  });

  it('--json prints { ok, checks: [{ name, ok, severity, message, fix }] }', () => {
    const doc = JSON.parse(captured(() => printDoctorReport(true, failing))) as Record<string, unknown>;
    assert.deepEqual(Object.keys(doc), ['ok', 'checks']);
    assert.equal(doc.ok, false);
    assert.deepEqual(doc.checks, failing.checks);
  });

  it('the table names each check, its fix, and says whether an attach would fail', () => {
    const text = captured(() => printDoctorReport(false, failing));
    assert.match(text, /multipathd .*FAILED .*error .*systemctl enable --now multipathd/);
    assert.match(text, /host NOT ready: 1 error\(s\), 1 warning\(s\); an attach would fail\n$/);
    const ready = captured(() => printDoctorReport(false, { ok: true, checks: [failing.checks[0]!, failing.checks[2]!] }));
    assert.match(ready, /host ready: 1 warning\(s\)\n$/);
  });

  it('exit status 1 when an error failed, 0 with warnings only', () => {
    assert.equal(doctorExitCode(failing), 1);
    assert.equal(doctorExitCode({ ok: true, checks: [failing.checks[2]!] }), 0);
  });

  it("judges the configuration's lock_path and data_dir, and the loop module only as a warning without a file backend", async () => {
    const config = join(dir, 'brick.yaml');
    writeFileSync(config, `lock_path: /proc/brick-locks\ndata_dir: ${join(dir, 'data')}\nbackends:\n  - volume_backend_name: lvm\n    volume_driver: lvm\n    volume_group: vg\n`);
    const { ctx, executor } = fixtureContext(tree.root);
    executor.on(['iscsiadm', '--version'], { exitCode: 127 });
    executor.on(['multipath', '-t'], { exitCode: 127 });
    executor.on(['udevadm', 'control', '--ping'], { exitCode: 1 });
    executor.on(['modprobe', '-n', '-v'], { exitCode: 1, stderr: 'modprobe: FATAL: Module not found\n' });
    const r = await doctorFromConfig({ config }, {}, { multipath: true, protocol: 'ISCSI' }, ctx);
    const by = new Map(r.checks.map((c) => [c.name, c]));
    assert.equal(r.ok, false);
    assert.match(by.get('lock_path')!.message, /lock_path \/proc\/brick-locks: is under \/proc/);
    assert.equal(by.get('data_dir')!.ok, true);
    assert.equal(by.get('module loop')!.severity, 'warning');
    assert.equal(by.get('nvme hostnqn')!.severity, 'warning', 'NVMe-oF not among --protocol');
    assert.equal(by.get('iscsid')!.severity, 'error');
  });
});
