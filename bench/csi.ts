/**
 * What the CSI plugin adds to the node's work (issue #15): NodeStageVolume + NodePublishVolume
 * and NodeUnpublishVolume + NodeUnstageVolume through gRPC against a `brick csi` process, beside
 * the same host work done through the library directly in this process.
 *
 * Setup (not timed): a temporary data directory with the file backend and a SQLite store; a
 * `brick csi --mode all` child process on a unix socket; 3 × `BENCH_VOLUMES` (default 8) 1 GiB
 * volumes. The plugin's volumes are made with CreateVolume and published with
 * ControllerPublishVolume (to the child's node id, or to the in-process plugin's); the library's
 * are made with `backend.createVolume` and connected with `volume.connect` (export + mapping,
 * which is ControllerPublishVolume's share of the work, so `volume.attach()`, which does both,
 * would not compare like with like).
 *
 * Timed, three paths:
 * - gRPC: NodeStageVolume (attach the published connection, `blkid -p`, mount ext4 at the staging
 *   path) then NodePublishVolume (bind mount at the target path); NodeUnpublishVolume then
 *   NodeUnstageVolume (unmount, unmount, detach), each a call to the child process.
 * - plugin in-process: the same four node functions of src/csi/node.ts called in this process:
 *   the plugin's own work (locks, store look-ups, idempotency checks) without the transport.
 * - library: `connection.attach()`, `blkid -p`, mkdir + mount at the staging path, mkdir + bind
 *   mount at the target path; unmount + rmdir the target, unmount the staging path,
 *   `connection.detach()`: the same programs through the same helpers, nothing else.
 *
 * Each is measured for one volume and for all volumes at once (wall time of the batch), and a
 * trivial call (NodeGetCapabilities) gives the gRPC round trip. Runs are interleaved (the path
 * that goes first rotates) and repeated `BENCH_REPS` times (default 7) after one warm-up run,
 * which also makes the file systems; medians (and the fastest run, the least disturbed by other
 * load) and the ratios to the library are printed as Markdown tables (and written to `$LAB_OUT/csi-bench.json` when `LAB_OUT` is set). Needs root
 * (loop devices, mkfs, mount). Run on the host with `npm run bench:csi`, or in the lab with
 * `node dist/tools/lab/cli.js bench dist/bench/csi.js`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { csiClientConstructor } from '../src/csi/proto.js';
import { createRuntime, type Runtime } from '../src/cli/runtime.js';
import * as nodeFs from '../src/csi/node-fs.js';
import { nodePublish, nodeStage, nodeUnpublish, nodeUnstage } from '../src/csi/node.js';
import { NO_METRICS } from '../src/csi/metrics.js';
import type { Plugin } from '../src/csi/plugin.js';
import { readMounts, unmountFs } from '../src/host/mount.js';
import { listLoops } from '../src/host/loop.js';
import type { Connection } from '../src/library/connection.js';
import type { Volume } from '../src/library/volume.js';

const REPS = Number(process.env.BENCH_REPS ?? 7);
const COUNT = Number(process.env.BENCH_VOLUMES ?? 8);
const NODE_ID = 'bench-node';
/** The node id of the in-process plugin (its volumes are published to it). */
const INPROC_ID = 'bench-inproc';
const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const CAP = { mount: { fs_type: 'ext4', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } };

type Rpc = (method: string, req: Record<string, unknown>) => Promise<Record<string, unknown>>;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** A client of one CSI service on `socket`, as a promise-returning call. */
function client(socket: string, service: 'Controller' | 'Node'): { call: Rpc; close: () => void } {
  const c = new (csiClientConstructor(service))(`unix://${socket}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, (r: unknown, cb: (e: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void>;
  const call: Rpc = (method, req) => new Promise((ok, fail) => c[method]!.call(c, req, (err, res) => (err ? fail(new Error(`${method}: ${err.details}`)) : ok(res))));
  return { call, close: () => c.close() };
}

/** `brick csi --mode all` on `socket`; resolves once it listens. */
async function startPlugin(dir: string, socket: string): Promise<{ child: ChildProcess; log: () => string }> {
  const child = spawn(process.execPath, [MAIN, 'csi', '--config', join(dir, 'brick.yaml'), '--endpoint', `unix://${socket}`, '--node-id', NODE_ID, '--mode', 'all'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  for (let i = 0; i < 300 && !existsSync(socket); i++) {
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!existsSync(socket)) throw new Error(`brick csi did not start:\n${log}`);
  return { child, log: () => log };
}

/** The plugin's path for one volume, through `node` (gRPC, or the plugin's functions in this process). */
function pluginPath(node: Rpc, dir: string, volumeId: string, publishContext: Record<string, string>) {
  const staging = join(dir, 'csi', volumeId, 'staging');
  const target = join(dir, 'csi', volumeId, 'target');
  return {
    up: async () => {
      await node('NodeStageVolume', { volume_id: volumeId, staging_target_path: staging, volume_capability: CAP, publish_context: publishContext });
      await node('NodePublishVolume', { volume_id: volumeId, staging_target_path: staging, target_path: target, volume_capability: CAP, publish_context: publishContext, readonly: false });
    },
    down: async () => {
      await node('NodeUnpublishVolume', { volume_id: volumeId, target_path: target });
      await node('NodeUnstageVolume', { volume_id: volumeId, staging_target_path: staging });
    },
  };
}

