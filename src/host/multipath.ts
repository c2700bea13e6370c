/**
 * dm-multipath maps, found through sysfs and driven with `multipath` / `multipathd`.
 *
 * Transport independent (iSCSI, FC, NVMe with dm-multipath). A map is identified by its WWID:
 * multipath-tools sets the dm uuid to `mpath-<wwid>` (`/sys/block/dm-N/dm/uuid`) and, without
 * user_friendly_names, the map name (`/sys/block/dm-N/dm/name`) to the WWID itself. Lookups
 * read sysfs (os-brick `find_sysfs_multipath_dm`, `get_dm_name`), never `multipath -l`, which is
 * slow and was dropped by os-brick's 2017 rewrite. Actions follow os-brick's `linuxscsi`:
 * `multipath -a` + `multipathd add path` to force a map over a single path (needed with
 * `find_multipaths yes|smart`), `multipath -f` to flush, `multipathd del map` as the forced
 * fallback, `multipathd resize map` after the paths have grown.
 *
 * @module
 */
import { BrickError } from '../errors.js';
import type { HostContext } from './context.js';
import { retry, waitFor } from './retry.js';
import { listDir, readAttr, pathExists } from './sysfs.js';

/** A multipath map as sysfs shows it. */
export interface MultipathMap {
  /** Kernel name, `dm-3`; the device is `/dev/dm-3`. */
  dm: string;
  /** Map name (`/dev/mapper/<name>`): the WWID, or `mpathN` with user_friendly_names. */
  name: string;
  /** The WWID (the dm uuid without its `mpath-` prefix). */
  wwid: string;
  /** Block devices under the map (`/sys/block/dm-N/slaves`), e.g. `['sdb', 'sdc']`. */
  paths: string[];
}

/** The map whose kernel name is `dm` (`dm-3`), or `undefined` when it is not a multipath map. */
export async function mapByDm(ctx: HostContext, dm: string): Promise<MultipathMap | undefined> {
  const uuid = await readAttr(ctx, `/sys/block/${dm}/dm/uuid`);
  if (!uuid || !uuid.startsWith('mpath-')) return undefined;
  const name = (await readAttr(ctx, `/sys/block/${dm}/dm/name`)) ?? uuid.slice(6);
  return { dm, name, wwid: uuid.slice(6), paths: await listDir(ctx, `/sys/block/${dm}/slaves`) };
}

/** The multipath map holding block device `device` (`sdb`, via `/sys/block/sdb/holders/dm-*`), or `undefined`. */
export async function mapForDevice(ctx: HostContext, device: string): Promise<MultipathMap | undefined> {
  for (const h of await listDir(ctx, `/sys/block/${device}/holders`)) {
    if (!h.startsWith('dm-')) continue;
    const m = await mapByDm(ctx, h);
    if (m) return m;
  }
  return undefined;
}

/** The multipath map for `wwid` (the dm whose uuid is `mpath-<wwid>`), or `undefined`. */
export async function mapForWwid(ctx: HostContext, wwid: string): Promise<MultipathMap | undefined> {
  for (const dm of await listDir(ctx, '/sys/block')) {
    if (!dm.startsWith('dm-')) continue;
    if ((await readAttr(ctx, `/sys/block/${dm}/dm/uuid`)) === `mpath-${wwid}`) return mapByDm(ctx, dm);
  }
  return undefined;
}

/** The multipath map for `/dev/dm-N`, `/dev/mapper/NAME` or a map name, or `undefined`. */
export async function mapForPath(ctx: HostContext, pathOrName: string): Promise<MultipathMap | undefined> {
  const m = /^(?:\/dev\/)?(dm-\d+)$/.exec(pathOrName);
  if (m) return mapByDm(ctx, m[1]!);
  const name = pathOrName.startsWith('/dev/mapper/') ? pathOrName.slice(12) : pathOrName;
  for (const dm of await listDir(ctx, '/sys/block')) {
    if (!dm.startsWith('dm-')) continue;
    if ((await readAttr(ctx, `/sys/block/${dm}/dm/name`)) === name) return mapByDm(ctx, dm);
  }
  return undefined;
}

/**
 * True when multipathd answers (`multipathd show status`; os-brick `is_multipath_running`:
 * exit 0 and no "error receiving packet" on stdout). Never throws.
 */
export async function isMultipathdRunning(ctx: HostContext, timeoutMs = 10_000): Promise<boolean> {
  try {
    const r = await ctx.executor.run(['multipathd', 'show', 'status'], { timeoutMs, checkExitCode: false });
    return r.exitCode === 0 && !/error receiving packet/i.test(r.stdout);
  } catch {
    return false;
  }
}

/**
 * Whitelist `wwid` in multipath's wwids file (`multipath -a WWID`) so that a map is made even
 * for a single path under `find_multipaths yes|smart` (os-brick `multipath_add_wwid`). Never throws;
 * returns whether it succeeded.
 */
export async function addWwid(ctx: HostContext, wwid: string, timeoutMs = 10_000): Promise<boolean> {
  try {
    const r = await ctx.executor.run(['multipath', '-a', wwid], { timeoutMs, checkExitCode: false });
    return r.exitCode === 0;
  } catch {
    return false;
  }
}

/** Ask multipathd to take path `path` (`/dev/sdb`) into its map (`multipathd add path`, os-brick `multipath_add_path`). Never throws. */
export async function addPath(ctx: HostContext, path: string, timeoutMs = 10_000): Promise<boolean> {
  try {
    const r = await ctx.executor.run(['multipathd', 'add', 'path', path], { timeoutMs, checkExitCode: false });
    return r.exitCode === 0 && !/fail/i.test(r.stdout);
  } catch {
    return false;
  }
}

