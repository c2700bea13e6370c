import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  uuidToLabel,
  labelToUuid,
  wsVersionAtLeast,
  compilePoolPattern,
  specBool,
  compareNumeric,
  normaliseIqn,
} from '../../../src/drivers/netapp-eseries/utils.js';
import { parseEseriesConfig } from '../../../src/drivers/netapp-eseries/config.js';
import { driverFactory } from '../../../src/drivers/registry.js';
import '../../../src/drivers/netapp-eseries/index.js';
import { InvalidConfigError, InvalidInputError } from '../../../src/errors.js';

const REQUIRED = { netapp_server_hostname: 'proxy.example', netapp_login: 'rw', netapp_password: 'pw-xyz', netapp_controller_ips: '10.0.0.1, 10.0.0.2' };

function configError(field: string) {
  return (err: unknown) => {
    assert.ok(err instanceof InvalidConfigError, `expected InvalidConfigError, got ${String(err)}`);
    assert.equal(err.field, field);
    assert.match(err.message, new RegExp(field));
    return true;
  };
}

describe('eseries labels', () => {
  it('encodes a UUID as 26 base32 characters and decodes it back', () => {
    for (let i = 0; i < 20; i++) {
      const u = randomUUID();
      const l = uuidToLabel(u);
      assert.match(l, /^[A-Z2-7]{26}$/);
      assert.equal(labelToUuid(l), u);
      assert.equal(labelToUuid(`tmp-${l}`), u);
    }
  });
  it('matches RFC 4648 base32 of the raw bytes', () => {
    // 16 zero bytes -> 26 'A'; 0xff.. -> '7' x 25 + '4' (as Python's base64.b32encode)
    assert.equal(uuidToLabel('00000000-0000-0000-0000-000000000000'), 'A'.repeat(26));
    assert.equal(uuidToLabel('ffffffff-ffff-ffff-ffff-ffffffffffff'), '7'.repeat(25) + '4');
  });
  it('rejects what is not a UUID, naming the field', () => {
    assert.throws(() => uuidToLabel('volume-1', 'snapshot.id'), (e: unknown) => e instanceof InvalidInputError && e.field === 'snapshot.id');
    assert.equal(labelToUuid('repos_0001'), undefined);
  });
});

describe('eseries version gate', () => {
  it('treats a smaller third part as newer', () => {
    assert.equal(wsVersionAtLeast('01.54.9000.1', '01.54.9000.1'), true);
    assert.equal(wsVersionAtLeast('01.54.9010.1', '01.54.9000.1'), false);
    assert.equal(wsVersionAtLeast('01.53.9000.9', '01.54.9000.1'), false);
    assert.equal(wsVersionAtLeast('02.00.9000.0003', '01.54.9000.1'), true);
    assert.equal(wsVersionAtLeast('garbage', '01.54.9000.1'), false);
  });
});

describe('eseries pool pattern and specs', () => {
  it('anchors, trims and ORs the comma-separated expressions', () => {
    const re = compilePoolPattern(' ^DDP$ , pool_[0-9]+ ');
    assert.equal(re.test('DDP'), true);
    assert.equal(re.test('xDDP'), false);
    assert.equal(re.test('pool_12'), true);
    assert.equal(re.test('pool_12x'), false);
  });
  it('rejects an invalid expression with the key named', () => {
    assert.throws(() => compilePoolPattern('(unclosed'), configError('netapp_pool_name_search_pattern'));
  });
  it('reads booleans as Cinder does', () => {
    assert.equal(specBool('Yes'), true);
    assert.equal(specBool('enabled'), true);
    assert.equal(specBool('no'), false);
    assert.equal(specBool(undefined), null);
  });
  it('compares sequence numbers as numbers, not text', () => {
    assert.equal(compareNumeric('9', '10'), -1);
    assert.equal(['10', '9', '100'].sort(compareNumeric).join(','), '9,10,100');
    assert.equal(normaliseIqn('IQN.1993-08.org:ABC'), 'iqn.1993-08.org' + 'abc');
  });
});

describe('eseries configuration', () => {
  it('applies the upstream defaults and verifies TLS by default', () => {
    const c = parseEseriesConfig(REQUIRED, 'be');
    assert.equal(c.serverPort, 8080);
    assert.equal(c.transportType, 'http');
    assert.equal(c.webservicePath, '/devmgr/v2');
    assert.deepEqual(c.controllerIps, ['10.0.0.1', '10.0.0.2']);
    assert.equal(c.hostType, 'linux_dm_mp');
    assert.equal(c.verifyCertificate, true);
    assert.equal(c.enableMultiattach, false);
    assert.equal(c.poolPattern.test('anything'), true);
    assert.equal(parseEseriesConfig({ ...REQUIRED, netapp_transport_type: 'https' }, 'be').serverPort, 8443);
    assert.equal(parseEseriesConfig({ ...REQUIRED, driver_ssl_cert_verify: 'false' }, 'be').verifyCertificate, false);
    assert.equal(parseEseriesConfig({ ...REQUIRED, netapp_storage_pools: 'DDP' }, 'be').poolPattern.test('RG6'), false);
  });
  for (const key of ['netapp_server_hostname', 'netapp_login', 'netapp_password', 'netapp_controller_ips']) {
    it(`requires ${key}`, () => {
      const c: Record<string, unknown> = { ...REQUIRED };
      delete c[key];
      assert.throws(() => parseEseriesConfig(c, 'be'), configError(key));
    });
  }
  it('names the key of each malformed value', () => {
    assert.throws(() => parseEseriesConfig({ ...REQUIRED, netapp_transport_type: 'ftp' }, 'be'), configError('netapp_transport_type'));
    assert.throws(() => parseEseriesConfig({ ...REQUIRED, netapp_server_port: 70000 }, 'be'), configError('netapp_server_port'));
    assert.throws(() => parseEseriesConfig({ ...REQUIRED, netapp_enable_multiattach: 'perhaps' }, 'be'), configError('netapp_enable_multiattach'));
    assert.throws(() => parseEseriesConfig({ ...REQUIRED, netapp_storage_family: 'ontap_cluster' }, 'be'), configError('netapp_storage_family'));
    assert.throws(() => parseEseriesConfig({ ...REQUIRED, netapp_storage_protocol: 'fc' }, 'be'), configError('netapp_storage_protocol'));
    assert.throws(() => parseEseriesConfig({ ...REQUIRED, netapp_server_hostname: 'http://x/' }, 'be'), configError('netapp_server_hostname'));
    assert.throws(() => parseEseriesConfig({ ...REQUIRED, chap_password: 'short' }, 'be'), configError('chap_password'));
    assert.throws(() => parseEseriesConfig({ ...REQUIRED, netapp_api_retries: 2.5 }, 'be'), configError('netapp_api_retries'));
  });
  it('never puts the password in a configuration error', () => {
    try {
      parseEseriesConfig({ ...REQUIRED, netapp_api_timeout: 'x' }, 'be');
      assert.fail('expected an error');
    } catch (err) {
      assert.doesNotMatch(String((err as Error).message), /pw-xyz/);
    }
  });
  it('registers under its short name and Cinder class path', () => {
    assert.equal(driverFactory('cinder.volume.drivers.netapp.eseries.iscsi_driver.NetAppEseriesISCSIDriver').name, 'netapp_eseries');
    assert.equal(driverFactory('netapp_eseries').name, 'netapp_eseries');
  });
});
