/**
 * Lab tests of the encryptors (#17 part 4) through the library, on the file backend (a pool
 * file per volume, attached as a loop device by the LOCAL connector) with real dm-crypt and
 * cryptsetup: for `luks`, `luks2` and `plain`, an encrypted volume is created, attached (the
 * connection's path is `/dev/mapper/crypt-volume-<id>`), written with a known pattern that must
 * NOT be found in the backing file (where a LUKS header of the right version must be, for LUKS),
 * detached, re-attached and read back, extended (the decrypted device grows, the data stays), and
 * a wrong key fails with a typed error leaving no mapping. At the end no dm-crypt mapping is left
 * (`dmsetup ls --target crypt`), no loop device, and the key material is nowhere but the key store.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { assertNoLeftovers, probeLeftovers, modprobe, run, readDirect, sparseFile, writeSynced, type Leftovers } from './fixtures/index.js';
import '../../src/drivers/index.js';
import '../../src/initiator/connectors/index.js';
import { setup, Backend, type BrickContext, type Volume } from '../../src/library/index.js';
import { MemoryStore } from '../../src/persistence/memory.js';
import { createCapturingLogger } from '../../src/log.js';
import { EncryptionError } from '../../src/errors.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const root = fs.mkdtempSync('/tmp/brick-enc-');
const log = createCapturingLogger('debug');
let ctx: BrickContext;
let backend: Backend;
let baseline: Partial<Leftovers> = {};

// The guest's /tmp is a tmpfs, where the file backend's loop devices (direct I/O) cannot be
// set up: the pool lives on an ext4 file system of its own, on a loop device over a sparse file.
let fsLoop: string | undefined;

before(async () => {
  await modprobe('dm_crypt', 'loop');
  sparseFile(join(root, 'fs.img'), 4096);
  fsLoop = (await run(['losetup', '--find', '--show', join(root, 'fs.img')])).stdout.trim();
  await run(['mkfs.ext4', '-q', '-F', fsLoop], { timeoutMs: 120_000 });
  fs.mkdirSync(join(root, 'mnt'), { mode: 0o700 });
  await run(['mount', fsLoop, join(root, 'mnt')]);
  baseline = probeLeftovers();
  ctx = setup({ stateDir: join(root, 'state'), persistence: new MemoryStore(), logger: log.logger });
  backend = await Backend.create({ volume_backend_name: 'encfile', volume_driver: 'file', pool_path: join(root, 'mnt', 'pool') });
});

after(async () => {
  await backend?.close();
  await run(['umount', join(root, 'mnt')], { checkExitCode: false });
  if (fsLoop) await run(['losetup', '-d', fsLoop], { checkExitCode: false });
  fs.rmSync(root, { recursive: true, force: true });
});

async function cryptMappings(): Promise<string[]> {
  const r = await run(['dmsetup', 'ls', '--target', 'crypt']);
  return r.stdout.includes('No devices found') ? [] : r.stdout.trim().split('\n').filter(Boolean).map((l) => l.split(/\s+/)[0]!);
}

function poolFile(vol: Volume): string {
  return join(root, 'mnt', 'pool', `volume-${vol.id}.img`);
}

/** Whether `needle` occurs in the first `limit` bytes of `file` (read in 64 MiB chunks with an overlap). */
function fileContains(file: string, needle: Buffer, limit = Infinity): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const size = Math.min(limit, fs.fstatSync(fd).size);
    const chunk = Buffer.alloc(64 * MiB);
    for (let off = 0; off < size; off += chunk.length - needle.length) {
      const n = fs.readSync(fd, chunk, 0, chunk.length, off);
      if (chunk.subarray(0, n).includes(needle)) return true;
      if (n < chunk.length) break;
    }
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/** Every file under `dir` (no links followed), except under `skip`. */
function filesUnder(dir: string, skip: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (p === skip) continue;
    if (e.isDirectory()) out.push(...filesUnder(p, skip));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

for (const provider of ['luks', 'luks2', 'plain'] as const) {
  test(`${provider}: create, attach through dm-crypt, data encrypted at rest, detach, re-attach, extend, wrong key, delete: nothing left`, async () => {
    const vol = await backend.createVolume({ size: 1, name: `enc-${provider}`, encryption: { provider } });
    assert.ok(vol.encryptionKeyId);
    const keyFile = join(root, 'state', 'keys', `${vol.encryptionKeyId}.key`);
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
    const key = fs.readFileSync(keyFile);
    const passphrase = key.toString('hex');

    // Attach: the first attach formats a LUKS volume, then opens it.
    const conn = await vol.attach();
    const mapped = `/dev/mapper/crypt-volume-${vol.id}`;
    assert.equal(conn.path, mapped);
    assert.deepEqual(await cryptMappings(), [`crypt-volume-${vol.id}`]);
    const status = (await run(['cryptsetup', 'status', `crypt-volume-${vol.id}`])).stdout;
    assert.match(status, new RegExp(`type:\\s+${provider === 'luks' ? 'LUKS1' : provider === 'luks2' ? 'LUKS2' : 'PLAIN'}`));

    // A known pattern through the decrypted device: not in the backing file, which holds a LUKS header.
    const data = Buffer.concat(Array.from({ length: 16 }, () => Buffer.from(`brick-encryption-pattern-${provider}-`.padEnd(256, '#'))));
    writeSynced(mapped, data, 0);
    writeSynced(mapped, data, 64 * MiB);
    const file = poolFile(vol);
    // Everything written lies in the first 96 MiB of the file (LUKS2's data offset is 16 MiB); a
    // whole-file scan of a sparse GiB is slow under emulation and proves no more.
    assert.equal(fileContains(file, data.subarray(0, 256), 96 * MiB), false, 'the plaintext is not in the backing file');
    const head = Buffer.alloc(8);
    const fd = fs.openSync(file, 'r');
    fs.readSync(fd, head, 0, 8, 0);
    fs.closeSync(fd);
    if (provider === 'plain') assert.notDeepEqual(head.subarray(0, 6), Buffer.from('LUKS\xba\xbe', 'latin1'), 'plain mode has no header');
    else {
      assert.deepEqual(head.subarray(0, 6), Buffer.from('LUKS\xba\xbe', 'latin1'), 'a LUKS header at the start of the backing file');
      assert.equal(head.readUInt16BE(6), provider === 'luks' ? 1 : 2, 'the LUKS version asked for');
    }

    // Detach closes the mapping and the loop device; re-attach reads the data back, not reformatted.
    await vol.detach();
    assert.deepEqual(await cryptMappings(), []);
    const again = await vol.attach();
    assert.equal(again.path, mapped);
    assert.ok(readDirect(mapped, 0, data.length).equals(data), 'the data reads back after a detach and re-attach');

    // Extend: the decrypted device grows by a GiB; the data stays; the new end is usable.
    const before = Number((await run(['blockdev', '--getsize64', mapped])).stdout.trim());
    const size = await vol.extend(2);
    assert.equal(size, Number((await run(['blockdev', '--getsize64', mapped])).stdout.trim()));
    assert.equal(size - before, GiB, 'the mapping grew by the volume growth');
    assert.ok(readDirect(mapped, 64 * MiB, data.length).equals(data));
    const tail = randomBytes(4096);
    writeSynced(mapped, tail, size - 4096);
    assert.ok(readDirect(mapped, size - 4096).equals(tail));
    await vol.detach();

    // A wrong key (LUKS checks it; plain mode cannot tell a wrong key from a right one).
    if (provider !== 'plain') {
      fs.writeFileSync(keyFile, randomBytes(key.length));
      await assert.rejects(vol.attach(), (err: unknown) => err instanceof EncryptionError && err.details?.reason === 'wrong-key' && /no key available/.test(err.message));
      assert.deepEqual(await cryptMappings(), [], 'a wrong key leaves no mapping');
      await assertNoLeftovers(baseline);
      fs.writeFileSync(keyFile, key);
      const ok = await vol.attach();
      assert.ok(readDirect(ok.path!, 0, data.length).equals(data), 'the right key opens it again, not reformatted');
      await vol.detach();
    }

    // No key material outside the key store: not in the records, the state directory or the logs.
    const records = JSON.stringify([await ctx.store.getVolumes(), await ctx.store.getConnections()]);
    for (const needle of [passphrase, passphrase.slice(0, 32), key.toString('base64')]) {
      assert.ok(!records.includes(needle), 'key not in the store');
      assert.ok(!log.text().includes(needle), 'key not in the logs');
    }
    for (const f of filesUnder(join(root, 'state'), join(root, 'state', 'keys'))) {
      assert.equal(fileContains(f, Buffer.from(passphrase)), false, `key not in ${f}`);
      assert.equal(fileContains(f, key), false, `key not in ${f}`);
    }

    await vol.delete();
    assert.equal(fs.existsSync(keyFile), false, 'deleting the volume deleted its key');
    assert.deepEqual(await cryptMappings(), []);
    await assertNoLeftovers(baseline);
  });
}
