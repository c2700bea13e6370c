/**
 * `brick quickstart`: the main job, end to end on the configured default backend (the embedded
 * file backend unless configured otherwise), every step verified on a real device.
 *
 * Steps: check privileges and tools; create a 1 GiB volume; attach it (a real `/dev/loopN`);
 * write a known pattern through the device and read it back; snapshot; overwrite the source;
 * create a volume from the snapshot and verify it holds the original data; clone and verify
 * the clone holds the current data; extend the attached volume and verify the device's new
 * size; detach; delete everything; check that no loop device, file or record it made is left.
 * On a failure the remaining objects are cleaned up and the failing step is reported.
 *
 * @module
 */
import { access, constants } from 'node:fs/promises';
import { PrivilegeError, BrickError, VerificationError, VolumeDeviceNotFoundError } from '../errors.js';
import type { Executor } from '../exec/executor.js';
import { deviceSizeBytes } from '../host/blockdev.js';
import { loopsForFile } from '../host/loop.js';
import type { Backend, Volume, Snapshot } from '../library/index.js';
import type { Runtime } from './runtime.js';
import { requireRootHelper } from './privilege.js';

const GiB = 1024 ** 3;
const MiB = 1024 * 1024;

/** One step's outcome. Seconds are wall-clock. */
export interface QuickstartStep {
  name: string;
  ok: boolean;
  seconds: number;
  detail?: string;
}

/** The quickstart's result, printed as JSON with `--json`. */
export interface QuickstartResult {
  ok: boolean;
  device: string | null;
  steps: QuickstartStep[];
  error?: Record<string, unknown>;
}

/** A 1 MiB text pattern unique to `tag` (text, so it survives the Executor's UTF-8 stdout). */
export function quickstartPattern(tag: string): string {
  const line = `brick quickstart ${tag} `.padEnd(63, '#') + '\n';
  return line.repeat(MiB / 64);
}

async function writeBlock(ex: Executor, device: string, mib: number, data: string): Promise<void> {
  await ex.run(['dd', `of=${device}`, 'bs=1M', 'count=1', `seek=${mib}`, 'iflag=fullblock', 'oflag=direct', 'conv=fsync,notrunc', 'status=none'], {
    input: data,
    timeoutMs: 60_000,
  });
}

async function readBlock(ex: Executor, device: string, mib: number): Promise<string> {
  return (await ex.run(['dd', `if=${device}`, 'bs=1M', 'count=1', `skip=${mib}`, 'iflag=direct', 'status=none'], { timeoutMs: 60_000 })).stdout;
}

async function verifyBlock(ex: Executor, device: string, mib: number, tag: string): Promise<void> {
  const got = await readBlock(ex, device, mib);
  if (got !== quickstartPattern(tag)) {
    const seen = /^brick quickstart (\S+) /.exec(got)?.[1] ?? (/^\0*$/.test(got) ? 'zeros' : 'unrecognised data');
    throw new VerificationError(`data check failed on ${device} at ${mib} MiB: expected pattern ${tag}, found ${seen}`, { details: { device, offset_mib: mib } });
  }
}

/**
 * Check root or a working root helper, and the tools, before anything changes.
 * @throws {@link PrivilegeError} saying plainly what is missing
 */
export async function preflight(rt: Runtime, uid: number): Promise<string> {
  const ex = rt.context.executor;
  await requireRootHelper(ex, uid, 'brick quickstart attaches loop devices', 'losetup, blockdev, dd');
  for (const tool of ['losetup', 'blockdev', 'dd']) {
    try {
      await ex.run([tool, '--version'], { root: false, timeoutMs: 15_000 });
    } catch {
      throw new PrivilegeError(`brick quickstart needs ${tool} (util-linux / coreutils) and it is not installed. Nothing was changed.`);
    }
  }
  try {
    await access('/dev/loop-control', constants.F_OK);
  } catch {
    throw new PrivilegeError('this kernel offers no loop devices (/dev/loop-control is missing; try `modprobe loop`). Nothing was changed.');
  }
  return uid === 0 ? 'running as root' : `root helper: ${rt.rootHelper.join(' ')}`;
}

/** What the steps share: the runtime and what the run has made so far. */
interface QuickstartRun {
  readonly rt: Runtime;
  readonly ex: Executor;
  /** Volume size in GiB. */
  readonly size: number;
  /** The volume's last MiB (offset of the end-of-volume pattern). */
  readonly last: number;
  /** Volumes made, in order (the cleanup deletes them in reverse). */
  readonly made: Volume[];
  /** Snapshots made. */
  readonly snaps: Snapshot[];
  backend?: Backend;
  /** The source volume. */
  vol?: Volume;
  /** The source volume's device on this host, once attached and checked. */
  device?: string;
  snap?: Snapshot;
  /** The volume created from the snapshot. */
  restored?: Volume;
  clone?: Volume;
  /** The backing files of the volumes made (their `provider_location`), taken before deleting. */
  files: string[];
}

