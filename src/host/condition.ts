/**
 * Volume condition: is an attached volume healthy on this host, and what state is each of its
 * paths in. The base every connector's `checkVolumeCondition` is built on (issue #16; the CSI
 * spec's `VolumeCondition` of NodeGetVolumeStats, which is `{ abnormal, message }`, plus the paths).
 *
 * What is read, all through the context (host root and executor):
 * - the device itself (`/dev/dm-3`, `/dev/sdb`, `/dev/nvme0n1`): gone means abnormal;
 * - for a dm-multipath map, its paths: `/sys/block/dm-N/slaves/*` and the kernel's own per-path
 *   verdict from `dmsetup status` (the multipath target's status line marks each path `A`
 *   active or `F` failed, see the kernel's `Documentation/admin-guide/device-mapper/dm-multipath`
 *   and `multipath_status` in `drivers/md/dm-mpath.c`);
 * - for each path device, `/sys/block/NAME/device/state`: a SCSI device's state (`running`,
 *   `blocked`, `offline`, `transport-offline`, ...) or, for an NVMe namespace, its controller's
 *   (`live`, `connecting`, `resetting`, `deleting`);
 * - what the protocol knows from the connection properties ({@link ExpectedPath}: a portal with
 *   no session, an iSCSI session `FAILED`, an NVMe controller reconnecting);
 * - a read of the first 4 KiB with O_DIRECT ({@link checkReadable}, os-brick `check_valid_device`),
 *   skipped when no path is active (a map that queues I/O would make the read hang).
 *
 * Nothing here changes the host, and nothing throws: a check that cannot be made is reported in
 * the condition.
 *
 * @module
 */
import { basename } from 'node:path';
import type { HostContext } from './context.js';
import { checkReadable } from './blockdev.js';
import { mapByDm, type MultipathMap } from './multipath.js';
import { pathExists, readAttr, resolvePath } from './sysfs.js';

/**
 * The state of one path of a volume:
 * - `active`: the path carries I/O (dm-multipath `A`, SCSI device `running`, iSCSI session
 *   `LOGGED_IN`, NVMe controller `live`);
 * - `connecting`: the transport is re-establishing the path (NVMe controller `connecting`,
 *   `resetting` or `new`); I/O waits;
 * - `blocked`: the SCSI device is `blocked` (iSCSI session recovery before the replacement
 *   timeout, FC remote port lost before `dev_loss_tmo`); I/O waits;
 * - `failed`: dm-multipath has failed the path (`F`), the SCSI device is `offline` or
 *   `transport-offline`, the iSCSI session is `FAILED` or `FREE`, or the NVMe controller is
 *   being deleted;
 * - `missing`: the connection properties name the path (a portal, a target port) but the host
 *   has no session, controller or device for it.
 */
export type VolumePathState = 'active' | 'connecting' | 'blocked' | 'failed' | 'missing';

/** One path of a volume as {@link VolumeCondition} reports it. */
export interface VolumePath {
  /** The path's device (`sdc`, `nvme1c1n1`), or the portal / controller when it has no device (`10.0.0.2:3260`). */
  name: string;
  state: VolumePathState;
  /** Where the path goes: an iSCSI portal `10.0.0.2:3260`, an NVMe-oF `traddr:trsvcid`, an FC target port WWPN. */
  portal?: string;
  /** What the kernel said, when it explains the state: `dm F`, `device transport-offline`, `session FAILED`, `controller resetting`. */
  detail?: string;
}

/**
 * The condition of an attached volume on this host (issue #16; CSI `VolumeCondition` with the paths):
 * `{ abnormal: true, message: 'sdc (10.0.0.2:3260) failed', paths: [{ name: 'sdb', state: 'active',
 * portal: '10.0.0.1:3260' }, { name: 'sdc', state: 'failed', portal: '10.0.0.2:3260', detail: 'dm F' }] }`.
 * `abnormal` is true when the device is gone, a path is not active or missing, or the read test
 * failed; `message` is `ok` with the number of paths when healthy, else each problem, `; `-separated.
 * `paths` is empty for a volume without paths (a local device, a file on a share).
 */
export interface VolumeCondition {
  abnormal: boolean;
  message: string;
  paths: VolumePath[];
}

