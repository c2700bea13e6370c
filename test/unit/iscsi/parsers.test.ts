import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parsePortal, editRecord, parseDiscovery, chapSettings } from '../../../src/host/iscsiadm.js';
import { wwidFromSysfs, wwidFromVpdPg83, lunForAddressing, parseHctl, formatHctl } from '../../../src/host/scsi.js';
import { validateIscsiProperties } from '../../../src/initiator/connectors/iscsi/index.js';
import { InvalidInputError } from '../../../src/errors.js';

const FX = new URL('../../../../test/fixtures/iscsi/', import.meta.url);

test('portals: IPv4 with and without port, [IPv6]:port, bare IPv6, host names', () => {
  assert.deepEqual(parsePortal('192.0.2.10:3261'), { address: '192.0.2.10', port: 3261, text: '192.0.2.10:3261' });
  assert.deepEqual(parsePortal('192.0.2.10'), { address: '192.0.2.10', port: 3260, text: '192.0.2.10:3260' });
  assert.deepEqual(parsePortal('[FD00::1]:3262'), { address: 'fd00::1', port: 3262, text: '[fd00::1]:3262' });
  assert.deepEqual(parsePortal('[fd00::1]'), { address: 'fd00::1', port: 3260, text: '[fd00::1]:3260' });
  assert.deepEqual(parsePortal('fd00::2'), { address: 'fd00::2', port: 3260, text: '[fd00::2]:3260' });
  assert.equal(parsePortal('array-a.example:3260').text, 'array-a.example:3260');
});

test('portals: bad values name the field', () => {
  for (const bad of ['', '1.2.3.4:0', '1.2.3.4:70000', '[fd00::1', '[1.2.3.4]:3260', '300.1.1.1:3260', 'a b:3260', '1.2.3.4:32x', 42]) {
    assert.throws(() => parsePortal(bad, 'target_portals[1]'), (e: unknown) => e instanceof InvalidInputError && e.field === 'target_portals[1]', String(bad));
  }
});

const IQN = 'iqn.2026-11.lab.brick:t1';

test('properties: singular keys, default LUN 0, addressing mode applied', () => {
  const p = validateIscsiProperties({ target_portal: '10.0.0.1', target_iqn: IQN });
  assert.equal(p.targets.length, 1);
  assert.equal(p.targets[0]!.lun, 0);
  assert.equal(p.targets[0]!.portal.text, '10.0.0.1:3260');
  const flat = validateIscsiProperties({ target_portal: '10.0.0.1', target_iqn: IQN, target_lun: 3, addressing_mode: 'SAM3-flat' });
  assert.equal(flat.targets[0]!.scsiLun, 16387);
  assert.equal(validateIscsiProperties({ target_portal: '10.0.0.1', target_iqn: IQN, target_lun: 300, addressing_mode: 'SAM2' }).targets[0]!.scsiLun, 300 + 16384);
  assert.equal(validateIscsiProperties({ target_portal: '10.0.0.1', target_iqn: IQN, target_lun: 3, addressing_mode: 'SAM2' }).targets[0]!.scsiLun, 3);
});

test('properties: plural keys zip into targets; missing target_luns repeats target_lun', () => {
  const p = validateIscsiProperties({ target_portals: ['10.0.0.1:3260', '[fd00::1]:3260'], target_iqns: [IQN, IQN], target_lun: 4 });
  assert.deepEqual(
    p.targets.map((t) => [t.portal.text, t.iqn, t.lun]),
    [
      ['10.0.0.1:3260', IQN, 4],
      ['[fd00::1]:3260', IQN, 4],
    ],
  );
  assert.equal(p.plural, true);
});

