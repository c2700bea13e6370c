/**
 * The brick CLI as a user runs it: JSON output, exit codes, and errors that name the field.
 */
import { createHostContext } from '../../src/host/context.js';
import { isMultipathdRunning } from '../../src/host/multipath.js';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
let dir: string;
const run = promisify(execFile);

function brick(args: string[], extraEnv: Record<string, string> = {}): { code: number; out: string; err: string; json: () => Record<string, unknown> } {
  const r = spawnSync(process.execPath, [main, ...args], { env: { ...process.env, XDG_DATA_HOME: dir, BRICK_CONFIG: '', ...extraEnv }, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) as Record<string, unknown> };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'brick-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('quickstart --json: every step ok on a real loop device, nothing left', () => {
  const r = brick(['quickstart', '--json']);
  assert.equal(r.code, 0, r.out + r.err);
  const j = r.json() as { ok: boolean; device: string; steps: { name: string; ok: boolean; seconds: number }[] };
  assert.equal(j.ok, true);
  assert.match(j.device, /^\/dev\/loop\d+$/);
  assert.ok(j.steps.length >= 12);
  for (const s of j.steps) {
    assert.equal(s.ok, true, s.name);
    assert.equal(typeof s.seconds, 'number');
  }
  assert.deepEqual(brick(['volume', 'list', '--json']).json(), []);
});

test('volume create/list/show/snapshot/delete through the CLI, persisted between processes', () => {
  const v = brick(['volume', 'create', '--size', '1', '--name', 'cli-vol', '--json']).json();
  assert.equal(v.status, 'available');
  const list = brick(['volume', 'list', '--json']).json() as unknown as { id: string }[];
  assert.ok(list.some((x) => x.id === v.id));
  const s = brick(['volume', 'snapshot', String(v.id), '--json']).json();
  assert.equal(s.status, 'available');
  const refused = brick(['volume', 'delete', String(v.id), '--json']);
  assert.equal(refused.code, 4, 'a volume with snapshots cannot be deleted: invalid state');
  assert.equal(refused.json().code, 'INVALID_STATE');
  assert.equal(brick(['snapshot', 'delete', String(s.id), '--json']).code, 0);
  assert.equal(brick(['volume', 'delete', String(v.id), '--json']).code, 0);
  assert.equal(brick(['volume', 'show', String(v.id), '--json']).code, 3);
});

test('connection show: the connection and, attached on this host, its condition; unknown id is exit 3', () => {
  const v = brick(['volume', 'create', '--size', '1', '--name', 'cond-vol', '--json']).json();
  try {
    const a = brick(['volume', 'attach', String(v.id), '--json']);
    assert.equal(a.code, 0, a.out + a.err);
    const id = String(a.json().id);
    const shown = brick(['connection', 'show', id, '--json']).json() as { id: string; path: string; condition: { abnormal: boolean; message: string; paths: unknown[] } };
    assert.equal(shown.id, id);
    assert.deepEqual(shown.condition, { abnormal: false, message: 'ok', paths: [] });
    const table = brick(['connection', 'show', id]);
    assert.equal(table.code, 0, table.err);
    assert.match(table.out, /condition\s*│\s*normal/);
    assert.equal(brick(['volume', 'detach', String(v.id), '--json']).code, 0);
    const detached = brick(['connection', 'list', '--volume', String(v.id), '--json']).json() as unknown as { id: string }[];
    for (const c of detached) assert.equal((brick(['connection', 'show', c.id, '--json']).json() as { condition: unknown }).condition, null);
    assert.equal(brick(['connection', 'show', 'no-such-connection', '--json']).code, 3);
  } finally {
    brick(['volume', 'detach', String(v.id), '--json']);
    brick(['volume', 'delete', String(v.id), '--json']);
  }
});

test('bad input: exit 2 and the field named, nothing created', () => {
  for (const size of ['0', '-1', '1.5', 'abc']) {
    const r = brick(['volume', 'create', '--size', size, '--json']);
    assert.equal(r.code, 2, `size ${size}: ${r.out}`);
    assert.equal(r.json().field, 'size');
  }
  const big = brick(['volume', 'create', '--size', '100000000', '--json']);
  assert.equal(big.code, 5);
  assert.deepEqual(brick(['volume', 'list', '--json']).json(), []);
  const unknown = brick(['volume', 'list', '--backend', 'nope', '--json']);
  assert.equal(unknown.code, 3);
  assert.match(String(unknown.json().message), /backend nope not found/);
});

