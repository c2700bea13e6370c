/**
 * Host-side runners built on {@link runInVm}: the lab test suite (all lab test files in one VM
 * and one node process) and the benchmarks. This is the API the project's test orchestrator
 * uses: `labAvailable()` to decide whether the lab suite runs, `runLabTests()` to run it.
 *
 * @module
 */
import * as fs from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInVm, type VmRunOptions, type VmRunResult } from './vm.js';

export { runInVm } from './vm.js';
export { labAvailable } from './available.js';
export type { VmRunOptions, VmRunResult } from './vm.js';
export type { LabAvailability } from './available.js';
export type { LabKernel } from './kernel.js';

/** The repository root (this file is dist/tools/lab/runner.js). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The compiled guest entry module. */
const GUEST_ENTRY = join(dirname(fileURLToPath(import.meta.url)), 'guest-entry.js');

/** Options for {@link runLabTests} and {@link runBenchmarks}. */
export interface LabSuiteOptions extends Omit<VmRunOptions, 'onStdout' | 'onStderr' | 'cwd'> {
  /** Write the guest's output to this process's stdout/stderr as it arrives. Default true. */
  stream?: boolean;
  /** node:test reporter in the guest. Default `spec` (its summary lines are `ℹ pass N` / `ℹ fail N`); `tap` gives `# pass N`. */
  reporter?: 'spec' | 'tap' | 'dot';
  /** Extra node flags for the guest process (e.g. `--test-name-pattern=...`). */
  nodeArgs?: string[];
  /**
   * Keep the temporary results directory of a run that passed. Default false: it is removed
   * (a given `outDir`, a failed run, or env `LAB_KEEP=1` always keeps it).
   */
  keepOutDir?: boolean;
}

/** The outcome of a lab suite run. */
export interface LabSuiteResult extends VmRunResult {
  /** Files that were run (repository-relative paths). */
  files: string[];
  /** Passed tests, from the reporter's summary; undefined when no summary was printed. */
  pass?: number;
  /** Failed tests (including cancelled), from the summary; undefined when no summary was printed. */
  fail?: number;
  /** Wall time of the guest test process in ms (QEMU total minus boot), for reports. */
  suiteMs?: number;
}

/** Every compiled lab test file: `dist/test/lab/*.test.js`, sorted, with `lab-self.test.js` first. */
export function defaultLabTestFiles(root = REPO_ROOT): string[] {
  const dir = join(root, 'dist', 'test', 'lab');
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.test.js'));
  } catch {
    return [];
  }
  names.sort((a, b) => (a === 'lab-self.test.js' ? -1 : b === 'lab-self.test.js' ? 1 : a.localeCompare(b)));
  return names.map((n) => join(dir, n));
}

function parseSummary(text: string): { pass?: number; fail?: number } {
  const num = (label: string): number | undefined => {
    const re = new RegExp(`^(?:ℹ|#) ${label} (\\d+)\\s*$`, 'gm');
    let last: number | undefined;
    for (const m of text.matchAll(re)) last = Number(m[1]);
    return last;
  };
  const out: { pass?: number; fail?: number } = {};
  const pass = num('pass');
  const fail = num('fail');
  const cancelled = num('cancelled');
  if (pass !== undefined) out.pass = pass;
  if (fail !== undefined) out.fail = fail + (cancelled ?? 0);
  return out;
}

function checkFiles(files: readonly string[]): string[] {
  const abs = files.map((f) => resolve(f));
  for (const f of abs) {
    if (!fs.existsSync(f)) throw new Error(`lab: no such file ${f} (did you run \`npx tsc -p .\`? pass compiled dist/... .js files)`);
  }
  return abs;
}

async function runNodeInVm(nodeArgs: string[], entryArgs: string[], files: string[], options: LabSuiteOptions): Promise<LabSuiteResult> {
  const stream = options.stream ?? true;
  const result = await runInVm([process.execPath, ...nodeArgs, GUEST_ENTRY, ...entryArgs, ...files], {
    ...options,
    cwd: REPO_ROOT,
    onStdout: stream ? (b) => process.stdout.write(b) : undefined,
    onStderr: stream ? (b) => process.stderr.write(b) : undefined,
  });
  // A results directory we made for a run that passed holds nothing anyone asked for: remove it.
  if (options.outDir === undefined && result.exitCode === 0 && process.env.LAB_KEEP !== '1' && !options.keepOutDir) {
    fs.rmSync(result.outDir, { recursive: true, force: true });
  }
  const summary = parseSummary(result.stdout);
  const out: LabSuiteResult = { ...result, files: files.map((f) => relative(REPO_ROOT, f)), ...summary };
  if (result.bootMs !== undefined) out.suiteMs = result.totalMs - result.bootMs;
  return out;
}

