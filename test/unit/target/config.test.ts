import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTargetConfig, portalString } from '../../../src/target/config.js';
import { createTargetHelper } from '../../../src/target/index.js';
import {
  formatIscsiLocation,
  parseIscsiLocation,
  parseProviderAuth,
  generateChap,
  hasChapEncodingPrefix,
  randomAlnum,
  iscsiConnectionData,
} from '../../../src/target/common.js';
import { InvalidConfigError, InvalidInputError } from '../../../src/errors.js';
import type { ConnectorProperties } from '../../../src/initiator/properties.js';
import { makeContext } from './context.js';

function field(key: string) {
  return (e: unknown) => e instanceof InvalidInputError && e.field === key;
}

/** Target options are configuration: refused with InvalidConfigError naming the key. */
function configField(key: string) {
  return (e: unknown) => e instanceof InvalidConfigError && e.field === key;
}

test('defaults follow Cinder: lioadm, iscsi, iqn.2010-10.org.openstack:, port 3260; nvmet gets nvmet_tcp and 4420', () => {
  const c = parseTargetConfig({});
  assert.equal(c.helper, 'lioadm');
  assert.equal(c.protocol, 'iscsi');
  assert.equal(c.prefix, 'iqn.2010-10.org.openstack:');
  assert.equal(c.port, 3260);
  assert.equal(c.ipAddress, '127.0.0.1');
  const n = parseTargetConfig({ target_helper: 'nvmet' });
  assert.equal(n.protocol, 'nvmet_tcp');
  assert.equal(n.port, 4420);
  assert.equal(n.nvmetNsId, 10);
  assert.match(n.prefix, /^nqn\./);
});

test('string values from YAML/INI are coerced; the old iscsi_secondary_ip_addresses key is accepted', () => {
  const c = parseTargetConfig({ target_port: '3262', iscsi_secondary_ip_addresses: '10.0.0.2, 10.0.0.3', report_discard_supported: 'yes' });
  assert.equal(c.port, 3262);
  assert.deepEqual(c.secondaryIpAddresses, ['10.0.0.2', '10.0.0.3']);
  assert.equal(c.reportDiscard, true);
});

test('bad values are refused naming the key', () => {
  assert.throws(() => parseTargetConfig({ target_helper: 'scstadmin' }), configField('target_helper'));
  assert.throws(() => parseTargetConfig({ target_helper: 'nvmet', target_protocol: 'iscsi' }), configField('target_protocol'));
  assert.throws(() => parseTargetConfig({ target_helper: 'lioadm', target_protocol: 'nvmet_tcp' }), configField('target_protocol'));
  assert.throws(() => parseTargetConfig({ target_port: 70000 }), configField('target_port'));
  assert.throws(() => parseTargetConfig({ target_port: '32x' }), configField('target_port'));
  assert.throws(() => parseTargetConfig({ target_ip_address: '10.0.0.1/24' }), configField('target_ip_address'));
  assert.throws(() => parseTargetConfig({ target_secondary_ip_addresses: ['127.0.0.1'] }), configField('target_secondary_ip_addresses'));
  assert.throws(() => parseTargetConfig({ target_prefix: 'volume-' }), configField('target_prefix'));
  assert.throws(() => parseTargetConfig({ target_helper: 'nvmet', target_prefix: 'iqn.2010-10.org.openstack:' }), configField('target_prefix'));
  assert.throws(() => parseTargetConfig({ report_discard_supported: 'maybe' }), configField('report_discard_supported'));
});

test('the factory picks the helper by target_helper', async () => {
  const t = await makeContext('/nonexistent-root');
  try {
    assert.equal(createTargetHelper({}, t.ctx).helperName, 'lioadm');
    assert.equal(createTargetHelper({ target_helper: 'tgtadm' }, t.ctx).connectorProtocol, 'ISCSI');
    const n = createTargetHelper({ target_helper: 'nvmet', target_protocol: 'nvmet_tcp' }, t.ctx);
    assert.equal(n.connectorProtocol, 'NVMEOF');
    assert.equal(n.storageProtocol, 'NVMe-oF');
  } finally {
    await t.cleanup();
  }
});

