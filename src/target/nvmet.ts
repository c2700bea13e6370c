/**
 * `nvmet`: the Linux NVMe-oF target (NVMe/TCP), written through configfs directly (no nvmetcli).
 *
 * Behaviour follows Cinder's `NVMET` target (`cinder/volume/targets/nvmet.py`, non-shared
 * mode) with one deliberate difference: Cinder sets `attr_allow_any_host=1`; Brick allows
 * only the host NQNs `initialize_connection` is given (an `allowed_hosts` link per host) and
 * removes them on `terminate_connection`. One subsystem per volume named
 * `target_prefix + volume.name`, one namespace (`nvmet_ns_id`, default 10) on the LV with
 * `device_uuid` = the volume id (so hosts find it by UUID, Cinder's `vol_uuid`), and one port
 * per configured address (ids from `nvmet_port_id` up) on `target_port` (4420).
 * `provider_location` is Cinder's `ip[,ip2]:port tcp <nqn> <nsid>`.
 *
 * configfs layout (under `/sys/kernel/config/nvmet`): `subsystems/<nqn>/{attr_allow_any_host,
 * namespaces/<nsid>/{device_path,device_uuid,enable,revalidate_size},allowed_hosts/<hostnqn>}`,
 * `hosts/<hostnqn>`, `ports/<id>/{addr_trtype,addr_adrfam,addr_traddr,addr_trsvcid,subsystems/<nqn>}`.
 *
 * @module
 */
import { isIP } from 'node:net';
import { BackendError, InvalidInputError, InvalidStateError } from '../errors.js';
import type { ConnectionInfo, DriverContext, DriverVolume, ModelUpdate } from '../drivers/driver.js';
import type { ConnectorProperties } from '../initiator/properties.js';
import type { TargetConfig } from './config.js';
import { Configfs } from './configfs.js';
import { MappingStore, requireHostNqn, requireLocation } from './common.js';
import type { TargetHelper } from './helper.js';

const ROOT = '/sys/kernel/config/nvmet';

/** An nvmet export as `provider_location` records it. */
export interface NvmetLocation {
  addresses: string[];
  port: number;
  transport: string;
  nqn: string;
  nsid: number;
}

/** Cinder's NVMe-oF `provider_location`: `ip[,ip2]:port <transport> <nqn> <nsid>`. */
export function formatNvmetLocation(loc: NvmetLocation): string {
  return `${loc.addresses.join(',')}:${loc.port} ${loc.transport} ${loc.nqn} ${loc.nsid}`;
}

/** Parse {@link formatNvmetLocation}'s format. @throws {@link InvalidInputError} (field `provider_location`) */
export function parseNvmetLocation(location: string): NvmetLocation {
  const parts = location.trim().split(/\s+/);
  const m = parts.length === 4 ? /^(.+):(\d+)$/.exec(parts[0]!) : null;
  if (!m || !/^\d+$/.test(parts[3]!)) throw new InvalidInputError('provider_location', `${JSON.stringify(location)} is not "<ips>:<port> <transport> <nqn> <nsid>"`);
  return { addresses: m[1]!.split(','), port: Number(m[2]), transport: parts[1]!, nqn: parts[2]!, nsid: Number(parts[3]) };
}

/** Options for {@link NvmetTarget}. */
export interface NvmetOptions {
  /** configfs access; default one on the context's host root (tests inject a kernel emulation). */
  configfs?: Configfs;
}

/** The `nvmet` target helper (NVMe/TCP). */
export class NvmetTarget implements TargetHelper {
  readonly helperName = 'nvmet';
  readonly storageProtocol = 'NVMe-oF';
  readonly connectorProtocol = 'NVMEOF';
  private readonly fs: Configfs;
  private readonly mappings: MappingStore;

  constructor(
    private readonly cfg: TargetConfig,
    private readonly ctx: DriverContext,
    options: NvmetOptions = {},
  ) {
    this.fs = options.configfs ?? new Configfs(ctx.hostRoot);
    this.mappings = new MappingStore(ctx.stateDir, 'nvmet');
  }

  private nqn(volume: DriverVolume): string {
    return `${this.cfg.prefix}${volume.name}`;
  }

  private lock<T>(fn: () => Promise<T>): Promise<T> {
    return this.ctx.locks.withLock('target-nvmet', fn, { timeoutMs: 120_000 });
  }

