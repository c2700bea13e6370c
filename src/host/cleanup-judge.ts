/**
 * Judging what `host cleanup` found (see `cleanup.ts`): which resources the host shows are in
 * use, which are Brick's leftovers, which are somebody else's, and which journal records only
 * describe things that are gone.
 *
 * The rules (issue #16):
 * - A resource is **owned** when a journal resource record names it: for a node record any
 *   record; for everything else a record written in this boot (names of devices, sessions and
 *   controllers are handed out again after a reboot). A SCSI device whose WWID no longer matches
 *   its record's is not the one recorded.
 * - An attachment in operation `attach`, phase `done`, written in this boot is **in use**, and
 *   so is an operation (`running`) whose process still runs: every resource it recorded, and
 *   everything its identity (targets, WWID) and device info name, with what those depend on
 *   (a map's paths, the session under a path, the node record of a session, the controllers of
 *   a namespace, the mount holding a file, the devices under a dm-crypt mapping), is never a
 *   leftover, open or not; a dm-crypt mapping over a device in use is in use too. The caller's
 *   claims (the store's connection records for this host) protect the same way.
 * - **Leftovers** are the owned resources nothing in use needs, plus what goes with them: the
 *   SCSI devices of a leftover session, a multipath map made over leftover devices only.
 *   Loop devices over a Brick pool file that no connection record exports are leftovers too.
 *   krbd and dm-crypt mappings are leftovers only through a record (never unowned).
 * - **Unowned** leftovers are iSCSI sessions (with their devices), multipath maps and NVMe-oF
 *   controllers that nothing accounts for: listed, touched only when asked.
 * - A record whose resource is gone (or, for a boot-scoped kind, from an earlier boot) is
 *   **pruned**; pruning a record is not removing a leftover.
 *
 * @module
 */
import { posix } from 'node:path';
import type { HostContext } from './context.js';
import { parsePortal } from './iscsiadm.js';
import type { AttachmentEntry, JournalProcess, JournalResourceKind, ResourceEntry } from './journal.js';
import type { HostSurvey, SurveyCrypt, SurveyLoop, SurveyMap, SurveyMount, SurveyNode, SurveyNvmeController, SurveyRbd, SurveyScsiDevice, SurveySession } from './cleanup-survey.js';
import { blockDeviceBusy } from './cleanup-survey.js';
import { resolvePath } from './sysfs.js';

/**
 * What the caller knows is attached on this host, outside the journal: the store's connection
 * records (device paths, WWIDs, targets as the journal names them: `<iqn>,<portal>`,
 * `<nqn>,<transport>,<traddr>,<trsvcid>`, an NFS export), and the file backends' pools.
 */
export interface CleanupClaims {
  /** Device paths in use (`/dev/sdb`, `/dev/mapper/<wwid>`, `/dev/disk/by-id/...`, a file in a mount). */
  devicePaths?: readonly string[];
  /** Volume WWIDs in use (udev form, as `scsi_wwn` and `multipath_id` give them). */
  wwids?: readonly string[];
  /** Targets in use. */
  targets?: readonly string[];
  /** Pool directories of the file backends: a loop device over a file in one is Brick's. */
  poolPaths?: readonly string[];
  /** Pool files some connection record exports: their loop devices stay. */
  exportedFiles?: readonly string[];
}

/** What is done with a leftover: `remove` (with a dry run: would be removed), `removed`, `failed`, `skip` (open, mounted or held), `none` (not Brick's, left alone). */
export type CleanupAction = 'remove' | 'removed' | 'failed' | 'skip' | 'none';

/** One leftover in the plan. */
export interface PlanItem {
  kind: JournalResourceKind;
  name: string;
  owned: boolean;
  action: CleanupAction;
  reason: string;
  /** The journal record that names it, if any. */
  record?: ResourceEntry;
  session?: SurveySession;
  node?: SurveyNode;
  scsi?: SurveyScsiDevice;
  map?: SurveyMap;
  nvme?: SurveyNvmeController;
  loop?: SurveyLoop;
  mount?: SurveyMount;
  rbd?: SurveyRbd;
  crypt?: SurveyCrypt;
}

