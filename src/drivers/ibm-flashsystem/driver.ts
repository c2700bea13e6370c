/**
 * The IBM FlashSystem iSCSI driver: Cinder's `FlashSystemISCSIDriver` 1.0.12
 * (`cinder/volume/drivers/ibm/flashsystem_common.py`, `flashsystem_iscsi.py`) re-implemented on
 * Brick's seams, talking to the array's `svcinfo` / `svctask` CLI over SSH.
 *
 * What it follows from Cinder, and where it differs (each a fix of an upstream defect or gap):
 * - set-up: `lssystem` (the array must have `open_access_enabled` off), `lsmdiskgrp` (the pool
 *   must be online), `lsnode` (online nodes), `lsportip` (the iSCSI address matching
 *   `target_ip_address` and `flashsystem_iscsi_portid`). Brick gives the address to the node that
 *   owns the port (Cinder gave it to the config node) and also collects the same port id on
 *   the other nodes, so a volume gets one portal per node of its I/O group (multipath);
 * - volumes: `mkvdisk` in GiB, `rmvdisk` (a volume that is already gone is a success: Cinder's
 *   production path raised), `expandvdisksize` by the exact byte difference to the new size;
 * - snapshots, clones and volumes from snapshots: a FlashCopy mapping (`mkfcmap -autodelete`,
 *   `startfcmap -prep`, progress from `lsfcmap`) when the array has FlashCopy, otherwise
 *   Cinder's host-side copy (both vdisks mapped to this host, attached with Brick's iSCSI
 *   connector, copied with progress, detached and unmapped). A failed copy deletes the new vdisk
 *   (Cinder left it behind);
 * - `initializeConnection`: the connector's host name becomes a host-object name prefix
 *   (sanitized), the host is found again by that **sanitized** prefix and its IQN (Cinder compared
 *   the raw name and never found sanitized hosts again), created if missing, the vdisk mapped at
 *   the lowest free SCSI id >= 1 unless already mapped (idempotent), `-force` for a second host
 *   only with `flashsystem_multihostmap_enabled`;
 * - `terminateConnection`: the mapping of this initiator's host is removed and the host
 *   deleted once it has no mappings; a null connector removes every mapping of the volume;
 * - `manageExistingGetSize` rounds up to whole GiB (Cinder returned a float);
 * - map and unmap run under per-volume and per-host locks (Cinder 1.0.2's `flashsystem-map`
 *   file locks, finer grained) so concurrent attaches of one host never create two hosts or
 *   pick the same LUN.
 *
 * The class delegates: `array.ts` runs the CLI and holds the set-up state and the locks,
 * `host-mapping.ts` maps and unmaps (host objects, SCSI ids, connection properties), `copy.ts`
 * fills new vdisks (FlashCopy or the host-side copy through the executor).
 *
 * @module
 */
import { AlreadyExistsError, BackendError, BrickError, InvalidConfigError, InvalidInputError, InvalidStateError, NotFoundError } from '../../errors.js';
import { connectorFor } from '../../initiator/factory.js';
import { getConnectorProperties, type ConnectorProperties } from '../../initiator/properties.js';
import type {
  ConnectionInfo,
  DriverContext,
  DriverSnapshot,
  DriverVolume,
  ModelUpdate,
  TerminateOptions,
  VolumeDriver,
  VolumeStats,
} from '../driver.js';
import { FlashSystemArray, GIB, type FlashSystemNode } from './array.js';
import { attr, cliError, cmmvcCode, hostNamePrefix, NOT_FOUND_CODES, parseConcise, parseDetailed, v, validateIqn, validateObjectName, type DetailedView } from './cli.js';
import { parseFlashSystemConfig, type FlashSystemConfig } from './config.js';
import { FlashSystemCopier, type HostCopySeams } from './copy.js';
import { FlashSystemHostMapper } from './host-mapping.js';
import { SshConnectionPool } from './ssh.js';

export type { FlashSystemNode } from './array.js';
export type { HostCopySeams } from './copy.js';

