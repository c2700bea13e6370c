/**
 * NetApp E-Series iSCSI volume driver over SANtricity Web Services (proxy or embedded), the
 * TypeScript counterpart of Cinder's `NetAppEseriesISCSIDriver` / `NetAppESeriesLibrary`
 * (Rocky, the last release that shipped it; research notes §1).
 *
 * Upstream behaviour kept: object labels are base32 of the Cinder UUIDs; snapshots are
 * snapshot images in per-volume snapshot groups (at most 32 images per group and 3 groups,
 * the 4th being reserved for clones) with a soft-delete index because the array only deletes
 * the oldest image; clones and volumes from snapshots are volume copy jobs from a read-only
 * snapshot view; multi-attach goes through the `cinder-multi-attach` host group.
 *
 * Upstream bugs fixed: TLS is verified by default; the `about` URL follows
 * `netapp_webservice_path`; host types are matched by index (codes such as `LNX` work);
 * `moveLUNMapping` gets the mapping reference; sequence numbers compare as numbers; a failed
 * snapshot only removes a snapshot group this call created; failed creates clean up the
 * partial volume; create-from-snapshot honours the requested pool; waits are bounded and
 * poll with `waitFor`; the CHAP secret is stable instead of re-generated on every attach;
 * temporary volumes are never garbage-collected behind the user's back; a terminate with no
 * connector removes the volume's mapping; multi-attach keeps the group mapping until the
 * last attached host detaches (tracked in the array's persistent records instead of
 * Cinder's volume status).
 *
 * @module
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BackendError,
  BrickError,
  InsufficientCapacityError,
  InvalidConfigError,
  InvalidInputError,
  InvalidStateError,
  NotFoundError,
  AuthenticationError,
  BackendUnreachableError,
} from '../../errors.js';
import { waitFor } from '../../host/retry.js';
import type { Logger } from '../../log.js';
import type { ConnectorProperties } from '../../initiator/properties.js';
import type {
  ConnectionInfo,
  DriverContext,
  DriverSnapshot,
  DriverVolume,
  ModelUpdate,
  PoolStats,
  TerminateOptions,
  VolumeDriver,
  VolumeStats,
} from '../driver.js';
import { EseriesRestClient } from './client.js';
import { parseEseriesConfig, type EseriesConfig } from './config.js';
import {
  HOST_TYPE_ALIASES,
  MAX_LUNS_PER_HOST,
  MAX_SNAPSHOT_COUNT,
  MAX_SNAPSHOT_GROUP_COUNT,
  MIN_CHAP_VERSION,
  MIN_REST_VERSION,
  MULTI_ATTACH_HOST_GROUP_NAME,
  NULL_REF,
  RESERVED_SNAPSHOT_GROUP_COUNT,
  SNAPSHOT_CLONE_GROUP_SUFFIX,
  compareNumeric,
  normaliseIqn,
  randomLabel,
  specBool,
  uuidToLabel,
  wsVersionAtLeast,
} from './utils.js';

const GIB = 1024 ** 3;
/** Persistent-record key of the snapshot soft-delete index (group id -> deleted image ids). */
export const SNAPSHOT_INDEX_KEY = 'brick-snapshots';
/** Persistent-record key of the consistency-group snapshot soft-delete index (CG id -> deleted sequence numbers). */
export const CG_SNAPSHOT_INDEX_KEY = 'brick-cg-snapshots';
/** Persistent-record key prefix of the multi-attach attachment lists (per volume ref). */
export const ATTACHMENTS_KEY_PREFIX = 'brick-attach-';

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

interface EsVolume {
  id: string;
  volumeRef: string;
  label: string;
  worldWideName: string;
  capacity: string;
  volumeGroupRef: string;
  currentManager: string;
  listOfMappings: EsMapping[];
  mapped: boolean;
  objectType: string;
  thinProvisioned?: boolean;
  diskPool?: boolean;
}
interface EsPool {
  id: string;
  volumeGroupRef: string;
  label: string;
  raidLevel: string;
  totalRaidedSpace: string;
  usedSpace: string;
  diskPool: boolean;
  securityType?: string;
}
interface EsSscPool {
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
interface EsMapping {
  lunMappingRef: string;
  lun: number;
  volumeRef: string;
  mapRef: string;
}
interface EsHost {
  hostRef: string;
  label: string;
  clusterRef: string;
  hostTypeIndex: number;
  hostSidePorts: { type: string; address: string; label: string }[];
}
interface EsHostGroup {
  clusterRef: string;
  label: string;
}
interface EsHostType {
  index: number;
  code: string;
  name: string;
}
interface EsSnapshotGroup {
  id: string;
  pitGroupRef: string;
  label: string;
  baseVolume: string;
  snapshotCount: number;
  consistencyGroup: boolean;
}
interface EsImage {
  id: string;
  pitRef: string;
  pitGroupRef: string;
  baseVol: string;
  pitSequenceNumber: string;
  pitTimestamp: string;
  consistencyGroupId: string | null;
  pitCapacity?: string;
}
interface EsView {
  id: string;
  label: string;
  basePIT: string;
}
interface EsCg {
  id: string;
  cgRef: string;
  label: string;
}
interface EsPortal {
  ip: string;
  port: number;
  iqn: string;
  controller: string;
}

function gib(bytes: string | number): number {
  return Math.round((Number(bytes) / GIB) * 100) / 100;
}

function isNotFound(err: unknown): boolean {
  return err instanceof NotFoundError;
}

/**
 * The E-Series iSCSI driver. Construct through the registry (`volume_driver: netapp_eseries`)
 * or directly with `(config, ctx, { random })`.
 */
export class NetAppEseriesISCSIDriver implements VolumeDriver {
  /** Driver name in the registry. */
  readonly driverName = 'netapp_eseries';
  /** Driver version reported in stats (upstream's library version). */
  static readonly VERSION = '1.0.0';
  readonly connectorProtocol = 'ISCSI';
  readonly useMultipath: boolean;
  /** The parsed configuration. */
  readonly config: EseriesConfig;
  /** The REST client (exposed for tests and diagnostics). */
  readonly client: EseriesRestClient;
  private readonly log: Logger;
  private readonly random: () => number;
  private hostType: EsHostType | undefined;
  private wsVersion = '';
  private embedded = false;
  private multiattachGroupRef: string | undefined;
  private cachedStats: VolumeStats | undefined;

  /**
   * @throws {@link InvalidConfigError} naming the key for a missing or invalid option (before any request)
   */
  constructor(
    rawConfig: Record<string, unknown>,
    private readonly ctx: DriverContext,
    options: EseriesDriverOptions = {},
  ) {
    this.config = parseEseriesConfig(rawConfig, ctx.backendName);
    this.useMultipath = this.config.useMultipath;
    this.log = ctx.host.logger.child({ driver: 'netapp_eseries', backend: ctx.backendName });
    this.client = new EseriesRestClient(this.config, this.log);
    this.random = options.random ?? Math.random;
  }

  /** True in embedded mode (the Web Services run on a controller), false behind a proxy. Known after {@link doSetup}. */
  get isEmbedded(): boolean {
    return this.embedded;
  }

  /** The storage-system id learnt at setup. */
  get systemId(): string | undefined {
    return this.client.systemId;
  }

  // ------------------------------------------------------------------ setup