/** The journal as the judge needs it. */
export interface JournalView {
  attachments: readonly AttachmentEntry[];
  resources: readonly ResourceEntry[];
  bootId: string;
  isAlive(p: JournalProcess): boolean;
}

/** The judge's verdict. */
export interface CleanupPlan {
  /** Leftovers in removal order: mounts, dm-crypt mappings, multipath maps, SCSI devices, sessions, node records, NVMe controllers, krbd mappings, loop devices. */
  items: PlanItem[];
  /** Records whose resource is gone. */
  prune: ResourceEntry[];
  /** Attachment keys that are neither in use nor in progress (forgotten once none of their records remain). */
  finished: string[];
  /** Attachment keys in progress, with the process seen, to notice an operation starting meanwhile. */
  inProgress: Map<string, string>;
}

const ISCSI_KINDS = new Set<JournalResourceKind>(['iscsi-node', 'iscsi-session']);
const SURVEYED = new Set<JournalResourceKind>(['iscsi-node', 'iscsi-session', 'scsi-device', 'multipath-map', 'nvme-controller', 'mount', 'loop-device', 'rbd-device', 'dm-crypt']);

/** A name as compared: iSCSI `<iqn>,<portal>` with the portal canonical (a trailing `,<lun>` dropped), lower case; an NVMe controller lower case; a mount point normalised. Pure. */
export function canonicalName(kind: JournalResourceKind | 'target', name: string): string {
  if (ISCSI_KINDS.has(kind as JournalResourceKind) || kind === 'target') {
    const i = name.indexOf(',');
    const rest = name.slice(i + 1);
    // `<iqn>,<portal>`, or `<iqn>,<portal>,<lun>` in an identity whose targets name different LUNs.
    for (const portal of i > 0 ? [rest, rest.slice(0, Math.max(rest.lastIndexOf(','), 0))] : []) {
      try {
        return `${name.slice(0, i)},${parsePortal(portal).text}`.toLowerCase();
      } catch {
        /* not a portal: compare as written */
      }
    }
    return name.toLowerCase();
  }
  if (kind === 'mount') return posix.normalize(name).replace(/(.)\/$/, '$1');
  if (kind === 'nvme-controller') return name.toLowerCase();
  return name;
}

const key = (kind: JournalResourceKind, name: string): string => `${kind}\0${canonicalName(kind, name)}`;

/** What in-use attachments, in-progress operations and claims protect, before it is matched to the survey. */
interface Protection {
  records: Set<string>;
  targets: Set<string>;
  wwids: Set<string>;
  blocks: Set<string>;
  files: string[];
  exported: Set<string>;
}

function deviceInfoStrings(a: AttachmentEntry): { paths: string[]; wwids: string[] } {
  const d = (a.deviceInfo ?? {}) as unknown as Record<string, unknown>;
  const str = (v: unknown): v is string => typeof v === 'string' && v !== '';
  return { paths: [d.path].filter(str), wwids: [d.scsi_wwn, d.multipath_id, a.identity.wwid].filter(str) };
}

/** The attachment's state: in use, in progress, or finished (interrupted, failed, or from an earlier boot). */
function attachmentState(view: JournalView, a: AttachmentEntry): 'in-use' | 'in-progress' | 'finished' {
  if (a.phase === 'running' && view.isAlive(a.process)) return 'in-progress';
  if (a.operation === 'attach' && a.phase === 'done' && a.process.bootId === view.bootId) return 'in-use';
  return 'finished';
}

