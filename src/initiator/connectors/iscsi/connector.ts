/**
 * The iSCSI connector class ({@link IscsiConnector}); the module notes of `./index.ts` say how it
 * follows and where it departs from os-brick's `ISCSIConnector`.
 *
 * @module
 */
import { InvalidInputError, VolumeDeviceNotFoundError, TargetPortalLoginError, BrickError, ExtendError } from '../../../errors.js';
import { maskObject } from '../../../exec/mask.js';
import type { HostContext } from '../../../host/context.js';
import { checkReadable, deviceSizeBytes, readFirstBlock } from '../../../host/blockdev.js';
import { ErrorChain } from '../../../host/error-chain.js';
import { delay, waitFor } from '../../../host/retry.js';
import { pathExists } from '../../../host/sysfs.js';
import { deleteNode, listSessions, logout, nodeRecordFile, sessionsFor } from '../../../host/iscsiadm.js';
import { blockDeviceForHctl, deletePinnedDevice, formatHctl, type Hctl, deviceWwid, rescanDevice, scsiDevicesUnder, sysfsSizeBytes, waitForRemoval } from '../../../host/scsi.js';
import { flushMap, mapForDevice, mapForWwid, removeMap, resizeMap } from '../../../host/multipath.js';
import { finishDisconnect, removeConnection } from '../../../host/scsi-teardown.js';
import { openJournalScope, runJournaled, type JournalScope } from '../../../host/journal.js';
import type { ConnectionProperties, Connector, DeviceInfo, DisconnectOptions, VolumeCondition } from '../../connector.js';
import { iscsiVolumeCondition } from './condition.js';
import type { ResolvedConnectorOptions } from '../../factory.js';
import { lunScsiDevices, volumeMap } from './lookup.js';
import { iscsiIdentity, portalLockName, targetName, validateIscsiProperties, volumeLockName, type IscsiProperties, type IscsiTarget } from './properties.js';
import { journalTargets } from './journal.js';
import { journalMaps, recordScsiRemovals } from '../../../host/scsi-journal.js';
import { newPath, PortalLoginQueue, scanLun, type PathState } from './portal-queue.js';
import { assembleMap, multipathTargets, newAssembly, type MapAssembly, type MapTimings } from './multipath.js';

/** Tunables of the iSCSI connector, as extra {@link ConnectorOptions} keys. Times in ms. */
export interface IscsiConnectorTunables {
  /** iface transport: `default` (TCP), `iser`, or an offload iface name. ISER forces `iser`. */
  transport?: string;
  /** `node.session.initial_login_retry_max` written into node records. Default 1 (gobrick's fail-fast choice): a dead portal costs one login timeout (15 s by default) instead of iscsid's default 8 attempts, which os-brick relies on; in the lab, 2 made a dead portal cost about 30 s. */
  loginRetryMax?: number;
  /**
   * Build the multipath map with device-mapper directly ({@link createMap}) when multipathd has not
   * made it yet, instead of waiting for multipathd to react to udev's events; multipathd adopts the
   * map and reloads it with its configuration. Only when multipathd runs. Default true: in the lab
   * it cut a two-path attach from about 2.0 s to 0.85 s. False restores os-brick's behaviour
   * (wait, then force with `multipath -a` + `multipathd add path`).
   */
  directMap?: boolean;
  /** After the first path device appears, how long to wait for the devices of other paths whose scan is under way before building the map directly (it is built at once when no other path is being scanned). Default 250. */
  directMapAfterMs?: number;
  /** After the first path device appears, how long to let multipathd build the map by itself before forcing it (`multipath -a` + `multipathd add path`). Also the fallback when a direct build did not give a map. Default 1 000. */
  forceMapAfterMs?: number;
  /** After every login has settled with devices found but no map, how long to wait for one before returning a single device with a warning (os-brick: 10 s). Default 10 000. */
  mapGraceMs?: number;
  /** Bound on waiting for the first read of the returned device to succeed (os-brick `multipath -C`: 4 tries, about 14 s). Default 30 000. */
  readyTimeoutMs?: number;
  /** Hand every new path device to multipathd (`multipathd add path`) as soon as it appears, rather than waiting for udev's event. Default false: in the lab it did not shorten the wait for the map, and under heavy load (8 LUNs x 2 paths) one map it made was not readable within 10 s. */
  earlyPathAdd?: boolean;
  /** After the map has formed, how long to let paths still logging in or scanning finish before returning (they join the map in the background either way; a warning names them). Default 0: the contract is to return as soon as one path works and its map exists; in the lab a 1 000 ms grace cost up to a second per LUN when eight LUNs attached at once. */
    pathGraceMs?: number;
  /** Seconds-scale base of the rescan schedule: after scan k the device is awaited `(k+1)^2 * rescanBaseMs` (os-brick 4, 9, 16 s). Default 1 000. */
  rescanBaseMs?: number;
}

