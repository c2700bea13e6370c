/**
 * `brick host cleanup` on the real kernel (issue #16): `brick connector connect` is killed with
 * SIGKILL at points of an iSCSI multipath attach (after the logins, after the scans, after the
 * map is made) and of an NVMe-oF attach (the CLI's `BRICK_TEST_KILL_AT` hook kills it when the
 * attach journal reaches that event). Each time:
 * - `host cleanup --dry-run --json` lists as owned exactly what the leftovers probe sees beyond
 *   the baseline, and changes nothing;
 * - `host cleanup` leaves the probe at the baseline (or `connector disconnect` for the killed
 *   connect does, in one case);
 * - a volume attached through Brick on another target, with `dd` writing to it during the
 *   cleanup, is untouched and its I/O completes;
 * - a session the administrator logged in with iscsiadm is listed as unowned and survives.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startInitiatorDaemons,
  createLioTarget,
  createNvmetTarget,
  probeLeftovers,
  diffLeftovers,
  formatLeftovers,
  assertNoLeftovers,
  modprobe,
  run,
  LAB_SCRATCH,
  type LioTarget,
  type NvmetTarget,
  type Leftovers,
} from './fixtures/index.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'main.js');
const DATA = `${LAB_SCRATCH}/host-cleanup-${process.pid}`;
const P1 = '127.0.0.1:3260';
const P2 = '127.0.0.2:3260';

interface Leftover {
  kind: string;
  name: string;
  owned: boolean;
  action: string;
  reason: string;
}
interface CleanupJson {
  leftovers: Leftover[];
  removed: number;
}

/** Run the CLI with this test's data directory; `killAt` arms the journal crash hook. */
function brick(args: string[], killAt?: string): { code: number | null; signal: string | null; out: string; err: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_DATA_HOME: DATA, BRICK_CONFIG: '' };
  if (killAt) env.BRICK_TEST_KILL_AT = killAt;
  else delete env.BRICK_TEST_KILL_AT;
  const r = spawnSync(process.execPath, [MAIN, ...args], { env, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

function cleanup(...flags: string[]): { code: number | null; json: CleanupJson; text: string } {
  const r = brick(['host', 'cleanup', '--json', ...flags]);
  let json: CleanupJson;
  try {
    json = JSON.parse(r.out) as CleanupJson;
  } catch {
    throw new Error(`host cleanup printed no JSON (exit ${r.code}): ${r.out}\n${r.err}`);
  }
  return { code: r.code, json, text: r.out };
}

let seq = 0;
function writeJson(doc: unknown): string {
  const f = `${DATA}/doc-${++seq}.json`;
  fs.writeFileSync(f, JSON.stringify(doc));
  return f;
}

function iscsiProps(t: LioTarget, lun: number): Record<string, unknown> {
  return { target_portal: t.portals[0], target_iqn: t.iqn, target_lun: lun, target_portals: t.portals, target_iqns: t.portals.map(() => t.iqn), target_luns: t.portals.map(() => lun), target_discovered: false };
}

/** What the probe shows beyond `base`, in the names `host cleanup` uses, per kind. */
function probeAsLeftovers(base: Partial<Leftovers>): Record<string, string[]> {
  const d = diffLeftovers(probeLeftovers(), base);
  const out: Record<string, string[]> = {};
  const put = (k: string, v: string[]) => v.length > 0 && (out[k] = v.sort());
  put('iscsi-session', (d.iscsiSessions ?? []).map((s) => s.replace(' ', ',')));
  put('iscsi-node', (d.iscsiNodes ?? []).map((n) => {
    const [iqn, rec] = n.split(' ');
    const [addr, port] = rec!.split(',');
    return `${iqn},${addr}:${port}`;
  }));
  put('scsi-device', (d.scsiDevices ?? []).map((s) => s.split(' ')[0]!));
  put('multipath-map', d.dmMaps ?? []);
  put('nvme-controller', (d.nvmeControllers ?? []).map((c) => c.split(' ')[0]!));
  for (const k of ['loopDevices', 'mounts', 'aoeDevices'] as const) if (d[k]?.length) out[k] = d[k]!;
  return out;
}

/** The owned leftovers of a cleanup listing in the probe's terms (NVMe controllers by subsystem NQN). */
function ownedAsProbe(listing: CleanupJson): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const l of listing.leftovers.filter((x) => x.owned)) (out[l.kind] ??= []).push(l.kind === 'nvme-controller' ? l.name.split(',')[0]! : l.name);
  for (const k of Object.keys(out)) out[k]!.sort();
  return out;
}

