/**
 * What the host shows, for `host cleanup` (see `cleanup.ts`): iSCSI sessions and node records,
 * SCSI devices, multipath maps, NVMe-oF controllers, loop devices, mounts, krbd mappings and
 * dm-crypt mappings, plus who uses each
 * block device (holders, mounts, swap, device-mapper open counts, processes with it open).
 *
 * Everything is read from sysfs and `/proc` under the context's host root with the `host/`
 * readers the connectors use (`iscsiadm.listSessions`, `scsi.deviceWwid`, `multipath.mapByDm`,
 * `nvme.listNvmeControllers`, `loop.listLoops`, `rbd.listRbdMappings`), except two programs run through the Executor:
 * `iscsiadm -m node` (the node database; open-iscsi keeps it in two layouts) and `dmsetup info`
 * (a map's open count, which sysfs does not show). Neither changes anything.
 *
 * Names follow the journal's naming rules (`ResourceEntry.name` in `journal.ts`): sessions and
 * node records `<iqn>,<portal>`, SCSI devices `h:c:t:l`, maps their name, NVMe controllers
 * `<subsysnqn>,<transport>,<traddr>,<trsvcid>`, loop devices `/dev/loopN`, mounts the mount point,
 * krbd mappings `/dev/rbd/<pool>/<image>`, dm-crypt mappings `/dev/mapper/<name>`.
 *
 * @module
 */
import { basename } from 'node:path';
import type { HostContext } from './context.js';
import { ISCSI_ERR_NO_OBJS_FOUND, listSessions, parseDiscovery, type Portal } from './iscsiadm.js';
import { listLoops } from './loop.js';
import { mapByDm } from './multipath.js';
import { listRbdMappings } from './rbd.js';
import { listNvmeControllers, namespacesOf } from './nvme.js';
import { deviceWwid, parseHctl, scsiDevicesUnder, wwidFromSysfs, type Hctl } from './scsi.js';
import { listDir, readAttr, readBinaryAttr, readLink, resolvePath } from './sysfs.js';

/** An iSCSI session. */
export interface SurveySession {
  /** `<iqn>,<portal>` (the portal as iscsiadm's `-p` takes it). */
  name: string;
  /** Session number (`sessionN`). */
  id: number;
  iqn: string;
  portal: Portal;
  iface?: string;
  /** The SCSI devices it carries (`h:c:t:l`). */
  devices: string[];
}

/** An open-iscsi node record. */
export interface SurveyNode {
  /** `<iqn>,<portal>`. */
  name: string;
  iqn: string;
  portal: Portal;
}

/** A SCSI device. */
export interface SurveyScsiDevice {
  /** `h:c:t:l`. */
  name: string;
  hctl: Hctl;
  /** Its block device (`sdb`), when it has one. */
  device?: string;
  /** The udev-form WWID of its block device, when readable. */
  wwid?: string;
  /** Every identifier of the LUN in udev form (see {@link deviceIdentifiers}): records may name any. */
  ids?: string[];
  /** The iSCSI session carrying it (`SurveySession.name`), if any. */
  session?: string;
}

/** A multipath map (dm uuid `mpath-<wwid>`). */
export interface SurveyMap {
  /** The map name (`/dev/mapper/<name>`). */
  name: string;
  /** `dm-N`. */
  dm: string;
  wwid: string;
  /** Its path devices (`sdb`). */
  slaves: string[];
}

/** An NVMe-oF controller (PCIe controllers are never listed). */
export interface SurveyNvmeController {
  /** `<subsysnqn>,<transport>,<traddr>,<trsvcid>`. */
  name: string;
  /** `nvme1`. */
  controller: string;
  /** Namespace block devices reached through it (`nvme1n1`). */
  namespaces: string[];
}

/** A loop device with its backing file. */
export interface SurveyLoop {
  /** `/dev/loopN`. */
  name: string;
  backingFile: string;
}

/** A krbd mapping of an image (snapshot mappings are not Brick's and are not listed). */
export interface SurveyRbd {
  /** `/dev/rbd/<pool>/<image>`: the udev link, as the RBD connector's journal records name it. */
  name: string;
  /** The kernel's device number in `/sys/bus/rbd/devices`. */
  id: string;
  /** `rbdN`. */
  dev: string;
  pool: string;
  image: string;
}