/** A step: its name, and the work, which returns the step's detail (if any). */
type QuickstartStepRun = readonly [name: string, run: (q: QuickstartRun) => Promise<string | void>];

/**
 * A value an earlier step set. The steps run in order and a failed step ends the run, so it is
 * always there; the check only guards the step list's order.
 */
function need<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('quickstart: a step ran before the step it depends on');
  return value;
}

async function checkRootAndTools(q: QuickstartRun, uid: number): Promise<string> {
  return preflight(q.rt, uid);
}

async function setUpBackend(q: QuickstartRun): Promise<string> {
  const b = await q.rt.backend();
  q.backend = b;
  return `${b.id} (${b.config.volume_driver})`;
}

async function createSource(q: QuickstartRun): Promise<string> {
  const v = await need(q.backend).createVolume({ size: q.size, name: 'quickstart-source' });
  q.made.push(v);
  q.vol = v;
  return v.id;
}

/** @throws {@link VolumeDeviceNotFoundError} without a device path, {@link VerificationError} for a wrong device size */
async function attachSource(q: QuickstartRun): Promise<string> {
  const conn = await need(q.vol).attach();
  const path = conn.path;
  if (!path) throw new VolumeDeviceNotFoundError('attach returned no device path');
  const bytes = await deviceSizeBytes(q.rt.context, path);
  if (bytes !== q.size * GiB) throw new VerificationError(`device ${path} is ${bytes} bytes, expected ${q.size * GiB}`);
  q.device = path;
  return `${path}, ${bytes} bytes`;
}

async function writePatternA(q: QuickstartRun): Promise<string> {
  const device = need(q.device);
  await writeBlock(q.ex, device, 0, quickstartPattern('A'));
  await writeBlock(q.ex, device, q.last, quickstartPattern('A-end'));
  await verifyBlock(q.ex, device, 0, 'A');
  await verifyBlock(q.ex, device, q.last, 'A-end');
  return `2 MiB at offsets 0 and ${q.last} MiB`;
}

async function snapshotSource(q: QuickstartRun): Promise<string> {
  const s = await need(q.vol).createSnapshot({ name: 'quickstart-snapshot' });
  q.snaps.push(s);
  q.snap = s;
  return s.id;
}

async function overwriteWithB(q: QuickstartRun): Promise<void> {
  const device = need(q.device);
  await writeBlock(q.ex, device, 0, quickstartPattern('B'));
  await verifyBlock(q.ex, device, 0, 'B');
}

async function createFromSnapshot(q: QuickstartRun): Promise<string> {
  const v = await need(q.snap).createVolume({ name: 'quickstart-from-snapshot' });
  q.made.push(v);
  q.restored = v;
  return v.id;
}

/** Attach `vol`, check the patterns at the given MiB offsets, detach; returns the device path. */
async function verifyAttached(q: QuickstartRun, vol: Volume, patterns: readonly (readonly [mib: number, tag: string])[]): Promise<string> {
  const c = await vol.attach();
  try {
    for (const [mib, tag] of patterns) await verifyBlock(q.ex, c.path!, mib, tag);
  } finally {
    await vol.detach();
  }
  return c.path ?? '';
}

async function verifyRestored(q: QuickstartRun): Promise<string> {
  return verifyAttached(q, need(q.restored), [
    [0, 'A'],
    [q.last, 'A-end'],
  ]);
}

async function cloneSource(q: QuickstartRun): Promise<string> {
  const v = await need(q.vol).clone({ name: 'quickstart-clone' });
  q.made.push(v);
  q.clone = v;
  return v.id;
}

async function verifyClone(q: QuickstartRun): Promise<string> {
  return verifyAttached(q, need(q.clone), [[0, 'B']]);
}

/** @throws {@link VerificationError} when the device does not show the new size */
async function extendAttached(q: QuickstartRun): Promise<string> {
  const device = need(q.device);
  const grown = (q.size + 1) * GiB;
  const bytes = await need(q.vol).extend(q.size + 1);
  const seen = await deviceSizeBytes(q.rt.context, device);
  if (bytes !== grown || seen !== bytes) throw new VerificationError(`after extend the device is ${seen} bytes (extend returned ${bytes}), expected ${grown}`);
  const end = (q.size + 1) * 1024 - 1;
  await writeBlock(q.ex, device, end, quickstartPattern('C'));
  await verifyBlock(q.ex, device, end, 'C');
  await verifyBlock(q.ex, device, 0, 'B');
  return `${device} now ${seen} bytes`;
}

