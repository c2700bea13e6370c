/**
 * The `FIBRE_CHANNEL` connector: SCSI LUNs over FC HBAs, found through sysfs, with optional
 * dm-multipath.
 *
 * Follows os-brick's `FibreChannelConnector` (`connectors/fibre_channel.py` + `linuxfc.py`):
 * - connection properties `target_wwn` (a string or a list) or `target_wwns`, `target_lun` or
 *   `target_luns`, paired as os-brick pairs them (same count, or one LUN for every WWN);
 *   `initiator_target_map` (initiator WWPN -> target WWPNs), turned into the
 *   `initiator_target_lun_map` that limits each HBA to its own targets; `enable_wildcard_scan`
 *   (default true) and `addressing_mode` (`SAM`, `transparent`, `SAM2`, `SAM3-flat`);
 * - online HBAs from `/sys/class/fc_host`; targeted `C T L` scans for the HBA/target pairs found
 *   in `/sys/class/fc_transport`, wildcard `- - L` only when allowed and no HBA sees a target;
 * - the returned path is the by-path link (`/dev/disk/by-path/pci-<pci>-fc-0x<wwpn>-lun-<lun>`,
 *   LUNs of 256 and above in os-brick's `0x%04x%04x00000000` form) when udev made it, else
 *   `/dev/sdX`; with multipath, the dm device of the map multipathd builds over the paths
 *   (`/dev/dm-N`, `multipath_id` = WWID), built by Brick with device-mapper when multipathd has
 *   not after 10 s, falling back to a single path when no map appears (os-brick bug 2097388);
 * - disconnect is the shared SCSI teardown (`host/scsi-teardown.ts`, os-brick's
 *   `remove_connection`): flush the map (`multipath -f`) or the single paths, delete every path's
 *   SCSI device at its address, wait for them to go, remove the map (`multipathd del map` /
 *   `dmsetup remove` after a forced, failed flush); failures are collected as os-brick's
 *   `ExceptionChainer` does.
 *
 * Differences from os-brick: devices are found by walking sysfs from the FC target (H:C:T:L)
 * rather than by probing by-path links; the lock is per target set, not host-wide; SCSI devices
 * this call brought in are removed again when the attach fails.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { InvalidInputError, NotFoundError, VolumeDeviceNotFoundError, ExtendError, BrickError } from '../../errors.js';
import type { HostContext } from '../../host/context.js';
import { checkReadable } from '../../host/blockdev.js';
import { waitFor } from '../../host/retry.js';
import { listDir, pathExists, resolvePath } from '../../host/sysfs.js';
import { openJournalScope, runJournaled, type AttachmentIdentity, type JournalScope } from '../../host/journal.js';
import { journalMaps, recordScsiRemovals } from '../../host/scsi-journal.js';
import { deletePinnedDevice, deviceWwid, formatHctl, lunForAddressing, pinDevice, type RemovableDevice, rescanDevice, sysfsSizeBytes } from '../../host/scsi.js';
import { addPath, addWwid, createMap, isMultipathdRunning, mapForDevice, mapForPath, resizeMap, waitForMap, type MultipathMap } from '../../host/multipath.js';
import { ErrorChain } from '../../host/error-chain.js';
import { finishDisconnect, removeConnection } from '../../host/scsi-teardown.js';
import { fcBlockDevice, fcByPathName, findFcTarget, listFcHbas, normaliseWwn, onlineFcHbas, planFcScans, runFcScans, type FcHba, type FcScan } from '../../host/fc.js';
import { blockVolumeCondition, type ExpectedPath } from '../../host/condition.js';
import type { ConnectionProperties, Connector, DeviceInfo, DisconnectOptions, VolumeCondition } from '../connector.js';
import { registerConnector, type ResolvedConnectorOptions } from '../factory.js';

/** One target port and LUN (the LUN as the array numbers it). */
export interface FcTargetLun {
  wwpn: string;
  lun: number;
}