  /**
   * Cinder `do_setup`: resolve the controllers, reach the Web Services (credentials are checked
   * here), refuse versions older than REST 1.4 (`01.54.9000.1`), register the array (proxy) or
   * find it (embedded), and create the multi-attach host group when enabled.
   * @throws {@link InvalidConfigError} (`netapp_controller_ips`) when a controller does not resolve
   * @throws {@link BackendUnreachableError} (`netapp_server_hostname`) when the Web Services cannot be reached
   * @throws {@link AuthenticationError} (`netapp_password`) for refused credentials
   * @throws {@link BackendError} for an unsupported Web Services version
   */
  async doSetup(): Promise<void> {
    const cfg = this.config;
    const resolved = new Set<string>();
    for (const c of cfg.controllerIps) {
      for (const a of await this.resolve(c, 'netapp_controller_ips')) resolved.add(a);
    }
    const server = await this.resolve(cfg.serverHostname, 'netapp_server_hostname').catch(() => [cfg.serverHostname]);
    this.embedded = server.some((a) => resolved.has(a));

    const about = await this.client.about();
    this.wsVersion = String(about?.version ?? '');
    if (!wsVersionAtLeast(this.wsVersion, MIN_REST_VERSION)) {
      throw new BackendError(
        `SANtricity Web Services at ${this.client.endpoint} is version ${this.wsVersion || 'unknown'}; the driver needs REST API 1.4 (${MIN_REST_VERSION}) or later`,
        { details: { version: this.wsVersion, minimum: MIN_REST_VERSION } },
      );
    }
    if (about.runningAsProxy === false) this.embedded = true;

    if (this.embedded) {
      const systems = await this.client.get<{ id: string }[]>('/storage-systems', { system: false });
      if (!Array.isArray(systems) || systems.length === 0 || !systems[0]?.id) {
        throw new BackendError(`the embedded Web Services at ${this.client.endpoint} report no storage system`);
      }
      this.client.systemId = systems[0].id;
    } else {
      const sys = await this.client.post<{ id: string }>(
        '/storage-systems',
        { controllerAddresses: cfg.controllerIps, wwn: null, password: cfg.saPassword ?? null },
        { system: false },
      );
      if (!sys?.id) throw new BackendError(`registering the storage system with ${this.client.endpoint} returned no id`);
      this.client.systemId = sys.id;
    }
    this.log.info({ system_id: this.client.systemId, version: this.wsVersion, embedded: this.embedded }, 'E-Series storage system ready');
    if (cfg.enableMultiattach) this.multiattachGroupRef = await this.ensureMultiattachGroup();
  }

  /**
   * Cinder `check_for_setup_error`: the storage system must accept the array password and be
   * online (polled every `netapp_poll_interval` for at most `netapp_sa_comm_timeout`); the host
   * type must exist on the array; at least one pool must match the pool pattern.
   * @throws {@link InvalidConfigError} (`netapp_host_type` / `netapp_pool_name_search_pattern`)
   * @throws {@link AuthenticationError} (`netapp_sa_password`) for an array password the array rejects
   * @throws {@link BackendUnreachableError} when the array stays offline or never contacted
   */
  async checkForSetupError(): Promise<void> {
    const cfg = this.config;
    await this.client.get('');
    if (cfg.saPassword !== undefined) await this.client.post('', { storedPassword: cfg.saPassword });
    let last: { status?: string; passwordStatus?: string } = {};
    try {
      await waitFor(
        async () => {
          last = await this.client.get<{ status: string; passwordStatus: string }>('');
          const pwOk = !['invalid', 'unknown'].includes(last.passwordStatus ?? '');
          const stOk = !['neverContacted', 'offline'].includes(last.status ?? '');
          return pwOk && stOk;
        },
        { timeoutMs: cfg.saCommTimeoutMs, intervalMs: cfg.pollIntervalMs, maxIntervalMs: cfg.pollIntervalMs, description: 'the storage system to become reachable' },
      );
    } catch (err) {
      if (!(err instanceof BrickError) || err.code !== 'RETRY_EXHAUSTED') throw err;
      if (last.passwordStatus === 'invalid' || last.passwordStatus === 'unknown') {
        throw new AuthenticationError(
          `the storage array's password status is "${last.passwordStatus}": ${cfg.saPassword === undefined ? 'the array has a password; set netapp_sa_password' : 'netapp_sa_password is incorrect'}`,
          { field: 'netapp_sa_password', details: { password_status: last.passwordStatus } },
        );
      }
      throw new BackendUnreachableError(`the storage system's status is "${last.status}" after ${cfg.saCommTimeoutMs} ms; the Web Services cannot manage it`, {
        details: { status: last.status },
      });
    }

    const wanted = HOST_TYPE_ALIASES[cfg.hostType] ?? cfg.hostType;
    const types = await this.client.get<EsHostType[]>('/host-types');
    const type = types.find((t) => t.code === wanted || t.name === wanted) ?? types.find((t) => t.code.toLowerCase() === wanted.toLowerCase());
    if (!type) {
      throw new InvalidConfigError(
        `invalid netapp_host_type: ${JSON.stringify(cfg.hostType)} is not a host type of this array (known codes: ${types.map((t) => t.code).join(', ')})`,
        { field: 'netapp_host_type' },
      );
    }
    this.hostType = type;
    if (!cfg.useMultipath) this.log.warn('use_multipath_for_image_xfer is false; E-Series arrays are meant to be used with multipath');
    if (cfg.useChapAuth && !wsVersionAtLeast(this.wsVersion, MIN_CHAP_VERSION)) {
      throw new InvalidConfigError(`invalid use_chap_auth: Web Services ${this.wsVersion} has no CHAP support (needs ${MIN_CHAP_VERSION})`, { field: 'use_chap_auth' });
    }

    const pools = await this.client.get<EsPool[]>('/storage-pools');
    const matching = pools.filter((p) => cfg.poolPattern.test(p.label));
    if (matching.length === 0) {
      throw new InvalidConfigError(
        `invalid netapp_pool_name_search_pattern: ${JSON.stringify(cfg.poolPatternText)} matches none of the array's pools (${pools.map((p) => p.label).join(', ') || 'none'})`,
        { field: 'netapp_pool_name_search_pattern' },
      );
    }
  }

  /** Release the HTTP connection pool. */
  async close(): Promise<void> {
    await this.client.close();
  }

  private async resolve(name: string, field: string): Promise<string[]> {
    if (isIP(name)) return [name];
    try {
      const res = await Promise.race([
        lookup(name, { all: true }),
        new Promise<never>((_r, reject) => setTimeout(() => reject(new Error('lookup timed out after 5000 ms')), 5000).unref()),
      ]);
      return res.map((a) => a.address);
    } catch (err) {
      throw new InvalidConfigError(`invalid ${field}: ${name} does not resolve (${(err as Error).message})`, { field });
    }
  }

  private requireHostType(): EsHostType {
    if (!this.hostType) throw new InvalidStateError('the E-Series driver is not set up: call checkForSetupError() after doSetup()');
    return this.hostType;
  }

  private async ensureMultiattachGroup(): Promise<string> {
    if (this.multiattachGroupRef) return this.multiattachGroupRef;
    const groups = await this.client.get<EsHostGroup[]>('/host-groups');
    const found = groups.find((g) => g.label === MULTI_ATTACH_HOST_GROUP_NAME);
    if (found) return (this.multiattachGroupRef = found.clusterRef);
    const created = await this.client.post<EsHostGroup>('/host-groups', { name: MULTI_ATTACH_HOST_GROUP_NAME });
    return (this.multiattachGroupRef = created.clusterRef);
  }

  // ------------------------------------------------------------------ lookups

  private async getVolumeByLabel(label: string): Promise<EsVolume> {
    return this.client.get<EsVolume>(`/ssc/volumes/${encodeURIComponent(label)}`);
  }

  private async findVolume(volume: DriverVolume, field = 'volume.id'): Promise<EsVolume> {
    const label = uuidToLabel(volume.id, field);
    try {
      return await this.getVolumeByLabel(label);
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError('volume', volume.id, { details: { label } });
      throw err;
    }
  }

  private async filteredPools(): Promise<EsPool[]> {
    const pools = await this.client.get<EsPool[]>('/storage-pools');
    return pools.filter((p) => this.config.poolPattern.test(p.label));
  }

  /**
   * The volume's extra specs: the `netapp*` keys of its admin metadata (how Brick's library
   * passes per-volume options), then Cinder's volume-type extra specs, then `extra_specs`.
   */
  private specs(volume: EseriesVolume): Record<string, unknown> {
    const fromMetadata = Object.fromEntries(Object.entries(volume.admin_metadata ?? {}).filter(([k]) => k.startsWith('netapp')));
    return { ...fromMetadata, ...(volume.volume_type?.extra_specs ?? {}), ...(volume.extra_specs ?? {}) };
  }

  private requestedPool(volume: EseriesVolume): string | undefined {
    const host = volume.host ?? undefined;
    if (host && host.includes('#')) return host.slice(host.lastIndexOf('#') + 1);
    return volume.admin_metadata?.pool;
  }

