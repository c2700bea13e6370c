/**
 * Host routes: host types, hosts (with their iSCSI initiator ports, unique across hosts),
 * host groups, and LUN mappings of volumes to hosts or host groups, with the array's rules:
 * one mapping per volume, LUN ids 0..255 unique for a host together with its group, no host
 * joining a group whose LUNs collide with its own, and `symbol/moveLUNMapping`, which answers
 * a bare return code (`ok`, `lunCollision`, ...) instead of an error.
 *
 * @module
 */
import { hostGroupJson, hostJson, mappingJson } from '../format.js';
import { SYS, asRecord, invalid, notFound, str, type RouteTable } from '../routing.js';
import { HOST_TYPES, type EseriesSimState } from '../state.js';
import { MAX_LUN, NULL_REF, type SimHost, type SimHostGroup, type SimMapping } from '../types.js';

/**
 * The host-type index a request names (a number or `{ index }`).
 * @throws {@link SimError} 422 `invalidParameters` for an unknown index
 */
function hostTypeIndex(v: unknown): number {
  const idx = typeof v === 'number' ? v : v && typeof v === 'object' ? (v as { index?: unknown }).index : undefined;
  if (typeof idx !== 'number' || !HOST_TYPES.some((t) => t.index === idx)) throw invalid('invalidParameters', 'hostType must name a known host-type index');
  return idx;
}

/**
 * Move host `h` into host group `groupRef` (`NULL_REF`: out of any group), then tell the data
 * path about the mappings whose initiators changed.
 * @throws {@link SimError} 404 for an unknown group, 422 `lunCollision` when the host's LUNs collide with the group's
 */
async function joinGroup(s: EseriesSimState, h: SimHost, groupRef: string): Promise<void> {
  if (groupRef !== NULL_REF) {
    if (!s.hostGroups.has(groupRef)) throw notFound('host group', groupRef);
    const groupLuns = s.lunsInUse(groupRef);
    for (const m of s.mappings.values()) {
      if (m.mapRef === h.id && groupLuns.has(m.lun)) {
        throw invalid('lunCollision', `host ${h.label} cannot join the group: LUN ${m.lun} is already used by the group`);
      }
    }
  }
  const old = h.clusterRef;
  h.clusterRef = groupRef;
  for (const m of s.mappings.values()) if (m.mapRef === groupRef || m.mapRef === old) await s.notifyMapping(m);
}

/**
 * `POST hosts`: a host with a unique label and ports no other host has, optionally in a group.
 * @throws {@link SimError} 422 `duplicateLabel`, `duplicatePort`, `invalidParameters`
 */
async function createHost(s: EseriesSimState, body: unknown): Promise<Record<string, unknown>> {
  const b = asRecord(body);
  const label = str(b, 'name');
  if ([...s.hosts.values()].some((h) => h.label === label)) throw invalid('duplicateLabel', `a host labelled ${label} already exists`);
  const idx = hostTypeIndex(b.hostType);
  const ports = Array.isArray(b.ports) ? b.ports : [];
  const parsed = ports.map((x) => {
    const port = asRecord(x);
    const address = str(port, 'port');
    if (s.hostByInitiator(address)) throw invalid('duplicatePort', `host port ${address} is already defined on another host`);
    return { type: typeof port.type === 'string' ? port.type : 'iscsi', address, label: typeof port.label === 'string' ? port.label : address };
  });
  const h: SimHost = { id: s.ref('84'), label, clusterRef: NULL_REF, hostTypeIndex: idx, ports: parsed };
  s.hosts.set(h.id, h);
  if (typeof b.groupId === 'string' && b.groupId !== NULL_REF) await joinGroup(s, h, b.groupId);
  return hostJson(h);
}

/** Host types and hosts: list, read, create, change type or group, delete (when unmapped). */
export function hostRoutes(r: RouteTable, s: EseriesSimState): void {
  const getHost = (id: string): SimHost => {
    const h = s.hosts.get(id);
    if (!h) throw notFound('host', id);
    return h;
  };
  r.add('GET', `${SYS}/host-types`, () => HOST_TYPES.map((t) => ({ ...t, id: String(t.index), used: false })));
  r.add('GET', `${SYS}/hosts`, () => [...s.hosts.values()].map(hostJson));
  r.add('GET', `${SYS}/hosts/{id}`, (p) => hostJson(getHost(p.id!)));
  r.add('POST', `${SYS}/hosts`, (_p, body) => createHost(s, body));
  r.add('POST', `${SYS}/hosts/{id}`, async (p, body) => {
    const h = getHost(p.id!);
    const b = asRecord(body);
    if (b.hostType !== undefined) h.hostTypeIndex = hostTypeIndex(b.hostType);
    if (typeof b.groupId === 'string') await joinGroup(s, h, b.groupId);
    return hostJson(h);
  });
  r.add('DELETE', `${SYS}/hosts/{id}`, (p) => {
    const h = getHost(p.id!);
    if ([...s.mappings.values()].some((m) => m.mapRef === h.id)) throw invalid('hostHasMappings', `host ${h.label} still has mappings`);
    s.hosts.delete(h.id);
    return null;
  });
}