async function protection(ctx: HostContext, view: JournalView, claims: CleanupClaims): Promise<{ p: Protection; finished: string[]; inProgress: Map<string, string> }> {
  const p: Protection = { records: new Set(), targets: new Set(), wwids: new Set(claims.wwids ?? []), blocks: new Set(), files: [], exported: new Set(claims.exportedFiles ?? []) };
  const paths = [...(claims.devicePaths ?? [])];
  const addTarget = (t: string) => {
    p.targets.add(canonicalName('target', t));
    p.targets.add(t.toLowerCase());
  };
  for (const t of claims.targets ?? []) addTarget(t);
  const keep = new Set<string>();
  const finished: string[] = [];
  const inProgress = new Map<string, string>();
  for (const a of view.attachments) {
    const state = attachmentState(view, a);
    if (state === 'finished') {
      finished.push(a.key);
      continue;
    }
    if (state === 'in-progress') inProgress.set(a.key, `${a.process.pid}:${a.process.start}`);
    keep.add(a.key);
    for (const t of a.identity.targets) addTarget(t);
    const d = deviceInfoStrings(a);
    paths.push(...d.paths);
    for (const w of d.wwids) p.wwids.add(w);
  }
  for (const r of view.resources) {
    if (keep.has(r.attachment) || (r.process.bootId === view.bootId && view.isAlive(r.process))) p.records.add(key(r.kind, r.name));
  }
  for (const path of paths) {
    if (!path.startsWith('/dev/')) {
      p.files.push(path);
      continue;
    }
    const real = await resolvePath(ctx, path);
    p.blocks.add(posix.basename(real ?? path));
  }
  return { p, finished, inProgress };
}

/** Survey items the protection reaches, as `kind\0canonical name` keys, following dependencies down. */
function protectedKeys(s: HostSurvey, p: Protection): Set<string> {
  const out = new Set(p.records);
  const isP = (kind: JournalResourceKind, name: string) => out.has(key(kind, name));
  const blockOf = new Map(s.scsiDevices.filter((d) => d.device).map((d) => [d.device!, d]));
  // A dm-crypt mapping in use, or over a device in use, keeps the devices under it.
  for (const c of s.cryptMaps) {
    if (isP('dm-crypt', c.name) || p.blocks.has(c.dm) || p.blocks.has(c.mapName) || c.slaves.some((x) => p.blocks.has(x))) {
      out.add(key('dm-crypt', c.name));
      for (const x of c.slaves) p.blocks.add(x);
    }
  }
  for (const m of s.maps) {
    if (isP('multipath-map', m.name) || isP('multipath-map', m.wwid) || p.wwids.has(m.wwid) || p.blocks.has(m.dm) || p.blocks.has(m.name) || m.slaves.some((x) => p.blocks.has(x))) {
      out.add(key('multipath-map', m.name));
      for (const x of m.slaves) if (blockOf.get(x)) out.add(key('scsi-device', blockOf.get(x)!.name));
    }
  }
  for (const d of s.scsiDevices) {
    if (isP('scsi-device', d.name) || (d.ids ?? []).some((id) => p.wwids.has(id)) || (d.wwid && p.wwids.has(d.wwid)) || (d.device && p.blocks.has(d.device))) {
      out.add(key('scsi-device', d.name));
      for (const m of s.maps) if (d.device && m.slaves.includes(d.device)) out.add(key('multipath-map', m.name));
    }
  }
  for (const x of s.sessions) {
    if (isP('iscsi-session', x.name) || p.targets.has(canonicalName('target', x.name)) || x.devices.some((d) => isP('scsi-device', d))) {
      out.add(key('iscsi-session', x.name));
      out.add(key('iscsi-node', x.name));
    }
  }
  for (const n of s.nodes) if (p.targets.has(canonicalName('target', n.name))) out.add(key('iscsi-node', n.name));
  for (const c of s.nvmeControllers) {
    if (isP('nvme-controller', c.name) || p.targets.has(canonicalName('nvme-controller', c.name)) || c.namespaces.some((ns) => p.blocks.has(ns))) out.add(key('nvme-controller', c.name));
  }
  for (const m of s.mounts) {
    const inside = p.files.some((f) => f === m.name || f.startsWith(`${m.name}/`));
    if (inside || p.targets.has(canonicalName('target', m.source))) out.add(key('mount', m.name));
  }
  for (const l of s.loops) if (p.exported.has(l.backingFile) || p.blocks.has(posix.basename(l.name))) out.add(key('loop-device', l.name));
  for (const r of s.rbdDevices) {
    if (isP('rbd-device', r.name) || p.blocks.has(r.dev) || p.targets.has(`${r.pool}/${r.image}`.toLowerCase())) out.add(key('rbd-device', r.name));
  }
  // And a mapping over a device kept for another reason stays with it.
  const kept = new Set([
    ...s.maps.filter((m) => isP('multipath-map', m.name)).map((m) => m.dm),
    ...s.scsiDevices.filter((d) => d.device && isP('scsi-device', d.name)).map((d) => d.device!),
    ...s.nvmeControllers.filter((c) => isP('nvme-controller', c.name)).flatMap((c) => c.namespaces),
    ...s.rbdDevices.filter((r) => isP('rbd-device', r.name)).map((r) => r.dev),
    ...s.loops.filter((l) => isP('loop-device', l.name)).map((l) => posix.basename(l.name)),
  ]);
  for (const c of s.cryptMaps) if (c.slaves.some((x) => kept.has(x))) out.add(key('dm-crypt', c.name));
  return out;
}

