/**
 * The portal login queue of the iSCSI connector: the session phase of each path (node record,
 * login if there is no session, targeted scan of the LUN) under its portal lock
 * (`iscsi-<iqn>-<portal>`, a file lock, so it holds across processes).
 *
 * Requests for the same portal and IQN from concurrent connects in one process are served by one
 * lock holder: it makes the record and finds (or logs in to) the session once, then scans every
 * queued LUN back to back, taking in requests that arrive meanwhile, before it lets the lock go.
 * os-brick instead takes one host-wide `connect_volume` lock for the whole attach.
 *
 * @module
 */
import { ConnectAbandonedError } from '../../../errors.js';
import type { HostContext } from '../../../host/context.js';
import { waitFor } from '../../../host/retry.js';
import { chapSettings, ensureNode, listSessions, login, sessionsFor, type IscsiSession, type NodeSettings } from '../../../host/iscsiadm.js';
import type { JournalScope } from '../../../host/journal.js';
import { formatHctl, scanHost, scsiTargetsUnder, scsiDevicesUnder, type Hctl } from '../../../host/scsi.js';
import { portalLockName, targetName, type IscsiProperties, type IscsiTarget } from './properties.js';

/** What one path's attach produced. */
export interface PathState {
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
  /** The attach journal scope of the connect this path belongs to: intents go there before each thing is made. */
  journal?: JournalScope;
  /** The H:C:T:L recorded in the journal before the scan (when the address was known then). */
  recordedHctl?: string;
  /**
   * Where the LUN's SCSI device is or will be, when certain: the address of a device already
   * there, or the one the last targeted scan named with the session's own target directory. The
   * wait for the block device then looks at that one address instead of walking the session.
   */
  address?: Hctl;
}

/** A fresh {@link PathState} for target `t`: nothing made yet; `journal` receives its intents. */
export function newPath(t: IscsiTarget, journal?: JournalScope): PathState {
  return { target: t, createdNode: false, loggedIn: false, preexisting: false, done: false, ...(journal ? { journal } : {}) };
}

/**
 * The H:C:T:L a targeted scan of `t`'s LUN on `session` makes: channel and target from the
 * session's target directory when it exists, else channel 0 and the session's `target_id` (what
 * the kernel scans for an iSCSI session); undefined when neither is known.
 */
export async function scanAddress(ctx: HostContext, session: IscsiSession, t: IscsiTarget): Promise<string | undefined> {
  const tg = (await scsiTargetsUnder(ctx, session.deviceDir))[0];
  if (tg) return formatHctl({ host: session.host, channel: tg.channel, target: tg.target, lun: t.scsiLun });
  if (session.targetId !== undefined) return formatHctl({ host: session.host, channel: 0, target: session.targetId, lun: t.scsiLun });
  return undefined;
}

/** A path waiting for its portal's session phase (see {@link PortalLoginQueue.sessionPhase}). */
interface PortalRequest {
  p: IscsiProperties;
  st: PathState;
  /** Every path of the same connect (this one included). */
  siblings: readonly PathState[];
  signal: AbortSignal;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** What the queue needs of its connector: the iface and the login retries written into node records. */
export interface PortalQueueSettings {
  /** iface name (`default`, `iser`, an offload iface). */
  iface: string;
  /** `node.session.initial_login_retry_max` written into node records. */
  loginRetryMax: number;
}

/**
 * Targeted scan of `t`'s LUN on the SCSI host of `session` (`"C T L"`, with the session's
 * channel and target when sysfs shows them, else `"- - L"`).
 * @returns where the LUN's device is or will be: the H:C:T:L scanned when channel and target were
 * known, else the one below the session's single target directory once the scan has made it (an
 * iSCSI session's SCSI host carries that one target); `undefined` when sysfs does not tell
 * @throws {@link HostIoError} when the kernel refuses the write
 */
export async function scanLun(ctx: HostContext, session: IscsiSession, t: IscsiTarget): Promise<Hctl | undefined> {
  const tg = (await scsiTargetsUnder(ctx, session.deviceDir))[0];
  await scanHost(ctx, session.host, tg ? { channel: tg.channel, target: tg.target, lun: t.scsiLun } : { lun: t.scsiLun });
  if (tg) return { host: session.host, channel: tg.channel, target: tg.target, lun: t.scsiLun };
  const after = await scsiTargetsUnder(ctx, session.deviceDir);
  return after.length === 1 ? { host: session.host, channel: after[0]!.channel, target: after[0]!.target, lun: t.scsiLun } : undefined;
}

/** The portal login queue of one connector instance. */
export class PortalLoginQueue {
  /** Session-phase requests waiting for their portal lock, by lock name. */
  private readonly portalQueues = new Map<string, PortalRequest[]>();
  /** Lock names whose queue is being served. */
  private readonly portalRunners = new Set<string>();

