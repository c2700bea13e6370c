/**
 * Issue #13, defect 6: a volume or snapshot file replaced by a symbolic link must never lead the
 * file driver to another file. Every operation that opens, truncates, copies, loop-attaches or
 * deletes a pool file refuses the link with an InvalidStateError naming the volume (or
 * snapshot), and the link's target is untouched. No root needed: the target is a file the test
 * owns, and no program runs (the executor records calls and answers none).
 */
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readFileSync, statSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileDriver } from '../../../src/drivers/file/driver.js';
import type { DriverSnapshot, DriverVolume } from '../../../src/drivers/driver.js';
import { createFixtureTree, fixtureContext } from '../../../src/testing/fixture-tree.js';
import type { RecordingExecutor } from '../../../src/exec/recording.js';
import { copySparse } from '../../../src/host/copy.js';
import { InvalidInputError, InvalidStateError } from '../../../src/errors.js';

const TARGET_TEXT = 'root-only secret: must stay 34 B\n';

let dir: string;
let driver: FileDriver;
let executor: RecordingExecutor;
let target: string;

const volume = (id: string, size = 1): DriverVolume => ({ id, name: `volume-${id}`, size });
const snapshotOf = (id: string, vol: DriverVolume): DriverSnapshot => ({ id, name: `snapshot-${id}`, volume_id: vol.id, volume_size: vol.size, volume: vol });

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'brick-links-'));
  const made = fixtureContext(createFixtureTree({}).root);
  executor = made.executor;
  driver = new FileDriver({ pool_path: join(dir, 'pool'), use_reflink: false }, { ...made.ctx, backendName: 'links', stateDir: dir });
  await driver.doSetup();
  target = join(dir, 'target');
  writeFileSync(target, TARGET_TEXT, { mode: 0o600 });
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Replace the file of pool object `name` with a symlink to the target. */
function plantLink(name: string): string {
  const file = driver.pathFor(name);
  if (existsSync(file)) unlinkSync(file);
  symlinkSync(target, file);
  return file;
}

/** A check for `assert.rejects`: InvalidStateError naming `name`, and the target unchanged. */
function linkRefused(name: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof InvalidStateError, `expected InvalidStateError, got ${String(e)}`);
    assert.match(e.message, new RegExp(`${name}.*symbolic link`));
    assert.equal(e.details?.['name'], name);
    assert.equal(readFileSync(target, 'utf8'), TARGET_TEXT, 'the target is untouched');
    return true;
  };
}

test('extend of a volume whose file is a symlink is refused and does not grow the target', async () => {
  const vol = volume('v1');
  await driver.createVolume(vol);
  plantLink(vol.name);
  await assert.rejects(driver.extendVolume(vol, 2), linkRefused(vol.name));
  assert.equal(statSync(target).size, TARGET_TEXT.length);
});

test('snapshot and clone of a volume whose file is a symlink are refused; no copy of the target is made', async () => {
  const vol = volume('v2');
  await driver.createVolume(vol);
  plantLink(vol.name);
  const snap = snapshotOf('s2', vol);
  await assert.rejects(driver.createSnapshot(snap), linkRefused(vol.name));
  assert.equal(existsSync(driver.pathFor(snap.name)), false, 'no snapshot file');
  const clone = volume('c2');
  await assert.rejects(driver.createClonedVolume(clone, vol), linkRefused(vol.name));
  assert.equal(existsSync(driver.pathFor(clone.name)), false, 'no clone file');
});

test('a volume from a snapshot whose file is a symlink is refused', async () => {
  const vol = volume('v3');
  await driver.createVolume(vol);
  const snap = snapshotOf('s3', vol);
  plantLink(snap.name);
  const dst = volume('d3');
  await assert.rejects(driver.createVolumeFromSnapshot(dst, snap), linkRefused(snap.name));
  assert.equal(existsSync(driver.pathFor(dst.name)), false);
});

test('export (losetup by path) of a symlinked volume file is refused before losetup runs', async () => {
  const vol = volume('v4');
  await driver.createVolume(vol);
  plantLink(vol.name);
  await assert.rejects(driver.ensureExport(vol), linkRefused(vol.name));
  await assert.rejects(driver.createExport(vol), linkRefused(vol.name));
  assert.deepEqual(executor.commands().filter((c) => c.startsWith('losetup')), [], 'losetup never ran');
});

test('delete of a volume or snapshot whose file is a symlink is refused; link and target stay', async () => {
  const vol = volume('v5');
  await driver.createVolume(vol);
  const file = plantLink(vol.name);
  await assert.rejects(driver.deleteVolume(vol), linkRefused(vol.name));
  assert.ok(lstatSync(file).isSymbolicLink(), 'the link is left for the administrator to inspect');
  const snap = snapshotOf('s5', vol);
  plantLink(snap.name);
  await assert.rejects(driver.deleteSnapshot(snap), linkRefused(snap.name));
  assert.ok(existsSync(target));
});

test('stats do not count a symlink target as a provisioned volume', async () => {
  truncateSync(target, 3 * 1024 ** 3); // sparse: 3 GiB that a followed link would add
  const before = await driver.getVolumeStats(true);
  plantLink('volume-v6');
  const after = await driver.getVolumeStats(true);
  assert.equal(after.provisioned_capacity_gb, before.provisioned_capacity_gb);
});

test('manage of a symlink in the pool is refused (INVALID_INPUT naming existing_ref.source-name)', async () => {
  const link = join(driver.config.pool_path, 'imported.img');
  symlinkSync(target, link);
  const ref = { 'source-name': 'imported.img' };
  const isRefusal = (e: unknown) => e instanceof InvalidInputError && e.field === 'existing_ref.source-name' && /symbolic link/.test(e.message);
  await assert.rejects(driver.manageExistingGetSize(volume('m7'), ref), isRefusal);
  await assert.rejects(driver.manageExisting(volume('m7'), ref), isRefusal);
  assert.ok(lstatSync(link).isSymbolicLink(), 'the link is not renamed');
  assert.equal(statSync(target).size, TARGET_TEXT.length);
});

test('copySparse refuses a symlinked source (reflink and streamed copy alike) and creates nothing', async () => {
  const link = join(dir, 'link.img');
  symlinkSync(target, link);
  for (const reflink of [true, false]) {
    const dst = join(dir, `copy-${reflink}.img`);
    await assert.rejects(copySparse(link, dst, { reflink }), (e: NodeJS.ErrnoException) => e.code === 'ELOOP');
    assert.equal(existsSync(dst), false, `no destination (reflink ${reflink})`);
  }
  const dst = join(dir, 'planted.img');
  symlinkSync(join(dir, 'elsewhere'), dst);
  const real = join(dir, 'real.img');
  writeFileSync(real, 'x');
  await assert.rejects(copySparse(real, dst, { reflink: false }), (e: NodeJS.ErrnoException) => e.code === 'EEXIST');
  assert.equal(existsSync(join(dir, 'elsewhere')), false, 'a planted destination link is not followed');
});