test('a malformed or invalid config file is exit 2 naming the key', async () => {
  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, 'backends:\n  - volume_backend_name: x\n    volume_driver: no_such_driver\n');
  const r = brick(['--config', bad, 'volume', 'list', '--json']);
  assert.equal(r.code, 2);
  assert.equal(r.json().field, 'volume_driver');
  await writeFile(bad, 'backends: [');
  const r2 = brick(['volume', 'list'], { BRICK_CONFIG: bad });
  assert.equal(r2.code, 2);
  assert.match(r2.err, /bad\.yaml: not valid YAML or JSON/);
});

test('connector properties --json has os-brick keys', async () => {
  const p = brick(['connector', 'properties', '--multipath', '--host', 'h1', '--json']).json();
  // As os-brick 6.1: multipath only when asked for and multipathd runs on this machine.
  assert.equal(p.multipath, await isMultipathdRunning(createHostContext()));
  assert.equal(p.host, 'h1');
  for (const k of ['platform', 'os_type', 'ip', 'do_local_attach']) assert.ok(k in p, k);
  assert.equal('enforce_multipath' in p, false, 'os-brick 6.1 does not report enforce_multipath');
});

test('connector connect for LOCAL refuses a character device (exit 2); a missing device_path is exit 8', async () => {
  const f = join(dir, 'local.json');
  await writeFile(f, JSON.stringify({ driver_volume_type: 'local', data: { device_path: '/dev/null' } }));
  const r = brick(['connector', 'connect', '--connection', f, '--json']);
  assert.equal(r.code, 2, r.out + r.err); // #13, defect 7: /dev/null is no volume (test/host/local-connector.test.ts)
  assert.equal(r.json().field, 'device_path');
  await writeFile(f, JSON.stringify({ device_path: join(dir, 'nope') }));
  const r2 = brick(['connector', 'connect', 'LOCAL', f, '--json']);
  assert.equal(r2.code, 8);
  assert.equal(r2.json().field, 'device_path');
});

// ---- issue #13, defect 8: the CLI's edges -------------------------------------------------

/** Run the CLI as `nobody` (no root, no working root helper: this machine's sudo is absent or refuses). */
function brickAsNobody(args: string[], dataHome: string): ReturnType<typeof brick> {
  const r = spawnSync(process.execPath, [main, ...args], { env: { ...process.env, XDG_DATA_HOME: dataHome, BRICK_CONFIG: '', HOME: dataHome }, encoding: 'utf8', uid: 65534, gid: 65534, cwd: '/' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) as Record<string, unknown> };
}

