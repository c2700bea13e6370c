import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setProcessNice } from '../../../src/host/priority.js';
import { HostIoError, InvalidInputError } from '../../../src/errors.js';

const priorityModule = fileURLToPath(new URL('../../../src/host/priority.js', import.meta.url));

/** Run `body` in a fresh node process with worker threads alive, and return what it printed as JSON. */
function inChild(body: string): unknown {
  const script = `
    import { readdirSync, readFileSync } from 'node:fs';
    import { Worker } from 'node:worker_threads';
    import { setProcessNice } from ${JSON.stringify(priorityModule)};
    const nices = () => readdirSync('/proc/self/task').map((t) => Number(readFileSync('/proc/self/task/' + t + '/stat', 'utf8').split(') ')[1].split(' ')[16]));
    const w = new Worker('setInterval(() => {}, 1000)', { eval: true });
    await new Promise((r) => w.once('online', r));
    ${body}
    await w.terminate();
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('setProcessNice sets every thread, not only the main one, and threads made afterwards inherit it', () => {
  const out = inChild(`
    const before = nices();
    const result = setProcessNice(7);
    const after = nices();
    const late = new Worker('setInterval(() => {}, 1000)', { eval: true });
    await new Promise((r) => late.once('online', r));
    const withLate = nices();
    await late.terminate();
    console.log(JSON.stringify({ before, result, after, withLate }));
  `) as { before: number[]; result: { previous: number; threads: number }; after: number[]; withLate: number[] };
  assert.ok(out.before.length >= 3, `a node process with a worker has several threads: ${out.before.length}`);
  assert.ok(out.before.every((n) => n === out.before[0]) && out.before[0] !== 7, 'the threads started at the inherited value');
  assert.equal(out.result.previous, out.before[0]);
  assert.equal(out.result.threads, out.after.length);
  assert.deepEqual([...new Set(out.after)], [7], 'every thread, the worker and the pool included');
  assert.ok(out.withLate.length > out.after.length);
  assert.deepEqual([...new Set(out.withLate)], [7], 'a thread made later inherits the value');
});

test('setProcessNice refuses a value Linux does not accept before changing anything, naming the field', () => {
  for (const bad of [-21, 20, 1.5, Number.NaN]) {
    assert.throws(() => setProcessNice(bad, 'process_nice'), (e: unknown) => e instanceof InvalidInputError && e.field === 'process_nice' && /-20 to 19/.test(e.message), String(bad));
  }
});

test('setProcessNice without CAP_SYS_NICE: lowering the value is a HostIoError naming the field', () => {
  // As root, the child first becomes nobody, which has no CAP_SYS_NICE.
  const out = inChild(`
    if (process.getuid() === 0) process.setuid(65534);
    try { setProcessNice(-5, 'process_nice'); console.log(JSON.stringify({ ok: true })); }
    catch (e) { console.log(JSON.stringify({ name: e.constructor.name, field: e.field, message: e.message })); }
  `) as { name: string; field: string; message: string };
  assert.equal(out.name, HostIoError.name);
  assert.equal(out.field, 'process_nice');
  assert.match(out.message, /CAP_SYS_NICE/);
});
