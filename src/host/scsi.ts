/**
 * SCSI devices on a Linux host, through sysfs: targeted scans, finding the block device of an
 * H:C:T:L, WWIDs, flush, delete, wait for removal, size rescans.
 *
 * This is the transport-independent part of os-brick's `linuxscsi.LinuxSCSI`, shared by the
 * iSCSI, Fibre Channel and other SCSI connectors. It follows the 2017 sysfs rewrite: devices are
 * found by walking sysfs from a known parent (an iSCSI session, an FC remote port) down to
 * `targetH:C:T/H:C:T:L/block/*`, never by searching `/dev/disk/by-path`; scans name one LUN
 * (`"C T L"` into `/sys/class/scsi_host/hostH/scan`), never the whole host; WWIDs come from
 * sysfs (`device/wwid`, `device/vpd_pg83`) and the udev `/dev/disk/by-id` links, never from
 * SCSI inquiries run by `scsi_id` or `sg_inq`.
 *
 * Device names are kernel names without `/dev/` (`sdb`); paths are `/dev/sdb`.
 *
 * @module
 */
import { basename } from 'node:path';
import { unlink } from 'node:fs/promises';
import { HostIoError, InvalidInputError, InvalidStateError, VolumePathNotRemovedError } from '../errors.js';
import type { HostContext } from './context.js';
import { hostPath } from './context.js';
import { waitFor, retry } from './retry.js';
import { listDir, readAttr, readBinaryAttr, readLink, resolvePath, writeAttr, pathExists } from './sysfs.js';

/** A SCSI address: host (adapter) number, channel (bus), target id and LUN. */
export interface Hctl {
  host: number;
  channel: number;
  target: number;
  lun: number;
}

/** `"2:0:0:1"` for an {@link Hctl}. */
export function formatHctl(h: Hctl): string {
  return `${h.host}:${h.channel}:${h.target}:${h.lun}`;
}

/** The {@link Hctl} named by `"H:C:T:L"`, or `undefined` when `s` is not one. */
export function parseHctl(s: string): Hctl | undefined {
  const m = /^(\d+):(\d+):(\d+):(\d+)$/.exec(s);
  if (!m) return undefined;
  return { host: Number(m[1]), channel: Number(m[2]), target: Number(m[3]), lun: Number(m[4]) };
}

/** LUN addressing modes of Cinder's `addressing_mode` (os-brick `constants.SCSI_ADDRESSING_*`). */
export type AddressingMode = 'SAM' | 'transparent' | 'SAM2' | 'SAM3-flat';

/**
 * The LUN number the Linux SCSI layer uses for a LUN the target reports in `mode`
 * (os-brick `lun_for_addressing`): `SAM3-flat` always, and `SAM2` for LUNs of 256 and above, set
 * the flat-space bit (add 16384); `SAM` and `transparent` keep the number.
 * @throws {@link InvalidInputError} (field `addressing_mode`) for an unknown mode
 */
export function lunForAddressing(lun: number, mode: string = 'SAM'): number {
  switch (mode) {
    case 'SAM':
    case 'transparent':
      return lun;
    case 'SAM2':
      return lun < 256 ? lun : lun + 16384;
    case 'SAM3-flat':
      return lun + 16384;
    default:
      throw new InvalidInputError('addressing_mode', `must be one of SAM, transparent, SAM2, SAM3-flat; got ${JSON.stringify(mode)}`);
  }
}

/** Which part of the address a targeted scan names; omitted parts are the kernel's `-` wildcard. */
export interface ScanAddress {
  channel?: number;
  target?: number;
  lun?: number;
}

/**
 * Ask SCSI host `host` to scan the given channel/target/LUN (`"C T L"` into
 * `/sys/class/scsi_host/hostH/scan`, os-brick `scan_iscsi`, gobrick's targeted rescan). The
 * write returns once the kernel has probed the address; the block device may follow a moment
 * later (udev and the sd driver's asynchronous probe).
 * @throws {@link HostIoError} when the kernel refuses the write
 */
