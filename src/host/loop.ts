/**
 * Loop devices: attach a file as a block device, detach it, list them.
 *
 * Uses util-linux `losetup` (`--find --show` to attach, `--detach`, `--list --json`), as Cinder's
 * file-backed drivers and os-brick's `LocalConnector` users do. Attach uses direct I/O when the
 * file system allows it so that data written through the device is on the file when the write
 * returns.
 *
 * @module
 */
import type { HostContext } from './context.js';
import { listDir, readAttr } from './sysfs.js';
import { VolumeDeviceNotFoundError, InvalidInputError, ProcessExecutionError } from '../errors.js';

/** One loop device as `losetup --list` reports it. */
export interface LoopDevice {
  /** `/dev/loopN`. */
  name: string;
  /** Absolute path of the backing file (as the kernel recorded it). */
  backFile: string;
  /** Read-only flag. */
  readOnly: boolean;
}

/**
 * Attach `file` as a new loop device and return its path (`/dev/loopN`).
 * @throws {@link InvalidInputError} for a relative path
 * @throws ProcessExecutionError when losetup fails (no free device, file missing)
 */
export async function attachLoop(ctx: HostContext, file: string, options: { readOnly?: boolean; directIo?: boolean } = {}): Promise<string> {
  if (!file.startsWith('/')) throw new InvalidInputError('file', `loop backing file must be an absolute path, got ${JSON.stringify(file)}`);
  const argv = ['losetup', '--find', '--show'];
  if (options.readOnly) argv.push('--read-only');
  if (options.directIo) argv.push('--direct-io=on');
  argv.push(file);
  const { stdout } = await ctx.executor.run(argv, { timeoutMs: 30_000 });
  const dev = stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(dev)) throw new VolumeDeviceNotFoundError(`losetup did not report a loop device for ${file} (printed ${JSON.stringify(dev)})`);
  return dev;
}

/**
 * Detach loop device `device`. A device that is already gone is not an error.
 * @throws {@link ProcessExecutionError} when `losetup --detach` fails otherwise (e.g. without privilege)
 * @throws {@link ProcessTimeoutError} when it does not finish within 30 s
 */
export async function detachLoop(ctx: HostContext, device: string): Promise<void> {
  const r = await ctx.executor.run(['losetup', '--detach', device], { timeoutMs: 30_000, checkExitCode: false });
  if (r.exitCode !== 0 && !/No such device|No such file|not a block device|failed to use device/i.test(r.stderr)) {
    throw new ProcessExecutionError(['losetup', '--detach', device], r.exitCode, r.stdout, r.stderr);
  }
}

/**
 * Tell the kernel the backing file of `device` changed size (`losetup --set-capacity`).
 * @throws {@link ProcessExecutionError} when losetup fails; {@link ProcessTimeoutError} when it does not finish within 30 s
 */
export async function refreshLoopCapacity(ctx: HostContext, device: string): Promise<void> {
  await ctx.executor.run(['losetup', '--set-capacity', device], { timeoutMs: 30_000 });
}

/**
 * Every attached loop device, read from sysfs (`/sys/block/loopN/loop/backing_file`) under the
 * host root. No program runs, so it is cheap and works in fixture trees.
 */
export async function listLoops(ctx: HostContext): Promise<LoopDevice[]> {
  const names = (await listDir(ctx, '/sys/block')).filter((x) => /^loop\d+$/.test(x)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
  const out: LoopDevice[] = [];
  for (const n of names) {
    const backFile = await readAttr(ctx, `/sys/block/${n}/loop/backing_file`);
    if (backFile === undefined) continue; // not attached
    // Older kernels have no `ro` file: read-write then.
    const ro = (await readAttr(ctx, `/sys/block/${n}/ro`)) === '1';
    out.push({ name: `/dev/${n}`, backFile: backFile.replace(/ \(deleted\)$/, ''), readOnly: ro });
  }
  return out;
}

/** Loop devices currently backed by `file`. */
export async function loopsForFile(ctx: HostContext, file: string): Promise<string[]> {
  return (await listLoops(ctx)).filter((l) => l.backFile === file).map((l) => l.name);
}
