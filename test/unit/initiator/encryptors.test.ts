/**
 * The dm-crypt host helpers (`host/crypt.ts`) and os-brick's encryptors
 * (`initiator/encryptors/`) against a recording executor: the key only ever on stdin, never in
 * argv or anything shown; LUKS formats only a device without a header; plain mode's arguments;
 * a wrong key is a typed error that leaves no mapping and no journal record.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { createHostContext } from '../../../src/host/context.js';
import { AttachJournal } from '../../../src/host/journal.js';
import { closeCrypt, cryptStatus, formatLuks, isLuks, openCrypt, resizeCrypt } from '../../../src/host/crypt.js';
import { EncryptionError, InvalidInputError, exitCodeFor } from '../../../src/errors.js';
import { backingDeviceInfo, encryptorFor, encryptorInfo, parseEncryption, passphraseOf } from '../../../src/initiator/encryptors/index.js';

const KEY = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex');
const PASS = KEY.toString('hex');

function context(executor: RecordingExecutor, journal?: AttachJournal) {
  return { ...createHostContext({ executor, hostRoot: '/nonexistent-root', lockPath: '/tmp' }), ...(journal ? { journal } : {}) };
}

/** No argv of any call holds the passphrase, and nothing shown does. */
function assertNoKeyInArgv(executor: RecordingExecutor): void {
  for (const c of executor.calls) {
    assert.ok(!c.argv.some((a) => a.includes(PASS) || a.includes(PASS.slice(0, 16))), `key material in argv: ${c.argv.join(' ')}`);
  }
  assert.ok(!executor.shownText().includes(PASS.slice(0, 16)));
}

const STATUS = (device: string) => ({
  stdout: `/dev/mapper/crypt-x is active.\n  type:    LUKS1\n  cipher:  aes-xts-plain64\n  keysize: 256 bits\n  key location: dm-crypt\n  device:  ${device}\n  sector size:  512\n  offset:  4096 sectors\n  size:    126976 sectors\n  mode:    read/write\n`,
});

test('host crypt: format, open, resize pass the passphrase on stdin with --key-file=-; argv carries none', async () => {
  const ex = new RecordingExecutor().on(['cryptsetup'], {});
  const ctx = context(ex);
  await formatLuks(ctx, { device: '/dev/loop3', passphrase: PASS, version: 'luks2', cipher: 'aes-xts-plain64', keySize: 512 });
  assert.equal(await openCrypt(ctx, { device: '/dev/loop3', name: 'crypt-loop3', passphrase: PASS, type: 'luks' }), '/dev/mapper/crypt-loop3');
  await openCrypt(ctx, { device: '/dev/loop4', name: 'crypt-loop4', passphrase: PASS, type: 'plain', cipher: 'aes-cbc-essiv:sha256', keySize: 256 });
  await resizeCrypt(ctx, 'crypt-loop3', PASS);
  assert.deepEqual(ex.commands(), [
    'cryptsetup --batch-mode luksFormat --type luks2 --key-file=- --cipher aes-xts-plain64 --key-size 512 /dev/loop3',
    'cryptsetup open --type luks --key-file=- /dev/loop3 crypt-loop3',
    'cryptsetup open --type plain --key-file=- --cipher aes-cbc-essiv:sha256 --key-size 256 /dev/loop4 crypt-loop4',
    'cryptsetup resize --key-file=- crypt-loop3',
  ]);
  for (const c of ex.calls) {
    assert.equal(c.options.input, PASS, 'the passphrase goes on stdin');
    assert.ok(c.options.timeoutMs && c.options.timeoutMs > 0, 'every run has a timeout');
  }
  assertNoKeyInArgv(ex);
});

