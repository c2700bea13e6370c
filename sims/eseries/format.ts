/**
 * How the simulated array answers: each object as the SANtricity Web Services REST API lists
 * it (field names and string-typed numbers as the real API has them), and the error body.
 *
 * @module
 */
import type { SimError } from './routing.js';
import type { EseriesSimState } from './state.js';
import { NULL_REF, type SimConsistencyGroup, type SimHost, type SimHostGroup, type SimImage, type SimMapping, type SimPool, type SimSnapshotGroup, type SimSnapshotVolume, type SimSystem, type SimVolume } from './types.js';

/** The storage system as `storage-systems` lists it. */
export function systemJson(s: EseriesSimState, sy: SimSystem): Record<string, unknown> {
  return {
    id: sy.id,
    name: 'eseries-sim',
    wwn: '600A098000A4B28D000000005D2F1C3A',
    status: sy.status,
    passwordStatus: sy.passwordStatus,
    passwordSet: s.options.arrayPassword !== undefined,
    fwVersion: '08.40.00.00',
    chassisSerialNumber: '021633012345',
    ip1: sy.controllerAddresses[0] ?? null,
    ip2: sy.controllerAddresses[1] ?? null,
    controllerAddresses: sy.controllerAddresses,
    model: '2800',
  };
}

/** A pool as `storage-pools` lists it (capacities in bytes, as strings). */
export function poolJson(s: EseriesSimState, p: SimPool): Record<string, unknown> {
  const used = s.usedBytes(p);
  return {
    id: p.id,
    volumeGroupRef: p.id,
    label: p.label,
    name: p.label,
    raidLevel: p.raidLevel,
    diskPool: p.diskPool,
    totalRaidedSpace: String(p.total),
    usedSpace: String(used),
    freeSpace: String(p.total - used),
    securityType: p.encrypted ? 'enabled' : 'capable',
    driveMediaType: p.media,
    drivePhysicalType: 'sas',
    state: 'complete',
    offline: false,
  };
}

/** A volume as `ssc/volumes` lists it, with its mapping. */
export function volumeJson(s: EseriesSimState, v: SimVolume): Record<string, unknown> {
  const pool = s.pools.find((p) => p.id === v.poolRef);
  const m = s.mappingOf(v.id);
  const mappings = m ? [mappingJson(m)] : [];
  return {
    id: v.id,
    volumeRef: v.id,
    label: v.label,
    name: v.label,
    worldWideName: v.wwn,
    wwn: v.wwn,
    capacity: String(v.capacity),
    totalSizeInBytes: String(v.capacity),
    volumeGroupRef: v.poolRef,
    currentManager: v.currentManager,
    preferredManager: v.currentManager,
    listOfMappings: mappings,
    mapped: mappings.length > 0,
    objectType: v.thin ? 'thinVolume' : 'volume',
    thinProvisioned: v.thin,
    diskPool: pool?.diskPool ?? false,
    status: 'optimal',
    flashCached: v.flashCache,
    dataAssurance: v.dataAssurance,
    cacheSettings: { readCacheEnable: v.readCache, writeCacheEnable: v.writeCache },
    segmentSize: 131072,
    blkSize: 512,
  };
}

/** A LUN mapping as `volume-mappings` lists it. */
export function mappingJson(m: SimMapping): Record<string, unknown> {
  return {
    lunMappingRef: m.id,
    id: m.id,
    lun: m.lun,
    ssid: parseInt(m.volumeRef.slice(-4), 16),
    perms: 15,
    volumeRef: m.volumeRef,
    type: 'all',
    mapRef: m.mapRef,
  };
}

/** A host as `hosts` lists it. */
export function hostJson(h: SimHost): Record<string, unknown> {
  return {
    hostRef: h.id,
    id: h.id,
    label: h.label,
    name: h.label,
    clusterRef: h.clusterRef,
    hostTypeIndex: h.hostTypeIndex,
    hostSidePorts: h.ports.map((p) => ({ type: p.type, address: p.address, label: p.label })),
    initiators: h.ports.map((p) => ({ nodeName: { iscsiNodeName: p.address }, label: p.label })),
    isSAControlled: false,
    confirmLUNMappingCreation: false,
  };
}

/** A snapshot group as `snapshot-groups` lists it. */
export function groupJson(s: EseriesSimState, g: SimSnapshotGroup): Record<string, unknown> {
  const count = [...s.images.values()].filter((i) => i.groupRef === g.id).length;
  return {
    id: g.id,
    pitGroupRef: g.id,
    label: g.label,
    name: g.label,
    baseVolume: g.baseVolume,
    snapshotCount: count,
    consistencyGroup: g.cgRef !== null,
    consistencyGroupRef: g.cgRef ?? NULL_REF,
    repositoryVolume: g.repositoryRef,
    fullWarnThreshold: 99,
    autoDeleteLimit: 0,
    repFullPolicy: 'failbasewrites',
    status: 'optimal',
  };
}

/** A snapshot image as `snapshot-images` lists it (sequence number and timestamp as strings). */
export function imageJson(i: SimImage): Record<string, unknown> {
  return {
    id: i.id,
    pitRef: i.id,
    pitGroupRef: i.groupRef,
    baseVol: i.baseVol,
    pitSequenceNumber: String(i.seq),
    pitTimestamp: String(Math.floor(i.timestamp / 1000)),
    consistencyGroupId: i.cgRef ?? NULL_REF,
    status: 'optimal',
    pitCapacity: String(i.capacity),
  };
}

/** A snapshot volume (view) as `snapshot-volumes` lists it. */
export function viewJson(v: SimSnapshotVolume): Record<string, unknown> {
  return {
    id: v.id,
    viewRef: v.id,
    label: v.label,
    name: v.label,
    basePIT: v.basePIT,
    baseVol: v.baseVol,
    accessMode: 'readOnly',
    capacity: String(v.capacity),
    viewSequenceNumber: '1',
    status: 'optimal',
  };
}

/** A consistency group as `consistency-groups` lists it. */
export function cgJson(s: EseriesSimState, c: SimConsistencyGroup): Record<string, unknown> {
  return {
    id: c.id,
    cgRef: c.id,
    label: c.label,
    name: c.label,
    fullWarnThreshold: 75,
    autoDeleteLimit: 0,
    repFullPolicy: 'failbasewrites',
    rollbackPriority: 'medium',
    uniqueSequenceNumber: [...new Set([...s.images.values()].filter((i) => i.cgRef === c.id).map((i) => i.seq))].sort((a, b) => a - b),
  };
}

/** A host group as `host-groups` lists it. */
export function hostGroupJson(g: SimHostGroup): Record<string, unknown> {
  return { clusterRef: g.id, id: g.id, label: g.label, name: g.label };
}

/** The array's error body: `errorMessage`, `localizedMessage`, `retcode`, `codeType`. */
export function errorBody(e: SimError): Record<string, unknown> {
  return { errorMessage: e.message, localizedMessage: e.message, retcode: e.retcode, codeType: e.codeType };
}
