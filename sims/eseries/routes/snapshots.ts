/**
 * Snapshot routes: snapshot groups (each with a repository volume, at most 4 per volume),
 * snapshot images (at most 32 per group; only the oldest of a group can be deleted) and
 * snapshot volumes, the read-only views a copy job reads. Groups and images of
 * consistency-group members are refused here: they go through the consistency group.
 *
 * @module
 */
import { groupJson, imageJson, viewJson } from '../format.js';
import { SYS, asRecord, invalid, notFound, str, type RouteTable } from '../routing.js';
import type { EseriesSimState } from '../state.js';
import type { SimSnapshotGroup, SimSnapshotVolume } from '../types.js';

/**
 * The snapshot group `id`.
 * @throws {@link SimError} 404
 */
function getGroup(s: EseriesSimState, id: string): SimSnapshotGroup {
  const g = s.snapshotGroups.get(id);
  if (!g) throw notFound('snapshot group', id);
  return g;
}

/** Snapshot groups: list, read, create, rename, delete (with their images and repository). */
export function snapshotGroupRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', `${SYS}/snapshot-groups`, () => [...s.snapshotGroups.values()].map((x) => groupJson(s, x)));
  r.add('GET', `${SYS}/snapshot-groups/{id}`, (p) => groupJson(s, getGroup(s, p.id!)));
  r.add('POST', `${SYS}/snapshot-groups`, (_p, body) => {
    const b = asRecord(body);
    const base = s.getVolume(str(b, 'baseMappableObjectId'));
    const pct = typeof b.repositoryPercentage === 'number' ? b.repositoryPercentage : 20;
    return groupJson(s, s.createSnapshotGroup(base, str(b, 'name'), null, pct));
  });
  r.add('POST', `${SYS}/snapshot-groups/{id}`, (p, body) => {
    const g = getGroup(s, p.id!);
    const b = asRecord(body);
    if (b.name !== undefined) g.label = str(b, 'name');
    return groupJson(s, g);
  });
  r.add('DELETE', `${SYS}/snapshot-groups/{id}`, (p) => {
    const g = getGroup(s, p.id!);
    if (g.cgRef) throw invalid('invalidParameters', 'a consistency-group member snapshot group is removed with its member volume');
    s.deleteSnapshotGroup(g);
    return null;
  });
}

/** Snapshot images: list, read, take (in a group that is no consistency-group member's), delete the oldest. */
export function snapshotImageRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', `${SYS}/snapshot-images`, () => [...s.images.values()].map(imageJson));
  r.add('GET', `${SYS}/snapshot-images/{id}`, (p) => {
    const i = s.images.get(p.id!);
    if (!i) throw notFound('snapshot image', p.id!);
    return imageJson(i);
  });
  r.add('POST', `${SYS}/snapshot-images`, async (_p, body) => {
    const b = asRecord(body);
    const g = s.snapshotGroups.get(str(b, 'groupId'));
    if (!g) throw notFound('snapshot group', String(b.groupId));
    if (g.cgRef) throw invalid('invalidParameters', 'images of consistency-group members are taken through the consistency group');
    return imageJson(await s.takeImage(g, s.nextImageSeq(), null));
  });
  r.add('DELETE', `${SYS}/snapshot-images/{id}`, (p) => {
    const i = s.images.get(p.id!);
    if (!i) throw notFound('snapshot image', p.id!);
    const older = [...s.images.values()].some((o) => o.groupRef === i.groupRef && o.seq < i.seq);
    if (older) throw invalid('notOldestPit', 'only the oldest snapshot image of a snapshot group can be deleted');
    s.deleteImage(i);
    return null;
  });
}

/** Snapshot volumes (views of images that are no consistency-group member's). */
export function snapshotViewRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', `${SYS}/snapshot-volumes`, () => [...s.snapshotVolumes.values()].map(viewJson));
  r.add('GET', `${SYS}/snapshot-volumes/{id}`, (p) => {
    const v = s.snapshotVolumes.get(p.id!);
    if (!v) throw notFound('snapshot volume', p.id!);
    return viewJson(v);
  });
  r.add('POST', `${SYS}/snapshot-volumes`, (_p, body) => {
    const b = asRecord(body);
    const img = s.images.get(str(b, 'snapshotImageId'));
    if (!img) throw notFound('snapshot image', String(b.snapshotImageId));
    if (img.cgRef) throw invalid('invalidParameters', 'views of consistency-group images are created through consistency-groups/{id}/views');
    const v: SimSnapshotVolume = { id: s.ref('35'), label: str(b, 'name'), basePIT: img.id, baseVol: img.baseVol, capacity: img.capacity, cgViewRef: null };
    s.snapshotVolumes.set(v.id, v);
    return viewJson(v);
  });
  r.add('DELETE', `${SYS}/snapshot-volumes/{id}`, (p) => {
    if (!s.snapshotVolumes.delete(p.id!)) throw notFound('snapshot volume', p.id!);
    return null;
  });
}
