/**
 * The shapes of the SANtricity Web Services simulator: its start options, the array objects
 * it keeps (volumes, pools, snapshot groups / images / views, copy jobs, hosts, host groups,
 * mappings, consistency groups, the storage system), the hooks a real data path plugs into,
 * and the faults tests inject.
 *
 * @module
 */

/** The 40-zero reference the array uses for "no object". */
export const NULL_REF = '0000000000000000000000000000000000000000';
/** Highest LUN id of a mapping. */
export const MAX_LUN = 255;
/** Snapshot images a snapshot group holds at most. */
export const MAX_IMAGES_PER_GROUP = 32;
/** Snapshot groups a volume has at most. */
export const MAX_GROUPS_PER_VOLUME = 4;

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

/** A storage pool: `total` bytes; thick expansions on a RAID group run a DVE until `dve` says. */
export interface SimPool {
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

/** A snapshot group of `baseVolume`, with its repository volume; `cgRef` for a consistency-group member. */
export interface SimSnapshotGroup {
  id: string;
  label: string;
  baseVolume: string;
  cgRef: string | null;
  repositoryRef: string;
}

/** A snapshot image; `seq` orders images (a consistency-group snapshot shares one across members). */
export interface SimImage {
  id: string;
  groupRef: string;
  baseVol: string;
  seq: number;
  timestamp: number;
  capacity: number;
  cgRef: string | null;
}

/** A snapshot volume (a view of image `basePIT`), or a member of consistency-group view `cgViewRef`. */
export interface SimSnapshotVolume {
  id: string;
  label: string;
  basePIT: string;
  baseVol: string;
  capacity: number;
  cgViewRef: string | null;
}

/** A volume copy job; its status follows from `createdAt` and the simulator's copy timings. */
export interface SimCopyJob {
  id: string;
  sourceId: string;
  targetId: string;
  createdAt: number;
  outcome: 'complete' | 'failed' | 'halted';
  completed: boolean;
}

/** A host with its initiator ports; `clusterRef` is its host group or `NULL_REF`. */
export interface SimHost {
  id: string;
  label: string;
  clusterRef: string;
  hostTypeIndex: number;
  ports: { type: string; address: string; label: string }[];
}

/** A host group. */
export interface SimHostGroup {
  id: string;
  label: string;
}

/** A LUN mapping of volume `volumeRef` to a host or host group `mapRef`. */
export interface SimMapping {
  id: string;
  lun: number;
  volumeRef: string;
  mapRef: string;
}

/** A consistency group and its member volume refs. */
export interface SimConsistencyGroup {
  id: string;
  label: string;
  seq: number;
  members: string[];
}

/** A consistency-group view of the snapshot with sequence number `seq`. */
export interface SimCgView {
  id: string;
  cgRef: string;
  label: string;
  seq: number;
}

/** The (single) storage system the simulator serves. */
export interface SimSystem {
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

