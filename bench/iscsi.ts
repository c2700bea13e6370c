/**
 * iSCSI connect/disconnect in the lab VM: Brick's ISCSI connector beside Debian's os-brick 6.1
 * `ISCSIConnector` and the raw floor (iscsiadm node records and logins, the devices or maps
 * appearing, nothing else), on the same LIO targets in the same VM.
 *
 * Two target profiles, because a benchmark target one built oneself is easy to be fast on:
 * - `plain`: no CHAP, LUN ids 0–7, portals 127.0.0.1:3260 and 127.0.0.2:3260;
 * - `chap-sparse`: CHAP on, LUN ids 2, 7, 11–15 and 21, portals 127.0.0.1:3260 and 127.0.0.3:3261.
 * Scenarios per profile: one LUN single path, one LUN multipath, eight LUNs of one target at once
 * with multipath.
 *
 * Each scenario runs `BENCH_REPS` (default 5) rounds, and each round runs Brick, os-brick and the
 * floor one after the other (interleaved, so a slow spell of the host lands on all three). Every
 * run starts after `udevadm settle`; the connect is timed, then udev is let settle again and the
 * guest's busy CPU seconds and process starts from the start of the connect up to that point are
 * taken from `/proc/stat` (what limits concurrent attaches on a busy host); then the disconnect is
 * timed. Printed: median (min–max) of each figure, and the ratios of the medians.
 *
 * Run with `node dist/tools/lab/cli.js bench dist/bench/iscsi.js` (or `npm run bench`);
 * `BENCH_SCENARIOS=single,multipath,eight` picks scenarios (default all),
 * `BENCH_REPS=N` changes the rounds, `BENCH_OSBRICK=0` leaves os-brick out, `BENCH_PROFILES=plain`
 * runs one profile, `BENCH_NICE=-10` runs all three contenders (this process, the programs it
 * starts and the os-brick worker; not udevd, iscsid or multipathd) at that nice value, as the
 * `process_nice` setting runs `brick` (see `host/priority.ts`). Goals (issue 18, medians, both profiles): eight concurrent multipath connects
 * at most 0.15x os-brick, their disconnect at most 0.3x, single-path connect at most 0.3x, and
 * less guest CPU per attach than os-brick.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { startInitiatorDaemons, createLioTarget, assertNoLeftovers, LAB_INITIATOR_IQN, run, waitFor, type ChapCredentials, type LioTarget } from '../test/lab/fixtures/index.js';
import { connectorFor } from '../src/initiator/factory.js';
import '../src/initiator/connectors/index.js';
import type { DeviceInfo } from '../src/initiator/connector.js';
import { createHostContext } from '../src/host/context.js';
import { createCapturingLogger } from '../src/log.js';
import { listSessions, parsePortal } from '../src/host/iscsiadm.js';
import { scsiDevicesUnder } from '../src/host/scsi.js';
import { mapForWwid, flushMap } from '../src/host/multipath.js';
import { setProcessNice } from '../src/host/priority.js';
import { OsBrickWorker, REPS, mainThreadSchedstat, USER_HZ, counterDelta, hostCounters, median, processTreeTicks, ratio, settle, spread, traceExecs, type RunFigures } from './_common.js';

const ctx = createHostContext();
type Props = Record<string, unknown>;

interface Profile {
  name: string;
  portals: string[];
  lunIds: number[];
  chap?: ChapCredentials;
}

const PROFILES: Profile[] = [
  { name: 'plain', portals: ['127.0.0.1:3260', '127.0.0.2:3260'], lunIds: [0, 1, 2, 3, 4, 5, 6, 7] },
  { name: 'chap-sparse', portals: ['127.0.0.1:3260', '127.0.0.3:3261'], lunIds: [2, 7, 11, 12, 13, 14, 15, 21], chap: { userid: 'brick-bench', password: 'Bench-Chap-Secret-1' } },
].filter((p) => !process.env.BENCH_PROFILES || process.env.BENCH_PROFILES.split(',').includes(p.name));

function props(t: LioTarget, lun: number, multipath: boolean, chap?: ChapCredentials): Props {
  const p: Props = { target_portal: t.portals[0], target_iqn: t.iqn, target_lun: lun, target_discovered: false };
  if (multipath) Object.assign(p, { target_portals: t.portals, target_iqns: t.portals.map(() => t.iqn), target_luns: t.portals.map(() => lun) });
  if (chap) Object.assign(p, { auth_method: 'CHAP', auth_username: chap.userid, auth_password: chap.password });
  return p;
}

async function brick(list: Props[], multipath: boolean, runCtx = ctx): Promise<RunFigures> {
  await settle();
  const c = connectorFor('ISCSI', { useMultipath: multipath, ctx: runCtx });
  const c0 = hostCounters();
  const own0 = processTreeTicks();
  const s0 = mainThreadSchedstat();
  const t0 = performance.now();
  const perVolumeMs: number[] = [];
  const infos: DeviceInfo[] = await Promise.all(
    list.map(async (p) => {
      const s = performance.now();
      const info = await c.connectVolume(p);
      perVolumeMs.push(performance.now() - s);
      return info;
    }),
  );
  const connectMs = performance.now() - t0;
  const s1 = mainThreadSchedstat();
  await (c as { settled?: () => Promise<void> }).settled?.();
  await settle();
  const d = counterDelta(c0, hostCounters());
  const ownCpuS = (processTreeTicks() - own0) / USER_HZ;
  const t1 = performance.now();
  await Promise.all(list.map((p, i) => c.disconnectVolume(p, infos[i]!)));
  return { connectMs, disconnectMs: performance.now() - t1, ...d, ownCpuS, perVolumeMs, mainRunMs: s1.runMs - s0.runMs, mainWaitMs: s1.waitMs - s0.waitMs };
}

/** The raw floor: node records (with CHAP when the profile has it), parallel logins (automatic scan), the devices or maps appearing; then a plain teardown. */
async function floor(t: LioTarget, luns: number[], multipath: boolean, chap?: ChapCredentials): Promise<RunFigures> {
  await settle();
  const portals = multipath ? t.portals : [t.portals[0]!];
  const wwn = (l: number) => t.luns.find((x) => x.lun === l)!.wwn;
  const c0 = hostCounters();
  const own0 = processTreeTicks();
  const t0 = performance.now();
  await Promise.all(
    portals.map(async (p) => {
      const node = ['iscsiadm', '-m', 'node', '-T', t.iqn, '-p', p];
      await run([...node, '-o', 'new']);
      if (chap) {
        for (const [k, v] of [['node.session.auth.authmethod', 'CHAP'], ['node.session.auth.username', chap.userid], ['node.session.auth.password', chap.password]] as const) await run([...node, '-o', 'update', '-n', k, '-v', v]);
      }
      await run([...node, '--login']);
    }),
  );
  if (multipath) {
    await waitFor(async () => (await Promise.all(luns.map((l) => mapForWwid(ctx, wwn(l))))).every((m) => m && m.paths.length > 0), { timeoutMs: 120_000, intervalMs: 20, description: 'raw maps' });
  } else {
    await waitFor(
      async () => {
        const s = (await listSessions(ctx)).find((x) => x.targetIqn === t.iqn && x.portal.text === parsePortal(portals[0]!).text);
        if (!s) return false;
        const devs = await scsiDevicesUnder(ctx, s.deviceDir);
        return luns.every((l) => devs.some((d) => d.hctl.lun === l && d.device));
      },
      { timeoutMs: 120_000, intervalMs: 20, description: 'raw devices' },
    );
  }
  const connectMs = performance.now() - t0;
  await settle();
  const d = counterDelta(c0, hostCounters());
  const ownCpuS = (processTreeTicks() - own0) / USER_HZ;
  const t1 = performance.now();
  for (const l of luns) {
    const m = await mapForWwid(ctx, wwn(l));
    if (m) await flushMap(ctx, m.name);
  }
  await Promise.all(
    portals.map(async (p) => {
      await run(['iscsiadm', '-m', 'node', '-T', t.iqn, '-p', p, '--logout'], { checkExitCode: false });
      await run(['iscsiadm', '-m', 'node', '-T', t.iqn, '-p', p, '-o', 'delete'], { checkExitCode: false });
    }),
  );
  const disconnectMs = performance.now() - t1;
  // Maps of LUNs never asked for (automatic scan) go with their paths; wait for that (not timed).
  await waitFor(async () => (await Promise.all(t.luns.map((l) => mapForWwid(ctx, l.wwn)))).every((m) => !m), { timeoutMs: 30_000, description: 'raw maps gone' }).catch(async () => {
    for (const l of t.luns) {
      const m = await mapForWwid(ctx, l.wwn);
      if (m) await run(['dmsetup', 'remove', '--force', m.name], { checkExitCode: false });
    }
  });
  return { connectMs, disconnectMs, ...d, ownCpuS };
}