/** A path attach still running after its multipath connect returned. */
interface BackgroundJob {
  /** Settles once the attach has ended and, if it failed and was not abandoned, cleaned up after itself. */
  done: Promise<unknown>;
  /** Stop it (a disconnect of the volume is under way and removes whatever it made). */
  abandon(): void;
}

/**
 * Path attaches still running after their multipath connect returned, in this process, by lock
 * directory and volume lock name. Module-wide rather than per connector: the library and most
 * callers make a new connector for each operation, and the disconnect or extend of a volume must
 * find (and stop, or wait for) the paths its connect left running whichever instance made them.
 */
const backgroundJobs = new Map<string, Set<BackgroundJob>>();

/** The ISCSI / ISER connector. Construct it through `connectorFor('ISCSI' | 'ISER', options)`. */
export class IscsiConnector implements Connector {
  readonly protocol: string;
  private readonly iface: string;
  private readonly useMultipath: boolean;
  private readonly scanAttempts: number;
  private readonly readyTimeoutMs: number;
  private readonly rescanBaseMs: number;
  private readonly pathGraceMs: number;
  /** Timings and switches of the multipath assembly. */
  private readonly mapTimings: MapTimings;
  /** The session phase of each path: node record, login, targeted scan, under the portal lock. */
  private readonly portals: PortalLoginQueue;
  /** Path attaches still running after a multipath connect returned: this process's registry, shared by every connector instance (see {@link backgroundJobs}). */
  private readonly background = backgroundJobs;
  /** The jobs this instance started, for {@link IscsiConnector.settled}. */
  private readonly ownJobs = new Set<BackgroundJob>();

  /**
   * @param ctx the host to act on (executor, host root, locks, logger)
   * @param options the resolved connector options plus {@link IscsiConnectorTunables}
   * @throws {@link InvalidInputError} naming a bad tunable
   */
  constructor(
    private readonly ctx: HostContext,
    options: ResolvedConnectorOptions & IscsiConnectorTunables,
  ) {
    this.protocol = options.protocol === 'ISER' ? 'ISER' : 'ISCSI';
    const transport = this.protocol === 'ISER' ? 'iser' : (options.transport ?? 'default');
    if (typeof transport !== 'string' || !/^[A-Za-z0-9_.:-]+$/.test(transport)) throw new InvalidInputError('transport', 'must be an iface name such as "default" or "iser"');
    this.iface = transport === 'tcp' ? 'default' : transport;
    this.useMultipath = options.useMultipath;
    this.scanAttempts = options.deviceScanAttempts;
    const num = (v: unknown, field: string, dflt: number, min = 0): number => {
      if (v === undefined) return dflt;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new InvalidInputError(field, `must be a number >= ${min}`);
      return v;
    };
    const loginRetryMax = num(options.loginRetryMax, 'loginRetryMax', 1, 0);
    const forceMapAfterMs = num(options.forceMapAfterMs, 'forceMapAfterMs', 1_000);
    const mapGraceMs = num(options.mapGraceMs, 'mapGraceMs', 10_000);
    this.readyTimeoutMs = num(options.readyTimeoutMs, 'readyTimeoutMs', 30_000);
    this.rescanBaseMs = num(options.rescanBaseMs, 'rescanBaseMs', 1_000, 1);
    this.pathGraceMs = num(options.pathGraceMs, 'pathGraceMs', 0);
    if (options.earlyPathAdd !== undefined && typeof options.earlyPathAdd !== 'boolean') throw new InvalidInputError('earlyPathAdd', 'must be a boolean');
    if (options.directMap !== undefined && typeof options.directMap !== 'boolean') throw new InvalidInputError('directMap', 'must be a boolean');
    const directMapAfterMs = num(options.directMapAfterMs, 'directMapAfterMs', 250);
    this.mapTimings = { earlyPathAdd: options.earlyPathAdd ?? false, directMap: options.directMap ?? true, directMapAfterMs, forceMapAfterMs, mapGraceMs };
    this.portals = new PortalLoginQueue(ctx, { iface: this.iface, loginRetryMax });
  }

