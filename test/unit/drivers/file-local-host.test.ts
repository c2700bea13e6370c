/**
 * The file driver's exports are loop devices of the storage host, handed out as LOCAL paths: a
 * connector of another host is refused before anything is exported, since `/dev/loopN` there is
 * some other device (or none). The wrong device is the one thing Brick must never hand back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileDriver } from '../../../src/drivers/file/driver.js';
import { createFixtureTree, fixtureContext } from '../../../src/testing/fixture-tree.js';
import { InvalidInputError } from '../../../src/errors.js';
import type { ConnectorProperties } from '../../../src/initiator/properties.js';

const connector = (host?: string): ConnectorProperties => ({ platform: 'x86_64', os_type: 'linux', ip: '192.0.2.1', multipath: false, ...(host === undefined ? {} : { host }) }) as ConnectorProperties;

test('a connector of another host is refused naming connector.host; this host, or no host, is accepted', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-localhost-'));
  try {
    const made = fixtureContext(createFixtureTree({}).root);
    const driver = new FileDriver({ pool_path: join(dir, 'pool'), use_reflink: false }, { ...made.ctx, backendName: 'f', stateDir: dir, hostName: 'storage-1' });
    assert.throws(() => driver.validateConnector(connector('node-2')), (e: unknown) => e instanceof InvalidInputError && e.field === 'connector.host' && /storage-1.*node-2/.test(e.message));
    assert.doesNotThrow(() => driver.validateConnector(connector('storage-1')));
    assert.doesNotThrow(() => driver.validateConnector(connector()));
    await assert.rejects(driver.initializeConnection({ id: 'v1', name: 'volume-v1', size: 1 }, connector('node-2')), (e: unknown) => e instanceof InvalidInputError && e.field === 'connector.host');
    assert.deepEqual(made.executor.calls, [], 'nothing ran');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the machine is judged by its initiator, NQN and host id when both sides have them, whatever the host names', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'brick-localhost-'));
  try {
    const tree = createFixtureTree({ '/etc/iscsi/initiatorname.iscsi': 'InitiatorName=iqn.1993-08.org.debian:01:storage1\n', '/etc/nvme/hostid': '11111111-2222-3333-4444-555555555555\n' });
    const made = fixtureContext(tree.root);
    const driver = new FileDriver({ pool_path: join(dir, 'pool'), use_reflink: false }, { ...made.ctx, backendName: 'f', stateDir: dir, hostName: 'controller' });
    await driver.doSetup();
    const same = { ...connector('consumer'), initiator: 'iqn.1993-08.org.debian:01:storage1', nvme_hostid: '11111111-2222-3333-4444-555555555555' } as ConnectorProperties;
    assert.doesNotThrow(() => driver.validateConnector(same), 'another logical host name on this machine');
    const other = { ...connector('controller'), initiator: 'iqn.1993-08.org.debian:01:node2' } as ConnectorProperties;
    assert.throws(() => driver.validateConnector(other), (e: unknown) => e instanceof InvalidInputError && e.field === 'connector.host');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