/** Host groups: list, read, create (unique labels). */
export function hostGroupRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', `${SYS}/host-groups`, () => [...s.hostGroups.values()].map(hostGroupJson));
  r.add('GET', `${SYS}/host-groups/{id}`, (p) => {
    const g = s.hostGroups.get(p.id!);
    if (!g) throw notFound('host group', p.id!);
    return hostGroupJson(g);
  });
  r.add('POST', `${SYS}/host-groups`, (_p, body) => {
    const b = asRecord(body);
    const label = str(b, 'name');
    if ([...s.hostGroups.values()].some((g) => g.label === label)) throw invalid('duplicateLabel', `a host group labelled ${label} already exists`);
    const g: SimHostGroup = { id: s.ref('85'), label };
    s.hostGroups.set(g.id, g);
    return hostGroupJson(g);
  });
}

/**
 * A LUN id that is free for `targetRef` (ignoring mapping `exclude`).
 * @throws {@link SimError} 422 `invalidLun`, `lunCollision` or `maxLunsExceeded`
 */
function checkLun(s: EseriesSimState, lun: unknown, targetRef: string, exclude?: string): number {
  if (typeof lun !== 'number' || !Number.isInteger(lun) || lun < 0 || lun > MAX_LUN) throw invalid('invalidLun', `LUN must be an integer 0..${MAX_LUN}`);
  const used = s.lunsInUse(targetRef, exclude);
  if (used.has(lun)) throw invalid('lunCollision', `LUN ${lun} is already in use for ${targetRef}`);
  if (used.size >= MAX_LUN + 1) throw invalid('maxLunsExceeded', `no more mappings allowed for ${targetRef}`);
  return lun;
}

/**
 * `POST volume-mappings`: map an unmapped volume that is no running copy's target.
 * @throws {@link SimError} 404 for an unknown volume or target, 422 `volumeAlreadyMapped`, `volumeInCopy` or a LUN refusal
 */
async function createMapping(s: EseriesSimState, body: unknown): Promise<Record<string, unknown>> {
  const b = asRecord(body);
  const v = s.getVolume(str(b, 'mappableObjectId'));
  const target = str(b, 'targetId');
  if (!s.hosts.has(target) && !s.hostGroups.has(target)) throw notFound('host or host group', target);
  if (s.mappingOf(v.id)) throw invalid('volumeAlreadyMapped', `volume ${v.label} is already mapped`);
  for (const j of s.copyJobs.values()) if (j.targetId === v.id && !j.completed) throw invalid('volumeInCopy', `volume ${v.label} is a copy target`);
  const lun = checkLun(s, b.lun, target);
  const m: SimMapping = { id: s.ref('88'), lun, volumeRef: v.id, mapRef: target };
  s.mappings.set(m.id, m);
  await s.notifyMapping(m);
  return mappingJson(m);
}

/** `symbol/moveLUNMapping`: move a mapping to another target and LUN; answers a return code. */
async function moveMapping(s: EseriesSimState, body: unknown): Promise<string> {
  const b = asRecord(body);
  const m = s.mappings.get(str(b, 'lunMappingRef'));
  if (!m) return 'invalidMappingRef';
  const target = str(b, 'mapRef');
  if (!s.hosts.has(target) && !s.hostGroups.has(target)) return 'invalidMapRef';
  try {
    checkLun(s, b.lun, target, m.id);
  } catch {
    return 'lunCollision';
  }
  m.lun = b.lun as number;
  m.mapRef = target;
  await s.notifyMapping(m);
  return 'ok';
}

/** LUN mappings: list, read, create, delete, move. */
export function mappingRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', `${SYS}/volume-mappings`, () => [...s.mappings.values()].map(mappingJson));
  r.add('GET', `${SYS}/volume-mappings/{id}`, (p) => {
    const m = s.mappings.get(p.id!);
    if (!m) throw notFound('volume mapping', p.id!);
    return mappingJson(m);
  });
  r.add('POST', `${SYS}/volume-mappings`, (_p, body) => createMapping(s, body));
  r.add('DELETE', `${SYS}/volume-mappings/{id}`, async (p) => {
    const m = s.mappings.get(p.id!);
    if (!m) throw notFound('volume mapping', p.id!);
    s.mappings.delete(m.id);
    const v = s.volumes.get(m.volumeRef);
    if (v) await s.hooks().onUnmapped?.({ volume: v, lun: m.lun });
    return null;
  });
  r.add('POST', `${SYS}/symbol/moveLUNMapping`, (_p, body) => moveMapping(s, body));
}
