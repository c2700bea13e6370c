/**
 * The CLI's edges (issue #13, defect 8), unit level: the exit-status table in the help, usage
 * helpers, terminal escaping, the connector document check and the up-front backend check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Option } from 'commander';
import { EXIT_STATUSES, exitStatusHelp, jsonRequested, optionField } from '../../../src/cli/usage.js';
import { escapeForTerminal } from '../../../src/cli/output.js';
import { validateConnectorProperties } from '../../../src/cli/connector-document.js';
import { checkBackends, parseConfig } from '../../../src/cli/config.js';
import { requireRootHelper } from '../../../src/cli/privilege.js';
import { BrickError, InvalidConfigError, InvalidInputError, NotFoundError, PrivilegeError, exitCodeFor, type BrickErrorCode } from '../../../src/errors.js';
import type { Executor } from '../../../src/exec/executor.js';
import '../../../src/drivers/index.js';

// Every code, checked complete by the compiler: a new code must be placed in the help's table.
const everyCode: Record<BrickErrorCode, true> = {
  BRICK_ERROR: true, INVALID_INPUT: true, INVALID_CONFIG: true, NOT_FOUND: true, INVALID_STATE: true, ALREADY_EXISTS: true,
  INSUFFICIENT_CAPACITY: true, PROCESS_EXECUTION: true, PROCESS_TIMEOUT: true, PRIVILEGE_REQUIRED: true, LOCK_TIMEOUT: true,
  RETRY_EXHAUSTED: true, PROTOCOL_NOT_SUPPORTED: true, VOLUME_DEVICE_NOT_FOUND: true, VOLUME_PATH_NOT_REMOVED: true,
  TARGET_PORTAL_LOGIN_FAILED: true, AUTHENTICATION_FAILED: true, BACKEND_ERROR: true, BACKEND_UNREACHABLE: true,
  EXTEND_FAILED: true, PERSISTENCE_ERROR: true, ENCRYPTION_FAILED: true,
};

test('the help lists every exit status 0-10, each error code under the status exitCodeFor gives it', () => {
  assert.deepEqual(EXIT_STATUSES.map((e) => e.status), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  const listed = EXIT_STATUSES.flatMap((e) => e.codes.map((code) => [code, e.status] as const));
  assert.deepEqual(listed.map(([c]) => c).sort(), (Object.keys(everyCode) as BrickErrorCode[]).sort(), 'every code listed once');
  for (const [code, status] of listed) assert.equal(exitCodeFor(new BrickError('', code)), status, code);
  assert.equal(exitCodeFor(new Error('x')), 1);
  for (const e of EXIT_STATUSES) assert.match(exitStatusHelp(), new RegExp(`^ {2}${e.status} {2}${e.meaning}`, 'm'));
});

test('usage helpers: --json before any --, option fields in snake_case', () => {
  assert.equal(jsonRequested(['volume', 'create', '--json']), true);
  assert.equal(jsonRequested(['--json', 'nosuch']), true);
  assert.equal(jsonRequested(['kv', 'set', '--', 'k', '--json']), false);
  assert.equal(jsonRequested(['volume', 'list']), false);
  assert.equal(optionField(new Option('--device-scan-attempts <n>')), 'device_scan_attempts');
  assert.equal(optionField(new Option('-b, --backend <name>')), 'backend');
  assert.equal(optionField(new Option('-x')), 'x');
});

test('escapeForTerminal: controls, ANSI escapes and bidi overrides escaped; other text unchanged', () => {
  assert.equal(escapeForTerminal('plain name ünïcödé 名前 C:\\path'), 'plain name ünïcödé 名前 C:\\path');
  assert.equal(escapeForTerminal('a\x1b[31mred\x1b[0m'), 'a\\x1b[31mred\\x1b[0m');
  assert.equal(escapeForTerminal('l1\nl2\r\tx\x00\x07\x7f\x9b'), 'l1\\nl2\\r\\tx\\x00\\x07\\x7f\\x9b');
  assert.equal(escapeForTerminal('abc\u202edef\u2066'), 'abc\\u202edef\\u2066');
});

test('the connector document: os-brick keys type-checked and named; unknown keys kept', () => {
  const good = { platform: 'x86_64', os_type: 'linux', ip: '192.0.2.1', host: 'h1', multipath: false, enforce_multipath: false, initiator: 'iqn.1993-08.org.debian:01:x', nqn: 'nqn.2014-08.org.nvmexpress:uuid:x', wwpns: ['5001438004a1b2c3'], wwnns: ['5001438004a1b2c0'], do_local_attach: false, extra: { any: 1 } };
  assert.equal(validateConnectorProperties(good), good);
  assert.deepEqual(validateConnectorProperties({ host: 'h', initiator: null }), { host: 'h', initiator: null });
  const bad: [unknown, string][] = [
    [{ host: 5 }, 'host'],
    [{ host: '' }, 'host'],
    [{ ip: ['192.0.2.1'] }, 'ip'],
    [{ multipath: 'true' }, 'multipath'],
    [{ enforce_multipath: 1 }, 'enforce_multipath'],
    [{ wwpns: '5001438004a1b2c3' }, 'wwpns'],
    [{ wwnns: [5] }, 'wwnns'],
    [{ initiator: {} }, 'initiator'],
    [{ nqn: 7 }, 'nqn'],
    [{ platform: false }, 'platform'],
    [{ os_type: 1 }, 'os_type'],
    [{ do_local_attach: 'no' }, 'do_local_attach'],
    [[], 'connector'],
    ['host', 'connector'],
    [null, 'connector'],
  ];
  for (const [doc, field] of bad) {
    assert.throws(() => validateConnectorProperties(doc), (e: unknown) => e instanceof InvalidInputError && e.field === field, JSON.stringify(doc));
  }
});

test('checkBackends: an unknown volume_driver names the file and key; an unknown --backend is NOT_FOUND; aliases pass', () => {
  const env = { HOME: '/home/u' };
  const bad = parseConfig('backends:\n  - {volume_backend_name: a, volume_driver: file}\n  - {volume_backend_name: b, volume_driver: nosuch}\n', '/etc/brick.yaml', env);
  assert.throws(
    () => checkBackends(bad, undefined),
    (e: unknown) => e instanceof InvalidConfigError && e.field === 'volume_driver' && /^\/etc\/brick\.yaml: backends\.1\.volume_driver: "nosuch" is not a known driver/.test(e.message),
  );
  const good = parseConfig('backends:\n  - {volume_backend_name: a, volume_driver: cinder.volume.drivers.lvm.LVMVolumeDriver, volume_group: vg}\n', 'b.yaml', env);
  checkBackends(good, 'a');
  checkBackends(good, undefined);
  assert.throws(() => checkBackends(good, 'zz'), (e: unknown) => e instanceof NotFoundError && e.field === 'backend');
});

test('requireRootHelper: root passes without running anything; no helper or a failing helper is PRIVILEGE_REQUIRED', async () => {
  const ran: string[][] = [];
  const executor = (rootHelper: string[], works: boolean): Executor => ({
    rootHelper,
    run: async (argv) => {
      ran.push([...argv]);
      if (!works) throw new Error('sudo: a password is required');
      return { stdout: '', stderr: '', exitCode: 0 } as never;
    },
  });
  await requireRootHelper(executor([], false), 0, 'x needs a device', 'losetup');
  assert.deepEqual(ran, []);
  await assert.rejects(requireRootHelper(executor([], true), 1000, 'x needs a device', 'losetup'), (e: unknown) => e instanceof PrivilegeError && /^x needs a device, which needs root: .*Nothing was changed\.$/.test(e.message));
  await assert.rejects(requireRootHelper(executor(['sudo', '-n'], false), 1000, 'x', 'losetup'), (e: unknown) => e instanceof PrivilegeError && /root helper "sudo -n" does not work .*NOPASSWD for losetup/.test(e.message));
  await requireRootHelper(executor(['sudo', '-n'], true), 1000, 'x', 'losetup');
  assert.deepEqual(ran, [['true'], ['true']]);
});