  /**
   * Checks the nvmet configfs tree exists, loading `nvmet` and `nvmet_tcp` once if needed.
   * @throws {@link BackendError} (field `target_helper`) when it cannot be used
   */
  async checkForSetupError(): Promise<void> {
    if (!(await this.fs.exists(`${ROOT}/ports`))) {
      await this.ctx.executor.run(['modprobe', 'nvmet_tcp'], { timeoutMs: 60_000, checkExitCode: false });
    }
    if (!(await this.fs.exists(`${ROOT}/ports`))) {
      throw new BackendError(`target_helper nvmet: ${ROOT} does not exist (is configfs mounted and the nvmet module available?)`, { field: 'target_helper' });
    }
  }

  private async ensurePort(portId: number, addr: string, nqn: string): Promise<void> {
    const port = `${ROOT}/ports/${portId}`;
    if (await this.fs.exists(port)) {
      const traddr = await this.fs.read(`${port}/addr_traddr`);
      const svc = await this.fs.read(`${port}/addr_trsvcid`);
      if (traddr && traddr !== addr || svc && svc !== String(this.cfg.port)) {
        throw new BackendError(`nvmet port ${portId} already serves ${traddr}:${svc}, not ${addr}:${this.cfg.port}: choose another nvmet_port_id`, { field: 'nvmet_port_id' });
      }
    } else {
      await this.fs.mkdir(port);
      await this.fs.write(`${port}/addr_trtype`, 'tcp');
      await this.fs.write(`${port}/addr_adrfam`, isIP(addr) === 6 ? 'ipv6' : 'ipv4');
      await this.fs.write(`${port}/addr_traddr`, addr);
      await this.fs.write(`${port}/addr_trsvcid`, String(this.cfg.port));
    }
    await this.fs.link(`${ROOT}/subsystems/${nqn}`, `${port}/subsystems/${nqn}`);
  }

  private async build(volume: DriverVolume, devicePath: string, loc: NvmetLocation, hosts: string[]): Promise<void> {
    const sub = `${ROOT}/subsystems/${loc.nqn}`;
    await this.fs.mkdir(sub);
    await this.fs.write(`${sub}/attr_allow_any_host`, '0');
    const ns = `${sub}/namespaces/${loc.nsid}`;
    await this.fs.mkdir(ns);
    if ((await this.fs.read(`${ns}/enable`)) !== '1') {
      await this.fs.write(`${ns}/device_path`, devicePath);
      await this.fs.write(`${ns}/device_uuid`, volume.id);
      await this.fs.write(`${ns}/enable`, '1');
    }
    for (const h of hosts) await this.allowHost(loc.nqn, h);
    for (const [i, addr] of loc.addresses.entries()) await this.ensurePort(this.cfg.nvmetPortId + i, addr, loc.nqn);
  }

  private async allowHost(nqn: string, host: string): Promise<void> {
    await this.fs.mkdir(`${ROOT}/hosts/${host}`);
    await this.fs.link(`${ROOT}/hosts/${host}`, `${ROOT}/subsystems/${nqn}/allowed_hosts/${host}`);
  }

  /** Remove `host` from `nqn`'s allowed hosts, and the host object when no subsystem refers to it any more. */
  private async disallowHost(nqn: string, host: string): Promise<void> {
    await this.fs.unlink(`${ROOT}/subsystems/${nqn}/allowed_hosts/${host}`);
    for (const s of await this.fs.list(`${ROOT}/subsystems`)) {
      if ((await this.fs.list(`${ROOT}/subsystems/${s}/allowed_hosts`)).includes(host)) return;
    }
    await this.fs.rmdir(`${ROOT}/hosts/${host}`);
  }

  private location(volume: DriverVolume): NvmetLocation {
    return { addresses: [this.cfg.ipAddress, ...this.cfg.secondaryIpAddresses], port: this.cfg.port, transport: 'tcp', nqn: this.nqn(volume), nsid: this.cfg.nvmetNsId };
  }

  /** Create subsystem, namespace and port links (idempotent); returns `provider_location`. */
  async createExport(volume: DriverVolume, devicePath: string): Promise<ModelUpdate> {
    const loc = this.location(volume);
    await this.lock(() => this.build(volume, devicePath, loc, []).catch(async (e: unknown) => {
      await this.teardown(loc.nqn).catch(() => undefined);
      throw e;
    }));
    return { provider_location: formatNvmetLocation(loc), provider_auth: null };
  }

