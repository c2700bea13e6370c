/**
 * `brick host cleanup` through the CLI on the real machine, with the file backend's loop
 * devices: a loop device over a pool file that no connection record exports is Brick's
 * leftover; the loop device of an attached volume is not. Only this test's own pool is ever a
 * candidate (nothing here passes --include-unowned), so other users of the machine are safe.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, basename } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
let dir: string;

function brick(args: string[]): { code: number; out: string; err: string; json: () => Record<string, unknown> } {
  const r = spawnSync(process.execPath, [main, ...args], { env: { ...process.env, XDG_DATA_HOME: dir, BRICK_CONFIG: '' }, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) as Record<string, unknown> };
}

interface Listed {
  leftovers: { kind: string; name: string; owned: boolean; action: string; reason: string }[];
  removed: number;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'brick-host-cleanup-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a loop device over a pool file no connection exports is listed, kept by --dry-run (exit 10), then removed; the attached volume is untouched', () => {
  const v = brick(['volume', 'create', '--size', '1', '--json']).json();
  const a = brick(['volume', 'attach', String(v.id), '--json']);
  assert.equal(a.code, 0, a.out + a.err);
  const attachedLoop = String(a.json().path);
  const pool = dirname(readFileSync(`/sys/block/${basename(attachedLoop)}/loop/backing_file`, 'utf8').trim());
  const stray = join(pool, 'volume-00000000-0000-4000-8000-00000000dead.img');
  writeFileSync(stray, Buffer.alloc(1 << 20), { mode: 0o600 });
  const strayLoop = execFileSync('losetup', ['--find', '--show', stray], { encoding: 'utf8' }).trim();
  try {
    const dry = brick(['host', 'cleanup', '--dry-run', '--json']);
    assert.equal(dry.code, 10, dry.out + dry.err);
    const listed = dry.json() as unknown as Listed;
    assert.deepEqual(Object.keys(listed), ['leftovers', 'removed']);
    assert.equal(listed.removed, 0);
    const mine = listed.leftovers.filter((l) => l.kind === 'loop-device');
    assert.deepEqual(mine.map((l) => [l.name, l.owned, l.action]), [[strayLoop, true, 'remove']]);
    assert.match(mine[0]!.reason, /no connection record exports/);
    assert.ok(existsSync(`/sys/block/${basename(strayLoop)}/loop`), 'a dry run changes nothing');

    const table = brick(['host', 'cleanup', '--dry-run']);
    assert.match(table.out, /loop-device/);
    assert.match(table.out, /dry run: nothing changed/);

    const real = brick(['host', 'cleanup', '--json']);
    assert.equal(real.code, 0, real.out + real.err);
    const done = real.json() as unknown as Listed;
    assert.equal(done.removed, 1);
    assert.deepEqual(done.leftovers.filter((l) => l.kind === 'loop-device').map((l) => [l.name, l.action]), [[strayLoop, 'removed']]);
    assert.ok(!existsSync(`/sys/block/${basename(strayLoop)}/loop/backing_file`), 'the stray loop device is gone');
    assert.equal(readFileSync(`/sys/block/${basename(attachedLoop)}/loop/backing_file`, 'utf8').trim().startsWith(pool), true, 'the attached volume keeps its loop device');
  } finally {
    spawnSync('losetup', ['--detach', strayLoop]);
    brick(['volume', 'detach', String(v.id)]);
    brick(['volume', 'delete', String(v.id)]);
    rm(stray, { force: true }).catch(() => undefined);
  }
});
