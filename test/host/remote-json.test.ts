/**
 * Host integration: the remote-attach walk-through WITHOUT shared persistence, run through the
 * built `brick` CLI exactly as the README shows it. The "consumer" and the "controller" exchange
 * JSON documents (connector properties, connection info, device info); here both are this host,
 * and the file backend's export is a real loop device.
 *
 *   consumer$   brick connector properties --json > host.json
 *   controller$ brick volume create --size 1 --json
 *   controller$ brick volume connect VOL --connector host.json > conn.json
 *   consumer$   brick connector connect --connection conn.json > dev.json
 *   consumer$   ... use the device ...
 *   consumer$   brick connector disconnect --connection conn.json --device dev.json
 *   controller$ brick volume disconnect VOL --connection CID
 *   controller$ brick volume delete VOL
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile, open, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listLoops } from '../../src/host/loop.js';
import { createHostContext } from '../../src/host/context.js';
import { blockTag, pattern, writeAt } from '../helpers/device-io.js';

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
let dir: string;
let env: NodeJS.ProcessEnv;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `brick ARGS` with the walk-through's private data directory. */
function brick(...args: string[]): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(process.execPath, [CLI, ...args], { cwd: dir, env, timeout: 60_000, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolveRun({ code, stdout, stderr });
    });
  });
}

