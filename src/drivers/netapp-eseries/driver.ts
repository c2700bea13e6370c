/**
 * NetApp E-Series iSCSI volume driver over SANtricity Web Services (proxy or embedded), the
 * TypeScript counterpart of Cinder's `NetAppEseriesISCSIDriver` / `NetAppESeriesLibrary`
 * (Rocky, the last release that shipped it).
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
 * This file holds the driver class: setup, volume life cycle, exports and connections,
 * stats and manage, delegating to its parts: {@link HostMapper} (`host-mapper.ts`, mapping to
 * hosts and host groups), {@link Snapshots} (`snapshots.ts`, images, views and copies),
 * {@link ConsistencyGroups} (`groups.ts`), pool choice and volume creation (`volumes.ts`),
 * the iSCSI portals and CHAP (`iscsi.ts`), the stats (`stats.ts`), the records it reads
 * (`types.ts`), the setup checks (`setup.ts`) and the shared array access (`array.ts`).
 *
 * @module
 */
import { BackendError, InvalidConfigError, InvalidInputError, NotFoundError } from '../../errors.js';
import { waitFor } from '../../host/retry.js';
import type { Logger } from '../../log.js';
import type { ConnectorProperties } from '../../initiator/properties.js';
import type { ConnectionInfo, DriverContext, DriverSnapshot, DriverVolume, ModelUpdate, TerminateOptions, VolumeDriver, VolumeStats } from '../driver.js';
import { EseriesArray } from './array.js';
import { EseriesRestClient } from './client.js';
import { parseEseriesConfig, type EseriesConfig } from './config.js';
import { ConsistencyGroups, type GroupSource } from './groups.js';
import { HostMapper } from './host-mapper.js';
import { enableTargetChap, iscsiProperties, targetPortals } from './iscsi.js';
import { checkPools, findHostType, resolveAddresses, storageSystemId, waitForSystem } from './setup.js';
import { Snapshots } from './snapshots.js';
import { backendStats } from './stats.js';
import {
  GIB,
  isNotFound,
  type DriverGroup,
  type DriverGroupSnapshot,
  type EsPool,
  type EsSscPool,
  type EsVolume,
  type EseriesDriverOptions,
  type EseriesVolume,
  type ObjectUpdate,
} from './types.js';
import { MIN_CHAP_VERSION, MIN_REST_VERSION, uuidToLabel, wsVersionAtLeast } from './utils.js';
import { checkSize, createVolumeOnArray, volumeSpecs } from './volumes.js';


/**
 * The E-Series iSCSI driver. Construct through the registry (`volume_driver: netapp_eseries`)
 * or directly with `(config, ctx, { random })`.
 */
export class NetAppEseriesIscsiDriver implements VolumeDriver {
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
  private readonly array: EseriesArray;
  private readonly mapper: HostMapper;
  private readonly snapshots: Snapshots;
  private readonly groups: ConsistencyGroups;
  private wsVersion = '';
  private embedded = false;
  private cachedStats: VolumeStats | undefined;

