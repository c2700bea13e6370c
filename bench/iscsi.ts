/**
 * iSCSI connect/disconnect latency in the lab VM: Brick's ISCSI connector beside the raw floor
 * (iscsiadm login + the device appearing, nothing else) and, when Debian's python3-os-brick is
 * installed, beside os-brick's ISCSIConnector on the same LIO target in the same VM.
 *
 * Scenarios: one LUN single path, one LUN multipath (two portals), eight LUNs of one target at
 * once with multipath. Each is run once to warm up, then `BENCH_REPS` times (default 3) with the
 * disconnect right after the connect, and `BENCH_REPS` times with the disconnect after
 * `udevadm settle` (and, for Brick, after its paths still joining have joined). The median is
 * printed; connect medians take both kinds of run. Every run (Brick, raw floor, os-brick) starts
 * after `udevadm settle`, so no run pays for the previous run's udev backlog. Run with
 * `node dist/tools/lab/cli.js bench dist/bench/iscsi.js`; `BENCH_LOG=1` writes Brick's debug
 * log (each command with its duration) to `bench-log.jsonl` in the results directory.
 *
 * Why two disconnect figures: a disconnect right after a fast connect shares the VM's two
 * emulated CPUs with udev, which is still working through the new devices (rules, blkid,
 * multipath -u), so it measures that backlog as much as the disconnect. A volume detached
 * minutes after its attach meets a settled host; the settled figure is that case.
 *
 * Goals (issue 4): multipath connect <= 1/3 of os-brick's, eight concurrent multipath connects
 * >= 4x faster than os-brick's, and within 1.5x of the raw floor.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { startInitiatorDaemons, createLioTarget, assertNoLeftovers, LAB_INITIATOR_IQN, run, type LioTarget } from '../test/lab/fixtures/index.js';
import { connectorFor } from '../src/initiator/factory.js';
import '../src/initiator/connectors/index.js';
import type { DeviceInfo } from '../src/initiator/connector.js';
import { createHostContext } from '../src/host/context.js';
import { listSessions, parsePortal } from '../src/host/iscsiadm.js';
import { scsiDevicesUnder } from '../src/host/scsi.js';
import { mapForWwid, flushMap } from '../src/host/multipath.js';
import { waitFor } from '../src/host/retry.js';
import { createLogger } from '../src/log.js';

const REPS = Number(process.env.BENCH_REPS ?? 3);
const OS_BRICK = '/usr/lib/python3/dist-packages/os_brick';
const ctx = createHostContext();

type Props = Record<string, unknown>;
interface Timing {
  connectMs: number;
  disconnectMs: number;
  /** The disconnect started after `udevadm settle` (not timed). */
  settled?: boolean;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function props(t: LioTarget, lun: number, multipath: boolean): Props {
  const p: Props = { target_portal: t.portals[0], target_iqn: t.iqn, target_lun: lun, target_discovered: false };
  if (multipath) Object.assign(p, { target_portals: t.portals, target_iqns: t.portals.map(() => t.iqn), target_luns: t.portals.map(() => lun) });
  return p;
}

/** Let udev finish with every event queued so far (not timed). */
async function settle(): Promise<void> {
  await run(['udevadm', 'settle', '--timeout=120'], { timeoutMs: 130_000, checkExitCode: false });
}

/** With `BENCH_LOG=1`, Brick's debug log (every command with its duration) goes to `$LAB_OUT/bench-log.jsonl`. */
const benchLogger = process.env.BENCH_LOG === '1' && process.env.LAB_OUT ? createLogger({ level: 'debug', destination: fs.createWriteStream(join(process.env.LAB_OUT, 'bench-log.jsonl')) }) : undefined;

async function brick(list: Props[], multipath: boolean, settled: boolean): Promise<Timing> {
  const c = connectorFor('ISCSI', { useMultipath: multipath, ...(benchLogger ? { ctx: { logger: benchLogger } } : {}) });
  const t0 = performance.now();
  const infos: DeviceInfo[] = await Promise.all(list.map((p) => c.connectVolume(p)));
  const connectMs = performance.now() - t0;
  if (settled) {
    await (c as { settled?: () => Promise<void> }).settled?.();
    await settle();
  }
  const t1 = performance.now();
  await Promise.all(list.map((p, i) => c.disconnectVolume(p, infos[i]!)));
  return { connectMs, disconnectMs: performance.now() - t1, settled };
}