/** What a protocol knows about one path from the connection properties and its own sysfs (sessions, controllers). */
export interface ExpectedPath {
  /** Where the path goes (`10.0.0.2:3260`). */
  portal: string;
  /** The block device of this path, when the host has one (`sdc`, `nvme1n1`); none means the path is missing. */
  device?: string;
  /** A protocol-level state that overrides a better device state (`failed` for a `FAILED` session); default from the device. */
  state?: VolumePathState;
  /** Why, for that state (`session FAILED`). */
  detail?: string;
  /** Name to show for the path instead of the device (a native NVMe path `nvme1c1n1`, a controller `nvme1`). */
  name?: string;
}

/** Options for {@link blockVolumeCondition}. */
export interface BlockConditionOptions {
  /** The paths the protocol expects (one per portal of the properties); omitted: only what the device shows. */
  expected?: readonly ExpectedPath[];
  /** Bound on the read test, ms. Default 10 000. */
  readTimeoutMs?: number;
  /** Skip the read test (it has been made another way). Default false. */
  skipReadTest?: boolean;
  /**
   * The volume was attached over one path (no multipath): of the expected paths, keep only the
   * one whose device is the attached device; the other portals were never meant to carry it.
   * Default false.
   */
  singlePath?: boolean;
}

const SEVERITY: Record<VolumePathState, number> = { active: 0, connecting: 1, blocked: 2, failed: 3, missing: 4 };

/** The worse of two path states. Pure. */
export function worsePathState(a: VolumePathState, b: VolumePathState): VolumePathState {
  return SEVERITY[b] > SEVERITY[a] ? b : a;
}

/**
 * A kernel state word as a {@link VolumePathState}: SCSI device states (`running`, `blocked`,
 * `created-blocked`, `quiesce`, `offline`, `transport-offline`, `cancel`, `deleted`), NVMe
 * controller states (`live`, `new`, `connecting`, `resetting`, `deleting`, `deleting (no IO)`,
 * `dead`) and iSCSI session states (`LOGGED_IN`, `FAILED`, `FREE`). An unknown word is `failed`. Pure.
 */
export function kernelPathState(word: string): VolumePathState {
  switch (word.trim()) {
    case 'running':
    case 'live':
    case 'LOGGED_IN':
      return 'active';
    case 'blocked':
    case 'created-blocked':
    case 'quiesce':
      return 'blocked';
    case 'new':
    case 'connecting':
    case 'resetting':
      return 'connecting';
    default:
      return 'failed';
  }
}

/** One path of a multipath target's status line. */
export interface DmPathStatus {
  /** `major:minor` of the path device. */
  dev: string;
  /** The kernel's verdict: `A` active, `F` failed. */
  active: boolean;
  /** How many times the kernel has failed the path. */
  failCount: number;
}

/**
 * The paths of a `dmsetup status` line of a multipath target
 * (`0 2097152 multipath 2 0 0 0 1 1 A 0 2 2 8:16 A 0 0 1 8:32 F 1 0 1`): after the feature and
 * hardware-handler argument counts, the number of path groups and the active one, each group
 * gives its state, its selector's group arguments (counted), its path count and the number of
 * selector arguments per path; each path gives `major:minor`, `A`/`F`, the fail count and those
 * arguments (`multipath_status` in the kernel's `dm-mpath.c`). Lines of other targets, and text
 * that does not parse, give no paths. Pure.
 */
export function parseMultipathStatus(text: string): DmPathStatus[] {
  const out: DmPathStatus[] = [];
  for (const line of text.split('\n')) {
    const w = line.trim().split(/\s+/);
    const at = w.indexOf('multipath');
    if (at >= 0) out.push(...(parseStatusWords(w, at + 1) ?? []));
  }
  return out;
}