let killed: LioTarget;
let busyTarget: LioTarget;
let admin: LioTarget;
let nvme: NvmetTarget | undefined;
let nvmeLoop: { dev: string; file: string } | undefined;
let initial: Leftovers;
let baseline: Leftovers;
let busyDevice: Record<string, unknown>;
let busyPropsFile: string;

before(async () => {
  await startInitiatorDaemons();
  fs.mkdirSync(DATA, { recursive: true, mode: 0o700 });
  initial = probeLeftovers();
  killed = await createLioTarget({ iqn: `iqn.2026-12.lab.brick:killed-${process.pid}`, luns: [{ sizeMiB: 64 }], portals: [P1, P2] });
  busyTarget = await createLioTarget({ iqn: `iqn.2026-12.lab.brick:busy-${process.pid}`, luns: [{ sizeMiB: 256 }], portals: [P1, P2] });
  admin = await createLioTarget({ iqn: `iqn.2026-12.lab.admin:by-hand-${process.pid}`, luns: [{ sizeMiB: 32 }], portals: [P1] });
  // The administrator's own session, made with iscsiadm directly: Brick has no record of it.
  await run(['iscsiadm', '-m', 'node', '-T', admin.iqn, '-p', P1, '-o', 'new']);
  await run(['iscsiadm', '-m', 'node', '-T', admin.iqn, '-p', P1, '--login']);
  // A volume attached through Brick on another target: in use, whatever happens to the others.
  busyPropsFile = writeJson(iscsiProps(busyTarget, 0));
  const c = brick(['connector', 'connect', 'ISCSI', busyPropsFile, '--multipath']);
  assert.equal(c.code, 0, c.out + c.err);
  busyDevice = JSON.parse(c.out) as Record<string, unknown>;
  await new Promise((r) => setTimeout(r, 2_000)); // udev and multipathd settle on the admin LUN's map
  baseline = probeLeftovers();
});

after(async () => {
  const dev = writeJson(busyDevice ?? {});
  if (busyDevice) brick(['connector', 'disconnect', 'ISCSI', busyPropsFile, '--multipath', '--device', dev, '--force']);
  await run(['iscsiadm', '-m', 'node', '-T', admin.iqn, '-p', P1, '--logout'], { checkExitCode: false });
  await run(['iscsiadm', '-m', 'node', '-T', admin.iqn, '-p', P1, '-o', 'delete'], { checkExitCode: false });
  brick(['host', 'cleanup', '--json']);
  for (const t of [killed, busyTarget, admin]) await t?.destroy();
  await nvme?.destroy();
  if (nvmeLoop) await run(['losetup', '-d', nvmeLoop.dev], { checkExitCode: false });
  fs.rmSync(DATA, { recursive: true, force: true });
  await assertNoLeftovers(initial, { timeoutMs: 20_000 });
});

/**
 * Wait until the probe shows the same thing for 2 s (at most 30 s): what the killed process
 * started goes on without it (an iscsiadm login it ran, multipathd making a map from the new
 * paths), and the dry run must be compared with the host at rest.
 */
async function settled(): Promise<void> {
  let last = JSON.stringify(probeLeftovers());
  let since = Date.now();
  for (const end = Date.now() + 30_000; Date.now() < end && Date.now() - since < 2_000; ) {
    await new Promise((r) => setTimeout(r, 250));
    const now = JSON.stringify(probeLeftovers());
    if (now !== last) [last, since] = [now, Date.now()];
  }
}

/** Start `dd` writing to the busy volume; resolves with its exit status. */
function busyIo(): Promise<number | null> {
  const dd = spawn('dd', ['if=/dev/zero', `of=${String(busyDevice.path)}`, 'bs=1M', 'count=96', 'oflag=direct', 'conv=fsync'], { stdio: 'ignore' });
  return new Promise((resolve) => dd.on('exit', (code) => resolve(code)));
}

/**
 * The checks every kill point shares: the dry run lists (as owned) exactly what the probe sees,
 * changes nothing and exits 10; the admin session is listed unowned; the cleanup (with dd
 * running on the busy volume) removes everything and exits 0; the busy volume and the admin
 * session are still there.
 */
