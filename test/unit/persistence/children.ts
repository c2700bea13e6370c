/**
 * Parent side of the multi-process persistence tests: spawn `worker.js` with node and follow
 * its stdout line by line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../../src/host/retry.js';

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

/** A running worker process. */
export interface Worker {
  readonly child: ChildProcess;
  /** Every stdout line so far. */
  readonly lines: string[];
  /** Collected stderr, for failure messages. */
  readonly stderr: () => string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Wait (bounded) until a line satisfies `pred`; returns it. */
  line(pred: (l: string) => boolean, timeoutMs: number, description: string): Promise<string>;
  /** Write one line to the worker's stdin. */
  send(line: string): void;
}

/** Start `node worker.js <role> <storeConfig JSON> ...args`. */
export function startWorker(role: string, storeConfig: unknown, ...args: string[]): Worker {
  const child = spawn(process.execPath, [WORKER, role, JSON.stringify(storeConfig), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let exitedNow = false;
  void exited.then(() => (exitedNow = true));
  return {
    child,
    lines,
    stderr: () => err,
    exited,
    async line(pred, timeoutMs, description) {
      return waitFor(
        () => {
          const hit = lines.find(pred);
          if (hit !== undefined) return hit;
          if (exitedNow) throw new Error(`worker ${role} exited before ${description}; stderr: ${err}`);
          return undefined;
        },
        { timeoutMs, description, intervalMs: 5, maxIntervalMs: 20 },
      );
    },
    send(line) {
      child.stdin!.write(`${line}\n`);
    },
  };
}

/** Wait for a worker to exit with status 0, or fail with its stderr. */
export async function expectClean(w: Worker, timeoutMs: number): Promise<void> {
  const r = await Promise.race([w.exited, new Promise<null>((resolve) => setTimeout(() => resolve(null), timeoutMs).unref())]);
  if (r === null) {
    w.child.kill('SIGKILL');
    throw new Error(`worker did not exit within ${timeoutMs} ms; stderr: ${w.stderr()}`);
  }
  if (r.code !== 0) throw new Error(`worker exited with ${r.code ?? r.signal}; stderr: ${w.stderr()}`);
}
