/**
 * The `ISCSI` and `ISER` connectors: attach SCSI LUNs exported over iSCSI (TCP or iSER).
 *
 * Contract and connection properties are os-brick's `ISCSIConnector` (`connectors/iscsi.py`);
 * behaviour is that of its 2017 sysfs rewrite, with these differences:
 *
 * - **Locks per target portal and IQN**, not one host-wide `connect_volume` lock: node record,
 *   login and the targeted scan of a LUN run under `iscsi-<iqn>-<portal>`; the wait for the
 *   device, the multipath map and the read test run outside it, so LUNs of the same target
 *   attach in parallel. A per-volume lock (`iscsi-<iqn>-lun-<lun>`) serialises operations on the
 *   same LUN. Both are file locks, so they hold across processes. Logout decisions take the
 *   portal lock, and a connect's scan happens under it, so a disconnect of one LUN never logs
 *   out a session another attach has just scanned a LUN on. Concurrent connects in one process
 *   share a hold of the portal lock: one record write and session lookup, then their scans back
 *   to back, each portal first taking the LUNs no other portal has picked.
 * - **No device-scan retries stand in for login retries**: a portal that refuses the login fails
 *   at once (iscsid's own `initial_login_retry_max`, set low in the record, bounds it).
 * - **Multipath returns as soon as one path works and its map exists**; logins to slower
 *   portals carry on in the background and join the map; a later connect or extend of the same
 *   volume in this process waits for them, a disconnect stops them and removes what they made.
 * - **The map is built directly when multipathd is slow to**: multipathd makes a map only after
 *   udev has finished with a path (about a second per map in the lab, several under load). When
 *   multipathd runs and the map is not there once the paths have settled, the connector loads it
 *   with device-mapper ({@link createMap}); multipathd adopts it and reloads it with its own
 *   configuration. os-brick instead waits, then forces multipathd (`multipath -a` + `multipathd
 *   add path`); that remains the fallback, and the behaviour with `directMap: false`.
 * - **CHAP secrets never appear in a process argument** (the node record file is edited
 *   directly, see `host/iscsiadm.ts`), nor in logs or errors.
 * - A connect that fails removes exactly what it created (devices it scanned in, a map made
 *   only of them, sessions it logged in that carry no other LUN, node records it created).
 * - Node records are created with `node.startup = manual` (os-brick switches them to automatic
 *   after login): a host reboot does not log in to volumes nobody re-attached.
 * - `encrypted`, `access_mode`, `volume_id` and `target_discovered` are validated and logged but
 *   change nothing here: os-brick's `encrypted` symlink (`/dev/disk/by-id/os-brick+...`) belongs
 *   to the encryptor layer above the connector, and Brick does not run os-brick's `wait_for_rw`.
 *
 * @module
 */
import { InvalidInputError, VolumeDeviceNotFoundError, TargetPortalLoginError, BrickError, ExtendError, VolumePathNotRemovedError } from '../../errors.js';
import { maskObject } from '../../exec/mask.js';
import type { HostContext } from '../../host/context.js';
import { checkReadable, deviceSizeBytes, readFirstBlock } from '../../host/blockdev.js';
import { delay, waitFor } from '../../host/retry.js';
import { pathExists, resolvePath } from '../../host/sysfs.js';
import {
  chapSettings,
  deleteNode,
  discoverSendTargets,
  ensureNode,
  listSessions,
  login,
  logout,
  nodeRecordFile,
  parsePortal,
  sessionsFor,
  type IscsiSession,
  type NodeSettings,
  type Portal,
} from '../../host/iscsiadm.js';
import { deleteDevice, deleteScsiDevice, formatHctl, type Hctl, deviceWwid, flushDevice, lunForAddressing, rescanDevice, removeStaleByIdLinks, scanHost, scsiDevicesUnder, scsiTargetsUnder, sysfsSizeBytes, waitForRemoval } from '../../host/scsi.js';
import { addPath, addWwid, createMap, flushMap, mapForDevice, mapForPath, mapForWwid, multipathdPresent, removeMap, resizeMap, type MultipathMap } from '../../host/multipath.js';
import type { ConnectionProperties, Connector, DeviceInfo, DisconnectOptions } from '../connector.js';
import { registerConnector, type ResolvedConnectorOptions } from '../factory.js';

/** One (portal, IQN, LUN) a volume is reachable through. */
export interface IscsiTarget {
  portal: Portal;
  iqn: string;
  /** LUN as the target reports it (`target_lun`). */
  lun: number;
  /** LUN number on the Linux side after `addressing_mode` (what sysfs names in H:C:T:L). */
  scsiLun: number;
}

/** CHAP credentials (`auth_*` / `discovery_auth_*`). */
export interface ChapAuth {
  method: 'CHAP';
  username: string;
  password: string;
}

