/**
 * `host cleanup`: list what attaches and detaches left on this host, and remove Brick's part of
 * it, safely (issue #16).
 *
 * {@link cleanupHost} reads the attach journal (`journal.ts`), surveys the host
 * (`cleanup-survey.ts`), judges both against the caller's claims (`cleanup-judge.ts`: what is in
 * use, what is a leftover and whose), then, unless it is a dry run, removes the owned leftovers
 * (and the unowned ones when asked) in the order a detach removes things, so that nothing is
 * pulled from under something still stacked on it:
 *
 * 1. unmount (`umount`, never lazy: a busy mount is refused by the kernel and stays);
 * 2. close dm-crypt mappings (`cryptsetup close`, os-brick's encryptor detach), when the dm
 *    device still is that crypt mapping;
 * 3. flush and remove multipath maps (`multipath.flushMap`, which refuses an open map);
 * 4. delete SCSI devices pinned to their H:C:T:L (`scsi.deletePinnedDevice`), after checking that
 *    the address still holds the device and that the recorded WWID is one of its identifiers
 *    (`cleanup-survey.deviceIdentifiers`), and wait for them to go;
 * 5. log out of iSCSI sessions (`iscsiadm -m session -r N --logout`), under the connector's
 *    portal lock, only when the session carries no SCSI device any more;
 * 6. delete node records (`iscsiadm -m node -o delete`) that have no session;
 * 7. disconnect NVMe-oF controllers (`nvme disconnect -d`), under the connector's target lock;
 * 8. unmap krbd mappings (`rbd unmap /dev/rbdN`, os-brick's RBD disconnect) still of the same
 *    pool and image, under the connector's image lock;
 * 9. detach loop devices (`losetup --detach`) still over the same file.
 *
 * Anything open, mounted, held or used as swap is listed with action `skip` and never touched;
 * each step re-checks before it acts. After each removal the journal records it
 * (`journal.removed`); attachment records whose operation is over and that no resource record
 * refers to any more are dropped (`journal.forget`). Records that describe something gone are
 * pruned. A dry run runs no program that changes anything and writes nothing, journal included.
 *
 * When another attach or detach starts while the cleanup runs (its journal record changes), the
 * cleanup stops before its next removal and says so: running it again judges afresh.
 *
 * @module
 */
import type { HostContext } from './context.js';
import { canonicalName, judge, type CleanupAction, type CleanupClaims, type CleanupPlan, type JournalView, type PlanItem } from './cleanup-judge.js';
import { blockDeviceBusy, deviceIdentifiers, surveyHost, type HostSurvey } from './cleanup-survey.js';
import { ISCSI_ERR_NO_OBJS_FOUND, deleteNode, listSessions, readSession, sessionsFor } from './iscsiadm.js';
import type { AttachJournal, JournalResourceKind } from './journal.js';
import { detachLoop, listLoops } from './loop.js';
import { unmountFs } from './mount.js';
import { closeCrypt } from './crypt.js';
import { flushMap, mapForPath } from './multipath.js';
import { listNvmeControllers, nvmeDisconnectController } from './nvme.js';
import { listRbdMappings } from './rbd.js';
import { deletePinnedDevice, deleteScsiAddress, flushDevice, formatHctl, hctlOfDevice, scsiDevicesUnder, waitForRemoval } from './scsi.js';
import { pathExists, readAttr } from './sysfs.js';
import { waitFor } from './retry.js';

export type { CleanupAction, CleanupClaims } from './cleanup-judge.js';

/** Options for {@link cleanupHost}. */
export interface HostCleanupOptions {
  /** List only: run nothing that changes the host, write nothing. Default false. */
  dryRun?: boolean;
  /** Remove unowned leftovers too (sessions, maps, controllers nothing accounts for). Default false. */
  includeUnowned?: boolean;
  /** What the store says is attached on this host (see {@link CleanupClaims}). */
  claims?: CleanupClaims;
}

