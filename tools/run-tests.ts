/**
 * The whole test suite, as `npm test` runs it (after lint and type-check/build):
 *
 * 1. the unit tier, `dist/test/unit` (`npm run test:unit`: no root, no devices);
 * 2. the host tier, `dist/test/host` (`npm run test:host`: root and loop devices);
 * 3. the lab tier, the lab suite (`dist/test/lab/*.test.js` inside the QEMU lab VM, one node process), when
 *    the lab's host packages are present. `BRICK_LAB=skip` skips it, `BRICK_LAB=required` (set by
 *    `.ci/run`) makes a missing lab or a VM that does not boot a failure.
 *
 * It ends with one plain line `tests: N passed, N failed` summing the three tiers, and exits non-zero
 * when anything failed. When the lab VM's kernel itself crashes (an oops on the guest console),
 * the crash is printed and the lab suite runs once more in a fresh VM; only that run counts, and
 * a second crash is a failure.
 */
import { spawn } from 'node:child_process';
import { labAvailable, runLabTests } from './lab/runner.js';

function summary(text: string): { pass: number; fail: number } {
  const grab = (label: string): number => {
    const m = [...text.matchAll(new RegExp(`^(?:ℹ|#) ${label} (\\d+)\\s*$`, 'gm'))];
    return m.length ? Number(m.at(-1)![1]) : 0;
  };
  return { pass: grab('pass'), fail: grab('fail') + grab('cancelled') };
}

/** Run `node --test` over `dir`, streaming its report, and count its passes and failures. */
async function runNodeTests(dir: string): Promise<{ code: number; pass: number; fail: number }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--test', '--test-reporter=spec', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      process.stdout.write(d);
    });
    child.on('close', (code) => resolve({ code: code ?? 1, ...summary(out) }));
  });
}

const mode = (process.env.BRICK_LAB ?? 'auto').toLowerCase();
let pass = 0;
let fail = 0;
let failed = false;

for (const [tier, dir] of [
  ['unit tests (no root, no devices)', 'dist/test/unit'],
  ['host tests (root, loop devices)', 'dist/test/host'],
] as const) {
  process.stdout.write(`== ${tier}\n`);
  const run = await runNodeTests(dir);
  pass += run.pass;
  fail += run.fail;
  if (run.code !== 0) failed = true;
}

if (mode === 'skip') {
  process.stdout.write('== lab suite skipped (BRICK_LAB=skip)\n');
} else {
  const avail = labAvailable();
  if (!avail.ok) {
    process.stdout.write(`== lab suite ${mode === 'required' ? 'REQUIRED but unavailable' : 'skipped'}: ${avail.problems.join('; ')}\n`);
    if (mode === 'required') {
      failed = true;
      fail += 1;
    }
  } else {
    process.stdout.write('== lab suite (QEMU VM)\n');
    const runLab = (): ReturnType<typeof runLabTests> =>
      runLabTests(undefined, { stream: true, onBooted: (ms: number) => process.stdout.write(`lab VM booted in ${(ms / 1000).toFixed(1)} s\n`) } as Parameters<typeof runLabTests>[1]);
    let lab = await runLab();
    if (lab.kernelOops) {
      // The guest's own kernel crashed (seen once, in iscsi_tcp's connection cleanup after a
      // refused CHAP login). The crash is reported in full; the suite then runs once more in a
      // fresh VM, and a second crash fails the run.
      process.stdout.write(`lab VM failure: ${lab.failure ?? 'the guest kernel crashed'}\n${lab.consoleTail}\n`);
      process.stdout.write(`== lab suite again in a fresh VM: the guest kernel crashed (${lab.kernelOops})\n`);
      lab = await runLab();
    }
    if (lab.failure) process.stdout.write(`lab VM failure: ${lab.failure}\n${lab.consoleTail}\n`);
    pass += lab.pass ?? 0;
    fail += lab.fail ?? (lab.exitCode === 0 ? 0 : 1);
    if (lab.exitCode !== 0 || lab.failure) failed = true;
    process.stdout.write(`lab suite: exit ${lab.exitCode}, boot ${lab.bootMs === undefined ? '?' : (lab.bootMs / 1000).toFixed(1)} s, total ${(lab.totalMs / 1000).toFixed(1)} s\n`);
  }
}

if (failed && fail === 0) fail = 1;
process.stdout.write(`\ntests: ${pass} passed, ${fail} failed\n`);
process.exitCode = failed ? 1 : 0;
