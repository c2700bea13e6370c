/**
 * Host mapping for the FlashSystem driver (Cinder's `_map_vdisk_to_host`, `_unmap_vdisk_from_host`,
 * `_find_host_exhaustive`, `_create_host`): the host object of a connector (found by its
 * sanitized name prefix and IQN, created when missing), `mkvdiskhostmap` at the lowest free SCSI
 * id >= 1 per host (idempotent: an existing mapping's LUN is reused), `-force` for a second host
 * only with `flashsystem_multihostmap_enabled`, `rmvdiskhostmap`, and deletion of a host once it
 * has no mappings left (Cinder bug 1570574). Mapping and unmapping run under the per-host lock.
 * Also the connection properties of a mapped vdisk (one portal per node of its I/O group).
 *
 * @module
 */
import { randomInt } from 'node:crypto';
import { BackendError, InvalidStateError } from '../../errors.js';
import type { ConnectorProperties } from '../../initiator/properties.js';
import type { ConnectionInfo } from '../driver.js';
import type { FlashSystemArray, FlashSystemNode } from './array.js';
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
  v,
  type CliWord,
  type DetailedView,
} from './cli.js';

/** Where a vdisk got mapped. `created` is false when the mapping existed already. */
export interface HostMapping {
  host: string;
  lun: number;
  created: boolean;
}