/** One leftover, as `brick host cleanup --json` prints it. */
export interface CleanupLeftover {
  kind: JournalResourceKind;
  name: string;
  /** Whether Brick made it (a journal record names it, or it goes with something that does). */
  owned: boolean;
  action: CleanupAction;
  /** Why it is a leftover and why this action, as a sentence. */
  reason: string;
}

/** What {@link cleanupHost} found and did. */
export interface HostCleanupResult {
  /** Leftovers in removal order. */
  leftovers: CleanupLeftover[];
  /** How many leftovers were removed (0 in a dry run). */
  removed: number;
  /** Journal records dropped because what they describe is gone (in a dry run: would be). */
  pruned: number;
  /** Owned leftovers still on the host afterwards (in a dry run: all of them). */
  ownedRemaining: number;
  dryRun: boolean;
}

/** A removal step declined at the last moment: the item is listed as `skip` with this reason. */
class Declined extends Error {}

/** The attachments' update times, to notice an operation starting while the cleanup runs. */
function stamps(view: JournalView): Map<string, string> {
  return new Map(view.attachments.map((a) => [a.key, a.updatedAt]));
}

/**
 * Survey the host, judge it against `journal` and the claims, and (unless `dryRun`) remove the
 * leftovers that may go, in the safe order (see the module notes).
 * @returns every leftover with its action and reason, the number removed and pruned
 * @throws the journal directory's file system errors when records cannot be read or written; a
 *   failing removal is not thrown: its leftover is listed with action `failed` and the error
 */
export async function cleanupHost(ctx: HostContext, journal: AttachJournal, options: HostCleanupOptions = {}): Promise<HostCleanupResult> {
  const view: JournalView = { attachments: await journal.attachments(), resources: await journal.resources(), bootId: journal.bootId(), isAlive: (p) => journal.isAlive(p) };
  const survey = await surveyHost(ctx);
  const plan = await judge(ctx, { survey, view, claims: options.claims ?? {}, includeUnowned: options.includeUnowned === true });
  let removed = 0;
  let pruned = 0;
  if (options.dryRun) {
    const gone = new Set(plan.prune);
    pruned = plan.prune.length + plan.finished.filter((k) => view.resources.every((r) => r.attachment !== k || gone.has(r))).length;
  } else {
    for (const r of plan.prune) {
      await journal.removed(r.kind, r.name);
      pruned++;
    }
    removed = await removeAll(ctx, journal, survey, plan, stamps(view));
    for (const k of plan.finished) {
      if ((await journal.resourcesOf(k)).length > 0) continue;
      await journal.forget(k);
      pruned++;
    }
  }
  const leftovers = plan.items.map((i) => ({ kind: i.kind, name: i.name, owned: i.owned, action: i.action, reason: i.reason }));
  const ownedRemaining = leftovers.filter((l) => l.owned && l.action !== 'removed').length;
  ctx.logger.info({ leftovers: leftovers.length, removed, pruned, owned_remaining: ownedRemaining, dry_run: options.dryRun === true }, 'host cleanup finished');
  return { leftovers, removed, pruned, ownedRemaining, dryRun: options.dryRun === true };
}

/** Remove every item whose action is `remove`, in plan order; returns how many went. */
async function removeAll(ctx: HostContext, journal: AttachJournal, survey: HostSurvey, plan: CleanupPlan, seen: Map<string, string>): Promise<number> {
  let removed = 0;
  let stopped = false;
  for (const i of plan.items) {
    if (i.action !== 'remove') continue;
    if (!stopped && (await operationStarted(journal, seen))) stopped = true;
    if (stopped) {
      i.action = 'skip';
      i.reason = `${i.reason}; another attach or detach started during the cleanup, so the cleanup stopped (run it again)`;
      continue;
    }
    try {
      await removeItem(ctx, survey, plan, i);
      i.action = 'removed';
      removed++;
      if (i.record) await journal.removed(i.record.kind, i.record.name);
      ctx.logger.info({ kind: i.kind, name: i.name, owned: i.owned }, 'host cleanup: removed a leftover');
    } catch (err) {
      i.action = err instanceof Declined ? 'skip' : 'failed';
      i.reason = err instanceof Declined ? `${i.reason}; ${err.message}, so it is never touched` : `${i.reason}; removing it failed: ${(err as Error).message}`;
      ctx.logger.warn({ kind: i.kind, name: i.name, err: (err as Error).message }, `host cleanup: leftover ${i.action === 'skip' ? 'skipped' : 'not removed'}`);
    }
  }
  return removed;
}