test('usage errors exit 2; under --json they print the INVALID_INPUT document naming the field, and no commander text', () => {
  const cases: [string[], string][] = [
    [['volume', 'create', '--json'], 'size'],
    [['nosuch', '--json'], 'command'],
    [['volume', 'nosuch', '--json'], 'command'],
    [['volume', 'list', '--bogus', '--json'], '--bogus'],
    [['volume', 'show', '--json'], 'id'],
    [['volume', 'show', 'a', 'b', '--json'], 'arguments'],
    [['volume', 'create', '--json', '--size'], 'size'],
    [['sim', 'eseries', '--port', 'abc', '--json'], 'port'],
    [['connector', 'connect', 'LOCAL', '-', '--device-scan-attempts', 'x', '--json'], 'device_scan_attempts'],
  ];
  for (const [args, field] of cases) {
    const r = brick(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.out}${r.err}`);
    const j = r.json();
    assert.equal(j.code, 'INVALID_INPUT', args.join(' '));
    assert.equal(j.field, field, args.join(' '));
    assert.equal(typeof j.message, 'string');
    assert.equal(r.err, '', `${args.join(' ')}: no plain text under --json`);
  }
  const plainText = brick(['volume', 'create']);
  assert.equal(plainText.code, 2);
  assert.match(plainText.err, /--size/);
  assert.equal(plainText.out, '');
});

test('a non-root volume attach/detach or connector connect/disconnect without a working root helper is PRIVILEGE_REQUIRED before changing anything', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to run the CLI as nobody');
  const home = await mkdtemp(join(tmpdir(), 'brick-nobody-'));
  try {
    await chmod(home, 0o755);
    await chown(home, 65534, 65534);
    const v = brickAsNobody(['volume', 'create', '--size', '1', '--json'], home);
    assert.equal(v.code, 0, v.out + v.err);
    const id = String(v.json().id);
    for (const cmd of ['attach', 'detach']) {
      const r = brickAsNobody(['volume', cmd, id, '--json'], home);
      assert.equal(r.code, 6, `volume ${cmd}: ${r.out}${r.err}`);
      assert.equal(r.json().code, 'PRIVILEGE_REQUIRED');
      const after = brickAsNobody(['volume', 'show', id, '--json'], home).json();
      assert.equal(after.status, 'available', `volume ${cmd} left the volume untouched`);
      assert.deepEqual(after.connections, []);
      assert.equal(after.error, null);
    }
    const f = join(home, 'iscsi.json');
    await writeFile(f, JSON.stringify({ driver_volume_type: 'iscsi', data: { target_portal: '192.0.2.1:3260', target_iqn: 'iqn.2010-10.org.example:v1', target_lun: 0 } }));
    await writeFile(join(home, 'device.json'), JSON.stringify({ type: 'block', path: '/dev/sdzz' }));
    for (const args of [['connector', 'connect', '--connection', f], ['connector', 'disconnect', '--connection', f, '--device', join(home, 'device.json')]]) {
      const r = brickAsNobody([...args, '--json'], home);
      assert.equal(r.code, 6, `${args.join(' ')}: ${r.out}${r.err}`);
      assert.equal(r.json().code, 'PRIVILEGE_REQUIRED');
    }
    // LOCAL runs nothing on the host: it is not refused for want of root.
    await writeFile(f, JSON.stringify({ driver_volume_type: 'local', data: { device_path: join(home, 'device.json') } }));
    assert.notEqual(brickAsNobody(['connector', 'connect', '--connection', f, '--json'], home).code, 6);
    const empty = brickAsNobody(['--root-helper', '', 'volume', 'attach', id, '--json'], home);
    assert.equal(empty.code, 6, 'no root helper at all');
  } finally {
    await rm(home, { recursive: true, force: true });
  }
});

test('volume_driver: nosuch names the file and the key, exit 2, and creates no data directory and no store', async () => {
  const data = join(dir, 'never-made');
  const cfg = join(dir, 'nosuch.yaml');
  await writeFile(cfg, `data_dir: ${data}\nbackends:\n  - volume_backend_name: b1\n    volume_driver: nosuch\n`);
  for (const args of [['volume', 'list', '--json'], ['volume', 'create', '--size', '1', '--json'], ['kv', 'get', '--json']]) {
    const r = brick(['--config', cfg, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.out}${r.err}`);
    const j = r.json();
    assert.equal(j.field, 'volume_driver');
    assert.ok(String(j.message).includes(cfg), `the message names the file: ${String(j.message)}`);
    assert.match(String(j.message), /backends\.0\.volume_driver/);
    assert.equal(existsSync(data), false, `${args.join(' ')} made no data directory`);
  }
  const plainText = brick(['--config', cfg, 'volume', 'list']);
  assert.match(plainText.err, /nosuch\.yaml: backends\.0\.volume_driver/);
  const badBackend = brick(['--config', cfg.replace('nosuch', 'ok'), 'volume', 'list', '--json'], {});
  assert.equal(badBackend.code, 2, 'an unreadable config file is exit 2 too');
  await writeFile(join(dir, 'ok.yaml'), `data_dir: ${data}\n`);
  const unknownBackend = brick(['--config', join(dir, 'ok.yaml'), '--backend', 'nope', 'volume', 'list', '--json']);
  assert.equal(unknownBackend.code, 3);
  assert.equal(existsSync(data), false, 'an unknown --backend made no data directory');
});

