/**
 * A stateful simulator of the NetApp SANtricity Web Services REST API (proxy or embedded), as
 * far as Brick's E-Series driver uses it.
 *
 * Upstream Cinder never had a REST simulator (its tests replace the client with canned JSON),
 * so this one is written from the endpoint, body and field tables in
 * `shared/research/drivers.md` §1. It keeps the array's state (storage system, pools with
 * capacity, thick and thin volumes, snapshot groups / images / views, copy jobs that advance
 * over time, hosts, host groups, host types, LUN mappings, iSCSI target settings, persistent
 * records, consistency groups) and reproduces the array's refusals: 422 bodies
 * (`{errorMessage, localizedMessage, retcode, codeType}`), 404 for missing objects, 424 when
 * the storage system is offline, 401 for bad credentials, capacity exhaustion, LUN collisions,
 * the one-mapping-per-volume rule and the oldest-first rule for snapshot images.
 *
 * Tests and `brick sim eseries` start it with {@link startEseriesSimulator}; faults are injected
 * through the returned {@link EseriesSimulator.state}.
 *
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse, type RequestListener } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';

/** The 40-zero reference the array uses for "no object". */
export const NULL_REF = '0000000000000000000000000000000000000000';
const GIB = 1024 ** 3;
const MAX_LUN = 255;
const MAX_IMAGES_PER_GROUP = 32;
const MAX_GROUPS_PER_VOLUME = 4;

/** A pool as configured when the simulator starts. */
export interface SimPoolSpec {
  label: string;
  /** Raided capacity in GiB. */
  totalGiB: number;
  /** Dynamic Disk Pool (thin capable) or RAID volume group. Default: true when raidLevel is raidDiskPool. */
  raidLevel?: 'raidDiskPool' | 'raid0' | 'raid1' | 'raid3' | 'raid5' | 'raid6';
  driveMediaType?: 'hdd' | 'ssd';
  encrypted?: boolean;
}

/** One iSCSI port of the simulated array. */
export interface SimPortalSpec {
  ip: string;
  port?: number;
  /** Controller letter: 'A' or 'B'. */
  controller: 'A' | 'B';
  /** A port that is not configured (the driver must skip it). */
  unconfigured?: boolean;
}

/** Hooks the simulator calls when mappings change, e.g. to export a real LUN through LIO in the lab. */
export interface SimBackingHooks {
  /** A volume was mapped, or its mapping target changed. `initiators` are the IQNs that may now see it. */
  onMappingChanged?(event: { volume: SimVolume; lun: number; initiators: string[] }): Promise<void> | void;
  /** A volume's mapping was removed. */
  onUnmapped?(event: { volume: SimVolume; lun: number }): Promise<void> | void;
  /** A volume was deleted. */
  onVolumeDeleted?(volume: SimVolume): Promise<void> | void;
  /** A copy job completed: `target` now holds `source`'s data (as of snapshot image `sourceImageId` when the source was a view). */
  onCopyComplete?(event: { sourceVolume: SimVolume; target: SimVolume; sourceImageId?: string }): Promise<void> | void;
  /** A volume's capacity grew. */
  onExtended?(volume: SimVolume): Promise<void> | void;
  /** A snapshot image was deleted. */
  onSnapshotDeleted?(imageId: string): Promise<void> | void;
  /** A snapshot image was taken of `volume`. */
  onSnapshot?(event: { volume: SimVolume; imageId: string }): Promise<void> | void;
}

/** Options of {@link startEseriesSimulator}. */
export interface EseriesSimulatorOptions {
  /** TCP port; default 0 (a free port). */
  port?: number;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Web Services user (HTTP Basic). Default `rw`. */
  login?: string;
  /** Web Services password (HTTP Basic). Default `rw`. */
  password?: string;
  /** The storage array's own password; when set, `storedPassword` must match it. Default: none (any). */
  arrayPassword?: string;
  /** `proxy` (arrays are registered by POST storage-systems) or `embedded` (one system, id `1`). Default proxy. */
  mode?: 'proxy' | 'embedded';
  /** Web Services version reported by /devmgr/utils/about. Default `02.00.9000.0003`. */
  version?: string;
  /** Controller management addresses (embedded mode's system lists them). */
  controllerAddresses?: string[];
  /** Pools; default one DDP `DDP` (2048 GiB) and one RAID 6 group `RG6` (1024 GiB). */
  pools?: SimPoolSpec[];
  /** iSCSI ports; default 127.0.0.1 on controller A and 127.0.0.2 on controller B, port 3260. */
  portals?: SimPortalSpec[];
  /** The array's iSCSI target IQN. */
  targetIqn?: string;
  /** How long a copy job stays `pending`, in ms. Default 30. */
  copyPendingMs?: number;
  /** How long a copy job stays `inProgress` after that, in ms. Default 120. */
  copyDurationMs?: number;
  /** How long a thick expansion on a RAID group shows `remappingDve`, in ms. Default 80. */
  dveDurationMs?: number;
  /** Hooks for a real data path (the lab's LIO backing). */
  backing?: SimBackingHooks;
  /** Serve HTTPS with this PEM key and certificate instead of HTTP. */
  tls?: { key: string; cert: string };
}

/** A volume (thick or thin) in the simulator's state. */
export interface SimVolume {
  id: string;
  label: string;
  wwn: string;
  capacity: number;
  poolRef: string;
  thin: boolean;
  /** Repository volumes of snapshot groups (label `repos_NNNN`). */
  repository: boolean;
  currentManager: string;
  createdAt: number;
  flashCache: boolean;
  dataAssurance: boolean;
  readCache: boolean;
  writeCache: boolean;
}

interface SimPool {
  id: string;
  label: string;
  raidLevel: string;
  total: number;
  diskPool: boolean;
  media: 'hdd' | 'ssd';
  encrypted: boolean;
  /** Pending DVE operations: volume ref -> end time (ms epoch). */
  dve: Map<string, number>;
}

interface SimSnapshotGroup {
  id: string;
  label: string;
  baseVolume: string;
  cgRef: string | null;
  repositoryRef: string;
}

interface SimImage {
  id: string;
  groupRef: string;
  baseVol: string;
  seq: number;
  timestamp: number;
  capacity: number;
  cgRef: string | null;
}

interface SimSnapshotVolume {
  id: string;
  label: string;
  basePIT: string;
  baseVol: string;
  capacity: number;
  cgViewRef: string | null;
}

interface SimCopyJob {
  id: string;
  sourceId: string;
  targetId: string;
  createdAt: number;
  outcome: 'complete' | 'failed' | 'halted';
  completed: boolean;
}

interface SimHost {
  id: string;
  label: string;
  clusterRef: string;
  hostTypeIndex: number;
  ports: { type: string; address: string; label: string }[];
}

interface SimHostGroup {
  id: string;
  label: string;
}

interface SimMapping {
  id: string;
  lun: number;
  volumeRef: string;
  mapRef: string;
}

interface SimConsistencyGroup {
  id: string;
  label: string;
  seq: number;
  members: string[];
}

