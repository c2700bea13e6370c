/**
 * Multipath assembly of the iSCSI connector: while the paths of a multipath connect log in and
 * scan in parallel, find or build the dm-multipath map over the devices that have appeared.
 *
 * A small state machine: {@link MapAssembly} holds what the polls have learned, {@link pollMap}
 * looks once and answers `map` (a map holds one of the paths), `single` (every path has settled,
 * devices exist, no map formed within the grace), `none` (every path has settled without a
 * device) or `wait` (poll again after `waitMs`), and {@link assembleMap} drives it. Each poll:
 * the WWID of the first device; the map multipathd made for it; else, when multipathd runs and
 * the paths being scanned have had their chance, a map built directly with device-mapper
 * ({@link createMap}, which multipathd adopts); else, after `forceMapAfterMs`, os-brick's force
 * (`multipath -a` + `multipathd add path`, os-brick `_discover_mpath_device`).
 *
 * @module
 */
import type { HostContext } from '../../../host/context.js';
import type { JournalScope } from '../../../host/journal.js';
import { delay } from '../../../host/retry.js';
import { deviceWwid } from '../../../host/scsi.js';
import { addPath, addWwid, createMap, isMultipathdRunning, mapForDevice, type MultipathMap } from '../../../host/multipath.js';
import { discoverSendTargets } from '../../../host/iscsiadm.js';
import type { IscsiProperties, IscsiTarget } from './properties.js';
import type { PathState } from './portal-queue.js';

/** The timings and switches of the assembly (ms); see `IscsiConnectorTunables` for each. */
export interface MapTimings {
  earlyPathAdd: boolean;
  directMap: boolean;
  directMapAfterMs: number;
  forceMapAfterMs: number;
  mapGraceMs: number;
}

/** What the polls of one multipath connect have learned and done. */
export interface MapAssembly {
  /** Every path of the connect; their attaches fill in `device`, `done`, `error`. */
  readonly paths: PathState[];
  /** WWID of the first device found. */
  wwid?: string;
  /** The map, once the outcome is `map`. */
  map?: MultipathMap;
  /** `multipath -a` + `multipathd add path` done. */
  forced: boolean;
  /** A direct map build tried. */
  direct: boolean;
  /** Devices handed to multipathd early (`earlyPathAdd`). */
  readonly handedOver: Set<string>;
  /** Those early hand-overs, still running. */
  readonly adds: Promise<boolean>[];
  /** When the first device appeared (reset after a direct build that gave no map). */
  firstFoundAt?: number;
  /** When every path had settled. */
  allDoneAt?: number;
  /** How long the next wait lasts when a poll answers `wait`; 0 polls again at once. */
  waitMs: number;
  /** Ends the current wait early: called when a path attach settles. */
  wake: () => void;
  /** The connect's attach journal scope: the map (named by its WWID) is recorded there as soon as the WWID is known, before Brick builds or forces it. */
  journal?: JournalScope;
}

/** What one poll found. */
export type MapPoll = 'map' | 'single' | 'none' | 'wait';

/** A fresh assembly over `paths`, recording into `journal`. */
export function newAssembly(paths: PathState[], journal?: JournalScope): MapAssembly {
  return { paths, forced: false, direct: false, handedOver: new Set(), adds: [], waitMs: 0, wake: () => undefined, ...(journal ? { journal } : {}) };
}

function wait(s: MapAssembly, ms: number): MapPoll {
  s.waitMs = ms;
  return 'wait';
}

/** Poll until the outcome is known: `map` (in `s.map`), `single` or `none`. Waits 50 ms between polls once a device exists, 250 ms before, or until a path settles. */
export async function assembleMap(ctx: HostContext, s: MapAssembly, t: MapTimings): Promise<Exclude<MapPoll, 'wait'>> {
  for (;;) {
    const outcome = await pollMap(ctx, s, t);
    if (outcome !== 'wait') return outcome;
    if (s.waitMs > 0) await Promise.race([delay(s.waitMs), new Promise<void>((r) => (s.wake = r))]);
  }
}

