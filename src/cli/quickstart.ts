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
import { PrivilegeError, BrickError, VolumeDeviceNotFoundError } from '../errors.js';
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
    throw new BrickError(`data check failed on ${device} at ${mib} MiB: expected pattern ${tag}, found ${seen}`, 'BRICK_ERROR', { details: { device, offset_mib: mib } });
  }
}

/**
 * Check root or a working root helper, and the tools, before anything changes.
 * @throws {@link PrivilegeError} saying plainly what is missing
 */
export async function preflight(rt: Runtime, uid: number): Promise<string> {
  const ex = rt.context.host.executor;
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

/** Run the quickstart; never throws: failures are in the result. */
export async function runQuickstart(rt: Runtime, options: { sizeGiB?: number; uid: number; onStep?: (s: QuickstartStep) => void }): Promise<QuickstartResult> {
  const steps: QuickstartStep[] = [];
  const result: QuickstartResult = { ok: false, device: null, steps };
  const ex = rt.context.host.executor;
  const size = options.sizeGiB ?? 1;
  const made: Volume[] = [];
  const snaps: Snapshot[] = [];
  let backend: Backend | undefined;

  async function step<T>(name: string, fn: () => Promise<T | { value: T; detail: string }>): Promise<T> {
    const t0 = process.hrtime.bigint();
    try {
      const r = await fn();
      const s: QuickstartStep = { name, ok: true, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
      let value = r as T;
      if (r && typeof r === 'object' && 'detail' in (r as object) && 'value' in (r as object)) {
        s.detail = (r as { detail: string }).detail;
        value = (r as { value: T }).value;
      }
      steps.push(s);
      options.onStep?.(s);
      return value;
    } catch (err) {
      const s: QuickstartStep = { name, ok: false, seconds: Number(process.hrtime.bigint() - t0) / 1e9, detail: err instanceof Error ? err.message : String(err) };
      steps.push(s);
      options.onStep?.(s);
      throw err;
    }
  }

  try {
    await step('check root and tools', async () => ({ value: undefined, detail: await preflight(rt, options.uid) }));
    backend = await step('set up backend', async () => {
      const b = await rt.backend();
      return { value: b, detail: `${b.id} (${b.config.volume_driver})` };
    });
    const b = backend;
    const vol = await step(`create ${size} GiB volume`, async () => {
      const v = await b.createVolume({ size, name: 'quickstart-source' });
      made.push(v);
      return { value: v, detail: v.id };
    });
    const device = await step('attach volume', async () => {
      const conn = await vol.attach();
      const path = conn.path;
      if (!path) throw new VolumeDeviceNotFoundError('attach returned no device path');
      const bytes = await deviceSizeBytes(rt.context.host, path);
      if (bytes !== size * GiB) throw new BrickError(`device ${path} is ${bytes} bytes, expected ${size * GiB}`);
      return { value: path, detail: `${path}, ${bytes} bytes` };
    });
    result.device = device;
    const last = size * 1024 - 1;
    await step('write pattern A through the device and read it back', async () => {
      await writeBlock(ex, device, 0, quickstartPattern('A'));
      await writeBlock(ex, device, last, quickstartPattern('A-end'));
      await verifyBlock(ex, device, 0, 'A');
      await verifyBlock(ex, device, last, 'A-end');
      return { value: undefined, detail: `2 MiB at offsets 0 and ${last} MiB` };
    });
    const snap = await step('snapshot the volume', async () => {
      const s = await vol.createSnapshot({ name: 'quickstart-snapshot' });
      snaps.push(s);
      return { value: s, detail: s.id };
    });
    await step('overwrite the source with pattern B', async () => {
      await writeBlock(ex, device, 0, quickstartPattern('B'));
      await verifyBlock(ex, device, 0, 'B');
    });
    const restored = await step('create a volume from the snapshot', async () => {
      const v = await snap.createVolume({ name: 'quickstart-from-snapshot' });
      made.push(v);
      return { value: v, detail: v.id };
    });
    await step('verify it holds pattern A (the data at snapshot time)', async () => {
      const c = await restored.attach();
      try {
        await verifyBlock(ex, c.path!, 0, 'A');
        await verifyBlock(ex, c.path!, last, 'A-end');
      } finally {
        await restored.detach();
      }
      return { value: undefined, detail: c.path ?? '' };
    });
    const clone = await step('clone the source', async () => {
      const v = await vol.clone({ name: 'quickstart-clone' });
      made.push(v);
      return { value: v, detail: v.id };
    });
    await step('verify the clone holds pattern B', async () => {
      const c = await clone.attach();
      try {
        await verifyBlock(ex, c.path!, 0, 'B');
      } finally {
        await clone.detach();
      }
      return { value: undefined, detail: c.path ?? '' };
    });
    await step(`extend the attached volume to ${size + 1} GiB`, async () => {
      const bytes = await vol.extend(size + 1);
      const seen = await deviceSizeBytes(rt.context.host, device);
      if (bytes !== (size + 1) * GiB || seen !== bytes) throw new BrickError(`after extend the device is ${seen} bytes (extend returned ${bytes}), expected ${(size + 1) * GiB}`);
      await writeBlock(ex, device, (size + 1) * 1024 - 1, quickstartPattern('C'));
      await verifyBlock(ex, device, (size + 1) * 1024 - 1, 'C');
      await verifyBlock(ex, device, 0, 'B');
      return { value: undefined, detail: `${device} now ${seen} bytes` };
    });
    await step('detach the volume', async () => {
      await vol.detach();
      if (vol.localAttach) throw new BrickError('volume still attached after detach');
    });
    const files = made.map((v) => v.providerLocation).filter((p): p is string => typeof p === 'string');
    await step('delete the volumes and the snapshot', async () => {
      for (const v of [restored, clone]) await v.delete();
      await snap.delete();
      await vol.delete();
    });
    await step('check nothing is left behind', async () => {
      const left: string[] = [];
      for (const f of files) {
        for (const l of await loopsForFile(rt.context.host, f)) left.push(`loop device ${l} over ${f}`);
        if (
          await access(f)
            .then(() => true)
            .catch(() => false)
        )
          left.push(`file ${f}`);
      }
      for (const v of made) if ((await rt.store.getVolumes({ id: v.id })).length > 0) left.push(`volume record ${v.id}`);
      if ((await rt.store.getSnapshots({ id: snap.id })).length > 0) left.push(`snapshot record ${snap.id}`);
      if (left.length > 0) throw new BrickError(`left behind: ${left.join('; ')}`);
      made.length = 0;
      snaps.length = 0;
      return { value: undefined, detail: `${files.length} files, their loop devices and records are gone` };
    });
    result.ok = true;
  } catch (err) {
    result.error = err instanceof BrickError ? err.toJSON() : { message: err instanceof Error ? err.message : String(err) };
    // Best-effort cleanup of whatever this run made.
    for (const v of made) await v.detach({ force: true, ignoreErrors: true }).catch(() => undefined);
    for (const s of snaps) await s.delete().catch(() => undefined);
    for (const v of [...made].reverse()) await v.delete().catch(() => undefined);
  }
  return result;
}