/** Validated FC connection properties. */
export interface FcVolume {
  targets: FcTargetLun[];
  /** Initiator WWPN -> its targets (os-brick's `initiator_target_lun_map`), when the driver sent an `initiator_target_map`. */
  initiatorTargets?: Record<string, FcTargetLun[]>;
  wildcardScan: boolean;
  addressingMode: string;
}

function wwnList(field: string, v: unknown): string[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0) throw new InvalidInputError(field, 'must be a WWPN or a non-empty list of WWPNs');
  return list.map((w, i) => {
    if (typeof w !== 'string' || !/^[0-9a-f]{16}$/.test(normaliseWwn(w))) throw new InvalidInputError(Array.isArray(v) ? `${field}[${i}]` : field, `must be a 16-hex-digit WWPN, got ${JSON.stringify(w)}`);
    return normaliseWwn(w);
  });
}

function lunValue(field: string, v: unknown): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new InvalidInputError(field, `must be a LUN number, got ${JSON.stringify(v)}`);
  return n;
}

/**
 * Validate and normalise FC connection properties (os-brick `_add_targets_to_connection_properties`).
 * @throws {@link InvalidInputError} naming `target_wwn`, `target_wwns[i]`, `target_lun`, `initiator_target_map`, `enable_wildcard_scan` or `addressing_mode`
 */
export function parseFcProperties(props: ConnectionProperties): FcVolume {
  if (props === null || typeof props !== 'object' || Array.isArray(props)) throw new InvalidInputError('connection_properties', 'must be an object');
  const wwns = props.target_wwns !== undefined && props.target_wwns !== null ? wwnList('target_wwns', props.target_wwns) : wwnList('target_wwn', props.target_wwn);
  let luns: number[];
  if (Array.isArray(props.target_luns) && props.target_luns.length > 0) luns = props.target_luns.map((l, i) => lunValue(`target_luns[${i}]`, l));
  else luns = [lunValue('target_lun', props.target_lun ?? 0)];
  let targets: FcTargetLun[];
  if (luns.length === wwns.length) targets = wwns.map((w, i) => ({ wwpn: w, lun: luns[i]! }));
  else if (luns.length === 1) targets = wwns.map((w) => ({ wwpn: w, lun: luns[0]! }));
  else throw new InvalidInputError('target_luns', `${luns.length} LUNs do not pair with ${wwns.length} target WWPNs`);
  const out: FcVolume = { targets, wildcardScan: true, addressingMode: 'SAM' };
  const itm = props.initiator_target_map;
  if (itm !== undefined && itm !== null) {
    if (typeof itm !== 'object' || Array.isArray(itm)) throw new InvalidInputError('initiator_target_map', 'must map initiator WWPNs to lists of target WWPNs');
    const map: Record<string, FcTargetLun[]> = {};
    for (const [init, tlist] of Object.entries(itm as Record<string, unknown>)) {
      const iw = normaliseWwn(init);
      if (!/^[0-9a-f]{16}$/.test(iw)) throw new InvalidInputError('initiator_target_map', `key ${JSON.stringify(init)} is not a WWPN`);
      const tw = wwnList(`initiator_target_map.${init}`, tlist);
      map[iw] = targets.filter((t) => tw.includes(t.wwpn));
    }
    out.initiatorTargets = map;
  }
  const wc = props.enable_wildcard_scan;
  if (wc !== undefined && wc !== null) {
    if (typeof wc !== 'boolean') throw new InvalidInputError('enable_wildcard_scan', 'must be true or false');
    out.wildcardScan = wc;
  }
  const mode = props.addressing_mode;
  if (mode !== undefined && mode !== null) {
    if (typeof mode !== 'string') throw new InvalidInputError('addressing_mode', 'must be a string');
    lunForAddressing(0, mode); // throws InvalidInputError('addressing_mode') for an unknown mode
    out.addressingMode = mode;
  }
  return out;
}

/**
 * The attach journal identity of the volume (`host/journal.ts`): the target WWPNs and the LUN;
 * when the targets name different LUNs, each target is `<wwpn>,<lun>` and there is no `lun`.
 */