/** The raw floor: node records, parallel logins (automatic scan), wait for the devices (or maps); then a plain teardown. */
async function raw(t: LioTarget, luns: number[], multipath: boolean, settled: boolean): Promise<Timing> {
  const portals = multipath ? t.portals : [t.portals[0]!];
  const t0 = performance.now();
  await Promise.all(
    portals.map(async (p) => {
      await run(['iscsiadm', '-m', 'node', '-T', t.iqn, '-p', p, '-o', 'new']);
      await run(['iscsiadm', '-m', 'node', '-T', t.iqn, '-p', p, '--login']);
    }),
  );
  if (multipath) {
    await waitFor(async () => (await Promise.all(luns.map((l) => mapForWwid(ctx, t.luns[l]!.wwn)))).every((m) => m && m.paths.length > 0), { timeoutMs: 60_000, intervalMs: 20, description: 'raw maps' });
  } else {
    await waitFor(
      async () => {
        const s = (await listSessions(ctx)).find((x) => x.targetIqn === t.iqn && x.portal.text === parsePortal(portals[0]).text);
        if (!s) return false;
        const devs = await scsiDevicesUnder(ctx, s.deviceDir);
        return luns.every((l) => devs.some((d) => d.hctl.lun === l && d.device));
      },
      { timeoutMs: 60_000, intervalMs: 20, description: 'raw devices' },
    );
  }
  const connectMs = performance.now() - t0;
  if (settled) await settle();
  const t1 = performance.now();
  for (const l of luns) {
    const m = await mapForWwid(ctx, t.luns[l]!.wwn);
    if (m) await flushMap(ctx, m.name);
  }
  await Promise.all(
    portals.map(async (p) => {
      await run(['iscsiadm', '-m', 'node', '-T', t.iqn, '-p', p, '--logout'], { checkExitCode: false });
      await run(['iscsiadm', '-m', 'node', '-T', t.iqn, '-p', p, '-o', 'delete'], { checkExitCode: false });
    }),
  );
  const t2 = performance.now();
  // Maps of LUNs that were never asked for (automatic scan) go with their paths; wait for that.
  await waitFor(async () => (await Promise.all(t.luns.map((l) => mapForWwid(ctx, l.wwn)))).every((m) => !m), { timeoutMs: 30_000, description: 'raw maps gone' }).catch(async () => {
    for (const l of t.luns) {
      const m = await mapForWwid(ctx, l.wwn);
      if (m) await run(['dmsetup', 'remove', '--force', m.name], { checkExitCode: false });
    }
  });
  return { connectMs, disconnectMs: t2 - t1, settled };
}

const PY = String.raw`
import json, subprocess, sys, time, threading
from oslo_config import cfg
import os_brick
from os_brick.initiator import connector
conf = cfg.CONF
conf([], project='brick-bench')
conf.set_override('lock_path', '/run/osbrick-locks', group='oslo_concurrency')
os_brick.setup(conf)
jobs = json.load(sys.stdin)
def cycle(c, props, settled):
    subprocess.run(['udevadm', 'settle', '--timeout=120'], check=False)
    devs = [None] * len(props)
    errs = []
    def attach(i):
        try:
            devs[i] = c.connect_volume(props[i])
        except Exception as e:
            errs.append(repr(e))
    def detach(i):
        try:
            c.disconnect_volume(props[i], devs[i])
        except Exception as e:
            errs.append(repr(e))
    t0 = time.monotonic()
    ts = [threading.Thread(target=attach, args=(i,)) for i in range(len(props))]
    [t.start() for t in ts]; [t.join() for t in ts]
    t_conn = time.monotonic()
    if settled:
        subprocess.run(['udevadm', 'settle', '--timeout=120'], check=False)
    t1 = time.monotonic()
    ts = [threading.Thread(target=detach, args=(i,)) for i in range(len(props))]
    [t.start() for t in ts]; [t.join() for t in ts]
    t2 = time.monotonic()
    return {'connectMs': (t_conn - t0) * 1000, 'disconnectMs': (t2 - t1) * 1000, 'settled': settled, 'errors': errs}
first = True
for job in jobs:
    c = connector.InitiatorConnector.factory('ISCSI', 'sudo', use_multipath=job['multipath'], device_scan_attempts=3)
    if first:
        cycle(c, job['props'], False)  # warm-up: starts the privsep daemon
        first = False
    out = [cycle(c, job['props'], s) for s in (False, True) for _ in range(job['reps'])]
    print('RESULT ' + json.dumps({'name': job['name'], 'runs': out}), flush=True)
`;

