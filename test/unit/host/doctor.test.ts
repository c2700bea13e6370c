import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { InvalidInputError } from '../../../src/errors.js';
import type { HostContext } from '../../../src/host/context.js';
import { parseMultipathDefaults, runHostDoctor, type DoctorCheck, type DoctorReport, type HostDoctorOptions } from '../../../src/host/doctor.js';
import { createFixtureTree, fixtureContext, RecordingExecutor, type FixtureTree } from '../../../src/testing/index.js';

/** `multipathd show config` as multipath-tools 0.9 prints it (abridged), with the settings given. */
function showConfig(settings: Record<string, string>): string {
  const lines = Object.entries(settings).map(([k, v]) => `\t${k} "${v}"`);
  return ['defaults {', '\tverbosity 2', ...lines, '\tpolling_interval 5', '}', 'blacklist {', '\tdevnode "!^(sd[a-z]|dasd[a-z]|nvme[0-9])"', '}', 'devices {', '\tdevice {', '\t\tvendor "LIO-ORG"', '\t\tuser_friendly_names "yes"', '\t}', '}', ''].join('\n');
}

const GOOD_MULTIPATH = { find_multipaths: 'yes', user_friendly_names: 'no', skip_kpartx: 'yes' };
const MODULES = ['iscsi_tcp', 'dm_multipath', 'nvme_fabrics', 'nvme_tcp', 'loop', 'scsi_transport_fc'];
const UNIX_HEADER = 'Num       RefCount Protocol Flags    Type St Inode Path\n';

