/**
 * The public surface (issue #14, "a curated public API"): the root entry carries what a user of
 * cinderlib and os-brick reaches for, at most 120 names; internals sit behind the subpath
 * exports, each of which loads through the package's own name as a user would import it; and
 * the package ships what those entries need and nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; exports: Record<string, string | { default: string; types: string }>; files: string[] };

test('the root entry is the curated API: the object API, stores, connectors, the driver contract and the errors, in at most 120 names', async () => {
  const brick = (await import('brick')) as Record<string, unknown>;
  const names = Object.keys(brick);
  assert.ok(names.length <= 120, `root export has ${names.length} names`);
  for (const name of ['setup', 'Backend', 'Volume', 'Snapshot', 'Connection', 'openStore', 'SqliteStore', 'PostgresStore', 'MemoryStore', 'dump', 'load', 'connectorFor', 'getConnectorProperties', 'registerDriver', 'BrickError', 'InvalidInputError', 'exitCodeFor']) {
    assert.ok(names.includes(name), `root export lacks ${name}`);
  }
  for (const internal of ['RecordingExecutor', 'scsi', 'multipath', 'iscsiadm', 'LioTarget', 'LvmDriver', 'createFixtureTree', 'startEseriesSimulator']) {
    assert.ok(!names.includes(internal), `root export still carries the internal ${internal}`);
  }
});

test('every subpath export loads through the package name and carries its part', async () => {
  const expected: Record<string, string[]> = {
    'brick/host': ['createHostContext', 'readAttr', 'scsi', 'multipath', 'iscsiadm', 'teardown', 'ErrorChain', 'attachLoop', 'LockManager', 'copyVolumeData'],
    'brick/connectors': ['IscsiConnector', 'FibreChannelConnector', 'NvmeofConnector', 'LocalConnector', 'validateIscsiProperties', 'registerConnector'],
    'brick/drivers': ['FileDriver', 'LvmDriver', 'NetAppEseriesIscsiDriver', 'FlashSystemIscsiDriver', 'LVM_OPTIONS', 'renderOptionsTable', 'createTargetHelper', 'LioTarget'],
    'brick/testing': ['RecordingExecutor', 'createFixtureTree', 'fixtureContext', 'createCapturingLogger', 'startEseriesSimulator', 'startFlashSystemSimulator'],
  };
  for (const [entry, names] of Object.entries(expected)) {
    const mod = (await import(entry)) as Record<string, unknown>;
    for (const name of names) assert.ok(name in mod, `${entry} lacks ${name}`);
  }
  assert.deepEqual(Object.keys(pkg.exports).filter((k) => k !== './package.json').sort(), ['.', './connectors', './drivers', './host', './testing']);
});

test('the package ships the entries\' build output and nothing else', () => {
  assert.equal(pkg.name, 'brick');
  const shipped = pkg.files.filter((f) => !f.startsWith('!'));
  assert.deepEqual(shipped.sort(), ['dist/sims', 'dist/src', 'proto']);
  for (const target of Object.values(pkg.exports)) {
    const paths = typeof target === 'string' ? [target] : [target.default, target.types];
    for (const p of paths) {
      if (p === './package.json') continue;
      assert.ok(shipped.some((dir) => p.startsWith(`./${dir}/`)), `${p} is exported but not shipped`);
    }
  }
});