/** Run os-brick's ISCSIConnector for every job in one python process (one privsep daemon, one warm-up); timings by job name. */
async function osBrick(jobs: { name: string; props: Props[]; multipath: boolean; reps: number }[]): Promise<Map<string, Timing[]> | undefined> {
  if (!fs.existsSync(OS_BRICK)) return undefined;
  const script = '/run/brick-bench-osbrick.py';
  fs.writeFileSync(script, PY);
  fs.mkdirSync('/run/osbrick-locks', { recursive: true });
  const r = await run(['/usr/bin/python3', script], { input: JSON.stringify(jobs), timeoutMs: 2_400_000, checkExitCode: false });
  const out = new Map<string, Timing[]>();
  for (const line of r.stdout.split('\n').filter((l) => l.startsWith('RESULT '))) {
    const j = JSON.parse(line.slice(7)) as { name: string; runs: (Timing & { errors: string[] })[] };
    const errs = j.runs.flatMap((x) => x.errors);
    if (errs.length > 0) process.stdout.write(`os-brick errors in ${j.name}: ${errs.slice(0, 3).join(' | ')}\n`);
    out.set(j.name, j.runs);
  }
  if (out.size < jobs.length) process.stdout.write(`os-brick run incomplete (exit ${r.exitCode}): ${r.stderr.split('\n').slice(-5).join(' | ')}\n`);
  return out;
}

/** One warm-up, then `REPS` runs of each kind; every run starts on a host where udev has settled. */
async function series(fn: (settled: boolean) => Promise<Timing>): Promise<Timing[]> {
  await fn(false); // warm-up
  const out: Timing[] = [];
  for (const settled of [false, true]) {
    for (let i = 0; i < REPS; i++) {
      await settle();
      out.push(await fn(settled));
    }
  }
  return out;
}

/** Median disconnect of the runs that did (settled) or did not settle first. */
const disc = (xs: Timing[] | undefined, settled: boolean): number | undefined => (xs ? median(xs.filter((x) => (x.settled ?? false) === settled).map((x) => x.disconnectMs)) : undefined);

function rowLine(row: { name: string; brick: Timing[]; raw: Timing[]; os?: Timing[] }): string {
  const bc = median(row.brick.map((x) => x.connectMs));
  const rc = median(row.raw.map((x) => x.connectMs));
  const oc = row.os ? median(row.os.map((x) => x.connectMs)) : undefined;
  const [bd, rd, od] = [disc(row.brick, false), disc(row.raw, false), disc(row.os, false)];
  const [bs, rs, os] = [disc(row.brick, true), disc(row.raw, true), disc(row.os, true)];
  return `| ${row.name} | ${fmt(bc)} | ${fmt(bd)} / ${fmt(bs)} | ${fmt(rc)} | ${fmt(rd)} / ${fmt(rs)} | ${fmt(oc)} | ${fmt(od)} / ${fmt(os)} | ${ratio(bc, rc)} | ${ratio(bs, rs)} | ${ratio(oc, bc)} | ${ratio(od, bd)} / ${ratio(os, bs)} |`;
}

const fmt = (ms: number | undefined): string => (ms === undefined || Number.isNaN(ms) ? '-' : `${(ms / 1000).toFixed(2)} s`);
const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined || Number.isNaN(a) || Number.isNaN(b) ? '-' : `${(a / b).toFixed(2)}x`);