interface Row {
  profile: string;
  scenario: string;
  brick: RunFigures[];
  os: RunFigures[];
  floor: RunFigures[];
  errors: string[];
}

const pick = (xs: RunFigures[], k: keyof RunFigures) => xs.map((x) => x[k] as number);

function rowLine(r: Row): string {
  const cpu = (xs: RunFigures[]) => {
    if (!xs.length) return '-';
    const own = xs.map((x) => x.ownCpuS).filter((v): v is number => v !== undefined);
    return `${median(pick(xs, 'cpuS')).toFixed(1)}${own.length ? ` (own ${median(own).toFixed(1)})` : ''}`;
  };
  const procs = (xs: RunFigures[]) => (xs.length ? `${Math.round(median(pick(xs, 'procs')))}` : '-');
  return [
    r.scenario,
    spread(pick(r.brick, 'connectMs')),
    spread(pick(r.os, 'connectMs')),
    spread(pick(r.floor, 'connectMs')),
    ratio(pick(r.brick, 'connectMs'), pick(r.os, 'connectMs')),
    spread(pick(r.brick, 'disconnectMs')),
    spread(pick(r.os, 'disconnectMs')),
    ratio(pick(r.brick, 'disconnectMs'), pick(r.os, 'disconnectMs')),
    `${cpu(r.brick)} / ${cpu(r.os)} / ${cpu(r.floor)}`,
    `${procs(r.brick)} / ${procs(r.os)} / ${procs(r.floor)}`,
  ].join(' | ');
}