/** Validated iSCSI connection properties. */
export interface IscsiProperties {
  /** Every (portal, IQN, LUN), in the order given. */
  targets: IscsiTarget[];
  /** True when the plural keys (`target_portals`, ...) were given. */
  plural: boolean;
  auth: ChapAuth | undefined;
  discoveryAuth: ChapAuth | undefined;
  accessMode: 'rw' | 'ro';
  encrypted: boolean;
  volumeId: string | undefined;
  addressingMode: string;
  targetDiscovered: boolean;
}

const IQN_RE = /^(iqn\.\d{4}-\d{2}\.[^\s,]+|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16}(?:[0-9A-Fa-f]{16})?)$/;

function checkIqn(v: unknown, field: string): string {
  if (typeof v !== 'string' || !IQN_RE.test(v)) throw new InvalidInputError(field, `must be an iSCSI name (iqn.YYYY-MM.domain[:id], eui.<16 hex>, naa.<hex>), got ${JSON.stringify(typeof v === 'string' ? v : typeof v)}`);
  return v;
}

function checkLun(v: unknown, field: string): number {
  if (typeof v === 'string' && /^\d+$/.test(v)) v = Number(v);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) throw new InvalidInputError(field, `must be an integer from 0 to 65535, got ${JSON.stringify(v)}`);
  return v;
}

function checkAuth(props: ConnectionProperties, prefix: '' | 'discovery_'): ChapAuth | undefined {
  const method = props[`${prefix}auth_method`];
  if (method === undefined || method === null || method === '' || (typeof method === 'string' && method.toLowerCase() === 'none')) return undefined;
  if (typeof method !== 'string' || method.toUpperCase() !== 'CHAP') throw new InvalidInputError(`${prefix}auth_method`, `must be "CHAP" when given, got ${JSON.stringify(typeof method === 'string' ? method : typeof method)}`);
  const username = props[`${prefix}auth_username`];
  const password = props[`${prefix}auth_password`];
  if (typeof username !== 'string' || username === '') throw new InvalidInputError(`${prefix}auth_username`, 'is required with CHAP and must be a non-empty string');
  if (/[\n\r]/.test(username)) throw new InvalidInputError(`${prefix}auth_username`, 'must not contain line breaks');
  if (typeof password !== 'string' || password === '') throw new InvalidInputError(`${prefix}auth_password`, 'is required with CHAP and must be a non-empty string');
  if (/[\n\r]/.test(password)) throw new InvalidInputError(`${prefix}auth_password`, 'must not contain line breaks');
  return { method: 'CHAP', username, password };
}

/**
 * Validate iSCSI connection properties (os-brick's keys) and resolve the (portal, IQN, LUN)
 * list. Plural keys (`target_portals`, `target_iqns`, `target_luns`) must be arrays of the
 * same length; a missing `target_iqns` / `target_luns` repeats the singular value (as os-brick's
 * `_get_all_targets`). `target_lun` defaults to 0.
 * @throws {@link InvalidInputError} naming the first bad field
 */
export function validateIscsiProperties(props: ConnectionProperties): IscsiProperties {
  if (props === null || typeof props !== 'object' || Array.isArray(props)) throw new InvalidInputError('connection_properties', 'must be an object');
  const addressingMode = props.addressing_mode === undefined || props.addressing_mode === null ? 'SAM' : props.addressing_mode;
  if (typeof addressingMode !== 'string') throw new InvalidInputError('addressing_mode', 'must be a string');
  lunForAddressing(0, addressingMode);
  const targets: IscsiTarget[] = [];
  const plural = props.target_portals !== undefined && props.target_portals !== null;
  const mk = (portal: Portal, iqn: string, lun: number): IscsiTarget => ({ portal, iqn, lun, scsiLun: lunForAddressing(lun, addressingMode) });
  if (plural) {
    const portals = props.target_portals;
    if (!Array.isArray(portals) || portals.length === 0) throw new InvalidInputError('target_portals', 'must be a non-empty array of portals');
    const iqns = props.target_iqns ?? (props.target_iqn !== undefined ? portals.map(() => props.target_iqn) : undefined);
    if (!Array.isArray(iqns)) throw new InvalidInputError('target_iqns', 'is required with target_portals (an array of IQNs of the same length)');
    if (iqns.length !== portals.length) throw new InvalidInputError('target_iqns', `must have as many entries as target_portals (${portals.length}), has ${iqns.length}`);
    const luns = props.target_luns ?? portals.map(() => props.target_lun ?? 0);
    if (!Array.isArray(luns)) throw new InvalidInputError('target_luns', 'must be an array of LUNs');
    if (luns.length !== portals.length) throw new InvalidInputError('target_luns', `must have as many entries as target_portals (${portals.length}), has ${luns.length}`);
    portals.forEach((p, i) => targets.push(mk(parsePortal(p, `target_portals[${i}]`), checkIqn(iqns[i], `target_iqns[${i}]`), checkLun(luns[i], `target_luns[${i}]`))));
    if (props.target_portal !== undefined && props.target_portal !== null) parsePortal(props.target_portal, 'target_portal');
  } else {
    if (props.target_portal === undefined || props.target_portal === null) throw new InvalidInputError('target_portal', 'is required (or target_portals)');
    const portal = parsePortal(props.target_portal, 'target_portal');
    if (props.target_iqn === undefined || props.target_iqn === null) throw new InvalidInputError('target_iqn', 'is required (or target_iqns)');
    targets.push(mk(portal, checkIqn(props.target_iqn, 'target_iqn'), checkLun(props.target_lun ?? 0, 'target_lun')));
  }
  const accessMode = props.access_mode ?? 'rw';
  if (accessMode !== 'rw' && accessMode !== 'ro') throw new InvalidInputError('access_mode', `must be "rw" or "ro", got ${JSON.stringify(accessMode)}`);
  for (const key of ['encrypted', 'target_discovered'] as const) {
    if (props[key] !== undefined && props[key] !== null && typeof props[key] !== 'boolean') throw new InvalidInputError(key, 'must be a boolean');
  }
  const volumeId = props.volume_id;
  if (volumeId !== undefined && volumeId !== null && typeof volumeId !== 'string') throw new InvalidInputError('volume_id', 'must be a string');
  return {
    targets,
    plural,
    auth: checkAuth(props, ''),
    discoveryAuth: checkAuth(props, 'discovery_'),
    accessMode,
    encrypted: props.encrypted === true,
    volumeId: typeof volumeId === 'string' ? volumeId : undefined,
    addressingMode,
    targetDiscovered: props.target_discovered === true,
  };
}

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