  /** `/dev/disk/by-path` (os-brick `get_search_path`). */
  getSearchPath(): string {
    return '/dev/disk/by-path';
  }

  /** Read test of the first 4 KiB (os-brick `check_valid_device`). */
  async checkValidDevice(path: string): Promise<boolean> {
    return checkReadable(this.ctx, path);
  }

  /**
   * The volume's condition (see `Connector.checkVolumeCondition`): each portal's session and
   * disk, the map's paths, the read test ({@link iscsiVolumeCondition}).
   * @throws {@link InvalidInputError} for bad properties
   */
  async checkVolumeCondition(properties: ConnectionProperties, deviceInfo: DeviceInfo): Promise<VolumeCondition> {
    const p = validateIscsiProperties(properties);
    return iscsiVolumeCondition(this.ctx, deviceInfo, await this.knownTargets(p), this.useMultipath);
  }

  /**
   * The `/dev/disk/by-path/ip-<portal>-iscsi-<iqn>-lun-<lun>` links of the volume that exist
   * now (udev's path_id naming; IPv6 without brackets; LUNs of 256 and above in the
   * `0x%04x%04x00000000` form). Never logs in (os-brick `get_volume_paths`).
   * @throws {@link InvalidInputError} for bad properties
   */
  async getVolumePaths(properties: ConnectionProperties): Promise<string[]> {
    const p = validateIscsiProperties(properties);
    const out: string[] = [];
    for (const t of p.targets) {
      const lunText = t.lun < 256 ? String(t.lun) : `0x${(t.lun & 0xffff).toString(16).padStart(4, '0')}${((t.lun >> 16) & 0xffff).toString(16).padStart(4, '0')}00000000`;
      const link = `/dev/disk/by-path/ip-${t.portal.address}:${t.portal.port}-iscsi-${t.iqn}-lun-${lunText}`;
      if (await pathExists(this.ctx, link)) out.push(link);
    }
    return out;
  }

  /**
   * Attach the volume. Single path: the targets are tried in order until one gives a device.
   * Multipath: every portal in parallel (after sendtargets discovery when only one portal is
   * given); returns the map (`/dev/dm-N`) as soon as one path is in it, or, when no map forms,
   * a single path with a warning.
   * @returns `{ type: 'block', path, scsi_wwn, multipath_id? }`
   * @throws {@link InvalidInputError} naming the field, before anything runs
   * @throws {@link AuthenticationError} when CHAP is refused
   * @throws {@link TargetPortalLoginError} when no portal accepts a login
   * @throws {@link VolumeDeviceNotFoundError} when no device appears
   */
  async connectVolume(properties: ConnectionProperties): Promise<DeviceInfo> {
    const p = validateIscsiProperties(properties);
    const log = this.ctx.logger;
    log.info({ protocol: this.protocol, multipath: this.useMultipath, connection_properties: maskObject(properties) }, 'iscsi: connect_volume');
    const started = Date.now();
    const result = await this.ctx.locks.withLock(volumeLockName(p), async () => {
      await this.settleBackground(this.backgroundKey(p));
      // Under the volume lock, before anything is made: from here on every node record,
      // session, scanned device and map is written down before it exists.
      const journal = await openJournalScope(this.ctx.journal, 'attach', this.protocol, properties, iscsiIdentity(p));
      return runJournaled(journal, log, () => (this.useMultipath ? this.connectMultipath(p, journal) : this.connectSingle(p, journal)), (info) => info);
    });
    log.info({ device: result, ms: Date.now() - started }, 'iscsi: connect_volume done');
    return result;
  }

  /** Session phase of one path, then the wait for its device. */
  private async attachPath(p: IscsiProperties, st: PathState, signal: AbortSignal, siblings: readonly PathState[] = [st]): Promise<void> {
    await this.portals.sessionPhase(p, st, signal, siblings);
    await this.waitForPathDevice(st, signal);
  }