/** Whether the record still describes something on the host: same boot for boot-scoped kinds, present, and for a SCSI device the same WWID. */
function recordValid(view: JournalView, s: HostSurvey, r: ResourceEntry): boolean {
  if (r.kind !== 'iscsi-node' && r.process.bootId !== view.bootId) return false;
  const c = canonicalName(r.kind, r.name);
  switch (r.kind) {
    case 'iscsi-node':
      return s.nodes.some((n) => canonicalName('iscsi-node', n.name) === c);
    case 'iscsi-session':
      return s.sessions.some((x) => canonicalName('iscsi-session', x.name) === c);
    case 'scsi-device': {
      const d = s.scsiDevices.find((x) => x.name === r.name);
      return d !== undefined && (!r.attrs.wwid || !d.ids?.length || d.ids.includes(r.attrs.wwid));
    }
    case 'multipath-map':
      return s.maps.some((m) => m.name === r.name || m.wwid === r.name);
    case 'nvme-controller':
      return s.nvmeControllers.some((x) => canonicalName('nvme-controller', x.name) === c);
    case 'mount':
      return s.mounts.some((m) => canonicalName('mount', m.name) === c);
    case 'loop-device': {
      const l = s.loops.find((x) => x.name === r.name);
      return l !== undefined && (!r.attrs.backingFile || r.attrs.backingFile === l.backingFile);
    }
    case 'rbd-device':
      return s.rbdDevices.some((x) => x.name === r.name);
    case 'dm-crypt':
      return s.cryptMaps.some((x) => x.name === r.name);
    default:
      return true;
  }
}

/** Why an owned record's resource is left over, from its attachment's record. */
function ownedReason(view: JournalView, r: ResourceEntry): string {
  const a = view.attachments.find((x) => x.key === r.attachment);
  if (!a) return `Brick made it (journal, attachment ${r.attachment}) and no attachment record or connection needs it any more`;
  if (a.process.bootId !== view.bootId) return `Brick made it for attachment ${a.key} before the last reboot and nothing attached needs it`;
  if (a.phase === 'failed') return `left by a failed ${a.operation} of attachment ${a.key}${a.error ? ` (${a.error})` : ''}`;
  return `left by an interrupted ${a.operation} of attachment ${a.key} (process ${a.process.pid} is gone)`;
}

const UNOWNED = 'no journal record or connection record accounts for it; only --include-unowned removes it';

/** Everything {@link judge} works from. */
export interface JudgeInput {
  survey: HostSurvey;
  view: JournalView;
  claims: CleanupClaims;
  includeUnowned: boolean;
}

/**
 * Judge the survey against the journal and the claims (see the module notes): the leftovers
 * with what would be done to each and why, the records to prune, and the attachments whose
 * operation is over.
 */