/** A dm-crypt mapping (dm uuid `CRYPT-...`). */
export interface SurveyCrypt {
  /** `/dev/mapper/<name>`, as the encryptors' journal records name it. */
  name: string;
  /** The mapping name (`cryptsetup close` takes it). */
  mapName: string;
  /** `dm-N`. */
  dm: string;
  /** The block devices under it (`sdb`, `dm-2`, `rbd0`). */
  slaves: string[];
}

/** A mount, from `/proc/self/mountinfo`. */
export interface SurveyMount {
  /** The mount point. */
  name: string;
  source: string;
  fstype: string;
  /** `major:minor` of the mounted device (`0:53` for network file systems). */
  dev: string;
}

/** Everything {@link surveyHost} found. */
export interface HostSurvey {
  sessions: SurveySession[];
  nodes: SurveyNode[];
  scsiDevices: SurveyScsiDevice[];
  maps: SurveyMap[];
  nvmeControllers: SurveyNvmeController[];
  loops: SurveyLoop[];
  mounts: SurveyMount[];
  /** krbd mappings of images. */
  rbdDevices: SurveyRbd[];
  /** dm-crypt mappings. */
  cryptMaps: SurveyCrypt[];
  /** Block device names used as swap (`sdb`, `dm-3`). */
  swaps: string[];
  /** device-mapper open counts by dm name (`dm-3`); a map missing here has an unknown count. */
  dmOpen: Map<string, number>;
  /** Processes holding a device node open, by block device name: `pid (comm)`. */
  openers: Map<string, string[]>;
}

/** `<iqn>,<portal>`: how sessions and node records are named, compared case-insensitively. */
export function iscsiTargetName(iqn: string, portal: Portal): string {
  return `${iqn},${portal.text}`;
}

/** Processes that open path devices as part of their job, never a user of the volume. */
const HOUSEKEEPERS = new Set(['multipathd', 'systemd-udevd', 'udevd', '(udev-worker)', 'udisksd']);

/**
 * Parse `/proc/self/mountinfo` (proc(5)): mount point, source, file system type and the
 * device's `major:minor`; octal escapes decoded. Pure.
 */
export function parseMountInfo(text: string): SurveyMount[] {
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  const out: SurveyMount[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    const sep = f.indexOf('-');
    if (f.length < 7 || sep < 6 || f.length < sep + 3) continue;
    out.push({ name: unescape(f[4]!), source: unescape(f[sep + 2]!), fstype: f[sep + 1]!, dev: f[2]! });
  }
  return out;
}

/** iSCSI sessions with the SCSI devices under each. */
async function surveySessions(ctx: HostContext): Promise<SurveySession[]> {
  const out: SurveySession[] = [];
  for (const s of await listSessions(ctx)) {
    const devices = (await scsiDevicesUnder(ctx, s.deviceDir)).map((d) => `${d.hctl.host}:${d.hctl.channel}:${d.hctl.target}:${d.hctl.lun}`);
    out.push({ name: iscsiTargetName(s.targetIqn, s.portal), id: s.id, iqn: s.targetIqn, portal: s.portal, ...(s.iface ? { iface: s.iface } : {}), devices });
  }
  return out;
}

/**
 * Node records from `iscsiadm -m node` (`<portal>,<tpgt> <iqn>` per line); none when iscsiadm
 * says there are none (status 21) or is not installed.
 */
async function surveyNodes(ctx: HostContext): Promise<SurveyNode[]> {
  try {
    const r = await ctx.executor.run(['iscsiadm', '-m', 'node'], { timeoutMs: 30_000, checkExitCode: false });
    if (r.exitCode === ISCSI_ERR_NO_OBJS_FOUND || r.exitCode !== 0) return [];
    const seen = new Set<string>();
    const out: SurveyNode[] = [];
    for (const t of parseDiscovery(r.stdout)) {
      const name = iscsiTargetName(t.iqn, t.portal);
      if (seen.has(name)) continue;
      seen.add(name);
      out.push({ name, iqn: t.iqn, portal: t.portal });
    }
    return out;
  } catch (err) {
    ctx.logger.debug({ err: (err as Error).message }, 'cleanup: iscsiadm -m node failed; no node records known');
    return [];
  }
}