  /**
   * The LUN's SCSI device below the path's session, once it has a block device: at the path's
   * known address (one directory read; eight LUNs attaching at once over two portals poll sixteen
   * of these), else by walking the session's targets and LUNs.
   */
  private async pathDevice(st: PathState): Promise<{ hctl: Hctl; device?: string } | undefined> {
    if (st.address) {
      const device = await blockDeviceForHctl(this.ctx, st.address);
      return device ? { hctl: st.address, device } : undefined;
    }
    return (await scsiDevicesUnder(this.ctx, st.session!.deviceDir)).find((d) => d.hctl.lun === st.target.scsiLun && d.device);
  }

  /** Wait for the LUN's block device below the session, rescanning on os-brick's (k+1)^2 schedule, `deviceScanAttempts` scans in all. */
  private async waitForPathDevice(st: PathState, signal: AbortSignal): Promise<void> {
    const session = st.session!;
    const t = st.target;
    for (let attempt = 1; ; attempt++) {
      try {
        const found = await waitFor(
          async () => {
            if (signal.aborted) return undefined;
            return this.pathDevice(st);
          },
          // A poll is one directory read once the address is known: keep the gaps short (the device
          // usually appears within a few hundred ms of the scan), 100 ms at most.
          { timeoutMs: (attempt + 1) ** 2 * this.rescanBaseMs, intervalMs: 20, maxIntervalMs: 100, description: `LUN ${t.lun} of ${t.iqn} at ${t.portal.text}`, signal },
        );
        st.device = found.device;
        st.hctl = found.hctl;
        if (st.journal && !st.preexisting) {
          // The address is now certain (it may not have been before the scan), and the WWID pins it.
          const wwid = await deviceWwid(this.ctx, found.device!);
          await st.journal.intent('scsi-device', formatHctl(found.hctl), { target: targetName(t), ...(wwid ? { wwid } : {}) });
        }
        return;
      } catch (err) {
        if (signal.aborted || attempt >= this.scanAttempts) {
          throw new VolumeDeviceNotFoundError(`no device for LUN ${t.lun} of ${t.iqn} at ${t.portal.text} after ${attempt} scan(s)`, {
            details: { target_iqn: t.iqn, target_portal: t.portal.text, target_lun: t.lun },
            cause: err,
          });
        }
        this.ctx.logger.debug({ target_iqn: t.iqn, target_portal: t.portal.text, lun: t.lun, attempt }, 'iscsi: rescanning LUN');
        st.address = (await scanLun(this.ctx, session, t)) ?? st.address;
      }
    }
  }

  private async connectSingle(p: IscsiProperties, journal: JournalScope): Promise<DeviceInfo> {
    const errors: unknown[] = [];
    for (const t of p.targets) {
      const st = newPath(t, journal);
      const ac = new AbortController();
      try {
        await this.attachPath(p, st, ac.signal);
        const device = st.device!;
        const wwid = await waitFor(() => deviceWwid(this.ctx, device), { timeoutMs: 10_000, description: `WWID of ${device}` });
        await this.waitReadable(`/dev/${device}`);
        return { type: 'block', path: `/dev/${device}`, scsi_wwn: wwid };
      } catch (err) {
        errors.push(err);
        this.ctx.logger.warn({ target_iqn: t.iqn, target_portal: t.portal.text, err: (err as Error).message }, 'iscsi: path failed; cleaning up');
        await this.cleanupPaths([st], undefined, journal);
      }
    }
    throw this.connectError(errors);
  }

  private connectError(errors: unknown[]): Error {
    const auth = errors.find((e) => e instanceof BrickError && e.code === 'AUTHENTICATION_FAILED');
    if (auth) return auth as Error;
    const dev = errors.find((e) => e instanceof VolumeDeviceNotFoundError);
    if (dev) return dev as Error;
    const login = errors.find((e) => e instanceof TargetPortalLoginError);
    if (login) return login as Error;
    const first = errors[0];
    if (first instanceof BrickError) return first;
    return new VolumeDeviceNotFoundError(`volume not attached: ${first instanceof Error ? first.message : String(first)}`, { cause: first });
  }

  private async waitReadable(path: string): Promise<void> {
    await waitFor(() => readFirstBlock(this.ctx, path, Math.min(this.readyTimeoutMs, 30_000)), {
      timeoutMs: this.readyTimeoutMs,
      intervalMs: 100,
      description: `first read of ${path}`,
    }).catch((err: unknown) => {
      throw new VolumeDeviceNotFoundError(`${path} exists but cannot be read`, { details: { device: path }, cause: err });
    });
  }

