import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvalidConfigError } from '../../../src/errors.js';
import { defaultDataDir, defaultSqlitePath, openStore, parseStoreUrl } from '../../../src/persistence/factory.js';
import { MemoryStore } from '../../../src/persistence/memory.js';
import { SqliteStore } from '../../../src/persistence/sqlite.js';
import { volume } from './records.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'brick-factory-test-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const configError = (field: string) => (e: unknown) => e instanceof InvalidConfigError && e.field === field;

describe('defaultDataDir', () => {
  it('honours an absolute XDG_DATA_HOME', () => {
    assert.equal(defaultDataDir({ XDG_DATA_HOME: '/srv/data', HOME: '/home/u' }), '/srv/data/brick');
  });
  it('falls back to $HOME/.local/share/brick, ignoring a relative XDG_DATA_HOME (XDG spec)', () => {
    assert.equal(defaultDataDir({ HOME: '/home/u' }), '/home/u/.local/share/brick');
    assert.equal(defaultDataDir({ XDG_DATA_HOME: 'rel/data', HOME: '/home/u' }), '/home/u/.local/share/brick');
    assert.equal(defaultDataDir({ XDG_DATA_HOME: '', HOME: '/home/u' }), '/home/u/.local/share/brick');
  });
  it('without HOME in env uses the account home directory, never process.env', () => {
    assert.equal(defaultDataDir(), path.join(os.homedir(), '.local', 'share', 'brick'));
    assert.equal(defaultSqlitePath({ XDG_DATA_HOME: '/x' }), '/x/brick/brick.sqlite');
  });
});

describe('parseStoreUrl', () => {
  it('memory, sqlite and postgresql URLs', () => {
    assert.deepEqual(parseStoreUrl('memory://'), { storage: 'memory' });
    assert.deepEqual(parseStoreUrl('memory:'), { storage: 'memory' });
    assert.deepEqual(parseStoreUrl('sqlite:///var/lib/brick/b.sqlite'), { storage: 'sqlite', path: '/var/lib/brick/b.sqlite' });
    assert.deepEqual(parseStoreUrl('sqlite:////var/lib/brick/b.sqlite'), { storage: 'sqlite', path: '/var/lib/brick/b.sqlite' });
    assert.deepEqual(parseStoreUrl('sqlite:///tmp/with%20space.db'), { storage: 'sqlite', path: '/tmp/with space.db' });
    assert.deepEqual(parseStoreUrl('sqlite:rel/b.sqlite'), { storage: 'sqlite', path: 'rel/b.sqlite' });
    assert.deepEqual(parseStoreUrl('sqlite://'), { storage: 'sqlite' });
    assert.deepEqual(parseStoreUrl('sqlite://:memory:'), { storage: 'sqlite', path: ':memory:' });
    assert.deepEqual(parseStoreUrl('postgresql://u:p@db:5432/brick'), { storage: 'postgresql', connection: 'postgresql://u:p@db:5432/brick' });
    assert.deepEqual(parseStoreUrl('postgres://db/brick'), { storage: 'postgresql', connection: 'postgres://db/brick' });
  });
  it('unknown schemes and malformed URLs are InvalidConfigError on field storage, with no password shown', () => {
    assert.throws(() => parseStoreUrl('mysql://u:p@h/db'), configError('storage'));
    assert.throws(() => parseStoreUrl('/just/a/path'), configError('storage'));
    assert.throws(() => parseStoreUrl('sqlite://relative/host-form'), configError('storage'));
    assert.throws(() => parseStoreUrl('memory://somewhere'), configError('storage'));
    assert.throws(() => parseStoreUrl('sqlite:///bad%zzescape'), configError('storage'));
    assert.throws(
      () => parseStoreUrl('mysql://user:hunter2@h/db'),
      (e: unknown) => e instanceof InvalidConfigError && !e.message.includes('hunter2'),
    );
  });
});

describe('openStore', () => {
  it('memory by object and by URL', async () => {
    assert.ok((await openStore({ storage: 'memory' })) instanceof MemoryStore);
    assert.ok((await openStore('memory://')) instanceof MemoryStore);
  });

  it('sqlite by object and by URL, at the given path', async () => {
    const p1 = path.join(root, 'a', 'one.sqlite');
    const s1 = await openStore({ storage: 'sqlite', path: p1 });
    assert.ok(s1 instanceof SqliteStore);
    await s1.setVolume(volume({ id: 'v1' }));
    await s1.close();
    const s2 = await openStore(`sqlite://${p1}`);
    assert.deepEqual((await s2.getVolumes()).map((v) => v.id), ['v1']);
    await s2.close();
  });

  it('defaults to sqlite at $XDG_DATA_HOME/brick/brick.sqlite from the env it is given', async () => {
    const xdg = path.join(root, 'xdg');
    const s = await openStore(undefined, { env: { XDG_DATA_HOME: xdg } });
    assert.equal(s.kind, 'sqlite');
    assert.equal((s as SqliteStore).path, path.join(xdg, 'brick', 'brick.sqlite'));
    assert.ok(fs.existsSync(path.join(xdg, 'brick', 'brick.sqlite')));
    assert.equal(fs.statSync(path.join(xdg, 'brick')).mode & 0o777, 0o700);
    await s.close();
    const s2 = await openStore({ storage: 'sqlite' }, { env: { XDG_DATA_HOME: xdg } });
    assert.equal((s2 as SqliteStore).path, path.join(xdg, 'brick', 'brick.sqlite'));
    await s2.close();
  });

  it('an explicit dataDir places the default file there, ahead of the env', async () => {
    const dir = path.join(root, 'data-dir');
    const s = await openStore(undefined, { env: { XDG_DATA_HOME: path.join(root, 'unused') }, dataDir: dir });
    assert.equal((s as SqliteStore).path, path.join(dir, 'brick.sqlite'));
    await s.close();
    assert.equal(fs.existsSync(path.join(root, 'unused')), false);
    const explicit = path.join(root, 'explicit.sqlite');
    const s2 = await openStore({ storage: 'sqlite', path: explicit }, { dataDir: dir });
    assert.equal((s2 as SqliteStore).path, explicit);
    await s2.close();
  });

  it('a Store instance is used as is', async () => {
    const m = new MemoryStore();
    assert.equal(await openStore(m), m);
  });

  it('bad configs are InvalidConfigError naming the field, before anything is created', async () => {
    await assert.rejects(openStore({ storage: 'mysql' } as never), configError('storage'));
    await assert.rejects(openStore({} as never), configError('storage'));
    await assert.rejects(openStore('ftp://x'), configError('storage'));
    await assert.rejects(openStore({ storage: 'sqlite', path: '' }), configError('path'));
    await assert.rejects(openStore({ storage: 'sqlite', path: 42 } as never), configError('path'));
    await assert.rejects(openStore({ storage: 'postgresql' } as never), configError('connection'));
    await assert.rejects(openStore({ storage: 'postgresql', connection: 'http://x' }), configError('connection'));
    await assert.rejects(openStore({ storage: 'postgresql', connection: 'postgresql://h/db', schema: 'Bad-Name' }), configError('schema'));
    const p = path.join(root, 'never', 'made.sqlite');
    await assert.rejects(openStore({ storage: 'sqlite', path: p, busyTimeoutMs: -5 }), configError('busyTimeoutMs'));
    assert.equal(fs.existsSync(path.dirname(p)), false);
  });
});
