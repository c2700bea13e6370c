import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { InvalidInputError, PersistenceError } from '../../../src/errors.js';
import { SqliteStore } from '../../../src/persistence/sqlite.js';
import { StaleRecordError } from '../../../src/persistence/store.js';
import { expectClean, startWorker } from './children.js';
import { storeContract } from './contract.js';
import { filler, volume } from './records.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'brick-sqlite-test-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
/** A path for a new database file in a directory that does not exist yet. */
function newPath(): string {
  return path.join(root, `d${++n}`, 'brick.sqlite');
}

storeContract('sqlite', { open: async () => SqliteStore.open({ path: newPath() }), sql: true });

describe('sqlite store: file, WAL and migrations', () => {
  it('creates its directory 0700 and the file 0600 in WAL mode (the -wal and -shm files 0600 too)', async () => {
    const p = newPath();
    const store = SqliteStore.open({ path: p });
    await store.setVolume(volume());
    assert.equal(fs.statSync(path.dirname(p)).mode & 0o777, 0o700);
    for (const f of [p, `${p}-wal`, `${p}-shm`]) assert.equal(fs.statSync(f).mode & 0o777, 0o600, f);
    const raw = new Database(p, { readonly: true });
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    raw.close();
    await store.close();
  });

  it(':memory: gives a private in-memory database with the same contract', async () => {
    const s = SqliteStore.open({ path: ':memory:' });
    const v = await s.setVolume(volume({ description: 'nul \u0000 is fine here' }));
    assert.deepEqual(await s.getVolumes(), [v]);
    await assert.rejects(s.setVolume({ ...v, version: 0 }), StaleRecordError);
    await s.close();
    const again = SqliteStore.open({ path: ':memory:' });
    assert.deepEqual(await again.getVolumes(), []);
    await again.close();
  });

  it('leaves an existing directory as it is', async () => {
    const dir = path.join(root, 'existing');
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    const store = SqliteStore.open({ path: path.join(dir, 'x.sqlite') });
    await store.close();
    assert.equal(fs.statSync(dir).mode & 0o777, 0o755);
    assert.equal(fs.statSync(path.join(dir, 'x.sqlite')).mode & 0o777, 0o600);
  });

  it('records schema_version 1 once, keeps data across reopen, and re-opening applies nothing again', async () => {
    const p = newPath();
    const s1 = SqliteStore.open({ path: p });
    assert.equal(s1.schemaVersion, 1);
    const v = await s1.setVolume(volume({ name: 'persisted' }));
    await s1.setKeyValue({ key: 'node-1', value: '{"ip":"10.0.0.1"}' });
    await s1.close();
    const s2 = SqliteStore.open({ path: p });
    assert.deepEqual(await s2.getVolumes(), [v]);
    assert.deepEqual(await s2.getKeyValues(), [{ key: 'node-1', value: '{"ip":"10.0.0.1"}' }]);
    await s2.close();
    const raw = new Database(p, { readonly: true });
    const rows = raw.prepare('SELECT version, description FROM schema_version').all() as Array<{ version: number; description: string }>;
    raw.close();
    assert.deepEqual(rows.map((r) => r.version), [1]);
    assert.match(rows[0]!.description, /volumes/);
  });

  it('opens a database whose schema is newer than this code (rolling upgrade)', async () => {
    const p = newPath();
    await SqliteStore.open({ path: p }).close();
    const raw = new Database(p);
    raw.prepare('INSERT INTO schema_version (version, description, applied_at) VALUES (2, ?, ?)').run('from the future', new Date().toISOString());
    raw.close();
    const s = SqliteStore.open({ path: p });
    assert.equal(s.schemaVersion, 2);
    assert.equal((await s.setVolume(volume())).version, 1);
    await s.close();
  });

  it('four processes opening a new file at once all succeed and migrate exactly once', async () => {
    const p = newPath();
    const workers = Array.from({ length: 4 }, () => startWorker('open', { storage: 'sqlite', path: p }));
    for (const w of workers) await expectClean(w, 30_000);
    const raw = new Database(p, { readonly: true });
    assert.deepEqual(raw.prepare('SELECT version FROM schema_version').all(), [{ version: 1 }]);
    raw.close();
  });

  it('a file that is not an SQLite database is refused with PersistenceError naming it, and left untouched', async () => {
    const p = path.join(root, 'not-a-db.sqlite');
    fs.writeFileSync(p, 'hello, this is a text file and not a database '.repeat(200));
    const before = fs.readFileSync(p);
    assert.throws(
      () => SqliteStore.open({ path: p }),
      (e: unknown) => e instanceof PersistenceError && e.message.includes(p),
    );
    assert.deepEqual(fs.readFileSync(p), before);
  });

  it('a path that cannot be created is refused with PersistenceError', () => {
    const file = path.join(root, 'plain-file');
    fs.writeFileSync(file, '');
    assert.throws(() => SqliteStore.open({ path: path.join(file, 'sub', 'db.sqlite') }), PersistenceError);
  });

  it('bad options are refused with InvalidInputError naming them', () => {
    assert.throws(() => SqliteStore.open({ path: '' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'path');
    assert.throws(() => SqliteStore.open({ path: newPath(), busyTimeoutMs: -1 }), (e: unknown) => e instanceof InvalidInputError && e.field === 'busyTimeoutMs');
    assert.throws(
      () => SqliteStore.open({ path: newPath(), synchronous: 'OFF' as 'FULL' }),
      (e: unknown) => e instanceof InvalidInputError && e.field === 'synchronous',
    );
  });

  it('a writer waits (busy_timeout) for another process holding the write lock; with no timeout it fails typed', async () => {
    const p = newPath();
    const patient = SqliteStore.open({ path: p });
    const impatient = SqliteStore.open({ path: p, busyTimeoutMs: 0 });
    const v = await patient.setVolume(volume());
    const holder = startWorker('lock', { storage: 'sqlite', path: p });
    await holder.line((l) => l === 'locked', 15_000, 'the lock holder');
    await assert.rejects(impatient.setVolume({ ...v, name: 'x' }), (e: unknown) => e instanceof PersistenceError && !(e instanceof StaleRecordError) && /lock|busy/i.test(e.message));
    holder.send('release');
    // Blocks (up to busy_timeout) until the holder commits, then succeeds.
    const saved = await patient.setVolume({ ...v, name: 'after-wait' });
    assert.equal(saved.version, 2);
    await expectClean(holder, 15_000);
    await impatient.close();
    await patient.close();
  });
});

describe('sqlite store: several processes', () => {
  it('two processes compare-and-set the same record: exactly one wins, the other gets StaleRecordError', async () => {
    const p = newPath();
    const cfg = { storage: 'sqlite', path: p };
    const store = SqliteStore.open({ path: p });
    const v = await store.setVolume(volume({ name: 'start' }));
    const a = startWorker('cas', cfg, v.id, 'A');
    const b = startWorker('cas', cfg, v.id, 'B');
    await a.line((l) => l === 'loaded 1', 15_000, 'worker A to load');
    await b.line((l) => l === 'loaded 1', 15_000, 'worker B to load');
    a.send('go');
    b.send('go');
    await expectClean(a, 15_000);
    await expectClean(b, 15_000);
    const outcomes = [a.lines.at(-1), b.lines.at(-1)].sort();
    assert.deepEqual(outcomes, ['stale', 'won']);
    const [stored] = await store.getVolumes({ id: v.id });
    assert.equal(stored!.version, 2);
    assert.equal(stored!.name, a.lines.at(-1) === 'won' ? 'A' : 'B');
    await store.close();
  });

  it('two processes each increment a counter 200 times with reload-and-retry: the count is exactly 400', async (t) => {
    const p = newPath();
    const cfg = { storage: 'sqlite', path: p };
    const store = SqliteStore.open({ path: p });
    const v = await store.setVolume(volume({ admin_metadata: { counter: '0' } }));
    const ws = [startWorker('counter', cfg, v.id, '200'), startWorker('counter', cfg, v.id, '200')];
    for (const w of ws) await w.line((l) => l === 'ready', 30_000, 'the counter worker to open the store');
    for (const w of ws) w.send('go');
    for (const w of ws) await expectClean(w, 120_000);
    const retries = ws.map((w) => (JSON.parse(w.lines.at(-1)!) as { retries: number }).retries);
    t.diagnostic(`stale-write retries per process: ${retries.join(', ')}`);
    assert.ok(retries[0]! + retries[1]! > 0, 'the two writers never collided, so this run proved nothing');
    const [stored] = await store.getVolumes({ id: v.id });
    assert.equal(stored!.admin_metadata.counter, '400');
    assert.equal(stored!.version, 401);
    await store.close();
  });

  it('SIGKILL between the "creating" insert and its update: reopening sees the complete "creating" record', async () => {
    const p = newPath();
    const w = startWorker('hang', { storage: 'sqlite', path: p }, 'vol-half');
    await w.line((l) => l === 'inserted', 15_000, 'the insert');
    w.child.kill('SIGKILL');
    assert.equal((await w.exited).signal, 'SIGKILL');
    const store = SqliteStore.open({ path: p });
    const vols = await store.getVolumes();
    assert.equal(vols.length, 1);
    assert.deepEqual(vols[0], { ...volume({ id: 'vol-half', status: 'creating', name: 'half-created' }), version: 1 });
    await store.close();
  });

  it('SIGKILL at random points of concurrent write loops never leaves a torn or half-written record', async (t) => {
    const p = newPath();
    const cfg = { storage: 'sqlite', path: p };
    const ROUNDS = 5;
    const WRITERS = 3;
    const kills = ROUNDS * WRITERS;
    let seen = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const ws = Array.from({ length: WRITERS }, (_, k) => startWorker('churn', cfg, `r${round}w${k}`));
      await Promise.all(
        ws.map(async (w) => {
          // Let it commit a few records, then kill it at an arbitrary moment of its loop.
          await w.line((l) => l.startsWith('updated') && l.endsWith('000003'), 30_000, 'a few commits');
          await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 40)));
          w.child.kill('SIGKILL');
          assert.equal((await w.exited).signal, 'SIGKILL');
          seen += w.lines.filter((l) => l.startsWith('inserted')).length;
        }),
      );
    }
    const raw = new Database(p, { readonly: true });
    assert.equal(raw.pragma('integrity_check', { simple: true }), 'ok');
    raw.close();
    const store = SqliteStore.open({ path: p });
    const vols = await store.getVolumes();
    // Every insert the worker reported is there (the last one may have committed unreported).
    assert.ok(vols.length >= seen && vols.length <= seen + kills, `${vols.length} records for ${seen} reported inserts`);
    for (const v of vols) {
      if (v.status === 'creating') {
        assert.equal(v.version, 1, v.id);
        assert.equal(v.description, '', v.id);
        assert.equal(v.admin_metadata.fill, filler(v.id), `${v.id}: body of the insert is whole`);
      } else {
        assert.equal(v.status, 'available', v.id);
        assert.equal(v.version, 2, v.id);
        assert.equal(v.description, `done ${v.id}`, v.id);
        assert.equal(v.admin_metadata.fill, filler(`${v.id}/2`), `${v.id}: body of the update is whole`);
      }
    }
    // Each loop writes and updates records in order: only a killed writer's last record can be unfinished.
    const creating = vols.filter((v) => v.status === 'creating');
    t.diagnostic(`${vols.length} records after ${kills} kills; ${creating.length} left in creating (killed between insert and update)`);
    assert.ok(creating.length <= kills, `${creating.length} records left in creating`);
    await store.close();
  });
});