interface SimCgView {
  id: string;
  cgRef: string;
  label: string;
  seq: number;
}

interface SimSystem {
  id: string;
  controllerAddresses: string[];
  status: 'optimal' | 'needsAttn' | 'offline' | 'neverContacted';
  passwordStatus: 'valid' | 'invalid' | 'unknown';
}

/** One injected fault: the next `times` requests matching `method` and `path` get `status` and `body`. */
export interface SimFault {
  method?: string;
  /** Matched against the request path (without the query). */
  path: RegExp | string;
  /** HTTP status, 0 to destroy the connection without answering, or -1 to never answer. */
  status: number;
  body?: unknown;
  /** How many requests it applies to; default 1. */
  times?: number;
  /** Let the array act on the request first, then answer with the fault (a lost answer). */
  afterHandling?: boolean;
}

/** A request the simulator received (for tests that assert on what the driver sent). */
export interface SimRequestRecord {
  method: string;
  path: string;
  body: unknown;
  /** The Authorization header was present and valid. */
  authorized: boolean;
}

/** The simulator's state, exposed for inspection and fault injection. */
export class EseriesSimState {
  readonly options: Required<Omit<EseriesSimulatorOptions, 'backing' | 'arrayPassword' | 'port' | 'host' | 'tls'>> & {
    arrayPassword: string | undefined;
    backing: SimBackingHooks | undefined;
  };
  system: SimSystem | undefined;
  readonly pools: SimPool[] = [];
  readonly volumes = new Map<string, SimVolume>();
  readonly snapshotGroups = new Map<string, SimSnapshotGroup>();
  readonly images = new Map<string, SimImage>();
  readonly snapshotVolumes = new Map<string, SimSnapshotVolume>();
  readonly copyJobs = new Map<string, SimCopyJob>();
  readonly hosts = new Map<string, SimHost>();
  readonly hostGroups = new Map<string, SimHostGroup>();
  readonly mappings = new Map<string, SimMapping>();
  readonly consistencyGroups = new Map<string, SimConsistencyGroup>();
  readonly cgViews = new Map<string, SimCgView>();
  readonly persistentRecords = new Map<string, string>();
  readonly keyValues = new Map<string, unknown>();
  /** Last iSCSI target settings posted (the secret is kept, as the array keeps it). */
  targetSettings: { enableChapAuthentication: boolean; chapSecret: string | null; alias: string; authMethod: string } = {
    enableChapAuthentication: false,
    chapSecret: null,
    alias: '',
    authMethod: 'none',
  };
  /** Faults waiting to fire. */
  readonly faults: SimFault[] = [];
  /** Every request received, in order. */
  readonly requests: SimRequestRecord[] = [];
  /** Outcome of the next copy jobs created (then reset to `complete`). */
  nextCopyOutcome: 'complete' | 'failed' | 'halted' = 'complete';
  private counter = 0;
  private imageSeq = 0;
  private repoCounter = 0;

  constructor(options: EseriesSimulatorOptions) {
    this.options = {
      login: options.login ?? 'rw',
      password: options.password ?? 'rw',
      arrayPassword: options.arrayPassword,
      mode: options.mode ?? 'proxy',
      version: options.version ?? '02.00.9000.0003',
      controllerAddresses: options.controllerAddresses ?? ['10.113.1.10', '10.113.1.11'],
      pools: options.pools ?? [
        { label: 'DDP', totalGiB: 2048, raidLevel: 'raidDiskPool', driveMediaType: 'ssd' },
        { label: 'RG6', totalGiB: 1024, raidLevel: 'raid6', driveMediaType: 'hdd' },
      ],
      portals: options.portals ?? [
        { ip: '127.0.0.1', controller: 'A' },
        { ip: '127.0.0.2', controller: 'B' },
      ],
      targetIqn: options.targetIqn ?? 'iqn.1992-08.com.netapp:2800.600a098000a4b28d000000005d2f1c3a',
      copyPendingMs: options.copyPendingMs ?? 30,
      copyDurationMs: options.copyDurationMs ?? 120,
      dveDurationMs: options.dveDurationMs ?? 80,
      backing: options.backing,
    };
    for (const p of this.options.pools) {
      const raidLevel = p.raidLevel ?? 'raidDiskPool';
      this.pools.push({
        id: this.ref('04'),
        label: p.label,
        raidLevel,
        total: p.totalGiB * GIB,
        diskPool: raidLevel === 'raidDiskPool',
        media: p.driveMediaType ?? 'hdd',
        encrypted: p.encrypted ?? false,
        dve: new Map(),
      });
    }
    if (this.options.mode === 'embedded') {
      this.system = {
        id: '1',
        controllerAddresses: this.options.controllerAddresses,
        status: 'optimal',
        passwordStatus: 'valid',
      };
    }
  }

  /** A fresh 40-hex-digit object reference whose first byte says what kind of object it is. */
  ref(kind: string): string {
    this.counter += 1;
    return `${kind}000000600A098000A4B28D${this.counter.toString(16).toUpperCase().padStart(14, '0')}`;
  }

  /** The controller reference of controller `A` or `B`. */
  controllerRef(letter: 'A' | 'B'): string {
    return letter === 'A' ? '070000000000000000000001' : '070000000000000000000002';
  }

  /** Inject a fault (see {@link SimFault}). */
  injectFault(fault: SimFault): void {
    this.faults.push({ times: 1, ...fault });
  }

  /** Bytes used in a pool: volumes and repositories. */
  usedBytes(pool: SimPool): number {
    let used = 0;
    for (const v of this.volumes.values()) {
      if (v.poolRef !== pool.id) continue;
      used += v.thin ? Math.min(v.capacity, 4 * GIB) : v.capacity;
    }
    return used;
  }

  nextLabel(prefix: string): string {
    this.repoCounter += 1;
    return `${prefix}${this.repoCounter.toString().padStart(4, '0')}`;
  }

  nextImageSeq(): number {
    this.imageSeq += 1;
    return this.imageSeq;
  }

  /** The volume whose ref, label or WWN is `key`. */
  findVolume(key: string): SimVolume | undefined {
    const direct = this.volumes.get(key);
    if (direct) return direct;
    for (const v of this.volumes.values()) {
      if (v.label === key || v.wwn === key.toUpperCase()) return v;
    }
    return undefined;
  }

  /** The host whose iSCSI port address is `iqn`. */
  hostByInitiator(iqn: string): SimHost | undefined {
    for (const h of this.hosts.values()) if (h.ports.some((p) => p.address.toLowerCase() === iqn.toLowerCase())) return h;
    return undefined;
  }

  /** The mapping of volume `volumeRef`, if any (the array allows one). */
  mappingOf(volumeRef: string): SimMapping | undefined {
    for (const m of this.mappings.values()) if (m.volumeRef === volumeRef) return m;
    return undefined;
  }