async function dryRunThenCleanup(what: string): Promise<void> {
  await settled();
  const seen = probeAsLeftovers(baseline);
  assert.ok(Object.keys(seen).length > 0, `${what}: the killed connect left something for the probe`);
  const before = probeLeftovers();
  const dry = cleanup('--dry-run');
  assert.deepEqual(ownedAsProbe(dry.json), seen, `${what}: the dry run lists what the probe sees\n${dry.text}`);
  assert.equal(dry.code, 10, 'owned leftovers remain after a dry run');
  assert.equal(dry.json.removed, 0);
  assert.deepEqual(probeLeftovers(), before, `${what}: a dry run changes nothing`);
  const adminSession = dry.json.leftovers.find((l) => l.kind === 'iscsi-session' && l.name.startsWith(admin.iqn));
  assert.deepEqual([adminSession?.owned, adminSession?.action], [false, 'none'], "the administrator's session is listed as unowned and left alone");
  assert.ok(!dry.json.leftovers.some((l) => l.name.startsWith(busyTarget.iqn)), 'the attached volume is never a leftover');

  const io = busyIo();
  const done = cleanup();
  assert.equal(done.code, 0, `${what}: nothing owned remains\n${done.text}`);
  assert.equal(await io, 0, 'I/O on the attached volume completes during the cleanup');
  const left = diffLeftovers(probeLeftovers(), baseline);
  assert.deepEqual(left, {}, `${what}: the probe is back at the baseline:\n${formatLeftovers(left)}`);
  assert.ok(fs.existsSync(String(busyDevice.path)), 'the attached volume keeps its device');
  assert.ok(probeLeftovers().iscsiSessions.some((s) => s.startsWith(admin.iqn)), "the administrator's session survives");
}

for (const [point, what] of [
  ['intent:scsi-device', 'killed after the logins'],
  ['intent:multipath-map', 'killed after the scans'],
  ['attached', 'killed after the map was made'],
] as const) {
  test(`iSCSI multipath connect ${what} (${point}): dry run lists the probe's leftovers, cleanup removes them`, async () => {
    const props = writeJson(iscsiProps(killed, 0));
    const r = brick(['connector', 'connect', 'ISCSI', props, '--multipath'], point);
    assert.equal(r.signal, 'SIGKILL', `the connect was killed at ${point}: ${r.out}${r.err}`);
    await new Promise((res) => setTimeout(res, 1_500)); // udev and multipathd catch up with what the killed process left
    await dryRunThenCleanup(what);
  });
}

test('iSCSI connect killed after the map was made: connector disconnect for it (no device info) also leaves nothing', async () => {
  const props = writeJson(iscsiProps(killed, 0));
  const r = brick(['connector', 'connect', 'ISCSI', props, '--multipath'], 'attached');
  assert.equal(r.signal, 'SIGKILL');
  await new Promise((res) => setTimeout(res, 1_500));
  assert.notDeepEqual(probeAsLeftovers(baseline), {});
  const d = brick(['connector', 'disconnect', 'ISCSI', props, '--multipath']);
  assert.equal(d.code, 0, d.out + d.err);
  await assertNoLeftovers(baseline, { timeoutMs: 10_000 });
  const after = cleanup('--dry-run');
  assert.equal(after.code, 0, `nothing owned is left for the cleanup:\n${after.text}`);
});

test('NVMe-oF connect killed after the controller connected: dry run lists it, cleanup disconnects it', async () => {
  await modprobe('loop');
  const file = `${DATA}/nvme-ns.img`;
  fs.writeFileSync(file, '');
  fs.truncateSync(file, 64 << 20);
  const dev = (await run(['losetup', '--find', '--show', file])).stdout.trim();
  nvmeLoop = { dev, file };
  nvme = await createNvmetTarget({ nqn: `nqn.2026-12.lab.brick:cleanup-${process.pid}`, namespaces: [{ sizeMiB: 64, blockDevice: dev }], ports: [{ addr: '127.0.0.1', port: 4420 }] });
  baseline = probeLeftovers();
  const props = writeJson({ target_nqn: nvme.nqn, portals: [['127.0.0.1', 4420, 'tcp']], vol_uuid: nvme.namespaces[0]!.uuid });
  const r = brick(['connector', 'connect', 'NVMEOF', props], 'attached');
  assert.equal(r.signal, 'SIGKILL', r.out + r.err);
  await dryRunThenCleanup('NVMe-oF connect killed before it was recorded done');
});