  /** Rebuild a subsystem nvmet lost, with its recorded allowed hosts. */
  async ensureExport(volume: DriverVolume, devicePath: string): Promise<void> {
    if (!volume.provider_location) return;
    const loc = parseNvmetLocation(volume.provider_location);
    const hosts = await this.mappings.hosts(volume);
    await this.lock(() => this.build(volume, devicePath, loc, hosts));
  }

  private async teardown(nqn: string): Promise<void> {
    const sub = `${ROOT}/subsystems/${nqn}`;
    for (const p of await this.fs.list(`${ROOT}/ports`)) {
      const link = `${ROOT}/ports/${p}/subsystems/${nqn}`;
      if (!(await this.fs.exists(link))) continue;
      await this.fs.unlink(link);
      // A port no subsystem uses any more stops listening once removed; leave ports in use alone.
      if ((await this.fs.list(`${ROOT}/ports/${p}/subsystems`)).length === 0 && (await this.fs.list(`${ROOT}/ports/${p}/referrals`)).length === 0) {
        await this.fs.rmdir(`${ROOT}/ports/${p}`);
      }
    }
    if (!(await this.fs.exists(sub))) return;
    for (const h of await this.fs.list(`${sub}/allowed_hosts`)) await this.disallowHost(nqn, h);
    for (const n of await this.fs.list(`${sub}/namespaces`)) {
      if ((await this.fs.read(`${sub}/namespaces/${n}/enable`)) === '1') await this.fs.write(`${sub}/namespaces/${n}/enable`, '0');
      await this.fs.rmdir(`${sub}/namespaces/${n}`);
    }
    await this.fs.rmdir(sub);
  }

  /** Remove port links, allowed hosts, namespace and subsystem. */
  async removeExport(volume: DriverVolume): Promise<void> {
    const nqn = volume.provider_location ? parseNvmetLocation(volume.provider_location).nqn : this.nqn(volume);
    await this.lock(() => this.teardown(nqn));
    await this.mappings.remove(volume, null);
  }

  /** Allow the connector's host NQN on the subsystem and return Cinder's `nvmeof` connection info (format version 2). */
  async initializeConnection(volume: DriverVolume, connector: ConnectorProperties): Promise<ConnectionInfo> {
    const host = requireHostNqn(connector);
    const loc = parseNvmetLocation(requireLocation(volume));
    await this.lock(async () => {
      if (!(await this.fs.exists(`${ROOT}/subsystems/${loc.nqn}`))) throw new InvalidStateError(`nvmet subsystem ${loc.nqn} does not exist: ensure the export first`, { field: 'provider_location' });
      await this.allowHost(loc.nqn, host);
    });
    await this.mappings.add(volume, host);
    return {
      driver_volume_type: 'nvmeof',
      data: {
        target_nqn: loc.nqn,
        vol_uuid: volume.id,
        portals: loc.addresses.map((a) => [a, String(loc.port), loc.transport]),
        ns_id: String(loc.nsid),
        host_nqn: host,
        volume_id: volume.id,
        discard: this.cfg.reportDiscard,
      },
    };
  }

  /** Remove the connector's host NQN (every host when null) from the subsystem. */
  async terminateConnection(volume: DriverVolume, connector: ConnectorProperties | null): Promise<void> {
    const host = connector === null ? null : requireHostNqn(connector);
    const nqn = volume.provider_location ? parseNvmetLocation(volume.provider_location).nqn : this.nqn(volume);
    await this.lock(async () => {
      const hosts = host === null ? await this.fs.list(`${ROOT}/subsystems/${nqn}/allowed_hosts`) : [host];
      for (const h of hosts) await this.disallowHost(nqn, h);
    });
    await this.mappings.remove(volume, host);
  }

  validateConnector(connector: ConnectorProperties): void {
    requireHostNqn(connector);
  }

  /** Tell nvmet to re-read the namespace size (`revalidate_size`, Linux 5.15+), so hosts see the new capacity. */
  async extendTarget(volume: DriverVolume): Promise<void> {
    if (!volume.provider_location) return;
    const loc = parseNvmetLocation(volume.provider_location);
    const attr = `${ROOT}/subsystems/${loc.nqn}/namespaces/${loc.nsid}/revalidate_size`;
    if (await this.fs.exists(attr)) await this.fs.write(attr, '1');
  }

  /** The host NQNs allowed on `volume`'s subsystem (for tests and diagnostics). */
  async allowedHosts(volume: DriverVolume): Promise<string[]> {
    return this.fs.list(`${ROOT}/subsystems/${this.nqn(volume)}/allowed_hosts`);
  }
}