test('properties: every bad field is named', () => {
  const base = { target_portal: '10.0.0.1:3260', target_iqn: IQN, target_lun: 1 };
  const cases: [Record<string, unknown>, string][] = [
    [{ ...base, target_portal: undefined }, 'target_portal'],
    [{ ...base, target_iqn: 'not-an-iqn' }, 'target_iqn'],
    [{ ...base, target_lun: -1 }, 'target_lun'],
    [{ ...base, target_lun: 1.5 }, 'target_lun'],
    [{ ...base, target_portals: [] }, 'target_portals'],
    [{ ...base, target_portals: ['10.0.0.1', '10.0.0.2'], target_iqns: [IQN] }, 'target_iqns'],
    [{ ...base, target_portals: ['10.0.0.1', '10.0.0.2'], target_iqns: [IQN, IQN], target_luns: [1] }, 'target_luns'],
    [{ ...base, target_portals: ['10.0.0.1', '10.0.0.2:x'], target_iqns: [IQN, IQN] }, 'target_portals[1]'],
    [{ ...base, target_portals: ['10.0.0.1', '10.0.0.2'], target_iqns: [IQN, 'bad'] }, 'target_iqns[1]'],
    [{ ...base, auth_method: 'KERBEROS' }, 'auth_method'],
    [{ ...base, auth_method: 'CHAP', auth_password: 'x' }, 'auth_username'],
    [{ ...base, auth_method: 'CHAP', auth_username: 'u' }, 'auth_password'],
    [{ ...base, auth_method: 'CHAP', auth_username: 'u', auth_password: 'a\nb' }, 'auth_password'],
    [{ ...base, discovery_auth_method: 'CHAP', discovery_auth_username: 'u' }, 'discovery_auth_password'],
    [{ ...base, access_mode: 'rx' }, 'access_mode'],
    [{ ...base, encrypted: 'yes' }, 'encrypted'],
    [{ ...base, target_discovered: 1 }, 'target_discovered'],
    [{ ...base, volume_id: 5 }, 'volume_id'],
    [{ ...base, addressing_mode: 'SAM4' }, 'addressing_mode'],
  ];
  for (const [props, field] of cases) {
    assert.throws(() => validateIscsiProperties(props), (e: unknown) => e instanceof InvalidInputError && e.field === field, field);
  }
  assert.throws(() => validateIscsiProperties(null as unknown as Record<string, unknown>), (e: unknown) => e instanceof InvalidInputError && e.field === 'connection_properties');
});

test('properties: an invalid CHAP secret never appears in the error', () => {
  try {
    validateIscsiProperties({ target_portal: '10.0.0.1', target_iqn: IQN, auth_method: 'CHAP', auth_username: 'u', auth_password: 'sekrit\nline' });
    assert.fail('should throw');
  } catch (e) {
    assert.ok(!(e as Error).message.includes('sekrit'));
  }
});

test('WWIDs from sysfs wwid values, in udev form', () => {
  assert.equal(wwidFromSysfs('naa.6001405a1b2c3d4e5f60718293a4b5c6\n'), '36001405a1b2c3d4e5f60718293a4b5c6');
  assert.equal(wwidFromSysfs('eui.0123456789abcdef'), '20123456789abcdef');
  assert.equal(wwidFromSysfs('t10.LIO-ORG  disk0   '), '1LIO-ORG_disk0');
  assert.equal(wwidFromSysfs('weird-id'), '8weird-id');
});

test('WWID from a raw VPD page 0x83 of a LIO LUN prefers the NAA designator', () => {
  const page = readFileSync(new URL('vpd_pg83.lio.bin', FX));
  assert.equal(wwidFromVpdPg83(page), '36001405a1b2c3d4e5f60718293a4b5c6');
  assert.equal(wwidFromVpdPg83(Buffer.from([0, 0x80, 0, 0])), undefined);
});

test('LUN addressing and H:C:T:L', () => {
  assert.equal(lunForAddressing(5), 5);
  assert.equal(lunForAddressing(5, 'transparent'), 5);
  assert.deepEqual(parseHctl('2:0:0:17'), { host: 2, channel: 0, target: 0, lun: 17 });
  assert.equal(parseHctl('2:0:0'), undefined);
  assert.equal(formatHctl({ host: 3, channel: 0, target: 1, lun: 2 }), '3:0:1:2');
});

test('node record edit on a real iscsiadm 2.1.8 record: replaces and inserts keys before END RECORD', () => {
  const text = readFileSync(new URL('node-record-2.1.8.txt', FX), 'utf8');
  const out = editRecord(text, { 'node.session.scan': 'manual', ...chapSettings('node.session.auth', 'CHAP', 'user1', 'p4ss') });
  assert.match(out, /^node\.session\.scan = manual$/m);
  assert.match(out, /^node\.session\.auth\.authmethod = CHAP$/m);
  assert.match(out, /^node\.session\.auth\.username = user1$/m);
  assert.match(out, /^node\.session\.auth\.password = p4ss$/m);
  assert.ok(out.indexOf('node.session.auth.password = p4ss') < out.indexOf('# END RECORD'));
  assert.equal((out.match(/^node\.session\.scan =/gm) ?? []).length, 1);
  assert.equal(out.split('\n').length, text.split('\n').length + 2, 'username and password lines inserted, the rest replaced');
  assert.equal(editRecord(out, { 'node.session.scan': 'manual' }), out);
  assert.deepEqual(chapSettings('node.session.auth'), { 'node.session.auth.authmethod': 'None' });
});

test('sendtargets output parsing, IPv4 and IPv6', () => {
  const out = parseDiscovery('127.0.0.1:3260,1 iqn.2026-11.lab:t1\n[fd00::1]:3260,1 iqn.2026-11.lab:t1\ngarbage\n');
  assert.deepEqual(
    out.map((d) => [d.portal.text, d.tpgt, d.iqn]),
    [
      ['127.0.0.1:3260', 1, 'iqn.2026-11.lab:t1'],
      ['[fd00::1]:3260', 1, 'iqn.2026-11.lab:t1'],
    ],
  );
});