  /**
   * Multipath attach: every path in parallel, while {@link assembleMap} finds or builds the map.
   * Returns the map once it is readable; a single path (with a warning) when no map formed; on
   * failure removes what the connect made and raises.
   */
  private async connectMultipath(p: IscsiProperties, journal: JournalScope): Promise<DeviceInfo> {
    const ctx = this.ctx;
    const targets = await multipathTargets(ctx, p, this.iface);
    const ac = new AbortController();
    const asm = newAssembly(targets.map((t) => newPath(t, journal)), journal);
    const paths = asm.paths;
    const tasks = paths.map((st) =>
      this.attachPath(p, st, ac.signal, paths).then(
        () => {
          st.done = true;
          asm.wake();
        },
        (err: unknown) => {
          st.error = err;
          st.done = true;
          ctx.logger.warn({ target_iqn: st.target.iqn, target_portal: st.target.portal.text, err: (err as Error).message }, 'iscsi: path failed');
          asm.wake();
        },
      ),
    );
    const outcome = await assembleMap(ctx, asm, this.mapTimings);
    await Promise.all(asm.adds);
    try {
      if (outcome === 'none') throw this.connectError(paths.map((s) => s.error).filter((e) => e !== undefined));
      if (outcome === 'single') {
        await Promise.all(tasks);
        return await this.singlePathResult(paths, asm.wwid);
      }
      await this.waitReadable(`/dev/${asm.map!.dm}`);
    } catch (err) {
      ac.abort();
      await Promise.all(tasks);
      await this.cleanupPaths(paths, asm.wwid, journal);
      throw err;
    }
    return this.mapResult(p, asm, tasks, ac);
  }

  /** No map formed: the first path device that reads (or, when none does yet, the first once it reads), with a warning. */
  private async singlePathResult(paths: PathState[], wwid: string | undefined): Promise<DeviceInfo> {
    const ctx = this.ctx;
    const log = ctx.logger;
    // A path that exists but does not read (a dead session) is skipped, not fatal: take the first that reads.
    const candidates = paths.filter((s) => s.device).map((s) => s.device!);
    let dev: string | undefined;
    for (const d of candidates) {
      if (await checkReadable(ctx, `/dev/${d}`, Math.min(this.readyTimeoutMs, 30_000))) {
        dev = d;
        break;
      }
      log.warn({ device: d }, 'iscsi: path device does not read; trying the next');
    }
    if (!dev) {
      dev = candidates[0]!;
      await this.waitReadable(`/dev/${dev}`);
    }
    log.warn({ device: dev, wwid }, 'iscsi: no multipath map formed; returning a single path device (probably bad: check multipathd)');
    return { type: 'block', path: `/dev/${dev}`, scsi_wwn: wwid ?? (await waitFor(() => deviceWwid(ctx, dev), { timeoutMs: 10_000, description: `WWID of ${dev}` })) };
  }

  /** The map has formed: give slower paths a short grace to join, say plainly when the map is degraded, leave the rest running in the background. */
  private async mapResult(p: IscsiProperties, asm: MapAssembly, tasks: Promise<void>[], ac: AbortController): Promise<DeviceInfo> {
    const { paths } = asm;
    const map = asm.map!;
    const graceEnd = Date.now() + this.pathGraceMs;
    while (paths.some((s) => !s.done) && Date.now() < graceEnd) await Promise.race([delay(50), new Promise<void>((r) => (asm.wake = r))]);
    const failed = paths.filter((s) => s.done && s.error);
    const pending = paths.filter((s) => !s.done);
    if (failed.length > 0 || pending.length > 0) {
      this.ctx.logger.warn(
        { map: map.name, failed_portals: failed.map((s) => s.target.portal.text), pending_portals: pending.map((s) => s.target.portal.text) },
        'iscsi: returning a multipath map without every path (failed or still logging in)',
      );
    }
    if (paths.some((s) => !s.done || s.error)) this.trackBackground(this.backgroundKey(p), paths, tasks, ac);
    return { type: 'block', path: `/dev/${map.dm}`, scsi_wwn: asm.wwid!, multipath_id: map.wwid };
  }