export function fcIdentity(v: FcVolume): AttachmentIdentity {
  const lun = v.targets[0]!.lun;
  if (v.targets.every((t) => t.lun === lun)) return { targets: v.targets.map((t) => t.wwpn), lun };
  return { targets: v.targets.map((t) => `${t.wwpn},${t.lun}`) };
}

/** One path of the volume: an HBA, the target port, the SCSI address and its block device. */
interface FcPath {
  hba: FcHba;
  wwpn: string;
  /** LUN as the SCSI layer numbers it (after addressing). */
  lun: number;
  channel: number;
  target: number;
  device?: string;
}

/** Tunables of the FC connector (ms). */
export interface FcTimings {
  /** How long one scan attempt waits for a device before scanning again (os-brick's loop interval: 2 s). Default 2 000. */
  scanWaitMs: number;
  /** After the first path, how long to wait for the other expected paths. Default 2 000. */
  morePathsWaitMs: number;
  /** How long to wait for the WWID in sysfs. Default 10 000. */
  wwidWaitMs: number;
  /**
   * How long to wait for multipathd to make the map on its own before Brick builds it with
   * device-mapper ({@link createMap}, which multipathd adopts) and then forces it (`multipath -a`
   * + `multipathd add path`). Default 10 000: in the lab multipathd makes the map within about a
   * second, and a map Brick loads while multipathd is about to make its own made the FCoE lab
   * test flaky (2 runs in 4 with 1 000: the condition read a path missing during multipathd's
   * reload, or the flush found the map in use).
   */
  directMapAfterMs: number;
  /** How long, in all, to wait for the map before falling back to a single path. Default 20 000. */
  mapWaitMs: number;
  /** How long disconnect waits for deleted devices to leave sysfs. Default 30 000 (os-brick). */
  removalWaitMs: number;
}

/** Connector for Fibre Channel volumes. */
export class FibreChannelConnector implements Connector {
  readonly protocol = 'FIBRE_CHANNEL';
  private readonly timings: FcTimings;

  constructor(
    private readonly ctx: HostContext,
    private readonly options: Pick<ResolvedConnectorOptions, 'useMultipath' | 'deviceScanAttempts'> & { timings?: Partial<FcTimings> },
  ) {
    this.timings = { scanWaitMs: 2_000, morePathsWaitMs: 2_000, wwidWaitMs: 10_000, directMapAfterMs: 10_000, mapWaitMs: 20_000, removalWaitMs: 30_000, ...(options.timings ?? {}) };
  }

  private lockName(v: FcVolume): string {
    const key = v.targets.map((t) => `${t.wwpn}:${t.lun}`).sort().join(',');
    return `fc-${createHash('sha256').update(key).digest('hex').slice(0, 24)}`;
  }

  /** Targets (with addressed LUNs) an HBA may reach. */
  private targetsFor(v: FcVolume, hba: FcHba): FcTargetLun[] {
    const list = v.initiatorTargets ? (v.initiatorTargets[hba.portName] ?? []) : v.targets;
    return list.map((t) => ({ wwpn: t.wwpn, lun: lunForAddressing(t.lun, v.addressingMode) }));
  }

  private allowedHbas(v: FcVolume, hbas: FcHba[]): FcHba[] {
    return v.initiatorTargets ? hbas.filter((h) => v.initiatorTargets![h.portName] !== undefined) : hbas;
  }

  /** Every path of the volume the HBAs see now (target port present), with its block device when the LUN is there. */
  private async findPaths(v: FcVolume, hbas: FcHba[]): Promise<FcPath[]> {
    const out: FcPath[] = [];
    for (const hba of this.allowedHbas(v, hbas)) {
      for (const t of this.targetsFor(v, hba)) {
        const addr = await findFcTarget(this.ctx, hba.host, t.wwpn);
        if (!addr) continue;
        const device = await fcBlockDevice(this.ctx, hba.host, addr.channel, addr.target, t.lun);
        out.push({ hba, wwpn: t.wwpn, lun: t.lun, channel: addr.channel, target: addr.target, ...(device ? { device } : {}) });
      }
    }
    return out;
  }

