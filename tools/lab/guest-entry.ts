/**
 * Guest-side entry of the lab runner: imports the given modules one after another in THIS node
 * process. For test files, node:test's root harness then runs every test they registered, in
 * order, and reports (spec or TAP, per `--test-reporter`), setting a failing exit status when
 * any test fails. One process for the whole suite matters in the lab: a node start costs about
 * a second under TCG, and `node --test` would fork one per file.
 *
 * Open handles: outside `node --test`, node:test prints its summary when the process is about
 * to exit (`beforeExit`), so a test that leaves a timer, socket or child process referenced
 * would hang the guest until the run's timeout, with no summary. With `--guard` (what the lab
 * runner passes for test suites), a last test is registered after every file has been
 * imported; root tests run in order, so it runs after all the others. It arms an unreferenced
 * timer: when the process has not ended on its own `LAB_EXIT_GRACE_MS` (default 20 000) later,
 * the open handles are listed on stderr, the summary is forced out and the process exits with
 * the harness's status.
 *
 * With `--suites` (also passed for test suites) each file is imported inside its own
 * `describe(<file name>)`, so a file's top-level `before`/`after` hooks apply to that file only
 * (at the root they would wrap every file's tests, and one failing hook would fail them all).
 * Benchmarks are imported one after another with neither flag.
 *
 * Usage (inside the VM): `node [--test-reporter=spec] guest-entry.js [--guard] [--suites] FILE...`
 *
 * @module
 */
import { basename, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const flags = new Set(args.filter((a) => a.startsWith('--')));
const guard = flags.has('--guard');
const suites = flags.has('--suites');
const files = args.filter((a) => !a.startsWith('--'));
if (files.length === 0) {
  process.stderr.write('guest-entry: no files given\n');
  process.exit(2);
}
if (suites) {
  // One suite per file: a file's top-level before/after hooks then belong to that file's suite,
  // not to the root (where they would run around EVERY file's tests, and one failing hook
  // would fail them all), and the report is grouped by file.
  const { describe } = await import('node:test');
  for (const f of files) {
    describe(basename(f), async () => {
      await import(pathToFileURL(resolve(f)).href);
    });
  }
} else {
  for (const f of files) await import(pathToFileURL(resolve(f)).href);
}
if (guard) {
  const { test } = await import('node:test');
  test('lab: every test file has run', () => {
    const grace = Number(process.env.LAB_EXIT_GRACE_MS ?? 20_000);
    const timer = setTimeout(() => {
      const open = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
      process.stderr.write(`guest-entry: the tests finished ${grace} ms ago but the process is still held open by: ${open.join(', ')}; forcing the summary and exiting\n`);
      process.emit('beforeExit', 0);
      setTimeout(() => process.exit(process.exitCode ?? 1), 2_000);
    }, grace);
    timer.unref();
  });
}