export async function judge(ctx: HostContext, input: JudgeInput): Promise<CleanupPlan> {
  const { survey: s, view } = input;
  const { p, finished, inProgress } = await protection(ctx, view, input.claims);
  const prot = protectedKeys(s, p);
  const owned = new Map<string, ResourceEntry>();
  const prune: ResourceEntry[] = [];
  for (const r of view.resources) {
    if (!SURVEYED.has(r.kind) || p.records.has(key(r.kind, r.name))) continue;
    if (recordValid(view, s, r)) owned.set(key(r.kind, r.name), r);
    else prune.push(r);
  }
  const items = candidates(s, view, input.claims, prot, owned);
  await decide(ctx, s, items, input.includeUnowned);
  return { items, prune, finished, inProgress };
}

/** A plan item for a survey object: owned through `record` (or inherited), or unowned. */
function item(kind: JournalResourceKind, name: string, record: ResourceEntry | undefined, owned: boolean, reason: string, extra: Partial<PlanItem>): PlanItem {
  return { kind, name, owned, action: 'none', reason, ...(record ? { record } : {}), ...extra };
}

/** The leftovers, in removal order, before deciding what to do with each. */
function candidates(s: HostSurvey, view: JournalView, claims: CleanupClaims, prot: Set<string>, owned: Map<string, ResourceEntry>): PlanItem[] {
  const free = (kind: JournalResourceKind, name: string) => !prot.has(key(kind, name));
  const rec = (kind: JournalResourceKind, name: string) => owned.get(key(kind, name));
  const mounts = s.mounts.filter((m) => free('mount', m.name) && rec('mount', m.name)).map((m) => item('mount', m.name, rec('mount', m.name), true, ownedReason(view, rec('mount', m.name)!), { mount: m }));
  const sessions = s.sessions.filter((x) => free('iscsi-session', x.name)).map((x) => {
    const r = rec('iscsi-session', x.name);
    return item('iscsi-session', x.name, r, r !== undefined, r ? `${ownedReason(view, r)}; it carries no LUN in use` : `iSCSI session: ${UNOWNED}`, { session: x });
  });
  const onSession = new Map(sessions.flatMap((x) => x.session!.devices.map((d) => [d, x] as const)));
  const devices = s.scsiDevices.filter((d) => free('scsi-device', d.name) && (rec('scsi-device', d.name) || onSession.has(d.name))).map((d) => {
    const r = rec('scsi-device', d.name);
    const via = onSession.get(d.name);
    const isOwned = r !== undefined || via?.owned === true;
    const why = r ? ownedReason(view, r) : via?.owned ? `carried by leftover iSCSI session ${via.name}` : `carried by iSCSI session ${via!.name}: ${UNOWNED}`;
    return item('scsi-device', d.name, r, isOwned, `${d.device ? `/dev/${d.device}: ` : ''}${why}`, { scsi: d });
  });
  const nvme = s.nvmeControllers.filter((c) => free('nvme-controller', c.name)).map((c) => {
    const r = rec('nvme-controller', c.name);
    return item('nvme-controller', c.name, r, r !== undefined, `/dev/${c.controller}: ${r ? ownedReason(view, r) : `NVMe-oF controller: ${UNOWNED}`}`, { nvme: c });
  });
  // The block devices of the candidates: a map made over them alone (multipathd does so on its own) goes with them.
  const byBlock = new Map<string, PlanItem>([...devices.filter((d) => d.scsi!.device).map((d) => [d.scsi!.device!, d] as const), ...nvme.flatMap((c) => c.nvme!.namespaces.map((ns) => [ns, c] as const))]);
  const maps = s.maps.filter((m) => free('multipath-map', m.name)).map((m) => {
    const r = rec('multipath-map', m.name) ?? rec('multipath-map', m.wwid);
    const under = m.slaves.map((x) => byBlock.get(x));
    const overOwned = m.slaves.length > 0 && under.every((d) => d?.owned === true);
    const why = r ? ownedReason(view, r) : overOwned ? `multipath map over leftover devices ${m.slaves.join(', ')}` : `multipath map: ${UNOWNED}`;
    return item('multipath-map', m.name, r, r !== undefined || overOwned, `/dev/${m.dm}: ${why}`, { map: m });
  });
  const nodes = s.nodes.filter((n) => free('iscsi-node', n.name) && rec('iscsi-node', n.name)).map((n) => {
    const r = rec('iscsi-node', n.name)!;
    return item('iscsi-node', n.name, r, true, `node record: ${ownedReason(view, r)}`, { node: n });
  });
  const pools = (claims.poolPaths ?? []).map((x) => posix.normalize(x).replace(/(.)\/$/, '$1'));
  const loops = s.loops.filter((l) => free('loop-device', l.name)).flatMap((l) => {
    const r = rec('loop-device', l.name);
    const inPool = pools.some((pool) => posix.dirname(l.backingFile) === pool);
    if (!r && !inPool) return [];
    return [item('loop-device', l.name, r, true, r ? ownedReason(view, r) : `loop device over pool file ${l.backingFile} that no connection record exports`, { loop: l })];
  });
  const crypts = s.cryptMaps.filter((c) => free('dm-crypt', c.name) && rec('dm-crypt', c.name)).map((c) => item('dm-crypt', c.name, rec('dm-crypt', c.name), true, `/dev/${c.dm}: ${ownedReason(view, rec('dm-crypt', c.name)!)}`, { crypt: c }));
  const rbds = s.rbdDevices.filter((r) => free('rbd-device', r.name) && rec('rbd-device', r.name)).map((r) => item('rbd-device', r.name, rec('rbd-device', r.name), true, `/dev/${r.dev}: ${ownedReason(view, rec('rbd-device', r.name)!)}`, { rbd: r }));
  return [...mounts, ...crypts, ...maps, ...devices, ...sessions, ...nodes, ...nvme, ...rbds, ...loops];
}

