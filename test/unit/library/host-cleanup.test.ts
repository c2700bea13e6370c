/**
 * The library side of `brick host cleanup`: which of the store's connection records claim what
 * on this host, and the file backends' pools and exports.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectionTargets, gatherClaims } from '../../../src/library/host-cleanup.js';
import { setup, Backend } from '../../../src/library/index.js';
import { MemoryStore } from '../../../src/persistence/memory.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import type { ConnectionRecord } from '../../../src/persistence/store.js';
import '../../../src/drivers/index.js';

function record(id: string, over: Partial<ConnectionRecord>): ConnectionRecord {
  return {
    id,
    version: 0,
    created_at: '2026-12-02T00:00:00Z',
    updated_at: '2026-12-02T00:00:00Z',
    backend: 'b',
    volume_id: id,
    status: 'attached',
    protocol: 'ISCSI',
    connector_info: { host: 'h1' },
    conn_info: { driver_volume_type: 'iscsi', data: { target_iqn: 'iqn.2026-12.lab:t', target_portal: '10.0.0.1', target_lun: 1 } },
    device: { type: 'block', path: '/dev/dm-0', scsi_wwn: '3600a', multipath_id: '3600a' },
    attached_host: 'h1',
    attach_mode: 'rw',
    ...over,
  };
}

test('targets are named as the journal names them, for iSCSI (every portal), NVMe-oF and NFS', () => {
  assert.deepEqual(connectionTargets('ISCSI', { target_iqns: ['iqn.2026-12.lab:t', 'iqn.2026-12.lab:t'], target_portals: ['10.0.0.1', '[fd00::1]:3261'], target_luns: [1, 1], target_iqn: 'iqn.2026-12.lab:t', target_portal: '10.0.0.1', target_lun: 1 }), [
    'iqn.2026-12.lab:t,10.0.0.1:3260',
    'iqn.2026-12.lab:t,[fd00::1]:3261',
  ]);
  assert.deepEqual(connectionTargets('NVMEOF', { target_nqn: 'nqn.2026-12.lab:sub', portals: [['10.0.0.1', 4420, 'tcp']], vol_uuid: '4f6c1c2e-7d0e-4a71-9a8e-2c3d4e5f6a7b' }), ['nqn.2026-12.lab:sub,tcp,10.0.0.1,4420']);
  assert.deepEqual(connectionTargets('NFS', { export: 'srv:/exp' }), ['srv:/exp']);
  assert.deepEqual(connectionTargets('ISCSI', { nonsense: true }), [], 'properties that do not parse claim nothing');
});

test('claims: attached connections of this host only; the file backend pool and the files of every connected volume', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brick-claims-'));
  try {
    const store = new MemoryStore();
    const ctx = setup({ persistence: store, stateDir: dir, hostName: 'h1', executor: new RecordingExecutor() });
    const file = await Backend.create({ volume_backend_name: 'files', volume_driver: 'file', pool_path: join(dir, 'pool') }, { context: ctx });
    await store.setConnection(record('c1', {}));
    await store.setConnection(record('c2', { attached_host: 'h2', device: { type: 'block', path: '/dev/sdz', scsi_wwn: '3600z' } }));
    await store.setConnection(record('c3', { status: 'attaching', device: null }));
    await store.setConnection(record('c4', { attached_host: null, connector_info: { host: 'h1' }, protocol: 'LOCAL', conn_info: { driver_volume_type: 'local', data: { device_path: '/dev/loop3' } }, device: { type: 'block', path: '/dev/loop3' }, backend: 'files', volume_id: 'v4' }));
    const claims = await gatherClaims(ctx, [file]);
    assert.deepEqual(claims.devicePaths, ['/dev/dm-0', '/dev/loop3']);
    assert.deepEqual(claims.wwids, ['3600a', '3600a']);
    assert.deepEqual(claims.targets, ['iqn.2026-12.lab:t,10.0.0.1:3260']);
    assert.deepEqual(claims.poolPaths, [join(dir, 'pool')]);
    assert.deepEqual(claims.exportedFiles, [join(dir, 'pool', 'volume-v4.img')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
