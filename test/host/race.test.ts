/**
 * Issue #13, defect 2: `volume delete` and `volume snapshot` of one volume racing in two
 * processes on one SQLite store and file pool. Whatever wins, no snapshot record may outlive its
 * volume, and every snapshot record left is listed and deletable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setup, Backend } from '../../src/library/index.js';
import { SqliteStore } from '../../src/persistence/sqlite.js';
import '../../src/drivers/index.js';

const child = join(dirname(fileURLToPath(import.meta.url)), 'crash-child.js');

/** Run the child to its end; resolves with its output. */
function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`child exited ${code}: ${err}`))));
  });
}

test('delete and snapshot racing in two processes never leave a snapshot without its volume', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-race-'));
  const db = join(dir, 'db.sqlite');
  const ctx = setup({ stateDir: dir, persistence: SqliteStore.open({ path: db }) });
  try {
    const backend = await Backend.create({ volume_backend_name: 'crash', volume_driver: 'file', pool_path: `${dir}/pool` }, { context: ctx });
    let raced = 0;
    for (let round = 0; round < 3; round++) {
      const ids: string[] = [];
      for (let i = 0; i < 25; i++) ids.push((await backend.createVolume({ size: 1 })).id);
      const start = String(Date.now() + 1500);
      await Promise.all([run(['race-delete', dir, db, start, ...ids]), run(['race-snapshot', dir, db, start, ...ids])]);
      raced += ids.length;
      const volumes = new Set((await ctx.store.getVolumes({})).map((v) => v.id));
      const orphans = (await ctx.store.getSnapshots({})).filter((s) => !volumes.has(s.volume_id));
      assert.deepEqual(
        orphans.map((s) => `${s.id} (${s.status}) of deleted volume ${s.volume_id}`),
        [],
        `round ${round}`,
      );
      // Everything left can be listed and removed.
      const snaps = await backend.getSnapshots();
      assert.equal(snaps.length, (await ctx.store.getSnapshots({})).length, 'every snapshot record is listed');
      for (const s of snaps) await s.delete();
      for (const v of await backend.getVolumes()) await v.delete();
      assert.deepEqual(await ctx.store.getVolumes({}), []);
      assert.deepEqual(await ctx.store.getSnapshots({}), []);
      assert.deepEqual(await readdir(join(dir, 'pool')), []);
    }
    assert.equal(raced, 75);
  } finally {
    await ctx.store.close();
    await rm(dir, { recursive: true, force: true });
  }
});
