import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, fixtureContext } from './helpers.js';
import { ProcessExecutor } from '../../../src/exec/executor.js';
import { HuaweiSdsHypervisorConnector, parseSdsCliOutput } from '../../../src/initiator/connectors/huawei_sdshypervisor.js';
import { connectorFor } from '../../../src/initiator/factory.js';
import '../../../src/initiator/connectors/index.js';
import { BackendError, InvalidConfigError, InvalidInputError, VolumeDeviceNotFoundError, VolumePathNotRemovedError } from '../../../src/errors.js';

const CLI = join(FIXTURES, 'huawei', 'sds_cli.mjs');

/** A host whose executor is the real ProcessExecutor, running the fake SDS CLI with its state file. */
function sdsHost(initial: { volumes?: string[]; attached?: Record<string, string>; failQuery?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'brick-sds-'));
  const root = join(dir, 'root');
  const statePath = join(dir, 'state.json');
  writeFileSync(statePath, JSON.stringify({ root, volumes: initial.volumes ?? ['volume-1', 'volume-2'], attached: initial.attached ?? {}, next: 0, failQuery: initial.failQuery ?? false, log: [] }));
  const ex = new ProcessExecutor({ env: { ...process.env, FAKE_SDS_STATE: statePath } });
  const { ctx } = fixtureContext(root, ex);
  const state = () => JSON.parse(readFileSync(statePath, 'utf8')) as { attached: Record<string, string>; log: string[] };
  return { ctx, root, state, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('CLI output parsing keeps ret_code, ret_desc, dev_addr', () => {
  assert.deepEqual(parseSdsCliOutput('ret_code=0\nret_desc=success\ndev_addr=/dev/sdb\nother=x\nnoise\n'), { ret_code: 0, ret_desc: 'success', dev_addr: '/dev/sdb' });
  assert.deepEqual(parseSdsCliOutput(''), {});
});

test('attach, query, detach through the CLI program (real process, state kept by the fake)', async () => {
  const h = sdsHost();
  try {
    const c = connectorFor('HUAWEISDSHYPERVISOR', { ctx: h.ctx, cliPath: CLI });
    const info = await c.connectVolume({ volume_id: 'volume-1' });
    assert.deepEqual(info, { type: 'block', path: '/dev/sdb' });
    assert.ok(existsSync(join(h.root, 'dev/sdb')));
    assert.deepEqual(await c.getVolumePaths({ volume_id: 'volume-1' }), ['/dev/sdb']);
    // attaching again: the CLI answers 50151401 (already attached), accepted
    assert.equal((await c.connectVolume({ volume_id: 'volume-1' })).path, '/dev/sdb');
    await c.disconnectVolume({ volume_id: 'volume-1' }, info);
    assert.deepEqual(h.state().attached, {});
    // detaching again: 50155007 (not mounted on this node) counts as detached
    await c.disconnectVolume({ volume_id: 'volume-1' }, info);
    assert.deepEqual(h.state().log, ['attach volume-1', 'querydev volume-1', 'querydev volume-1', 'attach volume-1', 'querydev volume-1', 'detach volume-1', 'detach volume-1']);
    assert.deepEqual(await c.getVolumePaths({ volume_id: 'volume-1' }), []);
  } finally {
    h.cleanup();
  }
});

test('an attach error code raises BackendError', async () => {
  const h = sdsHost();
  try {
    const c = new HuaweiSdsHypervisorConnector(h.ctx, { cliPath: CLI });
    await assert.rejects(c.connectVolume({ volume_id: 'volume-9' }), (e: unknown) => e instanceof BackendError && /50150005/.test(e.message));
  } finally {
    h.cleanup();
  }
});

test('a device that cannot be queried after a fresh attach: the attach is undone', async () => {
  const h = sdsHost({ failQuery: true });
  try {
    const c = new HuaweiSdsHypervisorConnector(h.ctx, { cliPath: CLI });
    await assert.rejects(c.connectVolume({ volume_id: 'volume-2' }), VolumeDeviceNotFoundError);
    assert.deepEqual(h.state().log, ['attach volume-2', 'querydev volume-2', 'detach volume-2']);
    assert.deepEqual(h.state().attached, {});
  } finally {
    h.cleanup();
  }
});

test('bad volume_id is refused before the CLI runs; a missing CLI is a configuration error', async () => {
  const h = sdsHost();
  try {
    const c = new HuaweiSdsHypervisorConnector(h.ctx, { cliPath: CLI });
    for (const v of [undefined, '', '-c detach', 'a b', 42]) {
      await assert.rejects(c.connectVolume({ volume_id: v }), (e: unknown) => e instanceof InvalidInputError && e.field === 'volume_id');
    }
    assert.deepEqual(h.state().log, []);
    const missing = new HuaweiSdsHypervisorConnector(h.ctx, { cliPath: '/nonexistent/sds_cli' });
    await assert.rejects(missing.connectVolume({ volume_id: 'volume-1' }), InvalidConfigError);
  } finally {
    h.cleanup();
  }
});

test('a detach error code raises VolumePathNotRemovedError unless ignoreErrors', async () => {
  const h = sdsHost();
  try {
    const c = new HuaweiSdsHypervisorConnector(h.ctx, { cliPath: CLI });
    // the fake answers "invalid parameter" (50150001) to a method it does not know; make detach unknown by a bad CLI wrapper
    const broken = new HuaweiSdsHypervisorConnector(h.ctx, { cliPath: join(FIXTURES, 'huawei', 'sds_cli_broken.mjs') });
    await assert.rejects(broken.disconnectVolume({ volume_id: 'volume-1' }, null), VolumePathNotRemovedError);
    await broken.disconnectVolume({ volume_id: 'volume-1' }, null, { ignoreErrors: true });
    await c.disconnectVolume({ volume_id: 'volume-1' }, null);
  } finally {
    h.cleanup();
  }
});
