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
 * @module
 */
import { randomInt } from 'node:crypto';
import { open } from 'node:fs/promises';
import {
  AlreadyExistsError,
  BackendError,
  BrickError,
  InvalidConfigError,
  InvalidInputError,
  InvalidStateError,
  NotFoundError,
} from '../../errors.js';
import type { Connector, DeviceInfo } from '../../initiator/connector.js';
import { connectorFor } from '../../initiator/factory.js';
import { getConnectorProperties, type ConnectorProperties } from '../../initiator/properties.js';
import { waitFor } from '../../host/retry.js';
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
import {
  attr,
  cliError,
  cmmvcCode,
  hostNamePrefix,
  MULTI_HOST_MAP_CODES,
  NOT_FOUND_CODES,
  parseConcise,
  parseDetailed,
  prefixOfHostName,
  renderCommand,
  v,
  validateIqn,
  validateObjectName,
  type CliErrorContext,
  type CliWord,
  type DetailedView,
} from './cli.js';
import { parseFlashSystemConfig, type FlashSystemConfig } from './config.js';
import { SshConnectionPool, type SshResult } from './ssh.js';

/** Driver version reported in stats (Cinder's `FlashSystemDriver.VERSION`). */
export const FLASHSYSTEM_DRIVER_VERSION = '1.0.12';
const GIB = 1024 ** 3;

/** An online node with the iSCSI addresses found for it. */
export interface FlashSystemNode {
  id: string;
  name: string;
  ioGroupId: string;
  iscsiName: string;
  configNode: boolean;
  ipv4: string[];
  ipv6: string[];
}