/** Driver version reported in stats (Cinder's `FlashSystemDriver.VERSION`). */
export const FLASHSYSTEM_DRIVER_VERSION = '1.0.12';
/** Extra construction options (tests). */
export interface FlashSystemDriverOptions {
  hostCopy?: HostCopySeams;
}

/**
 * Cinder's `FlashSystemISCSIDriver` as a Brick {@link VolumeDriver}. Built by the registry from
 * a backend configuration (see {@link parseFlashSystemConfig} for the keys).
 */
export class FlashSystemIscsiDriver implements VolumeDriver {
  readonly driverName = 'ibm_flashsystem';
  readonly connectorProtocol = 'ISCSI';
  /** The validated configuration. */
  readonly config: FlashSystemConfig;
  private readonly ctx: DriverContext;
  private readonly ssh: SshConnectionPool;
  private readonly array: FlashSystemArray;
  private readonly mapper: FlashSystemHostMapper;
  private readonly copier: FlashSystemCopier;
  private systemName: string | undefined;
  private systemId: string | undefined;
  private stats: VolumeStats | undefined;

  /** @throws {@link InvalidConfigError} naming the bad key */
  constructor(rawConfig: Record<string, unknown>, ctx: DriverContext, options: FlashSystemDriverOptions = {}) {
    this.config = parseFlashSystemConfig(rawConfig);
    this.ctx = ctx;
    const c = this.config;
    this.ssh = new SshConnectionPool({
      host: c.sanIp,
      port: c.sanSshPort,
      username: c.sanLogin,
      ...(c.sanPassword !== undefined ? { password: c.sanPassword } : {}),
      ...(c.sanPrivateKey !== undefined ? { privateKey: c.sanPrivateKey } : {}),
      ...(c.sanPrivateKeyPassphrase !== undefined ? { passphrase: c.sanPrivateKeyPassphrase } : {}),
      trustedFingerprints: c.trustedHostKeys,
      allowUnknownHostKey: c.allowUnknownHostKey,
      connectTimeoutMs: c.connectTimeoutMs,
      commandTimeoutMs: c.commandTimeoutMs,
      maxConnections: c.maxPoolConnections,
      logger: ctx.logger,
    });
    const hostCopy = options.hostCopy ?? {
      connectorProperties: () => getConnectorProperties({ hostRoot: ctx.hostRoot, multipath: c.useMultipath }),
      connector: () => connectorFor('ISCSI', { useMultipath: c.useMultipath, ctx }),
    };
    this.array = new FlashSystemArray(c, ctx, this.ssh);
    this.mapper = new FlashSystemHostMapper(this.array);
    this.copier = new FlashSystemCopier(this.array, this.mapper, hostCopy, (connector) => this.validateConnector(connector));
  }

  /** Whether attaches for copies use multipath (`use_multipath_for_image_xfer`). */
  get useMultipath(): boolean {
    return this.config.useMultipath;
  }

  /** The online nodes and their iSCSI addresses, as found by {@link doSetup}. */
  get nodeInfo(): readonly FlashSystemNode[] {
    return this.array.nodes;
  }

  /** Whether snapshots and clones use FlashCopy (decided by {@link doSetup}). */
  get usesFlashCopy(): boolean {
    return this.array.flashCopy;
  }

  // ---------------------------------------------------------------- set-up

  /**
   * Cinder `do_setup`: read the system, pool, nodes and iSCSI ports; decide the copy method.
   * @throws {@link AuthenticationError} for refused credentials or an untrusted host key
   * @throws {@link BackendUnreachableError} when the array cannot be reached
   * @throws {@link BackendError} / {@link InvalidConfigError} for an array that cannot serve (open access on, pool offline, no node, no iSCSI address)
   */
  async doSetup(): Promise<void> {
    const sys = parseDetailed(await this.array.cli(['svcinfo', 'lssystem', '-delim', '!']));
    this.systemName = attr(sys, 'name');
    this.systemId = attr(sys, 'id');
    const openAccess = attr(sys, 'open_access_enabled');
    if (openAccess !== undefined && openAccess !== 'off') {
      throw new BackendError(`FlashSystem ${this.systemName ?? ''} has open_access_enabled=${openAccess}; the driver needs it off (every host would see every volume)`);
    }
    await this.poolView();
    await this.loadNodes();
    await this.loadIscsiAddresses();
    await this.probeFlashCopy();
    this.ctx.logger.info(
      { system: this.systemName, nodes: this.array.nodes.map((n) => ({ id: n.id, io_group: n.ioGroupId, ipv4: n.ipv4 })), flashcopy: this.array.flashCopy },
      'FlashSystem backend set up',
    );
  }