  /** The initiator IQNs that can see a mapping target (a host, or every member of a host group). */
  initiatorsOf(mapRef: string): string[] {
    const host = this.hosts.get(mapRef);
    if (host) return host.ports.map((p) => p.address);
    const out: string[] = [];
    for (const h of this.hosts.values()) if (h.clusterRef === mapRef) out.push(...h.ports.map((p) => p.address));
    return out;
  }

  /** LUNs in use for a host (its own mappings and its group's) or a group (its own and every member's). */
  lunsInUse(targetRef: string, excludeMapping?: string): Set<number> {
    const used = new Set<number>();
    const refs = new Set<string>([targetRef]);
    const host = this.hosts.get(targetRef);
    if (host && host.clusterRef !== NULL_REF) refs.add(host.clusterRef);
    if (this.hostGroups.has(targetRef)) for (const h of this.hosts.values()) if (h.clusterRef === targetRef) refs.add(h.id);
    for (const m of this.mappings.values()) if (refs.has(m.mapRef) && m.id !== excludeMapping) used.add(m.lun);
    return used;
  }
}

const HOST_TYPES: { index: number; code: string; name: string }[] = [
  { index: 0, code: 'FactoryDefault', name: 'FactoryDefault' },
  { index: 1, code: 'W2KNETNCL', name: 'Windows 2000/Server 2003/Server 2008 Non-Clustered' },
  { index: 2, code: 'SOL', name: 'Solaris' },
  { index: 3, code: 'ONTAP_RDAC', name: 'ONTAP_RDAC' },
  { index: 5, code: 'LNX', name: 'Linux' },
  { index: 6, code: 'LnxALUA', name: 'LnxALUA' },
  { index: 8, code: 'W2KNETCL', name: 'Windows 2000/Server 2003/Server 2008 Clustered' },
  { index: 10, code: 'VmwTPGSALUA', name: 'VmwTPGSALUA' },
  { index: 17, code: 'AIX', name: 'AIX MPIO' },
  { index: 23, code: 'WinTPGSALUA', name: 'WinTPGSALUA' },
  { index: 24, code: 'LnxTPGSALUA', name: 'LnxTPGSALUA' },
  { index: 26, code: 'ONTAP_ALUA', name: 'ONTAP_ALUA' },
  { index: 27, code: 'LnxTPGSALUA_SF', name: 'LnxTPGSALUA_SF' },
  { index: 28, code: 'LnxDHALUA', name: 'LnxDHALUA' },
  { index: 29, code: 'LnxTPGSALUA_PM', name: 'LnxTPGSALUA_PM' },
];

/** An error the array answers with. */
class SimError extends Error {
  constructor(
    readonly status: number,
    readonly retcode: string,
    message: string,
    readonly codeType = 'symbol',
  ) {
    super(message);
  }
}

function notFound(kind: string, id: string): SimError {
  return new SimError(404, 'objectNotFound', `${kind} ${id} was not found`, 'webservice');
}

function invalid(retcode: string, message: string): SimError {
  return new SimError(422, retcode, message);
}

type Params = Record<string, string>;
type Handler = (p: Params, body: unknown, query: URLSearchParams) => unknown | Promise<unknown>;
interface Route {
  method: string;
  pattern: RegExp;
  names: string[];
  handler: Handler;
  /** Needs a registered storage system with this id (`sid` param) that is not offline. */
  system: boolean;
}

function asRecord(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid('invalidParameters', 'request body must be a JSON object');
  return body as Record<string, unknown>;
}

function str(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (typeof v !== 'string' || v === '') throw invalid('invalidParameters', `${key} is required`);
  return v;
}

function unitBytes(size: unknown, unit: unknown): number {
  const n = typeof size === 'string' ? Number(size) : size;
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) throw invalid('invalidParameters', 'size must be a positive number');
  const u = typeof unit === 'string' ? unit.toLowerCase() : 'gb';
  const mult: Record<string, number> = { bytes: 1, b: 1, kb: 1024, mb: 1024 ** 2, gb: GIB, tb: 1024 ** 4 };
  const m = mult[u];
  if (m === undefined) throw invalid('invalidParameters', `unknown sizeUnit ${u}`);
  return Math.round(n * m);
}