  /**
   * Scan for the LUN and return `{ type: 'block', path, scsi_wwn, multipath_id? }`.
   * @throws {@link InvalidInputError} for bad properties, before anything runs
   * @throws {@link NotFoundError} when no HBA port is online
   * @throws {@link VolumeDeviceNotFoundError} when no path appears after `deviceScanAttempts` scans (devices this call brought in are removed)
   */
  async connectVolume(properties: ConnectionProperties): Promise<DeviceInfo> {
    const v = parseFcProperties(properties);
    return this.ctx.locks.withLock(this.lockName(v), async () => {
      const journal = await openJournalScope(this.ctx.journal, 'attach', 'FIBRE_CHANNEL', properties, fcIdentity(v));
      return runJournaled(journal, this.ctx.logger, () => this.connectLocked(v, journal), (info) => info);
    });
  }

  /** Record each targeted scan's address (`H:C:T:L`) that holds no device yet, before the scan; wildcard scans cannot be named before (their devices are recorded once found). */
  private async recordScans(scans: readonly FcScan[], journal: JournalScope): Promise<void> {
    for (const s of scans) {
      const a = s.address;
      if (a.channel === undefined || a.target === undefined || a.lun === undefined) continue;
      const hctl = formatHctl({ host: s.hba.host, channel: a.channel, target: a.target, lun: a.lun });
      if (!(await pathExists(this.ctx, `/sys/bus/scsi/devices/${hctl}`))) await journal.intent('scsi-device', hctl);
    }
  }