/** @throws {@link VerificationError} when the volume is still attached here */
async function detachSource(q: QuickstartRun): Promise<void> {
  const vol = need(q.vol);
  await vol.detach();
  if (vol.localAttach) throw new VerificationError('volume still attached after detach');
}

async function deleteAll(q: QuickstartRun): Promise<void> {
  q.files = q.made.map((v) => v.providerLocation).filter((p): p is string => typeof p === 'string');
  for (const v of [need(q.restored), need(q.clone)]) await v.delete();
  await need(q.snap).delete();
  await need(q.vol).delete();
}

/** What the run made and is still there: loop devices, backing files, store records. */
async function leftovers(q: QuickstartRun): Promise<string[]> {
  const left: string[] = [];
  for (const f of q.files) {
    for (const l of await loopsForFile(q.rt.context, f)) left.push(`loop device ${l} over ${f}`);
    const exists = await access(f).then(
      () => true,
      () => false,
    );
    if (exists) left.push(`file ${f}`);
  }
  for (const v of q.made) if ((await q.rt.store.getVolumes({ id: v.id })).length > 0) left.push(`volume record ${v.id}`);
  const snap = need(q.snap);
  if ((await q.rt.store.getSnapshots({ id: snap.id })).length > 0) left.push(`snapshot record ${snap.id}`);
  return left;
}

/** @throws {@link VerificationError} listing what is left behind */
async function checkNothingLeft(q: QuickstartRun): Promise<string> {
  const left = await leftovers(q);
  if (left.length > 0) throw new VerificationError(`left behind: ${left.join('; ')}`);
  q.made.length = 0;
  q.snaps.length = 0;
  return `${q.files.length} files, their loop devices and records are gone`;
}

/** The steps, in order, for a volume of `size` GiB, run as `uid`. */
function quickstartSteps(size: number, uid: number): QuickstartStepRun[] {
  return [
    ['check root and tools', (q) => checkRootAndTools(q, uid)],
    ['set up backend', setUpBackend],
    [`create ${size} GiB volume`, createSource],
    ['attach volume', attachSource],
    ['write pattern A through the device and read it back', writePatternA],
    ['snapshot the volume', snapshotSource],
    ['overwrite the source with pattern B', overwriteWithB],
    ['create a volume from the snapshot', createFromSnapshot],
    ['verify it holds pattern A (the data at snapshot time)', verifyRestored],
    ['clone the source', cloneSource],
    ['verify the clone holds pattern B', verifyClone],
    [`extend the attached volume to ${size + 1} GiB`, extendAttached],
    ['detach the volume', detachSource],
    ['delete the volumes and the snapshot', deleteAll],
    ['check nothing is left behind', checkNothingLeft],
  ];
}

/** Run one step, timing it and reporting it (ok, or failed with the error's message); rethrows. */
async function runStep(q: QuickstartRun, [name, run]: QuickstartStepRun, steps: QuickstartStep[], onStep?: (s: QuickstartStep) => void): Promise<void> {
  const t0 = process.hrtime.bigint();
  const seconds = (): number => Number(process.hrtime.bigint() - t0) / 1e9;
  let s: QuickstartStep;
  try {
    const detail = await run(q);
    s = { name, ok: true, seconds: seconds() };
    if (typeof detail === 'string') s.detail = detail;
  } catch (err) {
    s = { name, ok: false, seconds: seconds(), detail: err instanceof Error ? err.message : String(err) };
    steps.push(s);
    onStep?.(s);
    throw err;
  }
  steps.push(s);
  onStep?.(s);
}

/** Best-effort cleanup of whatever a failed run made: detach, delete snapshots, delete volumes newest first. */
async function cleanUp(q: QuickstartRun): Promise<void> {
  for (const v of q.made) await v.detach({ force: true, ignoreErrors: true }).catch(() => undefined);
  for (const s of q.snaps) await s.delete().catch(() => undefined);
  for (const v of [...q.made].reverse()) await v.delete().catch(() => undefined);
}

/** Run the quickstart; never throws: failures are in the result. */
export async function runQuickstart(rt: Runtime, options: { sizeGiB?: number; uid: number; onStep?: (s: QuickstartStep) => void }): Promise<QuickstartResult> {
  const steps: QuickstartStep[] = [];
  const result: QuickstartResult = { ok: false, device: null, steps };
  const size = options.sizeGiB ?? 1;
  const q: QuickstartRun = { rt, ex: rt.context.executor, size, last: size * 1024 - 1, made: [], snaps: [], files: [] };
  try {
    for (const step of quickstartSteps(size, options.uid)) await runStep(q, step, steps, options.onStep);
    result.ok = true;
  } catch (err) {
    result.error = err instanceof BrickError ? err.toJSON() : { message: err instanceof Error ? err.message : String(err) };
    await cleanUp(q);
  }
  result.device = q.device ?? null;
  return result;
}