/** Builds the REST routes over a state. */
function buildRoutes(s: EseriesSimState): Route[] {
  const routes: Route[] = [];
  const add = (method: string, path: string, handler: Handler, system = true): void => {
    const names: string[] = [];
    const pattern = new RegExp(
      '^' +
        path.replace(/\/$/, '').replace(/\{(\w+)\}/g, (_m, n: string) => {
          names.push(n);
          return '([^/]+)';
        }) +
        '/?$',
    );
    routes.push({ method, pattern, names, handler, system });
  };
  const base = '/devmgr/v2';
  const sys = `${base}/storage-systems/{sid}`;
  const hooks = (): SimBackingHooks => s.options.backing ?? {};

  const systemJson = (sy: SimSystem): Record<string, unknown> => ({
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
  });
  const poolJson = (p: SimPool): Record<string, unknown> => {
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
  };
  const volumeJson = (v: SimVolume): Record<string, unknown> => {
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
  };
  const mappingJson = (m: SimMapping): Record<string, unknown> => ({
    lunMappingRef: m.id,
    id: m.id,
    lun: m.lun,
    ssid: parseInt(m.volumeRef.slice(-4), 16),
    perms: 15,
    volumeRef: m.volumeRef,
    type: 'all',
    mapRef: m.mapRef,
  });
  const hostJson = (h: SimHost): Record<string, unknown> => ({
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
  });
  const groupJson = (g: SimSnapshotGroup): Record<string, unknown> => {
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
  };
  const imageJson = (i: SimImage): Record<string, unknown> => ({
    id: i.id,
    pitRef: i.id,
    pitGroupRef: i.groupRef,
    baseVol: i.baseVol,
    pitSequenceNumber: String(i.seq),
    pitTimestamp: String(Math.floor(i.timestamp / 1000)),
    consistencyGroupId: i.cgRef ?? NULL_REF,
    status: 'optimal',
    pitCapacity: String(i.capacity),
  });
  const viewJson = (v: SimSnapshotVolume): Record<string, unknown> => ({
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
  });
  const cgJson = (c: SimConsistencyGroup): Record<string, unknown> => ({
    id: c.id,
    cgRef: c.id,
    label: c.label,
    name: c.label,
    fullWarnThreshold: 75,
    autoDeleteLimit: 0,
    repFullPolicy: 'failbasewrites',
    rollbackPriority: 'medium',
    uniqueSequenceNumber: [...new Set([...s.images.values()].filter((i) => i.cgRef === c.id).map((i) => i.seq))].sort((a, b) => a - b),
  });
  const copyStatus = (j: SimCopyJob): { status: string; percentComplete: number } => {
    const elapsed = Date.now() - j.createdAt;
    if (elapsed < s.options.copyPendingMs) return { status: 'pending', percentComplete: 0 };
    if (elapsed < s.options.copyPendingMs + s.options.copyDurationMs) {
      return { status: 'inProgress', percentComplete: Math.floor(((elapsed - s.options.copyPendingMs) * 100) / s.options.copyDurationMs) };
    }
    return { status: j.outcome, percentComplete: j.outcome === 'complete' ? 100 : 42 };
  };

  const getVolume = (key: string): SimVolume => {
    const v = s.findVolume(key);
    if (!v || v.repository) throw notFound('volume', key);
    return v;
  };
  const getPool = (ref: string): SimPool => {
    const p = s.pools.find((x) => x.id === ref);
    if (!p) throw notFound('storage pool', ref);
    return p;
  };
  const checkFree = (pool: SimPool, bytes: number): void => {
    if (pool.total - s.usedBytes(pool) < bytes) {
      throw invalid('insufficientCapacity', `insufficient free capacity in pool ${pool.label} for ${bytes} bytes`);
    }
  };
  const checkLabel = (label: string, except?: string): void => {
    for (const v of s.volumes.values()) {
      if (v.label === label && v.id !== except) throw invalid('duplicateLabel', `a volume labelled ${label} already exists`);
    }
  };
  const removeVolume = async (v: SimVolume): Promise<void> => {
    for (const g of [...s.snapshotGroups.values()]) if (g.baseVolume === v.id) deleteSnapshotGroup(g);
    for (const c of s.consistencyGroups.values()) c.members = c.members.filter((m) => m !== v.id);
    s.volumes.delete(v.id);
    await hooks().onVolumeDeleted?.(v);
  };
  const deleteSnapshotGroup = (g: SimSnapshotGroup): void => {
    for (const i of [...s.images.values()]) {
      if (i.groupRef !== g.id) continue;
      for (const sv of [...s.snapshotVolumes.values()]) if (sv.basePIT === i.id) s.snapshotVolumes.delete(sv.id);
      s.images.delete(i.id);
      void hooks().onSnapshotDeleted?.(i.id);
    }
    s.volumes.delete(g.repositoryRef);
    s.snapshotGroups.delete(g.id);
  };
  const createSnapshotGroup = (base: SimVolume, label: string, cgRef: string | null, repositoryPercentage: number): SimSnapshotGroup => {
    const groups = [...s.snapshotGroups.values()].filter((g) => g.baseVolume === base.id);
    if (groups.length >= MAX_GROUPS_PER_VOLUME) {
      throw invalid('maxSnapshotGroupsExceeded', `volume ${base.label} already has ${MAX_GROUPS_PER_VOLUME} snapshot groups`);
    }
    const pool = getPool(base.poolRef);
    const repoBytes = Math.max(Math.ceil((base.capacity * repositoryPercentage) / 100 / GIB), 1) * GIB;
    checkFree(pool, Math.min(repoBytes, pool.total));
    const repo: SimVolume = {
      id: s.ref('02'),
      label: s.nextLabel('repos_'),
      wwn: wwnFor(s),
      capacity: repoBytes,
      poolRef: pool.id,
      thin: false,
      repository: true,
      currentManager: base.currentManager,
      createdAt: Date.now(),
      flashCache: false,
      dataAssurance: false,
      readCache: true,
      writeCache: true,
    };
    s.volumes.set(repo.id, repo);
    const g: SimSnapshotGroup = { id: s.ref('32'), label, baseVolume: base.id, cgRef, repositoryRef: repo.id };
    s.snapshotGroups.set(g.id, g);
    return g;
  };
  const takeImage = async (g: SimSnapshotGroup, seq: number, cgRef: string | null): Promise<SimImage> => {
    const count = [...s.images.values()].filter((i) => i.groupRef === g.id).length;
    if (count >= MAX_IMAGES_PER_GROUP) throw invalid('maxSnapshotsExceeded', `snapshot group ${g.label} already holds ${MAX_IMAGES_PER_GROUP} images`);
    const base = s.volumes.get(g.baseVolume)!;
    const img: SimImage = { id: s.ref('34'), groupRef: g.id, baseVol: base.id, seq, timestamp: Date.now(), capacity: base.capacity, cgRef };
    s.images.set(img.id, img);
    await hooks().onSnapshot?.({ volume: base, imageId: img.id });
    return img;
  };
  const notifyMapping = async (m: SimMapping): Promise<void> => {
    const v = s.volumes.get(m.volumeRef);
    if (v) await hooks().onMappingChanged?.({ volume: v, lun: m.lun, initiators: s.initiatorsOf(m.mapRef) });
  };

  // ---- about, storage systems ----
  add('GET', '/devmgr/utils/about', () => ({
    runningAsProxy: s.options.mode === 'proxy',
    version: s.options.version,
    systemId: s.system?.id ?? null,
  }), false);
  add('GET', `${base}/storage-systems`, () => (s.system ? [systemJson(s.system)] : []), false);
  add('POST', `${base}/storage-systems`, (_p, body) => {
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
      return systemJson(s.system);
    }
    s.system = { id: randomUUID(), controllerAddresses: addrs as string[], status: 'optimal', passwordStatus: pwStatus() };
    return { ...systemJson(s.system), alreadyExists: false };
  }, false);
  add('GET', sys, () => systemJson(s.system!), false);
  add('POST', sys, (_p, body) => {
    const b = asRecord(body);
    if ('storedPassword' in b) {
      const pw = b.storedPassword;
      s.system!.passwordStatus =
        s.options.arrayPassword === undefined ? 'valid' : typeof pw === 'string' && pw === s.options.arrayPassword ? 'valid' : 'invalid';
    }
    return systemJson(s.system!);
  }, false);
  add('GET', `${sys}/hardware-inventory`, () => ({
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

  // ---- persistent records, key-values, counters ----
  add('GET', `${sys}/persistent-records/{key}`, (p) => {
    const v = s.persistentRecords.get(decodeURIComponent(p.key!));
    if (v === undefined) throw notFound('persistent record', p.key!);
    return { key: decodeURIComponent(p.key!), value: v };
  });
  add('GET', `${sys}/persistent-records`, () => [...s.persistentRecords].map(([key, value]) => ({ key, value })));
  add('POST', `${sys}/persistent-records`, (_p, body) => {
    const b = asRecord(body);
    const key = str(b, 'key');
    if (typeof b.value !== 'string') throw invalid('invalidParameters', 'value must be a string');
    s.persistentRecords.set(key, b.value);
    return { key, value: b.value };
  });
  add('DELETE', `${sys}/persistent-records/{key}`, (p) => {
    if (!s.persistentRecords.delete(decodeURIComponent(p.key!))) throw notFound('persistent record', p.key!);
    return null;
  });
  add('POST', `${base}/key-values/{key}`, (p, body) => {
    s.keyValues.set(decodeURIComponent(p.key!), body);
    return body;
  }, false);

  // ---- pools ----
  add('GET', `${sys}/storage-pools`, () => s.pools.map(poolJson));
  add('GET', `${sys}/storage-pools/{ref}`, (p) => poolJson(getPool(p.ref!)));
  add('GET', `${sys}/storage-pools/{ref}/action-progress`, (p) => {
    const pool = getPool(p.ref!);
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
  add('GET', `${sys}/ssc/pools`, () =>
    s.pools.map((p) => ({
      poolId: p.id,
      name: p.label,
      pool: poolJson(p),
      flashCacheCapable: true,
      dataAssuranceCapable: true,
      encrypted: p.encrypted,
      thinProvisioningCapable: p.diskPool,
      spindleSpeed: p.media === 'ssd' ? 'spindleSpeedSSD' : 'spindleSpeed10k',
      raidLevel: p.raidLevel,
      availableFreeExtentCapacities: [String(p.total - s.usedBytes(p))],
    })),
  );

  // ---- volumes ----
  const listVolumes = (): unknown => [...s.volumes.values()].filter((v) => !v.repository || true).map(volumeJson);
  add('GET', `${sys}/ssc/volumes`, listVolumes);
  add('GET', `${sys}/volumes`, () => [...s.volumes.values()].filter((v) => !v.thin).map(volumeJson));
  add('GET', `${sys}/thin-volumes`, () => [...s.volumes.values()].filter((v) => v.thin).map(volumeJson));
  add('GET', `${sys}/ssc/volumes/{key}`, (p) => volumeJson(getVolume(decodeURIComponent(p.key!))));
  add('GET', `${sys}/volumes/{key}`, (p) => volumeJson(getVolume(p.key!)));
  add('POST', `${sys}/ssc/volumes`, (_p, body) => {
    const b = asRecord(body);
    const pool = getPool(str(b, 'poolId'));
    const label = str(b, 'name');
    if (label.length > 30) throw invalid('invalidParameters', 'volume labels are at most 30 characters');
    checkLabel(label);
    const bytes = unitBytes(b.size, b.sizeUnit);
    const thin = b.thinProvision === true;
    if (thin && !pool.diskPool) throw invalid('invalidParameters', `pool ${pool.label} is not a disk pool; thin volumes need one`);
    checkFree(pool, thin ? Math.min(bytes, 4 * GIB) : bytes);
    const count = [...s.volumes.values()].filter((v) => v.poolRef === pool.id).length;
    const v: SimVolume = {
      id: s.ref('02'),
      label,
      wwn: wwnFor(s),
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
    return volumeJson(v);
  });
  add('POST', `${sys}/ssc/volumes/{id}`, (p, body) => {
    const b = asRecord(body);
    const v = getVolume(p.id!);
    if (b.name !== undefined) {
      const label = str(b, 'name');
      checkLabel(label, v.id);
      v.label = label;
    }
    return volumeJson(v);
  });
  const deleteVolumeRoute = async (p: Params): Promise<null> => {
    const v = getVolume(p.id!);
    if (s.mappingOf(v.id)) throw invalid('volumeMapped', `volume ${v.label} is mapped; remove its mapping first`);
    for (const j of s.copyJobs.values()) {
      if ((j.sourceId === v.id || j.targetId === v.id) && ['pending', 'inProgress'].includes(copyStatus(j).status)) {
        throw invalid('volumeInCopy', `volume ${v.label} takes part in a running volume copy`);
      }
    }
    await removeVolume(v);
    return null;
  };
  add('DELETE', `${sys}/ssc/volumes/{id}`, deleteVolumeRoute);
  add('DELETE', `${sys}/volumes/{id}`, deleteVolumeRoute);
  add('DELETE', `${sys}/thin-volumes/{id}`, deleteVolumeRoute);
  add('POST', `${sys}/volumes/{id}/expand`, async (p, body) => {
    const b = asRecord(body);
    const v = getVolume(p.id!);
    if (v.thin) throw invalid('invalidVolumeType', `volume ${v.label} is thin; use thin-volumes/{id}/expand`);
    const bytes = unitBytes(b.expansionSize, b.sizeUnit);
    if (bytes <= v.capacity) throw invalid('invalidParameters', `expansionSize must exceed the current capacity (${v.capacity} bytes)`);
    const pool = getPool(v.poolRef);
    checkFree(pool, bytes - v.capacity);
    v.capacity = bytes;
    if (!pool.diskPool && s.options.dveDurationMs > 0) pool.dve.set(v.id, Date.now() + s.options.dveDurationMs);
    await hooks().onExtended?.(v);
    return volumeJson(v);
  });
  add('POST', `${sys}/thin-volumes/{id}/expand`, async (p, body) => {
    const b = asRecord(body);
    const v = getVolume(p.id!);
    if (!v.thin) throw invalid('invalidVolumeType', `volume ${v.label} is not thin`);
    const bytes = unitBytes(b.newVirtualSize, b.sizeUnit);
    if (bytes <= v.capacity) throw invalid('invalidParameters', 'newVirtualSize must exceed the current virtual size');
    v.capacity = bytes;
    await hooks().onExtended?.(v);
    return volumeJson(v);
  });

  // ---- snapshot groups, images, views ----
  add('GET', `${sys}/snapshot-groups`, () => [...s.snapshotGroups.values()].map(groupJson));
  add('GET', `${sys}/snapshot-groups/{id}`, (p) => {
    const g = s.snapshotGroups.get(p.id!);
    if (!g) throw notFound('snapshot group', p.id!);
    return groupJson(g);
  });
  add('POST', `${sys}/snapshot-groups`, (_p, body) => {
    const b = asRecord(body);
    const base = getVolume(str(b, 'baseMappableObjectId'));
    const pct = typeof b.repositoryPercentage === 'number' ? b.repositoryPercentage : 20;
    return groupJson(createSnapshotGroup(base, str(b, 'name'), null, pct));
  });
  add('POST', `${sys}/snapshot-groups/{id}`, (p, body) => {
    const g = s.snapshotGroups.get(p.id!);
    if (!g) throw notFound('snapshot group', p.id!);
    const b = asRecord(body);
    if (b.name !== undefined) g.label = str(b, 'name');
    return groupJson(g);
  });
  add('DELETE', `${sys}/snapshot-groups/{id}`, (p) => {
    const g = s.snapshotGroups.get(p.id!);
    if (!g) throw notFound('snapshot group', p.id!);
    if (g.cgRef) throw invalid('invalidParameters', 'a consistency-group member snapshot group is removed with its member volume');
    deleteSnapshotGroup(g);
    return null;
  });
  add('GET', `${sys}/snapshot-images`, () => [...s.images.values()].map(imageJson));
  add('GET', `${sys}/snapshot-images/{id}`, (p) => {
    const i = s.images.get(p.id!);
    if (!i) throw notFound('snapshot image', p.id!);
    return imageJson(i);
  });
  add('POST', `${sys}/snapshot-images`, async (_p, body) => {
    const b = asRecord(body);
    const g = s.snapshotGroups.get(str(b, 'groupId'));
    if (!g) throw notFound('snapshot group', String(b.groupId));
    if (g.cgRef) throw invalid('invalidParameters', 'images of consistency-group members are taken through the consistency group');
    return imageJson(await takeImage(g, s.nextImageSeq(), null));
  });
  add('DELETE', `${sys}/snapshot-images/{id}`, (p) => {
    const i = s.images.get(p.id!);
    if (!i) throw notFound('snapshot image', p.id!);
    const older = [...s.images.values()].some((o) => o.groupRef === i.groupRef && o.seq < i.seq);
    if (older) throw invalid('notOldestPit', 'only the oldest snapshot image of a snapshot group can be deleted');
    for (const sv of [...s.snapshotVolumes.values()]) if (sv.basePIT === i.id) s.snapshotVolumes.delete(sv.id);
    s.images.delete(i.id);
      void hooks().onSnapshotDeleted?.(i.id);
    return null;
  });
  add('GET', `${sys}/snapshot-volumes`, () => [...s.snapshotVolumes.values()].map(viewJson));
  add('GET', `${sys}/snapshot-volumes/{id}`, (p) => {
    const v = s.snapshotVolumes.get(p.id!);
    if (!v) throw notFound('snapshot volume', p.id!);
    return viewJson(v);
  });
  add('POST', `${sys}/snapshot-volumes`, (_p, body) => {
    const b = asRecord(body);
    const img = s.images.get(str(b, 'snapshotImageId'));
    if (!img) throw notFound('snapshot image', String(b.snapshotImageId));
    if (img.cgRef) throw invalid('invalidParameters', 'views of consistency-group images are created through consistency-groups/{id}/views');
    const v: SimSnapshotVolume = { id: s.ref('35'), label: str(b, 'name'), basePIT: img.id, baseVol: img.baseVol, capacity: img.capacity, cgViewRef: null };
    s.snapshotVolumes.set(v.id, v);
    return viewJson(v);
  });
  add('DELETE', `${sys}/snapshot-volumes/{id}`, (p) => {
    if (!s.snapshotVolumes.delete(p.id!)) throw notFound('snapshot volume', p.id!);
    return null;
  });

  // ---- volume copy jobs ----
  add('POST', `${sys}/volume-copy-jobs`, (_p, body) => {
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
  });
  add('GET', `${sys}/volume-copy-jobs/{id}`, async (p) => {
    const j = s.copyJobs.get(p.id!);
    if (!j) throw notFound('volume copy job', p.id!);
    const st = copyStatus(j);
    if (st.status === 'complete' && !j.completed) {
      j.completed = true;
      const view = s.snapshotVolumes.get(j.sourceId);
      const source = s.volumes.get(view ? view.baseVol : j.sourceId);
      const target = s.volumes.get(j.targetId);
      if (source && target) await hooks().onCopyComplete?.({ sourceVolume: source, target, ...(view ? { sourceImageId: view.basePIT } : {}) });
    } else if (st.status !== 'pending' && st.status !== 'inProgress') {
      j.completed = true;
    }
    return { volcopyRef: j.id, id: j.id, sourceVolume: j.sourceId, targetVolume: j.targetId, ...st };
  });
  add('DELETE', `${sys}/volume-copy-jobs/{id}`, (p) => {
    if (!s.copyJobs.delete(p.id!)) throw notFound('volume copy job', p.id!);
    return null;
  });

  // ---- hosts, host groups, host types ----
  add('GET', `${sys}/host-types`, () => HOST_TYPES.map((t) => ({ ...t, id: String(t.index), used: false })));
  add('GET', `${sys}/hosts`, () => [...s.hosts.values()].map(hostJson));
  add('GET', `${sys}/hosts/{id}`, (p) => {
    const h = s.hosts.get(p.id!);
    if (!h) throw notFound('host', p.id!);
    return hostJson(h);
  });
  const hostTypeIndex = (v: unknown): number => {
    const idx = typeof v === 'number' ? v : v && typeof v === 'object' ? (v as { index?: unknown }).index : undefined;
    if (typeof idx !== 'number' || !HOST_TYPES.some((t) => t.index === idx)) throw invalid('invalidParameters', 'hostType must name a known host-type index');
    return idx;
  };
  const joinGroup = async (h: SimHost, groupRef: string): Promise<void> => {
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
    for (const m of s.mappings.values()) if (m.mapRef === groupRef || m.mapRef === old) await notifyMapping(m);
  };
  add('POST', `${sys}/hosts`, async (_p, body) => {
    const b = asRecord(body);
    const label = str(b, 'name');
    if ([...s.hosts.values()].some((h) => h.label === label)) throw invalid('duplicateLabel', `a host labelled ${label} already exists`);
    const idx = hostTypeIndex(b.hostType);
    const ports = Array.isArray(b.ports) ? b.ports : [];
    const parsed = ports.map((x) => {
      const r = asRecord(x);
      const address = str(r, 'port');
      if (s.hostByInitiator(address)) throw invalid('duplicatePort', `host port ${address} is already defined on another host`);
      return { type: typeof r.type === 'string' ? r.type : 'iscsi', address, label: typeof r.label === 'string' ? r.label : address };
    });
    const h: SimHost = { id: s.ref('84'), label, clusterRef: NULL_REF, hostTypeIndex: idx, ports: parsed };
    s.hosts.set(h.id, h);
    if (typeof b.groupId === 'string' && b.groupId !== NULL_REF) await joinGroup(h, b.groupId);
    return hostJson(h);
  });
  add('POST', `${sys}/hosts/{id}`, async (p, body) => {
    const h = s.hosts.get(p.id!);
    if (!h) throw notFound('host', p.id!);
    const b = asRecord(body);
    if (b.hostType !== undefined) h.hostTypeIndex = hostTypeIndex(b.hostType);
    if (typeof b.groupId === 'string') await joinGroup(h, b.groupId);
    return hostJson(h);
  });
  add('DELETE', `${sys}/hosts/{id}`, (p) => {
    const h = s.hosts.get(p.id!);
    if (!h) throw notFound('host', p.id!);
    if ([...s.mappings.values()].some((m) => m.mapRef === h.id)) throw invalid('hostHasMappings', `host ${h.label} still has mappings`);
    s.hosts.delete(h.id);
    return null;
  });
  add('GET', `${sys}/host-groups`, () => [...s.hostGroups.values()].map((g) => ({ clusterRef: g.id, id: g.id, label: g.label, name: g.label })));
  add('GET', `${sys}/host-groups/{id}`, (p) => {
    const g = s.hostGroups.get(p.id!);
    if (!g) throw notFound('host group', p.id!);
    return { clusterRef: g.id, id: g.id, label: g.label, name: g.label };
  });
  add('POST', `${sys}/host-groups`, (_p, body) => {
    const b = asRecord(body);
    const label = str(b, 'name');
    if ([...s.hostGroups.values()].some((g) => g.label === label)) throw invalid('duplicateLabel', `a host group labelled ${label} already exists`);
    const g: SimHostGroup = { id: s.ref('85'), label };
    s.hostGroups.set(g.id, g);
    return { clusterRef: g.id, id: g.id, label: g.label, name: g.label };
  });

  // ---- mappings ----
  const checkLun = (lun: unknown, targetRef: string, exclude?: string): number => {
    if (typeof lun !== 'number' || !Number.isInteger(lun) || lun < 0 || lun > MAX_LUN) throw invalid('invalidLun', `LUN must be an integer 0..${MAX_LUN}`);
    const used = s.lunsInUse(targetRef, exclude);
    if (used.has(lun)) throw invalid('lunCollision', `LUN ${lun} is already in use for ${targetRef}`);
    if (used.size >= MAX_LUN + 1) throw invalid('maxLunsExceeded', `no more mappings allowed for ${targetRef}`);
    return lun;
  };
  add('GET', `${sys}/volume-mappings`, () => [...s.mappings.values()].map(mappingJson));
  add('GET', `${sys}/volume-mappings/{id}`, (p) => {
    const m = s.mappings.get(p.id!);
    if (!m) throw notFound('volume mapping', p.id!);
    return mappingJson(m);
  });
  add('POST', `${sys}/volume-mappings`, async (_p, body) => {
    const b = asRecord(body);
    const v = getVolume(str(b, 'mappableObjectId'));
    const target = str(b, 'targetId');
    if (!s.hosts.has(target) && !s.hostGroups.has(target)) throw notFound('host or host group', target);
    if (s.mappingOf(v.id)) throw invalid('volumeAlreadyMapped', `volume ${v.label} is already mapped`);
    for (const j of s.copyJobs.values()) if (j.targetId === v.id && !j.completed) throw invalid('volumeInCopy', `volume ${v.label} is a copy target`);
    const lun = checkLun(b.lun, target);
    const m: SimMapping = { id: s.ref('88'), lun, volumeRef: v.id, mapRef: target };
    s.mappings.set(m.id, m);
    await notifyMapping(m);
    return mappingJson(m);
  });
  add('DELETE', `${sys}/volume-mappings/{id}`, async (p) => {
    const m = s.mappings.get(p.id!);
    if (!m) throw notFound('volume mapping', p.id!);
    s.mappings.delete(m.id);
    const v = s.volumes.get(m.volumeRef);
    if (v) await hooks().onUnmapped?.({ volume: v, lun: m.lun });
    return null;
  });
  add('POST', `${sys}/symbol/moveLUNMapping`, async (_p, body) => {
    const b = asRecord(body);
    const m = s.mappings.get(str(b, 'lunMappingRef'));
    if (!m) return 'invalidMappingRef';
    const target = str(b, 'mapRef');
    if (!s.hosts.has(target) && !s.hostGroups.has(target)) return 'invalidMapRef';
    try {
      checkLun(b.lun, target, m.id);
    } catch {
      return 'lunCollision';
    }
    m.lun = b.lun as number;
    m.mapRef = target;
    await notifyMapping(m);
    return 'ok';
  });

  // ---- iSCSI target settings ----
  add('GET', `${sys}/iscsi/target-settings`, () => ({
    targetRef: '90000000600A098000A4B28D00000000',
    nodeName: { iscsiNodeName: s.options.targetIqn },
    alias: { iscsiAlias: s.targetSettings.alias },
    auth: { authMethod: s.targetSettings.authMethod, chapSecret: null },
    portals: s.options.portals.filter((p) => !p.unconfigured).map((p) => ({ ipAddress: { addressType: 'ipv4', ipv4Address: p.ip }, tcpListenPort: p.port ?? 3260 })),
  }));
  add('POST', `${sys}/iscsi/target-settings`, (_p, body) => {
    const b = asRecord(body);
    if (b.iqn !== undefined && b.iqn !== s.options.targetIqn) throw invalid('invalidParameters', `iqn ${String(b.iqn)} is not this array's target`);
    const enable = b.enableChapAuthentication === true;
    if (enable && (typeof b.chapSecret !== 'string' || b.chapSecret.length < 12 || b.chapSecret.length > 57)) {
      throw invalid('invalidChapSecret', 'CHAP secrets are 12 to 57 characters');
    }
    s.targetSettings = {
      enableChapAuthentication: enable,
      chapSecret: enable ? (b.chapSecret as string) : null,
      alias: typeof b.alias === 'string' ? b.alias : '',
      authMethod: enable ? 'chap' : 'none',
    };
    return { targetRef: '90000000600A098000A4B28D00000000', auth: { authMethod: s.targetSettings.authMethod } };
  });

  // ---- consistency groups ----
  const getCg = (id: string): SimConsistencyGroup => {
    const c = s.consistencyGroups.get(id);
    if (!c) throw notFound('consistency group', id);
    return c;
  };
  add('GET', `${sys}/consistency-groups`, () => [...s.consistencyGroups.values()].map(cgJson));
  add('GET', `${sys}/consistency-groups/{id}`, (p) => cgJson(getCg(p.id!)));
  add('POST', `${sys}/consistency-groups`, (_p, body) => {
    const b = asRecord(body);
    const label = str(b, 'name');
    if ([...s.consistencyGroups.values()].some((c) => c.label === label)) throw invalid('duplicateLabel', `a consistency group labelled ${label} already exists`);
    const c: SimConsistencyGroup = { id: s.ref('2A'), label, seq: 0, members: [] };
    s.consistencyGroups.set(c.id, c);
    return cgJson(c);
  });
  add('DELETE', `${sys}/consistency-groups/{id}`, (p) => {
    const c = getCg(p.id!);
    for (const g of [...s.snapshotGroups.values()]) if (g.cgRef === c.id) deleteSnapshotGroup(g);
    for (const v of [...s.cgViews.values()]) if (v.cgRef === c.id) s.cgViews.delete(v.id);
    s.consistencyGroups.delete(c.id);
    return null;
  });
  add('GET', `${sys}/consistency-groups/{id}/member-volumes`, (p) =>
    getCg(p.id!).members.map((m) => ({ consistencyGroupId: p.id, volumeId: m, baseVolumeName: s.volumes.get(m)?.label })),
  );
  add('POST', `${sys}/consistency-groups/{id}/member-volumes`, (p, body) => {
    const c = getCg(p.id!);
    const b = asRecord(body);
    const v = getVolume(str(b, 'volumeId'));
    if (c.members.includes(v.id)) throw invalid('alreadyMember', `volume ${v.label} is already a member`);
    for (const other of s.consistencyGroups.values()) {
      if (other.members.includes(v.id)) throw invalid('alreadyMember', `volume ${v.label} is a member of another consistency group`);
    }
    const pct = typeof b.repositoryPercent === 'number' ? b.repositoryPercent : 20;
    createSnapshotGroup(v, s.nextLabel('CG_'), c.id, pct);
    c.members.push(v.id);
    return { consistencyGroupId: c.id, volumeId: v.id, baseVolumeName: v.label };
  });
  add('DELETE', `${sys}/consistency-groups/{id}/member-volumes/{vol}`, (p) => {
    const c = getCg(p.id!);
    if (!c.members.includes(p.vol!)) throw notFound('consistency group member', p.vol!);
    c.members = c.members.filter((m) => m !== p.vol);
    for (const g of [...s.snapshotGroups.values()]) if (g.cgRef === c.id && g.baseVolume === p.vol) deleteSnapshotGroup(g);
    return null;
  });
  add('GET', `${sys}/consistency-groups/{id}/snapshots`, (p) => {
    const c = getCg(p.id!);
    return [...s.images.values()].filter((i) => i.cgRef === c.id).map(imageJson);
  });
  add('POST', `${sys}/consistency-groups/{id}/snapshots`, async (p) => {
    const c = getCg(p.id!);
    if (c.members.length === 0) throw invalid('invalidParameters', `consistency group ${c.label} has no members`);
    c.seq += 1;
    const seq = s.nextImageSeq();
    const out: unknown[] = [];
    for (const m of c.members) {
      const g = [...s.snapshotGroups.values()].find((x) => x.cgRef === c.id && x.baseVolume === m)!;
      out.push(imageJson(await takeImage(g, seq, c.id)));
    }
    return out;
  });
  add('DELETE', `${sys}/consistency-groups/{id}/snapshots/{seq}`, (p) => {
    const c = getCg(p.id!);
    const seq = Number(p.seq);
    const imgs = [...s.images.values()].filter((i) => i.cgRef === c.id);
    if (!imgs.some((i) => i.seq === seq)) throw notFound('consistency group snapshot', p.seq!);
    if (imgs.some((i) => i.seq < seq)) throw invalid('notOldestPit', 'only the oldest consistency group snapshot can be deleted');
    for (const i of imgs) {
      if (i.seq !== seq) continue;
      for (const sv of [...s.snapshotVolumes.values()]) if (sv.basePIT === i.id) s.snapshotVolumes.delete(sv.id);
      s.images.delete(i.id);
      void hooks().onSnapshotDeleted?.(i.id);
    }
    return null;
  });
  add('POST', `${sys}/consistency-groups/{id}/views`, (p, body) => {
    const c = getCg(p.id!);
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
  });
  add('GET', `${sys}/consistency-groups/{id}/views/{view}/views`, (p) => {
    getCg(p.id!);
    if (!s.cgViews.has(p.view!)) throw notFound('consistency group view', p.view!);
    return [...s.snapshotVolumes.values()].filter((v) => v.cgViewRef === p.view).map(viewJson);
  });
  add('DELETE', `${sys}/consistency-groups/{id}/views/{view}`, (p) => {
    getCg(p.id!);
    if (!s.cgViews.delete(p.view!)) throw notFound('consistency group view', p.view!);
    for (const v of [...s.snapshotVolumes.values()]) if (v.cgViewRef === p.view) s.snapshotVolumes.delete(v.id);
    return null;
  });
  return routes;
}

function wwnFor(s: EseriesSimState): string {
  return `600A098000A4B28D${s.ref('00').slice(-16)}`.toUpperCase();
}

/** A running simulator. */
export interface EseriesSimulator {
  /** Base URL of the server, e.g. `http://127.0.0.1:41234` (the driver adds `/devmgr/v2`). */
  url: string;
  host: string;
  port: number;
  /** The array's state, for inspection and fault injection. */
  state: EseriesSimState;
  /** Stop listening and drop open connections. */
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = body === null || body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function errorBody(e: SimError): Record<string, unknown> {
  return { errorMessage: e.message, localizedMessage: e.message, retcode: e.retcode, codeType: e.codeType };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Start a SANtricity Web Services simulator on a loopback port.
 *
 * @returns the URL (no path; the driver's `netapp_webservice_path` `/devmgr/v2` is served under it), the state and `close()`.
 */
export async function startEseriesSimulator(options: EseriesSimulatorOptions = {}): Promise<EseriesSimulator> {
  const state = new EseriesSimState(options);
  const routes = buildRoutes(state);
  const expectedAuth = 'Basic ' + Buffer.from(`${state.options.login}:${state.options.password}`).toString('base64');

  const listener: RequestListener = (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://sim');
      const method = (req.method ?? 'GET').toUpperCase();
      const path = url.pathname;
      const raw = await readBody(req);
      let body: unknown = null;
      const authorized = req.headers.authorization === expectedAuth;
      try {
        body = raw === '' ? null : (JSON.parse(raw) as unknown);
      } catch {
        state.requests.push({ method, path, body: raw, authorized });
        send(res, 400, { errorMessage: 'malformed JSON body', retcode: 'invalidJson', codeType: 'webservice' });
        return;
      }
      state.requests.push({ method, path, body, authorized });
      const fault = state.faults.find((f) => (!f.method || f.method === method) && (typeof f.path === 'string' ? path.includes(f.path) : f.path.test(path)));
      if (fault && !fault.afterHandling) {
        fault.times = (fault.times ?? 1) - 1;
        if (fault.times <= 0) state.faults.splice(state.faults.indexOf(fault), 1);
        if (fault.status === -1) return;
        if (fault.status === 0) {
          req.socket.destroy();
          return;
        }
        send(res, fault.status, fault.body ?? { errorMessage: `injected fault ${fault.status}`, retcode: 'injected', codeType: 'webservice' });
        return;
      }
      if (!authorized) {
        res.setHeader('www-authenticate', 'Basic realm="devmgr"');
        send(res, 401, { errorMessage: 'Unauthorized', retcode: 'unauthorized', codeType: 'webservice' });
        return;
      }
      for (const r of routes) {
        if (r.method !== method) continue;
        const m = r.pattern.exec(path);
        if (!m) continue;
        const params: Params = {};
        r.names.forEach((n, i) => (params[n] = m[i + 1]!));
        try {
          if (params.sid !== undefined) {
            if (!state.system || state.system.id !== params.sid) throw notFound('storage system', params.sid);
            if (r.system && (state.system.status === 'offline' || state.system.status === 'neverContacted')) {
              send(res, 424, { errorMessage: 'The storage-system is offline', retcode: 'systemOffline', codeType: 'webservice' });
              return;
            }
          }
          const out = await r.handler(params, body, url.searchParams);
          if (fault) {
            fault.times = (fault.times ?? 1) - 1;
            if (fault.times <= 0) state.faults.splice(state.faults.indexOf(fault), 1);
            if (fault.status === 0) {
              req.socket.destroy();
              return;
            }
            send(res, fault.status, fault.body ?? { errorMessage: `injected fault ${fault.status}`, retcode: 'injected', codeType: 'webservice' });
            return;
          }
          send(res, method === 'POST' && path.endsWith('/storage-systems') ? 201 : out === null ? 204 : 200, out);
        } catch (err) {
          if (err instanceof SimError) send(res, err.status, errorBody(err));
          else send(res, 500, { errorMessage: `simulator failure: ${(err as Error).message}`, retcode: 'internalError', codeType: 'webservice' });
        }
        return;
      }
      send(res, 404, { errorMessage: `no resource ${method} ${path}`, retcode: 'resourceNotFound', codeType: 'webservice' });
    })();
  };
  const server = options.tls ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, listener) : createServer(listener);
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    host,
    port,
    state,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