/** One look at the paths and the map (see the module notes). */
export async function pollMap(ctx: HostContext, s: MapAssembly, t: MapTimings): Promise<MapPoll> {
  const devices = s.paths.filter((p) => p.device).map((p) => p.device!);
  const allDone = s.paths.every((p) => p.done);
  if (allDone && s.allDoneAt === undefined) s.allDoneAt = Date.now();
  if (devices.length === 0) return allDone ? 'none' : wait(s, 250);
  s.firstFoundAt ??= Date.now();
  if (t.earlyPathAdd) {
    // Hand each new path to multipathd at once instead of waiting for udev to finish with it
    // (udev rules run several programs per disk; under load that delays the map by seconds).
    for (const d of devices) {
      if (s.handedOver.has(d)) continue;
      s.handedOver.add(d);
      s.adds.push(addPath(ctx, `/dev/${d}`));
    }
  }
  if (!s.wwid) {
    s.wwid = await deviceWwid(ctx, devices[0]!);
    // One journal write per connect: multipathd may make the map from here on, and Brick may build or force it.
    if (s.wwid) await s.journal?.intent('multipath-map', s.wwid);
  }
  if (s.wwid) {
    const step = await mapStep(ctx, s, t, devices, allDone);
    if (step) return step;
  }
  if (allDone && Date.now() - s.allDoneAt! >= t.mapGraceMs) return 'single';
  return wait(s, 50);
}

/** The map part of a poll, once the WWID is known: find the map, else build it directly, else force it; `undefined` when none of these applies yet. */
async function mapStep(ctx: HostContext, s: MapAssembly, t: MapTimings, devices: string[], allDone: boolean): Promise<MapPoll | undefined> {
  const wwid = s.wwid!;
  const m = await mapHolding(ctx, wwid, devices);
  if (m) {
    s.map = m;
    return 'map';
  }
  // Wait briefly for paths whose scan is under way; a path no portal has picked yet (its
  // portal is busy with other volumes' LUNs) would only delay the map, and joins it later.
  const imminent = s.paths.some((p) => !p.done && !p.device && p.claimed);
  if (t.directMap && !s.direct && (allDone || !imminent || Date.now() - s.firstFoundAt! >= t.directMapAfterMs)) {
    s.direct = true;
    if (await isMultipathdRunning(ctx)) {
      const built = await createMap(ctx, wwid, devices);
      if (built && built.paths.some((d) => devices.includes(d))) {
        ctx.logger.debug({ wwid, map: built.dm, paths: built.paths }, 'iscsi: built the multipath map directly');
        s.map = built;
        return 'map';
      }
      s.firstFoundAt = Date.now(); // the force below waits its own delay from here
    }
    return wait(s, 0);
  }
  if (!s.forced && (Date.now() - s.firstFoundAt! >= t.forceMapAfterMs || allDone)) {
    s.forced = true;
    ctx.logger.debug({ wwid, devices }, 'iscsi: forcing the multipath map');
    await addWwid(ctx, wwid);
    for (const d of devices) await addPath(ctx, `/dev/${d}`);
    return wait(s, 0);
  }
  return undefined;
}

/**
 * The map for `wwid` that holds one of `devices` (`['sdb', 'sdc']`), found from the devices'
 * `holders` rather than by reading the uuid of every dm device on the host: a poll of eight
 * volumes attaching at once then reads two directories each instead of a walk of `/sys/block`.
 */
async function mapHolding(ctx: HostContext, wwid: string, devices: readonly string[]): Promise<MultipathMap | undefined> {
  for (const d of devices) {
    const m = await mapForDevice(ctx, d);
    if (m && m.wwid === wwid) return m;
  }
  return undefined;
}

/**
 * The (portal, IQN, LUN) list for multipath: as given when several portals are, or from
 * sendtargets discovery at the one portal (os-brick `_get_ips_iqns_luns` with
 * `discover_iscsi_portals`), keeping the portals of the same IQN when there are any.
 * @throws the discovery's error (TargetPortalLoginError, AuthenticationError, ...)
 */
export async function multipathTargets(ctx: HostContext, p: IscsiProperties, iface: string): Promise<IscsiTarget[]> {
  if (p.plural && p.targets.length > 1) return p.targets;
  const first = p.targets[0]!;
  const found = await discoverSendTargets(ctx, first.portal, {
    iface,
    auth: p.discoveryAuth ? { method: p.discoveryAuth.method, username: p.discoveryAuth.username, password: p.discoveryAuth.password } : undefined,
  });
  const same = found.filter((d) => d.iqn === first.iqn);
  const use = same.length > 0 ? same : found;
  const seen = new Set<string>();
  const out: IscsiTarget[] = [];
  for (const d of use) {
    const key = `${d.iqn} ${d.portal.text}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ portal: d.portal, iqn: d.iqn, lun: first.lun, scsiLun: first.scsiLun });
  }
  if (out.length === 0) return [first];
  ctx.logger.debug({ portals: out.map((t) => t.portal.text) }, 'iscsi: sendtargets discovery');
  return out;
}
