/**
 * Volume routes: listing, creating, renaming, deleting and expanding thick and thin volumes
 * (a thick expansion on a RAID group runs a DVE the pool's action progress shows), and the
 * volume copy jobs that fill a volume from another or from a snapshot view, advancing from
 * `pending` through `inProgress` to their outcome over time.
 *
 * @module
 */
import { volumeJson } from '../format.js';
import { GIB, SYS, asRecord, invalid, notFound, str, unitBytes, type Params, type RouteTable } from '../routing.js';
import type { EseriesSimState } from '../state.js';
import type { SimCopyJob, SimVolume } from '../types.js';

/**
 * `POST ssc/volumes`: a thick or thin (disk pools only) volume, owned alternately by controller A and B.
 * @throws {@link SimError} 422 for a long or duplicate label, a bad size, a thin volume on a RAID group, no room
 */
function createVolume(s: EseriesSimState, body: unknown): Record<string, unknown> {
  const b = asRecord(body);
  const pool = s.getPool(str(b, 'poolId'));
  const label = str(b, 'name');
  if (label.length > 30) throw invalid('invalidParameters', 'volume labels are at most 30 characters');
  s.checkLabel(label);
  const bytes = unitBytes(b.size, b.sizeUnit);
  const thin = b.thinProvision === true;
  if (thin && !pool.diskPool) throw invalid('invalidParameters', `pool ${pool.label} is not a disk pool; thin volumes need one`);
  s.checkFree(pool, thin ? Math.min(bytes, 4 * GIB) : bytes);
  const count = [...s.volumes.values()].filter((v) => v.poolRef === pool.id).length;
  const v: SimVolume = {
    id: s.ref('02'),
    label,
    wwn: s.newWwn(),
    capacity: bytes,
    poolRef: pool.id,
    thin,
    repository: false,
    currentManager: s.controllerRef(count % 2 === 0 ? 'A' : 'B'),
    createdAt: Date.now(),
    flashCache: b.flashCacheEnable === true,
    dataAssurance: b.dataAssuranceEnable === true,
    readCache: b.readCacheEnable !== false,
    writeCache: b.writeCacheEnable !== false,
  };
  s.volumes.set(v.id, v);
  return volumeJson(s, v);
}

/** `DELETE` a volume: refused while it is mapped or takes part in a running copy. */
async function deleteVolume(s: EseriesSimState, p: Params): Promise<null> {
  const v = s.getVolume(p.id!);
  if (s.mappingOf(v.id)) throw invalid('volumeMapped', `volume ${v.label} is mapped; remove its mapping first`);
  for (const j of s.copyJobs.values()) {
    if ((j.sourceId === v.id || j.targetId === v.id) && ['pending', 'inProgress'].includes(s.copyStatus(j).status)) {
      throw invalid('volumeInCopy', `volume ${v.label} takes part in a running volume copy`);
    }
  }
  await s.removeVolume(v);
  return null;
}

/** Listing, creating, renaming and deleting volumes (repositories are listed by `ssc/volumes` too). */
export function volumeRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', `${SYS}/ssc/volumes`, () => [...s.volumes.values()].map((x) => volumeJson(s, x)));
  r.add('GET', `${SYS}/volumes`, () => [...s.volumes.values()].filter((v) => !v.thin).map((x) => volumeJson(s, x)));
  r.add('GET', `${SYS}/thin-volumes`, () => [...s.volumes.values()].filter((v) => v.thin).map((x) => volumeJson(s, x)));
  r.add('GET', `${SYS}/ssc/volumes/{key}`, (p) => volumeJson(s, s.getVolume(decodeURIComponent(p.key!))));
  r.add('GET', `${SYS}/volumes/{key}`, (p) => volumeJson(s, s.getVolume(p.key!)));
  r.add('POST', `${SYS}/ssc/volumes`, (_p, body) => createVolume(s, body));
  r.add('POST', `${SYS}/ssc/volumes/{id}`, (p, body) => {
    const b = asRecord(body);
    const v = s.getVolume(p.id!);
    if (b.name !== undefined) {
      const label = str(b, 'name');
      s.checkLabel(label, v.id);
      v.label = label;
    }
    return volumeJson(s, v);
  });
  const remove = (p: Params): Promise<null> => deleteVolume(s, p);
  r.add('DELETE', `${SYS}/ssc/volumes/{id}`, remove);
  r.add('DELETE', `${SYS}/volumes/{id}`, remove);
  r.add('DELETE', `${SYS}/thin-volumes/{id}`, remove);
}

