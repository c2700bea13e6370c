/**
 * The simulator's in-memory array: the storage system, pools with capacity, volumes and
 * repositories, snapshot groups / images / views, copy jobs, hosts, host groups, mappings,
 * consistency groups, persistent records and iSCSI target settings, with the operations
 * several resource families share (deleting a volume cascades to its snapshot groups; images
 * go with their views) and the array's refusals for them. Exposed to tests as
 * `EseriesSimulator.state` for inspection and fault injection.
 *
 * @module
 */
import { GIB, invalid, notFound } from './routing.js';
import {
  MAX_GROUPS_PER_VOLUME,
  MAX_IMAGES_PER_GROUP,
  NULL_REF,
  type EseriesSimulatorOptions,
  type SimBackingHooks,
  type SimCgView,
  type SimConsistencyGroup,
  type SimCopyJob,
  type SimFault,
  type SimHost,
  type SimHostGroup,
  type SimImage,
  type SimMapping,
  type SimPool,
  type SimRequestRecord,
  type SimSnapshotGroup,
  type SimSnapshotVolume,
  type SimSystem,
  type SimVolume,
} from './types.js';

/** The host types the simulated array knows (index, code, name), as a real array lists them. */
export const HOST_TYPES: { index: number; code: string; name: string }[] = [
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

  /** The next label `prefix` + a 4-digit counter (repositories, CG members, CG views). */
  nextLabel(prefix: string): string {
    this.repoCounter += 1;
    return `${prefix}${this.repoCounter.toString().padStart(4, '0')}`;
  }

  /** The next snapshot-image sequence number (array-wide, increasing). */
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

  /** The data-path hooks (none by default). */
  hooks(): SimBackingHooks {
    return this.options.backing ?? {};
  }

  /** A fresh world-wide name for a new volume. */
  newWwn(): string {
    return `600A098000A4B28D${this.ref('00').slice(-16)}`.toUpperCase();
  }

  /**
   * The user volume whose ref, label or WWN is `key` (repositories are not volumes to the API).
   * @throws {@link SimError} 404
   */
  getVolume(key: string): SimVolume {
    const v = this.findVolume(key);
    if (!v || v.repository) throw notFound('volume', key);
    return v;
  }

  /**
   * The pool `ref`.
   * @throws {@link SimError} 404
   */
  getPool(ref: string): SimPool {
    const p = this.pools.find((x) => x.id === ref);
    if (!p) throw notFound('storage pool', ref);
    return p;
  }

  /**
   * Refuse when `pool` has less than `bytes` free.
   * @throws {@link SimError} 422 `insufficientCapacity`
   */
  checkFree(pool: SimPool, bytes: number): void {
    if (pool.total - this.usedBytes(pool) < bytes) {
      throw invalid('insufficientCapacity', `insufficient free capacity in pool ${pool.label} for ${bytes} bytes`);
    }
  }

  /**
   * Refuse a volume label another volume (other than `except`) has.
   * @throws {@link SimError} 422 `duplicateLabel`
   */
  checkLabel(label: string, except?: string): void {
    for (const v of this.volumes.values()) {
      if (v.label === label && v.id !== except) throw invalid('duplicateLabel', `a volume labelled ${label} already exists`);
    }
  }

  /** The status and progress of a copy job now: `pending`, then `inProgress`, then its outcome. */
  copyStatus(j: SimCopyJob): { status: string; percentComplete: number } {
    const { copyPendingMs, copyDurationMs } = this.options;
    const elapsed = Date.now() - j.createdAt;
    if (elapsed < copyPendingMs) return { status: 'pending', percentComplete: 0 };
    if (elapsed < copyPendingMs + copyDurationMs) {
      return { status: 'inProgress', percentComplete: Math.floor(((elapsed - copyPendingMs) * 100) / copyDurationMs) };
    }
    return { status: j.outcome, percentComplete: j.outcome === 'complete' ? 100 : 42 };
  }

  /** Delete a volume with its snapshot groups and consistency-group memberships. */
  async removeVolume(v: SimVolume): Promise<void> {
    for (const g of [...this.snapshotGroups.values()]) if (g.baseVolume === v.id) this.deleteSnapshotGroup(g);
    for (const c of this.consistencyGroups.values()) c.members = c.members.filter((m) => m !== v.id);
    this.volumes.delete(v.id);
    await this.hooks().onVolumeDeleted?.(v);
  }

  /** Delete an image and the snapshot volumes (views) of it. */
  deleteImage(i: SimImage): void {
    for (const sv of [...this.snapshotVolumes.values()]) if (sv.basePIT === i.id) this.snapshotVolumes.delete(sv.id);
    this.images.delete(i.id);
    void this.hooks().onSnapshotDeleted?.(i.id);
  }

  /** Delete a snapshot group with its images and repository volume. */
  deleteSnapshotGroup(g: SimSnapshotGroup): void {
    for (const i of [...this.images.values()]) if (i.groupRef === g.id) this.deleteImage(i);
    this.volumes.delete(g.repositoryRef);
    this.snapshotGroups.delete(g.id);
  }

  /**
   * A snapshot group of `base` with a repository of `repositoryPercentage` % of its capacity (at least 1 GiB).
   * @throws {@link SimError} 422 `maxSnapshotGroupsExceeded` or `insufficientCapacity`
   */
  createSnapshotGroup(base: SimVolume, label: string, cgRef: string | null, repositoryPercentage: number): SimSnapshotGroup {
    const groups = [...this.snapshotGroups.values()].filter((g) => g.baseVolume === base.id);
    if (groups.length >= MAX_GROUPS_PER_VOLUME) {
      throw invalid('maxSnapshotGroupsExceeded', `volume ${base.label} already has ${MAX_GROUPS_PER_VOLUME} snapshot groups`);
    }
    const pool = this.getPool(base.poolRef);
    const repoBytes = Math.max(Math.ceil((base.capacity * repositoryPercentage) / 100 / GIB), 1) * GIB;
    this.checkFree(pool, Math.min(repoBytes, pool.total));
    const repo: SimVolume = {
      id: this.ref('02'),
      label: this.nextLabel('repos_'),
      wwn: this.newWwn(),
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
    this.volumes.set(repo.id, repo);
    const g: SimSnapshotGroup = { id: this.ref('32'), label, baseVolume: base.id, cgRef, repositoryRef: repo.id };
    this.snapshotGroups.set(g.id, g);
    return g;
  }

  /**
   * Take an image in group `g` with sequence number `seq`.
   * @throws {@link SimError} 422 `maxSnapshotsExceeded` when the group is full
   */
  async takeImage(g: SimSnapshotGroup, seq: number, cgRef: string | null): Promise<SimImage> {
    const count = [...this.images.values()].filter((i) => i.groupRef === g.id).length;
    if (count >= MAX_IMAGES_PER_GROUP) throw invalid('maxSnapshotsExceeded', `snapshot group ${g.label} already holds ${MAX_IMAGES_PER_GROUP} images`);
    const base = this.volumes.get(g.baseVolume)!;
    const img: SimImage = { id: this.ref('34'), groupRef: g.id, baseVol: base.id, seq, timestamp: Date.now(), capacity: base.capacity, cgRef };
    this.images.set(img.id, img);
    await this.hooks().onSnapshot?.({ volume: base, imageId: img.id });
    return img;
  }

  /** Tell the data path who may see mapping `m` now. */
  async notifyMapping(m: SimMapping): Promise<void> {
    const v = this.volumes.get(m.volumeRef);
    if (v) await this.hooks().onMappingChanged?.({ volume: v, lun: m.lun, initiators: this.initiatorsOf(m.mapRef) });
  }
}
