/**
 * Shared pieces of the lab benchmarks: statistics (median with min–max), the guest's CPU and
 * process-start counters, `udevadm settle`, and a long-lived os-brick worker that runs one
 * connect or disconnect per request so that Brick, os-brick and the raw floor can be interleaved
 * run by run (Brick, os-brick, floor, Brick, ...) instead of one after the other: a slow spell of
 * the host then lands on all three alike.
 *
 * Not a benchmark itself (the leading `_` keeps the lab runner from importing it as one).
 */
import * as fs from 'node:fs';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { OS_BRICK, osBrickPreamble, run } from '../test/lab/fixtures/index.js';

export { OS_BRICK };


/** Runs per scenario and contender (env `BENCH_REPS`, at least 5 unless set lower on purpose). */
export const REPS = Number(process.env.BENCH_REPS ?? 5);

/** Median of `xs` (NaN for none). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** The `p`-th percentile (0–100) of `xs`, nearest rank. */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** `median (min–max)` of seconds given in ms, or `-`. */
export function spread(msList: readonly number[] | undefined): string {
  if (!msList || msList.length === 0) return '-';
  const f = (ms: number) => (ms / 1000).toFixed(2);
  return `${f(median(msList))} s (${f(Math.min(...msList))}–${f(Math.max(...msList))})`;
}

/** `a / b` of the medians as `0.26x`, or `-`. */
export function ratio(a: readonly number[] | undefined, b: readonly number[] | undefined): string {
  if (!a?.length || !b?.length) return '-';
  return `${(median(a) / median(b)).toFixed(2)}x`;
}

/** Guest-wide counters from `/proc/stat`: busy CPU time in clock ticks (all but idle and iowait) and processes started since boot. */
export interface HostCounters {
  busyTicks: number;
  processes: number;
}

/** Read {@link HostCounters} now. */
export function hostCounters(): HostCounters {
  const stat = fs.readFileSync('/proc/stat', 'utf8');
  const cpu = stat.split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user)
  const busy = cpu[0]! + cpu[1]! + cpu[2]! + cpu[5]! + cpu[6]! + (cpu[7] ?? 0);
  const processes = Number(/^processes (\d+)$/m.exec(stat)?.[1] ?? NaN);
  return { busyTicks: busy, processes };
}

/** `USER_HZ` (clock ticks per second of `/proc/stat`), 100 on Linux x86. */
export const USER_HZ = 100;

/**
 * CPU clock ticks (user + system, its reaped children's included) of process `pid` and every
 * process below it, from `/proc/N/stat`: what a contender spent itself and in the programs it ran,
 * as opposed to udev, multipathd, iscsid and the kernel. `pid` defaults to this process.
 */
export function processTreeTicks(pid: number = process.pid): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // Fields after the command's closing parenthesis start at field 3 (state); utime is field 14.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    stats.set(Number(e), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
  }
  let total = 0;
  const todo = [pid];
  const seen = new Set<number>();
  while (todo.length > 0) {
    const p = todo.pop()!;
    if (seen.has(p)) continue;
    seen.add(p);
    total += stats.get(p)?.ticks ?? 0;
    for (const [c, s] of stats) if (s.ppid === p) todo.push(c);
  }
  return total;
}

/** CPU seconds and process starts between two readings. */
export function counterDelta(a: HostCounters, b: HostCounters): { cpuS: number; procs: number } {
  return { cpuS: (b.busyTicks - a.busyTicks) / USER_HZ, procs: b.processes - a.processes };
}

/** Let udev finish every event queued so far (not timed). */
export async function settle(): Promise<void> {
  await run(['udevadm', 'settle', '--timeout=180'], { timeoutMs: 190_000, checkExitCode: false });
}

/** One timed run of a contender: connect (ms), disconnect (ms), guest CPU seconds and process starts from the connect until udev settled. */
export interface RunFigures {
  connectMs: number;
  disconnectMs: number;
  cpuS: number;
  procs: number;
  /** CPU seconds of the contender's own processes (and the programs they ran) within `cpuS` (see {@link processTreeTicks}). */
  ownCpuS?: number;
  /** Per-volume connect latencies (ms) when the run attached several volumes at once. */
  perVolumeMs?: number[];
  /** Brick only: its main thread's time on a CPU and runnable but waiting for one during the connect (ms, {@link mainThreadSchedstat}). */
  mainRunMs?: number;
  mainWaitMs?: number;
}

/**
 * This process's main thread's scheduler statistics (`/proc/self/task/<pid>/schedstat`): time on a
 * CPU and time runnable but waiting for one, in ms since the thread started (sched-stats.rst).
 */
export function mainThreadSchedstat(): { runMs: number; waitMs: number } {
  const [run, wait] = fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
  return { runMs: run! / 1e6, waitMs: wait! / 1e6 };
}

