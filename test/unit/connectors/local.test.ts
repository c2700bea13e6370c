/**
 * Issue #13, defect 7: the LOCAL connector attaches a block device, or a regular file only when
 * the caller allows it (`allowRegularFile`); a directory, a character device, a symlink to
 * either, or a FIFO is refused with InvalidInputError naming `device_path` before anything runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createFixtureTree, type FixtureTree } from '../../../src/testing/fixture-tree.js';
import { fixtureContext } from './helpers.js';
import { LocalConnector, localDeviceType } from '../../../src/initiator/connectors/local.js';
import { connectorFor } from '../../../src/initiator/factory.js';
import '../../../src/initiator/connectors/index.js';
import { InvalidInputError, VolumeDeviceNotFoundError } from '../../../src/errors.js';
import type { RecordingExecutor } from '../../../src/exec/recording.js';

/**
 * A host tree with a directory, a regular file, relative links to both and to nothing, and a
 * link to the real `/dev/null`: an absolute link target is looked up on the real filesystem, not
 * under the fixture root, which is how this test gets a character device without `mknod` (every
 * Linux has `/dev/null`).
 */
function tree(): FixtureTree {
  return createFixtureTree({
    '/srv/volumes/vol.img': 'not a block device\n',
    '/srv/volumes/dir': { dir: true },
    '/dev/brick/file-link': { link: '../../srv/volumes/vol.img' },
    '/dev/brick/dir-link': { link: '../../srv/volumes/dir' },
    '/dev/brick/null-link': { link: '/dev/null' },
    '/dev/brick/dangling': { link: '../../srv/volumes/gone' },
  });
}

function isDevicePathError(e: unknown): boolean {
  return e instanceof InvalidInputError && e.field === 'device_path';
}

test('a directory, a character device and links to them are refused naming device_path, before any program runs', async (t) => {
  const fx = tree();
  t.after(() => fx.cleanup());
  const { ctx, ex } = fixtureContext<RecordingExecutor>(fx.root);
  for (const allowRegularFile of [false, true]) {
    const c = new LocalConnector(ctx, { allowRegularFile });
    for (const p of ['/srv/volumes/dir', '/dev/brick/dir-link', '/dev/brick/null-link']) {
      await assert.rejects(c.connectVolume({ device_path: p }), isDevicePathError, `connect ${p}`);
      await assert.rejects(c.extendVolume({ device_path: p }), isDevicePathError, `extend ${p}`);
    }
  }
  assert.deepEqual(ex.calls, []);
});

test('a regular file is refused unless the connector allows regular files', async (t) => {
  const fx = tree();
  t.after(() => fx.cleanup());
  const { ctx, ex } = fixtureContext<RecordingExecutor>(fx.root);
  const strict = new LocalConnector(ctx);
  for (const p of ['/srv/volumes/vol.img', '/dev/brick/file-link']) {
    await assert.rejects(strict.connectVolume({ device_path: p }), (e: unknown) => isDevicePathError(e) && /regular file/.test((e as Error).message));
  }
  const lenient = new LocalConnector(ctx, { allowRegularFile: true });
  assert.deepEqual(await lenient.connectVolume({ device_path: '/srv/volumes/vol.img' }), { type: 'file', path: '/srv/volumes/vol.img' });
  assert.deepEqual(await lenient.connectVolume({ device_path: '/dev/brick/file-link' }), { type: 'file', path: '/dev/brick/file-link' });
  assert.equal(await lenient.extendVolume({ device_path: '/srv/volumes/vol.img' }), 'not a block device\n'.length);
  assert.deepEqual(ex.calls, []);
});

test('a missing path or a dangling link is VolumeDeviceNotFoundError naming device_path', async (t) => {
  const fx = tree();
  t.after(() => fx.cleanup());
  const { ctx } = fixtureContext(fx.root);
  const c = new LocalConnector(ctx, { allowRegularFile: true });
  for (const p of ['/srv/volumes/gone', '/dev/brick/dangling']) {
    await assert.rejects(c.connectVolume({ device_path: p }), (e: unknown) => e instanceof VolumeDeviceNotFoundError && e.field === 'device_path');
  }
});

test('connectorFor passes allowRegularFile through and refuses a non-boolean value', async (t) => {
  const fx = tree();
  t.after(() => fx.cleanup());
  const seams = { hostRoot: fx.root };
  await assert.rejects(connectorFor('LOCAL', { ctx: seams }).connectVolume({ device_path: '/srv/volumes/vol.img' }), isDevicePathError);
  assert.deepEqual(await connectorFor('LOCAL', { ctx: seams, allowRegularFile: true }).connectVolume({ device_path: '/srv/volumes/vol.img' }), { type: 'file', path: '/srv/volumes/vol.img' });
  assert.throws(() => connectorFor('LOCAL', { allowRegularFile: 'yes' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'allowRegularFile');
});

test('the type decision: block always, file only when allowed, anything else refused', () => {
  assert.equal(localDeviceType('/dev/sdb', { kind: 'block', size: 0 }, false), 'block');
  assert.equal(localDeviceType('/dev/sdb', { kind: 'block', size: 0 }, true), 'block');
  assert.equal(localDeviceType('/srv/a.img', { kind: 'file', size: 5 }, true), 'file');
  assert.throws(() => localDeviceType('/srv/a.img', { kind: 'file', size: 5 }, false), isDevicePathError);
  assert.throws(() => localDeviceType('/srv', { kind: 'directory', size: 0 }, true), isDevicePathError);
  assert.throws(() => localDeviceType('/dev/null', { kind: 'other', size: 0 }, true), isDevicePathError);
  assert.throws(() => localDeviceType('/gone', undefined, true), (e: unknown) => e instanceof VolumeDeviceNotFoundError && e.field === 'device_path');
});

/** A block device node of this machine, when it has one (containers may not). */
function realBlockDevice(): string | undefined {
  const names = existsSync('/sys/block') ? readdirSync('/sys/block') : [];
  return names.map((n) => `/dev/${n}`).find((p) => {
    try {
      return statSync(p).isBlockDevice();
    } catch {
      return false;
    }
  });
}

test('a real block device, and a link to one, is attached as type block', async (t) => {
  const dev = realBlockDevice();
  if (!dev) return t.skip('this machine has no block device node');
  const fx = createFixtureTree({ '/dev/disk/by-id/brick-test': { link: dev } });
  t.after(() => fx.cleanup());
  const { ctx, ex } = fixtureContext<RecordingExecutor>(fx.root);
  const c = new LocalConnector(ctx);
  assert.deepEqual(await c.connectVolume({ device_path: '/dev/disk/by-id/brick-test' }), { type: 'block', path: '/dev/disk/by-id/brick-test' });
  assert.deepEqual(ex.calls, []);
});