  private async connectLocked(v: FcVolume, journal: JournalScope): Promise<DeviceInfo> {
    const log = this.ctx.logger;
    const hbas = await onlineFcHbas(this.ctx);
    if (hbas.length === 0) throw new NotFoundError('Fibre Channel HBA', 'with an online port (/sys/class/fc_host/*/port_state)');
    const before = new Set((await this.findPaths(v, hbas)).map((p) => p.device).filter((d): d is string => !!d));
    const withDevice = async () => (await this.findPaths(v, hbas)).filter((p) => p.device);
    let paths = await withDevice();
    const attempts = Math.max(1, this.options.deviceScanAttempts);
    for (let attempt = 1; paths.length === 0 && attempt <= attempts; attempt++) {
      const scans = await planFcScans(this.ctx, hbas, v.targets.map((t) => ({ wwpn: t.wwpn, lun: lunForAddressing(t.lun, v.addressingMode) })), {
        ...(v.initiatorTargets ? { initiatorTargets: Object.fromEntries(Object.entries(v.initiatorTargets).map(([k, l]) => [k, l.map((t) => ({ wwpn: t.wwpn, lun: lunForAddressing(t.lun, v.addressingMode) }))])) } : {}),
        wildcard: v.wildcardScan,
      });
      if (scans.length === 0) log.info({ attempt }, 'fc: no HBA sees the target and wildcard scans are disabled');
      await this.recordScans(scans, journal);
      await runFcScans(this.ctx, scans);
      paths = await waitFor(async () => {
        const p = await withDevice();
        return p.length > 0 ? p : undefined;
      }, { timeoutMs: this.timings.scanWaitMs, description: 'an FC path of the volume' }).catch(() => []);
    }
    const cleanup = async (ps: FcPath[]) => {
      for (const p of ps) {
        if (p.device && !before.has(p.device)) {
          await deletePinnedDevice(this.ctx, { name: p.device, hctl: { host: p.hba.host, channel: p.channel, target: p.target, lun: p.lun } }, { force: true }).catch(() => undefined);
        }
      }
      await recordScsiRemovals(this.ctx, journal, [], []).catch((e: unknown) => log.warn({ err: (e as Error).message }, 'fc: cleanup: journal not updated'));
    };
    if (paths.length === 0) {
      await cleanup([]);
      throw new VolumeDeviceNotFoundError(`no Fibre Channel path to ${v.targets.map((t) => `${t.wwpn} LUN ${t.lun}`).join(', ')} appeared after ${attempts} scans`, {
        field: 'target_wwn',
        details: { targets: v.targets, hbas: hbas.map((h) => h.hostDevice) },
      });
    }
    try {
      if (this.options.useMultipath) {
        // Give the other expected paths (every HBA that sees a target) a moment to appear.
        const expected = (await this.findPaths(v, hbas)).length;
        if (paths.length < expected) {
          paths = await waitFor(async () => {
            const p = await withDevice();
            return p.length >= expected ? p : undefined;
          }, { timeoutMs: this.timings.morePathsWaitMs, description: 'every FC path' }).catch(() => paths);
          paths = paths.length > 0 ? paths : await withDevice();
        }
      }
      const first = paths[0]!;
      const wwid = await waitFor(() => deviceWwid(this.ctx, first.device!), { timeoutMs: this.timings.wwidWaitMs, description: `WWID of ${first.device}` }).catch(() => {
        throw new VolumeDeviceNotFoundError(`the WWID of /dev/${first.device} did not appear in sysfs`, { field: 'target_wwn' });
      });
      for (const p of paths) if (!before.has(p.device!)) await journal.intent('scsi-device', formatHctl({ host: p.hba.host, channel: p.channel, target: p.target, lun: p.lun }), { wwid });
      const byPath = fcByPathName(first.hba, first.wwpn, first.lun);
      const single = byPath && (await pathExists(this.ctx, byPath)) ? byPath : `/dev/${first.device}`;
      const info: DeviceInfo = { type: 'block', path: single, scsi_wwn: wwid };
      if (this.options.useMultipath) {
        await journal.intent('multipath-map', wwid); // multipathd makes it from the paths Brick scanned in, or Brick does when multipathd is late
        const map = await this.multipathMap(wwid, paths.map((p) => p.device!));
        if (map) {
          info.path = `/dev/${map.dm}`;
          info.multipath_id = map.wwid;
        } else {
          log.warn({ wwid }, 'fc: no multipath map appeared; using a single path');
        }
      }
      log.info({ path: info.path, wwid, paths: paths.map((p) => p.device) }, 'Fibre Channel volume connected');
      return info;
    } catch (e) {
      await cleanup(paths);
      throw e;
    }
  }

  /**
   * The multipath map over block devices `devices` (`['sdb', 'sdc']`) of WWID `wwid`, or
   * `undefined` when none holds one of them within `mapWaitMs`. multipathd normally makes it from
   * the paths' uevents; when it has not after `directMapAfterMs` (udev's queue is long while
   * other devices attach, or a uevent was lost), the map is built with device-mapper directly
   * ({@link createMap}) and failing that forced as os-brick's iSCSI connector does (`multipath -a
   * WWID`, `multipathd add path` per device) before waiting out the rest; both only while
   * multipathd runs, so that it adopts the map and checks the paths. os-brick's FC connector only
   * looks for the map once and falls back to the single path (`_discover_mpath_device`); the
   * lab showed that fallback under load (FCoE over two links, map missing after 10 s).
   * @throws nothing; a map that never appears is `undefined`
   */
  private async multipathMap(wwid: string, devices: string[]): Promise<MultipathMap | undefined> {
    const started = Date.now();
    const holding = (m: MultipathMap | undefined) => (m && m.paths.some((d) => devices.includes(d)) ? m : undefined);
    const wait = (timeoutMs: number) => waitForMap(this.ctx, wwid, { timeoutMs: Math.max(0, timeoutMs), paths: devices }).catch(() => undefined);
    const early = await wait(Math.min(this.timings.directMapAfterMs, this.timings.mapWaitMs));
    if (early) return early;
    if (await isMultipathdRunning(this.ctx)) {
      const built = holding(await createMap(this.ctx, wwid, devices));
      if (built) {
        this.ctx.logger.debug({ wwid, map: built.dm, paths: built.paths }, 'fc: built the multipath map directly');
        return built;
      }
      this.ctx.logger.debug({ wwid, devices }, 'fc: forcing the multipath map');
      await addWwid(this.ctx, wwid);
      for (const d of devices) await addPath(this.ctx, `/dev/${d}`);
    }
    return wait(this.timings.mapWaitMs - (Date.now() - started));
  }