/** A path waiting for its portal's session phase (see `IscsiConnector.sessionPhase`). */
interface PortalRequest {
  p: IscsiProperties;
  st: PathState;
  /** Every path of the same connect (this one included). */
  siblings: readonly PathState[];
  signal: AbortSignal;
  resolve: () => void;
  reject: (err: unknown) => void;
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

/** What one path's attach produced. */
interface PathState {
  target: IscsiTarget;
  createdNode: boolean;
  loggedIn: boolean;
  /** The LUN's H:C:T:L existed before this call scanned it. */
  preexisting: boolean;
  session?: IscsiSession;
  device?: string;
  /** Where `device` sits (H:C:T:L below the session): pins the name for removal. */
  hctl?: Hctl;
  error?: unknown;
  done: boolean;
  /** A portal's lock holder has picked this path for its scan. */
  claimed?: boolean;
}

function lockName(t: IscsiTarget): string {
  return `iscsi-${t.iqn}-${t.portal.text}`;
}

function volumeLockName(p: IscsiProperties): string {
  const t = p.targets[0]!;
  return `iscsi-${t.iqn}-lun-${t.lun}`;
}

/** The ISCSI / ISER connector. Construct it through `connectorFor('ISCSI' | 'ISER', options)`. */
export class IscsiConnector implements Connector {
  readonly protocol: string;
  private readonly iface: string;
  private readonly useMultipath: boolean;
  private readonly scanAttempts: number;
  private readonly loginRetryMax: number;
  private readonly forceMapAfterMs: number;
  private readonly mapGraceMs: number;
  private readonly readyTimeoutMs: number;
  private readonly rescanBaseMs: number;
  private readonly pathGraceMs: number;
  private readonly earlyPathAdd: boolean;
  private readonly directMap: boolean;
  private readonly directMapAfterMs: number;
  /** Session-phase requests waiting for their portal lock, by lock name. */
  private readonly portalQueues = new Map<string, PortalRequest[]>();
  /** Lock names whose queue is being served. */
  private readonly portalRunners = new Set<string>();
  /** Path attaches still running after a multipath connect returned: this process's registry, shared by every connector instance (see {@link backgroundJobs}). */
  private readonly background = backgroundJobs;
  /** The jobs this instance started, for {@link IscsiConnector.settled}. */
  private readonly ownJobs = new Set<BackgroundJob>();

  constructor(
    options: ResolvedConnectorOptions & IscsiConnectorTunables,
    private readonly host: HostContext,
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
    this.loginRetryMax = num(options.loginRetryMax, 'loginRetryMax', 1, 0);
    this.forceMapAfterMs = num(options.forceMapAfterMs, 'forceMapAfterMs', 1_000);
    this.mapGraceMs = num(options.mapGraceMs, 'mapGraceMs', 10_000);
    this.readyTimeoutMs = num(options.readyTimeoutMs, 'readyTimeoutMs', 30_000);
    this.rescanBaseMs = num(options.rescanBaseMs, 'rescanBaseMs', 1_000, 1);
    this.pathGraceMs = num(options.pathGraceMs, 'pathGraceMs', 0);
    if (options.earlyPathAdd !== undefined && typeof options.earlyPathAdd !== 'boolean') throw new InvalidInputError('earlyPathAdd', 'must be a boolean');
    this.earlyPathAdd = options.earlyPathAdd ?? false;
    if (options.directMap !== undefined && typeof options.directMap !== 'boolean') throw new InvalidInputError('directMap', 'must be a boolean');
    this.directMap = options.directMap ?? true;
    this.directMapAfterMs = num(options.directMapAfterMs, 'directMapAfterMs', 250);
  }

