import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectorFor, knownProtocols, registerConnector } from '../../../src/initiator/factory.js';
import '../../../src/initiator/connectors/index.js';
import { ProtocolNotSupportedError, InvalidInputError, VolumeDeviceNotFoundError } from '../../../src/errors.js';
import { RecordingExecutor } from '../../../src/exec/recording.js';

test('protocols are looked up case-insensitively by os-brick name; unknown names name the field', () => {
  assert.equal(connectorFor('local').protocol, 'LOCAL');
  assert.equal(connectorFor('LOCAL').protocol, 'LOCAL');
  assert.ok(knownProtocols().includes('LOCAL'));
  assert.throws(() => connectorFor('CARRIER_PIGEON'), (e: unknown) => e instanceof ProtocolNotSupportedError && e.field === 'protocol' && /CARRIER_PIGEON/.test(e.message));
  assert.throws(() => connectorFor('LOCAL', { deviceScanAttempts: 0 }), (e: unknown) => e instanceof ProtocolNotSupportedError && e.field === 'deviceScanAttempts');
});

test('options reach the connector with defaults (deviceScanAttempts 3, no multipath) and aliases resolve', () => {
  let seen: Record<string, unknown> = {};
  registerConnector('TESTPROTO', (_ctx, o) => {
    seen = { ...o };
    return connectorFor('LOCAL');
  }, ['TESTALIAS']);
  connectorFor('testalias', { rootHelper: ['sudo'] });
  assert.equal(seen.deviceScanAttempts, 3);
  assert.equal(seen.useMultipath, false);
  assert.equal(seen.protocol, 'TESTPROTO');
});

test('LOCAL connector: validates device_path, checks existence, reads no device it was not given', async () => {
  const ex = new RecordingExecutor();
  const c = connectorFor('LOCAL', { ctx: { executor: ex } });
  await assert.rejects(c.connectVolume({ device_path: 'relative/path' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'device_path');
  await assert.rejects(c.connectVolume({ device_path: 42 }), (e: unknown) => e instanceof InvalidInputError && e.field === 'device_path');
  await assert.rejects(c.connectVolume({ device_path: '/nonexistent/brick-dev' }), VolumeDeviceNotFoundError);
  await assert.rejects(c.connectVolume({ device_path: '/dev/null' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'device_path'); // a character device is no volume (#13, defect 7)
  assert.deepEqual(await c.getVolumePaths({ device_path: '/dev/null' }), ['/dev/null']);
  await c.disconnectVolume({ device_path: '/dev/null' }, null);
  assert.equal(c.getSearchPath(), null);
  assert.deepEqual(ex.calls, [], 'LOCAL runs no program to connect or disconnect');
});