test('host crypt: a wrong passphrase (status 2) is an EncryptionError reason wrong-key, exit status 8, the key nowhere in it', async () => {
  const ex = new RecordingExecutor().on(['cryptsetup', 'open'], { exitCode: 2, stderr: 'No key available with this passphrase.\n' });
  await assert.rejects(openCrypt(context(ex), { device: '/dev/loop3', name: 'crypt-loop3', passphrase: PASS, type: 'luks' }), (err: unknown) => {
    assert.ok(err instanceof EncryptionError);
    assert.equal(err.code, 'ENCRYPTION_FAILED');
    assert.equal(err.details?.reason, 'wrong-key');
    assert.match(err.message, /no key available with this passphrase/);
    assert.equal(exitCodeFor(err), 8);
    assert.ok(!JSON.stringify(err.toJSON()).includes(PASS.slice(0, 16)));
    return true;
  });
});

test('host crypt: close accepts a mapping that is not active; isLuks reads 0/1; status parses or says inactive', async () => {
  const ex = new RecordingExecutor()
    .on(['cryptsetup', 'close', 'gone'], { exitCode: 4, stderr: 'Device gone is not active.' })
    .on(['cryptsetup', 'close', 'here'], {})
    .on(['cryptsetup', 'isLuks', '/dev/a'], {})
    .on(['cryptsetup', 'isLuks', '/dev/b'], { exitCode: 1 })
    .on(['cryptsetup', 'isLuks', '/dev/c'], { exitCode: 4, stderr: 'Device /dev/c does not exist or access denied.' })
    .on(['cryptsetup', 'status', 'none'], { exitCode: 4, stdout: '/dev/mapper/none is inactive.' })
    .on(['cryptsetup', 'status', 'crypt-x'], STATUS('/dev/loop7'));
  const ctx = context(ex);
  assert.equal(await closeCrypt(ctx, 'gone'), false);
  assert.equal(await closeCrypt(ctx, 'here'), true);
  assert.equal(await isLuks(ctx, '/dev/a'), true);
  assert.equal(await isLuks(ctx, '/dev/b'), false);
  await assert.rejects(isLuks(ctx, '/dev/c'), (e: unknown) => e instanceof EncryptionError && e.details?.reason === 'no-device');
  assert.equal(await cryptStatus(ctx, 'none'), undefined);
  assert.deepEqual(await cryptStatus(ctx, 'crypt-x'), { path: '/dev/mapper/crypt-x', type: 'LUKS1', cipher: 'aes-xts-plain64', keySize: 256, device: '/dev/loop7', sizeSectors: 126976 });
});

