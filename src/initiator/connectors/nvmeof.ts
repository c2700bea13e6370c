/**
 * The `NVMEOF` connector (alias `NVME`): NVMe over Fabrics (TCP, RDMA) through nvme-cli and sysfs.
 *
 * Follows os-brick's `NVMeOFConnector` (`connectors/nvmeof.py`):
 * - connection properties in the new form (`target_nqn`, `portals` as `[address, port,
 *   transport]`, `vol_uuid`, `volume_nguid`, `ns_id`, `host_nqn`) or the legacy single-portal
 *   form (`nqn`, `target_portal`, `target_port`, `transport_type`); transport `rdma` or
 *   `RoCEv2` means RDMA, anything else TCP;
 * - portals already live are rescanned (`nvme ns-rescan`, targets may not send an AER),
 *   missing ones connected with `nvme connect ... -Q 128 -l -1`;
 * - with multipath requested and native NVMe multipath on (`nvme_core multipath=Y`) every
 *   portal is connected (in parallel here); without multipath the first portal that connects is
 *   enough; with multipath requested but native multipath off every portal is connected and the
 *   device-mapper map multipathd builds over the namespace paths is returned;
 * - the namespace is found in sysfs by `uuid`, then `nguid`, then `nsid`;
 * - disconnect flushes the device and disconnects only the controllers that carry no other
 *   namespace in use (os-brick bug 1961102). A namespace is in use when Brick attached it (an
 *   attachment record under `/run/brick/nvmeof/`), when something holds it (a dm map) or when
 *   it is mounted. os-brick keeps a controller while it carries any other namespace, attached or
 *   not, and so leaks controllers of shared subsystems; Brick disconnects them.
 *
 * Differences from os-brick: the lock is per subsystem NQN (`nvmeof-<nqn>`), not one host-wide
 * `connect_volume` lock; controllers this call created are disconnected again when the
 * namespace does not show up; replicated (MD RAID) volumes are refused rather than assembled.
 *
 * @module
 */
import { basename } from 'node:path';
import { createHash } from 'node:crypto';
import {
  InvalidInputError,
  TargetPortalLoginError,
  VolumeDeviceNotFoundError,
  VolumePathNotRemovedError,
  ExtendError,
} from '../../errors.js';
import type { HostContext } from '../../host/context.js';
import { removeHostFile, writeHostFile } from '../../host/files.js';
import { readMounts } from '../../host/mount.js';
import { listDir, pathExists, readAttr, resolvePath } from '../../host/sysfs.js';
import { checkReadable, deviceSizeBytes } from '../../host/blockdev.js';
import { waitFor } from '../../host/retry.js';
import {
  controllerMatches,
  ensureNvmeHostIdentity,
  dmHolderOf,
  dmNameOf,
  listNvmeControllers,
  namespacesOf,
  namespaceHeadName,
  nativeNvmeMultipathEnabled,
  normaliseNvmeId,
  nvmeConnect,
  nvmeDisconnectController,
  nvmeNsRescan,
  parseIdNsSize,
  selectNamespace,
  type NvmeController,
  type NvmeNamespace,
  type NvmePortal,
} from '../../host/nvme.js';
import { openJournalScope, runJournaled, type AttachmentIdentity, type JournalScope } from '../../host/journal.js';
import { mapByDm, mapForWwid } from '../../host/multipath.js';
import type { ConnectionProperties, Connector, DeviceInfo, DisconnectOptions, VolumeCondition } from '../connector.js';
import { nvmeofVolumeCondition } from './nvmeof-condition.js';
import { registerConnector, type ResolvedConnectorOptions } from '../factory.js';

/** Validated NVMe-oF connection properties. */
export interface NvmeofTarget {
  /** Subsystem NQN (`target_nqn`, legacy `nqn`). */
  nqn: string;
  portals: NvmePortal[];
  /** `vol_uuid`: the namespace UUID. */
  volUuid?: string;
  /** `volume_nguid`: the namespace GUID (32 hex digits, dashes allowed). */
  volumeNguid?: string;
  /** `ns_id`: the namespace id. */
  nsId?: number;
  /** `host_nqn`: the host NQN to connect as. */
  hostNqn?: string;
}

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

