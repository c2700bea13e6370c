/**
 * dm-multipath maps, found through sysfs and driven with `multipath` / `multipathd`.
 *
 * Transport independent (iSCSI, FC, NVMe with dm-multipath). A map is identified by its WWID:
 * multipath-tools sets the dm uuid to `mpath-<wwid>` (`/sys/block/dm-N/dm/uuid`) and, without
 * user_friendly_names, the map name (`/sys/block/dm-N/dm/name`) to the WWID itself. Lookups
 * read sysfs (os-brick `find_sysfs_multipath_dm`, `get_dm_name`), never `multipath -l`, which is
 * slow and was dropped by os-brick's 2017 rewrite. Actions follow os-brick's `linuxscsi`:
 * `multipath -a` + `multipathd add path` to force a map over a single path (needed with
 * `find_multipaths yes|smart`), `multipath -f` to flush (after a quicker `dmsetup remove` of
 * an unheld map, see {@link flushMap}), `multipathd del map` as the forced
 * fallback, `multipathd resize map` after the paths have grown. Beyond os-brick,
 * {@link createMap} loads a first map with `dmsetup create` for multipathd to adopt, which is
 * faster than waiting for multipathd to act on udev's events.
 *
 * @module
 */
import { ExtendError, VolumePathNotRemovedError } from '../errors.js';
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
 * Flush and remove map `name`, retried (os-brick `flush_multipath_device`). A map that
 * disappears anyway counts as flushed (gobrick). Fails while the map is open (mounted, in use).
 *
 * A map that nothing holds (no `holders` in sysfs) is first removed with `dmsetup remove
 * --noudevsync NAME`. The kernel refuses that with EBUSY while anything has the map open, and
 * a map nobody has open has nothing buffered: its last close wrote the page cache back, and
 * removal disables `queue_if_no_path` before it suspends (dm-mpath's presuspend), so no I/O can
 * hang. Otherwise, or when that fails, it is `multipath -f NAME` as in os-brick (which also
 * removes partition maps). The difference is speed: `multipath -f` waits until udev has
 * processed the removal, and right after an attach udev is still busy with the new devices
 * (measured in the lab: 1.7 to 2.5 s per map with eight fresh LUNs, 0.84 s with one).
 * udev still processes the removal event and removes the `/dev/mapper` and by-id links.
 * @throws ProcessExecutionError / ProcessTimeoutError when every attempt fails and the map is still there
 */
export async function flushMap(ctx: HostContext, name: string, options: FlushMapOptions = {}): Promise<void> {
  const found = await mapForPath(ctx, name);
  if (!found) return;
  const mapName = found.name;
  // multipathd can make the map again at once from a path event still queued (right after an
  // attach, udev's backlog feeds it late events): a new, unheld map by the same name is removed
  // the same way, a bounded number of times.
  for (let m = found, tries = 0; tries < 3; tries++) {
    if ((await listDir(ctx, `/sys/block/${m.dm}/holders`)).length > 0) break;
    const r = await ctx.executor.run(['dmsetup', 'remove', '--noudevsync', mapName], { timeoutMs: options.timeoutMs ?? 120_000, checkExitCode: false }).catch(() => undefined);
    const now = await mapForPath(ctx, mapName);
    if (!now) return;
    if (r?.exitCode !== 0) {
      ctx.logger.debug({ map: mapName, exit_code: r?.exitCode, stderr: r?.stderr.trim() }, 'dmsetup remove refused the map; flushing with multipath -f');
      break;
    }
    ctx.logger.debug({ map: mapName, dm: now.dm }, 'multipathd made the map again from a queued path event; removing it too');
    m = now;
  }
  await retry(
    async () => {
      if (!(await mapForPath(ctx, mapName))) return;
      try {
        await ctx.executor.run(['multipath', '-f', mapName], { timeoutMs: options.timeoutMs ?? 120_000 });
      } catch (err) {
        if (!(await mapForPath(ctx, mapName))) return;
        throw err;
      }
    },
    { attempts: options.attempts ?? 3, delayMs: options.delayMs ?? 1_000 },
  );
}

/**
 * Remove map `name` without flushing (`multipathd del map NAME`, then `dmsetup remove --force
 * --noudevsync` at once if multipathd refused, or after 5 s if the map is still there), waiting
 * until it has left sysfs. Used by forced disconnects when the flush failed (os-brick
 * `multipath_del_map`), and for a map multipathd made again from late path events. Data still
 * queued in the map is lost.
 * @throws {@link VolumePathNotRemovedError} when the map is still present after `timeoutMs`
 */
export async function removeMap(ctx: HostContext, name: string, timeoutMs = 30_000): Promise<void> {
  if (!(await mapForPath(ctx, name))) return;
  const r = await ctx.executor.run(['multipathd', 'del', 'map', name], { timeoutMs: 10_000, checkExitCode: false }).catch(() => undefined);
  // multipathd answers "fail" (exit 1) for a map it does not manage or cannot remove: no point
  // waiting for it then.
  if (r?.exitCode === 0) {
    try {
      await waitFor(async () => !(await mapForPath(ctx, name)), { timeoutMs: Math.min(timeoutMs, 5_000), description: `removal of map ${name}` });
      return;
    } catch {
      /* fall through to dmsetup */
    }
  }
  await ctx.executor.run(['dmsetup', 'remove', '--force', '--noudevsync', name], { timeoutMs: 30_000, checkExitCode: false }).catch(() => undefined);
  try {
    await waitFor(async () => !(await mapForPath(ctx, name)), { timeoutMs, description: `removal of map ${name}` });
  } catch {
    throw new VolumePathNotRemovedError(`multipath map ${name} could not be removed`, { details: { map: name } });
  }
}

/**
 * Make map `name` take its paths' new size (`multipathd resize map NAME`, os-brick
 * `multipath_resize_map`), retrying while multipathd answers "timeout" or "fail" (it does so
 * while it is still processing the paths' change uevents), up to `timeoutMs`.
 * @throws {@link ExtendError} when multipathd keeps refusing
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
    throw new ExtendError(`multipathd could not resize map ${name}: ${last || 'no answer'}`, { details: { map: name } });
  }
}

/** True when `/dev/dm-N` of map `m` exists on the host. */
export async function mapDeviceExists(ctx: HostContext, m: MultipathMap): Promise<boolean> {
  return pathExists(ctx, `/sys/block/${m.dm}`);
}

/**
 * True when a multipathd process runs on the host: the pid in `/run/multipathd.pid` (written by
 * multipathd at start) names a live process called `multipathd`, or, without the pid file, some
 * `/proc/N/comm` says `multipathd`. Reads files only, spawns nothing (os-brick's
 * `is_multipath_running` asks the daemon with `multipathd show status` instead, which costs a
 * process and blocks while multipathd is busy). Never throws.
 */
export async function isMultipathdRunning(ctx: HostContext): Promise<boolean> {
  const pid = await readAttr(ctx, '/run/multipathd.pid');
  if (pid && /^\d+$/.test(pid)) return (await readAttr(ctx, `/proc/${pid}/comm`)) === 'multipathd';
  for (const entry of await listDir(ctx, '/proc')) {
    if (/^\d+$/.test(entry) && (await readAttr(ctx, `/proc/${entry}/comm`)) === 'multipathd') return true;
  }
  return false;
}

/** ALUA asymmetric access states (`/sys/block/sdX/device/access_state`, SPC-4 / scsi_dh_alua) that carry I/O. */
const ALUA_OPTIMIZED = new Set(['active/optimized']);
const ALUA_NON_OPTIMIZED = new Set(['active/non-optimized', 'lba-dependent']);

/** Why {@link buildMapTable} declined to build a table, for the debug log. */
export type MapTableRefusal = 'no paths' | 'size unknown' | 'sizes differ' | 'path in use' | 'no active path';

/**
 * The device-mapper table of a first multipath map over block devices `paths` (`['sdb', 'sdc']`),
 * from sysfs only: one `multipath` target over the paths' whole size (`/sys/block/X/size`, 512-byte
 * sectors), no features, no hardware handler, the `service-time` path selector, and path groups by
 * ALUA access state when the kernel reports one (`device/access_state`): active/optimized paths
 * first, then active/non-optimized ones; standby, unavailable and transitioning paths are left
 * for multipathd to add. Without ALUA every path is in one group. The shape is that of
 * multipath-tools' `assemble_map` with `path_grouping_policy group_by_prio` and the `alua` prio.
 * @returns the table text, or why there is none (no path given, a size unreadable or different
 * between paths, a path already held by another device-mapper device, no path in an active state)
 */
export async function buildMapTable(ctx: HostContext, paths: readonly string[]): Promise<{ table: string } | { refused: MapTableRefusal }> {
  if (paths.length === 0) return { refused: 'no paths' };
  const info: { dev: string; sectors: number; state: string | undefined }[] = [];
  for (const p of paths) {
    const dev = await readAttr(ctx, `/sys/block/${p}/dev`);
    const sectors = Number(await readAttr(ctx, `/sys/block/${p}/size`));
    if (!dev || !/^\d+:\d+$/.test(dev) || !Number.isInteger(sectors) || sectors <= 0) return { refused: 'size unknown' };
    if ((await listDir(ctx, `/sys/block/${p}/holders`)).length > 0) return { refused: 'path in use' };
    info.push({ dev, sectors, state: await readAttr(ctx, `/sys/block/${p}/device/access_state`) });
  }
  if (info.some((i) => i.sectors !== info[0]!.sectors)) return { refused: 'sizes differ' };
  const alua = info.some((i) => i.state !== undefined);
  const groups = alua
    ? [info.filter((i) => i.state !== undefined && ALUA_OPTIMIZED.has(i.state)), info.filter((i) => i.state !== undefined && ALUA_NON_OPTIMIZED.has(i.state))].filter((g) => g.length > 0)
    : [info];
  if (groups.length === 0) return { refused: 'no active path' };
  const pgs = groups.map((g) => `service-time 0 ${g.length} 2 ${g.map((i) => `${i.dev} 1 1`).join(' ')}`).join(' ');
  return { table: `0 ${info[0]!.sectors} multipath 0 0 ${groups.length} 1 ${pgs}` };
}

/** Options for {@link createMap}. */
export interface CreateMapOptions {
  /** Bound on `dmsetup`, ms. Default 10 000. */
  timeoutMs?: number;
}

/** Direct map loads waiting for the `dmsetup` run in flight, per executor (see {@link createMap}). */
interface LoadQueue {
  running: boolean;
  waiting: { spec: string; done: () => void }[];
}
const loadQueues = new WeakMap<object, LoadQueue>();

/** Load map spec `spec` (`NAME,UUID,,,TABLE`) with the next `dmsetup create --concise` run; resolves when that run has ended, whatever its outcome. */
function loadConcise(ctx: HostContext, spec: string, timeoutMs: number): Promise<void> {
  let q = loadQueues.get(ctx.executor);
  if (!q) loadQueues.set(ctx.executor, (q = { running: false, waiting: [] }));
  const queue = q;
  return new Promise<void>((resolve) => {
    queue.waiting.push({ spec, done: resolve });
    if (queue.running) return;
    queue.running = true;
    void (async () => {
      while (queue.waiting.length > 0) {
        const batch = queue.waiting.splice(0);
        try {
          const r = await ctx.executor.run(['dmsetup', 'create', '--noudevsync', '--concise', batch.map((b) => b.spec).join(';')], { timeoutMs, checkExitCode: false });
          if (r.exitCode !== 0) ctx.logger.debug({ maps: batch.length, stderr: r.stderr.trim() }, 'multipath: dmsetup create --concise refused');
        } catch (err) {
          ctx.logger.debug({ maps: batch.length, err: (err as Error).message }, 'multipath: dmsetup create --concise failed');
        }
        for (const b of batch) b.done();
      }
      queue.running = false;
    })();
  });
}

/**
 * Build the multipath map for `wwid` over block devices `paths` (`['sdb', 'sdc']`) with
 * device-mapper directly, instead of waiting for multipathd to react to the paths' uevents after
 * udev has processed them (about a second per map in the lab, several under load). This is how
 * multipath(8) itself loads a map: the `mpath-` uuid marks it as a multipath map, so multipathd
 * adopts it when the map's uevent arrives, reloads the table with its own configuration (features
 * such as `queue_if_no_path`, hardware handler, path groups, alias) and starts checking the
 * paths; paths that were not ready yet join it the usual way. The table is
 * {@link buildMapTable}'s; the map is named after the WWID.
 *
 * Maps asked for while a load is running are loaded together by the next one
 * (`dmsetup create --noudevsync --concise 'WWID,mpath-WWID,,,TABLE;...'`, lvm2 2.02.171 and
 * later): under an eight-LUN attach in the lab, starting a program took one to two seconds. A map
 * that is still missing afterwards (an older dmsetup without `--concise`, or a batch that stopped
 * at another map's failure) is loaded alone (`dmsetup create --noudevsync --uuid mpath-WWID WWID
 * --table TABLE`).
 *
 * Only call this when multipathd runs (see {@link isMultipathdRunning}): a map nobody adopts has no
 * path checker. A map multipathd has just made itself wins: `dmsetup` then fails and this returns
 * whatever map now exists for `wwid`.
 * @returns the map (`/dev/dm-N` exists when this returns: devtmpfs makes the node in the kernel),
 * or `undefined` when no table could be built or device-mapper refused and no map exists
 * @throws nothing; failures are logged at debug level
 */
export async function createMap(ctx: HostContext, wwid: string, paths: readonly string[], options: CreateMapOptions = {}): Promise<MultipathMap | undefined> {
  if (!/^[A-Za-z0-9_.:-]+$/.test(wwid)) return undefined;
  const built = await buildMapTable(ctx, paths);
  if ('refused' in built) {
    ctx.logger.debug({ wwid, paths, reason: built.refused }, 'multipath: no direct map');
    return mapForWwid(ctx, wwid);
  }
  const timeoutMs = options.timeoutMs ?? 10_000;
  await loadConcise(ctx, `${wwid},mpath-${wwid},,,${built.table}`, timeoutMs);
  const made = await mapForWwid(ctx, wwid);
  if (made) return made;
  try {
    const r = await ctx.executor.run(['dmsetup', 'create', '--noudevsync', '--uuid', `mpath-${wwid}`, wwid, '--table', built.table], { timeoutMs, checkExitCode: false });
    if (r.exitCode !== 0) ctx.logger.debug({ wwid, paths, stderr: r.stderr.trim() }, 'multipath: dmsetup create refused');
  } catch (err) {
    ctx.logger.debug({ wwid, paths, err: (err as Error).message }, 'multipath: dmsetup create failed');
  }
  return mapForWwid(ctx, wwid);
}
