/**
 * Start-up (issue 18, part 4): what a process loads. `brick --help` loads no driver, store,
 * connector, simulator, gRPC or client library; importing `brick` loads no driver; creating a
 * backend loads its own driver's module only; every built-in driver and alias still resolves.
 *
 * Each case runs in a child node process with a preload that records every module loaded: the
 * URLs the ESM loader loads (through a `module.register` hook) and, at exit, the CommonJS
 * module cache (packages loaded with `require`, e.g. pino and cli-table3).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = join(DIST, 'src', 'cli', 'main.js');

const HOOKS = `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(process.env.BRICK_LOAD_LOG, url + '\\n');
  return next(url, context);
}
`;
const PRELOAD = `import { register, createRequire } from 'node:module';
import { appendFileSync } from 'node:fs';
register(new URL('./hooks.mjs', import.meta.url));
const cache = createRequire(import.meta.url).cache;
process.on('exit', () => appendFileSync(process.env.BRICK_LOAD_LOG, Object.keys(cache).join('\\n') + '\\n'));
`;

/** Packages and source folders a plain `brick --help` must not load. */
const HEAVY = [/node_modules\/ssh2\//, /node_modules\/undici\//, /node_modules\/pg\//, /node_modules\/@grpc\//, /node_modules\/prom-client\//, /node_modules\/better-sqlite3\//, /node_modules\/pino\//, /node_modules\/zod\//, /node_modules\/yaml\//, /\/sims\//, /\/src\/drivers\//, /\/src\/persistence\//, /\/src\/library\//, /\/src\/initiator\//, /\/src\/target\//];

let dir: string;
let run = 0;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'brick-startup-'));
  writeFileSync(join(dir, 'hooks.mjs'), HOOKS);
  writeFileSync(join(dir, 'preload.mjs'), PRELOAD);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Run node with `args` under the recording preload; the modules it loaded and its stdout. */
function loaded(args: string[]): Promise<{ modules: string[]; stdout: string }> {
  const log = join(dir, `loads-${run++}.txt`);
  writeFileSync(log, '');
  return new Promise((resolvePromise, reject) => {
    execFile(process.execPath, ['--import', pathToFileURL(join(dir, 'preload.mjs')).href, ...args], { env: { ...process.env, BRICK_LOAD_LOG: log }, cwd: dir }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${err.message}\n${stderr}`));
      resolvePromise({ modules: readFileSync(log, 'utf8').split('\n').filter(Boolean), stdout });
    });
  });
}

function offending(modules: string[], patterns: RegExp[]): string[] {
  return modules.filter((m) => patterns.some((p) => p.test(m.replaceAll('\\', '/'))));
}

test('brick --help loads no driver, store, library, connector, simulator, gRPC, ssh2, undici, pg or pino', async () => {
  const { modules, stdout } = await loaded([CLI, '--help']);
  assert.match(stdout, /Usage: brick/);
  assert.ok(modules.some((m) => m.endsWith('/src/cli/main.js')), 'the recorder saw the entry module');
  assert.ok(modules.some((m) => m.includes('node_modules/commander/')), 'the recorder saw commander');
  assert.deepEqual(offending(modules, HEAVY), []);
});

test('brick csi --help and brick sim --help load neither gRPC nor the simulators', async () => {
  for (const args of [['csi', '--help'], ['sim', 'eseries', '--help']]) {
    const { modules } = await loaded([CLI, ...args]);
    assert.deepEqual(offending(modules, HEAVY), [], args.join(' '));
  }
});

test("importing brick loads no driver module, ssh2, undici or pg; a driver's module loads when asked for, alone", async () => {
  const script = `
    const brick = await import(${JSON.stringify(pathToFileURL(join(DIST, 'src', 'index.js')).href)});
    const before = brick.knownDrivers();
    const ctx = brick.setup({ stateDir: process.cwd(), lockPath: process.cwd() + '/locks' });
    // A backend of a driver not loaded yet: the driver is made in ready, so its option errors reject ready.
    const config = { volume_backend_name: 'x', volume_driver: 'LVMVolumeDriver', target_helper: 'nope' };
    const b = new brick.Backend(config, { context: ctx });
    const code = (f) => { try { f(); return 'none'; } catch (e) { return e.code; } };
    const early = code(() => b.driver);
    const late = await b.ready.then(() => 'ready', (e) => e.code + ':' + e.field);
    const known = ctx.backends.has('x');
    const { name } = await brick.loadDriverFactory('cinder.volume.drivers.lvm.LVMVolumeDriver');
    // Loaded now: the constructor makes the driver and throws its option errors, as before.
    const sync = code(() => new brick.Backend(config, { context: ctx }));
    console.log(JSON.stringify({ before, name, early, late, known, sync }));
  `;
  const { modules, stdout } = await loaded(['--input-type=module', '-e', script]);
  const out = JSON.parse(stdout) as { before: string[]; name: string; early: string; late: string; known: boolean; sync: string };
  assert.deepEqual(out.before, ['file', 'ibm_flashsystem', 'lvm', 'netapp_eseries'], 'every built-in driver is known before any is loaded');
  assert.equal(out.name, 'lvm');
  assert.equal(out.early, 'INVALID_STATE', 'backend.driver before ready, while the module loads');
  assert.equal(out.late, 'INVALID_CONFIG:target_helper', 'the option error rejects ready');
  assert.equal(out.known, false, 'a backend whose driver failed is forgotten');
  assert.equal(out.sync, 'INVALID_CONFIG', 'with the module loaded the constructor throws it');
  assert.ok(modules.some((m) => m.includes('/src/drivers/lvm/')), 'the lvm driver was loaded');
  assert.deepEqual(offending(modules, [/\/src\/drivers\/(file|ibm-flashsystem|netapp-eseries)\//, /node_modules\/ssh2\//, /node_modules\/undici\//, /node_modules\/pg\//, /\/sims\//]), []);
});

test('every built-in driver and Cinder alias loads its factory through the registry', async () => {
  const names: Record<string, string> = {
    file: 'file',
    'brick.drivers.file.FileDriver': 'file',
    lvm: 'lvm',
    LVMVolumeDriver: 'lvm',
    ibm_flashsystem: 'ibm_flashsystem',
    'cinder.volume.drivers.ibm.flashsystem_iscsi.FlashSystemISCSIDriver': 'ibm_flashsystem',
    ibm_flashsystem_iscsi: 'ibm_flashsystem',
    netapp_eseries: 'netapp_eseries',
    'cinder.volume.drivers.netapp.eseries.iscsi_driver.NetAppEseriesISCSIDriver': 'netapp_eseries',
    'cinder.volume.drivers.netapp.common.NetAppDriver': 'netapp_eseries',
    eseries: 'netapp_eseries',
  };
  const { loadDriverFactory, driverFactory, resolveDriverName } = await import('../../../src/drivers/registry.js');
  for (const [alias, name] of Object.entries(names)) {
    assert.equal(resolveDriverName(alias), name, alias);
    const loadedFactory = await loadDriverFactory(alias);
    assert.equal(loadedFactory.name, name, alias);
    assert.equal(typeof loadedFactory.factory, 'function', alias);
    assert.equal(driverFactory(alias).factory, loadedFactory.factory, `${alias}: driverFactory finds it once loaded`);
  }
  await assert.rejects(loadDriverFactory('nosuch'), (err: Error & { code?: string; field?: string }) => err.code === 'PROTOCOL_NOT_SUPPORTED' && err.field === 'volume_driver');
});
