import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../../src/cli/config.js';
import { resolveRootHelper } from '../../../src/cli/runtime.js';
import { InvalidConfigError } from '../../../src/errors.js';

const env = { HOME: '/home/u' };

test('no config: the file backend named default in the user data directory', () => {
  const c = parseConfig('', 'default', env);
  assert.equal(c.dataDir, '/home/u/.local/share/brick');
  assert.deepEqual(c.backends, [{ volume_backend_name: 'default', volume_driver: 'file', pool_path: '/home/u/.local/share/brick/volumes' }]);
  assert.equal(c.defaultBackend, 'default');
  assert.equal(c.lockPath, '/home/u/.local/share/brick/locks');
  assert.equal(c.processNice, undefined, 'the priority is left alone unless configured');
  assert.equal(parseConfig('process_nice: -10\n', 'b.yaml', env).processNice, -10);
});

test('YAML and JSON configs, root helper as string or list', () => {
  const y = parseConfig('root_helper: sudo -n\nbackends:\n  - volume_backend_name: l1\n    volume_driver: lvm\n    volume_group: vg\n', 'b.yaml', env);
  assert.deepEqual(y.rootHelper, ['sudo', '-n']);
  assert.equal(y.backends[0]!.volume_group, 'vg');
  const j = parseConfig('{"root_helper": ["sudo"], "data_dir": "/srv/brick"}', 'b.json', env);
  assert.deepEqual(j.rootHelper, ['sudo']);
  assert.equal(j.backends[0]!.pool_path, '/srv/brick/volumes');
});

test('bad configs name the file and the key', () => {
  const cases: [string, RegExp][] = [
    ['backends:\n  - volume_backend_name: a\n', /b\.yaml: backends\.0\.volume_driver/],
    ['data_dir: relative/dir\n', /data_dir: must be an absolute path/],
    ['nonsense_key: 1\n', /nonsense_key/],
    ['backends: [{volume_backend_name: a, volume_driver: file}, {volume_backend_name: a, volume_driver: file}]', /backends\.1\.volume_backend_name: a is used twice/],
    ['default_backend: zz\n', /default_backend: no backend named zz/],
    ['backends: [\n', /not valid YAML or JSON/],
    ['- a\n- b\n', /top level must be a mapping/],
    ['process_nice: -21\n', /process_nice: /],
    ['process_nice: 2.5\n', /process_nice: /],
    ['process_nice: high\n', /process_nice: /],
  ];
  for (const [text, re] of cases) assert.throws(() => parseConfig(text, 'b.yaml', env), (e: unknown) => e instanceof InvalidConfigError && re.test(e.message), text);
});

test('root helper: flag, then config, then none for root and sudo -n otherwise', () => {
  const c = parseConfig('', 'default', env);
  assert.deepEqual(resolveRootHelper(undefined, c, 0), []);
  assert.deepEqual(resolveRootHelper(undefined, c, 1000), ['sudo', '-n']);
  assert.deepEqual(resolveRootHelper('doas', c, 1000), ['doas']);
  assert.deepEqual(resolveRootHelper(undefined, parseConfig('root_helper: [pfexec]', 'x', env), 1000), ['pfexec']);
});
