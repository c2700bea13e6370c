/**
 * Issue #13, defect 1, through the CLI: `brick connector connect/disconnect` take their locks in
 * the configured `lock_path` (the directory the library uses), and a lock file planted there as
 * a symlink makes root refuse instead of creating the link's target.
 *
 * The AOE connector is used because it locks before it runs anything: `disconnect` of a device
 * that is not attached takes the lock and returns, and `connect` refused at the lock runs nothing.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
let dir: string;
let config: string;
let lockDir: string;
let props: string;
let device: string;

function brick(args: string[]): { code: number; out: string; err: string; json: () => Record<string, unknown> } {
  const r = spawnSync(process.execPath, [main, '--config', config, ...args], { env: { ...process.env, XDG_DATA_HOME: dir, BRICK_CONFIG: '' }, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) as Record<string, unknown> };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'brick-cli-locks-'));
  lockDir = join(dir, 'configured', 'locks');
  config = join(dir, 'brick.yaml');
  await writeFile(config, `data_dir: ${join(dir, 'data')}\nlock_path: ${lockDir}\n`);
  props = join(dir, 'aoe.json');
  // Shelf 9, slot 9: no such AoE device exists on a test machine.
  await writeFile(props, JSON.stringify({ target_shelf: 9, target_lun: 9 }));
  device = join(dir, 'device.json');
  await writeFile(device, JSON.stringify({ type: 'block', path: '/dev/etherd/e9.9' }));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('connector disconnect takes its lock in the configured lock_path, created 0700', () => {
  const r = brick(['connector', 'disconnect', 'AOE', props, '--device', device, '--json']);
  assert.equal(r.code, 0, r.out + r.err);
  const st = lstatSync(lockDir);
  assert.ok(st.isDirectory());
  assert.equal(st.mode & 0o7777, 0o700);
  assert.ok(lstatSync(join(lockDir, 'brick-aoe-e9.9.lock')).isFile(), 'the lock file is in lock_path');
});

test('connector connect refuses a lock file planted as a symlink in lock_path (INVALID_CONFIG, lock_path) and creates nothing', async () => {
  await mkdir(lockDir, { recursive: true, mode: 0o700 });
  await rm(join(lockDir, 'brick-aoe-e9.9.lock'), { force: true });
  const target = join(dir, 'anywhere');
  await symlink(target, join(lockDir, 'brick-aoe-e9.9.lock'));
  try {
    const r = brick(['connector', 'connect', 'AOE', props, '--device-scan-attempts', '1', '--json']);
    assert.equal(r.code, 2, r.out + r.err);
    const e = r.json();
    assert.equal(e.code, 'INVALID_CONFIG');
    assert.equal(e.field, 'lock_path');
    assert.match(String(e.message), /brick-aoe-e9\.9\.lock/);
    assert.equal(existsSync(target), false, 'the symlink target must not be created');
  } finally {
    await rm(join(lockDir, 'brick-aoe-e9.9.lock'), { force: true });
  }
});

test('connector disconnect refuses a lock_path that others can write', async () => {
  await mkdir(lockDir, { recursive: true, mode: 0o700 });
  await chmod(lockDir, 0o777);
  try {
    const r = brick(['connector', 'disconnect', 'AOE', props, '--device', device, '--json']);
    assert.equal(r.code, 2, r.out + r.err);
    assert.equal(r.json().code, 'INVALID_CONFIG');
    assert.equal(r.json().field, 'lock_path');
    assert.match(String(r.json().message), new RegExp(lockDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  } finally {
    await chmod(lockDir, 0o700);
  }
});