/** True when an attachment record appeared or changed since the judge read the journal. */
async function operationStarted(journal: AttachJournal, seen: Map<string, string>): Promise<boolean> {
  return (await journal.attachments()).some((a) => seen.get(a.key) !== a.updatedAt);
}

/** Remove one leftover after re-checking it. @throws Declined when it must stay after all; the step's own error when it fails */
async function removeItem(ctx: HostContext, survey: HostSurvey, plan: CleanupPlan, i: PlanItem): Promise<void> {
  const ignoreHolders = new Set(plan.items.filter((x) => (x.map || x.crypt) && x.action === 'removed').map((x) => (x.map ?? x.crypt)!.dm));
  const ignoreMounts = new Set(plan.items.filter((x) => x.kind === 'mount' && x.action === 'removed').map((x) => x.name));
  const busy = async (name: string) => {
    const why = await blockDeviceBusy(ctx, survey, name, { ignoreHolders, ignoreMounts });
    if (why) throw new Declined(why);
  };
  if (i.mount) return unmountFs(ctx, i.mount.name, { timeoutMs: 60_000 });
  if (i.map) {
    const now = await mapForPath(ctx, i.map.dm);
    if (!now) return;
    if (now.wwid !== i.map.wwid) throw new Declined(`/dev/${i.map.dm} is now another map`);
    await busy(i.map.dm);
    return flushMap(ctx, now.name, { timeoutMs: 60_000 });
  }
  if (i.crypt) return closeCryptMapping(ctx, i, busy);
  if (i.rbd) return unmapRbd(ctx, i, busy);
  if (i.scsi) return removeScsiDevice(ctx, i, busy);
  if (i.session) return logoutSession(ctx, i);
  if (i.node) return removeNode(ctx, i);
  if (i.nvme) return disconnectController(ctx, i, busy);
  if (i.loop) {
    const loop = (await listLoops(ctx)).find((l) => l.name === i.loop!.name);
    if (!loop) return;
    if (loop.backFile !== i.loop.backingFile) throw new Declined(`${i.loop.name} is now over another file`);
    await busy(i.loop.name.replace('/dev/', ''));
    return detachLoop(ctx, i.loop.name);
  }
}

/** `cryptsetup close <name>` when `dm-N` still is that dm-crypt mapping and nothing uses it. */
async function closeCryptMapping(ctx: HostContext, i: PlanItem, busy: (name: string) => Promise<void>): Promise<void> {
  const c = i.crypt!;
  const [name, uuid] = [await readAttr(ctx, `/sys/block/${c.dm}/dm/name`), await readAttr(ctx, `/sys/block/${c.dm}/dm/uuid`)];
  if (name === undefined) return; // gone already
  if (name !== c.mapName || !uuid?.startsWith('CRYPT-')) throw new Declined(`/dev/${c.dm} is now ${name}, not the dm-crypt mapping ${c.mapName}`);
  await busy(c.dm);
  await closeCrypt(ctx, c.mapName);
}

/** `rbd unmap /dev/rbdN` under the RBD connector's image lock, when device N still maps the same pool and image and nothing uses it. */
async function unmapRbd(ctx: HostContext, i: PlanItem, busy: (name: string) => Promise<void>): Promise<void> {
  const r = i.rbd!;
  await ctx.locks.withLock(`rbd-${r.pool}-${r.image}`, async () => {
    const now = (await listRbdMappings(ctx)).find((m) => m.id === r.id);
    if (!now) return; // unmapped already
    if (now.pool !== r.pool || now.image !== r.image || now.snap !== '-') throw new Declined(`/dev/${r.dev} now maps ${now.pool}/${now.image}, not ${r.pool}/${r.image}`);
    await busy(r.dev);
    await ctx.executor.run(['rbd', 'unmap', `/dev/${r.dev}`], { timeoutMs: 120_000 });
  });
}

