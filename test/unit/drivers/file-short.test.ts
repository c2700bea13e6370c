/**
 * The file driver never exports a volume file smaller than the volume: a create killed between
 * `open(O_CREAT)` and `ftruncate` (or a clone killed mid-copy) leaves a short file under a volume
 * record in `error`, and a loop device over it would be smaller than the size the record states
 * (writes past its end fail with ENOSPC; torture soak, seed 42). No root needed: the executor
 * records calls and answers none.
 */
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { truncateSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileDriver } from '../../../src/drivers/file/driver.js';
import type { DriverVolume } from '../../../src/drivers/driver.js';
import { createFixtureTree, fixtureContext } from '../../../src/testing/fixture-tree.js';
import type { RecordingExecutor } from '../../../src/exec/recording.js';
import { InvalidStateError } from '../../../src/errors.js';

let dir: string;
let driver: FileDriver;
let executor: RecordingExecutor;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'brick-short-'));
  const made = fixtureContext(createFixtureTree({}).root);
  executor = made.executor;
  driver = new FileDriver({ pool_path: join(dir, 'pool'), use_reflink: false }, { ...made.ctx, backendName: 'short', stateDir: dir });
  await driver.doSetup();
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

for (const [what, bytes] of [
  ['an empty file (create killed before ftruncate)', 0],
  ['a partial file (clone killed mid-copy)', 64 * 1024 * 1024],
] as const) {
  test(`export of a volume whose file is ${what} is refused before losetup runs`, async () => {
    const vol: DriverVolume = { id: 'v1', name: 'volume-v1', size: 2 };
    await driver.createVolume(vol);
    truncateSync(driver.pathFor(vol.name), bytes);
    for (const call of [() => driver.createExport(vol), () => driver.ensureExport(vol)]) {
      await assert.rejects(call(), (e: unknown) => {
        assert.ok(e instanceof InvalidStateError, `expected InvalidStateError, got ${String(e)}`);
        assert.match(e.message, /volume-v1.*smaller than the volume's 2 GiB/);
        assert.equal(e.details?.['file_bytes'], bytes);
        return true;
      });
    }
    assert.deepEqual(executor.commands().filter((c) => c.startsWith('losetup')), [], 'losetup never ran');
  });
}

test('export of a volume whose file is larger than the record (an extend killed before its save) goes ahead', async () => {
  const vol: DriverVolume = { id: 'v2', name: 'volume-v2', size: 1 };
  await driver.createVolume(vol);
  truncateSync(driver.pathFor(vol.name), 2 * 1024 ** 3);
  await driver.ensureExport(vol).catch(() => undefined); // the recording executor answers nothing
  assert.ok(executor.commands().some((c) => c.startsWith('losetup')), 'losetup ran');
});