  /** `/dev/disk/by-path` (os-brick `get_search_path`). */
  getSearchPath(): string {
    return '/dev/disk/by-path';
  }

  /** Read test of the first 4 KiB (os-brick `check_valid_device`). */
  async checkValidDevice(path: string): Promise<boolean> {
    return checkReadable(this.host, path);
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
      if (await pathExists(this.host, link)) out.push(link);
    }
    return out;
  }

  private nodeSettings(p: IscsiProperties): NodeSettings {
    return {
      'node.startup': 'manual',
      'node.conn[0].startup': 'manual',
      'node.session.scan': 'manual',
      'node.session.initial_login_retry_max': String(this.loginRetryMax),
      ...chapSettings('node.session.auth', p.auth?.method, p.auth?.username, p.auth?.password),
    };
  }

  private secrets(p: IscsiProperties): string[] {
    return [p.auth?.password, p.discoveryAuth?.password].filter((s): s is string => !!s);
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
    const log = this.host.logger;
    log.info({ protocol: this.protocol, multipath: this.useMultipath, connection_properties: maskObject(properties) }, 'iscsi: connect_volume');
    const started = Date.now();
    const result = await this.host.locks.withLock(volumeLockName(p), async () => {
      await this.settleBackground(this.backgroundKey(p));
      return this.useMultipath ? this.connectMultipath(p) : this.connectSingle(p);
    });
    log.info({ device: result, ms: Date.now() - started }, 'iscsi: connect_volume done');
    return result;
  }

  /** Session phase of one path, then the wait for its device. */
  private async attachPath(p: IscsiProperties, st: PathState, signal: AbortSignal, siblings: readonly PathState[] = [st]): Promise<void> {
    await this.sessionPhase(p, st, signal, siblings);
    await this.waitForPathDevice(st, signal);
  }