const WORKER = String.raw`
import json, subprocess, sys, time, threading
${osBrickPreamble('brick-bench')}def out(obj):
    sys.stdout.write(json.dumps(obj) + '\n'); sys.stdout.flush()
state = {}
for line in sys.stdin:
    req = json.loads(line)
    if req['cmd'] == 'connect':
        c = connector.InitiatorConnector.factory(req.get('protocol', 'ISCSI'), None, use_multipath=req['multipath'], device_scan_attempts=3)
        props = req['props']; devs = [None] * len(props); lat = [0.0] * len(props); errs = []
        def attach(i):
            t = time.monotonic()
            try:
                devs[i] = c.connect_volume(props[i])
            except Exception as e:
                errs.append(repr(e))
            lat[i] = (time.monotonic() - t) * 1000
        t0 = time.monotonic()
        ts = [threading.Thread(target=attach, args=(i,)) for i in range(len(props))]
        [t.start() for t in ts]; [t.join() for t in ts]
        ms = (time.monotonic() - t0) * 1000
        subprocess.run(['udevadm', 'settle', '--timeout=180'], check=False)
        state = {'c': c, 'props': props, 'devs': devs}
        out({'connectMs': ms, 'perVolumeMs': lat, 'devices': [d.get('path') if d else None for d in devs], 'errors': errs})
    elif req['cmd'] == 'disconnect':
        c, props, devs = state['c'], state['props'], state['devs']; errs = []
        def detach(i):
            try:
                c.disconnect_volume(props[i], devs[i])
            except Exception as e:
                errs.append(repr(e))
        t0 = time.monotonic()
        ts = [threading.Thread(target=detach, args=(i,)) for i in range(len(props))]
        [t.start() for t in ts]; [t.join() for t in ts]
        out({'disconnectMs': (time.monotonic() - t0) * 1000, 'errors': errs})
`;

/** A long-lived os-brick process (one privsep daemon for the whole benchmark), one request at a time. */
export class OsBrickWorker {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterableIterator<string>;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.child = child;
    this.lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    child.stderr.resume();
  }

  /** Start the worker, or undefined when os-brick is not installed (or `BENCH_OSBRICK=0`). */
  static start(): OsBrickWorker | undefined {
    if (!fs.existsSync(OS_BRICK) || process.env.BENCH_OSBRICK === '0') return undefined;
    fs.mkdirSync('/run/osbrick-locks', { recursive: true });
    return new OsBrickWorker(spawn('/usr/bin/python3', ['-c', WORKER], { stdio: 'pipe' }));
  }

  private async ask<T>(req: object): Promise<T> {
    this.child.stdin.write(`${JSON.stringify(req)}\n`);
    const next = await this.lines.next();
    if (next.done) throw new Error('the os-brick worker exited');
    return JSON.parse(next.value) as T;
  }

  /** Connect `props` at once (threads), then settle udev; figures as {@link RunFigures} without the disconnect. */
  async connect(props: Record<string, unknown>[], multipath: boolean, protocol = 'ISCSI'): Promise<{ connectMs: number; perVolumeMs: number[]; devices: (string | null)[]; errors: string[] }> {
    return this.ask({ cmd: 'connect', props, multipath, protocol });
  }

  /** Disconnect what the last connect attached. */
  async disconnect(): Promise<{ disconnectMs: number; errors: string[] }> {
    return this.ask({ cmd: 'disconnect' });
  }

  /** A full timed run: connect, settle (CPU counted up to here), disconnect. */
  async cycle(props: Record<string, unknown>[], multipath: boolean): Promise<RunFigures & { errors: string[] }> {
    await settle();
    const c0 = hostCounters();
    const own0 = processTreeTicks(this.child.pid);
    const c = await this.connect(props, multipath);
    const d = counterDelta(c0, hostCounters());
    const ownCpuS = (processTreeTicks(this.child.pid) - own0) / USER_HZ;
    const dis = await this.disconnect();
    return { connectMs: c.connectMs, disconnectMs: dis.disconnectMs, ...d, ownCpuS, perVolumeMs: c.perVolumeMs, errors: [...c.errors, ...dis.errors] };
  }

  /** Stop the worker. */
  close(): void {
    this.child.stdin.end();
  }
}

const TRACEFS = '/sys/kernel/tracing';

/**
 * Record every program started in the guest (the kernel's `sched:sched_process_exec` trace
 * event, through tracefs) until the returned function is called, which gives the count per
 * program path, most started first. Only with `BENCH_TRACE_EXEC=1` (else undefined): it tells
 * which of a run's process starts are udev's rules, which the daemons', which the contender's.
 *
 * Caution: in the lab run of 2 December 2026 the guest kernel stalled (soft lockup of the bench
 * process, RCU grace-period kthread starved) right after about twenty traced runs, most likely in
 * one of these tracefs writes (clearing `trace` waits for an RCU grace period); keep it to short
 * diagnostic runs, not the full benchmark.
 */
export async function traceExecs(): Promise<(() => [string, number][]) | undefined> {
  if (process.env.BENCH_TRACE_EXEC !== '1') return undefined;
  const w = (f: string, v: string) => fs.writeFileSync(`${TRACEFS}/${f}`, v);
  try {
    if (!fs.existsSync(`${TRACEFS}/events`)) await run(['mount', '-t', 'tracefs', 'nodev', TRACEFS], { checkExitCode: false });
    w('tracing_on', '0');
    w('buffer_size_kb', '8192');
    w('trace', '');
    w('events/sched/sched_process_exec/enable', '1');
    w('tracing_on', '1');
  } catch (err) {
    process.stdout.write(`bench: no program trace (${(err as Error).message})\n`);
    return undefined;
  }
  return () => {
    try {
      w('tracing_on', '0');
      w('events/sched/sched_process_exec/enable', '0');
      const counts = new Map<string, number>();
      for (const m of fs.readFileSync(`${TRACEFS}/trace`, 'utf8').matchAll(/sched_process_exec: filename=(\S+)/g)) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
      return [...counts].sort((a, b) => b[1] - a[1]);
    } catch (err) {
      process.stdout.write(`bench: program trace unreadable (${(err as Error).message})\n`);
      return [];
    }
  };
}