/** Thick expansion (with a DVE on RAID groups) and thin expansion of the virtual size. */
export function expansionRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('POST', `${SYS}/volumes/{id}/expand`, async (p, body) => {
    const b = asRecord(body);
    const v = s.getVolume(p.id!);
    if (v.thin) throw invalid('invalidVolumeType', `volume ${v.label} is thin; use thin-volumes/{id}/expand`);
    const bytes = unitBytes(b.expansionSize, b.sizeUnit);
    if (bytes <= v.capacity) throw invalid('invalidParameters', `expansionSize must exceed the current capacity (${v.capacity} bytes)`);
    const pool = s.getPool(v.poolRef);
    s.checkFree(pool, bytes - v.capacity);
    v.capacity = bytes;
    if (!pool.diskPool && s.options.dveDurationMs > 0) pool.dve.set(v.id, Date.now() + s.options.dveDurationMs);
    await s.hooks().onExtended?.(v);
    return volumeJson(s, v);
  });
  r.add('POST', `${SYS}/thin-volumes/{id}/expand`, async (p, body) => {
    const b = asRecord(body);
    const v = s.getVolume(p.id!);
    if (!v.thin) throw invalid('invalidVolumeType', `volume ${v.label} is not thin`);
    const bytes = unitBytes(b.newVirtualSize, b.sizeUnit);
    if (bytes <= v.capacity) throw invalid('invalidParameters', 'newVirtualSize must exceed the current virtual size');
    v.capacity = bytes;
    await s.hooks().onExtended?.(v);
    return volumeJson(s, v);
  });
}

/**
 * `POST volume-copy-jobs`: copy a volume or snapshot view onto a user volume that is at least
 * as large, unmapped and not already a copy target. The job's outcome is the state's `nextCopyOutcome`.
 */
function createCopyJob(s: EseriesSimState, body: unknown): Record<string, unknown> {
  const b = asRecord(body);
  const sourceId = str(b, 'sourceId');
  const targetId = str(b, 'targetId');
  const srcView = s.snapshotVolumes.get(sourceId);
  const srcVol = srcView ? undefined : s.volumes.get(sourceId);
  if (!srcView && !srcVol) throw notFound('copy source', sourceId);
  const target = s.volumes.get(targetId);
  if (!target || target.repository) throw notFound('copy target', targetId);
  if (targetId === sourceId) throw invalid('invalidParameters', 'source and target are the same volume');
  const srcCap = srcView ? srcView.capacity : srcVol!.capacity;
  if (target.capacity < srcCap) throw invalid('invalidCopyTarget', `copy target ${target.label} is smaller than the source`);
  if (s.mappingOf(target.id)) throw invalid('invalidCopyTarget', `copy target ${target.label} is mapped`);
  for (const j of s.copyJobs.values()) {
    if (j.targetId === targetId && !j.completed) throw invalid('volumeInCopy', `volume ${target.label} is already a copy target`);
  }
  const j: SimCopyJob = { id: s.ref('18'), sourceId, targetId, createdAt: Date.now(), outcome: s.nextCopyOutcome, completed: false };
  s.nextCopyOutcome = 'complete';
  s.copyJobs.set(j.id, j);
  return { volcopyRef: j.id, id: j.id, sourceVolume: sourceId, targetVolume: targetId, status: 'pending', copyPriority: b.copyPriority ?? 'priority2', percentComplete: 0 };
}

/** `GET volume-copy-jobs/{id}`: the job's status now; the first `complete` seen tells the data path to copy. */
async function readCopyJob(s: EseriesSimState, p: Params): Promise<Record<string, unknown>> {
  const j = s.copyJobs.get(p.id!);
  if (!j) throw notFound('volume copy job', p.id!);
  const st = s.copyStatus(j);
  if (st.status === 'complete' && !j.completed) {
    j.completed = true;
    const view = s.snapshotVolumes.get(j.sourceId);
    const source = s.volumes.get(view ? view.baseVol : j.sourceId);
    const target = s.volumes.get(j.targetId);
    if (source && target) await s.hooks().onCopyComplete?.({ sourceVolume: source, target, ...(view ? { sourceImageId: view.basePIT } : {}) });
  } else if (st.status !== 'pending' && st.status !== 'inProgress') {
    j.completed = true;
  }
  return { volcopyRef: j.id, id: j.id, sourceVolume: j.sourceId, targetVolume: j.targetId, ...st };
}

/** Volume copy jobs. */
export function copyJobRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('POST', `${SYS}/volume-copy-jobs`, (_p, body) => createCopyJob(s, body));
  r.add('GET', `${SYS}/volume-copy-jobs/{id}`, (p) => readCopyJob(s, p));
  r.add('DELETE', `${SYS}/volume-copy-jobs/{id}`, (p) => {
    if (!s.copyJobs.delete(p.id!)) throw notFound('volume copy job', p.id!);
    return null;
  });
}