function optString(props: ConnectionProperties, key: string): string | undefined {
  const v = props[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new InvalidInputError(key, `must be a string, got ${typeof v}`);
  return v;
}

function parsePort(field: string, v: unknown): number {
  const n = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v.trim()) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidInputError(field, `must be a port number 1-65535, got ${JSON.stringify(v)}`);
  return n;
}

function parseTransport(field: string, v: unknown): 'tcp' | 'rdma' {
  if (v === undefined || v === null) return 'tcp';
  if (typeof v !== 'string') throw new InvalidInputError(field, `must be a string, got ${typeof v}`);
  // os-brick: 'rdma' and 'RoCEv2' mean RDMA; anything else ('tcp', 'TCP', 'nvmeof') means TCP.
  return /^(rdma|rocev2)$/i.test(v) ? 'rdma' : 'tcp';
}

function parseAddress(field: string, v: unknown): string {
  if (typeof v !== 'string' || v.trim() === '' || /[\s,]/.test(v.trim())) throw new InvalidInputError(field, `must be a host address, got ${JSON.stringify(v)}`);
  return v.trim();
}

/**
 * Validate NVMe-oF connection properties (new or legacy form) without touching the host.
 * @throws {@link InvalidInputError} naming the offending key (`target_nqn`, `portals[1][1]`, `vol_uuid`, ...)
 */
