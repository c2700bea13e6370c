/**
 * Consistency-group routes: groups, their member volumes (each member gets a snapshot group of
 * its own), consistency-group snapshots (one image per member, sharing a sequence number; only
 * the oldest can be deleted) and consistency-group views (one snapshot volume per member image).
 *
 * @module
 */
import { cgJson, imageJson, viewJson } from '../format.js';
import { SYS, asRecord, invalid, notFound, str, type Params, type RouteTable } from '../routing.js';
import type { EseriesSimState } from '../state.js';
import type { SimCgView, SimConsistencyGroup, SimSnapshotVolume } from '../types.js';

/**
 * The consistency group `id`.
 * @throws {@link SimError} 404
 */
function getCg(s: EseriesSimState, id: string): SimConsistencyGroup {
  const c = s.consistencyGroups.get(id);
  if (!c) throw notFound('consistency group', id);
  return c;
}

/** Consistency groups: list, read, create (unique labels), delete (with members' snapshot groups and views). */
export function consistencyGroupRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', `${SYS}/consistency-groups`, () => [...s.consistencyGroups.values()].map((x) => cgJson(s, x)));
  r.add('GET', `${SYS}/consistency-groups/{id}`, (p) => cgJson(s, getCg(s, p.id!)));
  r.add('POST', `${SYS}/consistency-groups`, (_p, body) => {
    const b = asRecord(body);
    const label = str(b, 'name');
    if ([...s.consistencyGroups.values()].some((c) => c.label === label)) throw invalid('duplicateLabel', `a consistency group labelled ${label} already exists`);
    const c: SimConsistencyGroup = { id: s.ref('2A'), label, seq: 0, members: [] };
    s.consistencyGroups.set(c.id, c);
    return cgJson(s, c);
  });
  r.add('DELETE', `${SYS}/consistency-groups/{id}`, (p) => {
    const c = getCg(s, p.id!);
    for (const g of [...s.snapshotGroups.values()]) if (g.cgRef === c.id) s.deleteSnapshotGroup(g);
    for (const v of [...s.cgViews.values()]) if (v.cgRef === c.id) s.cgViews.delete(v.id);
    s.consistencyGroups.delete(c.id);
    return null;
  });
}

/**
 * `POST consistency-groups/{id}/member-volumes`: add a volume that is in no group, with a member snapshot group.
 * @throws {@link SimError} 422 `alreadyMember`
 */
function addMember(s: EseriesSimState, p: Params, body: unknown): Record<string, unknown> {
  const c = getCg(s, p.id!);
  const b = asRecord(body);
  const v = s.getVolume(str(b, 'volumeId'));
  if (c.members.includes(v.id)) throw invalid('alreadyMember', `volume ${v.label} is already a member`);
  for (const other of s.consistencyGroups.values()) {
    if (other.members.includes(v.id)) throw invalid('alreadyMember', `volume ${v.label} is a member of another consistency group`);
  }
  const pct = typeof b.repositoryPercent === 'number' ? b.repositoryPercent : 20;
  s.createSnapshotGroup(v, s.nextLabel('CG_'), c.id, pct);
  c.members.push(v.id);
  return { consistencyGroupId: c.id, volumeId: v.id, baseVolumeName: v.label };
}

/** Member volumes: list, add, remove (with the member's snapshot group). */
export function memberRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', `${SYS}/consistency-groups/{id}/member-volumes`, (p) =>
    getCg(s, p.id!).members.map((m) => ({ consistencyGroupId: p.id, volumeId: m, baseVolumeName: s.volumes.get(m)?.label })),
  );
  r.add('POST', `${SYS}/consistency-groups/{id}/member-volumes`, (p, body) => addMember(s, p, body));
  r.add('DELETE', `${SYS}/consistency-groups/{id}/member-volumes/{vol}`, (p) => {
    const c = getCg(s, p.id!);
    if (!c.members.includes(p.vol!)) throw notFound('consistency group member', p.vol!);
    c.members = c.members.filter((m) => m !== p.vol);
    for (const g of [...s.snapshotGroups.values()]) if (g.cgRef === c.id && g.baseVolume === p.vol) s.deleteSnapshotGroup(g);
    return null;
  });
}