test('host crypt: bad names, devices, ciphers and key sizes are refused before anything runs', async () => {
  const ex = new RecordingExecutor();
  const ctx = context(ex);
  await assert.rejects(openCrypt(ctx, { device: '/dev/a', name: '../x', passphrase: PASS, type: 'luks' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'name');
  await assert.rejects(openCrypt(ctx, { device: 'dev/a', name: 'x', passphrase: PASS, type: 'luks' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'device');
  await assert.rejects(openCrypt(ctx, { device: '/dev/a', name: 'x', passphrase: PASS, type: 'plain', cipher: 'aes;rm' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'cipher');
  await assert.rejects(formatLuks(ctx, { device: '/dev/a', passphrase: PASS, version: 'luks1', keySize: 100 }), (e: unknown) => e instanceof InvalidInputError && e.field === 'key_size');
  assert.equal(ex.calls.length, 0);
});

test('encryption document: os-brick keys and provider aliases; back-end and NoOp providers mean nothing on the host', () => {
  assert.deepEqual(parseEncryption({ provider: 'luks2', cipher: 'aes-xts-plain64', key_size: '512', control_location: 'front-end' }), {
    provider: 'luks2',
    cipher: 'aes-xts-plain64',
    keySize: 512,
    controlLocation: 'front-end',
  });
  assert.equal(parseEncryption({ provider: 'nova.volume.encryptors.luks.LuksEncryptor' }).provider, 'luks');
  assert.equal(parseEncryption({ provider: 'os_brick.encryptors.cryptsetup.CryptsetupEncryptor' }).provider, 'plain');
  assert.equal(parseEncryption({ provider: 'NoOpEncryptor' }).provider, null);
  assert.equal(parseEncryption({ provider: 'luks', control_location: 'BACK-END' }).provider, null);
  assert.throws(() => parseEncryption({ provider: 'veracrypt' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'encryption.provider');
  assert.throws(() => parseEncryption({ provider: 'luks', key_size: 255 }), (e: unknown) => e instanceof InvalidInputError && e.field === 'encryption.key_size');
  assert.throws(() => parseEncryption({ provider: 'luks', control_location: 'middle' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'encryption.control_location');
  assert.equal(encryptorFor(context(new RecordingExecutor()), parseEncryption({ control_location: 'back-end' })).provider, null);
});

test('luks encryptor: formats a device with no LUKS header, then opens it; the device info points at /dev/mapper', async () => {
  const ex = new RecordingExecutor()
    .on(['cryptsetup', 'status'], { exitCode: 4 })
    .on(['cryptsetup', 'isLuks'], { exitCode: 1 })
    .on(['cryptsetup', '--batch-mode', 'luksFormat'], {})
    .on(['cryptsetup', 'open'], {});
  const enc = encryptorFor(context(ex), parseEncryption({ provider: 'luks' }));
  const dev = await enc.attachVolume({ type: 'block', path: '/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-iqn.x-lun-1', scsi_wwn: '3600' }, KEY);
  assert.equal(dev.path, '/dev/mapper/crypt-ip-10.0.0.1:3260-iscsi-iqn.x-lun-1', "os-brick's name: crypt-<basename>");
  assert.equal(dev.scsi_wwn, '3600');
  assert.equal(encryptorInfo(dev)?.provider, 'luks');
  assert.equal(backingDeviceInfo(dev).path, '/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-iqn.x-lun-1');
  assert.deepEqual(
    ex.commands().map((c) => c.split(' ').slice(0, 3).join(' ')),
    ['cryptsetup status crypt-ip-10.0.0.1:3260-iscsi-iqn.x-lun-1', 'cryptsetup isLuks /dev/disk/by-path/ip-10.0.0.1:3260-iscsi-iqn.x-lun-1', 'cryptsetup --batch-mode luksFormat', 'cryptsetup open --type'],
  );
  assert.match(ex.commands()[2]!, /--type luks1 /, 'provider luks is LUKS1');
  assert.equal(ex.calls[2]!.options.input, passphraseOf(KEY), "the passphrase is the key's hex, as os-brick's");
  assertNoKeyInArgv(ex);
});

test('luks encryptor: never reformats a device that has a header; luks2 formats LUKS2', async () => {
  const ex = new RecordingExecutor().on(['cryptsetup', 'status'], { exitCode: 4 }).on(['cryptsetup', 'isLuks'], {}).on(['cryptsetup', 'open'], {});
  await encryptorFor(context(ex), parseEncryption({ provider: 'luks2' })).attachVolume({ type: 'block', path: '/dev/sdb' }, KEY, { name: 'crypt-volume-1' });
  assert.ok(!ex.commands().some((c) => c.includes('luksFormat')), 'a device with a header is not formatted');
  const ex2 = new RecordingExecutor().on(['cryptsetup'], {}).on(['cryptsetup', 'status'], { exitCode: 4 }).on(['cryptsetup', 'isLuks'], { exitCode: 1 });
  await encryptorFor(context(ex2), parseEncryption({ provider: 'luks2' })).attachVolume({ type: 'block', path: '/dev/sdb' }, KEY);
  assert.ok(ex2.commands().some((c) => c.startsWith('cryptsetup --batch-mode luksFormat --type luks2 --key-file=- /dev/sdb')));
});

test('plain encryptor: open --type plain with the cipher and key size; no isLuks, no format; extend and detach', async () => {
  const ex = new RecordingExecutor()
    .on(['cryptsetup', 'status'], { exitCode: 4 }, 1)
    .on(['cryptsetup', 'open'], {})
    .on(['cryptsetup', 'resize'], {})
    .on(['cryptsetup', 'close'], {})
    .on(['blockdev', '--getsize64'], { stdout: '1073741824\n' });
  const enc = encryptorFor(context(ex), parseEncryption({ provider: 'plain', cipher: 'aes-xts-plain64', key_size: 512 }));
  const dev = await enc.attachVolume({ type: 'block', path: '/dev/loop2' }, KEY, { name: 'crypt-volume-2' });
  assert.equal(dev.path, '/dev/mapper/crypt-volume-2');
  assert.equal(await enc.extendVolume(dev, KEY), 1073741824);
  assert.deepEqual(await enc.detachVolume(dev), { type: 'block', path: '/dev/loop2' });
  assert.deepEqual(ex.commands(), [
    'cryptsetup status crypt-volume-2',
    'cryptsetup open --type plain --key-file=- --cipher aes-xts-plain64 --key-size 512 /dev/loop2 crypt-volume-2',
    'cryptsetup resize crypt-volume-2',
    'blockdev --getsize64 /dev/mapper/crypt-volume-2',
    'cryptsetup close crypt-volume-2',
  ]);
  assert.equal(ex.calls[2]!.options.input, undefined, 'plain mode resizes without the key');
  assertNoKeyInArgv(ex);
});

test('encryptor: a wrong key fails typed, records nothing in the journal, and an existing mapping over the device is reused', async () => {
  const dir = fs.mkdtempSync(join(tmpdir(), 'brick-enc-journal-'));
  try {
    const journal = new AttachJournal(dir, { privateDirectory: false, readProc: () => 'boot\n' });
    const ex = new RecordingExecutor()
      .on(['cryptsetup', 'status'], { exitCode: 4 })
      .on(['cryptsetup', 'isLuks'], {})
      .on(['cryptsetup', 'open'], { exitCode: 2, stderr: 'No key available with this passphrase.' });
    const enc = encryptorFor(context(ex, journal), parseEncryption({ provider: 'luks' }));
    await assert.rejects(enc.attachVolume({ type: 'block', path: '/dev/sdc' }, KEY, { name: 'crypt-v' }), (e: unknown) => e instanceof EncryptionError && e.details?.reason === 'wrong-key');
    assert.deepEqual(await journal.resources(), [], 'the intent is withdrawn when nothing was opened');

    const ok = new RecordingExecutor().on(['cryptsetup', 'status'], { exitCode: 4 }, 1).on(['cryptsetup', 'isLuks'], {}).on(['cryptsetup', 'open'], {}).on(['cryptsetup', 'close'], {});
    const enc2 = encryptorFor(context(ok, journal), parseEncryption({ provider: 'luks' }));
    const dev = await enc2.attachVolume({ type: 'block', path: '/dev/sdc' }, KEY, { name: 'crypt-v' });
    assert.deepEqual(
      (await journal.resources()).map((r) => [r.kind, r.name, r.attrs.device]),
      [['dm-crypt', '/dev/mapper/crypt-v', '/dev/sdc']],
    );
    await enc2.detachVolume(dev);
    assert.deepEqual(await journal.resources(), []);

    const again = new RecordingExecutor().on(['cryptsetup', 'status'], { ...STATUS('/dev/sdc') });
    const dev2 = await encryptorFor(context(again), parseEncryption({ provider: 'luks' })).attachVolume({ type: 'block', path: '/dev/sdc' }, KEY, { name: 'crypt-v' });
    assert.equal(dev2.path, '/dev/mapper/crypt-v');
    assert.deepEqual(again.commands(), ['cryptsetup status crypt-v'], 'an open mapping over the same device is reused');
    const other = new RecordingExecutor().on(['cryptsetup', 'status'], { ...STATUS('/dev/sdz') });
    await assert.rejects(encryptorFor(context(other), parseEncryption({ provider: 'luks' })).attachVolume({ type: 'block', path: '/dev/sdc' }, KEY, { name: 'crypt-v' }), (e: unknown) => e instanceof EncryptionError && e.details?.reason === 'busy');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
