/**
 * The CSI plugin through real gRPC on a unix socket, over the library's `fake` driver (memory
 * store, no root, nothing run): request validation before anything runs, CreateVolume's
 * idempotency and capacity rules, the remote-connection publish flow, ABORTED while another
 * call holds the volume, ListVolumes pagination, and no secret in the logs.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { fakeBackend, fakeConnector, consumer } from '../library/fake-driver.js';
import { createCapturingLogger } from '../../../src/log.js';
import { startCsiServer } from '../../../src/csi/server.js';
import { csiClientConstructor } from '../../../src/csi/proto.js';
import { NO_METRICS, createMetrics, parseListenAddress, serveMetrics } from '../../../src/csi/metrics.js';
import type { Plugin } from '../../../src/csi/plugin.js';

const GiB = 1024 ** 3;
const mountCap = { mount: { fs_type: 'ext4', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

type Call = (method: string, req: Record<string, unknown>) => Promise<Record<string, unknown>>;

async function startPlugin(t: TestContext) {
  const { ctx, backend, driver } = await fakeBackend(t);
  const dir = await mkdtemp(join(tmpdir(), 'brick-csi-unit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const log = createCapturingLogger('debug');
  const config = { source: 'test', dataDir: dir, persistence: undefined, rootHelper: [], lockPath: join(dir, 'locks'), myIp: undefined, host: undefined, defaultBackend: backend.id, processNice: undefined, backends: [{ volume_backend_name: backend.id, volume_driver: 'fake' }] };
  const plugin: Plugin = {
    rt: { config, context: ctx, store: ctx.store, logger: log.logger, backend: async () => backend, allBackends: async () => [backend] },
    driverName: 'csi.brick.example.org',
    version: '0.0.0-test',
    nodeId: 'node-a',
    mode: 'all',
    maxVolumesPerNode: 0,
    metrics: NO_METRICS,
  };
  const server = await startCsiServer(plugin, `unix://${join(dir, 'csi.sock')}`, log.logger);
  const clients = Object.fromEntries(['Identity', 'Controller', 'Node'].map((s) => [s, new (csiClientConstructor(s as 'Node'))(`unix://${server.socket}`, grpc.credentials.createInsecure())])) as Record<string, grpc.Client>;
  t.after(async () => {
    for (const c of Object.values(clients)) c.close();
    await server.close(1000);
  });
  const call = (service: string): Call => (method, req) =>
    new Promise((resolve, reject) => {
      const client = clients[service] as unknown as Record<string, (r: unknown, cb: (e: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void>;
      client[method]!.call(client, req, (err, res) => (err ? reject(err) : resolve(res)));
    });
  return { ctx, backend, driver, log, plugin, controller: call('Controller'), node: call('Node'), identity: call('Identity') };
}

async function rejectsWith(p: Promise<unknown>, code: grpc.status, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: grpc.ServiceError) => {
    assert.equal(err.code, code, `${grpc.status[err.code]}: ${err.details}`);
    if (message) assert.match(err.details, message);
    return true;
  });
}

test('identity: plugin info and capabilities', async (t) => {
  const { identity } = await startPlugin(t);
  const info = await identity('GetPluginInfo', {});
  assert.equal(info.name, 'csi.brick.example.org');
  const caps = (await identity('GetPluginCapabilities', {})).capabilities as Record<string, { type: string }>[];
  assert.deepEqual(caps.map((c) => (c.service ?? c.volume_expansion)!.type), ['CONTROLLER_SERVICE', 'ONLINE', 'OFFLINE']);
  assert.deepEqual(await identity('Probe', {}), { ready: { value: true } });
});

test('required fields are INVALID_ARGUMENT before anything reaches the driver', async (t) => {
  const { controller, node, driver } = await startPlugin(t);
  const before = driver.calls.length;
  await rejectsWith(controller('CreateVolume', { volume_capabilities: [mountCap] }), grpc.status.INVALID_ARGUMENT, /name/);
  await rejectsWith(controller('CreateVolume', { name: 'v' }), grpc.status.INVALID_ARGUMENT, /volume_capabilities/);
  await rejectsWith(controller('CreateVolume', { name: 'v', volume_capabilities: [mountCap], parameters: { color: 'red' } }), grpc.status.INVALID_ARGUMENT, /color/);
  await rejectsWith(controller('DeleteVolume', {}), grpc.status.INVALID_ARGUMENT, /volume_id/);
  await rejectsWith(controller('ControllerPublishVolume', { volume_id: 'x', volume_capability: mountCap }), grpc.status.INVALID_ARGUMENT, /node_id/);
  await rejectsWith(node('NodeStageVolume', { volume_id: 'x', volume_capability: mountCap }), grpc.status.INVALID_ARGUMENT, /staging_target_path/);
  await rejectsWith(node('NodePublishVolume', { volume_id: 'x', target_path: '/t', staging_target_path: '/s' }), grpc.status.INVALID_ARGUMENT, /volume_capability/);
  await rejectsWith(node('NodeGetVolumeStats', { volume_id: 'x' }), grpc.status.INVALID_ARGUMENT, /volume_path/);
  assert.equal(driver.calls.length, before, 'nothing reached the driver');
});

test('CreateVolume: whole GiB in bytes, the same name twice is the same volume, incompatible is ALREADY_EXISTS', async (t) => {
  const { controller } = await startPlugin(t);
  const req = { name: 'pvc-1', volume_capabilities: [mountCap], capacity_range: { required_bytes: 100 * 1024 * 1024 } };
  const a = (await controller('CreateVolume', req)).volume as { volume_id: string; capacity_bytes: number };
  assert.equal(Number(a.capacity_bytes), GiB);
  const b = (await controller('CreateVolume', req)).volume as { volume_id: string };
  assert.equal(b.volume_id, a.volume_id);
  await rejectsWith(controller('CreateVolume', { ...req, capacity_range: { required_bytes: 3 * GiB } }), grpc.status.ALREADY_EXISTS);
  await rejectsWith(controller('CreateVolume', { ...req, name: 'pvc-2', capacity_range: { required_bytes: GiB / 2, limit_bytes: GiB / 2 } }), grpc.status.OUT_OF_RANGE);
  await controller('DeleteVolume', { volume_id: a.volume_id });
  await controller('DeleteVolume', { volume_id: a.volume_id });
});

test('publish: unknown node NOT_FOUND; the node\'s stored connector makes a connection, named in the publish context', async (t) => {
  const { controller, ctx } = await startPlugin(t);
  const vol = (await controller('CreateVolume', { name: 'pub', volume_capabilities: [mountCap] })).volume as { volume_id: string };
  const pub = { volume_id: vol.volume_id, node_id: 'node-b', volume_capability: mountCap };
  await rejectsWith(controller('ControllerPublishVolume', pub), grpc.status.NOT_FOUND, /node-b/);
  await ctx.store.setKeyValue({ key: 'node-b', value: JSON.stringify(consumer('host-b')) });
  const first = (await controller('ControllerPublishVolume', pub)).publish_context as Record<string, string>;
  assert.ok(first.connection_id);
  assert.deepEqual((await controller('ControllerPublishVolume', pub)).publish_context, first, 'publishing twice is idempotent');
  await rejectsWith(controller('ControllerPublishVolume', { ...pub, readonly: true }), grpc.status.ALREADY_EXISTS);
  const got = (await controller('ControllerGetVolume', { volume_id: vol.volume_id })).status as { published_node_ids: string[] };
  assert.deepEqual(got.published_node_ids, ['node-b']);
  await rejectsWith(controller('DeleteVolume', { volume_id: vol.volume_id }), grpc.status.FAILED_PRECONDITION);
  await controller('ControllerUnpublishVolume', { volume_id: vol.volume_id, node_id: 'node-b' });
  await controller('ControllerUnpublishVolume', { volume_id: vol.volume_id, node_id: 'node-b' });
  assert.equal((await ctx.store.getConnections()).length, 0);
  await rejectsWith(controller('ControllerPublishVolume', { ...pub, volume_id: 'no-such-volume' }), grpc.status.NOT_FOUND);
});

test('a call on a volume another call holds is ABORTED; other volumes go on', async (t) => {
  const { controller, ctx } = await startPlugin(t);
  const a = (await controller('CreateVolume', { name: 'busy', volume_capabilities: [mountCap] })).volume as { volume_id: string };
  const b = (await controller('CreateVolume', { name: 'free', volume_capabilities: [mountCap] })).volume as { volume_id: string };
  let release!: () => void;
  const held = ctx.locks.withLock(`csi-${a.volume_id}`, () => new Promise<void>((r) => (release = r)));
  await new Promise((r) => setTimeout(r, 20));
  await rejectsWith(controller('DeleteVolume', { volume_id: a.volume_id }), grpc.status.ABORTED);
  await controller('DeleteVolume', { volume_id: b.volume_id });
  release();
  await held;
  await controller('DeleteVolume', { volume_id: a.volume_id });
});

test('the volume lock holds across processes: a call while another process holds it is ABORTED', { timeout: 60_000 }, async (t) => {
  const { controller, ctx } = await startPlugin(t);
  const a = (await controller('CreateVolume', { name: 'other-process', volume_capabilities: [mountCap] })).volume as { volume_id: string };
  const lockModule = new URL('../../../src/host/lock.js', import.meta.url).href;
  const holder = spawn(process.execPath, ['--input-type=module', '-e', `
    const { LockManager } = await import(${JSON.stringify(lockModule)});
    await new LockManager(${JSON.stringify(ctx.locks.lockPath)}).withLock(${JSON.stringify(`csi-${a.volume_id}`)}, async () => {
      process.stdout.write('held\\n');
      await new Promise(() => undefined);
    });`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => holder.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    holder.stdout!.once('data', () => resolve());
    void exited.then(() => reject(new Error('the lock holder exited before taking the lock')));
  });
  try {
    await rejectsWith(controller('DeleteVolume', { volume_id: a.volume_id }), grpc.status.ABORTED, /in progress/);
  } finally {
    // The holder ends without releasing: the kernel drops its flock with the process.
    holder.kill('SIGKILL');
    await exited;
  }
  await controller('DeleteVolume', { volume_id: a.volume_id });
});

test('metrics: RPC counts by method and code, in flight, attached volumes, as Prometheus text', async () => {
  const { metrics, registry } = createMetrics(async () => 3);
  metrics.inFlight(1);
  metrics.rpc('CreateVolume', 'OK', 0.01);
  metrics.attach('attach', 'LOCAL', 0.2);
  const server = await serveMetrics(registry, '127.0.0.1:0');
  try {
    const port = (server.address() as AddressInfo).port;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(text, /brick_csi_rpc_total\{method="CreateVolume",code="OK"\} 1/);
    assert.match(text, /brick_csi_operations_in_flight 1/);
    assert.match(text, /brick_csi_volumes_attached 3/);
    assert.match(text, /brick_csi_attach_duration_seconds_count\{operation="attach",protocol="LOCAL"\} 1/);
    assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
  } finally {
    await new Promise((r) => server.close(r));
  }
  assert.throws(() => parseListenAddress('nonsense'), /metrics_address/);
  assert.deepEqual(parseListenAddress('[::1]:9808'), { host: '::1', port: 9808 });
  assert.deepEqual(parseListenAddress(':9808'), { host: '0.0.0.0', port: 9808 });
});

test('ListVolumes pages with next_token; a foreign token is ABORTED', async (t) => {
  const { controller } = await startPlugin(t);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(((await controller('CreateVolume', { name: `list-${i}`, volume_capabilities: [mountCap] })).volume as { volume_id: string }).volume_id);
  const seen: string[] = [];
  let token = '';
  let pages = 0;
  do {
    const page = await controller('ListVolumes', { max_entries: 2, starting_token: token });
    seen.push(...(page.entries as { volume: { volume_id: string } }[]).map((e) => e.volume.volume_id));
    token = page.next_token as string;
    pages++;
  } while (token !== '');
  assert.equal(pages, 3);
  assert.deepEqual([...seen].sort(), [...ids].sort());
  await rejectsWith(controller('ListVolumes', { starting_token: 'nope' }), grpc.status.ABORTED);
});

test('secrets never reach the log, even at debug level', async (t) => {
  const { controller, log } = await startPlugin(t);
  const secret = 'hunter2-do-not-log';
  await controller('CreateVolume', { name: 'sec', volume_capabilities: [mountCap], secrets: { password: secret } });
  await rejectsWith(controller('DeleteVolume', { secrets: { token: secret } }), grpc.status.INVALID_ARGUMENT);
  assert.ok(log.text().includes('CreateVolume'), 'calls are logged');
  assert.ok(!log.text().includes(secret));
});

test('NodeGetVolumeStats: volume_condition is the connector\'s condition check of the attached volume', async (t) => {
  const { controller, node, ctx, backend } = await startPlugin(t);
  const created = (await controller('CreateVolume', { name: 'cond', volume_capabilities: [mountCap] })).volume as { volume_id: string };
  const vol = await backend.getVolume(created.volume_id);
  const conn = await vol.connect(consumer('node-a'), { attachedHost: 'node-a' });
  await conn.attach();
  // The volume's file system "mounted" at /pub/cond under the host root.
  await mkdir(join(ctx.hostRoot, 'pub', 'cond'), { recursive: true });
  await mkdir(join(ctx.hostRoot, 'proc'), { recursive: true });
  await writeFile(join(ctx.hostRoot, 'proc', 'mounts'), `${conn.path} /pub/cond ext4 rw,relatime 0 0\n`);
  const stats = async () => (await node('NodeGetVolumeStats', { volume_id: created.volume_id, volume_path: '/pub/cond' })).volume_condition as { abnormal: boolean; message: string };
  assert.deepEqual(await stats(), { abnormal: false, message: `volume is attached at ${conn.path}: ok` });
  fakeConnector.condition = { abnormal: true, message: 'sdc (10.0.0.2:3260) failed [dm F]', paths: [{ name: 'sdc', state: 'failed', portal: '10.0.0.2:3260' }] };
  try {
    assert.deepEqual(await stats(), { abnormal: true, message: 'sdc (10.0.0.2:3260) failed [dm F]' });
  } finally {
    fakeConnector.condition = { abnormal: false, message: 'ok', paths: [] };
  }
  await writeFile(join(ctx.hostRoot, 'proc', 'mounts'), '');
  assert.deepEqual(await stats(), { abnormal: true, message: '/pub/cond is not mounted' });
  await vol.detach();
});
