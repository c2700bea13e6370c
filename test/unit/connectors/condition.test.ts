/**
 * Volume condition (issue #16) beyond iSCSI (which `test/unit/iscsi/condition.test.ts` covers
 * over the fake kernel): the multipath status parser and the kernel state words, NVMe-oF with
 * native multipath (a controller reconnecting, a portal without controller) and with
 * dm-multipath over fixture trees copied from a 6.1 kernel, and the single-device connectors
 * (present, gone, read failure).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, rmSync, mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtureCopy, fixtureContext } from './helpers.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { NvmeofConnector } from '../../../src/initiator/connectors/nvmeof.js';
import { connectorFor } from '../../../src/initiator/factory.js';
import '../../../src/initiator/connectors/index.js';
import { kernelPathState, parseMultipathStatus, worsePathState } from '../../../src/host/condition.js';
import { InvalidInputError } from '../../../src/errors.js';

const NQN = 'nqn.2026-11.lab:subsys-volumes';
const UUID1 = '0c2f8e5a-6b1d-4f3e-9a7c-2d4e6f8a1b3c';
const PORTALS = [['127.0.0.1', 4420, 'tcp'], ['127.0.0.2', 4420, 'tcp']];
const nvmeProps = { target_nqn: NQN, portals: PORTALS, vol_uuid: UUID1 };

test('dmsetup status of a multipath target: paths, A/F and fail counts, whatever the selector; other text gives none', () => {
  // Two path groups (ALUA), service-time (two values per path).
  const st = '0 2097152 multipath 2 0 0 0 2 1 A 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 F 3 0 1 \n';
  assert.deepEqual(parseMultipathStatus(st), [
    { dev: '8:16', active: true, failCount: 0 },
    { dev: '8:32', active: false, failCount: 3 },
  ]);
  // queueing on (features 1 0), a hardware handler argument, queue-length (one value per path).
  assert.deepEqual(parseMultipathStatus('0 100 multipath 2 1 0 1 alua 1 1 A 0 2 1 259:0 A 0 0 259:1 F 1 0'), [
    { dev: '259:0', active: true, failCount: 0 },
    { dev: '259:1', active: false, failCount: 1 },
  ]);
  assert.deepEqual(parseMultipathStatus('0 100 linear 8:16 0'), []);
  assert.deepEqual(parseMultipathStatus('0 100 multipath 2 0 0 0 1 1 A 0 2 2 8:16 A'), []);
  assert.deepEqual(parseMultipathStatus(''), []);
});

test('kernel state words map to path states; the worse of two wins', () => {
  assert.deepEqual(['running', 'live', 'LOGGED_IN'].map(kernelPathState), ['active', 'active', 'active']);
  assert.deepEqual(['blocked', 'created-blocked', 'quiesce'].map(kernelPathState), ['blocked', 'blocked', 'blocked']);
  assert.deepEqual(['connecting', 'resetting', 'new'].map(kernelPathState), ['connecting', 'connecting', 'connecting']);
  assert.deepEqual(['offline', 'transport-offline', 'FAILED', 'FREE', 'deleting', 'dead'].map(kernelPathState), Array(6).fill('failed'));
  assert.equal(worsePathState('active', 'blocked'), 'blocked');
  assert.equal(worsePathState('missing', 'failed'), 'missing');
});

function nvmeFixture(name: string) {
  const fx = fixtureCopy(`nvme/${name}`);
  const ex = new RecordingExecutor();
  ex.on(['dd'], {});
  const { ctx } = fixtureContext(fx.root, ex);
  return { ...fx, ex, ctx };
}

test('NVMe-oF native multipath: both controllers live is normal; one connecting is abnormal, its path named', async () => {
  const k = nvmeFixture('native-2portals');
  try {
    const c = new NvmeofConnector(k.ctx, { useMultipath: true, deviceScanAttempts: 1 });
    const info = { type: 'block' as const, path: '/dev/nvme0n1', nqn: NQN };
    let cond = await c.checkVolumeCondition(nvmeProps, info);
    assert.equal(cond.abnormal, false, cond.message);
    assert.deepEqual(cond.paths, [
      { name: 'nvme0c0n1', state: 'active', portal: '127.0.0.1:4420' },
      { name: 'nvme0c1n1', state: 'active', portal: '127.0.0.2:4420' },
    ]);
    writeFileSync(join(k.root, 'sys/class/nvme/nvme1/state'), 'connecting\n');
    cond = await c.checkVolumeCondition(nvmeProps, info);
    assert.equal(cond.abnormal, true);
    assert.equal(cond.message, 'nvme0c1n1 (127.0.0.2:4420) connecting [controller nvme1 connecting]');
    // A portal of the properties with no controller at all is missing.
    cond = await c.checkVolumeCondition({ ...nvmeProps, portals: [...PORTALS, ['127.0.0.3', 4420, 'tcp']] }, info);
    assert.ok(cond.paths.some((p) => p.portal === '127.0.0.3:4420' && p.state === 'missing'));
  } finally {
    k.cleanup();
  }
});

test('NVMe-oF without multipath: only the controller that carries the device is a path', async () => {
  const k = nvmeFixture('native-2portals');
  try {
    const c = new NvmeofConnector(k.ctx, { useMultipath: false, deviceScanAttempts: 1 });
    rmSync(join(k.root, 'sys/class/nvme/nvme1'), { recursive: true });
    const cond = await c.checkVolumeCondition(nvmeProps, { type: 'block', path: '/dev/nvme0n1' });
    assert.equal(cond.abnormal, false, cond.message);
    assert.deepEqual(cond.paths.map((p) => p.portal), ['127.0.0.1:4420']);
  } finally {
    k.cleanup();
  }
});

test('NVMe-oF with dm-multipath: the map\'s paths with the kernel\'s verdict; a failed one is named', async () => {
  const k = nvmeFixture('dm-2portals');
  try {
    writeFileSync(join(k.root, 'sys/block/nvme0n1/dev'), '259:0\n');
    writeFileSync(join(k.root, 'sys/block/nvme1n1/dev'), '259:1\n');
    let verdict = 'A 0';
    k.ex.on(['dmsetup', 'status'], () => ({ stdout: `0 131072 multipath 2 0 0 0 1 1 A 0 2 2 259:0 A 0 0 1 259:1 ${verdict} 0 1\n` }));
    const c = new NvmeofConnector(k.ctx, { useMultipath: true, deviceScanAttempts: 1 });
    const info = { type: 'block' as const, path: '/dev/dm-0', multipath_id: `uuid.${UUID1}` };
    let cond = await c.checkVolumeCondition(nvmeProps, info);
    assert.equal(cond.abnormal, false, cond.message);
    assert.deepEqual(cond.paths.map((p) => [p.name, p.state, p.portal]), [['nvme0n1', 'active', '127.0.0.1:4420'], ['nvme1n1', 'active', '127.0.0.2:4420']]);
    verdict = 'F 2';
    cond = await c.checkVolumeCondition(nvmeProps, info);
    assert.equal(cond.abnormal, true);
    assert.equal(cond.message, 'nvme1n1 (127.0.0.2:4420) failed [dm F]');
  } finally {
    k.cleanup();
  }
});

test('single-device connectors: present and readable is normal; gone or unreadable is abnormal; bad input refused', async () => {
  const root = mkdtempSync(join(tmpdir(), 'brick-cond-'));
  try {
    mkdirSync(join(root, 'dev'));
    writeFileSync(join(root, 'dev/loop7'), Buffer.alloc(4096));
    const ex = new RecordingExecutor();
    let readable = true;
    ex.on(['dd'], () => (readable ? {} : { exitCode: 1, stderr: "dd: error reading '/dev/loop7': Input/output error\n" }));
    const { ctx } = fixtureContext(root, ex);
    const c = connectorFor('LOCAL', { ctx });
    const props = { device_path: '/dev/loop7' };
    const info = { type: 'block' as const, path: '/dev/loop7' };
    assert.deepEqual(await c.checkVolumeCondition(props, info), { abnormal: false, message: 'ok', paths: [] });
    readable = false;
    assert.deepEqual(await c.checkVolumeCondition(props, info), { abnormal: true, message: 'read test of /dev/loop7 failed', paths: [] });
    rmSync(join(root, 'dev/loop7'));
    assert.deepEqual(await c.checkVolumeCondition(props, info), { abnormal: true, message: 'device /dev/loop7 is gone', paths: [] });
    await assert.rejects(c.checkVolumeCondition({}, info), InvalidInputError);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