  /**
   * Node record, login if no session, targeted scan of the LUN, under the portal lock. Requests
   * for the same portal and IQN from concurrent connects in this process are served together: the
   * lock holder makes the record and finds (or logs in to) the session once, then scans every
   * queued LUN back to back, taking in requests that arrive meanwhile, before it lets the lock go.
   * Eight LUNs of one target thus cost one record write and one session lookup per portal, and
   * their scans follow each other without a lock hand-over between them.
   */
  private sessionPhase(p: IscsiProperties, st: PathState, signal: AbortSignal, siblings: readonly PathState[]): Promise<void> {
    const key = lockName(st.target);
    return new Promise<void>((resolve, reject) => {
      let queue = this.portalQueues.get(key);
      if (!queue) this.portalQueues.set(key, (queue = []));
      const q = queue;
      const onAbort = (): void => {
        // Still waiting for the portal: leave the queue at once. A request already being served
        // finishes under the lock (it checks the signal before its scan).
        const i = q.indexOf(request);
        if (i < 0) return;
        q.splice(i, 1);
        reject(new BrickError('connect abandoned', 'BRICK_ERROR'));
      };
      const request: PortalRequest = {
        p,
        st,
        signal,
        siblings,
        resolve: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      queue.push(request);
      if (queue.length === 1 && !this.portalRunners.has(key)) void this.runPortalQueue(key);
    });
  }

  private async runPortalQueue(key: string): Promise<void> {
    this.portalRunners.add(key);
    try {
      for (;;) {
        const queue = this.portalQueues.get(key);
        if (!queue || queue.length === 0) break;
        const waiting = queue.splice(0);
        try {
          await this.host.locks.withLock(key, async () => {
            const sessions = new Map<string, IscsiSession | { failed: unknown }>();
            const pending = waiting;
            while (pending.length > 0) {
              // A volume returns once one of its paths works, so first serve volumes that no other
              // portal has picked yet: with two portals and eight LUNs, each portal takes every
              // other LUN first and all eight have a path after about half the scans.
              const i = pending.findIndex((r) => !r.siblings.some((s) => s !== r.st && s.claimed));
              const [r] = pending.splice(Math.max(i, 0), 1);
              r!.st.claimed = true;
              await this.servePath(r!, sessions);
              pending.push(...queue.splice(0)); // requests that arrived meanwhile, served under the same hold
            }
          });
        } catch (err) {
          for (const r of waiting) r.reject(err); // the lock itself failed (a no-op for requests already served)
        }
      }
    } finally {
      this.portalRunners.delete(key);
      const left = this.portalQueues.get(key);
      if (left && left.length > 0) void this.runPortalQueue(key);
      else this.portalQueues.delete(key);
    }
  }

  /** One queued path, under its portal lock; `sessions` holds what earlier requests of this hold set up, by node settings. */
  private async servePath(r: PortalRequest, sessions: Map<string, IscsiSession | { failed: unknown }>): Promise<void> {
    const ctx = this.host;
    const { p, st, signal } = r;
    const t = st.target;
    try {
      if (signal.aborted) throw new BrickError('connect abandoned', 'BRICK_ERROR');
      const settings = this.nodeSettings(p);
      const settingsKey = JSON.stringify(settings);
      let session: IscsiSession | undefined;
      const known = sessions.get(settingsKey);
      if (known && 'failed' in known) throw known.failed; // the record or login failed for an earlier request of this hold
      if (known) {
        // Same record and session as an earlier request of this hold: that request made them, not this one.
        session = known;
      } else {
        try {
          const { created } = await ensureNode(ctx, t.iqn, t.portal, settings, { iface: this.iface });
          st.createdNode = created;
          session = sessionsFor(await listSessions(ctx), t.iqn, t.portal)[0];
          if (!session) {
            await login(ctx, t.iqn, t.portal, { iface: this.iface, secrets: this.secrets(p) });
            st.loggedIn = true;
            session = await waitFor(async () => sessionsFor(await listSessions(ctx), t.iqn, t.portal)[0], {
              timeoutMs: 10_000,
              description: `session to ${t.iqn} at ${t.portal.text} in sysfs`,
            });
          }
        } catch (err) {
          sessions.set(settingsKey, { failed: err });
          throw err;
        }
        sessions.set(settingsKey, session);
      }
      st.session = session;
      if (signal.aborted) throw new BrickError('connect abandoned', 'BRICK_ERROR');
      const existing = (await scsiDevicesUnder(ctx, session.deviceDir)).find((d) => d.hctl.lun === t.scsiLun);
      st.preexisting = existing !== undefined;
      await this.scan(session, t);
      r.resolve();
    } catch (err) {
      r.reject(err);
    }
  }

  private async scan(session: IscsiSession, t: IscsiTarget): Promise<void> {
    const tg = (await scsiTargetsUnder(this.host, session.deviceDir))[0];
    await scanHost(this.host, session.host, tg ? { channel: tg.channel, target: tg.target, lun: t.scsiLun } : { lun: t.scsiLun });
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
            return (await scsiDevicesUnder(this.host, session.deviceDir)).find((d) => d.hctl.lun === t.scsiLun && d.device);
          },
          { timeoutMs: (attempt + 1) ** 2 * this.rescanBaseMs, intervalMs: 20, maxIntervalMs: 250, description: `LUN ${t.lun} of ${t.iqn} at ${t.portal.text}`, signal },
        );
        st.device = found.device;
        st.hctl = found.hctl;
        return;
      } catch (err) {
        if (signal.aborted || attempt >= this.scanAttempts) {
          throw new VolumeDeviceNotFoundError(`no device for LUN ${t.lun} of ${t.iqn} at ${t.portal.text} after ${attempt} scan(s)`, {
            details: { target_iqn: t.iqn, target_portal: t.portal.text, target_lun: t.lun },
            cause: err,
          });
        }
        this.host.logger.debug({ target_iqn: t.iqn, target_portal: t.portal.text, lun: t.lun, attempt }, 'iscsi: rescanning LUN');
        await this.scan(session, t);
      }
    }
  }

  private newPath(t: IscsiTarget): PathState {
    return { target: t, createdNode: false, loggedIn: false, preexisting: false, done: false };
  }

  private async connectSingle(p: IscsiProperties): Promise<DeviceInfo> {
    const errors: unknown[] = [];
    for (const t of p.targets) {
      const st = this.newPath(t);
      const ac = new AbortController();
      try {
        await this.attachPath(p, st, ac.signal);
        const device = st.device!;
        const wwid = await waitFor(() => deviceWwid(this.host, device), { timeoutMs: 10_000, description: `WWID of ${device}` });
        await this.waitReadable(`/dev/${device}`);
        return { type: 'block', path: `/dev/${device}`, scsi_wwn: wwid };
      } catch (err) {
        errors.push(err);
        this.host.logger.warn({ target_iqn: t.iqn, target_portal: t.portal.text, error: (err as Error).message }, 'iscsi: path failed; cleaning up');
        await this.cleanupPaths([st], undefined);
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
    await waitFor(() => readFirstBlock(this.host, path, Math.min(this.readyTimeoutMs, 30_000)), {
      timeoutMs: this.readyTimeoutMs,
      intervalMs: 100,
      description: `first read of ${path}`,
    }).catch((err: unknown) => {
      throw new VolumeDeviceNotFoundError(`${path} exists but cannot be read`, { details: { device: path }, cause: err });
    });
  }

  /** The (portal, IQN, LUN) list for multipath: as given, or from sendtargets discovery at the one portal. */
  private async multipathTargets(p: IscsiProperties): Promise<IscsiTarget[]> {
    if (p.plural && p.targets.length > 1) return p.targets;
    const first = p.targets[0]!;
    const found = await discoverSendTargets(this.host, first.portal, {
      iface: this.iface,
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
    this.host.logger.debug({ portals: out.map((t) => t.portal.text) }, 'iscsi: sendtargets discovery');
    return out;
  }

  private async connectMultipath(p: IscsiProperties): Promise<DeviceInfo> {
    const ctx = this.host;
    const log = ctx.logger;
    const targets = await this.multipathTargets(p);
    const ac = new AbortController();
    const paths = targets.map((t) => this.newPath(t));
    let wake: () => void = () => undefined;
    const tasks = paths.map((st) =>
      this.attachPath(p, st, ac.signal, paths).then(
        () => {
          st.done = true;
          wake();
        },
        (err: unknown) => {
          st.error = err;
          st.done = true;
          log.warn({ target_iqn: st.target.iqn, target_portal: st.target.portal.text, error: (err as Error).message }, 'iscsi: path failed');
          wake();
        },
      ),
    );
    let wwid: string | undefined;
    let map: MultipathMap | undefined;
    let forced = false;
    let direct = false;
    const handedOver = new Set<string>();
    const adds: Promise<boolean>[] = [];
    let firstFoundAt: number | undefined;
    let allDoneAt: number | undefined;
    let outcome: 'map' | 'single' | 'none' = 'none';
    for (;;) {
      const devices = paths.filter((s) => s.device).map((s) => s.device!);
      const allDone = paths.every((s) => s.done);
      if (allDone && allDoneAt === undefined) allDoneAt = Date.now();
      if (devices.length > 0) {
        firstFoundAt ??= Date.now();
        if (this.earlyPathAdd) {
          // Hand each new path to multipathd at once instead of waiting for udev to finish with it
          // (udev rules run several programs per disk; under load that delays the map by seconds).
          for (const d of devices) {
            if (handedOver.has(d)) continue;
            handedOver.add(d);
            adds.push(addPath(ctx, `/dev/${d}`));
          }
        }
        wwid ??= await deviceWwid(ctx, devices[0]!);
        if (wwid) {
          const m = await mapForWwid(ctx, wwid);
          if (m && m.paths.some((d) => devices.includes(d))) {
            map = m;
            outcome = 'map';
            break;
          }
          // Wait briefly for paths whose scan is under way; a path no portal has picked yet (its
          // portal is busy with other volumes' LUNs) would only delay the map, and joins it later.
          const imminent = paths.some((s) => !s.done && !s.device && s.claimed);
          if (this.directMap && !direct && (allDone || !imminent || Date.now() - firstFoundAt >= this.directMapAfterMs)) {
            direct = true;
            if (await multipathdPresent(ctx)) {
              const built = await createMap(ctx, wwid, devices);
              if (built && built.paths.some((d) => devices.includes(d))) {
                log.debug({ wwid, map: built.dm, paths: built.paths }, 'iscsi: built the multipath map directly');
                map = built;
                outcome = 'map';
                break;
              }
              firstFoundAt = Date.now(); // the force below waits its own delay from here
            }
            continue;
          }
          if (!forced && (Date.now() - firstFoundAt >= this.forceMapAfterMs || allDone)) {
            forced = true;
            log.debug({ wwid, devices }, 'iscsi: forcing the multipath map');
            await addWwid(ctx, wwid);
            for (const d of devices) await addPath(ctx, `/dev/${d}`);
            continue;
          }
        }
        if (allDone && Date.now() - allDoneAt! >= this.mapGraceMs) {
          outcome = 'single';
          break;
        }
      } else if (allDone) {
        break;
      }
      await Promise.race([delay(devices.length > 0 ? 50 : 250), new Promise<void>((r) => (wake = r))]);
    }
    await Promise.all(adds);
    try {
      if (outcome === 'none') throw this.connectError(paths.map((s) => s.error).filter((e) => e !== undefined));
      if (outcome === 'single') {
        await Promise.all(tasks);
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
      await this.waitReadable(`/dev/${map!.dm}`);
    } catch (err) {
      ac.abort();
      await Promise.all(tasks);
      await this.cleanupPaths(paths, wwid);
      throw err;
    }
    // Give slower paths a short grace to join, then say plainly when the map is degraded.
    const graceEnd = Date.now() + this.pathGraceMs;
    while (paths.some((s) => !s.done) && Date.now() < graceEnd) await Promise.race([delay(50), new Promise<void>((r) => (wake = r))]);
    const failed = paths.filter((s) => s.done && s.error);
    const pending = paths.filter((s) => !s.done);
    if (failed.length > 0 || pending.length > 0) {
      log.warn(
        { map: map!.name, failed_portals: failed.map((s) => s.target.portal.text), pending_portals: pending.map((s) => s.target.portal.text) },
        'iscsi: returning a multipath map without every path (failed or still logging in)',
      );
    }
    if (paths.some((s) => !s.done || s.error)) this.trackBackground(this.backgroundKey(p), paths, tasks, ac);
    return { type: 'block', path: `/dev/${map!.dm}`, scsi_wwn: wwid!, multipath_id: map!.wwid };
  }

  /** Keep the still-running path attaches of a returned multipath connect; a failed one (now or later) cleans up after itself in the background. */
  private trackBackground(key: string, paths: PathState[], tasks: Promise<void>[], ac: AbortController): void {
    let set = this.background.get(key);
    if (!set) this.background.set(key, (set = new Set()));
    paths.forEach((st, i) => {
      if (st.done && !st.error) return;
      let abandoned = false;
      const done = tasks[i]!.then(async () => {
        if (st.error && !abandoned) await this.cleanupPaths([st], undefined);
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
    return `${this.host.locks.lockPath}\0${volumeLockName(p)}`;
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
  private async cleanupPaths(paths: PathState[], wwid: string | undefined): Promise<void> {
    const ctx = this.host;
    // waitForPathDevice sets a path's device and its H:C:T:L together.
    const pinned = paths.filter((s) => s.device && !s.preexisting).map((s) => ({ name: s.device!, hctl: s.hctl! }));
    const ours = pinned.map((d) => d.name);
    try {
      const map = wwid ? await mapForWwid(ctx, wwid) : ours[0] ? await mapForDevice(ctx, ours[0]) : undefined;
      if (map && map.paths.every((d) => ours.includes(d))) {
        await flushMap(ctx, map.name, { attempts: 1, timeoutMs: 30_000 }).catch(() => removeMap(ctx, map.name));
      }
      for (const d of pinned) await deleteDevice(ctx, d, { force: true }).catch((e: unknown) => ctx.logger.warn({ device: d.name, error: (e as Error).message }, 'iscsi: cleanup could not delete device'));
      await waitForRemoval(ctx, pinned).catch((e: unknown) => ctx.logger.warn({ error: (e as Error).message }, 'iscsi: cleanup: devices linger'));
    } catch (err) {
      ctx.logger.warn({ error: (err as Error).message }, 'iscsi: cleanup of devices failed');
    }
    for (const st of paths) {
      if (!st.loggedIn && !st.createdNode) continue;
      await ctx.locks
        .withLock(lockName(st.target), () => this.releaseTarget(st.target, st.loggedIn, st.createdNode))
        .catch((e: unknown) => ctx.logger.warn({ target_iqn: st.target.iqn, target_portal: st.target.portal.text, error: (e as Error).message }, 'iscsi: cleanup of session failed'));
    }
  }

  /** Under the portal lock: log out the target's sessions when they carry no LUN, then delete the node record. Returns whether it logged out. */
  private async releaseTarget(t: IscsiTarget, mayLogout: boolean, mayDeleteNode: boolean): Promise<boolean> {
    const ctx = this.host;
    const sessions = sessionsFor(await listSessions(ctx), t.iqn, t.portal);
    for (const s of sessions) {
      if ((await scsiDevicesUnder(ctx, s.deviceDir)).length > 0) return false;
    }
    if (sessions.length > 0) {
      if (!mayLogout) return false;
      await logout(ctx, t.iqn, t.portal, { iface: sessions[0]!.iface ?? this.iface });
    }
    if (mayDeleteNode) await deleteNode(ctx, t.iqn, t.portal, { iface: this.iface });
    return sessions.length > 0;
  }

  /** The targets a disconnect or extend looks at: the given ones, or for a discovered multipath attach every portal with a session or node record for the IQN. */
  private async knownTargets(p: IscsiProperties): Promise<IscsiTarget[]> {
    if (p.plural || !this.useMultipath) return p.targets;
    const first = p.targets[0]!;
    const out = new Map<string, IscsiTarget>();
    out.set(first.portal.text, first);
    for (const s of await listSessions(this.host)) {
      if (s.targetIqn === first.iqn) out.set(s.portal.text, { ...first, portal: s.portal });
    }
    return [...out.values()];
  }

  /** Every block device of the volume's LUN below sessions of `targets`, with the session it hangs on. */
  private async lunDevices(targets: IscsiTarget[]): Promise<{ target: IscsiTarget; device: string }[]> {
    return (await this.lunScsiDevices(targets)).filter((d): d is { target: IscsiTarget; hctl: Hctl; device: string } => d.device !== undefined);
  }

  /** Every SCSI device of the volume's LUN below sessions of `targets`, including ones the kernel has not given a block device (yet). */
  private async lunScsiDevices(targets: IscsiTarget[]): Promise<{ target: IscsiTarget; hctl: Hctl; device?: string }[]> {
    const sessions = await listSessions(this.host);
    const out: { target: IscsiTarget; hctl: Hctl; device?: string }[] = [];
    for (const t of targets) {
      for (const s of sessionsFor(sessions, t.iqn, t.portal)) {
        for (const d of await scsiDevicesUnder(this.host, s.deviceDir)) {
          if (d.hctl.lun !== t.scsiLun || out.some((o) => formatHctl(o.hctl) === formatHctl(d.hctl))) continue;
          out.push(d.device ? { target: t, hctl: d.hctl, device: d.device } : { target: t, hctl: d.hctl });
        }
      }
    }
    return out;
  }

  /**
   * Detach: flush the multipath map (if any) or the single device, delete the LUN's SCSI
   * devices, wait for their removal, remove the map, then log out of (and delete the node
   * records of) portals whose sessions carry no other LUN (os-brick `_cleanup_connection` +
   * `remove_connection`). Without `force`, a failed flush raises before anything is removed.
   * With `force`, the disconnect carries on past failures to leave a clean host; unless
   * `ignoreErrors`, it raises at the end if anything failed.
   * @throws {@link InvalidInputError} for bad properties
   * @throws {@link VolumePathNotRemovedError} (or the flush's error) when something could not be removed
   */
  async disconnectVolume(properties: ConnectionProperties, deviceInfo: DeviceInfo | null, options: DisconnectOptions = {}): Promise<void> {
    const p = validateIscsiProperties(properties);
    const ctx = this.host;
    const force = options.force === true;
    ctx.logger.info({ protocol: this.protocol, device_info: deviceInfo, force, ignore_errors: options.ignoreErrors === true, connection_properties: maskObject(properties) }, 'iscsi: disconnect_volume');
    await ctx.locks.withLock(volumeLockName(p), async () => {
      await this.settleBackground(this.backgroundKey(p), true);
      const errors: unknown[] = [];
      const targets = await this.knownTargets(p);
      const scsi = await this.lunScsiDevices(targets);
      // Pinned to their H:C:T:L: once one is deleted the kernel may give its name to another
      // volume's new path at once, and that disk must neither be deleted nor waited for.
      const pinned = scsi.filter((f) => f.device).map((f) => ({ name: f.device!, hctl: f.hctl }));
      const devices = pinned.map((d) => d.name);
      const blockless = scsi.filter((f) => !f.device).map((f) => f.hctl);
      let map: MultipathMap | undefined;
      if (deviceInfo?.path && /\/dm-\d+$/.test(deviceInfo.path)) map = await mapForPath(ctx, deviceInfo.path);
      if (!map && typeof deviceInfo?.multipath_id === 'string') map = await mapForWwid(ctx, deviceInfo.multipath_id);
      for (const d of devices) {
        if (map) break;
        map = await mapForDevice(ctx, d);
      }
      let flushFailed = false;
      if (map) {
        try {
          await flushMap(ctx, map.name);
        } catch (err) {
          if (!force) throw err;
          flushFailed = true;
          errors.push(err);
          ctx.logger.warn({ map: map.name, error: (err as Error).message }, 'iscsi: map flush failed; forcing removal (data loss accepted)');
        }
      } else {
        for (const d of devices) {
          try {
            await flushDevice(ctx, `/dev/${d}`);
          } catch (err) {
            if (!force) throw err;
            errors.push(err);
          }
        }
      }
      for (const d of pinned) {
        try {
          await deleteDevice(ctx, d, { force });
        } catch (err) {
          errors.push(err);
        }
      }
      for (const h of blockless) {
        try {
          await deleteScsiDevice(ctx, h);
          await waitFor(async () => !(await pathExists(ctx, `/sys/bus/scsi/devices/${formatHctl(h)}`)), { timeoutMs: 10_000, description: `removal of SCSI device ${formatHctl(h)}` });
        } catch (err) {
          errors.push(err);
        }
      }
      try {
        await waitForRemoval(ctx, pinned);
      } catch (err) {
        errors.push(err);
      }
      await removeStaleByIdLinks(ctx, pinned);
      // A map still there now has no paths (multipathd may have made it again from a late path
      // event): removing it and logging out are independent, so they run side by side. Portals
      // are independent too (one lock each): their logouts run in parallel.
      const mapLeft = map && (flushFailed || (await mapForPath(ctx, map.name))) ? map : undefined;
      await Promise.all([
        mapLeft ? removeMap(ctx, mapLeft.name).catch((err: unknown) => void errors.push(err)) : undefined,
        ...targets.map(async (t) => {
          try {
            await ctx.locks.withLock(lockName(t), async () => {
              await this.releaseTarget(t, true, (await nodeRecordFile(ctx, t.iqn, t.portal, this.iface)) !== undefined);
            });
          } catch (err) {
            errors.push(err);
          }
        }),
      ]);
      if (errors.length > 0) {
        ctx.logger.warn({ errors: errors.map((e) => (e as Error).message) }, 'iscsi: disconnect finished with errors; leftovers may remain');
        if (!options.ignoreErrors) {
          const first = errors[0];
          throw first instanceof BrickError ? first : new VolumePathNotRemovedError(`disconnect failed: ${(first as Error).message}`, { cause: first });
        }
      }
    });
  }

  /**
   * Make the host see the LUN's new size: rescan every path (`device/rescan`), resize the
   * multipath map when there is one (`multipathd resize map`), and return the new size in bytes.
   * @throws {@link VolumeDeviceNotFoundError} when the volume has no device on this host
   * @throws {@link ExtendError} when a path or the map cannot be resized
   */
  async extendVolume(properties: ConnectionProperties): Promise<number> {
    const p = validateIscsiProperties(properties);
    const ctx = this.host;
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

/** The device behind a `/dev/disk/by-*` link or `/dev/X` path (for callers that hold a link). */
export async function realDevice(ctx: HostContext, path: string): Promise<string | undefined> {
  return resolvePath(ctx, path);
}

registerConnector('ISCSI', (ctx, options) => new IscsiConnector(options, ctx));
registerConnector('ISER', (ctx, options) => new IscsiConnector({ ...options, protocol: 'ISER' }, ctx));