/** Run and require success; returns stdout. */
async function ok(...args: string[]): Promise<string> {
  const r = await brick(...args);
  assert.equal(r.code, 0, `brick ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function loopsUnder(path: string): Promise<string[]> {
  return (await listLoops(createHostContext())).filter((l) => l.backFile.startsWith(path)).map((l) => l.name);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'brick-remote-json-'));
  env = { ...process.env, XDG_DATA_HOME: join(dir, 'data') };
  delete env.BRICK_CONFIG;
});

after(async () => {
  for (const l of await loopsUnder(dir)) await createHostContext().executor.run(['losetup', '-d', l], { checkExitCode: false });
  await rm(dir, { recursive: true, force: true });
});

test('JSON walk-through: connector properties -> volume connect -> connector connect -> I/O -> connector disconnect -> volume disconnect -> delete', async () => {
  const pool = join(dir, 'data', 'brick', 'volumes');

  // consumer: what this host is
  const hostJson = await ok('connector', 'properties', '--json');
  await writeFile(join(dir, 'host.json'), hostJson);
  const host = JSON.parse(hostJson) as Record<string, unknown>;
  assert.equal(typeof host.host, 'string');
  assert.equal(host.os_type, 'linux');
  assert.equal(typeof host.multipath, 'boolean');

  // controller: a volume, exported and mapped for that host
  const vol = JSON.parse(await ok('volume', 'create', '--size', '1', '--json')) as { id: string; status: string; size: number };
  assert.equal(vol.status, 'available');
  assert.equal(vol.size, 1);
  const connJson = await ok('volume', 'connect', vol.id, '--connector', 'host.json');
  await writeFile(join(dir, 'conn.json'), connJson);
  const conn = JSON.parse(connJson) as { connection_id: string; volume_id: string; driver_volume_type: string; data: { device_path: string } };
  assert.equal(conn.volume_id, vol.id);
  assert.equal(conn.driver_volume_type, 'local');
  assert.match(conn.data.device_path, /^\/dev\/loop\d+$/);
  assert.deepEqual(await loopsUnder(join(pool, `volume-${vol.id}.img`)), [conn.data.device_path], 'the export is a loop device over the volume file');

  const listed = JSON.parse(await ok('--json', 'connection', 'list', '--volume', vol.id)) as { id: string; attached_host: string; status: string }[];
  assert.deepEqual(listed.map((c) => c.id), [conn.connection_id]);
  assert.equal(listed[0]!.attached_host, host.host, 'the connection is recorded for the consumer host');
  const shown = JSON.parse(await ok('--json', 'volume', 'show', vol.id)) as { status: string; connections: string[] };
  assert.equal(shown.status, 'in-use');

  // The controller refuses to delete a connected volume.
  const refused = await brick('--json', 'volume', 'delete', vol.id);
  assert.equal(refused.code, 4, `delete of a connected volume must fail with the invalid-state status: ${refused.stdout}`);
  assert.equal((JSON.parse(refused.stdout) as { code: string }).code, 'INVALID_STATE');

  // consumer: attach by the connection info
  const devJson = await ok('connector', 'connect', '--connection', 'conn.json');
  await writeFile(join(dir, 'dev.json'), devJson);
  const dev = JSON.parse(devJson) as { type: string; path: string };
  assert.deepEqual(dev, { type: 'block', path: conn.data.device_path });

  // consumer: data through the device lands in the controller's volume
  await writeAt(dev.path, 0, pattern('remote-json'));
  await writeAt(dev.path, 1023, pattern('remote-json-end'));
  assert.equal(await blockTag(dev.path, 0), 'remote-json');
  assert.equal(await blockTag(dev.path, 1023), 'remote-json-end');
  const fh = await open(join(pool, `volume-${vol.id}.img`), 'r');
  try {
    const buf = Buffer.alloc(64);
    await fh.read(buf, 0, 64, 1023 * 1024 * 1024);
    assert.match(buf.toString('latin1'), /^brick-test remote-json-end /, 'the data is in the volume file');
  } finally {
    await fh.close();
  }

  // consumer: detach; controller: terminate the connection, then delete
  const detached = JSON.parse(await ok('--json', 'connector', 'disconnect', '--connection', 'conn.json', '--device', 'dev.json')) as { disconnected: boolean; path: string };
  assert.deepEqual(detached, { disconnected: true, path: dev.path });
  const after1 = JSON.parse(await ok('--json', 'volume', 'disconnect', vol.id, '--connection', conn.connection_id)) as { status: string; connections: string[] };
  assert.equal(after1.status, 'available');
  assert.deepEqual(after1.connections, []);
  assert.deepEqual(await loopsUnder(pool), [], 'disconnecting the last connection removes the export');
  const again = await brick('--json', 'volume', 'disconnect', vol.id, '--connection', conn.connection_id);
  assert.equal(again.code, 2, 'a connection that is gone is reported as bad input');
  assert.equal((JSON.parse(again.stdout) as { field: string }).field, 'connection');

  assert.deepEqual(JSON.parse(await ok('--json', 'volume', 'delete', vol.id)), { id: vol.id, status: 'deleted' });

  // nothing left: no loop device over the pool, no volume file, no records
  assert.deepEqual(await loopsUnder(dir), []);
  assert.deepEqual((await readdir(pool)).filter((f) => f.endsWith('.img')), []);
  assert.deepEqual(JSON.parse(await ok('--json', 'volume', 'list')), []);
  assert.deepEqual(JSON.parse(await ok('--json', 'connection', 'list')), []);
});

test('bad documents are refused with the field named and a bad-input exit status', async () => {
  const missing = await brick('--json', 'volume', 'connect', '00000000-0000-4000-8000-000000000000', '--connector', 'nope.json');
  assert.equal(missing.code, 2);
  assert.equal((JSON.parse(missing.stdout) as { field: string }).field, 'connector');
  await writeFile(join(dir, 'bad.json'), '[1,2]');
  const notObject = await brick('--json', 'connector', 'connect', '--connection', 'bad.json');
  assert.equal(notObject.code, 2);
  assert.equal((JSON.parse(notObject.stdout) as { field: string }).field, 'connection');
  await writeFile(join(dir, 'nodev.json'), JSON.stringify({ driver_volume_type: 'local', data: { device_path: join(dir, 'no-such-device') } }));
  const noDevice = await brick('--json', 'connector', 'connect', '--connection', 'nodev.json');
  assert.notEqual(noDevice.code, 0, 'a device that does not exist is not attached');
  assert.deepEqual(await loopsUnder(dir), []);
});
