/**
 * The driver option schema (src/drivers/options.ts) and its use by every driver: typed and
 * string values alike, InvalidConfigError naming the key, secrets kept out of messages, and
 * the Markdown table the README is generated from.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineOption, readOption, renderOptionsTable, type DriverOption } from '../../../src/options.js';
import { FILE_OPTIONS, parseFileDriverConfig } from '../../../src/drivers/file/driver.js';
import { LVM_OPTIONS, parseLvmConfig } from '../../../src/drivers/lvm/driver.js';
import { FLASHSYSTEM_OPTIONS, parseFlashSystemConfig } from '../../../src/drivers/ibm-flashsystem/config.js';
import { ESERIES_OPTIONS, parseEseriesConfig } from '../../../src/drivers/netapp-eseries/config.js';
import { TARGET_OPTIONS } from '../../../src/target/config.js';
import { InvalidConfigError } from '../../../src/errors.js';

const configError = (key: string) => (e: unknown) => e instanceof InvalidConfigError && e.field === key && e.message.startsWith(`invalid ${key}:`);

const port = defineOption({ name: 'port', type: 'int', min: 1, max: 65535, default: 22, help: 'p' });
const ratio = defineOption({ name: 'ratio', type: 'float', min: 1, default: 20, help: 'r' });
const flag = defineOption({ name: 'flag', type: 'bool', default: false, help: 'f' });
const list = defineOption({ name: 'addrs', aliases: ['old_addrs'], type: 'list', default: [], help: 'l' });
const mode = defineOption({ name: 'mode', type: 'enum', choices: ['auto', 'host'], ignoreCase: true, default: 'auto', help: 'm' });
const secret = defineOption({ name: 'password', type: 'string', secret: true, required: true, help: 's' });

test('values arrive typed or as strings alike', () => {
  assert.equal(readOption({ port: 2222 }, port), 2222);
  assert.equal(readOption({ port: ' 2222 ' }, port), 2222);
  assert.equal(readOption({}, port), 22);
  assert.equal(readOption({ port: '' }, port), 22, 'an empty value is absent');
  assert.equal(readOption({ ratio: '1.5' }, ratio), 1.5);
  for (const [v, want] of [[true, true], ['true', true], ['Yes', true], ['on', true], ['1', true], [1, true], [false, false], ['false', false], ['no', false], ['OFF', false], ['0', false]] as const) {
    assert.equal(readOption({ flag: v }, flag), want, JSON.stringify(v));
  }
  assert.deepEqual(readOption({ addrs: 'a, b,,c' }, list), ['a', 'b', 'c']);
  assert.deepEqual(readOption({ addrs: ['a', ' b'] }, list), ['a', 'b']);
  assert.deepEqual(readOption({ old_addrs: 'x' }, list), ['x'], 'an older name is accepted');
  assert.equal(readOption({ mode: 'HOST' }, mode), 'host', 'the declared spelling comes back');
});

test('refusals are InvalidConfigError naming the key given', () => {
  assert.throws(() => readOption({ port: 70000 }, port), configError('port'));
  assert.throws(() => readOption({ port: '22x' }, port), configError('port'));
  assert.throws(() => readOption({ port: 2.5 }, port), configError('port'));
  assert.throws(() => readOption({ ratio: 0.5 }, ratio), configError('ratio'));
  assert.throws(() => readOption({ flag: 'perhaps' }, flag), configError('flag'));
  assert.throws(() => readOption({ old_addrs: [1] }, list), configError('old_addrs'));
  assert.throws(() => readOption({ mode: 'fast' }, mode), configError('mode'));
  assert.throws(() => readOption({}, secret), configError('password'));
});

test('a secret never appears in an error message', () => {
  const errors: Error[] = [];
  const grab = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      errors.push(e as Error);
    }
  };
  grab(() => readOption({ password: ['hunter2-secret'] }, secret));
  grab(() => readOption({ password: 'hunter2-secret' }, { ...secret, type: 'int' }));
  grab(() => parseEseriesConfig({ netapp_server_hostname: 'h', netapp_login: 'l', netapp_password: 'pw-secret-1', netapp_controller_ips: '10.0.0.1', chap_password: 'short-pw' }, 'be'));
  grab(() => parseFlashSystemConfig({ san_ip: '10.0.0.9', san_password: 'pw-secret-1', san_private_key: 'not a key text pw-secret-1 BEGIN' }));
  assert.equal(errors.length, 4);
  for (const e of errors) {
    assert.ok(e instanceof InvalidConfigError, String(e));
    assert.doesNotMatch(e.message, /hunter2|pw-secret|short-pw/);
  }
});

test('the file driver accepts the boolean and number strings the other drivers accept', () => {
  const c = parseFileDriverConfig({ use_reflink: 'false', multiattach: 'true', max_over_subscription_ratio: '2.5', reserved_percentage: '5' }, { stateDir: '/var/lib/brick' });
  assert.equal(c.use_reflink, false);
  assert.equal(c.multiattach, true);
  assert.equal(c.max_over_subscription_ratio, 2.5);
  assert.equal(c.reserved_percentage, 5);
  assert.equal(c.pool_path, '/var/lib/brick/volumes');
  assert.equal(parseFileDriverConfig({ multiattach: 'yes' }, { stateDir: '/s' }).multiattach, true);
  assert.throws(() => parseFileDriverConfig({ multiattach: 'perhaps' }, { stateDir: '/s' }), configError('multiattach'));
  assert.throws(() => parseFileDriverConfig({ pool_path: 'relative' }, { stateDir: '/s' }), configError('pool_path'));
  assert.equal(parseLvmConfig({ use_multipath_for_image_xfer: 'true', lvm_copy_chunk_mib: '64' }).copyChunkMiB, 64);
});

test('every driver declares its options: unique names, help, secrets marked', () => {
  const lists: [string, readonly DriverOption[]][] = [['file', FILE_OPTIONS], ['lvm', LVM_OPTIONS], ['ibm_flashsystem', FLASHSYSTEM_OPTIONS], ['netapp_eseries', ESERIES_OPTIONS], ['target', TARGET_OPTIONS]];
  for (const [driver, options] of lists) {
    const names = options.map((o) => o.name);
    assert.equal(new Set(names).size, names.length, `${driver}: option names are unique`);
    for (const o of options) assert.ok(o.help.length > 0, `${driver}.${o.name} has help`);
  }
  const secrets = [...FLASHSYSTEM_OPTIONS, ...ESERIES_OPTIONS].filter((o) => o.secret).map((o) => o.name).sort();
  assert.deepEqual(secrets, ['chap_password', 'netapp_password', 'netapp_sa_password', 'san_password', 'san_private_key', 'san_private_key_passphrase']);
});

test('renderOptionsTable makes the README table: name, type, default, description, secrets marked', () => {
  const md = renderOptionsTable([port, list, mode, secret, defineOption({ name: 'path', type: 'string', defaultText: '`<state dir>/volumes`', help: 'a | b' })]);
  assert.deepEqual(md.trimEnd().split('\n'), [
    '| option | type | default | description |',
    '|---|---|---|---|',
    '| `port` | int (1..65535) | `22` | p |',
    '| `addrs` (`old_addrs`) | list |  | l |',
    '| `mode` | enum: `auto`, `host` | `auto` | m |',
    '| `password` | string | (required) | **secret**. s |',
    '| `path` | string | `<state dir>/volumes` | a \\| b |',
  ]);
});
