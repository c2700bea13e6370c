/**
 * Crash safety of create (issue 2): a process killed in the middle of creating a volume leaves
 * either no record or one the next start reports as `error`, never a half-written record or
 * one that claims to be `creating` forever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setup, Backend } from '../../src/library/index.js';
import { SqliteStore } from '../../src/persistence/sqlite.js';
import { registerDriver } from '../../src/drivers/registry.js';
import { FileDriver } from '../../src/drivers/file/driver.js';
import '../../src/drivers/index.js';

const child = join(dirname(fileURLToPath(import.meta.url)), 'crash-child.js');

/** Start the child and SIGKILL it once `until` matches its output; resolves with the output. */
function runAndKill(args: string[], until: RegExp, extraMs = 0): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let killing = false;
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!killing && until.test(out)) {
        killing = true;
        setTimeout(() => p.kill('SIGKILL'), extraMs);
      }
    });
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (_code, signal) => (signal === 'SIGKILL' ? resolve(out) : reject(new Error(`child ended without being killed: ${err}`))));
  });
}

test('killed inside the driver create: the next start sees the volume in error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-crash-'));
  try {
    const out = await runAndKill(['hang', dir, join(dir, 'db.sqlite')], /CREATING (\S+)\n/);
    const id = /CREATING (\S+)/.exec(out)![1]!;
    registerDriver('hang', (config, ctx) => new FileDriver(config, ctx));
    const ctx = setup({ stateDir: dir, persistence: SqliteStore.open({ path: join(dir, 'db.sqlite') }) });
    const backend = await Backend.create({ volume_backend_name: 'crash', volume_driver: 'hang', pool_path: `${dir}/pool` }, { context: ctx });
    const vols = await backend.getVolumes();
    assert.equal(vols.length, 1);
    assert.equal(vols[0]!.id, id);
    assert.equal(vols[0]!.status, 'error');
    assert.match(vols[0]!.error ?? '', /interrupted while creating/);
    const [rec] = await ctx.store.getVolumes({ id });
    assert.equal(rec?.status, 'error', 'the error status is saved, not only reported');
    await vols[0]!.delete();
    assert.deepEqual(await ctx.store.getVolumes(), []);
    await ctx.store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('killed at an arbitrary moment of a create/delete loop: every record is complete', async () => {
  for (const delay of [0, 37, 113]) {
    const dir = await mkdtemp(join(tmpdir(), 'brick-crash-'));
    try {
      const out = await runAndKill(['loop', dir, join(dir, 'db.sqlite')], /CREATED \S+\n(?:.*\n){2}/, delay);
      assert.match(out, /CREATED/);
      const ctx = setup({ stateDir: dir, persistence: SqliteStore.open({ path: join(dir, 'db.sqlite') }) });
      const backend = await Backend.create({ volume_backend_name: 'crash', volume_driver: 'file', pool_path: `${dir}/pool` }, { context: ctx });
      const vols = await backend.getVolumes();
      for (const v of vols) {
        assert.ok(['available', 'error'].includes(v.status), `volume ${v.id} is ${v.status}`);
        assert.ok(typeof v.size === 'number' && v.size === 1, 'record is complete');
        if (v.status === 'available') await stat(join(dir, 'pool', `volume-${v.id}.img`));
      }
      await ctx.store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});