function sameIqn(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** Maps and unmaps vdisks to the host objects of connectors. */
export class FlashSystemHostMapper {
  constructor(private readonly array: FlashSystemArray) {}

  /**
   * The `lsvdiskhostmap` rows of a vdisk (none when it does not exist).
   * @throws {@link BackendError} (or the class {@link cliError} gives the CMMVC code) when `lsvdiskhostmap` fails
   *   other than with a not-found code, or prints rows that do not match its header
   * @throws {@link ProcessTimeoutError}, {@link AuthenticationError} or {@link BackendUnreachableError} from the SSH pool
   */
  async vdiskMappings(name: string): Promise<Record<string, string>[]> {
    const r = await this.array.runRaw(['svcinfo', 'lsvdiskhostmap', '-delim', '!', v(name)]);
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return [];
    if (r.exitCode !== 0 || r.stderr.trim() !== '') throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'vdisk', id: name });
    return parseConcise(r.stdout, 'lsvdiskhostmap', ['host_name', 'SCSI_id']);
  }

  private async hostMappings(host: string): Promise<Record<string, string>[] | undefined> {
    const r = await this.array.runRaw(['svcinfo', 'lshostvdiskmap', '-delim', '!', v(host)]);
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return undefined;
    if (r.exitCode !== 0 || r.stderr.trim() !== '') throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'host', id: host });
    return parseConcise(r.stdout, 'lshostvdiskmap', ['vdisk_name', 'SCSI_id']);
  }

  private async hostIqns(host: string): Promise<string[] | undefined> {
    const r = await this.array.runRaw(['svcinfo', 'lshost', '-delim', '!', v(host)]);
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return undefined;
    if (r.exitCode !== 0 || r.stderr.trim() !== '') throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'host', id: host });
    return parseDetailed(r.stdout).get('iscsi_name') ?? [];
  }

  private async hostNames(): Promise<string[]> {
    const rows = parseConcise(await this.array.cli(['svcinfo', 'lshost', '-delim', '!']), 'lshost', ['name']);
    return rows.map((r) => r.name!);
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
      if (iqns?.some((q) => sameIqn(q, connector.initiator!))) return name;
    }
    return undefined;
  }

  /** The host that carries `iqn`, whatever its name (slow path: one `lshost` per host). */
  private async findHostByIqn(iqn: string): Promise<string | undefined> {
    for (const name of await this.hostNames()) {
      const iqns = await this.hostIqns(name);
      if (iqns?.some((q) => sameIqn(q, iqn))) return name;
    }
    return undefined;
  }

  private async createHost(connector: ConnectorProperties): Promise<string> {
    const prefix = hostNamePrefix(connector.host);
    for (let attempt = 1; ; attempt++) {
      const name = `${prefix}-${String(randomInt(0, 100_000_000)).padStart(8, '0')}`;
      const r = await this.array.runRaw(['svctask', 'mkhost', '-force', '-iscsiname', v(connector.initiator!), '-name', v(name)]);
      if (r.exitCode === 0 && r.stderr.trim() === '') {
        if (!/successfully created/.test(r.stdout)) throw new BackendError(`unexpected output of mkhost ${name}: ${r.stdout.trim().slice(0, 200)}`);
        this.array.ctx.logger.info({ host: name, initiator: connector.initiator }, 'created FlashSystem host');
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
   * @throws {@link InvalidInputError} (field `connector.host`) for an empty or non-string host
   * @throws {@link InvalidStateError} when the vdisk is mapped to another host and `flashsystem_multihostmap_enabled` is false
   * @throws {@link LockTimeoutError} when the host lock is not taken in time; {@link BackendError} (or the class
   *   {@link cliError} gives the CMMVC code) for a failed `mkhost` or `mkvdiskhostmap`
   */
  async mapVdisk(vdisk: string, connector: ConnectorProperties): Promise<HostMapping> {
    const prefix = hostNamePrefix(connector.host);
    return this.array.withHostLock(prefix, async () => {
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

  private async mapToHost(vdisk: string, host: string): Promise<HostMapping> {
    for (let attempt = 1; ; attempt++) {
      const maps = (await this.hostMappings(host)) ?? [];
      const existing = maps.find((m) => m.vdisk_name === vdisk);
      if (existing) return { host, lun: Number(existing.SCSI_id), created: false };
      const used = new Set(maps.map((m) => Number(m.SCSI_id)));
      let lun = 1;
      while (used.has(lun)) lun++;
      const args: CliWord[] = ['-host', v(host), '-scsi', lun, v(vdisk)];
      let r = await this.array.runRaw(['svctask', 'mkvdiskhostmap', ...args]);
      const code = cmmvcCode(r.stderr);
      if (code && MULTI_HOST_MAP_CODES.has(code)) {
        if (!this.array.config.multiHostMapEnabled) {
          throw new InvalidStateError(`vdisk ${vdisk} is already mapped to another host and flashsystem_multihostmap_enabled is false: refusing a multi-host map`, {
            details: { cmmvc: code, vdisk, host },
          });
        }
        this.array.ctx.logger.info({ vdisk, host }, 'vdisk is mapped to another host; mapping with -force (multi-host map)');
        r = await this.array.runRaw(['svctask', 'mkvdiskhostmap', '-force', ...args]);
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

  /**
   * `rmvdiskhostmap`; a mapping already gone is fine.
   * @throws {@link BackendError} (or the class {@link cliError} gives the CMMVC code) when `rmvdiskhostmap` fails
   *   other than with a not-found code
   * @throws {@link ProcessTimeoutError}, {@link AuthenticationError} or {@link BackendUnreachableError} from the SSH pool
   */
  async rmvdiskhostmap(host: string, vdisk: string): Promise<void> {
    const r = await this.array.runRaw(['svctask', 'rmvdiskhostmap', '-host', v(host), v(vdisk)]);
    if (r.exitCode === 0 && r.stderr.trim() === '') return;
    if (NOT_FOUND_CODES.has(cmmvcCode(r.stderr) ?? '')) return; // already unmapped
    throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'vdisk-to-host mapping', id: `${vdisk} -> ${host}` });
  }

  /**
   * `rmhost` once the host has no mappings (a host mapped again meanwhile, or gone, is left alone).
   * @throws {@link BackendError} (or the class {@link cliError} gives the CMMVC code) when `lshostvdiskmap` or
   *   `rmhost` fails other than with a not-found or still-mapped (CMMVC5871E) code
   * @throws {@link ProcessTimeoutError}, {@link AuthenticationError} or {@link BackendUnreachableError} from the SSH pool
   */
  async removeHostIfUnused(host: string): Promise<void> {
    const maps = await this.hostMappings(host);
    if (maps === undefined || maps.length > 0) return;
    const r = await this.array.runRaw(['svctask', 'rmhost', v(host)]);
    if (r.exitCode === 0 && r.stderr.trim() === '') {
      this.array.ctx.logger.info({ host }, 'deleted FlashSystem host with no mappings left');
      return;
    }
    const code = cmmvcCode(r.stderr);
    if (code === 'CMMVC5871E' || (code && NOT_FOUND_CODES.has(code))) return; // mapped again meanwhile, or gone
    throw cliError(r.line, r.exitCode, r.stdout, r.stderr, { kind: 'host', id: host });
  }

  /** Unmap `vdisk` from the host holding the connector's IQN; then delete that host (and a leftover empty host of this connector) if unused. */
  async unmapVdisk(vdisk: string, connector: ConnectorProperties): Promise<void> {
    const prefix = hostNamePrefix(connector.host);
    await this.array.withHostLock(prefix, async () => {
      let host: string | undefined;
      for (const row of await this.vdiskMappings(vdisk)) {
        const iqns = await this.hostIqns(row.host_name!);
        if (iqns?.some((q) => sameIqn(q, connector.initiator!))) {
          host = row.host_name!;
          break;
        }
      }
      if (host) {
        await this.rmvdiskhostmap(host, vdisk);
      } else {
        this.array.ctx.logger.warn({ vdisk, initiator: connector.initiator }, 'terminate connection: vdisk is not mapped to this initiator');
        host = await this.findHost(connector);
      }
      if (host) await this.removeHostIfUnused(host);
    });
  }

  /**
   * Connection properties for `vdisk` mapped at `lun`: the preferred node of the volume's I/O
   * group first (Cinder picked node 0 or the first node of I/O group 0), then the group's other
   * nodes with iSCSI addresses as extra portals.
   * @throws {@link BackendError} when no node of the vdisk's I/O group has an iSCSI address
   * @throws {@link NotFoundError} when `view` is not given and the vdisk does not exist
   */
  async connectionInfo(vdisk: string, lun: number, volumeId: string, view?: DetailedView): Promise<ConnectionInfo> {
    const info = view ?? (await this.array.requireVdisk(vdisk));
    const group = attr(info, 'IO_group_id') ?? String(this.array.config.ioGroup);
    const preferred = attr(info, 'preferred_node_id');
    const candidates = this.array.nodes.filter((n) => n.ioGroupId === group && (n.ipv4.length > 0 || (n.ipv6.length > 0 && n.iscsiName)));
    if (candidates.length === 0) throw new BackendError(`no node with an iSCSI address in I/O group ${group} of vdisk ${vdisk}`);
    candidates.sort((a, b) => Number(b.id === preferred) - Number(a.id === preferred) || Number(a.id) - Number(b.id));
    const portal = (n: FlashSystemNode): string => (n.ipv4.length > 0 ? `${n.ipv4[0]}:${this.array.config.targetPort}` : `[${n.ipv6[0]}]:${this.array.config.targetPort}`);
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

  /** Remove every mapping of `vdisk` (a null connector), deleting each host left without mappings. */
  async unmapAll(vdisk: string): Promise<void> {
    for (const row of await this.vdiskMappings(vdisk)) {
      const host = row.host_name!;
      await this.array.withHostLock(prefixOfHostName(host), async () => {
        await this.rmvdiskhostmap(host, vdisk);
        await this.removeHostIfUnused(host);
      });
    }
  }
}
