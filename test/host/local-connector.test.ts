/**
 * Issue #13, defect 7, through the CLI on the real host (needs root for the loop device):
 * `brick connector connect LOCAL` attaches a block device and refuses anything else with exit 2
 * naming `device_path`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHostContext } from '../../src/host/context.js';
import { attachLoop, detachLoop } from '../../src/host/loop.js';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
let dir: string;

function brick(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [main, ...args], { env: { ...process.env, XDG_DATA_HOME: dir, BRICK_CONFIG: '' }, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

async function connectLocal(devicePath: string): Promise<{ code: number; out: string; err: string }> {
  const f = join(dir, 'props.json');
  await writeFile(f, JSON.stringify({ device_path: devicePath }));
  return brick(['connector', 'connect', 'LOCAL', f, '--json']);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'brick-local-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('connector connect LOCAL refuses /etc/shadow, a directory and /dev/null with exit 2 naming device_path', async () => {
  for (const p of ['/etc/shadow', dir, '/dev/null']) {
    const r = await connectLocal(p);
    assert.equal(r.code, 2, `${p}: ${r.out}${r.err}`);
    const e = JSON.parse(r.out) as { code: string; field: string; message: string };
    assert.equal(e.code, 'INVALID_INPUT', p);
    assert.equal(e.field, 'device_path', p);
    assert.ok(e.message.includes(p), e.message);
  }
  const doc = join(dir, 'conn.json');
  await writeFile(doc, JSON.stringify({ driver_volume_type: 'local', data: { device_path: '/etc/shadow' } }));
  const viaDoc = brick(['connector', 'connect', '--connection', doc]);
  assert.equal(viaDoc.code, 2, viaDoc.out + viaDoc.err);
  assert.match(viaDoc.err, /device_path/);
});

test('connector connect LOCAL attaches a real block device as type block', async () => {
  const ctx = createHostContext();
  const img = join(dir, 'disk.img');
  await writeFile(img, '');
  await truncate(img, 1024 * 1024);
  const loop = await attachLoop(ctx, img);
  try {
    const r = await connectLocal(loop);
    assert.equal(r.code, 0, r.out + r.err);
    assert.deepEqual(JSON.parse(r.out), { type: 'block', path: loop });
  } finally {
    await detachLoop(ctx, loop);
  }
});
