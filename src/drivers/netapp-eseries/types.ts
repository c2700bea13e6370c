/**
 * The shapes the E-Series driver works with: the Cinder-side records it receives beyond the
 * generic {@link DriverVolume} (volumes with pool, group and extra specs; groups and group
 * snapshots) and the SANtricity Web Services objects it reads back from the array (the subset
 * of fields the driver uses, named as the REST API names them).
 *
 * @module
 */
import { NotFoundError } from '../../errors.js';
import type { DriverVolume } from '../driver.js';

/** Bytes in a GiB: the array reports capacities in bytes, Cinder sizes are whole GiB. */
export const GIB = 1024 ** 3;

/** Volume fields Cinder passes that the generic {@link DriverVolume} does not name. */
export interface EseriesVolume extends DriverVolume {
  /** Cinder's `host@backend#pool`; the pool part chooses the storage pool. */
  host?: string | null;
  /** Generic group (consistency group) the volume belongs to. */
  group_id?: string | null;
  /** Source of a volume created from a snapshot / clone (used by create group from source). */
  snapshot_id?: string | null;
  source_volid?: string | null;
  /** Volume-type extra specs (`netapp_thin_provisioned`, `netapp:read_cache`, ...). */
  volume_type?: { extra_specs?: Record<string, unknown> } | null;
  extra_specs?: Record<string, unknown>;
}

/** A generic volume group (Cinder `Group`), backed by an E-Series consistency group. */
export interface DriverGroup {
  id: string;
  name?: string | null;
}

/** A group snapshot (Cinder `GroupSnapshot`). */
export interface DriverGroupSnapshot {
  id: string;
  group_id: string;
}

/** A per-object status update, as Cinder's group methods return. */
export interface ObjectUpdate {
  id: string;
  status: string;
  provider_id?: string | null;
}

/** Extra driver options that are not configuration. */
export interface EseriesDriverOptions {
  /** Random source in [0, 1) for LUN choice (tests inject a deterministic one). Default `Math.random`. */
  random?: () => number;
}

/** A volume as `ssc/volumes` reports it (thick or thin). Capacities are byte counts in strings. */
export interface EsVolume {
  id: string;
  volumeRef: string;
  label: string;
  worldWideName: string;
  capacity: string;
  volumeGroupRef: string;
  /** Reference of the controller that owns the volume now. */
  currentManager: string;
  listOfMappings: EsMapping[];
  mapped: boolean;
  /** `volume` or `thinVolume`. */
  objectType: string;
  thinProvisioned?: boolean;
  diskPool?: boolean;
}

/** A storage pool (`storage-pools`): a Dynamic Disk Pool or a RAID volume group. Capacities in bytes. */
export interface EsPool {
  id: string;
  volumeGroupRef: string;
  label: string;
  raidLevel: string;
  totalRaidedSpace: string;
  usedSpace: string;
  diskPool: boolean;
  securityType?: string;
}

/** A pool's storage-service capabilities (`ssc/pools`). */
export interface EsSscPool {
  poolId: string;
  name: string;
  encrypted?: boolean;
  spindleSpeed?: string;
  flashCacheCapable?: boolean;
  dataAssuranceCapable?: boolean;
  raidLevel?: string;
  thinProvisioningCapable?: boolean;
  pool?: { driveMediaType?: string; drivePhysicalType?: string };
}

/** A LUN mapping of a volume to a host or host group (`mapRef`). The array allows one per volume. */
export interface EsMapping {
  lunMappingRef: string;
  lun: number;
  volumeRef: string;
  mapRef: string;
}

/** A host: its initiator ports, host type and host group (`clusterRef`, `NULL_REF` for none). */
export interface EsHost {
  hostRef: string;
  label: string;
  clusterRef: string;
  hostTypeIndex: number;
  hostSidePorts: { type: string; address: string; label: string }[];
}

/** A host group (`host-groups`). */
export interface EsHostGroup {
  clusterRef: string;
  label: string;
}

/** A host type of the array (`host-types`): `index` is what a host records. */
export interface EsHostType {
  index: number;
  code: string;
  name: string;
}

/** A snapshot group: the images of one base volume, with a repository. */
export interface EsSnapshotGroup {
  id: string;
  pitGroupRef: string;
  label: string;
  baseVolume: string;
  snapshotCount: number;
  consistencyGroup: boolean;
}

/** A snapshot image (a point in time, "PIT"). Sequence numbers are decimal strings. */
export interface EsImage {
  id: string;
  pitRef: string;
  pitGroupRef: string;
  baseVol: string;
  pitSequenceNumber: string;
  pitTimestamp: string;
  /** The consistency group the image was taken through, or null / `NULL_REF`. */
  consistencyGroupId: string | null;
  pitCapacity?: string;
}

/** A snapshot volume (a view of an image, `snapshot-volumes`). */
export interface EsView {
  id: string;
  label: string;
  basePIT: string;
}

/** A consistency group (`consistency-groups`). */
export interface EsCg {
  id: string;
  cgRef: string;
  label: string;
}

/** One configured iSCSI portal of the array, with the controller that serves it. */
export interface EsPortal {
  ip: string;
  port: number;
  iqn: string;
  controller: string;
}

/** Bytes to GiB, rounded to two decimals (the stats' unit). */
export function gib(bytes: string | number): number {
  return Math.round((Number(bytes) / GIB) * 100) / 100;
}

/** True for the array's "no such object" answer (the client maps 404 to {@link NotFoundError}). */
export function isNotFound(err: unknown): boolean {
  return err instanceof NotFoundError;
}