  /** Keep the still-running path attaches of a returned multipath connect; a failed one (now or later) cleans up after itself in the background. */
  private trackBackground(key: string, paths: PathState[], tasks: Promise<void>[], ac: AbortController): void {
    let set = this.background.get(key);
    if (!set) this.background.set(key, (set = new Set()));
    paths.forEach((st, i) => {
      if (st.done && !st.error) return;
      let abandoned = false;
      const done = tasks[i]!.then(async () => {
        if (st.error && !abandoned) await this.cleanupPaths([st], undefined, st.journal);
      });
      const job: BackgroundJob = {
        done,
        abandon: () => {
          abandoned = true;
          ac.abort();
        },
      };
      set.add(job);
      this.ownJobs.add(job);
      void done.finally(() => {
        set.delete(job);
        this.ownJobs.delete(job);
        if (set.size === 0 && this.background.get(key) === set) this.background.delete(key);
      });
    });
  }

  /**
   * Resolve once every path attach still running in the background (logins to slower portals
   * after a multipath connect returned) has finished and, if it failed, cleaned up after itself.
   * A short-lived process (the CLI) should await this before exiting. Never rejects.
   */
  async settled(): Promise<void> {
    while (this.ownJobs.size > 0) await Promise.allSettled([...this.ownJobs].map((j) => j.done));
  }

  /** The background registry key of a volume: lock directory and volume lock name. */
  private backgroundKey(p: IscsiProperties): string {
    return `${this.ctx.locks.lockPath}\0${volumeLockName(p)}`;
  }

  /**
   * Wait for the volume's background path attaches. With `abandon` (a disconnect), they are
   * stopped first: a path still queued for its portal is dropped, one being set up stops before
   * its scan, and the disconnect removes whatever they made.
   */
  private async settleBackground(key: string, abandon = false): Promise<void> {
    const set = this.background.get(key);
    if (!set || set.size === 0) return;
    if (abandon) for (const j of set) j.abandon();
    await Promise.allSettled([...set].map((j) => j.done));
  }

  /**
   * Undo what a connect created for `paths`: a map made only of devices it scanned in, those
   * devices, and (under each portal lock) sessions it logged in that carry no other LUN and
   * node records it created. Never throws; failures are logged.
   */
  private async cleanupPaths(paths: PathState[], wwid: string | undefined, journal: JournalScope | undefined): Promise<void> {
    const ctx = this.ctx;
    // waitForPathDevice sets a path's device and its H:C:T:L together.
    const pinned = paths.filter((s) => s.device && !s.preexisting).map((s) => ({ name: s.device!, hctl: s.hctl! }));
    const ours = pinned.map((d) => d.name);
    const flushed: string[] = [];
    try {
      const map = wwid ? await mapForWwid(ctx, wwid) : ours[0] ? await mapForDevice(ctx, ours[0]) : undefined;
      if (map && map.paths.every((d) => ours.includes(d))) {
        flushed.push(map.wwid);
        await flushMap(ctx, map.name, { attempts: 1, timeoutMs: 30_000 }).catch(() => removeMap(ctx, map.name));
      }
      for (const d of pinned) await deletePinnedDevice(ctx, d, { force: true }).catch((e: unknown) => ctx.logger.warn({ device: d.name, err: (e as Error).message }, 'iscsi: cleanup could not delete device'));
      await waitForRemoval(ctx, pinned).catch((e: unknown) => ctx.logger.warn({ err: (e as Error).message }, 'iscsi: cleanup: devices linger'));
    } catch (err) {
      ctx.logger.warn({ err: (err as Error).message }, 'iscsi: cleanup of devices failed');
    }
    for (const st of paths) {
      // With a journal, a path that made nothing is still looked at: its login may have failed after its session was recorded.
      if (!st.loggedIn && !st.createdNode && !journal) continue;
      await ctx.locks
        .withLock(portalLockName(st.target), () => this.releaseTarget(st.target, st.loggedIn, st.createdNode, journal))
        .catch((e: unknown) => ctx.logger.warn({ target_iqn: st.target.iqn, target_portal: st.target.portal.text, err: (e as Error).message }, 'iscsi: cleanup of session failed'));
    }
    if (journal) {
      const hctls = [...pinned.map((d) => formatHctl(d.hctl)), ...paths.map((s) => s.recordedHctl).filter((h): h is string => h !== undefined)];
      await recordScsiRemovals(ctx, journal, hctls, flushed).catch((e: unknown) => ctx.logger.warn({ err: (e as Error).message }, 'iscsi: cleanup: journal not updated'));
    }
  }

