import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getConnectorProperties, parseInitiatorName } from '../../../src/initiator/properties.js';
import { InvalidInputError, InvalidStateError } from '../../../src/errors.js';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RecordingExecutor } from '../../../src/exec/recording.js';
import { createHostContext } from '../../../src/host/context.js';
import { LockManager } from '../../../src/host/lock.js';

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
  assert.equal(p.multipath, true, 'without a host context there is no multipathd check: what was asked');
  assert.equal('enforce_multipath' in p, false, 'os-brick 6.1 does not report enforce_multipath');
  assert.equal(p.do_local_attach, false);
  assert.equal(p.os_type, 'linux', "Python 3's sys.platform");
  assert.ok(typeof p.platform === 'string' && p.platform.length > 0);
});

test('a host with none of them reports only the base keys', async () => {
  const empty = await mkdtemp(join(tmpdir(), 'brick-props-'));
  try {
    const p = await getConnectorProperties({ hostRoot: empty });
    assert.deepEqual(Object.keys(p).sort(), ['do_local_attach', 'host', 'ip', 'multipath', 'os_type', 'platform']);
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

/** A copy of the fixture with a root mount, a DMI UUID, native NVMe multipath, and (optionally) multipathd running. */
async function richHost(multipathd: boolean): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'brick-props-'));
  cpSync(fixture, root, { recursive: true });
  mkdirSync(join(root, 'proc'), { recursive: true });
  writeFileSync(join(root, 'proc', 'mounts'), 'sysfs /sys sysfs rw 0 0\n/dev/vda1 / ext4 rw,relatime 0 0\n');
  mkdirSync(join(root, 'sys/module/nvme_core/parameters'), { recursive: true });
  writeFileSync(join(root, 'sys/module/nvme_core/parameters/multipath'), 'Y\n');
  if (multipathd) {
    mkdirSync(join(root, 'run'), { recursive: true });
    mkdirSync(join(root, 'proc', '812'), { recursive: true });
    writeFileSync(join(root, 'run', 'multipathd.pid'), '812\n');
    writeFileSync(join(root, 'proc', '812', 'comm'), 'multipathd\n');
  }
  return root;
}

function hostContext(root: string, ex: RecordingExecutor) {
  return createHostContext({ executor: ex, hostRoot: root, locks: new LockManager(join(root, 'locks')) });
}

test("with a host context: os-brick 6.1's NVMe-oF and LightOS keys, multipath as multipathd allows", async () => {
  const root = await richHost(true);
  const server = createServer((req, res) => res.writeHead(req.url === '/metrics' ? 200 : 404).end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const ex = new RecordingExecutor();
    ex.on(['blkid', '/dev/vda1', '-s', 'UUID', '-o', 'value'], { stdout: '0b7f8d3e-1c2a-4a5b-9c8d-7e6f5a4b3c2d\n' });
    ex.on(['dmidecode', '-s', 'system-uuid'], { stdout: 'Not Settable\n' });
    const port = (server.address() as AddressInfo).port;
    const p = await getConnectorProperties({ hostRoot: root, ctx: hostContext(root, ex), multipath: true, dscPort: port });
    assert.equal(p.multipath, true);
    assert.equal(p.uuid, '0b7f8d3e-1c2a-4a5b-9c8d-7e6f5a4b3c2d');
    assert.equal(p['system uuid'], 'Not Settable', 'no product_uuid file: dmidecode says what the VM has');
    assert.equal(p.nvme_native_multipath, true);
    assert.equal(p.found_dsc, 'found');
    assert.equal(p.nqn, 'nqn.2014-08.org.nvmexpress:uuid:4c4c4544-0051-3010-8033-b4c04f4d4e32');
  } finally {
    server.close();
    await rm(root, { recursive: true });
  }
});

test('with a host context and no multipathd: multipath false, or an error when enforced; nothing found is left out', async () => {
  const root = await richHost(false);
  try {
    const ex = new RecordingExecutor();
    const ctx = hostContext(root, ex);
    const p = await getConnectorProperties({ hostRoot: root, ctx, multipath: true, dscPort: 1 });
    assert.equal(p.multipath, false, 'os-brick reports multipath only when multipathd runs');
    assert.equal('uuid' in p, false, 'blkid failed: no uuid key');
    assert.equal('system uuid' in p, false);
    assert.equal(p.found_dsc, '', "LightOS's discovery client is not there");
    await assert.rejects(getConnectorProperties({ hostRoot: root, ctx, multipath: true, enforceMultipath: true }), (e: unknown) => e instanceof InvalidStateError && e.field === 'enforceMultipath');
  } finally {
    await rm(root, { recursive: true });
  }
});
