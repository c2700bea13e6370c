/**
 * Parent side of the torture test: start the scenario's workers together, SIGKILL them where
 * the scenario says, start a fresh process for the rest of a killed worker's sequence, and wait
 * (bounded) for all of them.
 *
 * A worker runs in its own process group and is killed with its whole group, so that a
 * `losetup` or copy it started dies with it instead of running on under the recovery.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Scenario, WorkerPlan } from './scenario.js';
import type { WorkerArgs } from './worker.js';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

/** Where a run works. */
export interface RunEnv {
  runDir: string;
  dataDir: string;
  pool: string;
  /** Store URL (sqlite:// or postgresql://...?schema=...). */
  persistence: string;
  backendName: string;
  /** The CLI's configuration file for this run. */
  configPath: string;
}

/** What the workers did. */
export interface WorkersOutcome {
  /** Operations started. */
  ops: number;
  /** SIGKILLs delivered. */
  kills: number;
  /** `worker N: END i ...` lines, and kill notes, in arrival order. */
  log: string[];
  /** Operations that failed with an error that is not a BrickError. */
  untyped: string[];
  /** Broken invariants seen here: a worker that hung or crashed on its own. */
  violations: string[];
}

interface LifeResult {
  killedAfter: number | null;
  lastBegun: number;
}

function runLife(env: RunEnv, index: number, plan: WorkerPlan, life: number, first: number, timeoutMs: number, out: WorkersOutcome): Promise<LifeResult> {
  const args: WorkerArgs = { ...env, worker: index, life, first, ops: plan.ops.slice(first) };
  const child = spawn(process.execPath, [WORKER, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stderr = '';
  let lastBegun = first - 1;
  let killedAfter: number | null = null;
  let killTimer: NodeJS.Timeout | undefined;
  const killGroup = (): void => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const begin = /^BEGIN (\d+) /.exec(line);
    if (begin) {
      out.ops += 1;
      lastBegun = Number(begin[1]);
      if (life === 0 && plan.kill && plan.kill.atOp === lastBegun) {
        killTimer = setTimeout(() => {
          killedAfter = lastBegun;
          killGroup();
        }, plan.kill.delayMs);
      }
    } else if (line.startsWith('START err ')) {
      out.log.push(`worker ${index}: ${line}`);
      out.violations.push(`worker ${index} (life ${life}) could not start the backend while others worked: ${line.slice(10)}`);
    } else if (line.startsWith('END ')) {
      out.log.push(`worker ${index}: ${line}`);
      if (/^END \d+ err UNTYPED/.test(line)) out.untyped.push(`worker ${index}: ${line}`);
    }
  });
  const hang = setTimeout(() => {
    out.violations.push(`worker ${index} (life ${life}) did not finish within ${timeoutMs} ms; it was at op ${lastBegun}; stderr: ${stderr.slice(-800)}`);
    killGroup();
  }, timeoutMs);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(hang);
      clearTimeout(killTimer);
      if (killedAfter !== null) {
        out.kills += 1;
        out.log.push(`worker ${index}: SIGKILL during op ${killedAfter}`);
      } else if (code !== 0 && code !== 3 && signal !== 'SIGKILL') {
        out.violations.push(`worker ${index} (life ${life}) exited with ${code ?? signal}: ${stderr.slice(-800)}`);
      }
      // The process group is gone only when its leader was killed; make sure of it either way.
      killGroup();
      resolve({ killedAfter, lastBegun });
    });
  });
}

async function runWorker(env: RunEnv, index: number, plan: WorkerPlan, timeoutMs: number, out: WorkersOutcome): Promise<void> {
  const first = await runLife(env, index, plan, 0, 0, timeoutMs, out);
  if (first.killedAfter === null) return;
  const rest = first.killedAfter + 1;
  if (rest < plan.ops.length) await runLife(env, index, plan, 1, rest, timeoutMs, out);
}

/** Run every worker of `scenario` at once; each process gets `timeoutMs` to finish. */
export async function runWorkers(env: RunEnv, scenario: Scenario, timeoutMs: number): Promise<WorkersOutcome> {
  const out: WorkersOutcome = { ops: 0, kills: 0, log: [], untyped: [], violations: [] };
  await Promise.all(scenario.workers.map((plan, i) => runWorker(env, i, plan, timeoutMs, out)));
  return out;
}
