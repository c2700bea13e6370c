/**
 * PostgreSQL store tests against a real server named by BRICK_TEST_PG_URL (tools/ci/postgres.sh
 * starts one and prints the URL). Without it the suites are skipped, saying why. Each test works
 * in its own schema, dropped at the end.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { InvalidInputError, PersistenceError } from '../../../src/errors.js';
import { openStore } from '../../../src/persistence/factory.js';
import { PostgresStore, parsePostgresUrl, redactConnectionUrl } from '../../../src/persistence/postgresql.js';
import { expectClean, startWorker } from './children.js';
import { storeContract } from './contract.js';
import { filler, volume } from './records.js';

const URL_ = process.env.BRICK_TEST_PG_URL;
const skip = URL_ ? false : 'BRICK_TEST_PG_URL is not set: start a server with `tools/ci/postgres.sh` and export its URL to run the PostgreSQL tests';

const schemas: string[] = [];
function newSchema(): string {
  const s = `brick_t_${randomBytes(6).toString('hex')}`;
  schemas.push(s);
  return s;
}
after(async () => {
  if (!URL_ || schemas.length === 0) return;
  const client = new pg.Client({ connectionString: URL_ });
  await client.connect();
  for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await client.end();
});

async function openFresh(): Promise<PostgresStore> {
  return PostgresStore.open({ connection: URL_!, schema: newSchema() });
}

storeContract('postgresql', { open: openFresh, sql: true, skip });
// Skipped suites do not show in the runner's closing counts; this makes the skip visible there.
if (skip) it('PostgreSQL store tests (need BRICK_TEST_PG_URL)', { skip }, () => {});

describe('postgresql store: connection and migrations', { skip }, () => {
  it('four stores migrating one empty schema at once all succeed; version 1 is recorded once', async () => {
    const schema = newSchema();
    const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresStore.open({ connection: URL_!, schema, poolSize: 1 })));
    for (const s of stores) assert.equal(await s.schemaVersion(), 1);
    const client = new pg.Client({ connectionString: URL_ });
    await client.connect();
    const r = await client.query(`SELECT version FROM "${schema}".schema_version`);
    const body = await client.query(`SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'volumes' AND column_name = 'body'`, [schema]);
    await client.end();
    assert.deepEqual(r.rows, [{ version: 1 }]);
    assert.equal(body.rows[0]?.data_type, 'jsonb');
    await Promise.all(stores.map((s) => s.close()));
  });

  it('four processes migrating one empty schema at once all succeed', async () => {
    const schema = newSchema();
    const ws = Array.from({ length: 4 }, () => startWorker('open', { storage: 'postgresql', connection: URL_, schema }));
    for (const w of ws) await expectClean(w, 30_000);
  });

  it('data survives reopening; the schema can come from the URL (?schema=)', async () => {
    const schema = newSchema();
    const u = new URL(URL_!);
    u.searchParams.set('schema', schema);
    const s1 = await openStore(u.toString());
    assert.equal((s1 as PostgresStore).schema, schema);
    const v = await s1.setVolume(volume({ name: 'kept' }));
    await s1.setKeyValue({ key: 'host-a', value: '{"initiator":"iqn.a"}' });
    await s1.close();
    const s2 = await openStore({ storage: 'postgresql', connection: URL_!, schema });
    assert.deepEqual(await s2.getVolumes(), [v]);
    assert.deepEqual(await s2.getKeyValues('host-a'), [{ key: 'host-a', value: '{"initiator":"iqn.a"}' }]);
    await s2.close();
  });

  it('a role without CREATE on the database can open a schema it owns', async () => {
    const schema = newSchema();
    const role = `${schema}_app`;
    const password = randomBytes(8).toString('hex');
    const admin = new pg.Client({ connectionString: URL_ });
    await admin.connect();
    try {
      await admin.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${password}'`);
      await admin.query(`CREATE SCHEMA "${schema}" AUTHORIZATION "${role}"`);
      const u = new URL(URL_!);
      u.username = role;
      u.password = password;
      const s = await PostgresStore.open({ connection: u.toString(), schema });
      assert.equal((await s.setVolume(volume())).version, 1);
      await s.close();
      const priv = await admin.query('SELECT has_database_privilege($1, current_database(), $2) AS p', [role, 'CREATE']);
      assert.equal(priv.rows[0].p, false, 'the role really lacks CREATE on the database');
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.query(`DROP ROLE IF EXISTS "${role}"`);
      await admin.end();
    }
  });

  it('a NUL character (which JSONB cannot hold) is refused as InvalidInputError; a literal backslash-u0000 text is fine', async () => {
    const s = await openFresh();
    await assert.rejects(s.setVolume(volume({ description: 'a\u0000b' })), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume');
    const ok = await s.setVolume(volume({ description: 'literal \\u0000 text' }));
    assert.equal((await s.getVolumes({ id: ok.id }))[0]!.description, 'literal \\u0000 text');
    await s.close();
  });

  it('an unreachable server is PersistenceError, with the password masked', async () => {
    const u = new URL(URL_!);
    u.port = '1'; // nothing listens on port 1
    u.password = 'not-shown-anywhere';
    await assert.rejects(PostgresStore.open({ connection: u.toString(), connectTimeoutMs: 3000 }), (e: unknown) => {
      assert.ok(e instanceof PersistenceError, String(e));
      assert.ok(!e.message.includes('not-shown-anywhere'), e.message);
      assert.ok(!JSON.stringify(e.details).includes('not-shown-anywhere'));
      assert.match(e.message, /\*\*\*/);
      return true;
    });
  });

  it('a wrong password is PersistenceError without the password', async () => {
    const u = new URL(URL_!);
    u.password = 'wrong-pw-xyz';
    await assert.rejects(PostgresStore.open({ connection: u.toString() }), (e: unknown) => e instanceof PersistenceError && !e.message.includes('wrong-pw-xyz') && /authentication/i.test(e.message));
  });
});