  /**
   * Flush and remove every path of the volume (and its multipath map) with the shared SCSI
   * teardown ({@link removeConnection}, os-brick's flush semantics). Succeeds when nothing is
   * attached. Without `force`, a failed flush raises at once and nothing is removed (also with
   * `ignoreErrors`, as in os-brick, where `ignore_errors` only matters with `force`); with `force`
   * the teardown goes on and raises every failure at the end unless `ignoreErrors`.
   * @throws {@link InvalidInputError} for bad properties
   * @throws the flush's error (ProcessExecutionError / ProcessTimeoutError) when a flush fails without `force`
   * @throws {@link VolumePathNotRemovedError} listing what failed (unless `ignoreErrors`)
   */
  async disconnectVolume(properties: ConnectionProperties, deviceInfo: DeviceInfo | null, options: DisconnectOptions = {}): Promise<void> {
    const v = parseFcProperties(properties);
    await this.ctx.locks.withLock(this.lockName(v), async () => {
      const journal = await openJournalScope(this.ctx.journal, 'detach', 'FIBRE_CHANNEL', properties, fcIdentity(v));
      // Without device info from the caller, the one a completed attach recorded.
      await runJournaled(journal, this.ctx.logger, () => this.disconnectLocked(v, deviceInfo ?? journal.before?.deviceInfo ?? null, journal, options));
    });
  }

  /** The disconnect under the volume lock (see {@link FibreChannelConnector.disconnectVolume}), also removing the maps and devices the journal names. */
  private async disconnectLocked(v: FcVolume, deviceInfo: DeviceInfo | null, journal: JournalScope, options: DisconnectOptions): Promise<void> {
    // Offline ports too: their devices must go as well.
    const devices = new Set((await this.findPaths(v, await listFcHbas(this.ctx))).map((p) => p.device).filter((d): d is string => !!d));
    for (const r of await journal.resources()) {
      if (r.kind !== 'scsi-device') continue;
      const [name] = await listDir(this.ctx, `/sys/bus/scsi/devices/${r.name}/block`);
      if (name) devices.add(name);
    }
    const maps = new Map<string, MultipathMap>();
    for (const m of await journalMaps(this.ctx, journal)) maps.set(m.name, m);
    if (typeof deviceInfo?.path === 'string') {
      const real = await resolvePath(this.ctx, deviceInfo.path);
      const name = real ? basename(real) : undefined;
      if (name?.startsWith('dm-')) {
        const m = await mapForPath(this.ctx, name);
        if (m) maps.set(m.name, m);
      }
    }
    for (const d of devices) {
      const m = await mapForDevice(this.ctx, d);
      if (m) maps.set(m.name, m);
    }
    for (const m of maps.values()) for (const p of m.paths) if (/^sd[a-z]+$/.test(p)) devices.add(p);
    // Pinned to their H:C:T:L before anything is removed: a freed name can go to another disk at once.
    const pinned: RemovableDevice[] = [];
    for (const d of devices) pinned.push(await pinDevice(this.ctx, d));
    const chain = new ErrorChain();
    await removeConnection(this.ctx, { maps: [...maps.values()], devices: pinned }, { force: options.force === true, label: 'fc', removalWaitMs: this.timings.removalWaitMs }, chain);
    const hctls = pinned.flatMap((d) => (typeof d === 'string' ? [] : [formatHctl(d.hctl)]));
    await recordScsiRemovals(this.ctx, journal, hctls, [...maps.values()].map((m) => m.wwid));
    finishDisconnect(this.ctx, chain, { label: 'fc', what: 'Fibre Channel disconnect', ignoreErrors: options.ignoreErrors === true });
  }