  /**
   * Under the portal lock: log out the target's sessions when they carry no LUN, then delete the
   * node record, recording each removal in `journal` (a session that does not exist counts as
   * removed). Returns whether it logged out.
   */
  private async releaseTarget(t: IscsiTarget, mayLogout: boolean, mayDeleteNode: boolean, journal?: JournalScope): Promise<boolean> {
    const ctx = this.ctx;
    const sessions = sessionsFor(await listSessions(ctx), t.iqn, t.portal);
    for (const s of sessions) {
      if ((await scsiDevicesUnder(ctx, s.deviceDir)).length > 0) return false;
    }
    if (sessions.length > 0) {
      if (!mayLogout) return false;
      await logout(ctx, t.iqn, t.portal, { iface: sessions[0]!.iface ?? this.iface });
    }
    await journal?.removed('iscsi-session', targetName(t));
    if (mayDeleteNode) {
      await deleteNode(ctx, t.iqn, t.portal, { iface: this.iface });
      await journal?.removed('iscsi-node', targetName(t));
    }
    return sessions.length > 0;
  }

  /** The targets a disconnect or extend looks at: the given ones, or for a discovered multipath attach every portal with a session or node record for the IQN. */
  private async knownTargets(p: IscsiProperties): Promise<IscsiTarget[]> {
    if (p.plural || !this.useMultipath) return p.targets;
    const first = p.targets[0]!;
    const out = new Map<string, IscsiTarget>();
    out.set(first.portal.text, first);
    for (const s of await listSessions(this.ctx)) {
      if (s.targetIqn === first.iqn) out.set(s.portal.text, { ...first, portal: s.portal });
    }
    return [...out.values()];
  }

  /** Every block device of the volume's LUN below sessions of `targets`, with the session it hangs on. */
  private async lunDevices(targets: IscsiTarget[]): Promise<{ target: IscsiTarget; device: string }[]> {
    return (await lunScsiDevices(this.ctx, targets)).filter((d): d is { target: IscsiTarget; hctl: Hctl; device: string } => d.device !== undefined);
  }

  /**
   * Detach (os-brick `_cleanup_connection` + `remove_connection`): the shared SCSI teardown
   * ({@link removeConnection}: flush the multipath map, if any, or the single devices; delete the
   * LUN's SCSI devices at their addresses; wait for their removal; remove a map still there),
   * with the logouts of (and node record deletions for) portals whose sessions carry no other LUN
   * running beside the map removal. Without `force`, a failed flush raises before anything is
   * removed (also with `ignoreErrors`, as in os-brick). With `force`, the disconnect carries on
   * past failures to leave a clean host; unless `ignoreErrors`, it raises them all at the end.
   * @throws {@link InvalidInputError} for bad properties
   * @throws the flush's error (ProcessExecutionError / ProcessTimeoutError) when a flush fails without `force`
   * @throws {@link VolumePathNotRemovedError} carrying every failure when something could not be removed (unless `ignoreErrors`)
   */
  async disconnectVolume(properties: ConnectionProperties, deviceInfo: DeviceInfo | null, options: DisconnectOptions = {}): Promise<void> {
    const p = validateIscsiProperties(properties);
    const ctx = this.ctx;
    ctx.logger.info({ protocol: this.protocol, device_info: deviceInfo, force: options.force === true, ignore_errors: options.ignoreErrors === true, connection_properties: maskObject(properties) }, 'iscsi: disconnect_volume');
    await ctx.locks.withLock(volumeLockName(p), async () => {
      await this.settleBackground(this.backgroundKey(p), true);
      const journal = await openJournalScope(ctx.journal, 'detach', this.protocol, properties, iscsiIdentity(p));
      // Without device info from the caller, the one a completed attach recorded.
      await runJournaled(journal, ctx.logger, () => this.disconnectLocked(p, deviceInfo ?? journal.before?.deviceInfo ?? null, journal, options));
    });
  }

