/**
 * Guest-side entry of the lab runner: imports the given modules one after another in THIS node
 * process. For test files, node:test's root harness then runs every test they registered and
 * reports (spec or TAP, per `--test-reporter`), setting a failing exit status when any test
 * fails. One process for the whole suite matters in the lab: a node start costs about a second
 * under TCG, and `node --test` would fork one per file.
 *
 * Usage (inside the VM): `node [--test-reporter=spec] guest-entry.js FILE...`
 *
 * @module
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write('guest-entry: no files given\n');
  process.exit(2);
}
for (const f of files) {
  await import(pathToFileURL(resolve(f)).href);
}
