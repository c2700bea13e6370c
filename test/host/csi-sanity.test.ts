/**
 * Host integration: `brick csi` against csi-sanity, the Kubernetes storage SIG's conformance
 * suite, on the file backend with real loop devices, ext4 and bind mounts.
 *
 * The controller and the node plugin run as two `brick csi` processes sharing one SQLite store
 * (the Kubernetes topology: a controller Deployment and a node DaemonSet), each on its own
 * socket; csi-sanity talks to the node's socket and, with `--csi.controllerendpoint`, to the
 * controller's. The suite runs once with mount access and once with block access and must end
 * with zero failures; the `Ran N of M Specs` and pass/fail lines are printed. The mount run also
 * passes secrets to every call that takes them and logs at debug level: no secret may appear in
 * either process's log. Afterwards both processes stop on SIGTERM, remove their sockets, and
 * leave no loop device, mount or volume file behind.
 *
 * csi-sanity is `../shared/csi/csi-sanity` beside the repository (see its README); the test is
 * skipped, saying so, when the binary is absent or this is not root.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHostContext } from '../../src/host/context.js';
import { listLoops } from '../../src/host/loop.js';
import { readMounts } from '../../src/host/mount.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const main = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const sanity = resolve(repoRoot, '..', 'shared', 'csi', 'csi-sanity');
const isRoot = (process.getuid?.() ?? 0) === 0;
const skip = !existsSync(sanity) ? `csi-sanity not found at ${sanity} (see ../shared/csi/README.md)` : !isRoot ? 'needs root (loop devices, mkfs, mount)' : false;

const SECRET = 'brick-csi-sanity-secret-value';
const SECRET_KINDS = [
  'CreateVolumeSecret', 'DeleteVolumeSecret', 'ControllerPublishVolumeSecret', 'ControllerUnpublishVolumeSecret', 'ControllerValidateVolumeCapabilitiesSecret',
  'NodeStageVolumeSecret', 'NodePublishVolumeSecret', 'CreateSnapshotSecret', 'DeleteSnapshotSecret', 'ControllerExpandVolumeSecret', 'NodeExpandVolumeSecret', 'ListSnapshotsSecret',
];

interface Plugin {
  child: ChildProcess;
  socket: string;
  log: () => string;
  exited: Promise<number | null>;
}

function startPlugin(dir: string, mode: 'controller' | 'node', nodeId: string, verbose: boolean): Plugin {
  const socket = join(dir, `${mode}.sock`);
  const args = [main, 'csi', '--config', join(dir, 'brick.yaml'), '--endpoint', `unix://${socket}`, '--node-id', nodeId, '--mode', mode, '--max-volumes-per-node', '16'];
  if (verbose) args.push('--verbose');
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, socket, log: () => text, exited };
}

async function waitForSocket(p: Plugin): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (existsSync(p.socket)) return;
    if (p.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`brick csi did not listen on ${p.socket}:\n${p.log()}`);
}

function runSanity(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((done) => {
    const child = spawn(sanity, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20 * 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code, out: out.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), '') });
    });
  });
}

/** Remove what a run left under `dir` (mounts, loop devices) and say what it was. */
async function cleanHost(dir: string): Promise<string[]> {
  const ctx = createHostContext();
  const mounts = (await readMounts(ctx)).filter((m) => m.target.startsWith(dir)).reverse();
  const loops = (await listLoops(ctx)).filter((x) => x.backFile.startsWith(dir));
  for (const m of mounts) await ctx.executor.run(['umount', '-l', m.target], { checkExitCode: false });
  for (const l of loops) await ctx.executor.run(['losetup', '-d', l.name], { checkExitCode: false });
  return [...mounts.map((m) => `mount ${m.target}`), ...loops.map((l) => `loop ${l.name}`)];
}

async function sanityRun(t: TestContext, accessType: 'mount' | 'block'): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), `brick-csi-sanity-${accessType}-`));
  const data = join(dir, 'data');
  await writeFile(join(dir, 'brick.yaml'), [
    `data_dir: ${data}`,
    `persistence: sqlite:///${data}/brick.sqlite`,
    'default_backend: files',
    'backends:',
    '  - volume_backend_name: files',
    '    volume_driver: file',
    '    max_over_subscription_ratio: 20',
    '',
  ].join('\n'));
  const verbose = accessType === 'mount';
  const controller = startPlugin(dir, 'controller', 'csi-controller', verbose);
  const node = startPlugin(dir, 'node', 'csi-node-1', verbose);
  try {
    await waitForSocket(controller);
    await waitForSocket(node);
    const args = [
      `--csi.endpoint=unix://${node.socket}`, `--csi.controllerendpoint=unix://${controller.socket}`,
      `--csi.stagingdir=${join(dir, 'staging')}`, `--csi.mountdir=${join(dir, 'mount')}`,
      // Brick sizes volumes in whole GiB: a smaller test size with limit_bytes set cannot be honoured.
      '--csi.testvolumesize=1073741824', '--csi.testvolumeexpandsize=2147483648',
      `--csi.testvolumeaccesstype=${accessType}`, '--csi.testnodevolumeattachlimit',
      `--ginkgo.junit-report=${join(dir, 'junit.xml')}`,
    ];
    if (verbose) {
      await writeFile(join(dir, 'secrets.yaml'), SECRET_KINDS.map((k) => `${k}:\n  token: ${SECRET}\n`).join(''));
      args.push(`--csi.secrets=${join(dir, 'secrets.yaml')}`);
    }
    const r = await runSanity(args);
    const ran = /Ran (\d+) of (\d+) Specs[^\n]*/.exec(r.out);
    const tally = /(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped/.exec(r.out);
    const summary = `csi-sanity ${accessType}: ${ran?.[0] ?? '(no Ran line)'}; ${tally?.[0] ?? '(no tally)'}`;
    t.diagnostic(summary);
    process.stderr.write(`${summary}\n`);
    const failures = r.out.split('\n').filter((l) => /^\s*\[FAIL\]/.test(l));
    assert.ok(ran && tally, `csi-sanity printed no summary:\n${r.out.slice(-4000)}`);
    assert.equal(Number(tally[2]), 0, `failures:\n${failures.join('\n')}\n${r.out.slice(-6000)}`);
    assert.equal(r.code, 0);
    assert.ok(Number(ran[1]) >= 77, `only ${ran[1]} specs ran`);
  } finally {
    controller.child.kill('SIGTERM');
    node.child.kill('SIGTERM');
    const codes = await Promise.all([controller.exited, node.exited]);
    if (verbose) {
      for (const p of [controller, node]) assert.ok(!p.log().includes(SECRET), 'a secret reached the log');
      assert.match(node.log(), /"method":"NodeStageVolume"/, 'debug logging was on');
    }
    const leftovers = [...(await cleanHost(dir)), ...(await readdir(join(data, 'backends', 'files', 'volumes')).catch(() => []))];
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(codes, [0, 0], 'both plugins stop cleanly on SIGTERM');
    assert.ok(!existsSync(controller.socket) && !existsSync(node.socket), 'sockets removed');
    assert.deepEqual(leftovers, [], 'no mount, loop device or volume file left');
  }
}

test('csi-sanity, mount access: controller and node as two processes sharing one SQLite store', { skip, timeout: 25 * 60_000 }, async (t) => {
  await sanityRun(t, 'mount');
});

test('csi-sanity, block access: controller and node as two processes sharing one SQLite store', { skip, timeout: 25 * 60_000 }, async (t) => {
  await sanityRun(t, 'block');
});
