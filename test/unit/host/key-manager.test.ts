/**
 * The key managers: the file one keeps one 0600 file per key in a private directory and never
 * follows a symbolic link; the callback one calls the caller's functions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CallbackKeyManager, FileKeyManager } from '../../../src/host/key-manager.js';
import { EncryptionError, InvalidConfigError, InvalidInputError, NotFoundError } from '../../../src/errors.js';

function tempRoot(): string {
  const root = fs.mkdtempSync(join(tmpdir(), 'brick-keys-'));
  fs.chmodSync(root, 0o700);
  return root;
}

test('file key manager: a key is random bytes of the asked length in a 0600 file under a 0700 directory; delete removes it', async () => {
  const root = tempRoot();
  try {
    const km = new FileKeyManager(join(root, 'keys'));
    const id = await km.createKey(256);
    assert.match(id, /^[0-9a-f-]{36}$/);
    const file = join(root, 'keys', `${id}.key`);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(fs.statSync(join(root, 'keys')).mode & 0o777, 0o700);
    const key = await km.getKey(id);
    assert.equal(key.length, 32);
    assert.notDeepEqual(key, await km.getKey(await km.createKey(256)), 'two keys differ');
    const copy = await km.storeKey(key);
    assert.deepEqual(await km.getKey(copy), key);
    await km.deleteKey(id);
    assert.equal(fs.existsSync(file), false);
    await km.deleteKey(id); // twice is fine
    await assert.rejects(km.getKey(id), NotFoundError);
    await assert.rejects(km.createKey(100), (e: unknown) => e instanceof InvalidInputError && e.field === 'key_size');
    await assert.rejects(km.getKey('../../etc/passwd'), (e: unknown) => e instanceof InvalidInputError && e.field === 'encryption_key_id');
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('file key manager: a symbolic link in the store is refused, not followed; a key readable by others is refused', async () => {
  const root = tempRoot();
  try {
    const km = new FileKeyManager(join(root, 'keys'));
    const id = await km.createKey(128);
    const outside = join(root, 'outside');
    fs.writeFileSync(outside, 'not a key', { mode: 0o600 });
    fs.symlinkSync(outside, join(root, 'keys', 'planted.key'));
    await assert.rejects(km.getKey('planted'), (e: unknown) => e instanceof EncryptionError && /symbolic link/.test(e.message) && e.details?.reason === 'key-store');
    await km.deleteKey('planted');
    assert.equal(fs.readFileSync(outside, 'utf8'), 'not a key', 'deleting a planted link never writes through it');
    assert.equal(fs.existsSync(join(root, 'keys', 'planted.key')), false);
    fs.chmodSync(join(root, 'keys', `${id}.key`), 0o644);
    await assert.rejects(km.getKey(id), (e: unknown) => e instanceof EncryptionError && /mode 644/.test(e.message));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('file key manager: a key directory that is a symbolic link, or writable by others, is refused', async () => {
  const root = tempRoot();
  try {
    fs.mkdirSync(join(root, 'real'), { mode: 0o700 });
    fs.symlinkSync(join(root, 'real'), join(root, 'keys'));
    await assert.rejects(new FileKeyManager(join(root, 'keys')).createKey(256), (e: unknown) => e instanceof InvalidConfigError && e.field === 'key_store');
    fs.mkdirSync(join(root, 'open'));
    fs.chmodSync(join(root, 'open'), 0o777);
    await assert.rejects(new FileKeyManager(join(root, 'open')).createKey(256), (e: unknown) => e instanceof InvalidConfigError && /writable by group or others/.test(e.message));
    assert.deepEqual(fs.readdirSync(join(root, 'real')), []);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('callback key manager: calls the functions given; a hex string is a key; missing functions are configuration errors', async () => {
  const calls: string[] = [];
  const km = new CallbackKeyManager({
    getKey: async (id) => {
      calls.push(`get ${id}`);
      return 'a1b2c3d4';
    },
    createKey: async (bits) => {
      calls.push(`create ${bits}`);
      return 'k1';
    },
  });
  assert.deepEqual(await km.getKey('k1'), Buffer.from('a1b2c3d4', 'hex'));
  assert.equal(await km.createKey(512), 'k1');
  await km.deleteKey('k1'); // no deleteKey: nothing to do
  await assert.rejects(km.storeKey(Buffer.from('x')), (e: unknown) => e instanceof InvalidConfigError && e.field === 'key_manager.storeKey');
  assert.deepEqual(calls, ['get k1', 'create 512']);
  await assert.rejects(new CallbackKeyManager({ getKey: async () => Buffer.alloc(0) }).getKey('x'), EncryptionError);
  await assert.rejects(new CallbackKeyManager({ getKey: async () => 'ab' }).createKey(256), (e: unknown) => e instanceof InvalidConfigError && e.field === 'key_manager.createKey');
  assert.throws(() => new CallbackKeyManager({} as never), InvalidConfigError);
});
