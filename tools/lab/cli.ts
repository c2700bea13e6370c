/**
 * `node dist/tools/lab/cli.js <command>`: the storage lab from the command line.
 *
 * - `test [FILE.js...]`: boot one lab VM and run the given compiled lab test files (default:
 *   every `dist/test/lab/*.test.js`) in one node process inside it; exit with its status.
 *   Options: `--reporter spec|tap|dot`, `--name PATTERN` (node's `--test-name-pattern`),
 *   `--out DIR` (the results share, kept; the guest sees it as `/out`, env `LAB_OUT`).
 * - `run [--out DIR] -- CMD [ARG...]`: run one command as root in a lab VM.
 * - `bench [--out DIR] [FILE.js...]`: run the compiled benchmarks (default `dist/bench/*.js`) in
 *   one lab VM and one node process; the results directory (JSON the benchmarks write to
 *   `$LAB_OUT`) is kept and its path printed.
 * - `available`: say whether a lab VM can boot here (exit 0) or what is missing (exit 1).
 * - `initrd`: build (or find) the cached initramfs and print its path.
 *
 * Environment: `LAB_TIMEOUT` (whole run, seconds, default 1200), `LAB_BOOT_TIMEOUT` (seconds,
 * default 180), `LAB_MEM` (MiB, default 3072), `LAB_SMP` (default 2), `LAB_KERNEL` (a
 * `/lib/modules` version), `LAB_CACHE` (initramfs cache base), `LAB_KEEP=1` (keep the results
 * directory), `LAB_PARALLEL=1` (do not wait for other lab VMs on this host), `LAB_LOCK_TIMEOUT`
 * (seconds to wait for them, default 3600). Host variables named `BENCH_*`, `BRICK_*` and
 * `LAB_TEST_*` are passed to the guest command.
 *
 * @module
 */
import * as fs from 'node:fs';
import { labAvailable } from './available.js';
import { ensureInitramfs } from './initramfs.js';
import type { VmRunResult } from './vm.js';
import { runInVm, runLabTests, runBenchmarks, type LabSuiteOptions } from './runner.js';

function usage(): never {
  process.stderr.write(
    'usage: node dist/tools/lab/cli.js test [--reporter spec|tap|dot] [--name PATTERN] [--out DIR] [FILE.js...]\n' +
      '       node dist/tools/lab/cli.js run [--out DIR] -- CMD [ARG...]\n' +
      '       node dist/tools/lab/cli.js bench [--out DIR] [FILE.js...]\n' +
      '       node dist/tools/lab/cli.js available | initrd\n',
  );
  process.exit(2);
}

const secs = (ms: number | undefined): string => (ms === undefined ? '?' : `${(ms / 1000).toFixed(1)} s`);

function report(r: VmRunResult, keepOut: boolean): void {
  if (r.failure) {
    process.stderr.write(`\nlab: VM FAILURE: ${r.failure}\nlab: console tail:\n${r.consoleTail}\n`);
  }
  const keep = keepOut || r.exitCode !== 0 || process.env.LAB_KEEP === '1';
  if (keep) process.stderr.write(`lab: results directory kept: ${r.outDir}\n`);
  else fs.rmSync(r.outDir, { recursive: true, force: true });
}

/** Host environment variables handed to the guest command: `BENCH_*`, `BRICK_*` and `LAB_TEST_*`. */
function passThroughEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && /^(BENCH_|BRICK_|LAB_TEST_)/.test(k)) env[k] = v;
  }
  return env;
}

function onBooted(ms: number): void {
  process.stderr.write(`lab: guest booted in ${secs(ms)}\n`);
}

/** `available`: say whether a lab VM can boot here (exit 0) or what is missing (exit 1). */
function available(): number {
  const a = labAvailable();
  if (a.ok) {
    process.stdout.write(`lab available: kernel ${a.kernel?.version}, ${a.qemu}\n`);
    return 0;
  }
  process.stdout.write(`lab NOT available:\n  ${a.problems.join('\n  ')}\n`);
  return 1;
}

