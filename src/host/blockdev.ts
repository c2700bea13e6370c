/**
 * Block device facts and checks: size, read test.
 *
 * Size comes from sysfs (`/sys/class/block/NAME/size`, in 512-byte sectors, the kernel's unit
 * whatever the logical block size) with `blockdev --getsize64` as the fallback for paths sysfs
 * cannot name. The read test is os-brick's `check_valid_device` (`dd` of the first block,
 * bypassing the page cache); {@link readFirstBlock} is the same test done in this process, for
 * devices that have just appeared.
 *
 * @module
 */
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import type { HostContext } from './context.js';
import { hostPath } from './context.js';
import { readAttr, resolvePath } from './sysfs.js';

/**
 * Size of block device `device` (`/dev/sdb`, `/dev/dm-3`, `/dev/loop0`, or a link to one) in bytes.
 * @throws ProcessExecutionError when neither sysfs nor blockdev can tell
 */
export async function deviceSizeBytes(ctx: HostContext, device: string): Promise<number> {
  const real = await resolvePath(ctx, device);
  const sectors = real === undefined ? undefined : await readAttr(ctx, `/sys/class/block/${basename(real)}/size`);
  const n = Number(sectors ?? NaN);
  if (Number.isFinite(n)) return n * 512;
  // sysfs cannot name it: ask the kernel through blockdev.
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

/**
 * True when the first 4 KiB of block device `device` (`/dev/dm-3`) read back, read by this
 * process: no program is started, which matters when many devices attach at once (in the lab VM
 * under an eight-LUN attach, starting `dd` took one to three seconds per device). The read goes
 * through the page cache, so it proves something only for a device whose cache is cold: one that
 * has just appeared, which is what a connect returns. {@link checkReadable} (O_DIRECT) remains the
 * test for a device that may have been read before (os-brick `check_valid_device`).
 *
 * Falls back to {@link checkReadable} when this process may not open the device (Brick runs
 * unprivileged with a root helper). A read still pending after `timeoutMs` counts as a failure;
 * the descriptor is closed when the read finally returns. An empty read (size 0) is a failure.
 * Never throws.
 */
export async function readFirstBlock(ctx: HostContext, device: string, timeoutMs = 30_000): Promise<boolean> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(hostPath(ctx.hostRoot, device), 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EACCES' || code === 'EPERM' ? checkReadable(ctx, device, timeoutMs) : false;
  }
  const read = fh.read(Buffer.alloc(4096), 0, 4096, 0).then(
    (r) => r.bytesRead > 0,
    () => false,
  );
  void read.finally(() => fh.close().catch(() => undefined));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    const ok = await Promise.race([read, timeout]);
    if (!ok) ctx.logger.debug({ device, timeout_ms: timeoutMs }, 'blockdev: first block did not read');
    return ok;
  } finally {
    clearTimeout(timer);
  }
}
