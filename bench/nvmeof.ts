/**
 * NVMe-oF connect/disconnect latency in the lab VM: Brick's NVMEOF connector beside the raw
 * floor (`nvme connect` for each portal and the namespace's block device appearing; then
 * `nvme disconnect -n NQN`) and, when Debian's python3-os-brick is installed, beside
 * os-brick's NVMeOFConnector on the same nvmet-tcp target in the same VM.
 *
 * Scenarios: one portal; two portals with native NVMe multipath. Each runs once to warm up,
 * then `BENCH_REPS` times (default 3); medians are printed as a Markdown table and written to
 * `$LAB_OUT/nvmeof-bench.json` when `LAB_OUT` is set; `BENCH_OSBRICK=0` skips os-brick. (Debian's
 * os-brick 6.1 matches controllers on the whole `address` attribute and so finds none on
 * kernels that append `src_addr=`, os-brick bug 2035811: on the lab's 6.1 kernel it fails with
 * VolumeDeviceNotFound and its column stays empty.) Run with
 * `node dist/tools/lab/cli.js bench dist/bench/nvmeof.js`.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { startInitiatorDaemons, createNvmetTarget, assertNoLeftovers, run, OS_BRICK, osBrickPreamble, type NvmetTarget } from '../test/lab/fixtures/index.js';
import { connectorFor } from '../src/initiator/factory.js';
import '../src/initiator/connectors/index.js';
import { createHostContext } from '../src/host/context.js';
import { LockManager } from '../src/host/lock.js';
import { listNvmeControllers, namespacesOf, selectNamespace } from '../src/host/nvme.js';
import { waitFor } from '../src/host/retry.js';

const REPS = Number(process.env.BENCH_REPS ?? 3);
// A short lock bound: LockManager keeps a timer of the bound alive after each lock, which would hold the process open.
const ctx = createHostContext({ locks: new LockManager('/run/brick-locks', 20_000) });

interface Timing {
  connectMs: number;
  disconnectMs: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function props(t: NvmetTarget, portals: number): Record<string, unknown> {
  return { target_nqn: t.nqn, portals: t.ports.slice(0, portals).map((p) => [p.addr, p.port, 'tcp']), vol_uuid: t.namespaces[0]!.uuid };
}

async function brick(t: NvmetTarget, portals: number): Promise<Timing> {
  const c = connectorFor('NVMEOF', { useMultipath: portals > 1, ctx });
  const p = props(t, portals);
  const t0 = performance.now();
  const info = await c.connectVolume(p);
  const t1 = performance.now();
  await c.disconnectVolume(p, info);
  const t2 = performance.now();
  return { connectMs: t1 - t0, disconnectMs: t2 - t1 };
}

/** The floor: nvme connect per portal (in parallel), wait for the namespace's block device; nvme disconnect -n. */
async function raw(t: NvmetTarget, portals: number): Promise<Timing> {
  const uuid = t.namespaces[0]!.uuid;
  const t0 = performance.now();
  await Promise.all(t.ports.slice(0, portals).map((p) => run(['nvme', 'connect', '-t', 'tcp', '-a', p.addr, '-s', String(p.port), '-n', t.nqn], { timeoutMs: 60_000 })));
  await waitFor(
    async () => {
      const ctrls = (await listNvmeControllers(ctx)).filter((c) => c.subsysnqn === t.nqn);
      const ns = selectNamespace(await namespacesOf(ctx, ctrls), { uuid });
      return ns !== undefined && fs.existsSync(`/dev/${ns.name}`);
    },
    { timeoutMs: 60_000, intervalMs: 10, description: 'raw namespace' },
  );
  const t1 = performance.now();
  await run(['nvme', 'disconnect', '-n', t.nqn], { timeoutMs: 60_000 });
  const t2 = performance.now();
  return { connectMs: t1 - t0, disconnectMs: t2 - t1 };
}

const PY = String.raw`
import json, sys, time
${osBrickPreamble('brick-bench')}job = json.load(sys.stdin)
c = connector.InitiatorConnector.factory('NVMEOF', None, use_multipath=job['multipath'], device_scan_attempts=5)
out = []
for rep in range(job['reps']):
    errs = []
    t0 = time.monotonic()
    dev = None
    try:
        dev = c.connect_volume(dict(job['props']))
    except Exception as e:
        errs.append(repr(e))
    t1 = time.monotonic()
    try:
        c.disconnect_volume(dict(job['props']), dev)
    except Exception as e:
        errs.append(repr(e))
    t2 = time.monotonic()
    out.append({'connectMs': (t1 - t0) * 1000, 'disconnectMs': (t2 - t1) * 1000, 'errors': errs})
print('RESULT ' + json.dumps(out))
`;