const HEADER = [
  '| scenario | brick connect | os-brick connect | floor connect | brick/os-brick connect | brick disconnect | os-brick disconnect | brick/os-brick disconnect | guest CPU s brick / os-brick / floor (own: the contender process and the programs it ran) | process starts brick / os-brick / floor |',
  '|---|---|---|---|---|---|---|---|---|---|',
];

/**
 * Where the time of a Brick connect went, from its debug log (the warm-up run only: the timed
 * runs log nothing): seconds from the first `connect_volume` to the first and last of each step.
 */
function timeline(lines: Record<string, unknown>[]): string {
  const t0 = Number(lines.find((l) => l.msg === 'iscsi: connect_volume')?.time ?? NaN);
  const at = (pred: (l: Record<string, unknown>) => boolean): string => {
    const ts = lines.filter(pred).map((l) => (Number(l.time) - t0) / 1000);
    return ts.length ? `${ts.length}x ${Math.min(...ts).toFixed(2)}–${Math.max(...ts).toFixed(2)} s` : '-';
  };
  const cmd = (re: RegExp) => (l: Record<string, unknown>) => l.msg === 'command finished' && re.test(Array.isArray(l.cmd) ? l.cmd.join(' ') : String(l.cmd));
  const ms = (re: RegExp) => lines.filter(cmd(re)).map((l) => Math.round(Number(l.ms))).join('/') || '-';
  return [
    `scans ${at((l) => l.msg === 'scsi: targeted scan')}`,
    `logins done ${at(cmd(/^iscsiadm .*--login/))} (ms ${ms(/^iscsiadm .*--login/)})`,
    `dmsetup create ${at(cmd(/^dmsetup create/))} (ms ${ms(/^dmsetup create/)})`,
    `maps built ${at((l) => l.msg === 'iscsi: built the multipath map directly')}`,
    `volumes returned ${at((l) => l.msg === 'iscsi: connect_volume done')}`,
  ].join('; ');
}