  constructor(
    private readonly ctx: HostContext,
    private readonly settings: PortalQueueSettings,
  ) {}

  /**
   * Node record, login if no session, targeted scan of the LUN, under the portal lock, served
   * together with the other requests for the same portal and IQN in this process. Eight LUNs of
   * one target thus cost one record write and one session lookup per portal, and their scans
   * follow each other without a lock hand-over between them. Fills in `st`'s session,
   * `createdNode`, `loggedIn` and `preexisting`.
   * @throws {@link ConnectAbandonedError} when `signal` fires first; the login's or scan's error otherwise
   */
  sessionPhase(p: IscsiProperties, st: PathState, signal: AbortSignal, siblings: readonly PathState[]): Promise<void> {
    const key = portalLockName(st.target);
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
        reject(new ConnectAbandonedError());
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
          await this.ctx.locks.withLock(key, async () => {
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
    const ctx = this.ctx;
    const { p, st, signal } = r;
    const t = st.target;
    try {
      if (signal.aborted) throw new ConnectAbandonedError();
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
          const iface = this.settings.iface;
          const { created } = await ensureNode(ctx, t.iqn, t.portal, settings, { iface, beforeCreate: async () => st.journal?.intent('iscsi-node', targetName(t), { iface }) });
          st.createdNode = created;
          session = sessionsFor(await listSessions(ctx), t.iqn, t.portal)[0];
          if (!session) {
            await st.journal?.intent('iscsi-session', targetName(t), { iface });
            await login(ctx, t.iqn, t.portal, { iface: this.settings.iface, secrets: secretsOf(p) });
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
      if (signal.aborted) throw new ConnectAbandonedError();
      const existing = (await scsiDevicesUnder(ctx, session.deviceDir)).find((d) => d.hctl.lun === t.scsiLun);
      st.preexisting = existing !== undefined;
      if (existing) st.address = existing.hctl;
      if (!st.preexisting && st.journal) {
        const hctl = await scanAddress(ctx, session, t);
        if (hctl) {
          await st.journal.intent('scsi-device', hctl, { target: targetName(t) });
          st.recordedHctl = hctl;
        }
      }
      st.address = (await scanLun(ctx, session, t)) ?? st.address;
      r.resolve();
    } catch (err) {
      r.reject(err);
    }
  }

  private nodeSettings(p: IscsiProperties): NodeSettings {
    return {
      'node.startup': 'manual',
      'node.conn[0].startup': 'manual',
      'node.session.scan': 'manual',
      'node.session.initial_login_retry_max': String(this.settings.loginRetryMax),
      ...chapSettings('node.session.auth', p.auth?.method, p.auth?.username, p.auth?.password),
    };
  }
}

/** The CHAP secrets of `p`, for masking in the login's errors. */
function secretsOf(p: IscsiProperties): string[] {
  return [p.auth?.password, p.discoveryAuth?.password].filter((s): s is string => !!s);
}