/** Consistency-group snapshots: list (member images), take one, delete the oldest by sequence number. */
export function cgSnapshotRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', `${SYS}/consistency-groups/{id}/snapshots`, (p) => {
    const c = getCg(s, p.id!);
    return [...s.images.values()].filter((i) => i.cgRef === c.id).map(imageJson);
  });
  r.add('POST', `${SYS}/consistency-groups/{id}/snapshots`, async (p) => {
    const c = getCg(s, p.id!);
    if (c.members.length === 0) throw invalid('invalidParameters', `consistency group ${c.label} has no members`);
    c.seq += 1;
    const seq = s.nextImageSeq();
    const out: unknown[] = [];
    for (const m of c.members) {
      const g = [...s.snapshotGroups.values()].find((x) => x.cgRef === c.id && x.baseVolume === m)!;
      out.push(imageJson(await s.takeImage(g, seq, c.id)));
    }
    return out;
  });
  r.add('DELETE', `${SYS}/consistency-groups/{id}/snapshots/{seq}`, (p) => {
    const c = getCg(s, p.id!);
    const seq = Number(p.seq);
    const imgs = [...s.images.values()].filter((i) => i.cgRef === c.id);
    if (!imgs.some((i) => i.seq === seq)) throw notFound('consistency group snapshot', p.seq!);
    if (imgs.some((i) => i.seq < seq)) throw invalid('notOldestPit', 'only the oldest consistency group snapshot can be deleted');
    for (const i of imgs) if (i.seq === seq) s.deleteImage(i);
    return null;
  });
}

/**
 * `POST consistency-groups/{id}/views`: a view of the group snapshot image `pitId` belongs to,
 * with one snapshot volume per member image of that snapshot.
 */
function createCgView(s: EseriesSimState, p: Params, body: unknown): Record<string, unknown> {
  const c = getCg(s, p.id!);
  const b = asRecord(body);
  const pit = s.images.get(str(b, 'pitId'));
  if (!pit || pit.cgRef !== c.id) throw notFound('consistency group snapshot image', String(b.pitId));
  const view: SimCgView = { id: s.ref('2B'), cgRef: c.id, label: str(b, 'name'), seq: pit.seq };
  s.cgViews.set(view.id, view);
  for (const i of s.images.values()) {
    if (i.cgRef !== c.id || i.seq !== pit.seq) continue;
    const sv: SimSnapshotVolume = { id: s.ref('35'), label: s.nextLabel('cgview_'), basePIT: i.id, baseVol: i.baseVol, capacity: i.capacity, cgViewRef: view.id };
    s.snapshotVolumes.set(sv.id, sv);
  }
  return { cgViewRef: view.id, id: view.id, groupRef: c.id, label: view.label, name: view.label, viewSequenceNumber: String(view.seq) };
}

/** Consistency-group views: create, list a view's member snapshot volumes, delete. */
export function cgViewRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('POST', `${SYS}/consistency-groups/{id}/views`, (p, body) => createCgView(s, p, body));
  r.add('GET', `${SYS}/consistency-groups/{id}/views/{view}/views`, (p) => {
    getCg(s, p.id!);
    if (!s.cgViews.has(p.view!)) throw notFound('consistency group view', p.view!);
    return [...s.snapshotVolumes.values()].filter((v) => v.cgViewRef === p.view).map(viewJson);
  });
  r.add('DELETE', `${SYS}/consistency-groups/{id}/views/{view}`, (p) => {
    getCg(s, p.id!);
    if (!s.cgViews.delete(p.view!)) throw notFound('consistency group view', p.view!);
    for (const v of [...s.snapshotVolumes.values()]) if (v.cgViewRef === p.view) s.snapshotVolumes.delete(v.id);
    return null;
  });
}