/** Run `fn` with the guest's program starts traced when `BENCH_TRACE_EXEC=1`, printing the ones started at least twice. */
async function traced<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const stop = await traceExecs();
  const out = await fn();
  if (stop) process.stdout.write(`bench: programs started (whole cycle: connect, settle, disconnect), ${label}: ${stop().filter(([, n]) => n > 1).map(([f, n]) => `${f} ${n}`).join(', ')}\n`);
  return out;
}

/** One scenario: `REPS` rounds of Brick, os-brick, floor; leftovers checked after each contender's run. The first round's program starts are traced with `BENCH_TRACE_EXEC=1`. */
async function scenario(profile: Profile, name: string, t: LioTarget, luns: number[], mp: boolean, os: OsBrickWorker | undefined): Promise<Row> {
  const row: Row = { profile: profile.name, scenario: name, brick: [], os: [], floor: [], errors: [] };
  const list = luns.map((l) => props(t, l, mp, profile.chap));
  // Warm-up of this process's code paths, logged at debug level to show where the time goes.
  const cap = createCapturingLogger('debug');
  const w = await brick(list, mp, createHostContext({ logger: cap.logger }));
  process.stdout.write(`bench: ${profile.name}: ${name}: warm-up ${(w.connectMs / 1000).toFixed(2)} s: ${timeline(cap.lines())}\n`);
  await assertNoLeftovers(undefined, { timeoutMs: 60_000 });
  for (let i = 0; i < REPS; i++) {
    const tr = <T>(who: string, fn: () => Promise<T>) => (i === 0 ? traced(`${profile.name}: ${name}: ${who}`, fn) : fn());
    row.brick.push(await tr('brick', () => brick(list, mp)));
    await assertNoLeftovers(undefined, { timeoutMs: 60_000 });
    if (os) {
      const o = await tr('os-brick', () => os.cycle(list, mp));
      row.errors.push(...o.errors);
      row.os.push(o);
      await assertNoLeftovers(undefined, { timeoutMs: 60_000 }).catch((e: Error) => row.errors.push(`os-brick left: ${e.message}`));
    }
    row.floor.push(await tr('floor', () => floor(t, luns, mp, profile.chap)));
    process.stdout.write(`bench: ${profile.name}: ${name}: round ${i + 1}/${REPS} done\n`);
  }
  return row;
}

async function runProfile(profile: Profile, os: OsBrickWorker | undefined): Promise<Row[]> {
  const stamp = Date.now().toString(36);
  const common = { portals: profile.portals, ...(profile.chap ? { chap: profile.chap } : {}) };
  const t1 = await createLioTarget({ iqn: `iqn.2026-12.lab.brick:bench1-${profile.name}-${stamp}`, luns: [{ sizeMiB: 16, lun: profile.lunIds[0]! }], ...common });
  const t8 = await createLioTarget({ iqn: `iqn.2026-12.lab.brick:bench8-${profile.name}-${stamp}`, luns: profile.lunIds.map((lun) => ({ sizeMiB: 8, lun })), ...common });
  const rows: Row[] = [];
  try {
    const first = profile.lunIds[0]!;
    const wanted = process.env.BENCH_SCENARIOS?.split(',');
    for (const [id, name, t, luns, mp] of [
      ['single', '1 LUN, single path', t1, [first], false],
      ['multipath', '1 LUN, multipath', t1, [first], true],
      ['eight', '8 LUNs at once, multipath', t8, profile.lunIds, true],
    ] as const) {
      if (wanted && !wanted.includes(id)) continue;
      try {
        const row = await scenario(profile, name, t, [...luns], mp, os);
        rows.push(row);
        process.stdout.write(`| ${rowLine(row)} |\n`);
      } catch (err) {
        process.stdout.write(`bench: ${profile.name}: ${name} FAILED: ${(err as Error).message}\n`);
        const c = connectorFor('ISCSI', { useMultipath: mp, ctx });
        for (const l of luns) await c.disconnectVolume(props(t, l, mp, profile.chap), null, { force: true, ignoreErrors: true }).catch(() => undefined);
      }
    }
  } finally {
    await t1.destroy();
    await t8.destroy();
  }
  return rows;
}