/** Seams for the host-side copy (tests replace them; production uses the real host). */
export interface HostCopySeams {
  /** This host's connector properties (must carry `initiator`). */
  connectorProperties(): Promise<ConnectorProperties>;
  /** An iSCSI connector. */
  connector(): Connector;
}

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
  private readonly hostCopy: HostCopySeams;
  private systemName: string | undefined;
  private systemId: string | undefined;
  private nodes: FlashSystemNode[] = [];
  private flashCopy = false;
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
      logger: ctx.host.logger,
    });
    this.hostCopy = options.hostCopy ?? {
      connectorProperties: () => getConnectorProperties({ hostRoot: ctx.host.hostRoot, multipath: c.useMultipath }),
      connector: () => connectorFor('ISCSI', { useMultipath: c.useMultipath, host: ctx.host }),
    };
  }

  /** Whether attaches for copies use multipath (`use_multipath_for_image_xfer`). */
  get useMultipath(): boolean {
    return this.config.useMultipath;
  }

  /** The online nodes and their iSCSI addresses, as found by {@link doSetup}. */
  get nodeInfo(): readonly FlashSystemNode[] {
    return this.nodes;
  }

  /** Whether snapshots and clones use FlashCopy (decided by {@link doSetup}). */
  get usesFlashCopy(): boolean {
    return this.flashCopy;
  }

  // ---------------------------------------------------------------- CLI plumbing

  private async runRaw(words: readonly CliWord[], timeoutMs?: number): Promise<SshResult & { line: string }> {
    const line = renderCommand(words);
    this.ctx.host.logger.debug({ command: line }, 'FlashSystem CLI');
    const r = await this.ssh.run(line, timeoutMs !== undefined ? { timeoutMs } : {});
    return { ...r, line };
  }

  /** Run a command that must succeed (exit 0, nothing on stderr); returns stdout. */
  private async cli(words: readonly CliWord[], ctx: CliErrorContext = {}): Promise<string> {
    const r = await this.runRaw(words);
    if (r.exitCode !== 0 || r.stderr.trim() !== '') throw cliError(r.line, r.exitCode, r.stdout, r.stderr, ctx);
    return r.stdout;
  }

  /** Run a command that must print nothing (Cinder's `_assert_ssh_return` for silent commands). */
  private async cliSilent(words: readonly CliWord[], ctx: CliErrorContext = {}): Promise<void> {
    const out = await this.cli(words, ctx);
    if (out.trim() !== '') throw new BackendError(`unexpected output of ${renderCommand(words)}: ${out.trim().slice(0, 200)}`, { details: { command: renderCommand(words) } });
  }

  /** Run a create command whose stdout must say `..., id [N], successfully created`; returns N. */
  private async cliCreate(words: readonly CliWord[], ctx: CliErrorContext = {}): Promise<string> {
    const out = await this.cli(words, ctx);
    const m = /id \[(\d+)\], successfully created/.exec(out);
    if (!m) throw new BackendError(`unexpected output of ${renderCommand(words)}: ${out.trim().slice(0, 200)}`, { details: { command: renderCommand(words) } });
    return m[1]!;
  }

  /** `lsvdisk -bytes` of one vdisk, or undefined when it does not exist (CMMVC5753E/5754E). */
  private async lsvdisk(ref: string | number): Promise<DetailedView | undefined> {
    const r = await this.runRaw(['svcinfo', 'lsvdisk', '-bytes', '-delim', '!', typeof ref === 'number' ? ref : v(ref)]);
    if (r.exitCode === 0 && r.stderr.trim() === '') return parseDetailed(r.stdout);
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return undefined;
    throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'vdisk', id: String(ref) });
  }

  private async requireVdisk(name: string): Promise<DetailedView> {
    const view = await this.lsvdisk(name);
    if (!view) throw new NotFoundError('vdisk', name);
    return view;
  }

  private capacityOf(view: DetailedView, name: string): number {
    const c = attr(view, 'capacity');
    if (c === undefined || !/^\d+$/.test(c)) throw new BackendError(`lsvdisk ${name} printed no capacity in bytes`);
    return Number(c);
  }

  private lockName(kind: string, name: string): string {
    return `flashsystem-${this.config.sanIp}-${kind}-${name}`;
  }

  private withVdiskLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.ctx.host.locks.withLock(this.lockName('vdisk', name), fn, { timeoutMs: this.config.lockTimeoutMs ?? this.config.copyTimeoutMs + 60_000 });
  }

  private withVdiskLocks<T>(names: string[], fn: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(names)].sort();
    const step = (i: number): Promise<T> => (i >= sorted.length ? fn() : this.withVdiskLock(sorted[i]!, () => step(i + 1)));
    return step(0);
  }

  private withHostLock<T>(prefix: string, fn: () => Promise<T>): Promise<T> {
    return this.ctx.host.locks.withLock(this.lockName('host', prefix), fn, { timeoutMs: this.config.lockTimeoutMs ?? this.config.commandTimeoutMs * 10 });
  }

  // ---------------------------------------------------------------- set-up

  /**
   * Cinder `do_setup`: read the system, pool, nodes and iSCSI ports; decide the copy method.
   * @throws {@link AuthenticationError} for refused credentials or an untrusted host key
   * @throws {@link BackendUnreachableError} when the array cannot be reached
   * @throws {@link BackendError} / {@link InvalidConfigError} for an array that cannot serve (open access on, pool offline, no node, no iSCSI address)
   */
  async doSetup(): Promise<void> {
    const sys = parseDetailed(await this.cli(['svcinfo', 'lssystem', '-delim', '!']));
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
    this.ctx.host.logger.info(
      { system: this.systemName, nodes: this.nodes.map((n) => ({ id: n.id, io_group: n.ioGroupId, ipv4: n.ipv4 })), flashcopy: this.flashCopy },
      'FlashSystem backend set up',
    );
  }

  private async poolView(): Promise<DetailedView> {
    const r = await this.runRaw(['svcinfo', 'lsmdiskgrp', '-bytes', '-delim', '!', v(this.config.pool)]);
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
    const rows = parseConcise(await this.cli(['svcinfo', 'lsnode', '-delim', '!']), 'lsnode', ['id', 'name', 'IO_group_id', 'status', 'iscsi_name', 'config_node']);
    this.nodes = rows
      .filter((r) => r.status === 'online')
      .map((r) => ({ id: r.id!, name: r.name!, ioGroupId: r.IO_group_id!, iscsiName: r.iscsi_name!, configNode: r.config_node === 'yes', ipv4: [], ipv6: [] }));
    if (this.nodes.length === 0) throw new BackendError('FlashSystem reports no online node');
  }

  private async loadIscsiAddresses(): Promise<void> {
    const c = this.config;
    const rows = parseConcise(await this.cli(['svcinfo', 'lsportip', '-delim', '!']), 'lsportip', ['id', 'IP_address', 'IP_address_6', 'state', 'speed']);
    const configNode = this.nodes.find((n) => n.configNode);
    const usable = (r: Record<string, string>): boolean => (r.state === 'configured' || r.state === 'online') && r.speed !== 'NONE' && r.failover !== 'yes';
    const ownerOf = (r: Record<string, string>): FlashSystemNode | undefined => (r.node_id !== undefined ? this.nodes.find((n) => n.id === r.node_id) : configNode);
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
    if (!this.nodes.some((n) => n.ipv4.length > 0 || n.ipv6.length > 0)) {
      throw new BackendError(`no iSCSI IP address found on the array${portId !== undefined ? ` for port id ${portId}` : ''}; check target_ip_address and flashsystem_iscsi_portid`);
    }
  }

  private async probeFlashCopy(): Promise<void> {
    if (this.config.copyMethod === 'host') {
      this.flashCopy = false;
      return;
    }
    const r = await this.runRaw(['svcinfo', 'lsfcmap', '-delim', '!']);
    this.flashCopy = r.exitCode === 0 && r.stderr.trim() === '';
    if (!this.flashCopy && this.config.copyMethod === 'flashcopy') {
      throw new InvalidConfigError(`invalid flashsystem_copy_method: the array does not offer FlashCopy (${r.stderr.trim().slice(0, 120)})`, { field: 'flashsystem_copy_method' });
    }
  }

  /**
   * Cinder `check_for_setup_error`: the system must have been read and have an iSCSI node.
   * @throws {@link InvalidStateError} when {@link doSetup} has not succeeded
   */
  async checkForSetupError(): Promise<void> {
    if (!this.systemName || !this.systemId) throw new InvalidStateError('FlashSystem driver is not set up: the system name and id are unknown (run doSetup)');
    if (!this.nodes.some((n) => n.ipv4.length > 0 || n.ipv6.length > 0)) throw new InvalidStateError('FlashSystem driver has no node with an iSCSI address');
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
    const id = await this.withVdiskLock(name, () => this.mkvdisk(name, size, 'gb'));
    return { provider_id: id };
  }

  private mkvdisk(name: string, size: number, unit: 'gb' | 'b'): Promise<string> {
    return this.cliCreate(['svctask', 'mkvdisk', '-name', v(name), '-mdiskgrp', v(this.config.pool), '-iogrp', this.config.ioGroup, '-size', size, '-unit', unit], { kind: 'vdisk', id: name });
  }

  /** `rmvdisk`; a vdisk that does not exist counts as deleted. Removes a leftover FlashCopy mapping that targets it. */
  async deleteVolume(volume: DriverVolume): Promise<void> {
    const name = this.volumeName(volume);
    await this.withVdiskLock(name, () => this.rmvdisk(name));
  }

  private async rmvdisk(name: string): Promise<void> {
    const view = await this.lsvdisk(name);
    if (!view) {
      this.ctx.host.logger.warn({ vdisk: name }, 'vdisk to delete does not exist; treating it as deleted');
      return;
    }
    if (Number(attr(view, 'fc_map_count') ?? '0') > 0 && this.flashCopy) await this.removeTargetFcMaps(name);
    const r = await this.runRaw(['svctask', 'rmvdisk', v(name)]);
    if (r.exitCode === 0 && r.stderr.trim() === '') {
      if (r.stdout.trim() !== '') throw new BackendError(`unexpected output of rmvdisk ${name}: ${r.stdout.trim().slice(0, 200)}`);
      return;
    }
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return; // deleted meanwhile
    throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'vdisk', id: name });
  }

  private async removeTargetFcMaps(name: string): Promise<void> {
    const rows = parseConcise(await this.cli(['svcinfo', 'lsfcmap', '-delim', '!']), 'lsfcmap', ['id', 'target_vdisk_name']);
    for (const row of rows.filter((r) => r.target_vdisk_name === name)) {
      await this.runRaw(['svctask', 'stopfcmap', '-force', Number(row.id)]);
      await this.runRaw(['svctask', 'rmfcmap', '-force', Number(row.id)]);
    }
  }

  /**
   * Grow the vdisk to `newSize` GiB with `expandvdisksize -size <bytes> -unit b` (the exact
   * difference to the current capacity, so a vdisk of an odd byte size ends on a GiB boundary).
   * @throws {@link InvalidInputError} (field `new_size`) when smaller than the current size
   */
  async extendVolume(volume: DriverVolume, newSize: number): Promise<void> {
    const name = this.volumeName(volume);
    const size = FlashSystemIscsiDriver.gib('new_size', newSize);
    await this.withVdiskLock(name, async () => {
      const capacity = this.capacityOf(await this.requireVdisk(name), name);
      const delta = size * GIB - capacity;
      if (delta < 0) throw new InvalidInputError('new_size', `${size} GiB is smaller than the volume's current ${(capacity / GIB).toFixed(2)} GiB`);
      if (delta === 0) return;
      await this.cliSilent(['svctask', 'expandvdisksize', '-size', delta, '-unit', 'b', v(name)], { kind: 'vdisk', id: name });
    });
  }

  // ---------------------------------------------------------------- snapshots and clones

  /** A full point-in-time copy of the volume into vdisk `snapshot.name` (FlashCopy or host-side copy). */
  async createSnapshot(snapshot: DriverSnapshot): Promise<ModelUpdate | void> {
    if (!snapshot) throw new InvalidInputError('snapshot', 'is required');
    const snapName = validateObjectName('snapshot.name', snapshot.name);
    const source = this.volumeName(snapshot.volume, 'snapshot.volume.name');
    const id = await this.copyToNew(source, snapName, undefined);
    return { provider_id: id };
  }

  /** `rmvdisk` of the snapshot's vdisk; a snapshot already gone counts as deleted. */
  async deleteSnapshot(snapshot: DriverSnapshot): Promise<void> {
    const name = validateObjectName('snapshot.name', snapshot?.name);
    await this.withVdiskLock(name, () => this.rmvdisk(name));
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
    const id = await this.copyToNew(snapName, name, size);
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
    const id = await this.copyToNew(src, name, size);
    return { provider_id: id };
  }

  /**
   * Create vdisk `target` with `source`'s byte capacity, copy the data, then grow it to
   * `sizeGib` when given. On any failure the new vdisk is deleted again.
   */
  private async copyToNew(source: string, target: string, sizeGib: number | undefined): Promise<string> {
    return this.withVdiskLocks([source, target], async () => {
      const capacity = this.capacityOf(await this.requireVdisk(source), source);
      if (sizeGib !== undefined && sizeGib * GIB < capacity) throw new InvalidInputError('volume.size', `${sizeGib} GiB is smaller than ${source} (${capacity} bytes)`);
      const id = await this.mkvdisk(target, capacity, 'b');
      try {
        if (this.flashCopy) await this.flashCopyData(source, target, capacity);
        else await this.hostCopyData(source, target, capacity);
        if (sizeGib !== undefined && sizeGib * GIB > capacity) {
          await this.cliSilent(['svctask', 'expandvdisksize', '-size', sizeGib * GIB - capacity, '-unit', 'b', v(target)], { kind: 'vdisk', id: target });
        }
      } catch (err) {
        try {
          await this.rmvdisk(target);
        } catch (cleanupErr) {
          this.ctx.host.logger.error({ vdisk: target, err: (cleanupErr as Error).message }, 'could not delete the vdisk of a failed copy');
        }
        throw err;
      }
      return id;
    });
  }

  private async flashCopyData(source: string, target: string, capacity: number): Promise<void> {
    const mapName = `brick-fc-${target}`.slice(0, 63);
    const id = await this.cliCreate(
      ['svctask', 'mkfcmap', '-source', v(source), '-target', v(target), '-name', v(mapName), '-copyrate', this.config.copyRate, '-autodelete'],
      { kind: 'FlashCopy mapping', id: mapName },
    );
    try {
      await this.cliSilent(['svctask', 'startfcmap', '-prep', Number(id)], { kind: 'FlashCopy mapping', id });
      this.ctx.onProgress?.('copy', 0, capacity);
      await waitFor(
        async () => {
          const r = await this.runRaw(['svcinfo', 'lsfcmap', '-delim', '!', v(mapName)]);
          if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return true; // copied and auto-deleted
          if (r.exitCode !== 0 || r.stderr.trim() !== '') throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'FlashCopy mapping', id: mapName });
          const view = parseDetailed(r.stdout);
          const status = attr(view, 'status');
          const progress = Number(attr(view, 'progress') ?? '0');
          this.ctx.onProgress?.('copy', Math.floor((capacity * progress) / 100), capacity);
          if (status === 'idle_or_copied' && progress >= 100) return true;
          if (status !== 'copying' && status !== 'preparing' && status !== 'prepared') {
            throw new BackendError(`FlashCopy mapping ${mapName} from ${source} to ${target} is ${status ?? 'in an unknown state'} at ${progress}%`);
          }
          return false;
        },
        { timeoutMs: this.config.copyTimeoutMs, intervalMs: 50, maxIntervalMs: 2000, description: `FlashCopy of ${source} to ${target}` },
      );
      this.ctx.onProgress?.('copy', capacity, capacity);
      // Without -autodelete support the mapping stays: remove it.
      const left = await this.runRaw(['svcinfo', 'lsfcmap', '-delim', '!', v(mapName)]);
      if (left.exitCode === 0 && left.stderr.trim() === '') await this.runRaw(['svctask', 'rmfcmap', '-force', v(mapName)]);
    } catch (err) {
      await this.runRaw(['svctask', 'stopfcmap', '-force', v(mapName)]).catch(() => undefined);
      await this.runRaw(['svctask', 'rmfcmap', '-force', v(mapName)]).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Cinder's `_copy_vdisk_data`: map both vdisks to this host, attach them with the iSCSI
   * connector, copy `capacity` bytes with progress, then detach and unmap what this call mapped.
   */
  private async hostCopyData(source: string, target: string, capacity: number): Promise<void> {
    const props = await this.hostCopy.connectorProperties();
    this.validateConnector(props);
    const connector = this.hostCopy.connector();
    const attached: { vdisk: string; mappedHere: boolean; info?: ConnectionInfo; device?: DeviceInfo }[] = [];
    try {
      for (const vdisk of [source, target]) {
        const entry: (typeof attached)[number] = { vdisk, mappedHere: false };
        attached.push(entry);
        const mapping = await this.mapVdisk(vdisk, props);
        entry.mappedHere = mapping.created;
        entry.info = await this.connectionInfo(vdisk, mapping.lun, vdisk);
        entry.device = await connector.connectVolume(entry.info.data);
      }
      await this.copyDevice(attached[0]!.device!.path, attached[1]!.device!.path, capacity);
    } finally {
      for (const entry of attached.reverse()) {
        try {
          if (entry.device && entry.info) await connector.disconnectVolume(entry.info.data, entry.device, {});
          if (entry.mappedHere) await this.unmapVdisk(entry.vdisk, props);
        } catch (err) {
          this.ctx.host.logger.error({ vdisk: entry.vdisk, err: (err as Error).message }, 'cleanup after a host-side copy failed');
        }
      }
    }
  }

  private async copyDevice(from: string, to: string, total: number): Promise<void> {
    const src = await open(from, 'r');
    try {
      const dst = await open(to, 'r+');
      try {
        const buf = Buffer.alloc(Math.min(this.config.copyBlockSize, Math.max(512, total)));
        let done = 0;
        this.ctx.onProgress?.('copy', 0, total);
        while (done < total) {
          const want = Math.min(buf.length, total - done);
          const { bytesRead } = await src.read(buf, 0, want, done);
          if (bytesRead === 0) throw new BackendError(`host-side copy: ${from} ended at ${done} of ${total} bytes`);
          let off = 0;
          while (off < bytesRead) {
            const { bytesWritten } = await dst.write(buf, off, bytesRead - off, done + off);
            off += bytesWritten;
          }
          done += bytesRead;
          this.ctx.onProgress?.('copy', done, total);
        }
        await dst.datasync();
      } finally {
        await dst.close();
      }
    } finally {
      await src.close();
    }
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
    return this.withVdiskLock(name, async () => {
      const view = await this.requireVdisk(name);
      const mapping = await this.mapVdisk(name, connector);
      try {
        return await this.connectionInfo(name, mapping.lun, volume.id, view);
      } catch (err) {
        if (mapping.created) await this.unmapVdisk(name, connector).catch(() => undefined);
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
    await this.withVdiskLock(name, async () => {
      if (!(await this.lsvdisk(name))) {
        this.ctx.host.logger.warn({ vdisk: name }, 'terminate connection: vdisk does not exist');
        return;
      }
      if (connector) {
        await this.unmapVdisk(name, connector);
        return;
      }
      for (const row of await this.vdiskMappings(name)) {
        const host = row.host_name!;
        await this.withHostLock(prefixOfHostName(host), async () => {
          await this.rmvdiskhostmap(host, name);
          await this.removeHostIfUnused(host);
        });
      }
    });
  }

  private async vdiskMappings(name: string): Promise<Record<string, string>[]> {
    const r = await this.runRaw(['svcinfo', 'lsvdiskhostmap', '-delim', '!', v(name)]);
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return [];
    if (r.exitCode !== 0 || r.stderr.trim() !== '') throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'vdisk', id: name });
    return parseConcise(r.stdout, 'lsvdiskhostmap', ['host_name', 'SCSI_id']);
  }

  private async hostMappings(host: string): Promise<Record<string, string>[] | undefined> {
    const r = await this.runRaw(['svcinfo', 'lshostvdiskmap', '-delim', '!', v(host)]);
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return undefined;
    if (r.exitCode !== 0 || r.stderr.trim() !== '') throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'host', id: host });
    return parseConcise(r.stdout, 'lshostvdiskmap', ['vdisk_name', 'SCSI_id']);
  }

  private async hostIqns(host: string): Promise<string[] | undefined> {
    const r = await this.runRaw(['svcinfo', 'lshost', '-delim', '!', v(host)]);
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return undefined;
    if (r.exitCode !== 0 || r.stderr.trim() !== '') throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'host', id: host });
    return parseDetailed(r.stdout).get('iscsi_name') ?? [];
  }

  private async hostNames(): Promise<string[]> {
    const rows = parseConcise(await this.cli(['svcinfo', 'lshost', '-delim', '!']), 'lshost', ['name']);
    return rows.map((r) => r.name!);
  }

  private static sameIqn(a: string, b: string): boolean {
    return a.toLowerCase() === b.toLowerCase();
  }

  /**
   * The host object for a connector: among the hosts whose name prefix (before the last `-`)
   * is the connector host's sanitized prefix (or its raw name, for hosts made by Cinder), the
   * one that has the connector's IQN. Every candidate is checked, not only the first.
   */
  private async findHost(connector: ConnectorProperties): Promise<string | undefined> {
    const prefix = hostNamePrefix(connector.host);
    const raw = String(connector.host);
    for (const name of await this.hostNames()) {
      const p = prefixOfHostName(name);
      if (p !== prefix && p !== raw) continue;
      const iqns = await this.hostIqns(name);
      if (iqns?.some((q) => FlashSystemIscsiDriver.sameIqn(q, connector.initiator!))) return name;
    }
    return undefined;
  }

  /** The host that carries `iqn`, whatever its name (slow path: one `lshost` per host). */
  private async findHostByIqn(iqn: string): Promise<string | undefined> {
    for (const name of await this.hostNames()) {
      const iqns = await this.hostIqns(name);
      if (iqns?.some((q) => FlashSystemIscsiDriver.sameIqn(q, iqn))) return name;
    }
    return undefined;
  }

  private async createHost(connector: ConnectorProperties): Promise<string> {
    const prefix = hostNamePrefix(connector.host);
    for (let attempt = 1; ; attempt++) {
      const name = `${prefix}-${String(randomInt(0, 100_000_000)).padStart(8, '0')}`;
      const r = await this.runRaw(['svctask', 'mkhost', '-force', '-iscsiname', v(connector.initiator!), '-name', v(name)]);
      if (r.exitCode === 0 && r.stderr.trim() === '') {
        if (!/successfully created/.test(r.stdout)) throw new BackendError(`unexpected output of mkhost ${name}: ${r.stdout.trim().slice(0, 200)}`);
        this.ctx.host.logger.info({ host: name, initiator: connector.initiator }, 'created FlashSystem host');
        return name;
      }
      const code = cmmvcCode(r.stderr);
      if (code === 'CMMVC6581E') {
        // The IQN is already on a host with another name (made by another tool): use that host.
        const existing = await this.findHostByIqn(connector.initiator!);
        if (existing) return existing;
      }
      if (code === 'CMMVC6035E' && attempt < 5) continue; // random suffix collided
      throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'host', id: name });
    }
  }

  /**
   * Map `vdisk` to the connector's host (under the host lock): find or create the host, reuse an
   * existing mapping's LUN, else map at the lowest free SCSI id >= 1.
   */
  private async mapVdisk(vdisk: string, connector: ConnectorProperties): Promise<{ host: string; lun: number; created: boolean }> {
    const prefix = hostNamePrefix(connector.host);
    return this.withHostLock(prefix, async () => {
      const found = await this.findHost(connector);
      const host = found ?? (await this.createHost(connector));
      try {
        return await this.mapToHost(vdisk, host);
      } catch (err) {
        // Do not leave behind a host this call created for a mapping that failed.
        if (!found) await this.removeHostIfUnused(host).catch(() => undefined);
        throw err;
      }
    });
  }

  private async mapToHost(vdisk: string, host: string): Promise<{ host: string; lun: number; created: boolean }> {
    for (let attempt = 1; ; attempt++) {
      const maps = (await this.hostMappings(host)) ?? [];
      const existing = maps.find((m) => m.vdisk_name === vdisk);
      if (existing) return { host, lun: Number(existing.SCSI_id), created: false };
      const used = new Set(maps.map((m) => Number(m.SCSI_id)));
      let lun = 1;
      while (used.has(lun)) lun++;
      const args: CliWord[] = ['-host', v(host), '-scsi', lun, v(vdisk)];
      let r = await this.runRaw(['svctask', 'mkvdiskhostmap', ...args]);
      const code = cmmvcCode(r.stderr);
      if (code && MULTI_HOST_MAP_CODES.has(code)) {
        if (!this.config.multiHostMapEnabled) {
          throw new InvalidStateError(`vdisk ${vdisk} is already mapped to another host and flashsystem_multihostmap_enabled is false: refusing a multi-host map`, {
            details: { cmmvc: code, vdisk, host },
          });
        }
        this.ctx.host.logger.info({ vdisk, host }, 'vdisk is mapped to another host; mapping with -force (multi-host map)');
        r = await this.runRaw(['svctask', 'mkvdiskhostmap', '-force', ...args]);
      }
      if (r.exitCode === 0 && r.stderr.trim() === '') {
        if (!/successfully created/.test(r.stdout)) throw new BackendError(`unexpected output of mkvdiskhostmap ${vdisk}: ${r.stdout.trim().slice(0, 200)}`);
        return { host, lun, created: true };
      }
      // The LUN was taken meanwhile by a mapper outside this lock: choose again.
      if (cmmvcCode(r.stderr) === 'CMMVC5879E' && attempt < 3) continue;
      throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'vdisk', id: vdisk });
    }
  }

  private async rmvdiskhostmap(host: string, vdisk: string): Promise<void> {
    const r = await this.runRaw(['svctask', 'rmvdiskhostmap', '-host', v(host), v(vdisk)]);
    if (r.exitCode === 0 && r.stderr.trim() === '') return;
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return; // already unmapped
    throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'vdisk-to-host mapping', id: `${vdisk} -> ${host}` });
  }

  private async removeHostIfUnused(host: string): Promise<void> {
    const maps = await this.hostMappings(host);
    if (maps === undefined || maps.length > 0) return;
    const r = await this.runRaw(['svctask', 'rmhost', v(host)]);
    if (r.exitCode === 0 && r.stderr.trim() === '') {
      this.ctx.host.logger.info({ host }, 'deleted FlashSystem host with no mappings left');
      return;
    }
    const code = cmmvcCode(r.stderr);
    if (code === 'CMMVC5871E' || (code && NOT_FOUND_CODES.has(code))) return; // mapped again meanwhile, or gone
    throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'host', id: host });
  }

  /** Unmap `vdisk` from the host holding the connector's IQN; then delete that host (and a leftover empty host of this connector) if unused. */
  private async unmapVdisk(vdisk: string, connector: ConnectorProperties): Promise<void> {
    const prefix = hostNamePrefix(connector.host);
    await this.withHostLock(prefix, async () => {
      let host: string | undefined;
      for (const row of await this.vdiskMappings(vdisk)) {
        const iqns = await this.hostIqns(row.host_name!);
        if (iqns?.some((q) => FlashSystemIscsiDriver.sameIqn(q, connector.initiator!))) {
          host = row.host_name!;
          break;
        }
      }
      if (host) {
        await this.rmvdiskhostmap(host, vdisk);
      } else {
        this.ctx.host.logger.warn({ vdisk, initiator: connector.initiator }, 'terminate connection: vdisk is not mapped to this initiator');
        host = await this.findHost(connector);
      }
      if (host) await this.removeHostIfUnused(host);
    });
  }

  /**
   * Connection properties for `vdisk` mapped at `lun`: the preferred node of the volume's I/O
   * group first (Cinder picked node 0 or the first node of I/O group 0), then the group's other
   * nodes with iSCSI addresses as extra portals.
   */
  private async connectionInfo(vdisk: string, lun: number, volumeId: string, view?: DetailedView): Promise<ConnectionInfo> {
    const info = view ?? (await this.requireVdisk(vdisk));
    const group = attr(info, 'IO_group_id') ?? String(this.config.ioGroup);
    const preferred = attr(info, 'preferred_node_id');
    const candidates = this.nodes.filter((n) => n.ioGroupId === group && (n.ipv4.length > 0 || (n.ipv6.length > 0 && n.iscsiName)));
    if (candidates.length === 0) throw new BackendError(`no node with an iSCSI address in I/O group ${group} of vdisk ${vdisk}`);
    candidates.sort((a, b) => Number(b.id === preferred) - Number(a.id === preferred) || Number(a.id) - Number(b.id));
    const portal = (n: FlashSystemNode): string => (n.ipv4.length > 0 ? `${n.ipv4[0]}:${this.config.targetPort}` : `[${n.ipv6[0]}]:${this.config.targetPort}`);
    const first = candidates[0]!;
    const data: Record<string, unknown> = {
      target_discovered: false,
      target_portal: portal(first),
      target_iqn: first.iscsiName,
      target_lun: lun,
      volume_id: volumeId,
    };
    if (candidates.length > 1) {
      data.target_portals = candidates.map(portal);
      data.target_iqns = candidates.map((n) => n.iscsiName);
      data.target_luns = candidates.map(() => lun);
    }
    return { driver_volume_type: 'iscsi', data };
  }

  // ---------------------------------------------------------------- stats and manage

  /**
   * Cinder's stats for this backend (cached; `refresh` re-reads the pool): vendor `IBM`,
   * `storage_protocol` `iSCSI`, capacities in GiB from `lsmdiskgrp -bytes`, `multiattach` =
   * `flashsystem_multihostmap_enabled`, `location_info` `FlashSystemDriver:<system id>:<pool>`.
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
      flashcopy_support: this.flashCopy,
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
      view = await this.lsvdisk(label);
    } else if (byId !== undefined && byId !== null && byId !== '') {
      const id = typeof byId === 'number' ? byId : typeof byId === 'string' && /^\d+$/.test(byId) ? Number(byId) : NaN;
      if (!Number.isSafeInteger(id) || id < 0) throw new InvalidInputError('existing_ref.source-id', 'must be a vdisk id (a non-negative integer)');
      label = String(id);
      view = await this.lsvdisk(id);
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
      if (await this.lsvdisk(name)) throw new AlreadyExistsError(`a vdisk named ${name} already exists`, { field: 'volume.name' });
      await this.cliSilent(['svctask', 'chvdisk', '-name', v(name), v(current)], { kind: 'vdisk', id: current });
    }
    const capacity = this.capacityOf(view, current);
    return { provider_id: attr(view, 'id') ?? null, size: Math.ceil(capacity / GIB) };
  }

  /**
   * Size in whole GiB (rounded up) of the vdisk `existingRef` names. A mapped vdisk cannot be
   * managed (Cinder's rule).
   * @throws {@link NotFoundError}; {@link InvalidStateError} when the vdisk is mapped to a host
   */
  async manageExistingGetSize(_volume: DriverVolume, existingRef: Record<string, unknown>): Promise<number> {
    const { name, view } = await this.manageRef(existingRef);
    const maps = await this.vdiskMappings(name);
    if (maps.length > 0) throw new InvalidStateError(`vdisk ${name} is mapped to ${maps.map((m) => m.host_name).join(', ')}; unmap it before managing it`, { field: 'existing_ref' });
    return Math.ceil(this.capacityOf(view, name) / GIB);
  }

  /** Stop managing the volume: nothing changes on the array (Cinder's no-op). */
  async unmanage(volume: DriverVolume): Promise<void> {
    this.ctx.host.logger.info({ vdisk: volume?.name }, 'unmanaged FlashSystem volume (left on the array)');
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
