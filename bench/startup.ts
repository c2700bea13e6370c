/**
 * Start-up cost of the `brick` command as whole processes (issue 18, part 4): wall time and CPU
 * time (user + system, from GNU time's rusage of the child) of
 *
 * - `node -e 0`, the reference: a bare node start;
 * - `brick --help`;
 * - `brick connector properties` (as root it also reads, and creates when missing, the NVMe host
 *   NQN and id in `/etc/nvme`, as os-brick does);
 * - `brick volume list` on the default configuration: the file backend and the SQLite store in
 *   a fresh temporary data directory (made by the first, untimed, warm-up run).
 *
 * Every command runs once to warm the page cache, then `BENCH_REPS` times (default 15, at least
 * 10) interleaved (node, help, properties, list, node, help, ...) so that a change in the
 * machine's load hits every row alike. Printed per row: median and min-max of wall and CPU
 * seconds, and the ratio of the medians to the bare node start. The goal (issue 18): `--help`
 * and `connector properties` at most 2x the bare node start.
 *
 * `BENCH_STARTUP_BASELINE=/path/to/dist/src/cli/main.js` adds the same three commands of another
 * build (e.g. `main` built in a temporary checkout) to the interleaving, for before/after
 * figures from one run. Runs on the host (`node dist/bench/startup.js`) and in the lab with the
 * other benchmarks (`node dist/tools/lab/cli.js bench dist/bench/startup.js`); writes
 * `$LAB_OUT/startup-bench.json` when `LAB_OUT` is set.
 */
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPS = Math.max(10, Number(process.env.BENCH_REPS ?? 15));
const TIME = '/usr/bin/time';
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');

/** One command of the benchmark. */
interface Scenario {
  label: string;
  argv: string[];
}

/** One run's whole-process figures, seconds; cpu is NaN without GNU time. */
interface Sample {
  wall: number;
  cpu: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

function brickScenarios(cli: string, suffix: string): Scenario[] {
  return [
    { label: `brick --help${suffix}`, argv: [process.execPath, cli, '--help'] },
    { label: `brick connector properties${suffix}`, argv: [process.execPath, cli, 'connector', 'properties'] },
    { label: `brick volume list${suffix}`, argv: [process.execPath, cli, 'volume', 'list'] },
  ];
}

/** Run one command to its end under GNU time (when installed); its output is discarded. */
function runOnce(argv: string[], env: NodeJS.ProcessEnv, timeFile: string, haveTime: boolean): Promise<Sample> {
  const full = haveTime ? [TIME, '-f', '%U %S', '-o', timeFile, ...argv] : argv;
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(full[0]!, full.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const wall = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) return reject(new Error(`${argv.slice(1).join(' ')} exited ${code}: ${stderr.trim()}`));
      let cpu = NaN;
      if (haveTime) {
        const [user, sys] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
        cpu = user! + sys!;
      }
      resolve({ wall, cpu });
    });
  });
}

function formatRow(label: string, xs: Sample[], ref: { wall: number; cpu: number }): string {
  const walls = xs.map((s) => s.wall);
  const cpus = xs.map((s) => s.cpu);
  const w = median(walls);
  const c = median(cpus);
  const range = (v: number[], digits: number) => `${Math.min(...v).toFixed(digits)}–${Math.max(...v).toFixed(digits)}`;
  return `| ${label} | ${w.toFixed(3)} (${range(walls, 3)}) | ${c.toFixed(2)} (${range(cpus, 2)}) | ${(w / ref.wall).toFixed(2)}× | ${(c / ref.cpu).toFixed(2)}× |`;
}

async function main(): Promise<void> {
  const haveTime = fs.existsSync(TIME);
  const work = fs.mkdtempSync(join(tmpdir(), 'brick-startup-'));
  const config = join(work, 'brick.yaml');
  fs.writeFileSync(config, `data_dir: ${join(work, 'data')}\n`);
  const env: NodeJS.ProcessEnv = { ...process.env, BRICK_CONFIG: config };
  const scenarios: Scenario[] = [{ label: 'node -e 0 (reference)', argv: [process.execPath, '-e', '0'] }, ...brickScenarios(CLI, '')];
  const baseline = process.env.BENCH_STARTUP_BASELINE;
  if (baseline) scenarios.push(...brickScenarios(baseline, ' (baseline)'));
  const samples = new Map<string, Sample[]>(scenarios.map((s) => [s.label, []]));
  const timeFile = join(work, 'time.txt');
  try {
    for (const s of scenarios) await runOnce(s.argv, env, timeFile, haveTime);
    for (let i = 0; i < REPS; i++) {
      for (const s of scenarios) samples.get(s.label)!.push(await runOnce(s.argv, env, timeFile, haveTime));
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const ref = samples.get(scenarios[0]!.label)!;
  const refMedian = { wall: median(ref.map((s) => s.wall)), cpu: median(ref.map((s) => s.cpu)) };
  const lines = [
    `brick start-up, whole processes, median (min–max) of ${REPS} interleaved runs after one warm-up; node ${process.version}${haveTime ? '' : ' (no /usr/bin/time: CPU not measured)'}`,
    '| command | wall s | CPU s (user+sys) | wall / node | CPU / node |',
    '|---|---|---|---|---|',
    ...scenarios.map((s) => formatRow(s.label, samples.get(s.label)!, refMedian)),
  ];
  process.stdout.write(`\n${lines.join('\n')}\n`);
  const outDir = process.env.LAB_OUT;
  if (outDir) fs.writeFileSync(join(outDir, 'startup-bench.json'), JSON.stringify({ reps: REPS, samples: Object.fromEntries(samples), table: lines }, null, 2));
}

await main();