function goals(rows: Row[]): string[] {
  const out: string[] = [];
  for (const profile of new Set(rows.map((r) => r.profile))) {
    const get = (s: string) => rows.find((r) => r.profile === profile && r.scenario === s);
    const check = (label: string, r: Row | undefined, k: keyof RunFigures, limit: number) => {
      if (!r || r.os.length === 0) return `${profile}: ${label}: os-brick not measured`;
      const x = median(pick(r.brick, k)) / median(pick(r.os, k));
      return `${profile}: ${label}: ${x.toFixed(2)}x of os-brick (goal <= ${limit}x) -> ${x <= limit ? 'MET' : 'NOT MET'}`;
    };
    out.push(check('8 concurrent multipath connects', get('8 LUNs at once, multipath'), 'connectMs', 0.15));
    out.push(check('their disconnect', get('8 LUNs at once, multipath'), 'disconnectMs', 0.3));
    out.push(check('single-path connect', get('1 LUN, single path'), 'connectMs', 0.3));
    for (const r of rows.filter((x) => x.profile === profile && x.os.length > 0)) {
      const b = median(pick(r.brick, 'cpuS'));
      const o = median(pick(r.os, 'cpuS'));
      out.push(`${profile}: guest CPU per attach, ${r.scenario}: brick ${b.toFixed(1)} s, os-brick ${o.toFixed(1)} s -> ${b < o ? 'MET' : 'NOT MET'}`);
    }
  }
  return out;
}

async function main(): Promise<void> {
  await startInitiatorDaemons({ initiatorIqn: LAB_INITIATOR_IQN });
  // After the daemons have started (they keep their own priority), before the os-brick worker
  // starts (it inherits this process's): all three contenders run at the same nice value.
  const nice = process.env.BENCH_NICE === undefined ? undefined : Number(process.env.BENCH_NICE);
  if (nice !== undefined) setProcessNice(nice, 'BENCH_NICE');
  const os = OsBrickWorker.start();
  const rows: Row[] = [];
  try {
    for (const p of PROFILES) rows.push(...(await runProfile(p, os)));
  } finally {
    os?.close();
  }
  const lines: string[] = [`iSCSI in the lab VM (QEMU TCG): median (min–max) of ${REPS} interleaved rounds (Brick, os-brick, floor); os-brick ${os ? 'present' : 'absent'}; disconnects on a settled host; contenders at nice ${nice ?? 'as started (0)'}`];
  for (const profile of new Set(rows.map((r) => r.profile))) {
    lines.push('', `profile ${profile}:`, ...HEADER);
    for (const r of rows.filter((x) => x.profile === profile)) lines.push(`| ${rowLine(r)} |`);
  }
  lines.push('', "Brick's main thread during the connect, medians: runnable but waiting for a CPU / on a CPU / connect");
  for (const r of rows) lines.push(`${r.profile}, ${r.scenario}: ${(median(pick(r.brick, 'mainWaitMs')) / 1000).toFixed(2)} s / ${(median(pick(r.brick, 'mainRunMs')) / 1000).toFixed(2)} s / ${(median(pick(r.brick, 'connectMs')) / 1000).toFixed(2)} s`);
  lines.push('', ...goals(rows));
  const errs = rows.flatMap((r) => r.errors.map((e) => `${r.profile}/${r.scenario}: ${e}`));
  if (errs.length) lines.push('', `errors (${errs.length}): ${errs.slice(0, 5).join(' | ')}`);
  process.stdout.write(`\n${lines.join('\n')}\n`);
  const outDir = process.env.LAB_OUT;
  if (outDir) fs.writeFileSync(join(outDir, 'iscsi-bench.json'), JSON.stringify({ reps: REPS, nice: nice ?? null, rows, table: lines }, null, 2));
}

await main();