export async function scanHost(ctx: HostContext, host: number, address: ScanAddress = {}): Promise<void> {
  const part = (n: number | undefined): string => (n === undefined ? '-' : String(n));
  const value = `${part(address.channel)} ${part(address.target)} ${part(address.lun)}`;
  ctx.logger.debug({ host, scan: value }, 'scsi: targeted scan');
  await writeAttr(ctx, `/sys/class/scsi_host/host${host}/scan`, `${value}\n`, { append: true });
}

/** A SCSI device found under a sysfs parent, with its block device once the kernel has made one. */
export interface ScsiDevice {
  hctl: Hctl;
  /** Kernel block device name (`sdb`), undefined while the disk is still being probed. */
  device?: string;
}

/**
 * Block device name of the SCSI device at `hctl` (`/sys/bus/scsi/devices/H:C:T:L/block/*`,
 * first in sorted order), or `undefined` when it has none (yet).
 */
export async function blockDeviceForHctl(ctx: HostContext, hctl: Hctl): Promise<string | undefined> {
  const names = await listDir(ctx, `/sys/bus/scsi/devices/${formatHctl(hctl)}/block`);
  return names[0];
}

/**
 * Every SCSI device below sysfs directory `parent` (a host path such as the device directory of
 * an iSCSI session, `/sys/devices/platform/host2/session1`), found by walking
 * `target*:*:*` / `H:C:T:L` / `block/*`. Devices still being probed have no `device`.
 */
export async function scsiDevicesUnder(ctx: HostContext, parent: string): Promise<ScsiDevice[]> {
  const out: ScsiDevice[] = [];
  for (const t of await listDir(ctx, parent)) {
    if (!/^target\d+:\d+:\d+$/.test(t)) continue;
    for (const d of await listDir(ctx, `${parent}/${t}`)) {
      const hctl = parseHctl(d);
      if (!hctl) continue;
      const block = await listDir(ctx, `${parent}/${t}/${d}/block`);
      out.push(block[0] ? { hctl, device: block[0] } : { hctl });
    }
  }
  return out;
}

/** The `targetH:C:T` entries below `parent`, as H:C:T triples (LUN 0 placeholder). */
export async function scsiTargetsUnder(ctx: HostContext, parent: string): Promise<Hctl[]> {
  const out: Hctl[] = [];
  for (const t of await listDir(ctx, parent)) {
    const m = /^target(\d+):(\d+):(\d+)$/.exec(t);
    if (m) out.push({ host: Number(m[1]), channel: Number(m[2]), target: Number(m[3]), lun: 0 });
  }
  return out;
}

/** The H:C:T:L of block device `name` (from `/sys/block/NAME/device`), or `undefined`. */
export async function hctlOfDevice(ctx: HostContext, name: string): Promise<Hctl | undefined> {
  const real = await resolvePath(ctx, `/sys/block/${name}/device`);
  return real ? parseHctl(basename(real)) : undefined;
}

/** `device/state` of block device `name` (`running`, `offline`, `blocked`, `transport-offline`), or `undefined`. */
export async function deviceState(ctx: HostContext, name: string): Promise<string | undefined> {
  return readAttr(ctx, `/sys/block/${name}/device/state`);
}

/** The device-mapper devices holding block device `name` (`/sys/block/NAME/holders/dm-*`). */
export async function holdersOf(ctx: HostContext, name: string): Promise<string[]> {
  return (await listDir(ctx, `/sys/block/${name}/holders`)).filter((h) => h.startsWith('dm-'));
}

const WWID_PREFIX_TYPE: Record<string, string> = { 't10.': '1', 'eui.': '2', 'naa.': '3' };

/**
 * A sysfs `device/wwid` value (`naa.6001405...`, `eui.0123...`, `t10.LIO-ORG ...`) in the udev
 * `ID_SERIAL` form that `/dev/disk/by-id/scsi-*` uses: the designator type digit (t10 -> 1,
 * eui -> 2, naa -> 3, anything else -> 8) followed by the identifier, spaces collapsed to `_`
 * (os-brick `get_sysfs_wwid`).
 */
