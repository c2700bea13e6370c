/**
 * The torture test's scenarios: what each worker process does, and when the parent kills it.
 *
 * Operations name their target by position (`v`, `s`: an index, taken modulo the number of
 * volumes or snapshots in the store when the operation starts, ordered by creation time; for
 * `detach`, among the volumes that have a connection), so a sequence stays meaningful whatever
 * the other workers did meanwhile and shrinks well. `write` attaches the volume first when it is
 * not attached on this host.
 */
import fc from 'fast-check';

/** One operation a worker runs through the library API. */
export type Op =
  | { k: 'create'; size: number }
  | { k: 'snapshot'; v: number }
  | { k: 'clone'; v: number }
  | { k: 'fromSnapshot'; s: number }
  | { k: 'attach'; v: number }
  | { k: 'write'; v: number; slot: number }
  | { k: 'extend'; v: number; huge: boolean }
  | { k: 'detach'; v: number }
  | { k: 'deleteVolume'; v: number }
  | { k: 'deleteSnapshot'; s: number }
  | { k: 'list' };

/** When the parent kills a worker: `delayMs` after the worker announces operation `atOp`. */
export interface Kill {
  atOp: number;
  delayMs: number;
}

/** One worker: its operations and an optional kill (after which a fresh process runs the rest). */
export interface WorkerPlan {
  ops: Op[];
  kill: Kill | null;
}

/** A whole run: the workers start together on one empty store and pool. */
export interface Scenario {
  workers: WorkerPlan[];
}

/** Sizes of the generated scenarios. */
export interface ScenarioLimits {
  /** Number of concurrent workers (at least 2). */
  maxWorkers: number;
  /** Longest operation sequence per worker. */
  maxOps: number;
}

/** Slots a worker writes in (64 KiB each, in the worker's own 64 MiB region of the volume). */
export const WRITE_SLOTS = 8;

const idx = fc.nat({ max: 7 });

/** Any operation, weighted towards the ones that make objects to work on. */
export function opArbitrary(): fc.Arbitrary<Op> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ k: fc.constant('create' as const), size: fc.integer({ min: 1, max: 2 }) }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('snapshot' as const), v: idx }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('clone' as const), v: idx }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('fromSnapshot' as const), s: idx }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('attach' as const), v: idx }) },
    { weight: 3, arbitrary: fc.record({ k: fc.constant('write' as const), v: idx, slot: fc.nat({ max: WRITE_SLOTS - 1 }) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('extend' as const), v: idx, huge: fc.constantFrom(false, false, false, true) }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('detach' as const), v: idx }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('deleteVolume' as const), v: idx }) },
    { weight: 2, arbitrary: fc.record({ k: fc.constant('deleteSnapshot' as const), s: idx }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('list' as const) }) },
  );
}

/**
 * A worker's plan: a create (so that the others find something to work on early), up to
 * `maxOps - 1` more operations and, most of the time, a kill somewhere in them. Operations take
 * 5-200 ms, so the kill delays stay short and mostly land inside the operation they follow.
 */
function workerArbitrary(maxOps: number): fc.Arbitrary<WorkerPlan> {
  const first = fc.record({ k: fc.constant('create' as const), size: fc.constant(1) });
  return fc
    .tuple(first, fc.array(opArbitrary(), { minLength: 0, maxLength: maxOps - 1 }))
    .map(([c, rest]) => [c, ...rest])
    .chain((ops) =>
      fc.record({
        ops: fc.constant(ops),
        kill: fc.option(fc.record({ atOp: fc.nat({ max: ops.length - 1 }), delayMs: fc.integer({ min: 0, max: 120 }) }), { freq: 4, nil: null }),
      }),
    );
}

/** Scenarios of 2..maxWorkers workers. */
export function scenarioArbitrary(limits: ScenarioLimits): fc.Arbitrary<Scenario> {
  return fc.record({ workers: fc.array(workerArbitrary(limits.maxOps), { minLength: 2, maxLength: limits.maxWorkers }) });
}

/** One operation as a short word, e.g. `write v1@3`, `extend v0 huge`. */
export function formatOp(op: Op): string {
  switch (op.k) {
    case 'create':
      return `create ${op.size}G`;
    case 'write':
      return `write v${op.v}@${op.slot}`;
    case 'extend':
      return `extend v${op.v}${op.huge ? ' huge' : ''}`;
    case 'fromSnapshot':
    case 'deleteSnapshot':
      return `${op.k} s${op.s}`;
    case 'list':
      return 'list';
    default:
      return `${op.k} v${op.v}`;
  }
}

/** The scenario on a few lines: one per worker, with its kill. */
export function formatScenario(s: Scenario): string {
  return s.workers
    .map((w, i) => `  worker ${i}: ${w.ops.map(formatOp).join('; ')}${w.kill ? `  [SIGKILL ${w.kill.delayMs} ms after op ${w.kill.atOp} starts]` : ''}`)
    .join('\n');
}