  /** The disconnect under the volume lock (see {@link IscsiConnector.disconnectVolume}), also undoing what the journal says an interrupted attach made. */
  private async disconnectLocked(p: IscsiProperties, deviceInfo: DeviceInfo | null, journal: JournalScope, options: DisconnectOptions): Promise<void> {
    const ctx = this.ctx;
    const known = await this.knownTargets(p);
    const targets = [...known, ...(await journalTargets(journal, p.targets[0]!, known))];
    const scsi = await lunScsiDevices(this.ctx, targets);
    // Pinned to their H:C:T:L: once one is deleted the kernel may give its name to another
    // volume's new path at once, and that disk must neither be deleted nor waited for.
    const pinned = scsi.filter((f) => f.device).map((f) => ({ name: f.device!, hctl: f.hctl }));
    const blockless = scsi.filter((f) => !f.device).map((f) => f.hctl);
    const found = await volumeMap(this.ctx, deviceInfo, pinned.map((d) => d.name));
    const maps = found ? [found] : [];
    for (const m of await journalMaps(ctx, journal)) if (!maps.some((x) => x.dm === m.dm)) maps.push(m);
    const chain = new ErrorChain();
    // Portals are independent (one lock each): their logouts run in parallel.
    const logouts = (): Promise<void> => this.releaseTargets(targets, chain, journal);
    await removeConnection(ctx, { maps, devices: pinned, blockless }, { force: options.force === true, label: 'iscsi', alongside: logouts }, chain);
    await recordScsiRemovals(ctx, journal, scsi.map((f) => formatHctl(f.hctl)), maps.map((m) => m.wwid));
    finishDisconnect(ctx, chain, { label: 'iscsi', what: 'iSCSI disconnect', ignoreErrors: options.ignoreErrors === true });
  }

  /** Under each portal lock, in parallel: log out of sessions that carry no LUN and delete the node record. Failures go to `chain`. */
  private async releaseTargets(targets: IscsiTarget[], chain: ErrorChain, journal: JournalScope): Promise<void> {
    const ctx = this.ctx;
    await Promise.all(
      targets.map((t) =>
        chain.run(true, `release ${t.iqn} at ${t.portal.text}`, () =>
          ctx.locks.withLock(portalLockName(t), async () => {
            await this.releaseTarget(t, true, (await nodeRecordFile(ctx, t.iqn, t.portal, this.iface)) !== undefined, journal);
          }),
        ),
      ),
    );
  }

  /**
   * Make the host see the LUN's new size: rescan every path (`device/rescan`), resize the
   * multipath map when there is one (`multipathd resize map`), and return the new size in bytes.
   * @throws {@link VolumeDeviceNotFoundError} when the volume has no device on this host
   * @throws {@link ExtendError} when a path or the map cannot be resized
   */
  async extendVolume(properties: ConnectionProperties): Promise<number> {
    const p = validateIscsiProperties(properties);
    const ctx = this.ctx;
    return ctx.locks.withLock(volumeLockName(p), async () => {
      await this.settleBackground(this.backgroundKey(p)); // paths still joining from the connect get rescanned too
      const found = await this.lunDevices(await this.knownTargets(p));
      if (found.length === 0) throw new VolumeDeviceNotFoundError(`no device on this host for LUN ${p.targets[0]!.lun} of ${p.targets[0]!.iqn}`, { details: { target_iqn: p.targets[0]!.iqn } });
      const sizes: number[] = [];
      for (const f of found) {
        try {
          sizes.push(await rescanDevice(ctx, f.device));
        } catch (err) {
          throw new ExtendError(`rescan of ${f.device} failed: ${(err as Error).message}`, { details: { device: f.device }, cause: err });
        }
      }
      const newSize = Math.max(...sizes);
      // multipathd may drop a path whose size no longer matches its map, so look at every path's
      // holders, then for the map by WWID, before concluding there is no map to resize.
      let map: Awaited<ReturnType<typeof mapForDevice>>;
      for (const f of found) if (!map) map = await mapForDevice(ctx, f.device);
      if (!map) {
        const wwid = await deviceWwid(ctx, found[0]!.device);
        if (wwid) map = await mapForWwid(ctx, wwid);
      }
      if (!map) return newSize;
      await resizeMap(ctx, map.name).catch((err: unknown) => {
        throw new ExtendError((err as Error).message, { details: { map: map.name }, cause: err });
      });
      const size = await waitFor(async () => {
        const s = await sysfsSizeBytes(ctx, map.dm);
        return s !== undefined && s >= newSize ? s : undefined;
      }, { timeoutMs: 10_000, description: `new size of ${map.dm}` }).catch(() => deviceSizeBytes(ctx, `/dev/${map.dm}`));
      ctx.logger.info({ map: map.name, bytes: size }, 'iscsi: extended');
      return size;
    });
  }
}