export function wwidFromSysfs(raw: string): string {
  const v = raw.trim();
  const prefix = v.slice(0, 4).toLowerCase();
  const digit = WWID_PREFIX_TYPE[prefix];
  const rest = digit ? v.slice(4) : v;
  return `${digit ?? '8'}${rest.replace(/\s+/g, '_')}`;
}

/**
 * The udev-style WWID from a raw VPD page 0x83 (device identification), choosing the
 * designator udev prefers: NAA (type 3) over EUI-64 (2) over T10 vendor id (1) over SCSI name
 * string (8), logical-unit association only. Returns `undefined` when the page has none.
 * Layout per SPC-4 7.8.6: 4-byte page header, then designators of 4-byte header + body.
 */
export function wwidFromVpdPg83(page: Buffer): string | undefined {
  if (page.length < 4 || page[1] !== 0x83) return undefined;
  const end = Math.min(page.length, 4 + page.readUInt16BE(2));
  const found = new Map<number, string>();
  for (let off = 4; off + 4 <= end; ) {
    const codeSet = page[off]! & 0x0f;
    const association = (page[off + 1]! >> 4) & 0x03;
    const type = page[off + 1]! & 0x0f;
    const len = page[off + 3]!;
    const body = page.subarray(off + 4, Math.min(end, off + 4 + len));
    if (association === 0 && !found.has(type)) {
      if (type === 3) found.set(3, `3${body.toString('hex')}`);
      else if (type === 2) found.set(2, `2${body.toString('hex')}`);
      else if (type === 1 && codeSet === 2) found.set(1, `1${body.toString('latin1').trim().replace(/\s+/g, '_')}`);
      else if (type === 8 && codeSet === 3) found.set(8, `8${body.toString('utf8').replace(/\0+$/, '').trim()}`);
    }
    off += 4 + len;
  }
  return found.get(3) ?? found.get(2) ?? found.get(1) ?? found.get(8);
}

/**
 * The WWID of block device `name` in udev form (`36001405...`, as `/dev/disk/by-id/scsi-<wwid>`
 * names it), from sysfs only: `device/wwid`, else `device/vpd_pg83`. When the candidate has no
 * matching by-id link but another `scsi-*` link points at this device, that link's name wins
 * (udev may choose another designator when a page carries several; os-brick `get_sysfs_wwn`).
 * Returns `undefined` while the kernel has not filled in the identifiers.
 */
export async function deviceWwid(ctx: HostContext, name: string): Promise<string | undefined> {
  const raw = await readAttr(ctx, `/sys/block/${name}/device/wwid`);
  let wwid = raw ? wwidFromSysfs(raw) : undefined;
  if (!wwid) {
    const page = await readBinaryAttr(ctx, `/sys/block/${name}/device/vpd_pg83`);
    wwid = page ? wwidFromVpdPg83(page) : undefined;
  }
  if (wwid && (await resolvePath(ctx, `/dev/disk/by-id/scsi-${wwid}`)) === `/dev/${name}`) return wwid;
  const links = (await listDir(ctx, '/dev/disk/by-id')).filter((l) => l.startsWith('scsi-'));
  const mine: string[] = [];
  for (const l of links) {
    if ((await resolvePath(ctx, `/dev/disk/by-id/${l}`)) === `/dev/${name}`) mine.push(l.slice(5));
  }
  if (wwid && (mine.length === 0 || mine.includes(wwid))) return wwid;
  return mine.find((m) => m.startsWith('3')) ?? mine[0] ?? wwid;
}

/** Size of block device `name` from sysfs, in bytes (`/sys/block/NAME/size` is in 512-byte sectors), or `undefined`. */
export async function sysfsSizeBytes(ctx: HostContext, name: string): Promise<number | undefined> {
  const v = await readAttr(ctx, `/sys/block/${name}/size`);
  const n = v === undefined ? NaN : Number(v);
  return Number.isFinite(n) ? n * 512 : undefined;
}

/** Options for {@link flushDevice}. */
export interface FlushOptions {
  /** Attempts (os-brick: 3). Default 3. */
  attempts?: number;
  /** Per-attempt bound in ms (os-brick: 300 s). Default 120 000. */
  timeoutMs?: number;
}

