/**
 * `brick volume create --encrypted` as a user runs it: the volume records its encryption and key
 * id, the key is a 0600 file in the private key store, bad encryption input is exit 2 naming the
 * field with nothing created, and deleting the volume deletes its key. (Attaching an encrypted
 * volume needs dm-crypt: see test/lab/encryption.test.ts.)
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
let dir: string;

function brick(args: string[]): { code: number; out: string; err: string; json: () => Record<string, unknown> } {
  const r = spawnSync(process.execPath, [main, ...args], { env: { ...process.env, XDG_DATA_HOME: dir, BRICK_CONFIG: '' }, encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr, json: () => JSON.parse(r.stdout) as Record<string, unknown> };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'brick-cli-enc-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('volume create --encrypted: encryption and key id recorded, key in a 0600 file of the key store; delete removes it', () => {
  const r = brick(['volume', 'create', '--size', '1', '--encrypted', '--encryption-provider', 'luks2', '--key-size', '512', '--json']);
  assert.equal(r.code, 0, r.out + r.err);
  const v = r.json();
  assert.deepEqual(v.encryption, { provider: 'luks2', key_size: 512, control_location: 'front-end' });
  const keyFile = join(dir, 'brick', 'keys', `${String(v.encryption_key_id)}.key`);
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  assert.equal(statSync(keyFile).size, 64);
  assert.equal(statSync(join(dir, 'brick', 'keys')).mode & 0o777, 0o700);
  const shown = brick(['volume', 'show', String(v.id), '--json']).json();
  assert.equal(shown.encryption_key_id, v.encryption_key_id, 'persisted between processes');
  const plain = brick(['volume', 'create', '--size', '1', '--encryption-provider', 'plain', '--json']).json();
  assert.deepEqual(plain.encryption, { provider: 'plain', cipher: 'aes-xts-plain64', key_size: 512, control_location: 'front-end' }, 'a provider implies --encrypted');
  const unencrypted = brick(['volume', 'create', '--size', '1', '--json']).json();
  assert.equal(unencrypted.encryption, null);
  for (const id of [v.id, plain.id, unencrypted.id]) assert.equal(brick(['volume', 'delete', String(id), '--json']).code, 0);
  assert.equal(existsSync(keyFile), false);
  assert.deepEqual(readdirSync(join(dir, 'brick', 'keys')), []);
});

test('volume create with bad encryption options: exit 2 naming the field, nothing created', () => {
  for (const [args, field] of [
    [['--encryption-provider', 'bitlocker'], 'encryption.provider'],
    [['--encrypted', '--key-size', 'big'], 'encryption.key_size'],
    [['--encrypted', '--cipher', 'aes xts'], 'encryption.cipher'],
  ] as const) {
    const r = brick(['volume', 'create', '--size', '1', ...args, '--json']);
    assert.equal(r.code, 2, r.out + r.err);
    assert.equal(r.json().field, field);
  }
  assert.deepEqual(brick(['volume', 'list', '--json']).json(), []);
});
