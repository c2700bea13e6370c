/**
 * The lab VM runner: a throwaway Linux guest booted with QEMU (software emulation, TCG) whose
 * root is this machine's own `/`, shared read-only over virtio-9p with a tmpfs overlay on top,
 * plus a writable 9p share (mounted at `/out` in the guest) that carries results back.
 *
 * Because the guest runs the host's Debian kernel package (`linux-image-amd64`) and the host's
 * installed programs, every storage tool installed on the host (open-iscsi, multipath-tools,
 * lvm2, nvme-cli, vblade, node) works in the guest with no image to build, and the guest kernel
 * has what the host kernel may lack: SCSI, iSCSI, device-mapper, NVMe-oF, LIO, nvmet, AoE.
 *
 * The boot path: QEMU loads `/boot/vmlinuz-<kver>` (found by `kernel.ts`) and a tiny busybox
 * initramfs (`initramfs.ts`, cached per kernel version under `/var/cache/brick-lab/<kver>/`),
 * whose `/init` loads the virtio/9p/overlay modules, mounts the two shares and the overlay, and
 * `switch_root`s into `bash /out/.lab/stage2.sh`. That stage-2 script (`stage2.ts`, written for
 * every run) mounts the usual pseudo file systems, then runs the requested argv and records its
 * exit status. This module starts QEMU, polls the share for the command's output and status,
 * watches the serial console (`console.ts`) for a kernel crash, and enforces the timeouts.
 * KVM is not used: on the machines this project runs on it hangs; TCG is slow (guest
 * JavaScript runs ~100x slower) but dependable.
 *
 * Host processes are spawned with `child_process.spawn` and argv arrays (tools/ is outside
 * src/, but follows the same no-shell rule).
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { labAvailable } from './available.js';
import { ConsoleCapture, findKernelOops } from './console.js';
import { cacheDir, CONTROL, ensureInitramfs } from './initramfs.js';
import type { LabKernel } from './kernel.js';
import { acquireLock } from './lock.js';
import { writeControlFiles } from './stage2.js';

// Kept for importers of the crash detector from its first home.
export { findKernelOops } from './console.js';

/** Options for {@link runInVm}. Environment overrides apply when a field is not given. */
export interface VmRunOptions {
  /** Working directory in the guest (the host path; the host root is visible at the same path). `/tmp` and `/run` are fresh tmpfs in the guest, but a working directory under them is carried over at its own path. Default `process.cwd()`. */
  cwd?: string;
  /** Extra environment variables for the command in the guest. `BRICK_LAB=1`, `LAB_OUT=/out`, `PATH`, `HOME` are always set. */
  env?: Readonly<Record<string, string>>;
  /** Whole-run timeout in ms (boot + command). Default: env `LAB_TIMEOUT` (seconds) or 1 200 s. */
  timeoutMs?: number;
  /** Boot timeout in ms: the guest must reach its stage-2 script within this. Default: env `LAB_BOOT_TIMEOUT` (seconds) or 180 s. */
  bootTimeoutMs?: number;
  /** Guest memory in MiB. Default: env `LAB_MEM` or 3 072. */
  memMiB?: number;
  /** Guest CPUs. Default: env `LAB_SMP` or 2. */
  smp?: number;
  /** Host directory shared read-write at `/out` in the guest. Default: a new temporary directory. */
  outDir?: string;
  /** Called with guest stdout bytes as they arrive (polled from the share). */
  onStdout?: (chunk: Buffer) => void;
  /** Called with guest stderr bytes as they arrive. */
  onStderr?: (chunk: Buffer) => void;
  /** Called once the guest has booted, with the boot time in ms (QEMU start to stage-2 script). */
  onBooted?: (bootMs: number) => void;
  /**
   * Wait for other lab VMs on this host to finish first (a lock file in the cache directory).
   * Default: true unless env `LAB_PARALLEL=1`. The machines this runs on have two cores; two
   * TCG guests at once each run at half speed and risk their timeouts. Waiting is first come,
   * first served, for at most env `LAB_LOCK_TIMEOUT` seconds (default 3 600).
   */
  serialize?: boolean;
  /**
   * Extra kernel command-line arguments for this boot (e.g. `['nvme_core.multipath=N']`), after
   * the lab's own. Each must be a `key` or `key=value` word without spaces or commas.
   */
  kernelArgs?: readonly string[];
}