/**
 * The kernel arguments a compiled lab test file asks for: a comment line
 * `// lab-kernel-args: nvme_core.multipath=N` (or inside a block comment, ` * lab-kernel-args: ...`)
 * in its first 8 KiB. Files that ask for none share the default boot. Empty when none.
 */
export function labKernelArgs(file: string): string[] {
  let head = '';
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const buf = Buffer.alloc(8192);
      head = buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)).toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return [];
  }
  const m = /^\s*(?:\/\/|\*)\s*lab-kernel-args:\s*(.+?)\s*$/m.exec(head);
  return m ? m[1]!.split(/\s+/).filter(Boolean) : [];
}

/** Sum the results of consecutive VM runs into one (first failure wins the exit status). */
function combine(results: LabSuiteResult[]): LabSuiteResult {
  const [first, ...rest] = results;
  const out: LabSuiteResult = { ...first! };
  for (const r of rest) {
    if (out.exitCode === 0) out.exitCode = r.exitCode;
    out.stdout += r.stdout;
    out.stderr += r.stderr;
    out.totalMs += r.totalMs;
    out.files = [...out.files, ...r.files];
    if (r.failure && !out.failure) out.failure = r.failure;
    if (r.kernelOops && !out.kernelOops) out.kernelOops = r.kernelOops;
    if (r.pass !== undefined) out.pass = (out.pass ?? 0) + r.pass;
    if (r.fail !== undefined) out.fail = (out.fail ?? 0) + r.fail;
    if (r.suiteMs !== undefined) out.suiteMs = (out.suiteMs ?? 0) + r.suiteMs;
    if (r.exitCode !== 0) out.consoleTail = r.consoleTail;
  }
  return out;
}

/**
 * Boot a lab VM and run the given compiled lab test files (default: every
 * `dist/test/lab/*.test.js`) in ONE node process inside it, with node:test's reporter. Files
 * that declare kernel arguments (see {@link labKernelArgs}) run in a boot of their own with
 * those arguments, one boot per distinct set, after the default boot; the result sums them.
 * The result's `exitCode` is the guest node's (non-zero when a test failed; 99 when the VM
 * failed, with `failure` and `consoleTail`). A last guard test ("lab: every test file has
 * run") keeps a leaked handle from hanging the guest (see guest-entry.ts); it is counted in
 * `pass`.
 * @throws Error when the lab is unavailable, no test file exists, or a given file is missing
 */
export async function runLabTests(files?: readonly string[], options: LabSuiteOptions = {}): Promise<LabSuiteResult> {
  const list = checkFiles(files && files.length > 0 ? files : defaultLabTestFiles());
  if (list.length === 0) throw new Error('lab: no lab test files found under dist/test/lab (build first: npx tsc -p .)');
  const nodeArgs = [`--test-reporter=${options.reporter ?? 'spec'}`, ...(options.nodeArgs ?? [])];
  const groups = new Map<string, string[]>();
  for (const f of list) {
    const key = labKernelArgs(f).join(' ');
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  const keys = [...groups.keys()].sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b)));
  const results: LabSuiteResult[] = [];
  for (const key of keys) {
    const kernelArgs = [...(options.kernelArgs ?? []), ...key.split(' ').filter(Boolean)];
    if (key !== '' && (options.stream ?? true)) process.stdout.write(`lab: booting again with kernel arguments: ${key}\n`);
    results.push(await runNodeInVm(nodeArgs, ['--guard', '--suites'], groups.get(key)!, { ...options, kernelArgs }));
  }
  return combine(results);
}

/** Every compiled benchmark: `dist/bench/*.js` (excluding `.d.ts`/maps and files starting with `_`), sorted. */
export function defaultBenchFiles(root = REPO_ROOT): string[] {
  const dir = join(root, 'dist', 'bench');
  try {
    return fs
      .readdirSync(dir)
      .filter((n) => n.endsWith('.js') && !n.startsWith('_'))
      .sort()
      .map((n) => join(dir, n));
  } catch {
    return [];
  }
}

/**
 * Boot one lab VM and import the given compiled benchmark modules (default every
 * `dist/bench/*.js`) one after another in one node process inside it. Benchmarks print their
 * own figures; files they write under `/out` (env `LAB_OUT`) land in the result's `outDir`.
 * @throws Error when the lab is unavailable or there is nothing to run
 */
export async function runBenchmarks(files?: readonly string[], options: LabSuiteOptions = {}): Promise<LabSuiteResult> {
  const list = checkFiles(files && files.length > 0 ? files : defaultBenchFiles());
  if (list.length === 0) throw new Error('lab: no benchmarks found under dist/bench (build first: npx tsc -p .)');
  return runNodeInVm([...(options.nodeArgs ?? [])], [], list, options);
}