test('names and descriptions with control characters or ANSI escapes are escaped in tables; JSON stays exact', () => {
  const name = 'red\x1b[31mX\nline2\ttab\x07';
  const description = 'rtl\u202eevil\r';
  const v = brick(['volume', 'create', '--size', '1', '--name', name, '--description', description, '--json']).json();
  assert.equal(v.name, name);
  assert.equal(v.description, description);
  try {
    for (const args of [['volume', 'list'], ['volume', 'show', String(v.id)]]) {
      const r = brick(args);
      assert.equal(r.code, 0, r.err);
      // eslint-disable-next-line no-control-regex
      assert.ok(!/[\x00-\x08\x0b-\x1f\x7f\u202e]/.test(r.out), `${args.join(' ')} prints no raw control characters`);
      assert.ok(r.out.includes('red\\x1b[31mX\\nline2\\ttab\\x07'), `${args.join(' ')}: ${r.out}`);
    }
    assert.ok(brick(['volume', 'show', String(v.id)]).out.includes('rtl\\u202eevil\\r'));
    const shown = brick(['volume', 'show', String(v.id), '--json']).json();
    assert.equal(shown.name, name);
    assert.equal(shown.description, description);
  } finally {
    brick(['volume', 'delete', String(v.id)]);
  }
});

test('volume connect refuses a connector document with a mistyped key, before anything runs', async () => {
  const v = brick(['volume', 'create', '--size', '1', '--json']).json();
  const f = join(dir, 'connector.json');
  try {
    for (const [doc, field] of [[{ host: 5 }, 'host'], [{ host: 'h', wwpns: 'abc' }, 'wwpns'], [{ host: 'h', multipath: 'yes' }, 'multipath'], [{ host: 'h', do_local_attach: 1 }, 'do_local_attach']] as const) {
      await writeFile(f, JSON.stringify(doc));
      const r = brick(['volume', 'connect', String(v.id), '--connector', f, '--json']);
      assert.equal(r.code, 2, `${JSON.stringify(doc)}: ${r.out}${r.err}`);
      assert.equal(r.json().code, 'INVALID_INPUT');
      assert.equal(r.json().field, field);
    }
    const after = brick(['volume', 'show', String(v.id), '--json']).json();
    assert.equal(after.status, 'available');
    assert.deepEqual(after.connections, []);
  } finally {
    brick(['volume', 'delete', String(v.id)]);
  }
});

test('kv delete removes a key; deleting a missing key is NOT_FOUND (exit 3), as volume and snapshot delete are', () => {
  assert.equal(brick(['kv', 'set', 'k1', 'v1', '--json']).code, 0);
  const d = brick(['kv', 'delete', 'k1', '--json']);
  assert.equal(d.code, 0, d.out + d.err);
  assert.deepEqual(d.json(), { key: 'k1', status: 'deleted' });
  assert.deepEqual(brick(['kv', 'get', 'k1', '--json']).json(), []);
  const again = brick(['kv', 'delete', 'k1', '--json']);
  assert.equal(again.code, 3);
  assert.equal(again.json().code, 'NOT_FOUND');
});

/** The command paths listed under "Commands:" in `brick <path> --help`, recursively. */
function helpEntries(text: string, section: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf(`${section}:`);
  if (start < 0) return [];
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '') break;
    if (/^ {2}\S/.test(line)) out.push(line);
  }
  return out;
}

test('--help describes every command, argument and option, and the top-level help lists the exit codes', async () => {
  const top = brick(['--help']);
  assert.equal(top.code, 0);
  for (const status of ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) assert.match(top.out, new RegExp(`^ {2}${status} +\\S`, 'm'), `exit status ${status} listed`);
  let level: string[][] = [[]];
  let seen = 0;
  while (level.length > 0) {
    // One level of the command tree at a time, its helps in parallel.
    const helps = await Promise.all(level.map(async (path) => ({ path, out: (await run(process.execPath, [main, ...path, '--help'])).stdout })));
    level = [];
    for (const { path, out } of helps) {
      seen++;
      const description = out.split('\n\n')[1] ?? '';
      assert.ok(description.trim() !== '' && !/^(Options|Arguments|Commands):/.test(description), `brick ${path.join(' ')} has a description`);
      for (const section of ['Arguments', 'Options', 'Commands']) {
        for (const entry of helpEntries(out, section)) assert.match(entry, /^ {2}\S.*?\S {2,}\S/, `brick ${path.join(' ')}: ${section} entry has a description: ${entry}`);
      }
      for (const entry of helpEntries(out, 'Commands')) {
        const name = entry.trim().split(/\s+/)[0]!;
        if (name !== 'help') level.push([...path, name]);
      }
    }
  }
  assert.ok(seen > 25, `walked ${seen} commands`);
});
