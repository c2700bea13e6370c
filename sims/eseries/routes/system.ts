/**
 * Routes of the storage system itself: the Web Services `about`, registering and reading the
 * storage system (proxy mode registers by controller addresses; the array password sets its
 * `passwordStatus`), the hardware inventory (controllers and iSCSI ports), persistent records
 * and key-values, and the storage pools with their DVE progress and storage-service entries.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { poolJson, systemJson } from '../format.js';
import { BASE, SYS, asRecord, invalid, notFound, str, type RouteTable } from '../routing.js';
import type { EseriesSimState } from '../state.js';
import type { SimSystem } from '../types.js';

/** `POST storage-systems`: register the array, or answer with the one already registered (same controllers). */
function registerSystem(s: EseriesSimState, body: unknown): Record<string, unknown> {
  const b = asRecord(body);
  const addrs = b.controllerAddresses;
  if (!Array.isArray(addrs) || addrs.length === 0 || !addrs.every((a) => typeof a === 'string')) {
    throw invalid('invalidParameters', 'controllerAddresses must be a non-empty list of strings');
  }
  const pw = typeof b.password === 'string' ? b.password : null;
  const pwStatus = (): SimSystem['passwordStatus'] =>
    s.options.arrayPassword === undefined ? 'valid' : pw === null ? 'unknown' : pw === s.options.arrayPassword ? 'valid' : 'invalid';
  if (s.system) {
    if (s.system.controllerAddresses.join(',') !== (addrs as string[]).join(',')) {
      throw invalid('invalidParameters', 'the simulator serves a single storage system; its controllers differ');
    }
    if (pw !== null) s.system.passwordStatus = pwStatus();
    return systemJson(s, s.system);
  }
  s.system = { id: randomUUID(), controllerAddresses: addrs as string[], status: 'optimal', passwordStatus: pwStatus() };
  return { ...systemJson(s, s.system), alreadyExists: false };
}

/** `about` and the storage system: these answer even while the system is offline. */
export function storageSystemRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', '/devmgr/utils/about', () => ({
    runningAsProxy: s.options.mode === 'proxy',
    version: s.options.version,
    systemId: s.system?.id ?? null,
  }), false);
  r.add('GET', `${BASE}/storage-systems`, () => (s.system ? [systemJson(s, s.system)] : []), false);
  r.add('POST', `${BASE}/storage-systems`, (_p, body) => registerSystem(s, body), false);
  r.add('GET', SYS, () => systemJson(s, s.system!), false);
  r.add('POST', SYS, (_p, body) => {
    const b = asRecord(body);
    if ('storedPassword' in b) {
      const pw = b.storedPassword;
      s.system!.passwordStatus =
        s.options.arrayPassword === undefined ? 'valid' : typeof pw === 'string' && pw === s.options.arrayPassword ? 'valid' : 'invalid';
    }
    return systemJson(s, s.system!);
  }, false);
}

/** The hardware inventory: both controllers and the configured iSCSI ports. */
export function inventoryRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', `${SYS}/hardware-inventory`, () => ({
    controllers: (['A', 'B'] as const).map((c, i) => ({
      controllerRef: s.controllerRef(c),
      id: s.controllerRef(c),
      physicalLocation: { slot: i + 1, label: c },
      modelName: '2800',
      serialNumber: `02163301234${i}`,
      status: 'optimal',
    })),
    iscsiPorts: s.options.portals.map((p, i) => ({
      id: `2201000000000000000000000000000000000${i + 1}`.slice(-40),
      interfaceRef: `22010000000000000000000${i + 1}`,
      controllerId: s.controllerRef(p.controller),
      iqn: s.options.targetIqn,
      tcpListenPort: p.port ?? 3260,
      ipv4Enabled: true,
      ipv4Data: { ipv4AddressData: { ipv4Address: p.unconfigured ? '0.0.0.0' : p.ip, configState: p.unconfigured ? 'unconfigured' : 'configured' } },
      interfaceData: { type: 'ethernet' },
    })),
    fibrePorts: [],
  }));
}

/** Persistent records (the driver's indexes) and key-values. */
export function recordRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', `${SYS}/persistent-records/{key}`, (p) => {
    const v = s.persistentRecords.get(decodeURIComponent(p.key!));
    if (v === undefined) throw notFound('persistent record', p.key!);
    return { key: decodeURIComponent(p.key!), value: v };
  });
  r.add('GET', `${SYS}/persistent-records`, () => [...s.persistentRecords].map(([key, value]) => ({ key, value })));
  r.add('POST', `${SYS}/persistent-records`, (_p, body) => {
    const b = asRecord(body);
    const key = str(b, 'key');
    if (typeof b.value !== 'string') throw invalid('invalidParameters', 'value must be a string');
    s.persistentRecords.set(key, b.value);
    return { key, value: b.value };
  });
  r.add('DELETE', `${SYS}/persistent-records/{key}`, (p) => {
    if (!s.persistentRecords.delete(decodeURIComponent(p.key!))) throw notFound('persistent record', p.key!);
    return null;
  });
  r.add('POST', `${BASE}/key-values/{key}`, (p, body) => {
    s.keyValues.set(decodeURIComponent(p.key!), body);
    return body;
  }, false);
}

/** Storage pools, their DVE progress and their storage-service (`ssc/pools`) entries. */
export function poolRoutes(r: RouteTable, s: EseriesSimState): void {
  r.add('GET', `${SYS}/storage-pools`, () => s.pools.map((x) => poolJson(s, x)));
  r.add('GET', `${SYS}/storage-pools/{ref}`, (p) => poolJson(s, s.getPool(p.ref!)));
  r.add('GET', `${SYS}/storage-pools/{ref}/action-progress`, (p) => {
    const pool = s.getPool(p.ref!);
    const now = Date.now();
    const out: unknown[] = [];
    for (const [vol, end] of pool.dve) {
      if (end <= now) {
        pool.dve.delete(vol);
        continue;
      }
      out.push({ volumeRef: vol, progressPercentage: 50, estimatedTimeToCompletion: Math.ceil((end - now) / 60000), currentAction: 'remappingDve' });
    }
    return out;
  });
  r.add('GET', `${SYS}/ssc/pools`, () =>
    s.pools.map((p) => ({
      poolId: p.id,
      name: p.label,
      pool: poolJson(s, p),
      flashCacheCapable: true,
      dataAssuranceCapable: true,
      encrypted: p.encrypted,
      thinProvisioningCapable: p.diskPool,
      spindleSpeed: p.media === 'ssd' ? 'spindleSpeedSSD' : 'spindleSpeed10k',
      raidLevel: p.raidLevel,
      availableFreeExtentCapacities: [String(p.total - s.usedBytes(p))],
    })),
  );
}
