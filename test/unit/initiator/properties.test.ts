import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getConnectorProperties, parseInitiatorName } from '../../../src/initiator/properties.js';
import { InvalidInputError } from '../../../src/errors.js';

const fixture = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'test', 'fixtures', 'host-props');

test('reads initiator, NVMe host NQN/id and online FC ports under the host root, with os-brick keys', async () => {
  const p = await getConnectorProperties({ hostRoot: fixture, multipath: true, enforceMultipath: false, host: 'node-1', myIp: '192.0.2.10' });
  assert.equal(p.initiator, 'iqn.1993-08.org.debian:01:5e4b9c2d1a7f');
  assert.equal(p.nqn, 'nqn.2014-08.org.nvmexpress:uuid:4c4c4544-0051-3010-8033-b4c04f4d4e32');
  assert.equal(p.nvme_hostid, '4c4c4544-0051-3010-8033-b4c04f4d4e32');
  assert.deepEqual(p.wwpns, ['21000024ff7b2a10', '10000090fa5c8e12'], 'only Online ports, 0x stripped, lower case');
  assert.deepEqual(p.wwnns, ['20000024ff7b2a10', '20000090fa5c8e12']);
  assert.equal(p.host, 'node-1');
  assert.equal(p.ip, '192.0.2.10');
  assert.equal(p.multipath, true);
  assert.equal(p.enforce_multipath, false);
  assert.equal(p.os_type, 'linux2');
  assert.ok(typeof p.platform === 'string' && p.platform.length > 0);
});

test('a host with none of them reports only the base keys', async () => {
  const empty = await mkdtemp(join(tmpdir(), 'brick-props-'));
  try {
    const p = await getConnectorProperties({ hostRoot: empty });
    assert.deepEqual(Object.keys(p).sort(), ['enforce_multipath', 'host', 'ip', 'multipath', 'os_type', 'platform']);
    assert.equal(p.multipath, false);
  } finally {
    await rm(empty, { recursive: true });
  }
});

test('parseInitiatorName ignores comments and blank lines', () => {
  assert.equal(parseInitiatorName('# x\n\nInitiatorName=iqn.a:b\n'), 'iqn.a:b');
  assert.equal(parseInitiatorName('#InitiatorName=iqn.commented\n'), undefined);
});

test('a myIp that is not an address is refused naming the field', async () => {
  await assert.rejects(getConnectorProperties({ myIp: 'not an ip' }), (e: unknown) => e instanceof InvalidInputError && e.field === 'myIp');
});
