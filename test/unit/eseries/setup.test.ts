import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startEseriesSimulator } from '../../../sims/eseries/simulator.js';
import { makeDriver } from './helpers.js';
import { AuthenticationError, BackendError, BackendUnreachableError, InvalidConfigError, InvalidStateError } from '../../../src/errors.js';
import { MULTI_ATTACH_HOST_GROUP_NAME } from '../../../src/drivers/netapp-eseries/utils.js';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('eseries setup', () => {
  it('registers the array with the proxy and checks host type, password and pools', async () => {
    const sim = await startEseriesSimulator({ arrayPassword: 'array-secret-1' });
    const { driver, logs } = makeDriver(sim, { netapp_sa_password: 'array-secret-1' });
    try {
      await driver.doSetup();
      assert.equal(driver.isEmbedded, false);
      assert.ok(sim.state.system, 'the array was registered');
      assert.equal(driver.systemId, sim.state.system!.id);
      assert.deepEqual(sim.state.system!.controllerAddresses, ['10.113.1.10', '10.113.1.11']);
      const reg = sim.state.requests.find((r) => r.method === 'POST' && r.path === '/devmgr/v2/storage-systems');
      assert.deepEqual(reg?.body, { controllerAddresses: ['10.113.1.10', '10.113.1.11'], wwn: null, password: 'array-secret-1' });
      await driver.checkForSetupError();
      assert.ok(sim.state.requests.some((r) => r.method === 'POST' && (r.body as Record<string, unknown>)?.storedPassword === 'array-secret-1'));
      // no secret in any log line
      assert.doesNotMatch(logs.text(), /array-secret-1/);
      assert.match(logs.text(), /use_multipath_for_image_xfer|E-Series storage system ready/);
      // re-registering returns the same system
      const { driver: again } = makeDriver(sim, { netapp_sa_password: 'array-secret-1' });
      await again.doSetup();
      assert.equal(again.systemId, driver.systemId);
      await again.close();
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('uses the listed system in embedded mode (controller address is the server)', async () => {
    const sim = await startEseriesSimulator({ mode: 'embedded', controllerAddresses: ['127.0.0.1', '127.0.0.2'] });
    const { driver } = makeDriver(sim, { netapp_controller_ips: '127.0.0.1,127.0.0.2' });
    try {
      await driver.doSetup();
      assert.equal(driver.isEmbedded, true);
      assert.equal(driver.systemId, '1');
      assert.ok(!sim.state.requests.some((r) => r.method === 'POST' && r.path.endsWith('/storage-systems')));
      await driver.checkForSetupError();
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('fails doSetup with AuthenticationError for a wrong Web Services password, without the password in the message', async () => {
    const sim = await startEseriesSimulator({ password: 'right-one' });
    const { driver, logs } = makeDriver(sim, { netapp_password: 'wrong-pass-123' });
    try {
      await assert.rejects(driver.doSetup(), (err: unknown) => {
        assert.ok(err instanceof AuthenticationError);
        assert.equal(err.field, 'netapp_password');
        assert.doesNotMatch(err.message + JSON.stringify(err.toJSON()), /wrong-pass-123|right-one/);
        return true;
      });
      assert.doesNotMatch(logs.text(), /wrong-pass-123/);
      assert.equal(sim.state.system, undefined, 'nothing was registered');
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('fails doSetup with BackendUnreachableError when nothing listens', async () => {
    const sim = await startEseriesSimulator();
    const port = await freePort();
    const { driver } = makeDriver(sim, { netapp_server_port: port, netapp_api_retries: 2 });
    try {
      await assert.rejects(driver.doSetup(), (err: unknown) => {
        assert.ok(err instanceof BackendUnreachableError, String(err));
        assert.equal(err.field, 'netapp_server_hostname');
        assert.match(err.message, new RegExp(`127.0.0.1:${port}`));
        return true;
      });
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('refuses Web Services older than REST 1.4', async () => {
    const sim = await startEseriesSimulator({ version: '01.53.9000.0001' });
    const { driver } = makeDriver(sim);
    try {
      await assert.rejects(driver.doSetup(), (err: unknown) => err instanceof BackendError && /01\.54\.9000\.1/.test(err.message));
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('derives the about URL from netapp_webservice_path', async () => {
    const sim = await startEseriesSimulator();
    const { driver } = makeDriver(sim, { netapp_webservice_path: '/other/v9' });
    try {
      await assert.rejects(driver.doSetup());
      assert.ok(sim.state.requests.some((r) => r.path === '/other/utils/about'));
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('fails checkForSetupError when no pool matches the pattern, naming the key and the pools', async () => {
    const sim = await startEseriesSimulator();
    const { driver } = makeDriver(sim, { netapp_pool_name_search_pattern: 'gold.*' });
    try {
      await driver.doSetup();
      await assert.rejects(driver.checkForSetupError(), (err: unknown) => {
        assert.ok(err instanceof InvalidConfigError);
        assert.equal(err.field, 'netapp_pool_name_search_pattern');
        assert.match(err.message, /DDP, RG6/);
        return true;
      });
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('fails checkForSetupError for an unknown host type', async () => {
    const sim = await startEseriesSimulator();
    const { driver } = makeDriver(sim, { netapp_host_type: 'plan9' });
    try {
      await driver.doSetup();
      await assert.rejects(driver.checkForSetupError(), (err: unknown) => err instanceof InvalidConfigError && err.field === 'netapp_host_type');
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('fails checkForSetupError when the array rejects netapp_sa_password', async () => {
    const sim = await startEseriesSimulator({ arrayPassword: 'the-array-pw' });
    const { driver, logs } = makeDriver(sim, { netapp_sa_password: 'not-the-array-pw' });
    try {
      await driver.doSetup();
      await assert.rejects(driver.checkForSetupError(), (err: unknown) => {
        assert.ok(err instanceof AuthenticationError);
        assert.equal(err.field, 'netapp_sa_password');
        assert.match(err.message, /incorrect/);
        assert.doesNotMatch(err.message, /the-array-pw|not-the-array-pw/);
        return true;
      });
      assert.doesNotMatch(logs.text(), /not-the-array-pw/);
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('asks for netapp_sa_password when the array has one and none is configured', async () => {
    const sim = await startEseriesSimulator({ arrayPassword: 'the-array-pw' });
    const { driver } = makeDriver(sim);
    try {
      await driver.doSetup();
      await assert.rejects(driver.checkForSetupError(), (err: unknown) => err instanceof AuthenticationError && /set netapp_sa_password/.test(err.message));
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('waits for an offline array within the bound, then fails with BackendUnreachableError', async () => {
    const sim = await startEseriesSimulator();
    const { driver } = makeDriver(sim);
    try {
      await driver.doSetup();
      sim.state.system!.status = 'offline';
      const t0 = Date.now();
      await assert.rejects(driver.checkForSetupError(), (err: unknown) => err instanceof BackendUnreachableError && /offline/.test(err.message));
      assert.ok(Date.now() - t0 >= 250, 'polled until netapp_sa_comm_timeout');
      const polls = sim.state.requests.filter((r) => r.method === 'GET' && /storage-systems\/[^/]+$/.test(r.path)).length;
      assert.ok(polls >= 3, `polled several times (${polls})`);
      // operations against an offline array map 424 to BackendUnreachableError
      await assert.rejects(driver.getVolumeStats(true), (err: unknown) => err instanceof BackendUnreachableError && /offline/.test(err.message));
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('accepts an array that comes online during the poll', async () => {
    const sim = await startEseriesSimulator();
    const { driver } = makeDriver(sim, { netapp_sa_comm_timeout: 5 });
    try {
      await driver.doSetup();
      sim.state.system!.status = 'neverContacted';
      const before = sim.state.requests.length;
      const t0 = Date.now();
      setTimeout(() => (sim.state.system!.status = 'optimal'), 100);
      await driver.checkForSetupError();
      assert.ok(Date.now() - t0 >= 90, 'waited for the array instead of accepting "neverContacted"');
      const polls = sim.state.requests.slice(before).filter((r) => r.method === 'GET' && r.path === `/devmgr/v2/storage-systems/${driver.systemId}`);
      assert.ok(polls.length >= 2, `polled the storage system until it was reachable (${polls.length})`);
      // The checks after the wait ran: the host type was looked up and the pools were checked.
      const after = sim.state.requests.slice(before).map((r) => `${r.method} ${r.path.replace(/^.*\/storage-systems\/[^/]+/, '')}`);
      assert.ok(after.includes('GET /host-types') && after.includes('GET /storage-pools'), after.join(', '));
      const stats = await driver.getVolumeStats(true);
      assert.deepEqual(stats.pools!.map((p) => p.pool_name), ['DDP', 'RG6']);
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('creates the multi-attach host group once when enabled', async () => {
    const sim = await startEseriesSimulator();
    const a = makeDriver(sim, { netapp_enable_multiattach: true });
    const b = makeDriver(sim, { netapp_enable_multiattach: 'True' });
    try {
      await a.driver.doSetup();
      await b.driver.doSetup();
      const groups = [...sim.state.hostGroups.values()].filter((g) => g.label === MULTI_ATTACH_HOST_GROUP_NAME);
      assert.equal(groups.length, 1);
    } finally {
      await a.driver.close();
      await b.driver.close();
      await sim.close();
    }
  });

  it('refuses to work before setup', async () => {
    const sim = await startEseriesSimulator();
    const { driver } = makeDriver(sim);
    try {
      await assert.rejects(driver.getVolumeStats(true), (err: unknown) => err instanceof InvalidStateError && /doSetup/.test(err.message));
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('rejects a controller name that does not resolve at setup', async () => {
    const sim = await startEseriesSimulator();
    const { driver } = makeDriver(sim, { netapp_controller_ips: 'no-such-controller.invalid' });
    try {
      await assert.rejects(driver.doSetup(), (err: unknown) => err instanceof InvalidConfigError && err.field === 'netapp_controller_ips');
    } finally {
      await driver.close();
      await sim.close();
    }
  });
});

describe('eseries TLS', () => {
  const fixtures = new URL('../../../../test/fixtures/eseries/', import.meta.url);
  const tls = { key: readFileSync(new URL('sim-key.pem', fixtures), 'utf8'), cert: readFileSync(new URL('sim-cert.pem', fixtures), 'utf8') };

  it('verifies the certificate by default and refuses a self-signed one at setup', async () => {
    const sim = await startEseriesSimulator({ tls });
    const { driver } = makeDriver(sim, { netapp_transport_type: 'https' });
    try {
      assert.equal(driver.config.verifyCertificate, true);
      await assert.rejects(driver.doSetup(), (err: unknown) => {
        assert.ok(err instanceof BackendUnreachableError, String(err));
        assert.equal(err.field, 'netapp_verify_certificate');
        assert.match(err.message, /certificate/);
        return true;
      });
      assert.equal(sim.state.requests.length, 0, 'no request got through');
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('trusts the certificate given by netapp_ca_certificate_path', async () => {
    const sim = await startEseriesSimulator({ tls });
    const { driver } = makeDriver(sim, { netapp_transport_type: 'https', netapp_ca_certificate_path: fileURLToPath(new URL('sim-cert.pem', fixtures)) });
    try {
      await driver.doSetup();
      await driver.checkForSetupError();
      assert.equal(driver.config.verifyCertificate, true, 'verification stays on: the CA makes the certificate trusted');
      const reg = sim.state.requests.find((r) => r.method === 'POST' && r.path === '/devmgr/v2/storage-systems');
      assert.deepEqual(reg?.body, { controllerAddresses: ['10.113.1.10', '10.113.1.11'], wwn: null, password: null }, 'the array was registered over TLS');
      assert.equal(driver.systemId, sim.state.system!.id);
      assert.ok(sim.state.requests.every((r) => r.authorized), 'every request carried the credentials');
      assert.ok(sim.state.requests.some((r) => r.path === `/devmgr/v2/storage-systems/${driver.systemId}/host-types`), 'the setup checks reached the array');
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('skips verification only when told to', async () => {
    const sim = await startEseriesSimulator({ tls });
    const { driver } = makeDriver(sim, { netapp_transport_type: 'https', netapp_verify_certificate: false });
    try {
      assert.equal(driver.config.verifyCertificate, false);
      await driver.doSetup();
      const reg = sim.state.requests.find((r) => r.method === 'POST' && r.path === '/devmgr/v2/storage-systems');
      assert.deepEqual(reg?.body, { controllerAddresses: ['10.113.1.10', '10.113.1.11'], wwn: null, password: null }, 'the array was registered over TLS');
      assert.equal(driver.systemId, sim.state.system!.id);
      assert.equal(driver.isEmbedded, false);
    } finally {
      await driver.close();
      await sim.close();
    }
  });

  it('names netapp_ca_certificate_path when the file cannot be read', async () => {
    const sim = await startEseriesSimulator({ tls });
    try {
      assert.throws(() => makeDriver(sim, { netapp_ca_certificate_path: '/nonexistent/ca.pem' }), (e: unknown) => e instanceof InvalidConfigError && e.field === 'netapp_ca_certificate_path');
    } finally {
      await sim.close();
    }
  });
});