/** Every SCSI device (`/sys/bus/scsi/devices/H:C:T:L`) with its block device and WWID. */
async function surveyScsiDevices(ctx: HostContext, sessions: readonly SurveySession[]): Promise<SurveyScsiDevice[]> {
  const bySession = new Map<string, string>();
  for (const s of sessions) for (const d of s.devices) bySession.set(d, s.name);
  const out: SurveyScsiDevice[] = [];
  for (const name of await listDir(ctx, '/sys/bus/scsi/devices')) {
    const hctl = parseHctl(name);
    if (!hctl) continue;
    const device = (await listDir(ctx, `/sys/bus/scsi/devices/${name}/block`))[0];
    const wwid = device ? await deviceWwid(ctx, device) : undefined;
    const ids = device ? await deviceIdentifiers(ctx, device) : [];
    const session = bySession.get(name);
    out.push({ name, hctl, ...(device ? { device } : {}), ...(wwid ? { wwid } : {}), ...(ids.length > 0 ? { ids } : {}), ...(session ? { session } : {}) });
  }
  return out;
}

/** Every logical-unit designator of a VPD page 0x83 in udev form (NAA `3…`, EUI-64 `2…`, T10 `1…`, SCSI name `8…`). Pure. */
export function vpdPg83Identifiers(page: Buffer): string[] {
  const out: string[] = [];
  if (page.length < 4 || page[1] !== 0x83) return out;
  const end = Math.min(page.length, 4 + page.readUInt16BE(2));
  for (let off = 4; off + 4 <= end; off += 4 + page[off + 3]!) {
    const codeSet = page[off]! & 0x0f;
    const type = page[off + 1]! & 0x0f;
    const body = page.subarray(off + 4, Math.min(end, off + 4 + page[off + 3]!));
    if (((page[off + 1]! >> 4) & 0x03) !== 0) continue;
    if (type === 3 || type === 2) out.push(`${type}${body.toString('hex')}`);
    else if (type === 1 && codeSet === 2) out.push(`1${body.toString('latin1').trim().replace(/\s+/g, '_')}`);
    else if (type === 8 && codeSet === 3) out.push(`8${body.toString('utf8').replace(/\0+$/, '').trim()}`);
  }
  return out;
}

/**
 * Every identifier block device `name` answers to, in udev form: what {@link deviceWwid} says
 * now, the sysfs `device/wwid` attribute, each designator of `device/vpd_pg83`, and the names of
 * the `/dev/disk/by-id/scsi-*` links to it. One LUN shows several (LIO reports an NAA and a T10
 * designator), and which one `deviceWwid` picks can change while udev is still making links, so
 * a WWID recorded at one moment is compared with all of them.
 */
export async function deviceIdentifiers(ctx: HostContext, name: string): Promise<string[]> {
  const ids = new Set<string>();
  const w = await deviceWwid(ctx, name);
  if (w) ids.add(w);
  const raw = await readAttr(ctx, `/sys/block/${name}/device/wwid`);
  if (raw) ids.add(wwidFromSysfs(raw));
  const page = await readBinaryAttr(ctx, `/sys/block/${name}/device/vpd_pg83`);
  for (const id of page ? vpdPg83Identifiers(page) : []) ids.add(id);
  for (const l of await listDir(ctx, '/dev/disk/by-id')) {
    if (l.startsWith('scsi-') && (await resolvePath(ctx, `/dev/disk/by-id/${l}`)) === `/dev/${name}`) ids.add(l.slice(5));
  }
  return [...ids];
}

async function surveyMaps(ctx: HostContext): Promise<SurveyMap[]> {
  const out: SurveyMap[] = [];
  for (const dm of await listDir(ctx, '/sys/block')) {
    if (!/^dm-\d+$/.test(dm)) continue;
    const m = await mapByDm(ctx, dm);
    if (m) out.push({ name: m.name, dm: m.dm, wwid: m.wwid, slaves: m.paths });
  }
  return out;
}