describe('brick host doctor', () => {
  let tree: FixtureTree;
  let ctx: HostContext;
  let executor: RecordingExecutor;
  let scratch: string;

  beforeEach(() => {
    tree = createFixtureTree({
      '/run/iscsid.pid': '100\n',
      '/proc/100/comm': 'iscsid\n',
      '/run/multipathd.pid': '200\n',
      '/proc/200/comm': 'multipathd\n',
      '/proc/net/unix': UNIX_HEADER,
      '/etc/iscsi/initiatorname.iscsi': '## DO NOT EDIT\nInitiatorName=iqn.2026-12.org.example:host1\n',
      '/usr/sbin/iscsiadm': '\x7fELF....node.startup\0node.session.scan\0node.conn[0].startup\0',
      '/run/udev/control': '',
      '/etc/nvme/hostnqn': 'nqn.2014-08.org.nvmexpress:uuid:7b2c5e3a-0d3f-4c59-9a57-2f6c1d0e4b11\n',
      '/etc/nvme/hostid': '7b2c5e3a-0d3f-4c59-9a57-2f6c1d0e4b11\n',
      ...Object.fromEntries(MODULES.map((m) => [`/sys/module/${m}`, { dir: true as const }])),
    });
    ({ ctx, executor } = fixtureContext(tree.root));
    executor.on(['iscsiadm', '--version'], { stdout: 'iscsiadm version 2.1.8\n' });
    executor.on(['multipathd', 'show', 'config'], { stdout: showConfig(GOOD_MULTIPATH) });
    scratch = mkdtempSync(join(tmpdir(), 'brick-doctor-'));
  });
  afterEach(() => {
    tree.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });

  const uid = process.geteuid?.() ?? 0;
  const doctor = (options: HostDoctorOptions = {}): Promise<DoctorReport> => runHostDoctor(ctx, { uid, ...options });
  const find = (r: DoctorReport, name: string): DoctorCheck => {
    const c = r.checks.find((x) => x.name === name);
    assert.ok(c, `no check ${name}`);
    return c;
  };

  it('passes a healthy host: every check ok, nothing to fix, only read-only commands run', async () => {
    const r = await doctor();
    assert.equal(r.ok, true);
    assert.deepEqual(r.checks.filter((c) => !c.ok), []);
    for (const c of r.checks) {
      assert.deepEqual(Object.keys(c).sort(), ['fix', 'message', 'name', 'ok', 'severity']);
      assert.equal(c.severity, 'info');
      assert.equal(c.fix, null);
    }
    assert.deepEqual(executor.commands(), ['iscsiadm --version', 'multipathd show config']);
    assert.match(find(r, 'iscsi initiator name').message, /iqn\.2026-12\.org\.example:host1/);
    assert.match(find(r, 'iscsi manual scan').message, /iscsiadm 2\.1\.8 supports node\.session\.scan/);
  });

  it('iscsid down: an error naming how to start it; its listening socket (socket activation) counts as up', async () => {
    tree.remove('/run/iscsid.pid');
    tree.remove('/proc/100');
    let r = await doctor();
    const c = find(r, 'iscsid');
    assert.equal(r.ok, false);
    assert.deepEqual([c.ok, c.severity], [false, 'error']);
    assert.match(c.message, /can't connect to iscsid/);
    assert.match(c.fix ?? '', /systemctl enable --now iscsid/);
    tree.write({ '/proc/net/unix': `${UNIX_HEADER}0000000000000000: 00000002 00000000 00010000 0001 01 22334 @ISCSIADM_ABSTRACT_NAMESPACE\n` });
    r = await doctor();
    assert.equal(find(r, 'iscsid').ok, true);
    assert.equal(r.ok, true);
  });

  it('initiator name missing or not generated yet: an error whose fix generates one with iscsi-iname', async () => {
    tree.remove('/etc/iscsi/initiatorname.iscsi');
    let c = find(await doctor(), 'iscsi initiator name');
    assert.deepEqual([c.ok, c.severity], [false, 'error']);
    assert.match(c.message, /is missing/);
    assert.match(c.fix ?? '', /InitiatorName=\$\(iscsi-iname\)/);
    tree.write({ '/etc/iscsi/initiatorname.iscsi': 'GenerateName=yes\n' });
    c = find(await doctor(), 'iscsi initiator name');
    assert.equal(c.ok, false);
    assert.match(c.message, /GenerateName=yes/);
    tree.write({ '/etc/iscsi/initiatorname.iscsi': 'InitiatorName=host1\n' });
    assert.match(find(await doctor(), 'iscsi initiator name').message, /not an iqn\./);
  });

  it('iSCSI problems are warnings on a host that attaches only with NVMe-oF', async () => {
    tree.remove('/etc/iscsi/initiatorname.iscsi');
    const r = await doctor({ protocols: ['NVMEOF'], multipath: false });
    assert.equal(find(r, 'iscsi initiator name').severity, 'warning');
    assert.equal(r.ok, true);
  });

  it('multipathd stopped: an error; the settings are still judged from multipath -t', async () => {
    tree.remove('/run/multipathd.pid');
    tree.remove('/proc/200');
    executor.on(['multipath', '-t'], { stdout: showConfig(GOOD_MULTIPATH) });
    const r = await doctor();
    const c = find(r, 'multipathd');
    assert.equal(r.ok, false);
    assert.deepEqual([c.ok, c.severity], [false, 'error']);
    assert.match(c.fix ?? '', /systemctl enable --now multipathd/);
    assert.ok(executor.commands().includes('multipath -t'));
    assert.ok(!executor.commands().includes('multipathd show config'));
    assert.match(find(r, 'multipath skip_kpartx').message, /skip_kpartx yes \(multipath -t\)/);
    // A host without multipath: only a warning.
    const single = await doctor({ multipath: false });
    assert.equal(find(single, 'multipathd').severity, 'warning');
    assert.equal(single.ok, true);
  });

  it('bad multipath settings: one warning each with the multipath.conf line that fixes it', async () => {
    executor.on(['multipathd', 'show', 'config'], { stdout: showConfig({ find_multipaths: 'no', user_friendly_names: 'yes', skip_kpartx: 'no' }) });
    const r = await doctor();
    assert.equal(r.ok, true, 'warnings do not fail the host');
    const want: Record<string, string> = { find_multipaths: 'find_multipaths yes', user_friendly_names: 'user_friendly_names no', skip_kpartx: 'skip_kpartx yes' };
    for (const [key, line] of Object.entries(want)) {
      const c = find(r, `multipath ${key}`);
      assert.deepEqual([c.ok, c.severity], [false, 'warning'], key);
      assert.ok(c.fix?.includes(`defaults { ${line} }`), c.fix ?? '');
      assert.match(c.fix ?? '', /multipathd reconfigure/);
    }
    assert.match(find(r, 'multipath skip_kpartx').message, /2078973/);
  });

  it('an unreadable multipath configuration is a warning saying why', async () => {
    executor.on(['multipathd', 'show', 'config'], { exitCode: 1, stderr: 'error -13 receiving packet\n' });
    const c = find(await doctor(), 'multipath config');
    assert.deepEqual([c.ok, c.severity], [false, 'warning']);
    assert.match(c.message, /error -13 receiving packet/);
  });

  it('udev: the control socket, else udevadm control --ping; neither is an error', async () => {
    tree.remove('/run/udev/control');
    executor.on(['udevadm', 'control', '--ping'], { exitCode: 0 }, 1);
    assert.equal(find(await doctor(), 'udev').ok, true);
    executor.on(['udevadm', 'control', '--ping'], { exitCode: 1, stderr: 'Failed to connect to udev daemon' });
    const c = find(await doctor(), 'udev');
    assert.deepEqual([c.ok, c.severity], [false, 'error']);
    assert.match(c.fix ?? '', /systemd-udevd/);
  });

  it('missing NVMe host NQN and host id: errors with nvme gen-hostnqn and uuidgen; warnings when NVMe-oF is not used', async () => {
    tree.remove('/etc/nvme/hostnqn');
    tree.write({ '/etc/nvme/hostid': 'not-a-uuid\n' });
    let r = await doctor();
    const nqn = find(r, 'nvme hostnqn');
    const id = find(r, 'nvme hostid');
    assert.deepEqual([nqn.ok, nqn.severity, id.ok, id.severity], [false, 'error', false, 'error']);
    assert.match(nqn.fix ?? '', /nvme gen-hostnqn > \/etc\/nvme\/hostnqn/);
    assert.match(id.fix ?? '', /uuidgen > \/etc\/nvme\/hostid/);
    assert.match(id.message, /not a UUID/);
    r = await doctor({ protocols: ['ISCSI'] });
    assert.equal(find(r, 'nvme hostnqn').severity, 'warning');
    assert.equal(r.ok, true);
  });

  it('kernel modules: loadable counts as ok; missing fails by the protocols that need it', async () => {
    tree.remove('/sys/module/nvme_tcp');
    tree.remove('/sys/module/iscsi_tcp');
    tree.remove('/sys/module/scsi_transport_fc');
    executor.on(['modprobe', '-n', '-v', 'iscsi_tcp'], { stdout: 'insmod /lib/modules/6.1.0/kernel/drivers/scsi/iscsi_tcp.ko\n' });
    executor.on(['modprobe', '-n', '-v', 'nvme_tcp'], { exitCode: 1, stderr: 'modprobe: FATAL: Module nvme_tcp not found in directory /lib/modules/6.1.0\n' });
    executor.on(['modprobe', '-n', '-v', 'scsi_transport_fc'], { exitCode: 1, stderr: 'modprobe: FATAL: Module scsi_transport_fc not found\n' });
    let r = await doctor();
    assert.equal(find(r, 'module iscsi_tcp').ok, true);
    assert.match(find(r, 'module iscsi_tcp').message, /loadable \(insmod/);
    const nvme = find(r, 'module nvme_tcp');
    assert.deepEqual([nvme.ok, nvme.severity], [false, 'error']);
    assert.match(nvme.message, /not found in directory/);
    assert.match(nvme.fix ?? '', /modprobe nvme_tcp/);
    assert.equal(find(r, 'module scsi_transport_fc').severity, 'info', 'Fibre Channel is optional unless asked for');
    assert.equal(r.ok, false);
    r = await doctor({ protocols: ['ISCSI', 'FIBRE_CHANNEL'] });
    assert.equal(find(r, 'module nvme_tcp').severity, 'warning');
    assert.equal(find(r, 'module scsi_transport_fc').severity, 'error');
  });

  it('manual scan: an iscsiadm without node.session.scan, or no iscsiadm at all', async () => {
    tree.write({ '/usr/sbin/iscsiadm': '\x7fELF....node.startup\0' });
    executor.on(['iscsiadm', '--version'], { stdout: 'iscsiadm version 2.0.873\n' });
    let c = find(await doctor(), 'iscsi manual scan');
    assert.deepEqual([c.ok, c.severity], [false, 'warning']);
    assert.match(c.message, /iscsiadm 2\.0\.873 does not know node\.session\.scan/);
    tree.remove('/usr/sbin/iscsiadm');
    executor.on(['iscsiadm', '--version'], { stdout: 'iscsiadm version 2.0.874\n' });
    assert.equal(find(await doctor(), 'iscsi manual scan').ok, true, 'judged by version when the program cannot be read');
    executor.on(['iscsiadm', '--version'], { exitCode: 127, stderr: 'spawn iscsiadm ENOENT' });
    c = find(await doctor(), 'iscsi manual scan');
    assert.deepEqual([c.ok, c.severity], [false, 'error']);
    assert.match(c.message, /not installed/);
  });

  it('lock and data directories: an unsafe one is an error, a missing one is fine and is not created', async () => {
    const lock = join(scratch, 'locks');
    mkdirSync(lock);
    chmodSync(lock, 0o777);
    const data = join(scratch, 'data', 'brick');
    const r = await doctor({ directories: { lock_path: lock, data_dir: data } });
    const l = find(r, 'lock_path');
    assert.deepEqual([l.ok, l.severity], [false, 'error']);
    assert.match(l.message, /writable by group or others \(mode 777\)/);
    assert.match(l.fix ?? '', /mkdir -p -m 0700/);
    const d = find(r, 'data_dir');
    assert.equal(d.ok, true);
    assert.match(d.message, /does not exist yet/);
    assert.equal(existsSync(join(scratch, 'data')), false, 'the doctor creates nothing');
    assert.equal(r.ok, false);
    const proc = find(await doctor({ directories: { lock_path: '/proc/brick' } }), 'lock_path');
    assert.match(proc.message, /under \/proc/);
  });

  it('refuses an unknown protocol before running anything', async () => {
    await assert.rejects(doctor({ protocols: ['ISCSI', 'SMOKE_SIGNALS'] }), (e: unknown) => e instanceof InvalidInputError && e.field === 'protocols');
    assert.deepEqual(executor.calls, []);
  });
});

describe('parseMultipathDefaults', () => {
  it('reads the defaults section only, quotes and comments removed, the last value winning', () => {
    const text = ['# comment', 'defaults {', '  user_friendly_names yes', '  find_multipaths "smart"   # why', '  skip_kpartx no', '  skip_kpartx "yes"', '}', 'devices {', '  device {', '    skip_kpartx no', '  }', '}'].join('\n');
    const d = parseMultipathDefaults(text);
    assert.deepEqual(Object.fromEntries(d), { user_friendly_names: 'yes', find_multipaths: 'smart', skip_kpartx: 'yes' });
    assert.equal(parseMultipathDefaults('blacklist {\n  devnode ".*"\n}\n').size, 0);
  });
});