/** The library's path for one volume: the same programs through the same helpers. */
function libraryPath(rt: Runtime, dir: string, conn: Connection) {
  const ctx = rt.context;
  const staging = join(dir, 'lib', conn.volume.id, 'staging');
  const target = join(dir, 'lib', conn.volume.id, 'target');
  return {
    up: async () => {
      const device = (await conn.attach()).path;
      const fsType = await nodeFs.probeFileSystem(ctx, device);
      if (fsType === undefined) await nodeFs.makeFileSystem(ctx, device, 'ext4');
      await nodeFs.ensureDir(ctx, staging);
      await nodeFs.mountDevice(ctx, device, staging, fsType ?? 'ext4', []);
      await nodeFs.ensureDir(ctx, target);
      await nodeFs.bindMount(ctx, staging, target, false);
    },
    down: async () => {
      await unmountFs(ctx, target);
      await nodeFs.removeTarget(ctx, target);
      await unmountFs(ctx, staging);
      await conn.detach();
    },
  };
}

type Path = { up: () => Promise<void>; down: () => Promise<void> };

/** The plugin's node functions called in this process, as an {@link Rpc}: no gRPC, no second process. */
function inProcess(rt: Runtime): Rpc {
  const plugin: Plugin = { rt, driverName: 'csi.brick.example.org', version: 'bench', nodeId: INPROC_ID, mode: 'node', maxVolumesPerNode: 0, metrics: NO_METRICS };
  const fns: Record<string, (p: Plugin, r: Record<string, unknown>) => Promise<Record<string, unknown>>> = {
    NodeStageVolume: nodeStage,
    NodePublishVolume: nodePublish,
    NodeUnpublishVolume: nodeUnpublish,
    NodeUnstageVolume: nodeUnstage,
  };
  // proto-loader (oneofs: true) names the capability's access type in `access_type`: as decoded off the wire.
  return (method, req) => fns[method]!(plugin, req.volume_capability ? { ...req, volume_capability: { ...CAP, access_type: 'mount' } } : req);
}

/** One run of one path: one volume, then all at once. */
async function runPath(paths: Path[], t: Record<string, number>, prefix: string): Promise<void> {
  t[`${prefix} stage+publish 1`] = await timed(() => paths[0]!.up());
  t[`${prefix} unpublish+unstage 1`] = await timed(() => paths[0]!.down());
  t[`${prefix} stage+publish ${COUNT}`] = await timed(() => Promise.all(paths.map((p) => p.up())));
  t[`${prefix} unpublish+unstage ${COUNT}`] = await timed(() => Promise.all(paths.map((p) => p.down())));
}

