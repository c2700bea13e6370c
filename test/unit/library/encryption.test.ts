/**
 * Encrypted volumes through the object API with the fake driver: the key is created and its id
 * recorded, the first attach formats and opens, the connection's path is the dm-crypt device,
 * detach closes before the connector disconnects, extend resizes the mapping, clone copies the
 * key, delete deletes it; bad encryption input is refused before anything is stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { fakeBackend, fakeConnector } from './fake-driver.js';
import type { RecordingExecutor } from '../../../src/exec/recording.js';
import { CallbackKeyManager } from '../../../src/host/key-manager.js';
import { EncryptionError, InvalidInputError } from '../../../src/errors.js';
import { setup, Backend } from '../../../src/library/index.js';
import { MemoryStore } from '../../../src/persistence/memory.js';
import { RecordingExecutor as Recorder } from '../../../src/exec/recording.js';

function cryptsetupFake(ex: RecordingExecutor, state: { luks: boolean; open: Set<string> }): void {
  ex.on(['cryptsetup', 'status'], (argv) => (state.open.has(argv[2]!) ? { stdout: `  type: LUKS1\n  device: /dev/fake/x\n` } : { exitCode: 4 }))
    .on(['cryptsetup', 'isLuks'], () => ({ exitCode: state.luks ? 0 : 1 }))
    .on(['cryptsetup', '--batch-mode', 'luksFormat'], () => {
      state.luks = true;
      return {};
    })
    .on(['cryptsetup', 'open'], (argv) => {
      state.open.add(argv[argv.length - 1]!);
      return {};
    })
    .on(['cryptsetup', 'close'], (argv) => {
      state.open.delete(argv[2]!);
      return {};
    })
    .on(['cryptsetup', 'resize'], {})
    .on(['blockdev', '--getsize64'], { stdout: '2145386496\n' });
}

test('an encrypted volume: key created and recorded, formatted on first attach only, path is /dev/mapper, detach closes first, extend resizes, delete removes the key', async (t) => {
  const { ctx, backend } = await fakeBackend(t);
  const ex = ctx.executor as RecordingExecutor;
  const state = { luks: false, open: new Set<string>() };
  cryptsetupFake(ex, state);

  const vol = await backend.createVolume({ size: 1, encryption: { provider: 'luks2', cipher: 'aes-xts-plain64', key_size: 512 } });
  assert.deepEqual(vol.encryption, { provider: 'luks2', cipher: 'aes-xts-plain64', key_size: 512, control_location: 'front-end' });
  assert.ok(vol.encryptionKeyId);
  const [rec] = await ctx.store.getVolumes({ id: vol.id });
  assert.equal(rec!.encryption_key_id, vol.encryptionKeyId, 'the key id is stored on the volume record, as Cinder keeps it');
  const keyFile = join(ctx.stateDir, 'keys', `${vol.encryptionKeyId}.key`);
  assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
  assert.equal(fs.statSync(keyFile).size, 64, 'key_size bits of key');

  const conn = await vol.attach();
  assert.equal(conn.path, `/dev/mapper/crypt-volume-${vol.id}`);
  assert.equal((conn.connInfo.data as Record<string, unknown>).encrypted, true, "Cinder's encrypted flag in the connection properties");
  assert.deepEqual(
    ex.commands().map((c) => c.split(' ').slice(0, 2).join(' ')),
    ['cryptsetup status', 'cryptsetup isLuks', 'cryptsetup --batch-mode', 'cryptsetup open'],
  );
  const key = fs.readFileSync(keyFile).toString('hex');
  assert.ok(ex.calls.every((c) => !c.argv.join(' ').includes(key.slice(0, 16))), 'no key material in argv');
  assert.equal(ex.calls.find((c) => c.argv.includes('open'))!.options.input, key, 'the key goes on stdin as hex');

  ex.calls.length = 0;
  assert.equal(await vol.extend(2), 2145386496, "the decrypted device's size");
  assert.deepEqual(ex.commands(), [`cryptsetup resize --key-file=- crypt-volume-${vol.id}`, `blockdev --getsize64 /dev/mapper/crypt-volume-${vol.id}`]);

  const before = fakeConnector.calls.length;
  ex.on(['cryptsetup', 'close'], () => {
    assert.equal(fakeConnector.calls.length, before, 'closed before the connector disconnects');
    state.open.clear();
    return {};
  }, 1);
  await vol.detach();
  assert.deepEqual(fakeConnector.calls.slice(before), [`disconnect ${vol.id}`]);
  assert.equal(state.open.size, 0);

  ex.calls.length = 0;
  const again = await vol.attach();
  assert.equal(again.path, `/dev/mapper/crypt-volume-${vol.id}`);
  assert.ok(!ex.commands().some((c) => c.includes('luksFormat')), 'a volume with a header is never reformatted');
  await vol.detach();

  await vol.delete();
  assert.equal(fs.existsSync(keyFile), false, 'deleting the volume deletes its key');
});

test('a clone of an encrypted volume gets a copy of its key under a new id and the same spec; a plain volume gets the plain defaults', async (t) => {
  const { ctx, backend } = await fakeBackend(t);
  const src = await backend.createVolume({ size: 1, encryption: { provider: 'plain' } });
  assert.deepEqual(src.encryption, { provider: 'plain', cipher: 'aes-xts-plain64', key_size: 512, control_location: 'front-end' });
  const clone = await src.clone();
  assert.deepEqual(clone.encryption, src.encryption);
  assert.notEqual(clone.encryptionKeyId, src.encryptionKeyId);
  assert.deepEqual(await ctx.keyManager.getKey(clone.encryptionKeyId!), await ctx.keyManager.getKey(src.encryptionKeyId!));
  const snap = await src.createSnapshot();
  const fromSnap = await snap.createVolume();
  assert.deepEqual(await ctx.keyManager.getKey(fromSnap.encryptionKeyId!), await ctx.keyManager.getKey(src.encryptionKeyId!));
  const plainVol = await backend.createVolume({ size: 1 });
  assert.equal(plainVol.encryption, null);
  assert.equal(plainVol.encryptionKeyId, null);
  const [rec] = await ctx.store.getVolumes({ id: plainVol.id });
  assert.equal('encryption_key_id' in rec!, false, 'an unencrypted record is unchanged');
});

test('bad encryption input is refused before anything is stored or a key is created', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  for (const [encryption, field] of [
    [{ provider: 'bitlocker' }, 'encryption.provider'],
    [{ provider: 'luks', key_size: 7 }, 'encryption.key_size'],
    [{ provider: 'luks', control_location: 'back-end' }, 'encryption.control_location'],
    [{ provider: 'nova.volume.encryptors.nop.NoopEncryptor' }, 'encryption.provider'],
    [{ provider: 'luks', cipher: 'aes xts' }, 'encryption.cipher'],
  ] as const) {
    await assert.rejects(backend.createVolume({ size: 1, encryption }), (e: unknown) => e instanceof InvalidInputError && e.field === field, field);
  }
  assert.deepEqual(await ctx.store.getVolumes(), []);
  assert.equal(driver.callsOf('createVolume').length, 0);
  assert.equal(fs.existsSync(join(ctx.stateDir, 'keys')), false);
});

test('a wrong key fails the attach with a typed error, leaves no mapping, disconnects the device and leaves the volume in error', async (t) => {
  const { ctx, backend, driver } = await fakeBackend(t);
  const ex = ctx.executor as RecordingExecutor;
  const state = { luks: true, open: new Set<string>() };
  cryptsetupFake(ex, state);
  ex.on(['cryptsetup', 'open'], { exitCode: 2, stderr: 'No key available with this passphrase.' });
  const vol = await backend.createVolume({ size: 1, encryption: { provider: 'luks' } });
  const before = fakeConnector.calls.length;
  await assert.rejects(vol.attach(), (e: unknown) => e instanceof EncryptionError && e.details?.reason === 'wrong-key');
  assert.deepEqual(fakeConnector.calls.slice(before), [`connect ${vol.id}`, `disconnect ${vol.id}`]);
  assert.equal(state.open.size, 0);
  assert.ok(!ex.commands().some((c) => c.includes('luksFormat')), 'a LUKS device is never reformatted, even when the key is wrong');
  assert.equal(vol.status, 'error');
  assert.equal(vol.connections.length, 0);
  assert.equal(driver.exports.size, 0);
});

test('setup() takes a callback key manager; the keys it gives are used', async (t) => {
  const keys = new Map<string, Buffer>();
  const km = new CallbackKeyManager({
    getKey: async (id) => keys.get(id)!,
    createKey: async (bits) => {
      keys.set(`k${keys.size}`, Buffer.alloc(bits / 8, 0x5a));
      return `k${keys.size - 1}`;
    },
  });
  const dir = fs.mkdtempSync(join((await import('node:os')).tmpdir(), 'brick-lib-enc-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ex = new Recorder();
  const ctx = setup({ stateDir: dir, hostRoot: dir, persistence: new MemoryStore(), executor: ex, hostName: 'unit-host', myIp: '192.0.2.10', keyManager: km });
  const backend = await Backend.create({ volume_backend_name: 'fake-cb', volume_driver: 'fake' }, { context: ctx });
  cryptsetupFake(ex, { luks: false, open: new Set() });
  const vol = await backend.createVolume({ size: 1, encryption: {} });
  assert.equal(vol.encryptionKeyId, 'k0');
  assert.equal(vol.encryption?.provider, 'luks', 'luks by default');
  await vol.attach();
  assert.equal(ex.calls.find((c) => c.argv.includes('open'))!.options.input, '5a'.repeat(32));
  assert.equal(fs.existsSync(join(dir, 'keys')), false, 'the file key store is not used');
  await vol.detach();
});
