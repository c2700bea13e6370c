/**
 * Issue #13, defect 6, as root on the real machine: the pool and data directories must be the
 * running user's own (OpenSSH's StrictModes rule), a pool inside a read-only mount or under
 * /proc is INVALID_CONFIG naming `pool_path`, and a volume file replaced by a symbolic link to a
 * root-only file makes `volume extend` refuse instead of growing that file.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync, readdirSync, statSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setup, Backend } from '../../src/library/index.js';
import { MemoryStore } from '../../src/persistence/memory.js';
import { InvalidConfigError } from '../../src/errors.js';
import '../../src/drivers/index.js';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
const NOBODY = 65534;
let dir: string;
let backends = 0;

/** Run the CLI with `config` (YAML text written to a file), bounded by `timeoutMs`. */
async function brick(configText: string, args: string[], timeoutMs = 60_000): Promise<{ code: number; out: string; err: string; json: () => Record<string, unknown> }> {
  const config = join(dir, `brick-${++backends}.yaml`);
  await writeFile(config, configText);
  const r = spawnSync(process.execPath, [main, '--config', config, ...args, '--json'], { env: { ...process.env, BRICK_CONFIG: '' }, encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) as Record<string, unknown> };
}

/** A check for `assert.rejects`: InvalidConfigError naming `field`. */
const refusedNaming = (field: string, re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof InvalidConfigError, `expected InvalidConfigError, got ${String(e)}`);
  assert.equal(e.field, field);
  assert.match(e.message, re);
  return true;
};

before(async () => {
  assert.equal(process.getuid?.(), 0, 'host tests run as root');
  dir = await mkdtemp(join(tmpdir(), 'brick-pool-safety-'));
  setup({ stateDir: join(dir, 'state'), persistence: new MemoryStore() });
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a pool directory owned by another user (uid 65534) is refused with INVALID_CONFIG naming pool_path', async () => {
  const pool = join(dir, 'nobody-pool');
  await mkdir(pool, { mode: 0o700 });
  await chown(pool, NOBODY, NOBODY);
  await assert.rejects(Backend.create({ volume_backend_name: 'nobody', volume_driver: 'file', pool_path: pool }), refusedNaming('pool_path', /owned by uid 65534/));
  assert.deepEqual(readdirSync(pool), [], 'nothing is created in it');
});

test('a data_dir owned by another user or writable by others is refused (INVALID_CONFIG, data_dir) before any store is made', async () => {
  const owned = join(dir, 'nobody-data');
  await mkdir(owned, { mode: 0o700 });
  await chown(owned, NOBODY, NOBODY);
  const open = join(dir, 'open-data');
  await mkdir(open);
  await chmod(open, 0o777);
  for (const [data, re] of [[owned, /owned by uid 65534/], [open, /writable by group or others/]] as const) {
    const r = await brick(`data_dir: ${data}\n`, ['volume', 'list']);
    assert.equal(r.code, 2, r.out + r.err);
    assert.equal(r.json().code, 'INVALID_CONFIG');
    assert.equal(r.json().field, 'data_dir');
    assert.match(String(r.json().message), re);
    assert.deepEqual(readdirSync(data), [], 'no store and no pool are made in it');
  }
});

test('a pool inside a read-only mount is INVALID_CONFIG naming pool_path, whether it exists or not', async (t) => {
  const mnt = join(dir, 'ro');
  await mkdir(mnt, { mode: 0o700 });
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'mode=0700', 'tmpfs', mnt]).status !== 0) return t.skip('cannot mount a tmpfs here');
  try {
    await mkdir(join(mnt, 'existing'), { mode: 0o700 });
    assert.equal(spawnSync('mount', ['-o', 'remount,ro', mnt]).status, 0);
    await assert.rejects(Backend.create({ volume_backend_name: 'ro-new', volume_driver: 'file', pool_path: join(mnt, 'missing') }), refusedNaming('pool_path', /read-only|EROFS/));
    await assert.rejects(Backend.create({ volume_backend_name: 'ro-old', volume_driver: 'file', pool_path: join(mnt, 'existing') }), refusedNaming('pool_path', /read-only|EROFS/));
  } finally {
    spawnSync('umount', [mnt]);
  }
});

test('pool_path: /proc/brick through the CLI fails fast: exit 2, INVALID_CONFIG naming pool_path', async () => {
  const started = Date.now();
  const r = await brick(`data_dir: ${join(dir, 'data-proc')}\nbackends:\n  - volume_backend_name: p\n    volume_driver: file\n    pool_path: /proc/brick\n`, ['volume', 'list'], 15_000);
  assert.ok(Date.now() - started < 15_000, 'did not hang');
  assert.equal(r.code, 2, r.out + r.err);
  assert.equal(r.json().code, 'INVALID_CONFIG');
  assert.equal(r.json().field, 'pool_path');
});

test('volume extend through a volume file replaced by a symlink to a root-only file: refused, naming the volume; the file is unchanged', async () => {
  const data = join(dir, 'data-attack');
  const cfg = `data_dir: ${data}\n`;
  const v = await brick(cfg, ['volume', 'create', '--size', '1']);
  assert.equal(v.code, 0, v.out + v.err);
  const id = String(v.json().id);
  const file = join(data, 'volumes', `volume-${id}.img`);
  assert.ok(statSync(file).isFile());
  const secret = join(dir, 'root-only');
  const content = 'root:only:content\n';
  await writeFile(secret, content, { mode: 0o600 });
  unlinkSync(file);
  symlinkSync(secret, file);
  const r = await brick(cfg, ['volume', 'extend', id, '2']);
  assert.equal(r.code, 4, r.out + r.err);
  assert.equal(r.json().code, 'INVALID_STATE');
  assert.match(String(r.json().message), new RegExp(`volume-${id}.*symbolic link`));
  assert.equal(statSync(secret).size, content.length, 'the root-only file did not grow');
  assert.equal(readFileSync(secret, 'utf8'), content);
  assert.ok(existsSync(file));
});
