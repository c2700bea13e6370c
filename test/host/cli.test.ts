/**
 * The brick CLI as a user runs it: JSON output, exit codes, and errors that name the field.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
let dir: string;

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

test('connector properties --json has os-brick keys', () => {
  const p = brick(['connector', 'properties', '--multipath', '--host', 'h1', '--json']).json();
  assert.equal(p.multipath, true);
  assert.equal(p.host, 'h1');
  for (const k of ['platform', 'os_type', 'ip', 'enforce_multipath']) assert.ok(k in p, k);
});

test('connector connect for LOCAL prints device info; a missing device_path is exit 8', async () => {
  const f = join(dir, 'local.json');
  await writeFile(f, JSON.stringify({ driver_volume_type: 'local', data: { device_path: '/dev/null' } }));
  const r = brick(['connector', 'connect', '--connection', f]);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), { type: 'file', path: '/dev/null' });
  await writeFile(f, JSON.stringify({ device_path: join(dir, 'nope') }));
  const r2 = brick(['connector', 'connect', 'LOCAL', f, '--json']);
  assert.equal(r2.code, 8);
  assert.equal(r2.json().field, 'device_path');
});
