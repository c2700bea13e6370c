import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProcessExecutor } from '../../../src/exec/executor.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { maskArgv, maskText, maskObject } from '../../../src/exec/mask.js';
import { ProcessExecutionError, ProcessTimeoutError } from '../../../src/errors.js';
import { createCapturingLogger } from '../../../src/log.js';

test('runs an argv without a shell: metacharacters reach the program literally', async () => {
  const ex = new ProcessExecutor();
  const r = await ex.run(['printf', '%s', '$(id); echo hi'], { root: false });
  assert.equal(r.stdout, '$(id); echo hi');
  assert.equal(r.exitCode, 0);
});

test('non-zero exit raises ProcessExecutionError with the masked command and stderr', async () => {
  const ex = new ProcessExecutor();
  await assert.rejects(
    ex.run(['sh', '-c', 'echo "bad s3cr3t" >&2; exit 3', 'x', 's3cr3t'], { root: false, secrets: ['s3cr3t'] }),
    (e: unknown) => {
      assert.ok(e instanceof ProcessExecutionError);
      assert.equal(e.exitCode, 3);
      assert.ok(!e.message.includes('s3cr3t'), e.message);
      assert.ok(!JSON.stringify(e.command).includes('s3cr3t'));
      assert.match(e.stderr, /bad \*\*\*/);
      return true;
    },
  );
});

test('accepted exit codes and checkExitCode false', async () => {
  const ex = new ProcessExecutor();
  assert.equal((await ex.run(['sh', '-c', 'exit 21'], { root: false, checkExitCode: [0, 21] })).exitCode, 21);
  assert.equal((await ex.run(['false'], { root: false, checkExitCode: false })).exitCode, 1);
});

test('timeout kills the whole process group and raises ProcessTimeoutError', async () => {
  const ex = new ProcessExecutor();
  const t0 = Date.now();
  await assert.rejects(ex.run(['sh', '-c', 'sleep 5 & sleep 5; wait'], { root: false, timeoutMs: 200 }), ProcessTimeoutError);
  assert.ok(Date.now() - t0 < 3000);
});

test('a missing program is a ProcessExecutionError with status 127', async () => {
  const ex = new ProcessExecutor();
  await assert.rejects(ex.run(['/nonexistent/brick-no-such-tool'], { root: false }), (e: unknown) => e instanceof ProcessExecutionError && e.exitCode === 127);
});

test('stdin carries input (the way secrets reach a program)', async () => {
  const ex = new ProcessExecutor();
  assert.equal((await ex.run(['cat'], { root: false, input: 'hello' })).stdout, 'hello');
});

test('root helper prefixes privileged commands only', async () => {
  const ex = new RecordingExecutor({ rootHelper: ['sudo', '-n'] });
  ex.on(['losetup'], { stdout: '/dev/loop3\n' }).on(['true'], {});
  await ex.run(['losetup', '--find']);
  await ex.run(['true'], { root: false });
  assert.deepEqual(ex.calls.map((c) => c.argv), [['sudo', '-n', 'losetup', '--find'], ['true']]);
  assert.deepEqual(ex.commands(), ['losetup --find', 'true']);
});

test('the recording executor fails unexpected commands and honours checkExitCode', async () => {
  const ex = new RecordingExecutor();
  await assert.rejects(ex.run(['rm', '-rf', '/']), (e: unknown) => e instanceof ProcessExecutionError && e.exitCode === 127);
  ex.on(/^iscsiadm -m session/, { exitCode: 21, stderr: 'No active sessions' });
  await assert.rejects(ex.run(['iscsiadm', '-m', 'session']), ProcessExecutionError);
  assert.equal((await ex.run(['iscsiadm', '-m', 'session'], { checkExitCode: [0, 21] })).exitCode, 21);
});

test('masking: argv values after secret options, key=value text, nested objects', () => {
  assert.deepEqual(maskArgv(['iscsiadm', '-o', 'update', '-n', 'node.session.auth.password', '-v', 'pw1']), ['iscsiadm', '-o', 'update', '-n', 'node.session.auth.password', '-v', '***']);
  assert.deepEqual(maskArgv(['tool', '--password', 'pw2', 'x']), ['tool', '--password', '***', 'x']);
  assert.equal(maskText('auth_password=abc other=1'), 'auth_password=*** other=1');
  assert.equal(maskText('{"auth_password": "abc", "a": "b"}'), '{"auth_password": "***", "a": "b"}');
  assert.deepEqual(maskObject({ data: { auth_password: 'x', discovery_auth_password: 'y', target_iqn: 'iqn' }, list: [{ san_password: 'z' }] }), {
    data: { auth_password: '***', discovery_auth_password: '***', target_iqn: 'iqn' },
    list: [{ san_password: '***' }],
  });
});

test('pino redaction hides password-like keys at depth', () => {
  const cap = createCapturingLogger();
  cap.logger.info({ auth_password: 'p1', data: { discovery_auth_password: 'p2', san_password: 'p3', target_iqn: 'iqn.x' } }, 'connecting');
  const text = cap.text();
  for (const s of ['p1', 'p2', 'p3']) assert.ok(!text.includes(`"${s}"`), `${s} leaked: ${text}`);
  assert.ok(text.includes('iqn.x'));
});