/**
 * Flush the buffers of block device `path` (`blockdev --flushbufs`, os-brick `flush_device_io`),
 * retried. A device that is already gone counts as flushed.
 * @throws ProcessExecutionError / ProcessTimeoutError when every attempt fails
 */
export async function flushDevice(ctx: HostContext, path: string, options: FlushOptions = {}): Promise<void> {
  if (!(await pathExists(ctx, path))) return;
  await retry(() => ctx.executor.run(['blockdev', '--flushbufs', path], { timeoutMs: options.timeoutMs ?? 120_000 }), {
    attempts: options.attempts ?? 3,
    delayMs: 1_000,
  });
}

/**
 * A block device to remove: its kernel name (`sdb`), or the name pinned to the SCSI address
 * (H:C:T:L) it had when it was found. The kernel gives a freed name to the next disk it probes,
 * often within milliseconds on a busy host (another volume's path joining in the background), so
 * a bare name can come to mean somebody else's disk between finding a device and waiting for it
 * to go. A pinned device whose name now sits at another address counts as gone and is never
 * touched; prefer pinned devices wherever the address is known.
 */
export type RemovableDevice = string | { name: string; hctl: Hctl };

/** The kernel name of a {@link RemovableDevice}. */
export function removableName(d: RemovableDevice): string {
  return typeof d === 'string' ? d : d.name;
}

/**
 * Pin block device `name` to its current SCSI address (`/sys/block/NAME/device` points at
 * `.../H:C:T:L`). A name that is not a SCSI disk (or already gone) stays a bare name.
 */
export async function pinDevice(ctx: HostContext, name: string): Promise<RemovableDevice> {
  const hctl = await hctlOfDevice(ctx, name);
  return hctl ? { name, hctl } : name;
}

/** Whether `d` still exists: `/sys/block/NAME` for a bare name, `/sys/bus/scsi/devices/H:C:T:L/block/NAME` for a pinned one. */
export async function devicePresent(ctx: HostContext, d: RemovableDevice): Promise<boolean> {
  if (typeof d === 'string') return pathExists(ctx, `/sys/block/${d}`);
  return pathExists(ctx, `/sys/bus/scsi/devices/${formatHctl(d.hctl)}/block/${d.name}`);
}

/**
 * Remove the SCSI disk behind block device `d` from the kernel (write `1` to its `delete`
 * attribute, os-brick `remove_scsi_device`): `/sys/bus/scsi/devices/H:C:T:L/delete` for a
 * pinned device, which can only ever remove that address, else `/sys/block/NAME/device/delete`.
 * Compare {@link deleteScsiAddress}, which removes whatever sits at an address, block device or not. The kernel flushes the
 * disk's cache on the way out. A device that is already gone (for a pinned one: its name now
 * belongs to a disk at another address) is not an error and nothing is written. A `blocked`
 * device is refused unless `force` (deleting a blocked device can hang the caller on old
 * kernels; gobrick does the same).
 * @throws {@link InvalidStateError} when the device is blocked (without force); {@link HostIoError} when the kernel refuses
 */
export async function deletePinnedDevice(ctx: HostContext, d: RemovableDevice, options: { force?: boolean } = {}): Promise<void> {
  const name = removableName(d);
  const dir = typeof d === 'string' ? `/sys/block/${name}/device` : `/sys/bus/scsi/devices/${formatHctl(d.hctl)}`;
  if (typeof d !== 'string' && !(await devicePresent(ctx, d))) {
    ctx.logger.debug({ device: name, hctl: formatHctl(d.hctl) }, 'scsi: device already gone (its name may belong to another disk now)');
    return;
  }
  if (!(await pathExists(ctx, `${dir}/delete`))) return;
  if (!options.force && (await readAttr(ctx, `${dir}/state`)) === 'blocked') {
    throw new InvalidStateError(`SCSI device ${name} is blocked; not deleting it without force`, { details: { device: name } });
  }
  ctx.logger.debug({ device: name, ...(typeof d === 'string' ? {} : { hctl: formatHctl(d.hctl) }) }, 'scsi: deleting device');
  try {
    await writeAttr(ctx, `${dir}/delete`, '1');
  } catch (err) {
    if (await devicePresent(ctx, d)) throw err;
  }
}