/** Decide each candidate's action in removal order: what stays makes what depends on it stay. */
async function decide(ctx: HostContext, s: HostSurvey, items: PlanItem[], includeUnowned: boolean): Promise<void> {
  const removing = (kind: JournalResourceKind) => items.filter((i) => i.kind === kind && i.action === 'remove');
  const skip = (i: PlanItem, why: string) => {
    i.action = 'skip';
    i.reason = `${i.reason}; ${why}, so it is never touched`;
  };
  for (const i of items) {
    if (!i.owned && !includeUnowned) {
      i.action = 'none';
      continue;
    }
    i.action = 'remove';
    const ignoreHolders = new Set([...removing('multipath-map').map((m) => m.map!.dm), ...removing('dm-crypt').map((c) => c.crypt!.dm)]);
    const ignoreMounts = new Set(removing('mount').map((m) => m.name));
    const busy = (name: string) => blockDeviceBusy(ctx, s, name, { ignoreHolders, ignoreMounts });
    let why: string | undefined;
    if (i.map) why = await busy(i.map.dm);
    else if (i.crypt) why = await busy(i.crypt.dm);
    else if (i.rbd) why = await busy(i.rbd.dev);
    else if (i.scsi?.device) why = await busy(i.scsi.device);
    else if (i.loop) why = await busy(posix.basename(i.loop.name));
    else if (i.nvme) for (const ns of i.nvme.namespaces) why ??= await busy(ns);
    else if (i.session) {
      const staying = i.session.devices.filter((d) => !items.some((x) => x.kind === 'scsi-device' && x.name === d && x.action === 'remove'));
      if (staying.length > 0) why = `it carries LUN ${staying.join(', ')}, which stays`;
    } else if (i.node) {
      const c = canonicalName('iscsi-node', i.node.name);
      const session = s.sessions.find((x) => canonicalName('iscsi-session', x.name) === c);
      if (session && !items.some((x) => x.session === session && x.action === 'remove')) why = `its session ${session.name} stays`;
    }
    if (why) skip(i, why);
  }
}
