/**
 * Issue #13, defect 3, on the file backend with real loop devices (needs root): read-only CLI
 * commands change nothing on the host, and `brick backend ensure-exports` is the one place the
 * export recovery (Cinder's `init_host`) runs.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHostContext } from '../../src/host/context.js';
import { detachLoop, listLoops, loopsForFile } from '../../src/host/loop.js';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
const host = createHostContext();
let dir: string;

function brick(args: string[]): { code: number; out: string; err: string; json: () => unknown } {
  const r = spawnSync(process.execPath, [main, ...args], { env: { ...process.env, XDG_DATA_HOME: dir, BRICK_CONFIG: '' }, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) as unknown };
}

function ok(args: string[]): unknown {
  const r = brick([...args, '--json']);
  assert.equal(r.code, 0, `brick ${args.join(' ')}: ${r.out}${r.err}`);
  return r.json();
}

async function loopsUnder(path: string): Promise<string[]> {
  return (await listLoops(host)).filter((l) => l.backFile.startsWith(path)).map((l) => l.name);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'brick-ensure-'));
});
after(async () => {
  for (const l of await loopsUnder(dir)) await detachLoop(host, l);
  await rm(dir, { recursive: true, force: true });
});

test('volume list and the other reads re-create no loop device; backend ensure-exports re-creates the connected one and says so', async () => {
  const lost = (ok(['volume', 'create', '--size', '1', '--name', 'lost']) as { id: string }).id;
  const kept = (ok(['volume', 'create', '--size', '1', '--name', 'kept']) as { id: string }).id;
  const idle = (ok(['volume', 'create', '--size', '1', '--name', 'idle']) as { id: string }).id;
  const file = (id: string) => join(dir, 'brick', 'volumes', `volume-${id}.img`);
  const lostDev = (ok(['volume', 'attach', lost]) as { path: string }).path;
  ok(['volume', 'attach', kept]);
  assert.deepEqual(await loopsForFile(host, file(lost)), [lostDev]);
  await detachLoop(host, lostDev); // behind Brick's back: what a reboot does to a loop device
  assert.deepEqual(await loopsForFile(host, file(lost)), []);

  for (const args of [['volume', 'list'], ['volume', 'show', lost], ['snapshot', 'list'], ['backend', 'stats'], ['backend', 'list']]) {
    ok(args);
    assert.deepEqual(await loopsForFile(host, file(lost)), [], `brick ${args.join(' ')} made a loop device`);
  }

  const report = ok(['backend', 'ensure-exports']) as { volume_id: string; backend: string; result: string }[];
  assert.deepEqual(
    report.map((r) => [r.volume_id, r.backend, r.result]).sort(),
    [
      [lost, 'default', 'ensured'],
      [kept, 'default', 'ensured'],
    ].sort(),
  );
  assert.equal((await loopsForFile(host, file(lost))).length, 1, 'the lost export is back');
  assert.equal((await loopsForFile(host, file(kept))).length, 1, 'the kept export is not doubled');
  assert.deepEqual(await loopsForFile(host, file(idle)), [], 'a volume with no connection gets no export');

  const table = brick(['backend', 'ensure-exports']);
  assert.equal(table.code, 0, table.err);
  assert.match(table.out, new RegExp(lost));

  ok(['volume', 'detach', lost, '--force']);
  ok(['volume', 'detach', kept]);
  for (const id of [lost, kept, idle]) ok(['volume', 'delete', id]);
  assert.deepEqual(await loopsUnder(dir), []);
});