  private async poolView(): Promise<DetailedView> {
    const r = await this.array.runRaw(['svcinfo', 'lsmdiskgrp', '-bytes', '-delim', '!', v(this.config.pool)]);
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) {
      throw new InvalidConfigError(`invalid flashsystem_mdiskgrp: pool ${this.config.pool} does not exist on the array`, { field: 'flashsystem_mdiskgrp' });
    }
    if (r.exitCode !== 0 || r.stderr.trim() !== '') throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'pool', id: this.config.pool });
    const view = parseDetailed(r.stdout);
    const status = attr(view, 'status');
    if (status === undefined || status === 'offline') {
      throw new BackendError(`FlashSystem pool ${this.config.pool} is ${status ?? 'of unknown status'}`, { details: { pool: this.config.pool, status: status ?? null } });
    }
    return view;
  }

  private async loadNodes(): Promise<void> {
    const rows = parseConcise(await this.array.cli(['svcinfo', 'lsnode', '-delim', '!']), 'lsnode', ['id', 'name', 'IO_group_id', 'status', 'iscsi_name', 'config_node']);
    this.array.nodes = rows
      .filter((r) => r.status === 'online')
      .map((r) => ({ id: r.id!, name: r.name!, ioGroupId: r.IO_group_id!, iscsiName: r.iscsi_name!, configNode: r.config_node === 'yes', ipv4: [], ipv6: [] }));
    if (this.array.nodes.length === 0) throw new BackendError('FlashSystem reports no online node');
  }

  private async loadIscsiAddresses(): Promise<void> {
    const c = this.config;
    const rows = parseConcise(await this.array.cli(['svcinfo', 'lsportip', '-delim', '!']), 'lsportip', ['id', 'IP_address', 'IP_address_6', 'state', 'speed']);
    const configNode = this.array.nodes.find((n) => n.configNode);
    const usable = (r: Record<string, string>): boolean => (r.state === 'configured' || r.state === 'online') && r.speed !== 'NONE' && r.failover !== 'yes';
    const ownerOf = (r: Record<string, string>): FlashSystemNode | undefined => (r.node_id !== undefined ? this.array.nodes.find((n) => n.id === r.node_id) : configNode);
    const portMatches = (r: Record<string, string>): boolean => c.iscsiPortId === undefined || r.id === String(c.iscsiPortId);
    let portId = c.iscsiPortId !== undefined ? String(c.iscsiPortId) : undefined;
    if (c.targetIpAddress !== undefined) {
      const row = rows.find((r) => (r.IP_address === c.targetIpAddress || r.IP_address_6 === c.targetIpAddress) && portMatches(r) && r.failover !== 'yes');
      if (!row) {
        throw new InvalidConfigError(
          `invalid target_ip_address: no iSCSI port of the array has IP ${c.targetIpAddress}${c.iscsiPortId !== undefined ? ` and id ${c.iscsiPortId} (flashsystem_iscsi_portid)` : ''}`,
          { field: 'target_ip_address' },
        );
      }
      if (row.state !== 'configured' && row.state !== 'online') throw new BackendError(`iSCSI port ${row.id} with IP ${c.targetIpAddress} is ${row.state}, not configured or online`);
      const owner = ownerOf(row);
      if (!owner) throw new BackendError(`iSCSI port ${row.id} with IP ${c.targetIpAddress} belongs to node ${row.node_id ?? '?'}, which is not online`);
      if (row.IP_address) owner.ipv4.push(row.IP_address);
      if (row.IP_address_6) owner.ipv6.push(row.IP_address_6);
      portId = row.id;
    }
    // The same port on the other nodes: further portals for multipath.
    for (const r of rows) {
      if (!usable(r) || (portId !== undefined && r.id !== portId)) continue;
      const owner = ownerOf(r);
      if (!owner) continue;
      if (r.IP_address && !owner.ipv4.includes(r.IP_address)) owner.ipv4.push(r.IP_address);
      if (r.IP_address_6 && !owner.ipv6.includes(r.IP_address_6)) owner.ipv6.push(r.IP_address_6);
    }
    if (!this.array.nodes.some((n) => n.ipv4.length > 0 || n.ipv6.length > 0)) {
      throw new BackendError(`no iSCSI IP address found on the array${portId !== undefined ? ` for port id ${portId}` : ''}; check target_ip_address and flashsystem_iscsi_portid`);
    }
  }

  private async probeFlashCopy(): Promise<void> {
    if (this.config.copyMethod === 'host') {
      this.array.flashCopy = false;
      return;
    }
    const r = await this.array.runRaw(['svcinfo', 'lsfcmap', '-delim', '!']);
    this.array.flashCopy = r.exitCode === 0 && r.stderr.trim() === '';
    if (!this.array.flashCopy && this.config.copyMethod === 'flashcopy') {
      throw new InvalidConfigError(`invalid flashsystem_copy_method: the array does not offer FlashCopy (${r.stderr.trim().slice(0, 120)})`, { field: 'flashsystem_copy_method' });
    }
  }

  /**
   * Cinder `check_for_setup_error`: the system must have been read and have an iSCSI node.
   * @throws {@link InvalidStateError} when {@link doSetup} has not succeeded
   */
  async checkForSetupError(): Promise<void> {
    if (!this.systemName || !this.systemId) throw new InvalidStateError('FlashSystem driver is not set up: the system name and id are unknown (run doSetup)');
    if (!this.array.nodes.some((n) => n.ipv4.length > 0 || n.ipv6.length > 0)) throw new InvalidStateError('FlashSystem driver has no node with an iSCSI address');
  }

  // ---------------------------------------------------------------- volumes

  private volumeName(volume: DriverVolume | undefined, field = 'volume.name'): string {
    if (!volume) throw new InvalidInputError(field.replace(/\.name$/, ''), 'is required');
    return validateObjectName(field, volume.name);
  }

  private static gib(field: string, size: unknown): number {
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 1) throw new InvalidInputError(field, 'must be a whole number of GiB, at least 1');
    return size;
  }

  /** `mkvdisk -size <GiB> -unit gb` in the configured pool and I/O group. */
  async createVolume(volume: DriverVolume): Promise<ModelUpdate | void> {
    const name = this.volumeName(volume);
    const size = FlashSystemIscsiDriver.gib('volume.size', volume.size);
    const id = await this.array.withVdiskLock(name, () => this.array.mkvdisk(name, size, 'gb'));
    return { provider_id: id };
  }

  /** `rmvdisk`; a vdisk that does not exist counts as deleted. Removes a leftover FlashCopy mapping that targets it. */
  async deleteVolume(volume: DriverVolume): Promise<void> {
    const name = this.volumeName(volume);
    await this.array.withVdiskLock(name, () => this.array.rmvdisk(name));
  }

  /**
   * Grow the vdisk to `newSize` GiB with `expandvdisksize -size <bytes> -unit b` (the exact
   * difference to the current capacity, so a vdisk of an odd byte size ends on a GiB boundary).
   * @throws {@link InvalidInputError} (field `new_size`) when smaller than the current size
   */
  async extendVolume(volume: DriverVolume, newSize: number): Promise<void> {
    const name = this.volumeName(volume);
    const size = FlashSystemIscsiDriver.gib('new_size', newSize);
    await this.array.withVdiskLock(name, async () => {
      const capacity = this.array.capacityOf(await this.array.requireVdisk(name), name);
      const delta = size * GIB - capacity;
      if (delta < 0) throw new InvalidInputError('new_size', `${size} GiB is smaller than the volume's current ${(capacity / GIB).toFixed(2)} GiB`);
      if (delta === 0) return;
      await this.array.expandVdisk(name, delta);
    });
  }

  // ---------------------------------------------------------------- snapshots and clones

  /**
   * A full point-in-time copy of the volume into vdisk `snapshot.name` (FlashCopy or host-side copy).
   * On failure the new vdisk is deleted again.
   * @throws {@link InvalidInputError} (field `snapshot`, `snapshot.name`, `snapshot.volume` or `snapshot.volume.name`) for a missing snapshot or a name the CLI refuses
   * @throws {@link NotFoundError} when the source vdisk does not exist; {@link AlreadyExistsError} when a vdisk named `snapshot.name` does
   * @throws {@link InsufficientCapacityError} when the pool has not enough free extents (CMMVC5860E)
   * @throws {@link RetryExhaustedError} when the FlashCopy does not finish within `flashsystem_copy_timeout`
   * @throws {@link BackendError} for any other failed command or a FlashCopy mapping that stops; the host-side copy
   *   passes on the iSCSI connector's and the copy's errors
   */
  async createSnapshot(snapshot: DriverSnapshot): Promise<ModelUpdate | void> {
    if (!snapshot) throw new InvalidInputError('snapshot', 'is required');
    const snapName = validateObjectName('snapshot.name', snapshot.name);
    const source = this.volumeName(snapshot.volume, 'snapshot.volume.name');
    const id = await this.copier.copyToNew(source, snapName, undefined);
    return { provider_id: id };
  }

  /** `rmvdisk` of the snapshot's vdisk; a snapshot already gone counts as deleted. */
  async deleteSnapshot(snapshot: DriverSnapshot): Promise<void> {
    const name = validateObjectName('snapshot.name', snapshot?.name);
    await this.array.withVdiskLock(name, () => this.array.rmvdisk(name));
  }

  /**
   * A new volume with the snapshot's data, grown to `volume.size`.
   * @throws {@link InvalidInputError} (field `volume.size`) when smaller than the snapshot's volume
   */
  async createVolumeFromSnapshot(volume: DriverVolume, snapshot: DriverSnapshot): Promise<ModelUpdate | void> {
    const name = this.volumeName(volume);
    const size = FlashSystemIscsiDriver.gib('volume.size', volume.size);
    const snapName = validateObjectName('snapshot.name', snapshot?.name);
    if (typeof snapshot.volume_size === 'number' && size < snapshot.volume_size) {
      throw new InvalidInputError('volume.size', `${size} GiB is smaller than the snapshot's ${snapshot.volume_size} GiB`);
    }
    const id = await this.copier.copyToNew(snapName, name, size);
    return { provider_id: id };
  }

  /**
   * A new volume with the source volume's data, grown to `volume.size`.
   * @throws {@link InvalidInputError} (field `volume.size`) when smaller than the source
   */
  async createClonedVolume(volume: DriverVolume, source: DriverVolume): Promise<ModelUpdate | void> {
    const name = this.volumeName(volume);
    const size = FlashSystemIscsiDriver.gib('volume.size', volume.size);
    const src = this.volumeName(source, 'source.name');
    if (typeof source.size === 'number' && source.size > size) throw new InvalidInputError('volume.size', `${size} GiB is smaller than the source's ${source.size} GiB`);
    const id = await this.copier.copyToNew(src, name, size);
    return { provider_id: id };
  }

  // ---------------------------------------------------------------- exports (no-ops, as SanDriver)

  /** No-op: mapping happens in {@link initializeConnection} (Cinder's SanDriver). */
  async createExport(): Promise<ModelUpdate | void> {}
  /** No-op. */
  async ensureExport(): Promise<ModelUpdate | void> {}
  /** No-op. */
  async removeExport(): Promise<void> {}

  // ---------------------------------------------------------------- attach / detach

  /**
   * Cinder `validate_connector`: iSCSI needs the connector's `initiator` (a valid IQN) and `host`.
   * @throws {@link InvalidInputError} naming `connector.initiator` or `connector.host`
   */
  validateConnector(connector: ConnectorProperties): void {
    if (!connector || typeof connector !== 'object') throw new InvalidInputError('connector', 'is required');
    if (connector.initiator === undefined || connector.initiator === null || connector.initiator === '') {
      throw new InvalidInputError('connector.initiator', 'is required for iSCSI (the host has no /etc/iscsi/initiatorname.iscsi?)');
    }
    validateIqn('connector.initiator', connector.initiator);
    hostNamePrefix(connector.host);
  }

  /**
   * Map the volume to the connector's host (creating the host object if needed) and return
   * `{ driver_volume_type: 'iscsi', data: { target_discovered, target_portal, target_iqn,
   * target_lun, volume_id, [target_portals, target_iqns, target_luns] } }` for the nodes of the
   * volume's I/O group. Calling it again for a mapped volume returns the same LUN.
   * @throws {@link InvalidInputError} for a bad connector; {@link NotFoundError} for a missing vdisk;
   *   {@link InvalidStateError} for a volume mapped to another host when multi-host mapping is disabled
   */
  async initializeConnection(volume: DriverVolume, connector: ConnectorProperties): Promise<ConnectionInfo> {
    const name = this.volumeName(volume);
    this.validateConnector(connector);
    return this.array.withVdiskLock(name, async () => {
      const view = await this.array.requireVdisk(name);
      const mapping = await this.mapper.mapVdisk(name, connector);
      try {
        return await this.mapper.connectionInfo(name, mapping.lun, volume.id, view);
      } catch (err) {
        if (mapping.created) await this.mapper.unmapVdisk(name, connector).catch(() => undefined);
        throw err;
      }
    });
  }

  /**
   * Remove the mapping of the volume to the connector's host, and delete the host object once
   * it has no mappings left (Cinder bug 1570574). A null connector removes every mapping of the
   * volume. Unmapping a volume that is not mapped (or no longer exists) succeeds.
   */
  async terminateConnection(volume: DriverVolume, connector: ConnectorProperties | null, _options: TerminateOptions = {}): Promise<void> {
    const name = this.volumeName(volume);
    if (connector !== null && connector !== undefined) this.validateConnector(connector);
    await this.array.withVdiskLock(name, async () => {
      if (!(await this.array.lsvdisk(name))) {
        this.ctx.logger.warn({ vdisk: name }, 'terminate connection: vdisk does not exist');
        return;
      }
      if (connector) {
        await this.mapper.unmapVdisk(name, connector);
        return;
      }
      await this.mapper.unmapAll(name);
    });
  }

  // ---------------------------------------------------------------- stats and manage

  /**
   * Cinder's stats for this backend (cached; `refresh` re-reads the pool): vendor `IBM`,
   * `storage_protocol` `iSCSI`, capacities in GiB from `lsmdiskgrp -bytes`, `multiattach` =
   * `flashsystem_multihostmap_enabled`, `location_info` `FlashSystemDriver:<system id>:<pool>`.
   * @throws {@link InvalidConfigError} (field `flashsystem_mdiskgrp`) when the pool no longer exists on the array
   * @throws {@link BackendError} when the pool is offline, `lsmdiskgrp` fails or prints no capacity in bytes
   * @throws {@link ProcessTimeoutError}, {@link AuthenticationError} or {@link BackendUnreachableError} from the SSH pool
   */
  async getVolumeStats(refresh: boolean): Promise<VolumeStats> {
    if (this.stats && !refresh) return this.stats;
    const pool = await this.poolView();
    const capacity = Number(attr(pool, 'capacity') ?? NaN);
    const free = Number(attr(pool, 'free_capacity') ?? NaN);
    if (!Number.isFinite(capacity) || !Number.isFinite(free)) throw new BackendError(`lsmdiskgrp ${this.config.pool} printed no capacity in bytes`);
    const round2 = (n: number): number => Math.round((n / GIB) * 100) / 100;
    this.stats = {
      volume_backend_name: this.config.volumeBackendName ?? this.ctx.backendName ?? `${this.systemName}_${this.config.pool}`,
      vendor_name: 'IBM',
      driver_version: FLASHSYSTEM_DRIVER_VERSION,
      storage_protocol: 'iSCSI',
      total_capacity_gb: round2(capacity),
      free_capacity_gb: round2(free),
      reserved_percentage: this.config.reservedPercentage,
      QoS_support: false,
      multiattach: this.config.multiHostMapEnabled,
      easytier_support: false,
      thin_provisioning_support: false,
      thick_provisioning_support: true,
      location_info: `FlashSystemDriver:${this.systemId}:${this.config.pool}`,
      flashcopy_support: this.array.flashCopy,
    };
    return this.stats;
  }

  private async manageRef(existingRef: Record<string, unknown>): Promise<{ name: string; view: DetailedView }> {
    if (!existingRef || typeof existingRef !== 'object') throw new InvalidInputError('existing_ref', 'must name source-name or source-id');
    const byName = existingRef['source-name'];
    const byId = existingRef['source-id'];
    let view: DetailedView | undefined;
    let label: string;
    if (byName !== undefined && byName !== null && byName !== '') {
      label = validateObjectName('existing_ref.source-name', byName);
      view = await this.array.lsvdisk(label);
    } else if (byId !== undefined && byId !== null && byId !== '') {
      const id = typeof byId === 'number' ? byId : typeof byId === 'string' && /^\d+$/.test(byId) ? Number(byId) : NaN;
      if (!Number.isSafeInteger(id) || id < 0) throw new InvalidInputError('existing_ref.source-id', 'must be a vdisk id (a non-negative integer)');
      label = String(id);
      view = await this.array.lsvdisk(id);
    } else {
      throw new InvalidInputError('existing_ref', 'must name source-name or source-id');
    }
    if (!view) throw new NotFoundError('vdisk', label, { field: 'existing_ref' });
    return { name: attr(view, 'name')!, view };
  }

  /**
   * Adopt an existing vdisk (`source-name` or `source-id`): rename it to `volume.name` with
   * `chvdisk -name`.
   * @throws {@link NotFoundError} (field `existing_ref`) when no such vdisk; {@link AlreadyExistsError} when the new name is taken
   */
  async manageExisting(volume: DriverVolume, existingRef: Record<string, unknown>): Promise<ModelUpdate | void> {
    const name = this.volumeName(volume);
    const { name: current, view } = await this.manageRef(existingRef);
    if (current !== name) {
      if (await this.array.lsvdisk(name)) throw new AlreadyExistsError(`a vdisk named ${name} already exists`, { field: 'volume.name' });
      await this.array.cliSilent(['svctask', 'chvdisk', '-name', v(name), v(current)], { kind: 'vdisk', id: current });
    }
    const capacity = this.array.capacityOf(view, current);
    return { provider_id: attr(view, 'id') ?? null, size: Math.ceil(capacity / GIB) };
  }

  /**
   * Size in whole GiB (rounded up) of the vdisk `existingRef` names. A mapped vdisk cannot be
   * managed (Cinder's rule).
   * @throws {@link NotFoundError}; {@link InvalidStateError} when the vdisk is mapped to a host
   */
  async manageExistingGetSize(_volume: DriverVolume, existingRef: Record<string, unknown>): Promise<number> {
    const { name, view } = await this.manageRef(existingRef);
    const maps = await this.mapper.vdiskMappings(name);
    if (maps.length > 0) throw new InvalidStateError(`vdisk ${name} is mapped to ${maps.map((m) => m.host_name).join(', ')}; unmap it before managing it`, { field: 'existing_ref' });
    return Math.ceil(this.array.capacityOf(view, name) / GIB);
  }

  /** Stop managing the volume: nothing changes on the array (Cinder's no-op). */
  async unmanage(volume: DriverVolume): Promise<void> {
    this.ctx.logger.info({ vdisk: volume?.name }, 'unmanaged FlashSystem volume (left on the array)');
  }

  /** Close the SSH connections. */
  async close(): Promise<void> {
    await this.ssh.close();
  }
}

/** Whether `err` is a Brick error with CMMVC code `code` (tests, callers). */
export function hasCmmvc(err: unknown, code: string): boolean {
  return err instanceof BrickError && err.details?.cmmvc === code;
}