export function parseNvmeofProperties(props: ConnectionProperties): NvmeofTarget {
  if (props === null || typeof props !== 'object' || Array.isArray(props)) throw new InvalidInputError('connection_properties', 'must be an object');
  const replicas = props.volume_replicas;
  if ((Array.isArray(replicas) && replicas.length > 1) || (typeof props.replica_count === 'number' && props.replica_count > 1)) {
    throw new InvalidInputError('volume_replicas', 'replicated (MD RAID) NVMe-oF volumes are not supported');
  }
  const single = Array.isArray(replicas) && replicas.length === 1 && replicas[0] && typeof replicas[0] === 'object' ? { ...props, ...(replicas[0] as object) } : props;
  let nqn: string | undefined;
  let portals: NvmePortal[];
  if (single.target_nqn !== undefined || single.portals !== undefined) {
    nqn = optString(single, 'target_nqn');
    if (!nqn) throw new InvalidInputError('target_nqn', 'is required');
    const raw = single.portals;
    if (!Array.isArray(raw) || raw.length === 0) throw new InvalidInputError('portals', 'must be a non-empty list of [address, port, transport]');
    portals = raw.map((p, i) => {
      if (!Array.isArray(p) || p.length < 2) throw new InvalidInputError(`portals[${i}]`, 'must be [address, port, transport]');
      return { address: parseAddress(`portals[${i}][0]`, p[0]), port: parsePort(`portals[${i}][1]`, p[1]), transport: parseTransport(`portals[${i}][2]`, p[2]) };
    });
  } else {
    nqn = optString(single, 'nqn');
    if (!nqn) throw new InvalidInputError('target_nqn', 'is required (or the legacy nqn)');
    portals = [{
      address: parseAddress('target_portal', single.target_portal),
      port: parsePort('target_port', single.target_port ?? 4420),
      transport: parseTransport('transport_type', single.transport_type),
    }];
  }
  if (!/^nqn\.\d{4}-\d{2}\.[^:\s]+(:\S+)?$/.test(nqn) || nqn.length > 223) throw new InvalidInputError(single.target_nqn !== undefined ? 'target_nqn' : 'nqn', `${JSON.stringify(nqn)} is not an NVMe qualified name`);
  const seen = new Set<string>();
  portals = portals.filter((p) => {
    const k = `${p.transport}|${p.address}|${p.port}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  const out: NvmeofTarget = { nqn, portals };
  const uuid = optString(single, 'vol_uuid');
  if (uuid !== undefined) {
    if (!UUID_RE.test(uuid)) throw new InvalidInputError('vol_uuid', `${JSON.stringify(uuid)} is not a UUID`);
    out.volUuid = uuid.toLowerCase();
  }
  const nguid = optString(single, 'volume_nguid');
  if (nguid !== undefined) {
    if (!/^[0-9a-f]{32}$/i.test(normaliseNvmeId(nguid))) throw new InvalidInputError('volume_nguid', `${JSON.stringify(nguid)} is not a 32-hex-digit NGUID`);
    out.volumeNguid = normaliseNvmeId(nguid);
  }
  const nsid = single.ns_id;
  if (nsid !== undefined && nsid !== null && nsid !== '') {
    const n = typeof nsid === 'string' && /^\d+$/.test(nsid) ? Number(nsid) : nsid;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 0xfffffffe) throw new InvalidInputError('ns_id', `must be a namespace id 1-4294967294, got ${JSON.stringify(nsid)}`);
    out.nsId = n;
  }
  const hostNqn = optString(single, 'host_nqn');
  if (hostNqn !== undefined) {
    if (!/^nqn\.\S+$/.test(hostNqn)) throw new InvalidInputError('host_nqn', `${JSON.stringify(hostNqn)} is not an NVMe qualified name`);
    out.hostNqn = hostNqn;
  }
  return out;
}

/** The journal name of a controller (`<subsysnqn>,<transport>,<traddr>,<trsvcid>`, see `ResourceEntry.name` in `host/journal.ts`). */
function controllerName(nqn: string, transport: string, traddr: string, trsvcid: string | number): string {
  return `${nqn},${transport},${traddr},${trsvcid}`;
}

/** The attach journal identity (`host/journal.ts`): a controller name per portal, the namespace id as `lun`, the UUID (else NGUID) as `wwid`. */
export function nvmeofIdentity(t: NvmeofTarget): AttachmentIdentity {
  return {
    targets: t.portals.map((p) => controllerName(t.nqn, p.transport, p.address, p.port)),
    ...(t.nsId !== undefined ? { lun: t.nsId } : {}),
    ...(t.volUuid ?? t.volumeNguid ? { wwid: t.volUuid ?? t.volumeNguid } : {}),
  };
}

/** Tunables of the NVMe-oF connector (ms). */
export interface NvmeofTimings {
  /** How long one scan attempt waits for the namespace before rescanning. Default 4 000. */
  namespaceWaitMs: number;
  /** How long to wait for a reconnecting controller to go live (os-brick: 10 s + reconnect_delay). Default 20 000. */
  reconnectWaitMs: number;
  /** How long to wait for dm-multipath to build a map over the paths (native multipath off). Default 10 000. */
  dmWaitMs: number;
}

/** Connector for NVMe over Fabrics volumes. */
export class NvmeofConnector implements Connector {
  readonly protocol = 'NVMEOF';
  private readonly timings: NvmeofTimings;

  /**
   * @param ctx the host seams (nvme-cli runs through its executor; sysfs is read under its host root)
   * @param options `useMultipath`, `deviceScanAttempts` (namespace scans before giving up) and optional {@link NvmeofTimings}
   */
  constructor(
    private readonly ctx: HostContext,
    private readonly options: Pick<ResolvedConnectorOptions, 'useMultipath' | 'deviceScanAttempts'> & { timings?: Partial<NvmeofTimings> },
  ) {
    this.timings = { namespaceWaitMs: 4_000, reconnectWaitMs: 20_000, dmWaitMs: 10_000, ...(options.timings ?? {}) };
  }

  private lockName(t: NvmeofTarget): string {
    return `nvmeof-${t.nqn}`;
  }

  private async ourControllers(t: NvmeofTarget): Promise<NvmeController[]> {
    return (await listNvmeControllers(this.ctx)).filter((c) => t.portals.some((p) => controllerMatches(c, t.nqn, p)));
  }

  private async hostNqnFor(t: NvmeofTarget): Promise<string | undefined> {
    if (t.hostNqn) return t.hostNqn;
    const v = await readAttr(this.ctx, '/etc/nvme/hostnqn');
    if (v) return v;
    // No identity yet: persist one (os-brick bug 2016029) so every connect uses the same NQN and host id.
    try {
      return (await ensureNvmeHostIdentity(this.ctx)).hostnqn;
    } catch (e) {
      this.ctx.logger.warn({ err: (e as Error).message }, 'could not create /etc/nvme/hostnqn; nvme-cli picks the host NQN');
      return undefined;
    }
  }

  /**
   * Connect the target's portals and return `{ type: 'block', path: '/dev/nvmeXnY', nqn, nsid, uuid?, nguid? }`
   * (or the dm-multipath device with `multipath_id` when native multipath is off and multipath is on).
   * @throws {@link InvalidInputError} for bad properties, before anything runs
   * @throws {@link TargetPortalLoginError} when no portal connects
   * @throws {@link VolumeDeviceNotFoundError} when the namespace does not appear (controllers this call created are disconnected first)
   */
  async connectVolume(properties: ConnectionProperties): Promise<DeviceInfo> {
    const t = parseNvmeofProperties(properties);
    return this.ctx.locks.withLock(this.lockName(t), async () => {
      const journal = await openJournalScope(this.ctx.journal, 'attach', this.protocol, properties, nvmeofIdentity(t));
      return runJournaled(journal, this.ctx.logger, () => this.connectLocked(t, journal), (info) => info);
    });
  }

  private async connectLocked(t: NvmeofTarget, journal: JournalScope): Promise<DeviceInfo> {
    const log = this.ctx.logger;
    const native = await nativeNvmeMultipathEnabled(this.ctx);
    const connectAll = this.options.useMultipath;
    const hostnqn = await this.hostNqnFor(t);
    const before = await this.ourControllers(t);
    const beforeNames = new Set(before.map((c) => c.name));
    const portalErrors: { portal: string; error: string }[] = [];
    const connectOne = async (p: NvmePortal): Promise<boolean> => {
      const existing = before.find((c) => controllerMatches(c, t.nqn, p));
      if (existing) {
        if (existing.state === 'live') {
          await nvmeNsRescan(this.ctx, existing.name).catch((e: unknown) => log.debug({ err: (e as Error).message, controller: existing.name }, 'ns-rescan failed'));
          return true;
        }
        return false; // connecting / resetting: the kernel is already reconnecting it
      }
      try {
        await journal.intent('nvme-controller', controllerName(t.nqn, p.transport, p.address, p.port));
        await nvmeConnect(this.ctx, t.nqn, p, hostnqn ? { hostnqn } : {});
        return true;
      } catch (e) {
        portalErrors.push({ portal: `${p.address}:${p.port}`, error: (e as Error).message });
        log.warn({ portal: `${p.address}:${p.port}`, nqn: t.nqn, err: (e as Error).message }, 'nvme connect failed');
        return false;
      }
    };
    let anyUp = false;
    if (connectAll) {
      const results = await Promise.all(t.portals.map(connectOne));
      anyUp = results.some(Boolean);
    } else {
      for (const p of t.portals) {
        if (await connectOne(p)) {
          anyUp = true;
          break;
        }
      }
    }
    const created = async () => (await this.ourControllers(t)).filter((c) => !beforeNames.has(c.name)).map((c) => c.name);
    const cleanup = async () => {
      for (const name of await created()) {
        await nvmeDisconnectController(this.ctx, name).catch((e: unknown) => log.warn({ controller: name, err: (e as Error).message }, 'cleanup: nvme disconnect failed'));
      }
      await this.recordGoneControllers(t, journal);
    };
    if (portalErrors.length > 0) await this.recordGoneControllers(t, journal); // failed connects made nothing
    try {
      if (!anyUp) {
        // Only reconnecting controllers (os-brick bug 2035695): give one of them time to come back.
        if (before.some((c) => c.state !== 'live' && c.state !== 'deleting')) {
          await waitFor(async () => (await this.ourControllers(t)).some((c) => c.state === 'live'), {
            timeoutMs: this.timings.reconnectWaitMs,
            description: `a reconnecting controller of ${t.nqn} to go live`,
          }).catch(() => undefined);
        }
        if (!(await this.ourControllers(t)).some((c) => c.state === 'live')) {
          throw new TargetPortalLoginError(`no portal of ${t.nqn} could be connected`, { field: 'portals', details: { nqn: t.nqn, portals: portalErrors } });
        }
      }
      const ns = await this.waitForNamespace(t);
      const info: DeviceInfo = { type: 'block', path: `/dev/${ns.name}`, nqn: t.nqn };
      if (ns.nsid !== undefined) info.nsid = ns.nsid;
      if (ns.uuid) info.uuid = ns.uuid;
      if (ns.nguid) info.nguid = ns.nguid;
      if (this.options.useMultipath && !native) await this.useDmMap(t, ns, info, journal);
      if (ns.nsid !== undefined) await this.setRef(t, ns.nsid, true);
      log.info({ nqn: t.nqn, path: info.path, native_multipath: native }, 'NVMe-oF volume connected');
      return info;
    } catch (e) {
      await cleanup();
      throw e;
    }
  }

  /** With native multipath off: point `info` at the map multipathd built over the namespace's paths (recorded in the journal as soon as it is seen: Brick does not build NVMe maps), or warn. */
  private async useDmMap(t: NvmeofTarget, ns: NvmeNamespace, info: DeviceInfo, journal: JournalScope): Promise<void> {
    const dm = await this.waitForDm(t, ns);
    if (!dm) {
      this.ctx.logger.warn({ nqn: t.nqn, device: ns.name }, 'no dm-multipath map appeared over the NVMe paths; using a single path');
      return;
    }
    const map = await mapByDm(this.ctx, dm.dm);
    if (map) await journal.intent('multipath-map', map.wwid);
    info.path = `/dev/${dm.dm}`;
    info.multipath_id = dm.name;
  }

  /** Record as removed every controller recorded for this attachment on `t`'s portals that does not exist now. */
  private async recordGoneControllers(t: NvmeofTarget, journal: JournalScope): Promise<void> {
    if (journal.key === '') return;
    const live = new Set((await this.ourControllers(t)).map((c) => controllerName(c.subsysnqn, c.transport, c.traddr, c.trsvcid)));
    for (const r of await journal.resources()) if (r.kind === 'nvme-controller' && !live.has(r.name)) await journal.removed('nvme-controller', r.name);
  }

  private selector(t: NvmeofTarget) {
    return { ...(t.volUuid ? { uuid: t.volUuid } : {}), ...(t.volumeNguid ? { nguid: t.volumeNguid } : {}), ...(t.nsId !== undefined ? { nsid: t.nsId } : {}) };
  }

  private async findNamespace(t: NvmeofTarget): Promise<{ ns?: NvmeNamespace; all: NvmeNamespace[]; controllers: NvmeController[] }> {
    const controllers = await this.ourControllers(t);
    const all = await namespacesOf(this.ctx, controllers);
    const ns = selectNamespace(all, this.selector(t));
    if (ns && !(await this.exists(`/dev/${ns.name}`))) return { all, controllers };
    return ns ? { ns, all, controllers } : { all, controllers };
  }

  private exists(p: string): Promise<boolean> {
    return pathExists(this.ctx, p);
  }

  private async waitForNamespace(t: NvmeofTarget): Promise<NvmeNamespace> {
    const attempts = Math.max(1, this.options.deviceScanAttempts);
    let seen: NvmeNamespace[] = [];
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        return await waitFor(async () => {
          const r = await this.findNamespace(t);
          seen = r.all;
          return r.ns;
        }, { timeoutMs: this.timings.namespaceWaitMs, description: `namespace of ${t.nqn}` });
      } catch {
        if (attempt < attempts) {
          for (const c of await this.ourControllers(t)) {
            if (c.state === 'live') await nvmeNsRescan(this.ctx, c.name).catch(() => undefined);
          }
        }
      }
    }
    const wanted = this.selector(t);
    throw new VolumeDeviceNotFoundError(`no namespace of ${t.nqn} matches ${JSON.stringify(wanted)} (seen: ${seen.map((n) => `${n.name} nsid=${n.nsid} uuid=${n.uuid ?? '-'}`).join(', ') || 'none'})`, {
      field: t.volUuid ? 'vol_uuid' : t.volumeNguid ? 'volume_nguid' : 'ns_id',
      details: { nqn: t.nqn, wanted, seen: seen.map((n) => n.name) },
    });
  }

  /** With native multipath off: every path of the volume is its own nvmeXnY; wait for multipathd's map over them. */
  private async waitForDm(t: NvmeofTarget, ns: NvmeNamespace): Promise<{ dm: string; name: string } | undefined> {
    try {
      return await waitFor(async () => {
        const r = await this.findNamespace(t);
        const same = r.all.filter((n) => n.name === ns.name || (ns.wwid !== undefined && n.wwid === ns.wwid) || (ns.uuid !== undefined && n.uuid === ns.uuid));
        for (const n of same) {
          const dm = await dmHolderOf(this.ctx, n.name);
          if (dm) return { dm, name: (await dmNameOf(this.ctx, dm)) ?? dm };
        }
        return undefined;
      }, { timeoutMs: this.timings.dmWaitMs, description: `a dm-multipath map over ${ns.name}` });
    } catch {
      return undefined;
    }
  }

  /**
   * Flush the volume's device and disconnect the controllers of this subsystem (on the given
   * portals) that carry no other namespace. Succeeds when nothing is connected.
   * With `force`, a failed flush does not stop the disconnect; with `ignoreErrors`, failures are logged, not thrown.
   * @throws {@link InvalidInputError} for bad properties
   * @throws {@link VolumePathNotRemovedError} listing what failed
   */
  async disconnectVolume(properties: ConnectionProperties, deviceInfo: DeviceInfo | null, options: DisconnectOptions = {}): Promise<void> {
    const t = parseNvmeofProperties(properties);
    await this.ctx.locks.withLock(this.lockName(t), async () => {
      const journal = await openJournalScope(this.ctx.journal, 'detach', this.protocol, properties, nvmeofIdentity(t));
      // Without device info from the caller, the one a completed attach recorded.
      await runJournaled(journal, this.ctx.logger, () => this.disconnectLocked(t, deviceInfo ?? journal.before?.deviceInfo ?? null, properties, options, journal));
    });
  }

  private slavesOf(dm: string): Promise<string[]> {
    return listDir(this.ctx, `/sys/block/${dm}/slaves`);
  }

  private async disconnectLocked(t: NvmeofTarget, deviceInfo: DeviceInfo | null, props: ConnectionProperties, options: DisconnectOptions, journal: JournalScope): Promise<void> {
    const log = this.ctx.logger;
    const errors: string[] = [];
    const { ns, all, controllers } = await this.findNamespace(t);
    const given = typeof deviceInfo?.path === 'string' ? deviceInfo.path : typeof props.device_path === 'string' ? props.device_path : undefined;
    const resolved = given ? await resolvePath(this.ctx, given) : undefined; // undefined: already gone
    const device = resolved ? basename(resolved) : undefined;
    // Names of our namespace's block devices (heads or, with dm-multipath, every path).
    const ours = new Set<string>();
    let dm: string | undefined;
    if (device?.startsWith('dm-')) {
      dm = device;
      for (const s of await this.slavesOf(dm)) ours.add(s);
    } else if (device && all.some((n) => n.name === device)) {
      ours.add(device);
    } else if (ns) {
      ours.add(ns.name);
    }
    if (!dm && ns && this.options.useMultipath) {
      for (const n of all.filter((x) => x.name === ns.name || (ns.wwid && x.wwid === ns.wwid))) {
        ours.add(n.name);
        dm ??= await dmHolderOf(this.ctx, n.name);
      }
    }
    // A map the journal recorded for this attachment (an interrupted attach whose device info nobody kept).
    for (const r of await journal.resources()) {
      if (r.kind !== 'multipath-map' || dm) continue;
      dm = (await mapForWwid(this.ctx, r.name))?.dm;
      if (dm) for (const s of await this.slavesOf(dm)) ours.add(s);
    }
    if (dm) {
      const name = (typeof deviceInfo?.multipath_id === 'string' ? deviceInfo.multipath_id : undefined) ?? (await dmNameOf(this.ctx, dm)) ?? dm;
      const wwid = (await mapByDm(this.ctx, dm))?.wwid;
      try {
        await this.ctx.executor.run(['multipath', '-f', name], { timeoutMs: 300_000 });
        if (wwid) await journal.removed('multipath-map', wwid);
      } catch (e) {
        errors.push(`multipath -f ${name}: ${(e as Error).message}`);
        if (!options.force) return this.finish(errors, options, t);
      }
    }
    for (const name of ours) {
      if (!(await this.exists(`/dev/${name}`))) continue;
      try {
        await this.ctx.executor.run(['blockdev', '--flushbufs', `/dev/${name}`], { timeoutMs: 300_000 });
      } catch (e) {
        errors.push(`flush /dev/${name}: ${(e as Error).message}`);
        if (!options.force) return this.finish(errors, options, t);
        log.warn({ device: name }, 'flush failed; disconnecting anyway (force)');
      }
    }
    for (const n of all) if ((ours.has(n.name) || (ns && n.name === ns.name)) && n.nsid !== undefined) await this.setRef(t, n.nsid, false);
    const nsidOf = new Map(all.map((n) => [n.name, n.nsid]));
    const mounted = await this.mountedDevices();
    for (const c of controllers) {
      const others = c.paths.map((p) => namespaceHeadName(p)).filter((h) => !ours.has(h));
      const inUse: string[] = [];
      for (const h of others) {
        const nsid = nsidOf.get(h);
        if ((nsid !== undefined && (await this.hasRef(t, nsid))) || (await dmHolderOf(this.ctx, h)) || mounted.has(h)) inUse.push(h);
      }
      if (inUse.length > 0) {
        log.info({ controller: c.name, in_use: inUse }, 'controller carries other namespaces in use; left connected');
        continue;
      }
      try {
        await nvmeDisconnectController(this.ctx, c.name);
      } catch (e) {
        errors.push(`nvme disconnect ${c.name}: ${(e as Error).message}`);
      }
    }
    await this.recordGoneControllers(t, journal);
    return this.finish(errors, options, t);
  }

  /** Attachment records: `/run/brick/nvmeof/<sha256(nqn)>/nsid-<n>`, one per namespace attached through Brick. */
  private refPath(t: NvmeofTarget, nsid: number): string {
    return `/run/brick/nvmeof/${createHash('sha256').update(t.nqn).digest('hex').slice(0, 32)}/nsid-${nsid}`;
  }

  private async setRef(t: NvmeofTarget, nsid: number, on: boolean): Promise<void> {
    const p = this.refPath(t, nsid);
    try {
      if (on) await writeHostFile(this.ctx, p, `${t.nqn}\n`, { parents: true });
      else await removeHostFile(this.ctx, p);
    } catch (e) {
      this.ctx.logger.warn({ path: p, err: (e as Error).message }, 'could not update the NVMe-oF attachment record');
    }
  }

  private hasRef(t: NvmeofTarget, nsid: number): Promise<boolean> {
    return pathExists(this.ctx, this.refPath(t, nsid));
  }

  /** Block device names (`nvme0n2`) that are mounted, from /proc/mounts. */
  private async mountedDevices(): Promise<Set<string>> {
    return new Set((await readMounts(this.ctx)).map((m) => m.source).filter((d) => d.startsWith('/dev/')).map((d) => basename(d)));
  }

  private finish(errors: string[], options: DisconnectOptions, t: NvmeofTarget): void {
    if (errors.length === 0) return;
    const err = new VolumePathNotRemovedError(`disconnecting ${t.nqn} left work undone: ${errors.join('; ')}`, { details: { nqn: t.nqn, errors } });
    if (options.ignoreErrors) {
      this.ctx.logger.warn({ nqn: t.nqn, err: err.message }, 'NVMe-oF disconnect errors ignored');
      return;
    }
    throw err;
  }

  /**
   * Rescan the namespace on every live controller and return its new size in bytes, waiting
   * (bounded, 5 s) for sysfs to show the size the target reports in `nvme id-ns`.
   * @throws {@link VolumeDeviceNotFoundError} when the namespace is not attached
   * @throws {@link ExtendError} when the size cannot be read
   */
  async extendVolume(properties: ConnectionProperties): Promise<number> {
    const t = parseNvmeofProperties(properties);
    return this.ctx.locks.withLock(`${this.lockName(t)}-extend`, async () => {
      const { ns, controllers } = await this.findNamespace(t);
      if (!ns) throw new VolumeDeviceNotFoundError(`the namespace of ${t.nqn} is not attached`, { field: 'target_nqn' });
      for (const c of controllers) if (c.state === 'live') await nvmeNsRescan(this.ctx, c.name).catch(() => undefined);
      let expected: number | undefined;
      try {
        const r = await this.ctx.executor.run(['nvme', 'id-ns', `/dev/${ns.name}`, '-o', 'json'], { timeoutMs: 30_000 });
        expected = parseIdNsSize(r.stdout);
      } catch (e) {
        this.ctx.logger.debug({ err: (e as Error).message }, 'nvme id-ns failed; using the size sysfs shows');
      }
      try {
        const dev = `/dev/${ns.name}`;
        if (expected !== undefined) {
          const want = expected;
          await waitFor(async () => (await deviceSizeBytes(this.ctx, dev)) === want, { timeoutMs: 5_000, description: `${dev} to show ${want} bytes` }).catch(() => undefined);
        }
        const size = await deviceSizeBytes(this.ctx, dev);
        const dm = this.options.useMultipath ? await dmHolderOf(this.ctx, ns.name) : undefined;
        if (dm) {
          const name = (await dmNameOf(this.ctx, dm)) ?? dm;
          await this.ctx.executor.run(['multipathd', 'resize', 'map', name], { timeoutMs: 120_000 });
          return await deviceSizeBytes(this.ctx, `/dev/${dm}`);
        }
        return size;
      } catch (e) {
        if (e instanceof ExtendError) throw e;
        throw new ExtendError(`could not read the new size of /dev/${ns.name}: ${(e as Error).message}`, { cause: e });
      }
    });
  }

  /** `['/dev/nvmeXnY']` when the volume's namespace is present, else `[]`. Nothing is connected. */
  async getVolumePaths(properties: ConnectionProperties): Promise<string[]> {
    const t = parseNvmeofProperties(properties);
    const { ns } = await this.findNamespace(t);
    return ns ? [`/dev/${ns.name}`] : [];
  }

  async checkValidDevice(path: string): Promise<boolean> {
    return checkReadable(this.ctx, path);
  }

  /**
   * The volume's condition (see `Connector.checkVolumeCondition`): each portal's controller
   * state, the namespace's paths (native or dm-multipath), the read test ({@link nvmeofVolumeCondition}).
   * @throws {@link InvalidInputError} for bad properties
   */
  async checkVolumeCondition(properties: ConnectionProperties, deviceInfo: DeviceInfo): Promise<VolumeCondition> {
    const t = parseNvmeofProperties(properties);
    return nvmeofVolumeCondition(this.ctx, t.nqn, t.portals, deviceInfo, this.options.useMultipath);
  }

  getSearchPath(): string | null {
    return '/dev';
  }
}

registerConnector('NVMEOF', (ctx, o) => new NvmeofConnector(ctx, { useMultipath: o.useMultipath, deviceScanAttempts: o.deviceScanAttempts, ...(o.timings ? { timings: o.timings as Partial<NvmeofTimings> } : {}) }), ['NVME']);