async function surveyNvme(ctx: HostContext): Promise<SurveyNvmeController[]> {
  const out: SurveyNvmeController[] = [];
  for (const c of await listNvmeControllers(ctx)) {
    if (c.transport === '' || c.transport === 'pcie') continue;
    const namespaces = (await namespacesOf(ctx, [c])).map((n) => n.name);
    out.push({ name: `${c.subsysnqn},${c.transport},${c.traddr},${c.trsvcid}`, controller: c.name, namespaces });
  }
  return out;
}

/** krbd mappings of images (snapshot mappings left out), named as the RBD connector's journal names them. */
async function surveyRbd(ctx: HostContext): Promise<SurveyRbd[]> {
  return (await listRbdMappings(ctx))
    .filter((m) => m.pool && m.image && m.snap === '-')
    .map((m) => ({ name: `/dev/rbd/${m.pool}/${m.image}`, id: m.id, dev: `rbd${m.id}`, pool: m.pool, image: m.image }));
}

/** dm-crypt mappings: device-mapper devices whose dm uuid starts `CRYPT-` (as cryptsetup names them). */
async function surveyCrypt(ctx: HostContext): Promise<SurveyCrypt[]> {
  const out: SurveyCrypt[] = [];
  for (const dm of await listDir(ctx, '/sys/block')) {
    if (!/^dm-\d+$/.test(dm) || !((await readAttr(ctx, `/sys/block/${dm}/dm/uuid`)) ?? '').startsWith('CRYPT-')) continue;
    const mapName = await readAttr(ctx, `/sys/block/${dm}/dm/name`);
    if (!mapName) continue;
    out.push({ name: `/dev/mapper/${mapName}`, mapName, dm, slaves: await listDir(ctx, `/sys/block/${dm}/slaves`) });
  }
  return out;
}

/** `dmsetup info -c -o name,open` for the maps given (multipath and dm-crypt): open counts by dm name. */
async function dmOpenCounts(ctx: HostContext, maps: readonly { name: string; dm: string }[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (maps.length === 0) return counts;
  try {
    const r = await ctx.executor.run(['dmsetup', 'info', '-c', '--noheadings', '--separator', '|', '-o', 'name,open'], { timeoutMs: 30_000, checkExitCode: false });
    if (r.exitCode !== 0) return counts;
    const byName = new Map(maps.map((m) => [m.name, m.dm]));
    for (const line of r.stdout.split('\n')) {
      const i = line.lastIndexOf('|');
      const dm = i > 0 ? byName.get(line.slice(0, i).trim()) : undefined;
      const n = Number(line.slice(i + 1).trim());
      if (dm && Number.isInteger(n)) counts.set(dm, n);
    }
  } catch (err) {
    ctx.logger.debug({ err: (err as Error).message }, 'cleanup: dmsetup info failed; map open counts unknown');
  }
  return counts;
}

/** Block devices used as swap (`/proc/swaps`), by kernel name. */
async function surveySwaps(ctx: HostContext): Promise<string[]> {
  const out: string[] = [];
  for (const line of ((await readAttr(ctx, '/proc/swaps')) ?? '').split('\n').slice(1)) {
    const path = line.split(/\s+/)[0];
    if (!path || !path.startsWith('/dev/')) continue;
    const real = await resolvePath(ctx, path);
    out.push(basename(real ?? path));
  }
  return out;
}

/**
 * Processes with a block device node open (`/proc/<pid>/fd/*` links into `/dev`), by device
 * name, leaving out this process and the daemons that open path devices for their own checks
 * (multipathd's path checkers, udev's probes).
 */
async function surveyOpeners(ctx: HostContext): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const pid of await listDir(ctx, '/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const fds = await listDir(ctx, `/proc/${pid}/fd`);
    if (fds.length === 0) continue;
    let comm: string | undefined;
    for (const fd of fds) {
      const target = await readLink(ctx, `/proc/${pid}/fd/${fd}`);
      if (!target || !target.startsWith('/dev/')) continue;
      comm ??= (await readAttr(ctx, `/proc/${pid}/comm`)) ?? '?';
      if (HOUSEKEEPERS.has(comm)) break;
      const dev = basename(target);
      const list = out.get(dev) ?? [];
      if (!list.includes(`${pid} (${comm})`)) list.push(`${pid} (${comm})`);
      out.set(dev, list);
    }
  }
  return out;
}

