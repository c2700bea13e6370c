/**
 * The README's option tables are the drivers' declarations, rendered (issue #14: "the README's
 * option tables come from it"): a declaration changed without regenerating the README fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { README, renderReadmeTables } from '../../../tools/readme-options.js';

test('the README option tables match the drivers\' option declarations', () => {
  const text = readFileSync(README, 'utf8');
  const { changed } = renderReadmeTables(text);
  assert.deepEqual(changed, [], `regenerate with node dist/tools/readme-options.js: ${changed.join(', ')}`);
});

test('a table edited by hand is noticed', () => {
  const text = readFileSync(README, 'utf8');
  const tampered = text.replace('| `volume_group` | string | `cinder-volumes` |', '| `volume_group` | string | `vg0` |');
  assert.notEqual(tampered, text);
  assert.deepEqual(renderReadmeTables(tampered).changed, ['lvm']);
});