/** `initrd`: build (or find) the cached initramfs and print its path. @throws Error when no kernel was found */
function initrd(): number {
  const a = labAvailable();
  if (!a.kernel) throw new Error(a.problems.join('; '));
  process.stdout.write(`${ensureInitramfs(a.kernel)}\n`);
  return 0;
}

/** The options and files of `test` and `bench`: `--reporter`, `--name`, `--out` and file arguments (exits with usage on anything else). */
function parseSuiteArgs(cmd: 'test' | 'bench', rest: readonly string[]): { opts: LabSuiteOptions; files: string[]; outDir?: string } {
  const opts: LabSuiteOptions = { onBooted, env: passThroughEnv(), keepOutDir: cmd === 'bench' };
  let outDir: string | undefined;
  const files: string[] = [];
  const nodeArgs: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--reporter') {
      const v = rest[++i];
      if (v !== 'spec' && v !== 'tap' && v !== 'dot') usage();
      opts.reporter = v;
    } else if (a === '--name') {
      const v = rest[++i];
      if (!v) usage();
      nodeArgs.push(`--test-name-pattern=${v}`);
    } else if (a === '--out') {
      outDir = rest[++i];
      if (!outDir) usage();
      fs.mkdirSync(outDir, { recursive: true });
      opts.outDir = outDir;
    } else if (a.startsWith('-')) usage();
    else files.push(a);
  }
  opts.nodeArgs = nodeArgs;
  return outDir === undefined ? { opts, files } : { opts, files, outDir };
}

/** `test` and `bench`: run the files in one VM, print the summary line, exit with the guest's status. */
async function suite(cmd: 'test' | 'bench', rest: readonly string[]): Promise<number> {
  const { opts, files, outDir } = parseSuiteArgs(cmd, rest);
  const a = labAvailable();
  process.stderr.write(`lab: booting ${a.kernel?.version ?? '?'} under QEMU TCG (mem ${process.env.LAB_MEM ?? 3072} MiB)\n`);
  const r = cmd === 'test' ? await runLabTests(files, opts) : await runBenchmarks(files, opts);
  const counts = r.pass !== undefined ? `, pass ${r.pass}, fail ${r.fail ?? 0}` : '';
  process.stderr.write(
    `lab: ${cmd} finished with exit ${r.exitCode}: VM boot ${secs(r.bootMs)}, ${cmd === 'test' ? 'suite' : 'benchmarks'} ${secs(r.suiteMs)}, total ${secs(r.totalMs)}${counts} (${r.files.length} file(s))\n`,
  );
  report(r, outDir !== undefined || cmd === 'bench');
  return r.exitCode;
}

/** `run [--out DIR] -- CMD [ARG...]`: one command as root in a lab VM, its output streamed. */
async function runCommand(rest: readonly string[]): Promise<number> {
  let outDir: string | undefined;
  let i = 0;
  for (; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (a === '--out') outDir = rest[++i];
    else usage();
  }
  const command = rest.slice(i);
  if (command.length === 0) usage();
  if (outDir) fs.mkdirSync(outDir, { recursive: true });
  const r = await runInVm(command, {
    ...(outDir ? { outDir } : {}),
    env: passThroughEnv(),
    onBooted,
    onStdout: (b) => process.stdout.write(b),
    onStderr: (b) => process.stderr.write(b),
  });
  process.stderr.write(`lab: exit ${r.exitCode}: VM boot ${secs(r.bootMs)}, total ${secs(r.totalMs)}\n`);
  report(r, outDir !== undefined);
  return r.exitCode;
}

async function main(argv: string[]): Promise<number> {
  const cmd = argv[0];
  const rest = argv.slice(1);
  switch (cmd) {
    case 'available':
      return available();
    case 'initrd':
      return initrd();
    case 'test':
    case 'bench':
      return suite(cmd, rest);
    case 'run':
      return runCommand(rest);
    default:
      usage();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`lab: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