/** Survey the host (see the module notes). Never throws for what is missing: an empty list. */
export async function surveyHost(ctx: HostContext): Promise<HostSurvey> {
  const sessions = await surveySessions(ctx);
  const maps = await surveyMaps(ctx);
  const cryptMaps = await surveyCrypt(ctx);
  return {
    sessions,
    nodes: await surveyNodes(ctx),
    scsiDevices: await surveyScsiDevices(ctx, sessions),
    maps,
    nvmeControllers: await surveyNvme(ctx),
    loops: (await listLoops(ctx)).map((l) => ({ name: l.name, backingFile: l.backFile })),
    mounts: parseMountInfo((await readAttr(ctx, '/proc/self/mountinfo')) ?? ''),
    rbdDevices: await surveyRbd(ctx),
    cryptMaps,
    swaps: await surveySwaps(ctx),
    dmOpen: await dmOpenCounts(ctx, [...maps, ...cryptMaps.map((c) => ({ name: c.mapName, dm: c.dm }))]),
    openers: await surveyOpeners(ctx),
  };
}

/** A block device and its partitions (`sdb`, `sdb1`), each with its `major:minor`. */
async function blockAndPartitions(ctx: HostContext, name: string): Promise<{ name: string; dev: string | undefined }[]> {
  const out = [{ name, dev: await readAttr(ctx, `/sys/block/${name}/dev`) }];
  for (const e of await listDir(ctx, `/sys/block/${name}`)) {
    if (e.startsWith(name) && e !== name) out.push({ name: e, dev: await readAttr(ctx, `/sys/block/${name}/${e}/dev`) });
  }
  return out;
}

/** What {@link blockDeviceBusy} may disregard because it goes first. */
export interface BusyOptions {
  /** Holders (`dm-3`) being removed before this device. */
  ignoreHolders?: ReadonlySet<string>;
  /** Mount points being unmounted before this device. */
  ignoreMounts?: ReadonlySet<string>;
}

/**
 * Why block device `name` (`sdb`, `dm-3`, `loop0`, `nvme1n1`) must not be touched, or
 * undefined when nothing uses it: a holder not in `ignoreHolders` (a map being removed first),
 * a mount (not in `ignoreMounts`) of it or of a partition, swap, a device-mapper open count above zero, or a process
 * with it open. Reads sysfs afresh; `survey` gives mounts, swaps, open counts and openers.
 */
export async function blockDeviceBusy(ctx: HostContext, survey: HostSurvey, name: string, options: BusyOptions = {}): Promise<string | undefined> {
  const ignoreHolders = options.ignoreHolders ?? new Set();
  const ignoreMounts = options.ignoreMounts ?? new Set();
  for (const part of await blockAndPartitions(ctx, name)) {
    const holders = (await listDir(ctx, `/sys/block/${name}/${part.name === name ? '' : `${part.name}/`}holders`)).filter((h) => !ignoreHolders.has(h));
    if (holders.length > 0) return `/dev/${part.name} is held by ${holders.map((h) => `/dev/${h}`).join(', ')}`;
    const mount = part.dev ? survey.mounts.find((m) => m.dev === part.dev && !ignoreMounts.has(m.name)) : undefined;
    if (mount) return `/dev/${part.name} is mounted at ${mount.name}`;
    if (survey.swaps.includes(part.name)) return `/dev/${part.name} is used as swap`;
    const procs = survey.openers.get(part.name);
    if (procs && procs.length > 0) return `/dev/${part.name} is open in process ${procs.join(', ')}`;
  }
  const open = survey.dmOpen.get(name);
  if (open !== undefined && open > 0) return `/dev/${name} is open (device-mapper open count ${open})`;
  return undefined;
}