/** The outcome of one {@link runInVm}. */
export interface VmRunResult {
  /** The guest command's exit status; 99 when the guest did not finish (see `failure`). */
  exitCode: number;
  /** Guest command standard output. */
  stdout: string;
  /** Guest command standard error. */
  stderr: string;
  /** QEMU start to guest stage-2 start, in ms; undefined when the guest never got there. */
  bootMs?: number;
  /** QEMU start to QEMU exit, in ms. */
  totalMs: number;
  /** The results share on the host (files the command wrote under `/out`). */
  outDir: string;
  /** The last lines of the serial console (kernel messages, init errors). */
  consoleTail: string;
  /** Why the run failed at the VM level (boot timeout, run timeout, QEMU error, guest kernel crash); undefined when the command ran to its end. */
  failure?: string;
  /** The guest kernel's crash line (`BUG: ...`, `Oops: ...`, `Kernel panic ...`) with the faulting `RIP:` line, when the guest kernel crashed; the run was then stopped a few seconds later instead of waiting for its timeout. */
  kernelOops?: string;
}

/** A positive number from environment variable `name`, or `fallback` when it is unset or empty. @throws Error when it is set to anything else */
function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`environment variable ${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

/** Reads the growing file `path` from `offset`, handing new bytes to `sink`; returns the new offset. */
function drain(path: string, offset: number, sink?: (b: Buffer) => void): number {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch {
    return offset;
  }
  try {
    const buf = Buffer.alloc(256 * 1024);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, offset);
      if (n <= 0) break;
      offset += n;
      sink?.(Buffer.from(buf.subarray(0, n)));
    }
  } finally {
    fs.closeSync(fd);
  }
  return offset;
}

/** The resolved settings of one run: options first, then the environment, then the defaults. */
interface BootPlan {
  outDir: string;
  control: string;
  timeoutMs: number;
  bootTimeoutMs: number;
  memMiB: number;
  smp: number;
  options: VmRunOptions;
}

/** The settings of one run; creates the results directory when none is given and empties its control directory. */
function planRun(options: VmRunOptions): BootPlan {
  const timeoutMs = options.timeoutMs ?? envNumber('LAB_TIMEOUT', 1200) * 1000;
  const bootTimeoutMs = options.bootTimeoutMs ?? envNumber('LAB_BOOT_TIMEOUT', 180) * 1000;
  const memMiB = options.memMiB ?? envNumber('LAB_MEM', 3072);
  const smp = options.smp ?? envNumber('LAB_SMP', 2);
  const outDir = resolve(options.outDir ?? fs.mkdtempSync(join(tmpdir(), 'brick-lab-')));
  if (outDir.includes(',')) throw new Error(`runInVm: the results directory path must not contain a comma (QEMU option syntax): ${outDir}`);
  for (const a of options.kernelArgs ?? []) {
    if (!/^[A-Za-z0-9_.-]+(=[A-Za-z0-9_.:/-]*)?$/.test(a)) throw new Error(`runInVm: kernel argument ${JSON.stringify(a)} must be a key or key=value word without spaces or commas`);
  }
  const control = join(outDir, CONTROL);
  fs.rmSync(control, { recursive: true, force: true });
  fs.mkdirSync(control, { recursive: true });
  return { outDir, control, timeoutMs, bootTimeoutMs, memMiB, smp, options };
}

/** Waits for other lab VMs on this host (see `lock.ts`); returns the release function. */
function waitForOurTurn(kernel: LabKernel): Promise<() => void> {
  return acquireLock(join(dirname(cacheDir(kernel)), 'vm.lock'), envNumber('LAB_LOCK_TIMEOUT', 3600) * 1000, (holder, position) =>
    process.stderr.write(`lab: waiting for other lab VMs on this host (running: pid ${holder}; ${position} ahead of us); LAB_PARALLEL=1 skips this\n`),
  );
}

/**
 * Boot a lab VM, run `argv` as root inside it, and bring back its output and exit status.
 * The guest sees the host root read-only at `/` (with a tmpfs overlay, so it may write
 * anywhere), the results share read-write at `/out`, and env `BRICK_LAB=1`, `LAB_OUT=/out`.
 * Never throws for a guest-side failure: a guest that does not boot, or a run that exceeds its
 * timeout, comes back with `exitCode` 99, `failure` set and the console tail.
 * @throws Error when the lab is not available on this host (see {@link labAvailable}), argv is
 *   empty, a kernel argument is malformed, or the command, environment or results directory cannot be passed to the guest
 */
export async function runInVm(argv: readonly string[], options: VmRunOptions = {}): Promise<VmRunResult> {
  if (argv.length === 0 || !argv[0]) throw new Error('runInVm: argv must name a program');
  const avail = labAvailable();
  if (!avail.ok || !avail.kernel || !avail.qemu) throw new Error(`the lab VM cannot run here:\n  ${avail.problems.join('\n  ')}`);
  const kernel = avail.kernel;
  const serialize = options.serialize ?? process.env.LAB_PARALLEL !== '1';
  const plan = planRun(options);
  writeControlFiles(plan.control, argv, options.env ?? {}, options.cwd ?? process.cwd());
  const release = serialize ? await waitForOurTurn(kernel) : undefined;
  try {
    // Built (or found) only now that it is our turn, so it cannot go stale while we wait.
    const initrd = ensureInitramfs(kernel);
    return await boot(avail.qemu, kernel, initrd, plan);
  } finally {
    release?.();
  }
}

/** QEMU's argv: TCG, no display, serial console on stdio, the kernel and initramfs, the two 9p shares. */
function qemuArgs(kernel: LabKernel, initrd: string, plan: BootPlan): string[] {
  return [
    '-accel', 'tcg,thread=multi',
    '-cpu', 'max',
    '-m', String(plan.memMiB),
    '-smp', String(plan.smp),
    '-nodefaults', '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
    '-kernel', kernel.image,
    '-initrd', initrd,
    '-append', ['console=ttyS0 loglevel=4 panic=-1 mitigations=off random.trust_cpu=on', ...(plan.options.kernelArgs ?? [])].join(' '),
    '-fsdev', 'local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap',
    '-device', 'virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot',
    '-fsdev', `local,id=out,path=${plan.outDir},security_model=none`,
    '-device', 'virtio-9p-pci,fsdev=out,mount_tag=out',
    '-device', 'virtio-rng-pci',
  ];
}

/**
 * What the host knows of a running guest, updated by {@link RunWatch.poll} (every 250 ms and once
 * after QEMU exits): boot time, the command's output so far, a kernel crash, and why the run was
 * stopped. It stops QEMU (through `stop`) on a crash (5 s after it, so the trace reaches the
 * console), on the boot timeout, and on the run timeout.
 */
class RunWatch {
  readonly started = Date.now();
  bootMs: number | undefined;
  failure: string | undefined;
  kernelOops: string | undefined;
  private oopsSeenAt: number | undefined;
  private readonly stdoutParts: Buffer[] = [];
  private readonly stderrParts: Buffer[] = [];
  private outOff = 0;
  private errOff = 0;

  constructor(
    private readonly plan: BootPlan,
    private readonly console: ConsoleCapture,
    private readonly stop: () => void,
  ) {}

  /** Reads what the guest left on the share since the last poll and applies the crash and timeout rules. */
  poll(): void {
    const { control, options } = this.plan;
    if (this.bootMs === undefined && fs.existsSync(join(control, 'booted'))) {
      this.bootMs = Date.now() - this.started;
      options.onBooted?.(this.bootMs);
    }
    this.outOff = drain(join(control, 'stdout'), this.outOff, (b) => {
      this.stdoutParts.push(b);
      options.onStdout?.(b);
    });
    this.errOff = drain(join(control, 'stderr'), this.errOff, (b) => {
      this.stderrParts.push(b);
      options.onStderr?.(b);
    });
    this.checkLimits(Date.now() - this.started);
  }

  /** Notes a kernel crash on the console, and stops the run when a crash, the boot timeout or the run timeout calls for it. */
  private checkLimits(now: number): void {
    if (this.oopsSeenAt === undefined) {
      const crash = findKernelOops(this.console.text());
      if (crash) {
        this.oopsSeenAt = now;
        this.kernelOops = crash;
      }
    }
    if (this.failure) return;
    if (this.oopsSeenAt !== undefined && now - this.oopsSeenAt > 5_000) {
      // Leave the trace a few seconds to reach the console, then stop: the guest command may never return.
      this.fail(`the guest kernel crashed: ${this.kernelOops}`);
    } else if (this.bootMs === undefined && now > this.plan.bootTimeoutMs) {
      this.fail(`the guest did not boot within ${this.plan.bootTimeoutMs} ms`);
    } else if (now > this.plan.timeoutMs) {
      this.fail(`the run did not finish within ${this.plan.timeoutMs} ms (LAB_TIMEOUT)`);
    }
  }

  private fail(why: string): void {
    this.failure = why;
    this.stop();
  }

  /** The guest command's exit status from `rc` (99 when there is none or the run failed); sets `failure` when the guest stopped early. */
  private exitCode(code: number | null, signal: NodeJS.Signals | null): number {
    const rcFile = join(this.plan.control, 'rc');
    if (!this.failure && fs.existsSync(rcFile)) {
      const exitCode = Number(fs.readFileSync(rcFile, 'utf8').trim());
      return Number.isInteger(exitCode) ? exitCode : 99;
    }
    if (!this.failure) {
      this.failure =
        this.bootMs === undefined
          ? `the guest stopped before it booted (QEMU exit ${code ?? signal})`
          : `the guest stopped before the command finished (QEMU exit ${code ?? signal})`;
    }
    return 99;
  }

  /** The outcome, once QEMU has exited with `code` or `signal` (after a last {@link poll}). */
  result(code: number | null, signal: NodeJS.Signals | null): VmRunResult {
    const totalMs = Date.now() - this.started;
    const exitCode = this.exitCode(code, signal);
    const result: VmRunResult = {
      exitCode,
      stdout: Buffer.concat(this.stdoutParts).toString('utf8'),
      stderr: Buffer.concat(this.stderrParts).toString('utf8'),
      totalMs,
      outDir: this.plan.outDir,
      consoleTail: this.console.tail(),
    };
    if (this.bootMs !== undefined) result.bootMs = this.bootMs;
    if (this.failure) result.failure = this.failure;
    this.kernelOops ??= findKernelOops(this.console.text());
    if (this.kernelOops) result.kernelOops = this.kernelOops;
    return result;
  }
}

/** Sends QEMU's stdout (the serial console) and stderr to the console capture. */
function captureConsole(child: ChildProcess, capture: ConsoleCapture): void {
  child.stdout!.on('data', (b: Buffer) => capture.add(b));
  child.stderr!.on('data', (b: Buffer) => capture.add(b));
}

/** Starts QEMU for one run and resolves with the outcome when it exits (never rejects). SIGINT or SIGTERM to this process stops the guest. */
function boot(qemu: string, kernel: LabKernel, initrd: string, plan: BootPlan): Promise<VmRunResult> {
  const args = qemuArgs(kernel, initrd, plan);
  const capture = new ConsoleCapture(join(plan.control, 'console.log'));
  // The watch's clock starts before QEMU does; it polls (and may stop `child`) only once the timer below runs.
  const watch = new RunWatch(plan, capture, () => child.kill('SIGKILL'));
  const child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: false });
  captureConsole(child, capture);
  const timer = setInterval(() => watch.poll(), 250);
  const onSignal = (sig: NodeJS.Signals): void => {
    child.kill('SIGKILL');
    watch.failure = `interrupted by ${sig}`;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return new Promise((resolvePromise) => {
    child.on('error', (e) => {
      watch.failure = `QEMU could not start: ${e.message}`;
    });
    child.on('close', (code, signal) => {
      clearInterval(timer);
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      capture.end();
      watch.poll();
      resolvePromise(watch.result(code, signal));
    });
  });
}