/**
 * Remove the SCSI device at `hctl` whatever its state, block device or not (write `1` to
 * `/sys/bus/scsi/devices/H:C:T:L/delete`): for LUNs the kernel probed but never gave a disk,
 * which would otherwise keep a session "in use". Gone already is not an error. Unlike
 * {@link deletePinnedDevice} it neither looks for a block device nor refuses a blocked one.
 * @throws {@link HostIoError} when the kernel refuses
 */
export async function deleteScsiAddress(ctx: HostContext, hctl: Hctl): Promise<void> {
  const p = `/sys/bus/scsi/devices/${formatHctl(hctl)}/delete`;
  if (!(await pathExists(ctx, p))) return;
  try {
    await writeAttr(ctx, p, '1');
  } catch (err) {
    if (await pathExists(ctx, p)) throw err;
  }
}

/**
 * Wait until every device in `devices` has left sysfs, polling with a deadline (os-brick
 * `wait_for_volumes_removal`, 30 s). A bare name is gone when `/sys/block/NAME` is; a pinned
 * device is gone when its address no longer holds that name, so a name the kernel has already
 * handed to a new disk does not keep the wait going (see {@link RemovableDevice}).
 * @throws {@link VolumePathNotRemovedError} naming the devices still present (`details.devices`)
 */
export async function waitForRemoval(ctx: HostContext, devices: readonly RemovableDevice[], timeoutMs = 30_000): Promise<void> {
  if (devices.length === 0) return;
  let left: RemovableDevice[] = [...devices];
  try {
    await waitFor(
      async () => {
        const still: RemovableDevice[] = [];
        for (const d of left) if (await devicePresent(ctx, d)) still.push(d);
        left = still;
        return still.length === 0;
      },
      { timeoutMs, description: `removal of ${devices.map(removableName).join(', ')}` },
    );
  } catch {
    const names = left.map(removableName);
    throw new VolumePathNotRemovedError(`devices still present after ${timeoutMs} ms: ${names.join(', ')}`, { details: { devices: names } });
  }
}

/**
 * Ask the kernel to re-read the capacity of SCSI device `name` (write `1` to
 * `/sys/block/NAME/device/rescan`, os-brick `extend_volume` per path) and return the new size in bytes.
 * @throws {@link HostIoError} when the device is gone or the kernel refuses
 */
export async function rescanDevice(ctx: HostContext, name: string): Promise<number> {
  await writeAttr(ctx, `/sys/block/${name}/device/rescan`, '1');
  const size = await sysfsSizeBytes(ctx, name);
  if (size === undefined) throw new HostIoError(`size of ${name} unreadable after rescan`, { details: { device: name } });
  return size;
}

/**
 * Unlink `/dev/disk/by-id/scsi-*` / `wwn-*` links still pointing at removed devices (os-brick
 * `_remove_scsi_symlinks`); never throws. A link whose name is held by a disk again is left to
 * udev, which rewrites links when it handles the new disk.
 */
export async function removeStaleByIdLinks(ctx: HostContext, devices: readonly RemovableDevice[]): Promise<string[]> {
  const removed: string[] = [];
  const names = devices.map(removableName);
  if (names.length === 0) return removed;
  for (const l of await listDir(ctx, '/dev/disk/by-id')) {
    if (!l.startsWith('scsi-') && !l.startsWith('wwn-')) continue;
    const target = await readLink(ctx, `/dev/disk/by-id/${l}`);
    if (!target || !names.includes(basename(target))) continue;
    if (await pathExists(ctx, `/sys/block/${basename(target)}`)) continue;
    try {
      if (ctx.executor.rootHelper.length > 0) await ctx.executor.run(['rm', '-f', `/dev/disk/by-id/${l}`], { timeoutMs: 10_000 });
      else await unlink(hostPath(ctx.hostRoot, `/dev/disk/by-id/${l}`));
      removed.push(l);
    } catch {
      /* best effort, as in os-brick */
    }
  }
  return removed;
}