  /**
   * The pool for a new volume of `sizeGib`: the requested one (`#pool` of `volume.host`), else
   * `preferRef` if it fits, else the matching pool with the most free space that fits (only
   * disk pools for thin volumes).
   */
  private async choosePool(volume: EseriesVolume, sizeGib: number, thin: boolean, preferRef?: string): Promise<EsPool> {
    const pools = await this.filteredPools();
    const free = (p: EsPool): number => Number(p.totalRaidedSpace) - Number(p.usedSpace);
    const requested = this.requestedPool(volume);
    if (requested !== undefined) {
      const p = pools.find((x) => x.label === requested);
      if (!p) throw new InvalidInputError('volume.host', `pool ${JSON.stringify(requested)} does not exist or does not match netapp_pool_name_search_pattern`);
      if (thin && !p.diskPool) throw new InvalidInputError('volume.volume_type.extra_specs.netapp_thin_provisioned', `pool ${p.label} is not a disk pool and cannot hold thin volumes`);
      return p;
    }
    const candidates = pools.filter((p) => (!thin || p.diskPool) && (thin || free(p) >= sizeGib * GIB));
    const preferred = candidates.find((p) => p.volumeGroupRef === preferRef);
    if (preferred) return preferred;
    candidates.sort((a, b) => free(b) - free(a));
    if (candidates.length === 0) {
      throw new InsufficientCapacityError(`no ${thin ? 'disk pool' : 'pool'} matching netapp_pool_name_search_pattern has ${sizeGib} GiB free`, {
        details: { size_gb: sizeGib, thin },
      });
    }
    return candidates[0]!;
  }

  private checkSize(size: number, field: string): void {
    if (!Number.isInteger(size) || size < 1) throw new InvalidInputError(field, `${size} must be a positive whole number of GiB`);
  }

  // ------------------------------------------------------------------ volumes

  /**
   * Cinder `create_volume`: a thick or thin (DDP only) volume labelled base32(volume.id) in the
   * chosen pool. Extra specs: `netapp_thin_provisioned`, `netapp:read_cache`,
   * `netapp:write_cache`, `netapp_eseries_flash_read_cache`, `netapp_eseries_data_assurance`.
   * @returns `{ provider_id: volumeRef }`
   * @throws {@link InvalidInputError}, {@link InsufficientCapacityError}, {@link AlreadyExistsError}, {@link BackendError}
   */
  async createVolume(volume: EseriesVolume): Promise<ModelUpdate> {
    this.checkSize(volume.size, 'volume.size');
    const label = uuidToLabel(volume.id);
    const created = await this.createVolumeOnArray(volume, label, volume.size, this.specs(volume));
    if (volume.group_id) await this.addToConsistencyGroup(volume.group_id, created);
    return { provider_id: created.volumeRef };
  }

  private async createVolumeOnArray(volume: EseriesVolume, label: string, sizeGib: number, specs: Record<string, unknown>, preferPool?: string): Promise<EsVolume> {
    if (this.config.enableMultiattach) {
      const all = await this.client.get<EsVolume[]>('/ssc/volumes');
      if (all.filter((v) => !v.label.startsWith('repos_')).length >= MAX_LUNS_PER_HOST) {
        throw new InsufficientCapacityError(
          `with netapp_enable_multiattach the backend holds at most ${MAX_LUNS_PER_HOST} volumes, and the array already has that many`,
        );
      }
    }
    const thinSpec = specBool(specs.netapp_thin_provisioned);
    const thin = thinSpec ?? this.config.thinProvisionedDefault;
    const pool = await this.choosePool(volume, sizeGib, thin, preferPool);
    const body = {
      poolId: pool.volumeGroupRef,
      name: label,
      sizeUnit: 'gb',
      size: sizeGib,
      dataAssuranceEnable: specBool(specs.netapp_eseries_data_assurance),
      flashCacheEnable: specBool(specs.netapp_eseries_flash_read_cache),
      readCacheEnable: specBool(specs['netapp:read_cache']),
      writeCacheEnable: specBool(specs['netapp:write_cache']),
      thinProvision: thin,
    };
    try {
      const v = await this.client.post<EsVolume>('/ssc/volumes', body);
      this.log.info({ volume_id: volume.id, label, pool: pool.label, size_gb: sizeGib, thin }, 'created E-Series volume');
      return v;
    } catch (err) {
      if (err instanceof BrickError && err.code === 'ALREADY_EXISTS') throw err;
      // A create that failed half-way may leave the volume behind; remove it (upstream's cleanup never worked).
      try {
        const partial = await this.getVolumeByLabel(label);
        await this.client.delete(`/ssc/volumes/${partial.volumeRef}`);
      } catch {
        /* nothing was left */
      }
      throw err;
    }
  }

