/**
 * Scale in the lab VM (issue 18): 32 LUNs on 4 targets (see `test/lab/fixtures/scale.ts`: CHAP on
 * two, sparse LUN ids, portals on four addresses and three ports) attached at once with multipath,
 * by Brick's ISCSI connector and by Debian's os-brick 6.1, interleaved round by round
 * (`BENCH_SCALE_REPS`, default 3). Every device Brick returns is checked against its LUN's
 * signature. Printed per contender: per-volume attach latency p50 and p95, total attach time, the
 * detach of all 32, guest CPU seconds and process starts until udev settled, and for Brick the
 * peak resident memory of its process during the attach (sampled every 50 ms).
 *
 * Run with `node dist/tools/lab/cli.js bench dist/bench/scale.js`.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { startInitiatorDaemons, assertNoLeftovers, assertSignature, createScaleFleet, LAB_INITIATOR_IQN } from '../test/lab/fixtures/index.js';
import { connectorFor } from '../src/initiator/factory.js';
import '../src/initiator/connectors/index.js';
import type { DeviceInfo } from '../src/initiator/connector.js';
import { createHostContext } from '../src/host/context.js';
import { OsBrickWorker, USER_HZ, counterDelta, hostCounters, median, percentile, processTreeTicks, settle, type RunFigures } from './_common.js';

const REPS = Number(process.env.BENCH_SCALE_REPS ?? 3);
const ctx = createHostContext();

async function brickRound(volumes: Awaited<ReturnType<typeof createScaleFleet>>['volumes']): Promise<RunFigures & { peakRssMiB: number }> {
  await settle();
  const c = connectorFor('ISCSI', { useMultipath: true, ctx });
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const c0 = hostCounters();
  const own0 = processTreeTicks();
  const t0 = performance.now();
  const perVolumeMs: number[] = [];
  let infos: DeviceInfo[];
  try {
    infos = await Promise.all(
      volumes.map(async (v) => {
        const s = performance.now();
        const info = await c.connectVolume(v.props);
        perVolumeMs.push(performance.now() - s);
        return info;
      }),
    );
  } finally {
    clearInterval(sampler);
  }
  const connectMs = performance.now() - t0;
  for (const [i, v] of volumes.entries()) assertSignature(infos[i]!.path, v);
  await (c as { settled?: () => Promise<void> }).settled?.();
  await settle();
  const d = counterDelta(c0, hostCounters());
  const ownCpuS = (processTreeTicks() - own0) / USER_HZ;
  const t1 = performance.now();
  await Promise.all(volumes.map((v, i) => c.disconnectVolume(v.props, infos[i]!)));
  return { connectMs, disconnectMs: performance.now() - t1, ...d, ownCpuS, perVolumeMs, peakRssMiB: peak / 1048576 };
}

function line(name: string, runs: (RunFigures & { peakRssMiB?: number })[]): string {
  if (runs.length === 0) return `| ${name} | - | - | - | - | - | - | - | - |`;
  const lat = runs.flatMap((r) => r.perVolumeMs ?? []);
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const m = (k: keyof RunFigures) => median(runs.map((r) => r[k] as number));
  const rss = runs[0]!.peakRssMiB !== undefined ? `${median(runs.map((r) => r.peakRssMiB!)).toFixed(0)} MiB` : '-';
  return `| ${name} | ${s(percentile(lat, 50))} | ${s(percentile(lat, 95))} | ${s(m('connectMs'))} | ${s(m('disconnectMs'))} | ${m('cpuS').toFixed(1)} | ${m('ownCpuS').toFixed(1)} | ${Math.round(m('procs'))} | ${rss} |`;
}

async function main(): Promise<void> {
  await startInitiatorDaemons({ initiatorIqn: LAB_INITIATOR_IQN });
  const fleet = await createScaleFleet(`b${Date.now().toString(36)}`);
  const os = OsBrickWorker.start();
  const brick: (RunFigures & { peakRssMiB: number })[] = [];
  const osRuns: RunFigures[] = [];
  const errors: string[] = [];
  try {
    for (let i = 0; i < REPS; i++) {
      brick.push(await brickRound(fleet.volumes));
      await assertNoLeftovers(undefined, { timeoutMs: 60_000 });
      if (os) {
        const o = await os.cycle(fleet.volumes.map((v) => v.props), true);
        errors.push(...o.errors);
        osRuns.push(o);
        await assertNoLeftovers(undefined, { timeoutMs: 60_000 }).catch((e: Error) => errors.push(`os-brick left: ${e.message}`));
      }
      process.stdout.write(`bench: scale round ${i + 1}/${REPS} done\n`);
    }
  } finally {
    os?.close();
    await fleet.destroy();
  }
  const lines = [
    `32 LUNs on 4 targets at once, multipath, in the lab VM: medians of ${REPS} interleaved rounds (per-volume percentiles over all rounds)`,
    '| contender | per-volume p50 | per-volume p95 | all 32 attached | all 32 detached | guest CPU s | own CPU s | process starts | peak RSS |',
    '|---|---|---|---|---|---|---|---|---|',
    line('brick', brick),
    line('os-brick', osRuns),
  ];
  if (brick.length && osRuns.length) {
    const r = (k: keyof RunFigures) => (median(brick.map((x) => x[k] as number)) / median(osRuns.map((x) => x[k] as number))).toFixed(2);
    lines.push('', `brick/os-brick: attach ${r('connectMs')}x, detach ${r('disconnectMs')}x, guest CPU ${r('cpuS')}x`);
  }
  if (errors.length) lines.push('', `errors (${errors.length}): ${errors.slice(0, 5).join(' | ')}`);
  process.stdout.write(`\n${lines.join('\n')}\n`);
  if (process.env.LAB_OUT) fs.writeFileSync(join(process.env.LAB_OUT, 'scale-bench.json'), JSON.stringify({ reps: REPS, brick, os_brick: osRuns, table: lines }, null, 2));
}

await main();