/** The paths of the multipath status words `w` from index `start` (after `multipath`), or undefined when they do not parse. */
function parseStatusWords(w: readonly string[], start: number): DmPathStatus[] | undefined {
  let i = start;
  const int = (): number => {
    const n = Number(w[i++]);
    return Number.isInteger(n) && n >= 0 ? n : NaN;
  };
  const skipCounted = (): boolean => {
    const n = int();
    i += n;
    return Number.isInteger(n);
  };
  if (!skipCounted() || !skipCounted()) return undefined; // features, hardware handler
  const groups = int();
  i++; // the active group
  if (Number.isNaN(groups)) return undefined;
  const out: DmPathStatus[] = [];
  for (let g = 0; g < groups; g++) {
    i++; // group state D / A / E
    if (!skipCounted()) return undefined; // selector's group arguments
    const paths = int();
    const perPath = int();
    if (Number.isNaN(paths) || Number.isNaN(perPath)) return undefined;
    for (let p = 0; p < paths; p++) {
      const dev = w[i++] ?? '';
      const flag = w[i++];
      const failCount = int();
      i += perPath;
      if (!/^\d+:\d+$/.test(dev) || (flag !== 'A' && flag !== 'F') || Number.isNaN(failCount)) return undefined;
      out.push({ dev, active: flag === 'A', failCount });
    }
  }
  return out;
}

/**
 * The paths of multipath map `map` with their states: every slave in sysfs, its `device/state`,
 * and the kernel's `A`/`F` verdict from `dmsetup status MAP` (through the executor; when it
 * cannot run, the sysfs states alone). A path the status line lists that has left sysfs is
 * reported by its `major:minor`. Never throws.
 */
export async function multipathPathStates(ctx: HostContext, map: MultipathMap): Promise<VolumePath[]> {
  let status: DmPathStatus[] = [];
  try {
    const r = await ctx.executor.run(['dmsetup', 'status', map.name], { timeoutMs: 10_000, checkExitCode: false });
    if (r.exitCode === 0) status = parseMultipathStatus(r.stdout);
  } catch (err) {
    ctx.logger.debug({ map: map.name, err: (err as Error).message }, 'condition: dmsetup status failed; using sysfs only');
  }
  const byDev = new Map(status.map((s) => [s.dev, s]));
  const out: VolumePath[] = [];
  for (const slave of map.paths) {
    const path = await devicePathState(ctx, slave);
    const dev = await readAttr(ctx, `/sys/block/${slave}/dev`);
    const s = dev ? byDev.get(dev) : undefined;
    if (dev) byDev.delete(dev);
    if (s && !s.active) out.push({ name: slave, state: worsePathState(path.state, 'failed'), detail: path.state === 'active' ? 'dm F' : `dm F, ${path.detail ?? ''}`.replace(/, $/, '') });
    else out.push(path);
  }
  for (const s of byDev.values()) out.push({ name: s.dev, state: s.active ? 'active' : 'failed', detail: `dm ${s.active ? 'A' : 'F'}, no device in sysfs` });
  return out;
}

/** The state of block device `name` from its `device/state` (SCSI device or NVMe controller); `active` when it has none. Never throws. */
export async function devicePathState(ctx: HostContext, name: string): Promise<VolumePath> {
  if (!(await pathExists(ctx, `/sys/block/${name}`))) return { name, state: 'missing', detail: 'device gone' };
  const raw = await readAttr(ctx, `/sys/block/${name}/device/state`);
  if (raw === undefined) return { name, state: 'active' };
  const state = kernelPathState(raw);
  return state === 'active' ? { name, state } : { name, state, detail: `device ${raw}` };
}

/** `sdc (10.0.0.2:3260) failed` for one path. Pure. */
export function describePath(p: VolumePath): string {
  const where = p.portal && p.portal !== p.name ? ` (${p.portal})` : '';
  return `${p.name}${where} ${p.state}${p.detail ? ` [${p.detail}]` : ''}`;
}

