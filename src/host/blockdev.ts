/**
 * Block device facts and checks: size, read test.
 *
 * Size comes from sysfs (`/sys/class/block/NAME/size`, in 512-byte sectors, the kernel's unit
 * whatever the logical block size) with `blockdev --getsize64` as the fallback for paths sysfs
 * cannot name. The read test is os-brick's `check_valid_device` (`dd` of the first block).
 *
 * @module
 */
import { readFile, realpath } from 'node:fs/promises';
import { basename } from 'node:path';
import type { HostContext } from './context.js';
import { hostPath } from './context.js';

/**
 * Size of block device `device` (`/dev/sdb`, `/dev/dm-3`, `/dev/loop0`, or a link to one) in bytes.
 * @throws ProcessExecutionError when neither sysfs nor blockdev can tell
 */
export async function deviceSizeBytes(ctx: HostContext, device: string): Promise<number> {
  try {
    const real = await realpath(hostPath(ctx.hostRoot, device));
    const sectors = await readFile(hostPath(ctx.hostRoot, `/sys/class/block/${basename(real)}/size`), 'utf8');
    const n = Number(sectors.trim());
    if (Number.isFinite(n)) return n * 512;
  } catch {
    /* fall back to blockdev */
  }
  const { stdout } = await ctx.executor.run(['blockdev', '--getsize64', device], { timeoutMs: 30_000 });
  return Number(stdout.trim());
}

/**
 * True when the first 4 KiB of `device` can be read (os-brick `check_valid_device`: a device
 * whose path exists but whose I/O fails, e.g. a path of a lost session, is not valid).
 * Never throws.
 */
export async function checkReadable(ctx: HostContext, device: string, timeoutMs = 30_000): Promise<boolean> {
  try {
    const r = await ctx.executor.run(['dd', `if=${device}`, 'of=/dev/null', 'bs=4096', 'count=1', 'iflag=direct'], {
      timeoutMs,
      checkExitCode: false,
    });
    return r.exitCode === 0;
  } catch {
    return false;
  }
}