async function main(): Promise<void> {
  await startInitiatorDaemons({ initiatorIqn: LAB_INITIATOR_IQN });
  const stamp = Date.now().toString(36);
  const t1 = await createLioTarget({ iqn: `iqn.2026-11.lab.brick:bench1-${stamp}`, luns: [{ sizeMiB: 16 }] });
  const t8 = await createLioTarget({ iqn: `iqn.2026-11.lab.brick:bench8-${stamp}`, luns: Array.from({ length: 8 }, () => ({ sizeMiB: 8 })) });
  const rows: { name: string; brick: Timing[]; raw: Timing[]; os?: Timing[] }[] = [];
  try {
    const scenarios: { name: string; t: LioTarget; luns: number[]; mp: boolean }[] = [
      { name: '1 LUN, single path', t: t1, luns: [0], mp: false },
      { name: '1 LUN, multipath', t: t1, luns: [0], mp: true },
      { name: '8 LUNs at once, multipath', t: t8, luns: [0, 1, 2, 3, 4, 5, 6, 7], mp: true },
    ];
    const osJobs: { name: string; props: Props[]; multipath: boolean; reps: number }[] = [];
    for (const s of scenarios) {
      const list = s.luns.map((l) => props(s.t, l, s.mp));
      process.stdout.write(`bench: ${s.name}: brick...\n`);
      let b: Timing[] = [];
      let r: Timing[] = [];
      try {
        b = await series((settled) => brick(list, s.mp, settled));
        await assertNoLeftovers(undefined, { timeoutMs: 30_000 });
        process.stdout.write(`bench: ${s.name}: raw floor...\n`);
        r = await series((settled) => raw(s.t, s.luns, s.mp, settled));
      } catch (err) {
        process.stdout.write(`bench: ${s.name} FAILED: ${(err as Error).message}\n`);
        const c = connectorFor('ISCSI', { useMultipath: s.mp });
        for (const p of list) await c.disconnectVolume(p, null, { force: true, ignoreErrors: true }).catch(() => undefined);
      }
      const row = { name: s.name, brick: b, raw: r };
      rows.push(row);
      process.stdout.write(`${rowLine(row)}\n`);
      osJobs.push({ name: s.name, props: list, multipath: s.mp, reps: s.luns.length > 1 ? 1 : REPS });
    }
    process.stdout.write('bench: os-brick (all scenarios, one process)...\n');
    const os = await osBrick(osJobs);
    for (const row of rows) {
      const o = os?.get(row.name);
      if (o) (row as { os?: Timing[] }).os = o;
    }
  } finally {
    await t1.destroy();
    await t8.destroy();
  }
  const lines: string[] = [];
  lines.push(`iSCSI connector latency in the lab VM (QEMU TCG), median of ${REPS} after one warm-up; os-brick ${fs.existsSync(OS_BRICK) ? 'present' : 'absent'}`);
  lines.push('disconnect columns: right after the connect / after udevadm settle');
  lines.push('| scenario | brick connect | brick disconnect | raw floor connect | raw floor disconnect | os-brick connect | os-brick disconnect | brick/raw (connect) | brick/raw (settled disconnect) | os-brick/brick (connect) | os-brick/brick (disconnect) |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|');
  const summary: Record<string, unknown> = {};
  for (const row of rows) {
    lines.push(rowLine(row));
    summary[row.name] = { brick: row.brick, raw: row.raw, os_brick: row.os ?? null };
  }
  const mp = rows.find((r) => r.name === '1 LUN, multipath');
  const eight = rows.find((r) => r.name.startsWith('8 LUNs'));
  const m = (xs: Timing[] | undefined): number | undefined => (xs ? median(xs.map((x) => x.connectMs)) : undefined);
  lines.push('');
  lines.push(`goal: multipath connect <= 1/3 of os-brick: ${mp && m(mp.os) !== undefined ? `${ratio(m(mp.brick), m(mp.os))} of os-brick -> ${m(mp.brick)! <= m(mp.os)! / 3 ? 'MET' : 'NOT MET'}` : 'os-brick not measured'}`);
  lines.push(`goal: 8 concurrent multipath connects >= 4x faster than os-brick: ${eight && m(eight.os) !== undefined ? `${ratio(m(eight.os), m(eight.brick))} -> ${m(eight.os)! >= 4 * m(eight.brick)! ? 'MET' : 'NOT MET'}` : 'os-brick not measured'}`);
  lines.push(`goal: within 1.5x of the raw floor: ${rows.map((r) => `${r.name} ${ratio(m(r.brick), m(r.raw))}`).join('; ')}`);
  lines.push(`disconnect / raw floor disconnect, right after connect: ${rows.map((r) => `${r.name} ${ratio(disc(r.brick, false), disc(r.raw, false))}`).join('; ')}`);
  lines.push(`disconnect / raw floor disconnect, settled: ${rows.map((r) => `${r.name} ${ratio(disc(r.brick, true), disc(r.raw, true))}`).join('; ')}`);
  process.stdout.write(`\n${lines.join('\n')}\n`);
  const outDir = process.env.LAB_OUT;
  if (outDir) fs.writeFileSync(join(outDir, 'iscsi-bench.json'), JSON.stringify({ reps: REPS, rows: summary, table: lines }, null, 2));
}

await main();