test('IPv6 portals are bracketed', () => {
  assert.equal(portalString('fd00::1', 3260), '[fd00::1]:3260');
  assert.equal(portalString('10.1.1.1', 3260), '10.1.1.1:3260');
});

test('iSCSI provider_location round-trips; a missing LUN is 0 as in Cinder', () => {
  const loc = { portals: ['10.0.0.1:3260', '[fd00::1]:3260'], tid: 4, iqn: 'iqn.2010-10.org.openstack:volume-x', lun: 1 };
  assert.equal(formatIscsiLocation(loc), '10.0.0.1:3260;[fd00::1]:3260,4 iqn.2010-10.org.openstack:volume-x 1');
  assert.deepEqual(parseIscsiLocation(formatIscsiLocation(loc)), loc);
  assert.equal(parseIscsiLocation('10.0.0.1:3260,1 iqn.x').lun, 0);
  assert.throws(() => parseIscsiLocation(''), field('provider_location'));
});

test('provider_auth errors never contain the secret', () => {
  assert.deepEqual(parseProviderAuth('CHAP user s3cretvalue'), { username: 'user', password: 's3cretvalue' });
  assert.equal(parseProviderAuth(null), undefined);
  try {
    parseProviderAuth('PLAIN user s3cretvalue');
    assert.fail('should throw');
  } catch (e) {
    assert.ok(e instanceof InvalidInputError);
    assert.equal(e.field, 'provider_auth');
    assert.ok(!e.message.includes('s3cretvalue'));
  }
});

test('generated CHAP credentials: 20/16 alphanumerics, different every time', () => {
  const a = generateChap();
  const b = generateChap();
  assert.match(a.username, /^[A-Za-z0-9]{20}$/);
  assert.match(a.password, /^[A-Za-z0-9]{16}$/);
  assert.notEqual(a.password, b.password);
  const big = randomAlnum(6200);
  assert.ok(new Set(big).size === 62, 'all 62 characters are drawn');
});

test('CHAP names LIO reads as hex- or base64-encoded (0x, 0X, 0b, 0B first) are recognised; others are not', () => {
  for (const n of ['0xA1b2C3d4E5f6G7h8I9j0', '0Xabc', '0bQmFzZTY0', '0B0000']) assert.ok(hasChapEncodingPrefix(n), n);
  for (const n of ['x0abc', 'b0abc', '00xabc', '0abc', 'A0xabc', '0', '']) assert.ok(!hasChapEncodingPrefix(n), n);
});

test('a generated CHAP user name never starts with an encoding prefix: such a draw is replaced by the next one', () => {
  for (const prefixed of ['0x', '0X', '0b', '0B']) {
    const draws = [`${prefixed}${'A'.repeat(18)}`, `${prefixed}${'B'.repeat(18)}`, 'Cq7'.padEnd(20, 'z'), 'S3cretS3cretS3cr'];
    const asked: number[] = [];
    const chap = generateChap((length) => {
      asked.push(length);
      return draws.shift()!;
    });
    assert.equal(chap.username, 'Cq7'.padEnd(20, 'z'), `a ${prefixed} name is drawn again`);
    assert.equal(chap.password, 'S3cretS3cretS3cr');
    assert.deepEqual(asked, [20, 20, 20, 16]);
  }
  // With the real source, about 1 in 961 names would carry one: 20 000 draws would hold ~21.
  const names = Array.from({ length: 20_000 }, () => generateChap().username);
  assert.deepEqual(names.filter(hasChapEncodingPrefix), []);
  assert.ok(names.some((n) => n.startsWith('0')), 'names may still start with a digit 0');
});

test('iscsiConnectionData has no CHAP keys without provider_auth', () => {
  const c: ConnectorProperties = { platform: 'x86_64', os_type: 'linux2', ip: '1.1.1.1', host: 'h', multipath: false, enforce_multipath: false, initiator: 'iqn.x:y' };
  const d = iscsiConnectionData({ id: 'v', name: 'volume-v', size: 1, provider_location: '10.0.0.1:3260,1 iqn.x:t 0' }, c, false);
  assert.equal(d.auth_method, undefined);
  assert.equal(d.target_iqn, 'iqn.x:t');
});