  /**
   * @param options `random`: the LUN choice's random source (tests inject a deterministic one)
   * @throws {@link InvalidConfigError} naming the key for a missing or invalid option (before any request)
   */
  constructor(
    rawConfig: Record<string, unknown>,
    private readonly ctx: DriverContext,
    options: EseriesDriverOptions = {},
  ) {
    this.config = parseEseriesConfig(rawConfig, ctx.backendName);
    this.useMultipath = this.config.useMultipath;
    this.log = ctx.logger.child({ driver: 'netapp_eseries', backend: ctx.backendName });
    this.client = new EseriesRestClient(this.config, this.log);
    this.array = new EseriesArray(this.client, this.config, this.log, ctx);
    this.mapper = new HostMapper(this.array, options.random ?? Math.random);
    this.snapshots = new Snapshots(this.array);
    this.groups = new ConsistencyGroups(this.array, this.snapshots, this);
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
      for (const a of await resolveAddresses(c, 'netapp_controller_ips')) resolved.add(a);
    }
    const server = await resolveAddresses(cfg.serverHostname, 'netapp_server_hostname').catch(() => [cfg.serverHostname]);
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
    this.client.systemId = await storageSystemId(this.array, this.embedded);
    this.log.info({ system_id: this.client.systemId, version: this.wsVersion, embedded: this.embedded }, 'E-Series storage system ready');
    if (cfg.enableMultiattach) await this.mapper.ensureMultiattachGroup();
  }

  /**
   * Cinder `check_for_setup_error`: the storage system must accept the array password and be
   * online (polled every `netapp_poll_interval` for at most `netapp_sa_comm_timeout`); the host
   * type must exist on the array; at least one pool must match the pool pattern.
   * @throws {@link InvalidConfigError} (`netapp_host_type` / `use_chap_auth` / `netapp_pool_name_search_pattern`)
   * @throws {@link AuthenticationError} (`netapp_sa_password`) for an array password the array rejects
   * @throws {@link BackendUnreachableError} when the array stays offline or never contacted
   */
  async checkForSetupError(): Promise<void> {
    const cfg = this.config;
    await waitForSystem(this.array);
    this.mapper.hostType = await findHostType(this.array);
    if (!cfg.useMultipath) this.log.warn('use_multipath_for_image_xfer is false; E-Series arrays are meant to be used with multipath');
    if (cfg.useChapAuth && !wsVersionAtLeast(this.wsVersion, MIN_CHAP_VERSION)) {
      throw new InvalidConfigError(`invalid use_chap_auth: Web Services ${this.wsVersion} has no CHAP support (needs ${MIN_CHAP_VERSION})`, { field: 'use_chap_auth' });
    }
    await checkPools(this.array);
  }

  /** Release the HTTP connection pool. */
  async close(): Promise<void> {
    await this.client.close();
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
    checkSize(volume.size, 'volume.size');
    const label = uuidToLabel(volume.id);
    const created = await createVolumeOnArray(this.array, volume, label, volume.size, volumeSpecs(volume));
    if (volume.group_id) await this.groups.addMember(volume.group_id, created);
    return { provider_id: created.volumeRef };
  }

  /** Cinder `delete_volume`: succeeds when the volume is already gone; also drops its snapshot-index entries. */
  async deleteVolume(volume: DriverVolume): Promise<void> {
    let v: EsVolume;
    try {
      v = await this.array.getVolumeByLabel(uuidToLabel(volume.id));
    } catch (err) {
      if (isNotFound(err)) {
        this.log.info({ volume_id: volume.id }, 'E-Series volume already deleted');
        return;
      }
      throw err;
    }
    const groups = (await this.snapshots.groupsOf(v.volumeRef)).map((g) => g.id);
    try {
      await this.client.delete(`/ssc/volumes/${v.volumeRef}`);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    await this.snapshots.forgetGroups(groups);
    this.log.info({ volume_id: volume.id }, 'deleted E-Series volume');
  }

  /**
   * Cinder `extend_volume`: thin volumes through `thin-volumes/{id}/expand`, thick ones through
   * `volumes/{id}/expand`; a thick volume on a RAID volume group is then waited on until the
   * pool shows no `remappingDve` (bounded by `netapp_extend_timeout`).
   * @throws {@link InvalidInputError} (`new_size`) when not larger than the current size
   * @throws {@link RetryExhaustedError} when the expansion outlasts `netapp_extend_timeout`
   */
  async extendVolume(volume: DriverVolume, newSize: number): Promise<void> {
    checkSize(newSize, 'new_size');
    const v = await this.array.findVolume(volume);
    const current = Math.ceil(Number(v.capacity) / GIB);
    if (newSize <= current) throw new InvalidInputError('new_size', `${newSize} GiB is not larger than the current ${current} GiB`);
    const thin = v.objectType === 'thinVolume' || v.thinProvisioned === true;
    if (thin) {
      await this.client.post(`/thin-volumes/${v.volumeRef}/expand`, { newVirtualSize: newSize, sizeUnit: 'gb', newRepositorySize: newSize });
    } else {
      await this.client.post(`/volumes/${v.volumeRef}/expand`, { expansionSize: newSize, sizeUnit: 'gb' });
      if (!v.diskPool) await this.waitForDve(v);
    }
    this.log.info({ volume_id: volume.id, new_size_gb: newSize, thin }, 'extended E-Series volume');
  }

  /** Wait until the pool of `v` shows no dynamic volume expansion (`remappingDve`). */
  private async waitForDve(v: EsVolume): Promise<void> {
    await waitFor(async () => {
      const progress = await this.client.get<{ volumeRef: string; currentAction: string }[]>(`/storage-pools/${v.volumeGroupRef}/action-progress`);
      return !progress.some((p) => p.currentAction === 'remappingDve');
    }, this.array.pollOptions(this.config.extendTimeoutMs, `dynamic volume expansion of ${v.label}`));
  }

  // ------------------------------------------------------------------ snapshots

  /**
   * Cinder `create_snapshot`: an image in one of the volume's snapshot groups (the one with the
   * newest image that still has room), or in a new group while the volume has fewer than 3.
   * @returns `{ provider_id: image id }`
   * @throws {@link InvalidStateError} when all 96 snapshot slots are used
   */
  async createSnapshot(snapshot: DriverSnapshot): Promise<ModelUpdate> {
    const vol = await this.array.findVolume({ ...snapshot.volume, id: snapshot.volume_id }, 'snapshot.volume_id');
    return this.ctx.locks.withLock(`eseries-volume-${vol.volumeRef}`, async () => {
      const image = await this.snapshots.createImage(vol, false);
      this.log.info({ snapshot_id: snapshot.id, image: image.id }, 'created E-Series snapshot image');
      return { provider_id: image.id };
    });
  }

  /**
   * Cinder `delete_snapshot`: the array deletes only the oldest image of a group, so the image
   * is marked deleted in the array's persistent record `brick-snapshots`, and every marked
   * image at the old end of the group is deleted (the group too once it is empty). A snapshot
   * that is already gone succeeds.
   */
  async deleteSnapshot(snapshot: DriverSnapshot): Promise<void> {
    const image = await this.snapshots.findImage(snapshot);
    if (!image) {
      this.log.info({ snapshot_id: snapshot.id }, 'E-Series snapshot already deleted');
      return;
    }
    await this.snapshots.deleteImage(image);
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
    checkSize(volume.size, 'volume.size');
    if (volume.size < snapshot.volume_size) throw new InvalidInputError('volume.size', `${volume.size} GiB is smaller than the snapshot (${snapshot.volume_size} GiB)`);
    const image = await this.snapshots.findImage(snapshot);
    if (!image) throw new NotFoundError('snapshot', snapshot.id);
    const source = await this.client.get<EsVolume>(`/ssc/volumes/${image.baseVol}`).catch(() => undefined);
    return this.ctx.locks.withLock(`eseries-snapshot-${snapshot.id}`, async () => {
      const target = await this.snapshots.copyImageToNewVolume(volume, image, source?.volumeGroupRef);
      if (volume.group_id) await this.groups.addMember(volume.group_id, target);
      return { provider_id: target.volumeRef };
    });
  }

  /**
   * Cinder `create_cloned_volume`: a temporary image in the volume's clone snapshot group
   * (`…SGCV`), then the same copy as create-from-snapshot; the temporary group is removed.
   * Clones of one source are serialised so the temporary group holds only this clone's image.
   * @throws {@link InvalidInputError} (`volume.size`) when smaller than the source
   */
  async createClonedVolume(volume: EseriesVolume, source: DriverVolume): Promise<ModelUpdate> {
    checkSize(volume.size, 'volume.size');
    if (volume.size < source.size) throw new InvalidInputError('volume.size', `${volume.size} GiB is smaller than the source volume (${source.size} GiB)`);
    const src = await this.array.findVolume(source, 'source.id');
    return this.ctx.locks.withLock(`eseries-volume-${src.volumeRef}`, async () => {
      const image = await this.snapshots.createImage(src, true);
      try {
        const target = await this.snapshots.copyImageToNewVolume(volume, image, src.volumeGroupRef);
        if (volume.group_id) await this.groups.addMember(volume.group_id, target);
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
    const vol = await this.array.findVolume(volume);
    const lun = await this.mapper.mapToInitiator(vol, iqn);
    const portals = await targetPortals(this.array, vol);
    const data = iscsiProperties(portals, lun, volume.id);
    if (this.config.useChapAuth) Object.assign(data, await enableTargetChap(this.array, portals[0]!.iqn));
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
      vol = await this.array.findVolume(volume);
    } catch (err) {
      if (isNotFound(err)) {
        this.log.warn({ volume_id: volume.id }, 'terminate connection: volume not on the array');
        return;
      }
      throw err;
    }
    await this.mapper.unmapFromInitiator(vol, volume.id, connector === null ? null : connector.initiator!.trim());
  }

  // ------------------------------------------------------------------ stats, pools, manage

  /**
   * Cinder `get_volume_stats`: one entry per pool matching the pool pattern, with capacity in
   * GiB and the SSC capability keys. Cached until called with `refresh`.
   */
  async getVolumeStats(refresh: boolean): Promise<VolumeStats> {
    if (!refresh && this.cachedStats) return this.cachedStats;
    const [pools, sscPools, volumes] = await Promise.all([
      this.array.filteredPools(),
      this.client.get<EsSscPool[]>('/ssc/pools'),
      this.client.get<EsVolume[]>('/ssc/volumes'),
    ]);
    this.cachedStats = backendStats(pools, sscPools, volumes, this.config, NetAppEseriesIscsiDriver.VERSION);
    return this.cachedStats;
  }

  /** Cinder `get_pool`: the label of the storage pool holding the volume. */
  async getPool(volume: DriverVolume): Promise<string> {
    const v = await this.array.findVolume(volume);
    const pool = await this.client.get<EsPool>(`/storage-pools/${v.volumeGroupRef}`);
    return pool.label;
  }

  /** The array volume an existing-volume reference names (`source-name` label, or `source-id` ref or WWN). */
  private async existing(ref: Record<string, unknown>): Promise<EsVolume> {
    const key = ref?.['source-name'] ?? ref?.['source-id'];
    if (typeof key !== 'string' || key.trim() === '') {
      throw new InvalidInputError('existing_ref', 'needs "source-name" (the array label) or "source-id" (the volume ref or WWN)');
    }
    try {
      const v = await this.array.getVolumeByLabel(key.trim());
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
    return this.ctx.locks.withLock(`eseries-manage-${this.client.systemId}`, async () => {
      if (v.label !== label) await this.client.post(`/ssc/volumes/${v.volumeRef}`, { name: label });
      this.log.info({ volume_id: volume.id, from: v.label }, 'managing existing E-Series volume');
      return { size: Math.ceil(Number(v.capacity) / GIB), provider_id: v.volumeRef };
    });
  }

  /**
   * Cinder `manage_existing_get_size`: capacity in GiB, rounded up.
   * @throws {@link InvalidInputError} (`existing_ref`) for a bad reference
   */
  async manageExistingGetSize(_volume: DriverVolume, existingRef: Record<string, unknown>): Promise<number> {
    const v = await this.existing(existingRef);
    return Math.ceil(Number(v.capacity) / GIB);
  }

  /**
   * Cinder `unmanage`: nothing changes on the array; the volume keeps its label.
   * @throws {@link NotFoundError} when the volume is not on the array
   */
  async unmanage(volume: DriverVolume): Promise<void> {
    const v = await this.array.findVolume(volume);
    this.log.info({ volume_id: volume.id, label: v.label }, 'stopped managing E-Series volume');
  }

  // ------------------------------------------------------------------ groups (see groups.ts)

  /** Cinder `create_group`: an E-Series consistency group labelled base32(group.id). */
  async createGroup(group: DriverGroup): Promise<{ status: string }> {
    return this.groups.create(group);
  }

  /** Cinder `delete_group`: delete the member volumes, then the consistency group (a missing group is fine). */
  async deleteGroup(group: DriverGroup, volumes: DriverVolume[]): Promise<{ modelUpdate: { status: string }; volumesModelUpdate: ObjectUpdate[] }> {
    return this.groups.delete(group, volumes);
  }

  /**
   * Cinder `update_group`: add and remove consistency-group members.
   * @throws {@link NotFoundError} when the group or a volume is not on the array
   */
  async updateGroup(
    group: DriverGroup,
    addVolumes: DriverVolume[] = [],
    removeVolumes: DriverVolume[] = [],
  ): Promise<{ modelUpdate: null; addVolumesUpdate: ObjectUpdate[]; removeVolumesUpdate: ObjectUpdate[] }> {
    await this.groups.update(group, addVolumes, removeVolumes);
    return { modelUpdate: null, addVolumesUpdate: [], removeVolumesUpdate: [] };
  }

  /**
   * Cinder `create_group_snapshot`: one consistency-group snapshot; each member snapshot gets its image as `provider_id`.
   * @throws {@link BackendError} when a snapshot's volume is not a member of the group
   */
  async createGroupSnapshot(
    groupSnapshot: DriverGroupSnapshot,
    snapshots: DriverSnapshot[],
  ): Promise<{ modelUpdate: { status: string }; snapshotsModelUpdate: ObjectUpdate[] }> {
    const updates = await this.groups.createSnapshot(groupSnapshot, snapshots);
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
    await this.groups.deleteSnapshot(groupSnapshot, snapshots);
    return { modelUpdate: { status: 'deleted' }, snapshotsModelUpdate: snapshots.map((s) => ({ id: s.id, status: 'deleted' })) };
  }

  /**
   * Cinder `create_group_from_src`: a new consistency group whose volumes are copies of a group
   * snapshot's snapshots or of a source group's volumes. Volumes are paired with their source
   * by `snapshot_id` / `source_volid`, else by position.
   * @throws {@link InvalidInputError} when a volume has no source
   */
  async createGroupFromSrc(
    group: DriverGroup,
    volumes: EseriesVolume[],
    source: GroupSource,
  ): Promise<{ modelUpdate: { status: string }; volumesModelUpdate: (ObjectUpdate & ModelUpdate)[] }> {
    const updates = await this.groups.createFromSrc(group, volumes, source);
    return { modelUpdate: { status: 'available' }, volumesModelUpdate: updates };
  }
}