  /** Cinder `delete_volume`: succeeds when the volume is already gone; also drops its snapshot-index entries. */
  async deleteVolume(volume: DriverVolume): Promise<void> {
    let v: EsVolume;
    try {
      v = await this.getVolumeByLabel(uuidToLabel(volume.id));
    } catch (err) {
      if (isNotFound(err)) {
        this.log.info({ volume_id: volume.id }, 'E-Series volume already deleted');
        return;
      }
      throw err;
    }
    const groups = (await this.client.get<EsSnapshotGroup[]>('/snapshot-groups')).filter((g) => g.baseVolume === v.volumeRef).map((g) => g.id);
    try {
      await this.client.delete(`/ssc/volumes/${v.volumeRef}`);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    if (groups.length > 0) {
      await this.updateIndex(SNAPSHOT_INDEX_KEY, (idx) => {
        for (const g of groups) delete idx[g];
      });
    }
    this.log.info({ volume_id: volume.id }, 'deleted E-Series volume');
  }

  /**
   * Cinder `extend_volume`: thin volumes through `thin-volumes/{id}/expand`, thick ones through
   * `volumes/{id}/expand`; a thick volume on a RAID volume group is then waited on until the
   * pool shows no `remappingDve` (bounded by `netapp_extend_timeout`).
   * @throws {@link InvalidInputError} (`new_size`) when not larger than the current size
   */
  async extendVolume(volume: DriverVolume, newSize: number): Promise<void> {
    this.checkSize(newSize, 'new_size');
    const v = await this.findVolume(volume);
    const current = Math.ceil(Number(v.capacity) / GIB);
    if (newSize <= current) throw new InvalidInputError('new_size', `${newSize} GiB is not larger than the current ${current} GiB`);
    const thin = v.objectType === 'thinVolume' || v.thinProvisioned === true;
    if (thin) {
      await this.client.post(`/thin-volumes/${v.volumeRef}/expand`, { newVirtualSize: newSize, sizeUnit: 'gb', newRepositorySize: newSize });
    } else {
      await this.client.post(`/volumes/${v.volumeRef}/expand`, { expansionSize: newSize, sizeUnit: 'gb' });
      if (!v.diskPool) {
        await waitFor(
          async () => {
            const progress = await this.client.get<{ volumeRef: string; currentAction: string }[]>(`/storage-pools/${v.volumeGroupRef}/action-progress`);
            return !progress.some((p) => p.currentAction === 'remappingDve');
          },
          {
            timeoutMs: this.config.extendTimeoutMs,
            intervalMs: this.config.pollIntervalMs,
            maxIntervalMs: this.config.pollIntervalMs,
            description: `dynamic volume expansion of ${v.label}`,
          },
        );
      }
    }
    this.log.info({ volume_id: volume.id, new_size_gb: newSize, thin }, 'extended E-Series volume');
  }

  // ------------------------------------------------------------------ snapshots

  private async imagesOf(groupId: string): Promise<EsImage[]> {
    const all = await this.client.get<EsImage[]>('/snapshot-images');
    return all.filter((i) => i.pitGroupRef === groupId).sort((a, b) => compareNumeric(a.pitSequenceNumber, b.pitSequenceNumber));
  }

  /**
   * Cinder `create_snapshot`: an image in one of the volume's snapshot groups (the one with the
   * newest image that still has room), or in a new group while the volume has fewer than 3.
   * @returns `{ provider_id: image id }`
   * @throws {@link InvalidStateError} when all 96 snapshot slots are used
   */
  async createSnapshot(snapshot: DriverSnapshot): Promise<ModelUpdate> {
    const vol = await this.findVolume({ ...snapshot.volume, id: snapshot.volume_id }, 'snapshot.volume_id');
    return this.ctx.host.locks.withLock(`eseries-volume-${vol.volumeRef}`, async () => {
      const image = await this.createImage(vol, false);
      this.log.info({ snapshot_id: snapshot.id, image: image.id }, 'created E-Series snapshot image');
      return { provider_id: image.id };
    });
  }

  private async createImage(vol: EsVolume, forClone: boolean): Promise<EsImage> {
    const groups = (await this.client.get<EsSnapshotGroup[]>('/snapshot-groups')).filter((g) => g.baseVolume === vol.volumeRef);
    let group: EsSnapshotGroup | undefined;
    if (forClone) {
      group = groups.find((g) => g.label.endsWith(SNAPSHOT_CLONE_GROUP_SUFFIX) && !g.consistencyGroup);
    } else {
      const candidates = groups.filter((g) => !g.label.includes(SNAPSHOT_CLONE_GROUP_SUFFIX) && !g.consistencyGroup && g.snapshotCount < MAX_SNAPSHOT_COUNT);
      if (candidates.length > 0) {
        const images = await this.client.get<EsImage[]>('/snapshot-images');
        const newest = (g: EsSnapshotGroup): bigint =>
          images.filter((i) => i.pitGroupRef === g.id).reduce((m, i) => (BigInt(i.pitSequenceNumber) > m ? BigInt(i.pitSequenceNumber) : m), -1n);
        candidates.sort((a, b) => (newest(b) > newest(a) ? 1 : newest(b) < newest(a) ? -1 : 0));
        group = candidates[0];
      }
    }
    let createdGroup = false;
    if (!group) {
      const limit = forClone ? MAX_SNAPSHOT_GROUP_COUNT : MAX_SNAPSHOT_GROUP_COUNT - RESERVED_SNAPSHOT_GROUP_COUNT;
      const own = groups.filter((g) => !g.consistencyGroup && (forClone || !g.label.endsWith(SNAPSHOT_CLONE_GROUP_SUFFIX)));
      if (groups.length >= MAX_SNAPSHOT_GROUP_COUNT || own.length >= limit) {
        throw new InvalidStateError(
          `volume ${vol.label} has no room for another snapshot: at most ${(MAX_SNAPSHOT_GROUP_COUNT - RESERVED_SNAPSHOT_GROUP_COUNT) * MAX_SNAPSHOT_COUNT} snapshots per volume`,
          { details: { volume: vol.label, allowed: (MAX_SNAPSHOT_GROUP_COUNT - RESERVED_SNAPSHOT_GROUP_COUNT) * MAX_SNAPSHOT_COUNT } },
        );
      }
      const label = forClone ? `${randomLabel().slice(0, 26)}${SNAPSHOT_CLONE_GROUP_SUFFIX}` : randomLabel();
      group = await this.client.post<EsSnapshotGroup>('/snapshot-groups', {
        baseMappableObjectId: vol.volumeRef,
        name: label,
        storagePoolId: null,
        repositoryPercentage: 20.0,
        warningThreshold: 99,
        autoDeleteLimit: 0,
        fullPolicy: 'failbasewrites',
      });
      createdGroup = true;
    }
    try {
      return await this.client.post<EsImage>('/snapshot-images', { groupId: group.id });
    } catch (err) {
      if (createdGroup) await this.client.delete(`/snapshot-groups/${group.id}`).catch(() => undefined);
      throw err;
    }
  }

  private async findImage(snapshot: DriverSnapshot): Promise<EsImage | undefined> {
    if (snapshot.provider_id) {
      try {
        return await this.client.get<EsImage>(`/snapshot-images/${encodeURIComponent(snapshot.provider_id)}`);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    // Legacy layout: a group labelled base32(snapshot.id) whose oldest image is the snapshot.
    const label = uuidToLabel(snapshot.id, 'snapshot.id');
    const group = (await this.client.get<EsSnapshotGroup[]>('/snapshot-groups')).find((g) => g.label === label);
    if (!group) return undefined;
    return (await this.imagesOf(group.id))[0];
  }

  private async loadIndex(key: string): Promise<Record<string, string[]>> {
    try {
      const rec = await this.client.get<{ value: string }>(`/persistent-records/${encodeURIComponent(key)}`);
      const parsed = JSON.parse(rec.value) as unknown;
      return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, string[]>) : {};
    } catch {
      return {};
    }
  }

  private async updateIndex(key: string, fn: (idx: Record<string, string[]>) => void | Promise<void>): Promise<void> {
    await this.ctx.host.locks.withLock(`eseries-index-${this.client.systemId}-${key}`, async () => {
      const idx = await this.loadIndex(key);
      await fn(idx);
      await this.client.post('/persistent-records/', { key, value: JSON.stringify(idx) });
    });
  }

  /**
   * Cinder `delete_snapshot`: the array deletes only the oldest image of a group, so the image
   * is marked deleted in the array's persistent record `brick-snapshots`, and every marked
   * image at the old end of the group is deleted (the group too once it is empty). A snapshot
   * that is already gone succeeds.
   */
  async deleteSnapshot(snapshot: DriverSnapshot): Promise<void> {
    const image = await this.findImage(snapshot);
    if (!image) {
      this.log.info({ snapshot_id: snapshot.id }, 'E-Series snapshot already deleted');
      return;
    }
    await this.updateIndex(SNAPSHOT_INDEX_KEY, async (idx) => {
      const images = await this.imagesOf(image.pitGroupRef);
      const marked = new Set((idx[image.pitGroupRef] ?? []).filter((id) => images.some((i) => i.id === id)));
      marked.add(image.id);
      const remaining = [...images];
      while (remaining.length > 0 && marked.has(remaining[0]!.id)) {
        const oldest = remaining.shift()!;
        await this.client.delete(`/snapshot-images/${oldest.id}`).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
        marked.delete(oldest.id);
      }
      if (remaining.length === 0) {
        await this.client.delete(`/snapshot-groups/${image.pitGroupRef}`).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
        delete idx[image.pitGroupRef];
      } else if (marked.size > 0) idx[image.pitGroupRef] = [...marked];
      else delete idx[image.pitGroupRef];
    });
    this.log.info({ snapshot_id: snapshot.id, image: image.id }, 'deleted E-Series snapshot');
  }

  /**
   * Cinder `create_volume_from_snapshot`: a new volume (in the requested pool, else the source
   * volume's pool, else the pool with most room) filled by a volume copy job from a read-only
   * view of the image; the view is always removed and the new volume too if the copy fails.
   * @throws {@link NotFoundError} when the snapshot's image is gone
   * @throws {@link RetryExhaustedError} when the copy exceeds `netapp_copy_timeout`
   */
  async createVolumeFromSnapshot(volume: EseriesVolume, snapshot: DriverSnapshot): Promise<ModelUpdate> {
    this.checkSize(volume.size, 'volume.size');
    if (volume.size < snapshot.volume_size) throw new InvalidInputError('volume.size', `${volume.size} GiB is smaller than the snapshot (${snapshot.volume_size} GiB)`);
    const image = await this.findImage(snapshot);
    if (!image) throw new NotFoundError('snapshot', snapshot.id);
    const source = await this.client.get<EsVolume>(`/ssc/volumes/${image.baseVol}`).catch(() => undefined);
    return this.ctx.host.locks.withLock(`eseries-snapshot-${snapshot.id}`, async () => {
      const target = await this.copyImageToNewVolume(volume, image, source?.volumeGroupRef);
      if (volume.group_id) await this.addToConsistencyGroup(volume.group_id, target);
      return { provider_id: target.volumeRef };
    });
  }

  private async copyImageToNewVolume(volume: EseriesVolume, image: EsImage, preferPool?: string): Promise<EsVolume> {
    const label = uuidToLabel(volume.id);
    const imageGib = image.pitCapacity ? Math.ceil(Number(image.pitCapacity) / GIB) : volume.size;
    const target = await this.createVolumeOnArray(volume, label, Math.max(volume.size, imageGib), this.specs(volume), preferPool);
    let view: { id: string; cleanup: () => Promise<void> } | undefined;
    try {
      view = await this.createView(image);
      await this.copyVolume(view.id, target.volumeRef);
      return target;
    } catch (err) {
      await this.client.delete(`/ssc/volumes/${target.volumeRef}`).catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'could not remove the failed copy target'));
      throw err;
    } finally {
      if (view) await view.cleanup().catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'could not remove a snapshot view'));
    }
  }

  private async createView(image: EsImage): Promise<{ id: string; cleanup: () => Promise<void> }> {
    const cg = image.consistencyGroupId && image.consistencyGroupId !== NULL_REF ? image.consistencyGroupId : undefined;
    if (!cg) {
      const v = await this.client.post<EsView>('/snapshot-volumes', {
        snapshotImageId: image.pitRef,
        fullThreshold: 99,
        storagePoolId: null,
        name: randomLabel(),
        viewMode: 'readOnly',
        repositoryPercentage: 99,
        baseMappableObjectId: image.baseVol,
        repositoryPoolId: null,
      });
      return { id: v.id, cleanup: async () => void (await this.client.delete(`/snapshot-volumes/${v.id}`)) };
    }
    const cgView = await this.client.post<{ cgViewRef: string }>(`/consistency-groups/${cg}/views/`, { name: randomLabel(), accessMode: 'readOnly', pitId: image.id });
    const cleanup = async (): Promise<void> => void (await this.client.delete(`/consistency-groups/${cg}/views/${cgView.cgViewRef}`));
    const members = await this.client.get<EsView[]>(`/consistency-groups/${cg}/views/${cgView.cgViewRef}/views`);
    const mine = members.find((m) => m.basePIT === image.id);
    if (!mine) {
      await cleanup().catch(() => undefined);
      throw new BackendError(`the consistency-group view of image ${image.id} has no member view for it`);
    }
    return { id: mine.id, cleanup };
  }

  private async copyVolume(sourceId: string, targetId: string): Promise<void> {
    const job = await this.client.post<{ volcopyRef: string }>('/volume-copy-jobs', {
      sourceId,
      targetId,
      copyPriority: 'priority4',
      targetWriteProtected: 'true',
    });
    try {
      const status = await waitFor(
        async () => {
          const j = await this.client.get<{ status: string; percentComplete?: number }>(`/volume-copy-jobs/${job.volcopyRef}`);
          if (j.percentComplete !== undefined) this.ctx.onProgress?.('volume copy', j.percentComplete, 100);
          return ['inProgress', 'pending', 'unknown'].includes(j.status) ? undefined : j.status;
        },
        {
          timeoutMs: this.config.copyTimeoutMs,
          intervalMs: this.config.pollIntervalMs,
          maxIntervalMs: this.config.pollIntervalMs,
          description: `volume copy job ${job.volcopyRef}`,
        },
      );
      if (status === 'failed' || status === 'halted') {
        throw new BackendError(`volume copy job ${job.volcopyRef} ended with status ${status}`, { details: { status } });
      }
    } finally {
      await this.client.delete(`/volume-copy-jobs/${job.volcopyRef}`).catch(() => undefined);
    }
  }

  /**
   * Cinder `create_cloned_volume`: a temporary image in the volume's clone snapshot group
   * (`…SGCV`), then the same copy as create-from-snapshot; the temporary group is removed.
   * Clones of one source are serialised so the temporary group holds only this clone's image.
   */
  async createClonedVolume(volume: EseriesVolume, source: DriverVolume): Promise<ModelUpdate> {
    this.checkSize(volume.size, 'volume.size');
    if (volume.size < source.size) throw new InvalidInputError('volume.size', `${volume.size} GiB is smaller than the source volume (${source.size} GiB)`);
    const src = await this.findVolume(source, 'source.id');
    return this.ctx.host.locks.withLock(`eseries-volume-${src.volumeRef}`, async () => {
      const image = await this.createImage(src, true);
      try {
        const target = await this.copyImageToNewVolume(volume, image, src.volumeGroupRef);
        if (volume.group_id) await this.addToConsistencyGroup(volume.group_id, target);
        return { provider_id: target.volumeRef };
      } finally {
        await this.client.delete(`/snapshot-groups/${image.pitGroupRef}`).catch((e: unknown) => this.log.warn({ err: (e as Error).message }, 'could not remove the clone snapshot group'));
      }
    });
  }

  // ------------------------------------------------------------------ exports

  /** No-op: E-Series volumes need no export step (Cinder's driver does nothing either). */
  async createExport(_volume: DriverVolume, _connector: ConnectorProperties): Promise<void> {}
  /** No-op. */
  async ensureExport(_volume: DriverVolume): Promise<void> {}
  /** No-op. */
  async removeExport(_volume: DriverVolume): Promise<void> {}

  /**
   * The connector needs an iSCSI `initiator` IQN.
   * @throws {@link InvalidInputError} (`connector.initiator`)
   */
  validateConnector(connector: ConnectorProperties): void {
    const iqn = connector?.initiator;
    if (typeof iqn !== 'string' || iqn.trim() === '') throw new InvalidInputError('connector.initiator', 'the E-Series iSCSI driver needs the initiator IQN');
    if (!/^(iqn\.\d{4}-\d{2}\.[^\s]+|eui\.[0-9a-f]{16}|naa\.[0-9a-f]{16,32})$/i.test(iqn.trim())) {
      throw new InvalidInputError('connector.initiator', `${JSON.stringify(iqn)} is not an iSCSI name (iqn., eui. or naa.)`);
    }
  }

  // ------------------------------------------------------------------ connections

  private async findHost(iqn: string): Promise<EsHost | undefined> {
    const hosts = await this.client.get<EsHost[]>('/hosts');
    const want = normaliseIqn(iqn);
    return hosts.find((h) => (h.hostSidePorts ?? []).some((p) => normaliseIqn(p.address) === want));
  }

  private async findOrCreateHost(iqn: string): Promise<EsHost> {
    const type = this.requireHostType();
    const host = await this.findHost(iqn);
    if (host) {
      if (host.hostTypeIndex !== type.index) {
        try {
          await this.client.post(`/hosts/${host.hostRef}`, { hostType: type });
          host.hostTypeIndex = type.index;
        } catch (err) {
          this.log.warn({ host: host.label, err: (err as Error).message }, 'could not change the host type of an existing host');
        }
      }
      return host;
    }
    const created = await this.client.post<EsHost>('/hosts', {
      name: randomLabel(),
      hostType: type,
      groupId: null,
      ports: [{ type: 'iscsi', port: iqn, label: randomLabel() }],
    });
    this.log.info({ host: created.label, initiator: iqn }, 'created E-Series host');
    return created;
  }

  /** LUNs in use for a host (its and its group's mappings) or a host group (its and its members'). */
  private lunsInUse(targetRef: string, mappings: EsMapping[], hosts: EsHost[], exclude?: string): Set<number> {
    const refs = new Set([targetRef]);
    const host = hosts.find((h) => h.hostRef === targetRef);
    if (host && host.clusterRef !== NULL_REF) refs.add(host.clusterRef);
    for (const h of hosts) if (h.clusterRef === targetRef) refs.add(h.hostRef);
    return new Set(mappings.filter((m) => refs.has(m.mapRef) && m.lunMappingRef !== exclude).map((m) => m.lun));
  }

  /** A random free LUN in 1..255 for `targetRef` (LUN 0 stays free, as upstream). */
  private freeLun(targetRef: string, mappings: EsMapping[], hosts: EsHost[], exclude?: string): number {
    const used = this.lunsInUse(targetRef, mappings, hosts, exclude);
    const free: number[] = [];
    for (let l = 1; l < MAX_LUNS_PER_HOST; l++) if (!used.has(l)) free.push(l);
    if (free.length === 0) {
      throw new InsufficientCapacityError(`no free LUN ids left: at most ${MAX_LUNS_PER_HOST} volumes can be attached to one host`, { details: { target: targetRef } });
    }
    const r = this.random();
    return free[Math.min(free.length - 1, Math.max(0, Math.floor(r * free.length)))]!;
  }

  private async mapVolume(vol: EsVolume, host: EsHost): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      const [mappings, hosts] = await Promise.all([this.client.get<EsMapping[]>('/volume-mappings'), this.client.get<EsHost[]>('/hosts')]);
      const me = hosts.find((h) => h.hostRef === host.hostRef) ?? host;
      const current = mappings.find((m) => m.volumeRef === vol.volumeRef);
      try {
        if (!current) {
          const lun = this.freeLun(me.hostRef, mappings, hosts);
          const m = await this.client.post<EsMapping>('/volume-mappings', { mappableObjectId: vol.volumeRef, targetId: me.hostRef, lun });
          return m.lun;
        }
        if (current.mapRef === me.hostRef || (me.clusterRef !== NULL_REF && current.mapRef === me.clusterRef)) return current.lun;
        if (!this.config.enableMultiattach) {
          throw new InvalidStateError(
            `volume ${vol.label} is already attached to another host; multi-attach is disabled by the netapp_enable_multiattach option`,
            { details: { volume: vol.label } },
          );
        }
        return await this.mapThroughGroup(vol, me, current, mappings, hosts);
      } catch (err) {
        // Another attach took the LUN in between: choose again, a bounded number of times.
        if (!current && err instanceof BrickError && err.details?.retcode === 'lunCollision' && attempt < 3) continue;
        throw err;
      }
    }
  }

  private async mapThroughGroup(vol: EsVolume, host: EsHost, current: EsMapping, mappings: EsMapping[], hosts: EsHost[]): Promise<number> {
    const group = await this.ensureMultiattachGroup();
    const foreign = (ref: string): boolean => ref !== NULL_REF && ref !== group;
    if (foreign(host.clusterRef)) {
      throw new InvalidStateError(`host ${host.label} is in a host group other than ${MULTI_ATTACH_HOST_GROUP_NAME}; multi-attach needs that group`, {
        details: { host: host.label },
      });
    }
    const currentHost = hosts.find((h) => h.hostRef === current.mapRef);
    if (!currentHost && current.mapRef !== group) {
      throw new InvalidStateError(`volume ${vol.label} is mapped to a host group other than ${MULTI_ATTACH_HOST_GROUP_NAME}`, { details: { volume: vol.label } });
    }
    if (currentHost) {
      if (foreign(currentHost.clusterRef)) {
        throw new InvalidStateError(`host ${currentHost.label} holding volume ${vol.label} is in a foreign host group`, { details: { host: currentHost.label } });
      }
      if (currentHost.clusterRef === NULL_REF) {
        await this.client.post(`/hosts/${currentHost.hostRef}`, { groupId: group });
        currentHost.clusterRef = group;
      }
    }
    if (host.clusterRef === NULL_REF) {
      await this.client.post(`/hosts/${host.hostRef}`, { groupId: group });
      host.clusterRef = group;
    }
    if (!currentHost) return current.lun;
    // Both hosts are in the group now, so the array has checked that the mapping's LUN is free
    // for every member: keep it, so the host already attached sees no change.
    const lun = current.lun;
    const answer = await this.client.post<unknown>('/symbol/moveLUNMapping', { lunMappingRef: current.lunMappingRef, lun, mapRef: group });
    if (answer !== 'ok') {
      throw new BackendError(`moving the mapping of volume ${vol.label} to host group ${MULTI_ATTACH_HOST_GROUP_NAME} failed: ${String(answer)}`, {
        details: { retcode: String(answer) },
      });
    }
    return lun;
  }

  private async portals(vol: EsVolume): Promise<EsPortal[]> {
    const inv = await this.client.get<{
      iscsiPorts?: {
        controllerId: string;
        iqn?: string;
        tcpListenPort?: number;
        ipv4Enabled?: boolean;
        ipv4Data?: { ipv4AddressData?: { ipv4Address?: string; configState?: string } };
      }[];
    }>('/hardware-inventory');
    const good: EsPortal[] = [];
    for (const p of inv.iscsiPorts ?? []) {
      const addr = p.ipv4Data?.ipv4AddressData;
      if (!p.ipv4Enabled || !p.iqn || !addr?.ipv4Address || addr.configState !== 'configured') continue;
      good.push({ ip: addr.ipv4Address, port: p.tcpListenPort ?? 3260, iqn: p.iqn, controller: p.controllerId });
    }
    if (good.length === 0) throw new BackendError('the array reports no configured iSCSI portal (hardware-inventory iscsiPorts)');
    const owner = good.filter((p) => p.controller === vol.currentManager);
    return [...owner, ...good.filter((p) => p.controller !== vol.currentManager)];
  }

  private chapSecret(): string {
    if (this.config.chapPassword) return this.config.chapPassword;
    const file = join(this.ctx.stateDir, `eseries-${(this.client.systemId ?? 'system').replace(/[^\w.-]/g, '_')}-chap`);
    try {
      const s = readFileSync(file, 'utf8').trim();
      if (s.length >= 12) return s;
    } catch {
      /* not generated yet */
    }
    const secret = randomBytes(16).toString('hex');
    mkdirSync(this.ctx.stateDir, { recursive: true, mode: 0o700 });
    writeFileSync(file, secret + '\n', { mode: 0o600 });
    return secret;
  }

  private async attachments(volumeRef: string): Promise<string[]> {
    try {
      const rec = await this.client.get<{ value: string }>(`/persistent-records/${ATTACHMENTS_KEY_PREFIX}${volumeRef}`);
      const v = JSON.parse(rec.value) as unknown;
      return Array.isArray(v) ? v.map(String) : [];
    } catch {
      return [];
    }
  }

  private async saveAttachments(volumeRef: string, list: string[]): Promise<void> {
    if (list.length === 0) {
      await this.client.delete(`/persistent-records/${ATTACHMENTS_KEY_PREFIX}${volumeRef}`).catch(() => undefined);
    } else {
      await this.client.post('/persistent-records/', { key: `${ATTACHMENTS_KEY_PREFIX}${volumeRef}`, value: JSON.stringify(list) });
    }
  }

  /**
   * Cinder `initialize_connection` for iSCSI: find the host by initiator IQN or create it with
   * the configured host type, map the volume with a free random LUN (or through the
   * `cinder-multi-attach` host group when another host holds it and multi-attach is enabled),
   * and return the portal of the volume's owning controller first. Unlike upstream, every
   * configured portal is also listed (`target_portals`, `target_iqns`, `target_luns`) so the
   * host can use multipath without discovery. With `use_chap_auth` the array-wide target CHAP
   * is set (with a stable secret) and returned.
   * @returns `{ driver_volume_type: 'iscsi', data: { target_discovered, target_portal, target_iqn, target_lun, target_portals, target_iqns, target_luns, volume_id, auth_* } }`
   * @throws {@link InvalidInputError} (`connector.initiator`), {@link NotFoundError} (volume), {@link InvalidStateError} (attached elsewhere without multi-attach)
   */
  async initializeConnection(volume: DriverVolume, connector: ConnectorProperties): Promise<ConnectionInfo> {
    this.validateConnector(connector);
    const iqn = connector.initiator!.trim();
    const vol = await this.findVolume(volume);
    const lun = await this.ctx.host.locks.withLock(`eseries-map-${this.client.systemId}`, async () => {
      const host = await this.findOrCreateHost(iqn);
      const l = await this.mapVolume(vol, host);
      if (this.config.enableMultiattach) {
        const list = await this.attachments(vol.volumeRef);
        if (!list.includes(host.hostRef)) await this.saveAttachments(vol.volumeRef, [...list, host.hostRef]);
      }
      return l;
    });
    const portals = await this.portals(vol);
    const fmt = (p: EsPortal): string => (p.ip.includes(':') ? `[${p.ip}]:${p.port}` : `${p.ip}:${p.port}`);
    const data: Record<string, unknown> = {
      target_discovered: false,
      target_portal: fmt(portals[0]!),
      target_iqn: portals[0]!.iqn,
      target_lun: lun,
      target_portals: portals.map(fmt),
      target_iqns: portals.map((p) => p.iqn),
      target_luns: portals.map(() => lun),
      volume_id: volume.id,
    };
    if (this.config.useChapAuth) {
      const secret = this.chapSecret();
      await this.client.post('/iscsi/target-settings/', {
        iqn: portals[0]!.iqn,
        enableChapAuthentication: true,
        alias: this.config.chapUsername,
        authMethod: 'chap',
        chapSecret: secret,
      });
      Object.assign(data, {
        auth_method: 'CHAP',
        auth_username: this.config.chapUsername,
        auth_password: secret,
        discovery_auth_method: 'CHAP',
        discovery_auth_username: this.config.chapUsername,
        discovery_auth_password: secret,
      });
    }
    this.log.info({ volume_id: volume.id, initiator: iqn, lun, portal: data.target_portal }, 'E-Series volume mapped');
    return { driver_volume_type: 'iscsi', data };
  }

  /**
   * Cinder `terminate_connection`: remove the host's mapping; for a mapping to the
   * multi-attach host group, only the last attached host removes it. Idempotent: a volume that
   * is gone or not mapped to this host is left as it is. A `null` connector removes the
   * volume's mapping whatever its target (Cinder's "detach everywhere").
   * @throws {@link InvalidStateError} when the volume is mapped to a foreign host group of this host
   */
  async terminateConnection(volume: DriverVolume, connector: ConnectorProperties | null, _options: TerminateOptions = {}): Promise<void> {
    if (connector !== null) this.validateConnector(connector);
    let vol: EsVolume;
    try {
      vol = await this.findVolume(volume);
    } catch (err) {
      if (isNotFound(err)) {
        this.log.warn({ volume_id: volume.id }, 'terminate connection: volume not on the array');
        return;
      }
      throw err;
    }
    await this.ctx.host.locks.withLock(`eseries-map-${this.client.systemId}`, async () => {
      const mappings = await this.client.get<EsMapping[]>('/volume-mappings');
      const mapping = mappings.find((m) => m.volumeRef === vol.volumeRef);
      if (!mapping) {
        this.log.info({ volume_id: volume.id }, 'terminate connection: volume not mapped');
        await this.saveAttachments(vol.volumeRef, []);
        return;
      }
      const unmap = async (): Promise<void> => {
        await this.client.delete(`/volume-mappings/${mapping.lunMappingRef}`).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
        if (this.config.enableMultiattach) await this.saveAttachments(vol.volumeRef, []);
      };
      if (connector === null) return unmap();
      const host = await this.findHost(connector.initiator!.trim());
      if (!host) {
        this.log.info({ volume_id: volume.id, initiator: connector.initiator }, 'terminate connection: no host with this initiator');
        return;
      }
      if (mapping.mapRef === host.hostRef) return unmap();
      if (host.clusterRef !== NULL_REF && mapping.mapRef === host.clusterRef) {
        const group = await this.client.get<EsHostGroup>(`/host-groups/${mapping.mapRef}`);
        if (group.label !== MULTI_ATTACH_HOST_GROUP_NAME) {
          throw new InvalidStateError(`volume ${vol.label} is mapped to host group ${group.label}, which this driver does not manage`, {
            details: { host_group: group.label },
          });
        }
        const left = (await this.attachments(vol.volumeRef)).filter((h) => h !== host.hostRef);
        if (left.length === 0) return unmap();
        await this.saveAttachments(vol.volumeRef, left);
        this.log.info({ volume_id: volume.id, still_attached: left.length }, 'volume stays mapped to the multi-attach group');
        return;
      }
      this.log.info({ volume_id: volume.id, initiator: connector.initiator }, 'terminate connection: volume is not mapped to this host');
    });
  }

  // ------------------------------------------------------------------ stats, pools, manage

  /**
   * Cinder `get_volume_stats`: one entry per pool matching the pool pattern, with capacity in
   * GiB and the SSC capability keys. Cached until called with `refresh`.
   */
  async getVolumeStats(refresh: boolean): Promise<VolumeStats> {
    if (!refresh && this.cachedStats) return this.cachedStats;
    const [pools, sscPools, volumes] = await Promise.all([
      this.filteredPools(),
      this.client.get<EsSscPool[]>('/ssc/pools'),
      this.client.get<EsVolume[]>('/ssc/volumes'),
    ]);
    const out: PoolStats[] = pools.map((p) => {
      const ssc = sscPools.find((s) => s.poolId === p.volumeGroupRef || s.name === p.label);
      const own = volumes.filter((v) => v.volumeGroupRef === p.volumeGroupRef && !v.label.startsWith('repos_'));
      const provisioned = own.reduce((sum, v) => sum + Number(v.capacity), 0);
      const raid = (ssc?.raidLevel ?? p.raidLevel) as string;
      const raidType = raid === 'raidDiskPool' ? 'DDP' : raid === 'raid3' ? 'raid5' : /^raid[0156]$/.test(raid) ? raid : 'unknown';
      const media = ssc?.pool?.driveMediaType;
      const phys = (ssc?.pool?.drivePhysicalType ?? '').toLowerCase();
      const diskType = media === 'ssd' ? 'SSD' : ({ scsi: 'SCSI', fibre: 'FCAL', sas: 'SAS', sata: 'SATA' } as Record<string, string>)[phys] ?? 'unknown';
      const thin = ssc?.thinProvisioningCapable ?? p.diskPool;
      return {
        pool_name: p.label,
        QoS_support: false,
        reserved_percentage: this.config.reservedPercentage,
        max_over_subscription_ratio: this.config.maxOverSubscriptionRatio,
        total_capacity_gb: gib(p.totalRaidedSpace),
        free_capacity_gb: gib(Number(p.totalRaidedSpace) - Number(p.usedSpace)),
        provisioned_capacity_gb: gib(provisioned),
        total_volumes: own.length,
        thin_provisioning_support: thin,
        thick_provisioning_support: true,
        multiattach: this.config.enableMultiattach,
        consistencygroup_support: true,
        consistent_group_snapshot_enabled: true,
        netapp_disk_encryption: String(ssc?.encrypted ?? p.securityType === 'enabled'),
        netapp_eseries_disk_spindle_speed: ssc?.spindleSpeed ?? 'unknown',
        netapp_eseries_flash_read_cache: String(ssc?.flashCacheCapable ?? false),
        netapp_eseries_data_assurance: 'false',
        netapp_raid_type: raidType,
        netapp_thin_provisioned: String(thin),
        netapp_disk_type: diskType,
      };
    });
    const stats: VolumeStats = {
      volume_backend_name: this.config.backendName,
      vendor_name: 'NetApp',
      driver_version: NetAppEseriesISCSIDriver.VERSION,
      storage_protocol: 'iSCSI',
      total_capacity_gb: Math.round(out.reduce((s, p) => s + (p.total_capacity_gb as number), 0) * 100) / 100,
      free_capacity_gb: Math.round(out.reduce((s, p) => s + (p.free_capacity_gb as number), 0) * 100) / 100,
      pools: out,
    };
    this.cachedStats = stats;
    return stats;
  }

  /** Cinder `get_pool`: the label of the storage pool holding the volume. */
  async getPool(volume: DriverVolume): Promise<string> {
    const v = await this.findVolume(volume);
    const pool = await this.client.get<EsPool>(`/storage-pools/${v.volumeGroupRef}`);
    return pool.label;
  }

  private async existing(ref: Record<string, unknown>): Promise<EsVolume> {
    const key = ref?.['source-name'] ?? ref?.['source-id'];
    if (typeof key !== 'string' || key.trim() === '') {
      throw new InvalidInputError('existing_ref', 'needs "source-name" (the array label) or "source-id" (the volume ref or WWN)');
    }
    try {
      const v = await this.getVolumeByLabel(key.trim());
      if (v.label.startsWith('repos_')) throw new InvalidInputError('existing_ref', `${key} is a snapshot repository volume`);
      return v;
    } catch (err) {
      if (isNotFound(err)) throw new InvalidInputError('existing_ref', `no volume ${JSON.stringify(key)} on the array`);
      throw err;
    }
  }

  /**
   * Cinder `manage_existing`: rename the array volume to base32(volume.id).
   * @returns `{ size, provider_id }`
   * @throws {@link InvalidInputError} (`existing_ref`) for a bad reference (Cinder's ManageExistingInvalidReference)
   */
  async manageExisting(volume: DriverVolume, existingRef: Record<string, unknown>): Promise<ModelUpdate> {
    const v = await this.existing(existingRef);
    const label = uuidToLabel(volume.id);
    return this.ctx.host.locks.withLock(`eseries-manage-${this.client.systemId}`, async () => {
      if (v.label !== label) await this.client.post(`/ssc/volumes/${v.volumeRef}`, { name: label });
      this.log.info({ volume_id: volume.id, from: v.label }, 'managing existing E-Series volume');
      return { size: Math.ceil(Number(v.capacity) / GIB), provider_id: v.volumeRef };
    });
  }

  /** Cinder `manage_existing_get_size`: capacity in GiB, rounded up. */
  async manageExistingGetSize(_volume: DriverVolume, existingRef: Record<string, unknown>): Promise<number> {
    const v = await this.existing(existingRef);
    return Math.ceil(Number(v.capacity) / GIB);
  }

  /** Cinder `unmanage`: nothing changes on the array; the volume keeps its label. */
  async unmanage(volume: DriverVolume): Promise<void> {
    const v = await this.findVolume(volume);
    this.log.info({ volume_id: volume.id, label: v.label }, 'stopped managing E-Series volume');
  }

  // ------------------------------------------------------------------ groups

  private async findCg(groupId: string): Promise<EsCg> {
    const label = uuidToLabel(groupId, 'group.id');
    const cg = (await this.client.get<EsCg[]>('/consistency-groups')).find((c) => c.label === label);
    if (!cg) throw new NotFoundError('consistency group', groupId, { details: { label } });
    return cg;
  }

  private async addToConsistencyGroup(groupId: string, vol: EsVolume): Promise<void> {
    const cg = await this.findCg(groupId);
    await this.client.post(`/consistency-groups/${cg.id}/member-volumes`, { volumeId: vol.volumeRef, repositoryPercent: 20.0 });
  }

  /** Cinder `create_group`: an E-Series consistency group labelled base32(group.id). */
  async createGroup(group: DriverGroup): Promise<{ status: string }> {
    await this.client.post('/consistency-groups', {
      name: uuidToLabel(group.id, 'group.id'),
      fullWarnThresholdPercent: 75,
      repositoryFullPolicy: 'failbasewrites',
      autoDeleteThreshold: 0,
      rollbackPriority: 'medium',
    });
    return { status: 'available' };
  }

  /** Cinder `delete_group`: delete the member volumes, then the consistency group (a missing group is fine). */
  async deleteGroup(group: DriverGroup, volumes: DriverVolume[]): Promise<{ modelUpdate: { status: string }; volumesModelUpdate: ObjectUpdate[] }> {
    const updates: ObjectUpdate[] = [];
    let failed = false;
    for (const v of volumes) {
      try {
        await this.deleteVolume(v);
        updates.push({ id: v.id, status: 'deleted' });
      } catch (err) {
        failed = true;
        this.log.warn({ volume_id: v.id, err: (err as Error).message }, 'could not delete a group member');
        updates.push({ id: v.id, status: 'error_deleting' });
      }
    }
    try {
      const cg = await this.findCg(group.id);
      await this.client.delete(`/consistency-groups/${cg.id}`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return { modelUpdate: { status: failed ? 'error_deleting' : 'deleted' }, volumesModelUpdate: updates };
  }

  /** Cinder `update_group`: add and remove consistency-group members. */
  async updateGroup(
    group: DriverGroup,
    addVolumes: DriverVolume[] = [],
    removeVolumes: DriverVolume[] = [],
  ): Promise<{ modelUpdate: null; addVolumesUpdate: ObjectUpdate[]; removeVolumesUpdate: ObjectUpdate[] }> {
    const cg = await this.findCg(group.id);
    for (const v of addVolumes) {
      const ev = await this.findVolume(v);
      await this.client.post(`/consistency-groups/${cg.id}/member-volumes`, { volumeId: ev.volumeRef, repositoryPercent: 20.0 });
    }
    for (const v of removeVolumes) {
      const ev = await this.findVolume(v);
      await this.client.delete(`/consistency-groups/${cg.id}/member-volumes/${ev.volumeRef}`).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
    return { modelUpdate: null, addVolumesUpdate: [], removeVolumesUpdate: [] };
  }

  /** Cinder `create_group_snapshot`: one consistency-group snapshot; each member snapshot gets its image as `provider_id`. */
  async createGroupSnapshot(
    groupSnapshot: DriverGroupSnapshot,
    snapshots: DriverSnapshot[],
  ): Promise<{ modelUpdate: { status: string }; snapshotsModelUpdate: ObjectUpdate[] }> {
    const cg = await this.findCg(groupSnapshot.group_id);
    const images = await this.client.post<EsImage[]>(`/consistency-groups/${cg.id}/snapshots`, undefined);
    const updates: ObjectUpdate[] = [];
    for (const s of snapshots) {
      const vol = await this.findVolume({ ...s.volume, id: s.volume_id }, 'snapshot.volume_id');
      const img = images.find((i) => i.baseVol === vol.volumeRef);
      if (!img) throw new BackendError(`the consistency-group snapshot has no image of volume ${s.volume_id}; is it a member of the group?`);
      updates.push({ id: s.id, status: 'available', provider_id: img.id });
    }
    return { modelUpdate: { status: 'available' }, snapshotsModelUpdate: updates };
  }

  /**
   * Cinder `delete_group_snapshot`: the array deletes only the oldest consistency-group
   * snapshot, so the sequence number is marked in `brick-cg-snapshots` and the marked ones at
   * the old end are deleted.
   */
  async deleteGroupSnapshot(
    groupSnapshot: DriverGroupSnapshot,
    snapshots: DriverSnapshot[],
  ): Promise<{ modelUpdate: { status: string }; snapshotsModelUpdate: ObjectUpdate[] }> {
    let cg: EsCg;
    try {
      cg = await this.findCg(groupSnapshot.group_id);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      return { modelUpdate: { status: 'deleted' }, snapshotsModelUpdate: snapshots.map((s) => ({ id: s.id, status: 'deleted' })) };
    }
    const seqs = new Set<string>();
    for (const s of snapshots) {
      const img = await this.findImage(s);
      if (img) seqs.add(img.pitSequenceNumber);
    }
    await this.updateIndex(CG_SNAPSHOT_INDEX_KEY, async (idx) => {
      const all = await this.client.get<EsImage[]>(`/consistency-groups/${cg.id}/snapshots`);
      const existing = [...new Set(all.map((i) => i.pitSequenceNumber))].sort(compareNumeric);
      const marked = new Set((idx[cg.id] ?? []).filter((q) => existing.includes(q)));
      for (const q of seqs) marked.add(q);
      while (existing.length > 0 && marked.has(existing[0]!)) {
        const q = existing.shift()!;
        await this.client.delete(`/consistency-groups/${cg.id}/snapshots/${q}`);
        marked.delete(q);
      }
      if (marked.size > 0) idx[cg.id] = [...marked];
      else delete idx[cg.id];
    });
    return { modelUpdate: { status: 'deleted' }, snapshotsModelUpdate: snapshots.map((s) => ({ id: s.id, status: 'deleted' })) };
  }

  /**
   * Cinder `create_group_from_src`: a new consistency group whose volumes are copies of a group
   * snapshot's snapshots or of a source group's volumes. Volumes are paired with their source
   * by `snapshot_id` / `source_volid`, else by position.
   */
  async createGroupFromSrc(
    group: DriverGroup,
    volumes: EseriesVolume[],
    source: { snapshots?: DriverSnapshot[]; sourceVolumes?: DriverVolume[] },
  ): Promise<{ modelUpdate: { status: string }; volumesModelUpdate: (ObjectUpdate & ModelUpdate)[] }> {
    const snaps = source.snapshots ?? [];
    const srcVols = source.sourceVolumes ?? [];
    if (snaps.length === 0 && srcVols.length === 0) throw new InvalidInputError('source', 'needs the group snapshot\'s snapshots or the source group\'s volumes');
    await this.createGroup(group);
    const updates: (ObjectUpdate & ModelUpdate)[] = [];
    const made: DriverVolume[] = [];
    try {
      for (const [i, v] of volumes.entries()) {
        const plain: EseriesVolume = { ...v, group_id: null };
        let update: ModelUpdate;
        if (snaps.length > 0) {
          const snap = snaps.find((s) => s.id === v.snapshot_id) ?? snaps[i];
          if (!snap) throw new InvalidInputError(`volumes[${i}].snapshot_id`, 'no matching snapshot in the group snapshot');
          update = await this.createVolumeFromSnapshot(plain, snap);
        } else {
          const src = srcVols.find((s) => s.id === v.source_volid) ?? srcVols[i];
          if (!src) throw new InvalidInputError(`volumes[${i}].source_volid`, 'no matching volume in the source group');
          update = await this.createClonedVolume(plain, src);
        }
        made.push(v);
        updates.push({ id: v.id, status: 'available', ...update });
      }
      await this.updateGroup(group, made, []);
    } catch (err) {
      for (const v of made) await this.deleteVolume(v).catch(() => undefined);
      await this.deleteGroup(group, []).catch(() => undefined);
      throw err;
    }
    return { modelUpdate: { status: 'available' }, volumesModelUpdate: updates };
  }
}