  /**
   * Re-read the capacity of every path (and resize the multipath map); returns the new size in bytes.
   * @throws {@link VolumeDeviceNotFoundError} when no path is attached
   * @throws {@link ExtendError} when the size cannot be refreshed
   */
  async extendVolume(properties: ConnectionProperties): Promise<number> {
    const v = parseFcProperties(properties);
    return this.ctx.locks.withLock(`${this.lockName(v)}-extend`, async () => {
      const devices = (await this.findPaths(v, await onlineFcHbas(this.ctx))).map((p) => p.device).filter((d): d is string => !!d);
      if (devices.length === 0) throw new VolumeDeviceNotFoundError('no path of the volume is attached', { field: 'target_wwn' });
      try {
        let size = 0;
        for (const d of devices) size = await rescanDevice(this.ctx, d);
        const map = await mapForDevice(this.ctx, devices[0]!);
        if (map) {
          await resizeMap(this.ctx, map.name);
          size = (await sysfsSizeBytes(this.ctx, map.dm)) ?? size;
        }
        return size;
      } catch (e) {
        if (e instanceof BrickError && e.code === 'EXTEND_FAILED') throw e;
        throw new ExtendError(`extending the FC volume failed: ${(e as Error).message}`, { cause: e });
      }
    });
  }

  /** The by-path candidates (every online HBA × target) that exist now (os-brick `get_volume_paths`). */
  async getVolumePaths(properties: ConnectionProperties): Promise<string[]> {
    const v = parseFcProperties(properties);
    const out: string[] = [];
    for (const hba of await onlineFcHbas(this.ctx)) {
      for (const t of v.targets) {
        const p = fcByPathName(hba, t.wwpn, lunForAddressing(t.lun, v.addressingMode));
        if (p && (await pathExists(this.ctx, p))) out.push(p);
      }
    }
    return out;
  }

  async checkValidDevice(path: string): Promise<boolean> {
    return checkReadable(this.ctx, path);
  }

  /**
   * The volume's condition (see `Connector.checkVolumeCondition`): the map's paths and their
   * SCSI device states, the read test, and, when the properties carry an `initiator_target_map`
   * (which says which HBA should reach which target port), one expected path per pair of it
   * (`missing` when the HBA does not see the target port or the LUN). Without the map, zoning and
   * LUN masking are unknown, so an HBA that does not see a target port is no sign of trouble.
   * @throws {@link InvalidInputError} for bad properties
   */
  async checkVolumeCondition(properties: ConnectionProperties, deviceInfo: DeviceInfo): Promise<VolumeCondition> {
    const v = parseFcProperties(properties);
    const hbas = await onlineFcHbas(this.ctx);
    const found = await this.findPaths(v, hbas);
    const expected: ExpectedPath[] = [];
    for (const hba of this.allowedHbas(v, hbas)) {
      for (const t of this.targetsFor(v, hba)) {
        const p = found.find((f) => f.hba === hba && f.wwpn === t.wwpn && f.lun === t.lun);
        if (p?.device) expected.push({ portal: t.wwpn, device: p.device });
        else if (v.initiatorTargets) expected.push({ portal: t.wwpn, name: `host${hba.host}`, state: 'missing', detail: p ? `no device for LUN ${t.lun}` : 'target port not seen' });
      }
    }
    return blockVolumeCondition(this.ctx, deviceInfo.path, { expected, singlePath: !this.options.useMultipath });
  }

  getSearchPath(): string | null {
    return '/dev/disk/by-path';
  }
}

registerConnector('FIBRE_CHANNEL', (ctx, options) => new FibreChannelConnector(ctx, { useMultipath: options.useMultipath, deviceScanAttempts: options.deviceScanAttempts, ...(options.timings ? { timings: options.timings as Partial<FcTimings> } : {}) }));
