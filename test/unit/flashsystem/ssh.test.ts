/**
 * SSH transport of the ibm_flashsystem driver against the simulator's SSH server: host-key
 * verification, credentials, private keys, command timeouts, pooling, secrets kept out of logs.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSshKeyPair, type FlashSystemSimulator } from '../../../sims/flashsystem/index.js';
import { FlashSystemIscsiDriver, SshConnectionPool } from '../../../src/drivers/ibm-flashsystem/index.js';
import { AuthenticationError, BackendUnreachableError, ProcessTimeoutError } from '../../../src/errors.js';
import { createCapturingLogger } from '../../../src/log.js';
import { PASSWORD, baseConfig, driverContext, setupDriver, startSim } from './helpers.js';

describe('ibm_flashsystem SSH: host keys and credentials', () => {
  let sim: FlashSystemSimulator;
  let other: FlashSystemSimulator;
  let userKey: { private: string; public: string };
  before(async () => {
    userKey = generateSshKeyPair();
    sim = await startSim({ users: [{ name: 'superuser', password: PASSWORD }, { name: 'keyuser', publicKey: userKey.public }] });
    other = await startSim();
  });
  after(async () => {
    await sim.close();
    await other.close();
  });

  it('refuses an unknown host key, naming san_ssh_host_key and the presented fingerprint', async () => {
    const d = new FlashSystemIscsiDriver(baseConfig(sim, { san_ssh_host_key: other.publicKey }), driverContext());
    try {
      await assert.rejects(d.doSetup(), (e: unknown) => {
        assert.ok(e instanceof AuthenticationError);
        assert.equal(e.field, 'san_ssh_host_key');
        assert.ok(e.message.includes(sim.hostKeyFingerprint), e.message);
        return true;
      });
      assert.equal(sim.state.commandLog.length, 0, 'no command reached the array');
    } finally {
      await d.close();
    }
  });

  it('refuses any key when none is configured, unless san_ssh_allow_unknown_host_key is true', async () => {
    const refused = new FlashSystemIscsiDriver(baseConfig(sim, { san_ssh_host_key: undefined }), driverContext());
    await assert.rejects(refused.doSetup(), (e: unknown) => e instanceof AuthenticationError && e.field === 'san_ssh_host_key');
    await refused.close();
    const cap = createCapturingLogger();
    const allowed = await setupDriver(sim, { san_ssh_host_key: undefined, san_ssh_allow_unknown_host_key: true }, driverContext(cap.logger));
    await allowed.close();
    assert.ok(cap.lines().some((l) => l.fingerprint === sim.hostKeyFingerprint && /not configured/.test(String(l.msg))));
  });

  it('accepts the host key as a SHA256 fingerprint and from a known_hosts file', async () => {
    const byFp = await setupDriver(sim, { san_ssh_host_key: sim.hostKeyFingerprint });
    await byFp.close();
    const dir = mkdtempSync(join(tmpdir(), 'fs-kh-'));
    const kh = join(dir, 'known_hosts');
    writeFileSync(kh, `# array\n[127.0.0.1]:${sim.port} ${sim.publicKey}\nother.example ${other.publicKey}\n`);
    const byFile = await setupDriver(sim, { san_ssh_host_key: undefined, ssh_hosts_key_file: kh });
    await byFile.close();
    writeFileSync(kh, `[127.0.0.1]:${sim.port} ${other.publicKey}\n`);
    const wrong = new FlashSystemIscsiDriver(baseConfig(sim, { san_ssh_host_key: undefined, ssh_hosts_key_file: kh }), driverContext());
    await assert.rejects(wrong.doSetup(), AuthenticationError);
    await wrong.close();
  });

  it('bad credentials give a clear error at set-up, without the password anywhere', async () => {
    const cap = createCapturingLogger();
    const wrongPassword = 'Wr0ng-Pa55word';
    const d = new FlashSystemIscsiDriver(baseConfig(sim, { san_password: wrongPassword }), driverContext(cap.logger));
    try {
      await assert.rejects(d.doSetup(), (e: unknown) => {
        assert.ok(e instanceof AuthenticationError);
        assert.equal(e.field, 'san_password');
        assert.match(e.message, /refused: check san_login and san_password/);
        assert.ok(!JSON.stringify({ m: e.message, j: e.toJSON(), s: e.stack }).includes(wrongPassword));
        return true;
      });
    } finally {
      await d.close();
    }
    const bad = new FlashSystemIscsiDriver(baseConfig(sim, { san_login: 'nobody' }), driverContext(cap.logger));
    await assert.rejects(bad.doSetup(), (e: unknown) => e instanceof AuthenticationError && e.field === 'san_password');
    await bad.close();
    assert.ok(!cap.text().includes(wrongPassword));
    assert.ok(!cap.text().includes(PASSWORD));
  });

  it('logs in with a private key (file path or text); a wrong key names san_private_key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fs-key-'));
    const keyFile = join(dir, 'id_ed25519');
    writeFileSync(keyFile, userKey.private, { mode: 0o600 });
    const byPath = await setupDriver(sim, { san_login: 'keyuser', san_password: undefined, san_private_key: keyFile });
    await byPath.close();
    const byText = await setupDriver(sim, { san_login: 'keyuser', san_password: undefined, san_private_key: userKey.private });
    await byText.close();
    const stranger = generateSshKeyPair();
    const wrong = new FlashSystemIscsiDriver(baseConfig(sim, { san_login: 'keyuser', san_password: undefined, san_private_key: stranger.private }), driverContext());
    await assert.rejects(wrong.doSetup(), (e: unknown) => e instanceof AuthenticationError && e.field === 'san_private_key');
    await wrong.close();
  });

  it('an address where nothing listens is BackendUnreachableError naming san_ip', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const d = new FlashSystemIscsiDriver(baseConfig(sim, { san_ssh_port: port }), driverContext());
    await assert.rejects(d.doSetup(), (e: unknown) => e instanceof BackendUnreachableError && e.field === 'san_ip');
    await d.close();
  });

  it('a server that never completes the handshake times out (ssh_conn_timeout)', async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    const d = new FlashSystemIscsiDriver(baseConfig(sim, { san_ssh_port: port, ssh_conn_timeout: 1 }), driverContext());
    try {
      await assert.rejects(d.doSetup(), (e: unknown) => e instanceof BackendUnreachableError && /timed out/.test((e as Error).message));
    } finally {
      await d.close();
      silent.close();
    }
  });
});

describe('ibm_flashsystem SSH: pool and timeouts', () => {
  let sim: FlashSystemSimulator;
  before(async () => (sim = await startSim()));
  after(async () => sim.close());

  const pool = (max: number, timeoutMs = 5000) =>
    new SshConnectionPool({
      host: '127.0.0.1',
      port: sim.port,
      username: 'superuser',
      password: PASSWORD,
      trustedFingerprints: [sim.hostKeyFingerprint],
      connectTimeoutMs: 5000,
      commandTimeoutMs: timeoutMs,
      maxConnections: max,
    });

  it('reuses one connection for sequential commands', async () => {
    const p = pool(3);
    const before = sim.connections();
    for (let i = 0; i < 10; i++) assert.equal((await p.run('svcinfo lssystem -delim !')).exitCode, 0);
    assert.equal(sim.connections() - before, 1);
    await p.close();
  });

  it('opens at most ssh_max_pool_conn connections for concurrent commands', async () => {
    const p = pool(2);
    const before = sim.connections();
    const results = await Promise.all(Array.from({ length: 12 }, () => p.run('svcinfo lsnode -delim !')));
    assert.ok(results.every((r) => r.exitCode === 0 && r.stdout.startsWith('id!name!')));
    assert.ok(sim.connections() - before <= 2, `opened ${sim.connections() - before}`);
    await p.close();
  });

  it('returns non-zero exits with the CMMVC message rather than throwing', async () => {
    const p = pool(1);
    const r = await p.run("svcinfo lsvdisk -bytes -delim ! 'missing'");
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /^CMMVC5754E /);
    await p.close();
  });

  it('a command that hangs is killed at its timeout, and the pool recovers', async () => {
    const p = pool(1, 300);
    sim.state.injectFault('lssystem', { kind: 'hang' });
    await assert.rejects(p.run('svcinfo lssystem -delim !'), (e: unknown) => e instanceof ProcessTimeoutError && e.timeoutMs === 300);
    assert.equal((await p.run('svcinfo lssystem -delim !')).exitCode, 0);
    await p.close();
  });

  it('the driver maps a hung command to ProcessTimeoutError (ssh_command_timeout)', async () => {
    const d = await setupDriver(sim, { ssh_command_timeout: 1 });
    try {
      sim.state.injectFault('lsmdiskgrp', { kind: 'hang' });
      await assert.rejects(d.getVolumeStats(true), ProcessTimeoutError);
      assert.equal((await d.getVolumeStats(true)).vendor_name, 'IBM');
    } finally {
      await d.close();
    }
  });

  it('fails calls after close', async () => {
    const p = pool(1);
    await p.run('svcinfo lssystem -delim !');
    await p.close();
    await assert.rejects(p.run('svcinfo lssystem -delim !'), BackendUnreachableError);
  });
});