describe('postgresql store: URL handling (no server needed)', () => {
  it('masks passwords and splits the schema parameter', () => {
    assert.equal(redactConnectionUrl('postgresql://brick:s3cret@127.0.0.1:5432/brick'), 'postgresql://brick:***@127.0.0.1:5432/brick');
    assert.equal(redactConnectionUrl('postgresql://brick@h/db'), 'postgresql://brick@h/db');
    assert.deepEqual(parsePostgresUrl('postgresql://u@h/db?schema=s1&sslmode=disable'), { connectionString: 'postgresql://u@h/db?sslmode=disable', schema: 's1' });
    assert.deepEqual(parsePostgresUrl('postgres://u@h/db'), { connectionString: 'postgres://u@h/db', schema: undefined });
    assert.throws(() => parsePostgresUrl('mysql://u@h/db'), (e: unknown) => e instanceof InvalidInputError && e.field === 'connection');
  });
  it('rejects an unsafe schema name before connecting', async () => {
    await assert.rejects(PostgresStore.open({ connection: 'postgresql://u@127.0.0.1:1/db', schema: 'x"; DROP TABLE y; --' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'schema');
  });
});

describe('postgresql store: several processes', { skip }, () => {
  it('two processes compare-and-set the same record: exactly one wins, the other gets StaleRecordError', async () => {
    const schema = newSchema();
    const cfg = { storage: 'postgresql', connection: URL_, schema };
    const store = await PostgresStore.open({ connection: URL_!, schema });
    const v = await store.setVolume(volume({ name: 'start' }));
    const a = startWorker('cas', cfg, v.id, 'A');
    const b = startWorker('cas', cfg, v.id, 'B');
    await a.line((l) => l === 'loaded 1', 15_000, 'worker A to load');
    await b.line((l) => l === 'loaded 1', 15_000, 'worker B to load');
    a.send('go');
    b.send('go');
    await expectClean(a, 15_000);
    await expectClean(b, 15_000);
    assert.deepEqual([a.lines.at(-1), b.lines.at(-1)].sort(), ['stale', 'won']);
    const [stored] = await store.getVolumes({ id: v.id });
    assert.equal(stored!.version, 2);
    assert.equal(stored!.name, a.lines.at(-1) === 'won' ? 'A' : 'B');
    await store.close();
  });

  it('two processes each increment a counter 200 times with reload-and-retry: the count is exactly 400', async (t) => {
    const schema = newSchema();
    const cfg = { storage: 'postgresql', connection: URL_, schema };
    const store = await PostgresStore.open({ connection: URL_!, schema });
    const v = await store.setVolume(volume({ admin_metadata: { counter: '0' } }));
    const ws = [startWorker('counter', cfg, v.id, '200'), startWorker('counter', cfg, v.id, '200')];
    for (const w of ws) await w.line((l) => l === 'ready', 30_000, 'the counter worker to open the store');
    for (const w of ws) w.send('go');
    for (const w of ws) await expectClean(w, 120_000);
    const retries = ws.map((w) => (JSON.parse(w.lines.at(-1)!) as { retries: number }).retries);
    t.diagnostic(`stale-write retries per process: ${retries.join(', ')}`);
    assert.ok(retries[0]! + retries[1]! > 0, 'the two writers never collided, so this run proved nothing');
    const [stored] = await store.getVolumes({ id: v.id });
    assert.equal(stored!.admin_metadata.counter, '400', `retries: ${retries.join(', ')}`);
    assert.equal(stored!.version, 401);
    await store.close();
  });

  it('SIGKILL at random points of concurrent write loops never leaves a torn or half-written record', async (t) => {
    const schema = newSchema();
    const cfg = { storage: 'postgresql', connection: URL_, schema };
    await (await PostgresStore.open({ connection: URL_!, schema })).close();
    const ROUNDS = 3;
    const WRITERS = 3;
    let seen = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const ws = Array.from({ length: WRITERS }, (_, k) => startWorker('churn', cfg, `r${round}w${k}`));
      await Promise.all(
        ws.map(async (w) => {
          await w.line((l) => l.startsWith('updated') && l.endsWith('000003'), 30_000, 'a few commits');
          await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 40)));
          w.child.kill('SIGKILL');
          assert.equal((await w.exited).signal, 'SIGKILL');
          seen += w.lines.filter((l) => l.startsWith('inserted')).length;
        }),
      );
    }
    const store = await PostgresStore.open({ connection: URL_!, schema });
    const vols = await store.getVolumes();
    assert.ok(vols.length >= seen && vols.length <= seen + ROUNDS * WRITERS, `${vols.length} records for ${seen} reported inserts`);
    for (const v of vols) {
      if (v.status === 'creating') {
        assert.equal(v.version, 1, v.id);
        assert.equal(v.admin_metadata.fill, filler(v.id), v.id);
      } else {
        assert.equal(v.status, 'available', v.id);
        assert.equal(v.version, 2, v.id);
        assert.equal(v.description, `done ${v.id}`, v.id);
        assert.equal(v.admin_metadata.fill, filler(`${v.id}/2`), v.id);
      }
    }
    t.diagnostic(`${vols.length} records after ${ROUNDS * WRITERS} kills; ${vols.filter((v) => v.status === 'creating').length} left in creating`);
    await store.close();
  });

  it('SIGKILL between the "creating" insert and its update: reopening sees the complete "creating" record', async () => {
    const schema = newSchema();
    const w = startWorker('hang', { storage: 'postgresql', connection: URL_, schema }, 'vol-half');
    await w.line((l) => l === 'inserted', 15_000, 'the insert');
    w.child.kill('SIGKILL');
    assert.equal((await w.exited).signal, 'SIGKILL');
    const store = await PostgresStore.open({ connection: URL_!, schema });
    assert.deepEqual(await store.getVolumes(), [{ ...volume({ id: 'vol-half', status: 'creating', name: 'half-created' }), version: 1 }]);
    await store.close();
  });
});