async function main(): Promise<void> {
  if ((process.getuid?.() ?? 0) !== 0) throw new Error('bench csi needs root (loop devices, mkfs, mount)');
  const dir = await mkdtemp(join(tmpdir(), 'brick-bench-csi-'));
  const data = join(dir, 'data');
  await writeFile(join(dir, 'brick.yaml'), [
    `data_dir: ${data}`, `persistence: sqlite:///${data}/brick.sqlite`, `lock_path: ${join(dir, 'locks')}`,
    'default_backend: files', 'backends:', '  - volume_backend_name: files', '    volume_driver: file', '    max_over_subscription_ratio: 40', '',
  ].join('\n'));
  const socket = join(dir, 'csi.sock');
  const plugin = await startPlugin(dir, socket);
  const controller = client(socket, 'Controller');
  const node = client(socket, 'Node');
  const rt = await createRuntime({ config: join(dir, 'brick.yaml') }, process.env);
  const csiVolumes: string[] = [];
  const published: [string, string][] = [];
  const libVolumes: Volume[] = [];
  const conns: Connection[] = [];
  const runs: Record<string, number>[] = [];
  try {
    const backend = await rt.backend();
    const props = await backend.connectorProperties();
    // The in-process plugin's connector properties, where ControllerPublishVolume looks for a node's.
    await rt.store.setKeyValue({ key: INPROC_ID, value: JSON.stringify(props) });
    const publish = async (name: string, nodeId: string, call: Rpc): Promise<Path> => {
      const vol = (await controller.call('CreateVolume', { name, capacity_range: { required_bytes: 1024 ** 3 }, volume_capabilities: [CAP], parameters: {} })).volume as { volume_id: string };
      csiVolumes.push(vol.volume_id);
      const pub = await controller.call('ControllerPublishVolume', { volume_id: vol.volume_id, node_id: nodeId, volume_capability: CAP, readonly: false });
      published.push([vol.volume_id, nodeId]);
      return pluginPath(call, dir, vol.volume_id, pub.publish_context as Record<string, string>);
    };
    const grpcPaths: Path[] = [];
    const inProcPaths: Path[] = [];
    const local = inProcess(rt);
    for (let i = 0; i < COUNT; i++) grpcPaths.push(await publish(`bench-csi-${i}`, NODE_ID, node.call));
    for (let i = 0; i < COUNT; i++) inProcPaths.push(await publish(`bench-inproc-${i}`, INPROC_ID, local));
    const libPaths: Path[] = [];
    for (let i = 0; i < COUNT; i++) {
      const vol = await backend.createVolume({ size: 1, name: `bench-lib-${i}` });
      libVolumes.push(vol);
      const conn = await vol.connect(props, { attachedHost: 'bench-lib' });
      conns.push(conn);
      libPaths.push(libraryPath(rt, dir, conn));
    }
    for (let r = 0; r <= REPS; r++) {
      const t: Record<string, number> = {};
      const rtt: number[] = [];
      for (let i = 0; i < 20; i++) rtt.push(await timed(() => node.call('NodeGetCapabilities', {})));
      t['grpc round trip'] = median(rtt);
      const paths: [Path[], string][] = [[grpcPaths, 'grpc'], [inProcPaths, 'inproc'], [libPaths, 'library']];
      // Rotate which path goes first, so that no path always runs on a cold or a warm machine.
      const order = paths.map((_, i) => paths[(i + r) % paths.length]!);
      for (const [list, prefix] of order) await runPath(list, t, prefix);
      if (r > 0) runs.push(t);
      process.stdout.write(`bench csi: run ${r}${r === 0 ? ' (warm-up, makes the file systems)' : ''}: ${Object.entries(t).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(', ')}\n`);
    }
  } finally {
    for (const [id, nodeId] of published) await controller.call('ControllerUnpublishVolume', { volume_id: id, node_id: nodeId }).catch((e: Error) => process.stderr.write(`cleanup: ${e.message}\n`));
    for (const id of csiVolumes) await controller.call('DeleteVolume', { volume_id: id }).catch((e: Error) => process.stderr.write(`cleanup: ${e.message}\n`));
    for (const c of conns) await c.disconnect().catch((e: Error) => process.stderr.write(`cleanup: ${e.message}\n`));
    for (const v of libVolumes) await v.delete().catch((e: Error) => process.stderr.write(`cleanup: ${e.message}\n`));
    controller.close();
    node.close();
    plugin.child.kill('SIGTERM');
    await new Promise((r) => (plugin.child.exitCode !== null ? r(null) : plugin.child.once('exit', r)));
    const ctx = rt.context;
    const left = [...(await readMounts(ctx)).filter((m) => m.target.startsWith(dir)).map((m) => `mount ${m.target}`), ...(await listLoops(ctx)).filter((l) => l.backFile.startsWith(dir)).map((l) => `loop ${l.name}`)];
    await rt.close();
    if (left.length === 0) await rm(dir, { recursive: true, force: true });
    else process.stderr.write(`bench csi: left behind (kept ${dir}): ${left.join(', ')}\n`);
  }
  report(runs);
}

function report(runs: Record<string, number>[]): void {
  const cases = ['stage+publish 1', 'unpublish+unstage 1', `stage+publish ${COUNT}`, `unpublish+unstage ${COUNT}`];
  const med = (k: string) => median(runs.map((r) => r[k]!));
  const label = (c: string) => c.replace(/ (\d+)$/, (_, n: string) => (n === '1' ? ', 1 volume' : `, ${n} volumes at once`)).replace('stage+publish', 'NodeStage + NodePublish').replace('unpublish+unstage', 'NodeUnpublish + NodeUnstage');
  const least = (k: string) => Math.min(...runs.map((r) => r[k]!));
  const row = (c: string, f: (k: string) => number) =>
    `| ${label(c)} | ${f(`grpc ${c}`).toFixed(1)} | ${f(`inproc ${c}`).toFixed(1)} | ${f(`library ${c}`).toFixed(1)} | ${(f(`grpc ${c}`) / f(`library ${c}`)).toFixed(2)} | ${(f(`inproc ${c}`) / f(`library ${c}`)).toFixed(2)} |`;
  const head = ['| case | gRPC ms | plugin in-process ms | library ms | gRPC / library | in-process / library |', '|---|---|---|---|---|---|'];
  const lines = [
    `CSI node path: through gRPC to a brick csi process, the plugin's node functions in this process, and the library in this process; file backend (loop devices, ext4); median of ${REPS} interleaved runs after one warm-up`,
    ...head,
    ...cases.map((c) => row(c, med)),
    `(one gRPC round trip, NodeGetCapabilities: median ${med('grpc round trip').toFixed(2)} ms)`,
    '',
    `Fastest of the ${REPS} runs (the least disturbed by other load on the machine)`,
    ...head,
    ...cases.map((c) => row(c, least)),
  ];
  process.stdout.write(`\n${lines.join('\n')}\n`);
  const outDir = process.env.LAB_OUT;
  if (outDir) writeFileSync(join(outDir, 'csi-bench.json'), JSON.stringify({ reps: REPS, volumes: COUNT, runs, table: lines }, null, 2));
}

await main();