/** Remove path `path` from multipathd (`multipathd del path`), for paths it keeps after the device is gone. Never throws. */
export async function delPath(ctx: HostContext, path: string, timeoutMs = 10_000): Promise<boolean> {
  try {
    const r = await ctx.executor.run(['multipathd', 'del', 'path', path], { timeoutMs, checkExitCode: false });
    return r.exitCode === 0;
  } catch {
    return false;
  }
}

/**
 * Options for {@link waitForMap}.
 */
export interface WaitForMapOptions {
  /** Give up after this many ms. Default 10 000 (os-brick's grace for the DM). */
  timeoutMs?: number;
  /** Block devices that must all be in the map (at least one, when given). */
  paths?: readonly string[];
}

/**
 * Wait until a multipath map for `wwid` exists (and, when `paths` is given, holds at least one
 * of them), and return it.
 * @throws RetryExhaustedError when it does not appear in time
 */
export async function waitForMap(ctx: HostContext, wwid: string, options: WaitForMapOptions = {}): Promise<MultipathMap> {
  return waitFor(
    async () => {
      const m = await mapForWwid(ctx, wwid);
      if (!m) return undefined;
      if (options.paths && options.paths.length > 0 && !options.paths.some((p) => m.paths.includes(p))) return undefined;
      return m;
    },
    { timeoutMs: options.timeoutMs ?? 10_000, description: `multipath map for ${wwid}` },
  );
}

/** Options for {@link flushMap}. */
export interface FlushMapOptions {
  /** Attempts (os-brick 3). Default 3. */
  attempts?: number;
  /** Per-attempt bound, ms. Default 120 000. */
  timeoutMs?: number;
  /** First back-off, ms. Default 1 000. */
  delayMs?: number;
}

/**
 * Flush and remove map `name` (`multipath -f NAME`: queued I/O is written, then the map is
 * removed), retried (os-brick `flush_multipath_device`). A map that disappears anyway counts as
 * flushed (gobrick). Fails while the map is open (mounted, in use).
 * @throws ProcessExecutionError / ProcessTimeoutError when every attempt fails and the map is still there
 */
export async function flushMap(ctx: HostContext, name: string, options: FlushMapOptions = {}): Promise<void> {
  await retry(
    async () => {
      if (!(await mapForPath(ctx, name))) return;
      try {
        await ctx.executor.run(['multipath', '-f', name], { timeoutMs: options.timeoutMs ?? 120_000 });
      } catch (err) {
        if (!(await mapForPath(ctx, name))) return;
        throw err;
      }
    },
    { attempts: options.attempts ?? 3, delayMs: options.delayMs ?? 1_000 },
  );
}

/**
 * Remove map `name` without flushing (`multipathd del map NAME`, then `dmsetup remove --force`
 * if it is still there), waiting until it has left sysfs. Used by forced disconnects when the
 * flush failed (os-brick `multipath_del_map`). Data still queued in the map is lost.
 * @throws {@link BrickError} when the map is still present after `timeoutMs`
 */
export async function removeMap(ctx: HostContext, name: string, timeoutMs = 30_000): Promise<void> {
  if (!(await mapForPath(ctx, name))) return;
  await ctx.executor.run(['multipathd', 'del', 'map', name], { timeoutMs: 10_000, checkExitCode: false }).catch(() => undefined);
  try {
    await waitFor(async () => !(await mapForPath(ctx, name)), { timeoutMs: Math.min(timeoutMs, 5_000), description: `removal of map ${name}` });
    return;
  } catch {
    /* fall through to dmsetup */
  }
  await ctx.executor.run(['dmsetup', 'remove', '--force', name], { timeoutMs: 30_000, checkExitCode: false }).catch(() => undefined);
  try {
    await waitFor(async () => !(await mapForPath(ctx, name)), { timeoutMs, description: `removal of map ${name}` });
  } catch {
    throw new BrickError(`multipath map ${name} could not be removed`, 'VOLUME_PATH_NOT_REMOVED', { details: { map: name } });
  }
}

/**
 * Make map `name` take its paths' new size (`multipathd resize map NAME`, os-brick
 * `multipath_resize_map`), retrying while multipathd answers "timeout" or "fail" (it does so
 * while it is still processing the paths' change uevents), up to `timeoutMs`.
 * @throws {@link BrickError} (code `EXTEND_FAILED`) when multipathd keeps refusing
 */
export async function resizeMap(ctx: HostContext, name: string, timeoutMs = 60_000): Promise<void> {
  let last = '';
  try {
    await waitFor(
      async () => {
        const r = await ctx.executor.run(['multipathd', 'resize', 'map', name], { timeoutMs: 30_000, checkExitCode: false });
        last = `${r.stdout}${r.stderr}`.trim();
        return r.exitCode === 0 && !/timeout|fail/i.test(last);
      },
      { timeoutMs, intervalMs: 200, maxIntervalMs: 2_000, description: `multipathd resize map ${name}` },
    );
  } catch {
    throw new BrickError(`multipathd could not resize map ${name}: ${last || 'no answer'}`, 'EXTEND_FAILED', { details: { map: name } });
  }
}

/** True when `/dev/dm-N` of map `m` exists on the host. */
export async function mapDeviceExists(ctx: HostContext, m: MultipathMap): Promise<boolean> {
  return pathExists(ctx, `/sys/block/${m.dm}`);
}