/** Merge the protocol's expected paths into the paths the device shows (by device name); expected paths without a device in it are added. */
async function mergeExpected(ctx: HostContext, shown: VolumePath[], expected: readonly ExpectedPath[], isMap: boolean): Promise<VolumePath[]> {
  const out = shown.map((p) => ({ ...p }));
  for (const e of expected) {
    const hit = e.device ? out.find((p) => p.name === e.device) : undefined;
    if (hit) {
      hit.portal = e.portal;
      if (e.name) hit.name = e.name;
      if (e.state && SEVERITY[e.state] > SEVERITY[hit.state]) {
        hit.state = e.state;
        const detail = [e.detail, hit.detail].filter(Boolean).join(', ');
        if (detail) hit.detail = detail;
      }
      continue;
    }
    if (!e.device) {
      out.push({ name: e.name ?? e.portal, state: e.state ?? 'missing', portal: e.portal, ...(e.detail ? { detail: e.detail } : {}) });
      continue;
    }
    // A device of the volume that is not in the map (it left it, or the map never took it).
    const dev = await devicePathState(ctx, e.device);
    const state = worsePathState(worsePathState(dev.state, e.state ?? 'active'), isMap ? 'failed' : 'active');
    const detail = [e.detail, dev.detail, isMap ? 'not in the map' : undefined].filter(Boolean).join(', ');
    out.push({ name: e.name ?? e.device, state, portal: e.portal, ...(detail ? { detail } : {}) });
  }
  return out;
}

/** The condition from the paths and the problems found: abnormal when a path is not active or a problem was found. */
function summarize(paths: VolumePath[], problems: string[]): VolumeCondition {
  const bad = paths.filter((p) => p.state !== 'active');
  const all = [...bad.map(describePath), ...problems];
  if (all.length > 0) return { abnormal: true, message: all.join('; '), paths };
  return { abnormal: false, message: paths.length > 0 ? `ok: ${paths.length} of ${paths.length} path${paths.length === 1 ? '' : 's'} active` : 'ok', paths };
}

/**
 * The condition of a block volume attached at `device` (`/dev/dm-3`, `/dev/sdb`, `/dev/nvme0n1`):
 * gone → abnormal; a dm-multipath map → its paths ({@link multipathPathStates}); another block
 * device → the expected paths when given, else the device itself with its `device/state`; the
 * protocol's {@link ExpectedPath}s are merged in (a portal with no path is `missing`); then the
 * read test, unless no path is active. Never throws.
 */
export async function blockVolumeCondition(ctx: HostContext, device: string, options: BlockConditionOptions = {}): Promise<VolumeCondition> {
  let expected = options.expected ?? [];
  const missing = (): VolumePath[] => expected.map((e) => ({ name: e.name ?? e.device ?? e.portal, state: 'missing' as const, portal: e.portal, detail: 'device gone' }));
  if (!(await pathExists(ctx, device))) return { abnormal: true, message: `device ${device} is gone`, paths: missing() };
  const real = await resolvePath(ctx, device);
  const name = basename(real ?? device);
  const map = /^dm-\d+$/.test(name) ? await mapByDm(ctx, name) : undefined;
  if (!map && options.singlePath) expected = expected.filter((e) => e.device === name);
  let paths: VolumePath[];
  if (map) paths = await mergeExpected(ctx, await multipathPathStates(ctx, map), expected, true);
  else if (expected.length > 0) paths = await mergeExpected(ctx, [], expected, false);
  else paths = (await pathExists(ctx, `/sys/block/${name}`)) ? [await devicePathState(ctx, name)] : [];
  const problems: string[] = [];
  if (map && map.paths.length === 0) problems.push(`map ${map.name} has no paths`);
  const anyActive = paths.length === 0 || paths.some((p) => p.state === 'active');
  if (!anyActive) problems.push(`no path of ${device} is active`);
  else if (!options.skipReadTest && !(await checkReadable(ctx, device, options.readTimeoutMs ?? 10_000))) problems.push(`read test of ${device} failed`);
  return summarize(paths, problems);
}

/**
 * The condition of a volume without paths: a device or file at `path` that must exist and read
 * (`readable`, default the O_DIRECT read test {@link checkReadable}); `what` names it in the
 * message (`device`, `file`). Used by the local, AoE, RBD, NFS and other single-device connectors.
 * Never throws (a throwing `readable` counts as a failed read).
 */
export async function presentAndReadable(ctx: HostContext, path: string, what = 'device', readable?: (p: string) => Promise<boolean>): Promise<VolumeCondition> {
  if (!(await pathExists(ctx, path))) return { abnormal: true, message: `${what} ${path} is gone`, paths: [] };
  const ok = await (readable ? readable(path) : checkReadable(ctx, path, 10_000)).catch(() => false);
  if (!ok) return { abnormal: true, message: `read test of ${path} failed`, paths: [] };
  return { abnormal: false, message: 'ok', paths: [] };
}