async function osBrick(t: NvmetTarget, portals: number, reps: number): Promise<Timing[] | undefined> {
  if (!fs.existsSync(OS_BRICK) || process.env.BENCH_OSBRICK === '0') return undefined;
  const script = '/run/brick-bench-osbrick-nvme.py';
  fs.writeFileSync(script, PY);
  fs.mkdirSync('/run/osbrick-locks', { recursive: true });
  const r = await run(['/usr/bin/python3', script], { input: JSON.stringify({ props: props(t, portals), multipath: portals > 1, reps: reps + 1 }), timeoutMs: 1_800_000, checkExitCode: false });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) {
    process.stdout.write(`os-brick run failed (exit ${r.exitCode}): ${r.stderr.split('\n').slice(-5).join(' | ')}\n`);
    return undefined;
  }
  // leftovers of a failed os-brick run must not bias the next scenario
  await run(['nvme', 'disconnect', '-n', t.nqn], { checkExitCode: false });
  const all = JSON.parse(line.slice(7)) as (Timing & { errors: string[] })[];
  const errs = all.flatMap((x) => x.errors);
  if (errs.length > 0) {
    process.stdout.write(`os-brick errors: ${errs.slice(0, 3).join(' | ')}\n`);
    return undefined;
  }
  return all.slice(1);
}

async function series(fn: () => Promise<Timing>): Promise<Timing[]> {
  await fn();
  const out: Timing[] = [];
  for (let i = 0; i < REPS; i++) out.push(await fn());
  return out;
}

const fmt = (ms: number | undefined): string => (ms === undefined || Number.isNaN(ms) ? '-' : `${(ms / 1000).toFixed(3)} s`);
const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined || Number.isNaN(a) || Number.isNaN(b) ? '-' : `${(a / b).toFixed(2)}x`);

async function main(): Promise<void> {
  await startInitiatorDaemons();
  const t = await createNvmetTarget({ nqn: `nqn.2026-11.lab.brick:bench-${Date.now().toString(36)}`, namespaces: [{ sizeMiB: 16 }], ports: [{ addr: '127.0.0.1' }, { addr: '127.0.0.2' }] });
  const rows: { name: string; brick: Timing[]; raw: Timing[]; os?: Timing[] }[] = [];
  try {
    for (const s of [{ name: '1 portal', portals: 1 }, { name: '2 portals, native multipath', portals: 2 }]) {
      process.stdout.write(`bench: ${s.name}: brick...\n`);
      const b = await series(() => brick(t, s.portals));
      await assertNoLeftovers(undefined, { timeoutMs: 30_000 });
      process.stdout.write(`bench: ${s.name}: raw floor...\n`);
      const r = await series(() => raw(t, s.portals));
      process.stdout.write(`bench: ${s.name}: os-brick...\n`);
      const o = await osBrick(t, s.portals, REPS);
      rows.push({ name: s.name, brick: b, raw: r, ...(o ? { os: o } : {}) });
    }
  } finally {
    await t.destroy();
  }
  const lines: string[] = [];
  lines.push(`NVMe-oF (nvmet-tcp) connector latency in the lab VM (QEMU TCG), median of ${REPS} after one warm-up; os-brick ${fs.existsSync(OS_BRICK) ? 'present' : 'absent'}`);
  lines.push('| scenario | brick connect | brick disconnect | raw floor connect | raw floor disconnect | os-brick connect | os-brick disconnect | brick/raw (connect) | os-brick/brick (connect) |');
  lines.push('|---|---|---|---|---|---|---|---|---|');
  const summary: Record<string, unknown> = {};
  for (const row of rows) {
    const bc = median(row.brick.map((x) => x.connectMs));
    const bd = median(row.brick.map((x) => x.disconnectMs));
    const rc = median(row.raw.map((x) => x.connectMs));
    const rd = median(row.raw.map((x) => x.disconnectMs));
    const oc = row.os ? median(row.os.map((x) => x.connectMs)) : undefined;
    const od = row.os ? median(row.os.map((x) => x.disconnectMs)) : undefined;
    lines.push(`| ${row.name} | ${fmt(bc)} | ${fmt(bd)} | ${fmt(rc)} | ${fmt(rd)} | ${fmt(oc)} | ${fmt(od)} | ${ratio(bc, rc)} | ${ratio(oc, bc)} |`);
    summary[row.name] = { brick: row.brick, raw: row.raw, os_brick: row.os ?? null };
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  if (process.env.LAB_OUT) fs.writeFileSync(join(process.env.LAB_OUT, 'nvmeof-bench.json'), JSON.stringify(summary, null, 2));
}

await main();