/** Delete a SCSI device at its address, after checking the address still holds the same device and WWID. */
async function removeScsiDevice(ctx: HostContext, i: PlanItem, busy: (name: string) => Promise<void>): Promise<void> {
  const d = i.scsi!;
  const addr = formatHctl(d.hctl);
  if (!d.device) {
    await deleteScsiAddress(ctx, d.hctl);
    await waitFor(async () => !(await pathExists(ctx, `/sys/bus/scsi/devices/${addr}`)), { timeoutMs: 30_000, description: `removal of SCSI device ${addr}` });
    return;
  }
  const at = await hctlOfDevice(ctx, d.device);
  if (!at) return; // gone already
  if (formatHctl(at) !== addr) throw new Declined(`/dev/${d.device} now sits at ${formatHctl(at)}, not ${addr}`);
  const expected = i.record?.attrs.wwid ?? d.wwid;
  const ids = await deviceIdentifiers(ctx, d.device);
  if (expected && ids.length > 0 && !ids.includes(expected)) throw new Declined(`${addr} now holds WWID ${ids[0]}, not ${expected}`);
  await busy(d.device);
  const pinned = { name: d.device, hctl: d.hctl };
  await flushDevice(ctx, `/dev/${d.device}`, { attempts: 1, timeoutMs: 60_000 });
  await deletePinnedDevice(ctx, pinned);
  await waitForRemoval(ctx, [pinned]);
}

/** `iscsiadm -m session -r N --logout` under the portal lock, when the session still is that target's and carries no SCSI device. */
async function logoutSession(ctx: HostContext, i: PlanItem): Promise<void> {
  const s = i.session!;
  await ctx.locks.withLock(`iscsi-${s.iqn}-${s.portal.text}`, async () => {
    const now = await readSession(ctx, s.id);
    if (!now) return;
    if (canonicalName('iscsi-session', `${now.targetIqn},${now.portal.text}`) !== canonicalName('iscsi-session', s.name)) throw new Declined(`session ${s.id} is now another target's`);
    const left = await scsiDevicesUnder(ctx, now.deviceDir);
    if (left.length > 0) throw new Declined(`it still carries ${left.map((d) => formatHctl(d.hctl)).join(', ')}`);
    await ctx.executor.run(['iscsiadm', '-m', 'session', '-r', String(s.id), '--logout'], { timeoutMs: 60_000, checkExitCode: [0, ISCSI_ERR_NO_OBJS_FOUND] });
  });
}

/** `iscsiadm -m node -o delete` under the portal lock, when no session to that target and portal exists. */
async function removeNode(ctx: HostContext, i: PlanItem): Promise<void> {
  const n = i.node!;
  await ctx.locks.withLock(`iscsi-${n.iqn}-${n.portal.text}`, async () => {
    if (sessionsFor(await listSessions(ctx), n.iqn, n.portal).length > 0) throw new Declined('a session to it exists');
    await deleteNode(ctx, n.iqn, n.portal, { iface: i.record?.attrs.iface ?? 'default' });
  });
}

/** `nvme disconnect -d /dev/nvmeN` under the connector's target lock, when the controller is still the one judged. */
async function disconnectController(ctx: HostContext, i: PlanItem, busy: (name: string) => Promise<void>): Promise<void> {
  const c = i.nvme!;
  const nqn = c.name.slice(0, c.name.indexOf(','));
  await ctx.locks.withLock(`nvmeof-${nqn}`, async () => {
    const now = (await listNvmeControllers(ctx)).find((x) => x.name === c.controller);
    if (!now) return;
    if (`${now.subsysnqn},${now.transport},${now.traddr},${now.trsvcid}`.toLowerCase() !== c.name.toLowerCase()) throw new Declined(`/dev/${c.controller} is now another controller`);
    for (const ns of c.namespaces) await busy(ns);
    await nvmeDisconnectController(ctx, c.controller);
  });
}
