/**
 * The FlashSystem simulator's state and CLI: vdisks, hosts with iSCSI ports, vdisk-to-host
 * mappings, nodes, I/O groups, IP ports, the storage pool and FlashCopy mappings, driven by the
 * `svcinfo` / `svctask` commands the Cinder FlashSystem driver (1.0.12) and Brick's
 * `ibm_flashsystem` driver send.
 *
 * It follows Cinder's `FlashSystemManagementSimulator` (test_ibm_flashsystem.py) with the
 * fidelity upgrades the research notes list: real CMMVC codes and a non-zero exit for every
 * error, LUNs unique per host (not per array), the real SCSI id in `lsvdiskhostmap`, `lsvdisk`
 * by name or id, pool free capacity that follows the vdisks, `rmvdisk` refusing a mapped vdisk
 * without `-force`, `rmhost` refusing a host with mappings, an IQN allowed on one host only,
 * and FlashCopy (`mkfcmap`, `prestartfcmap`, `startfcmap`, `lsfcmap`, `stopfcmap`, `rmfcmap`)
 * whose background copy progresses with time.
 *
 * Output follows the CLI's two shapes: the concise view (a header line and rows) and the
 * detailed view (`attribute<delim>value` lines), with `-delim` (default: aligned columns).
 *
 * Side effects that a real-storage backing needs (create, delete, resize, copy, map, unmap)
 * are reported to an optional {@link SimulatorBackingStore}, so that in the lab a mapped vdisk
 * is a real iSCSI LUN.
 *
 * @module
 */
import { tokenize, ShellSyntaxError } from './tokenize.js';
import { CliError } from './errors.js';

/** 1 GiB in bytes. */
export const GIB = 1024 ** 3;

/** A virtual disk. */
export interface SimVdisk {
  id: number;
  name: string;
  /** Capacity in bytes. */
  capacity: number;
  ioGroupId: number;
  status: 'online' | 'offline';
  /** SCSI NAA identifier (32 hex digits) as `vdisk_UID` prints it. */
  uid: string;
}

/** A host object with its iSCSI ports (IQNs) and FC ports (WWPNs). */
export interface SimHost {
  id: number;
  name: string;
  iscsiNames: string[];
  wwpns: string[];
}

/** A vdisk-to-host mapping. */
export interface SimMapping {
  id: number;
  hostId: number;
  vdiskId: number;
  /** The LUN the host sees. */
  scsiId: number;
}

/** A node (canister) of the cluster. */
export interface SimNode {
  id: number;
  name: string;
  ioGroupId: number;
  wwnn: string;
  status: 'online' | 'offline';
  iscsiName: string;
  configNode: boolean;
}

/** One row of `lsportip`: an Ethernet port of a node. */
export interface SimPortIp {
  /** Port id (1-based, repeated on every node). */
  id: number;
  nodeId: number;
  ip: string;
  ip6: string;
  state: 'configured' | 'online' | 'offline' | 'unconfigured';
  speed: string;
  failover: boolean;
}

/** A FlashCopy mapping. */
export interface SimFcMap {
  id: number;
  name: string;
  sourceId: number;
  targetId: number;
  status: 'idle_or_copied' | 'preparing' | 'prepared' | 'copying' | 'stopped';
  /** Percent copied. */
  progress: number;
  copyRate: number;
  autodelete: boolean;
  startedAt?: number;
}

/** A fault to inject into the next run(s) of one command. */
export type SimFault =
  /** Fail with this CMMVC code (and optional text). */
  | { kind: 'error'; code: string; text?: string }
  /** Print this on stdout instead of the real output (exit 0). */
  | { kind: 'output'; stdout: string }
  /** Never answer (until the connection is closed): tests command timeouts. */
  | { kind: 'hang' }
  /** `lssystem`: report `open_access_enabled on`. */
  | { kind: 'open_access' }
  /** `lsmdiskgrp`: report the pool `offline`. */
  | { kind: 'pool_offline' }
  /** Concise views: drop the last header column (Cinder's `header_mismatch`). */
  | { kind: 'header_mismatch' };

/** What a command produced. */
export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  /** Set when the command must not be answered (an injected hang). */
  hang?: boolean;
}

/**
 * Real storage behind the simulator (the lab's LIO backing). Every hook may be async; the
 * command fails with CMMVC5786E if a hook throws, and state is changed only after it succeeds.
 */
export interface SimulatorBackingStore {
  createVdisk?(vdisk: SimVdisk): Promise<void> | void;
  deleteVdisk?(vdisk: SimVdisk): Promise<void> | void;
  resizeVdisk?(vdisk: SimVdisk, newCapacity: number): Promise<void> | void;
  /** Copy all data of `source` onto `target` (FlashCopy start: the point in time). */
  copyVdisk?(source: SimVdisk, target: SimVdisk): Promise<void> | void;
  mapVdisk?(vdisk: SimVdisk, host: SimHost, scsiId: number): Promise<void> | void;
  unmapVdisk?(vdisk: SimVdisk, host: SimHost, scsiId: number): Promise<void> | void;
}

/** Options of {@link FlashSystemState}. */
export interface FlashSystemStateOptions {
  /** Cluster name (`lssystem name`). Default `flashsystem_sim`. */
  systemName?: string;
  /** Cluster id (`lssystem id`, 16 hex digits). Default `0123456789ABCDEF`. */
  systemId?: string;
  /** Pool name. Default `mdiskgrp0`. */
  poolName?: string;
  /** Pool capacity in bytes. Default 1 TiB. */
  poolCapacity?: number;
  /** Nodes; default two online nodes in I/O group 0, node 1 the config node. */
  nodes?: SimNode[];
  /** IP ports; default port 1 of node 1 at 192.168.1.10 and of node 2 at 192.168.1.11, both online. */
  ports?: SimPortIp[];
  /** Whether the FlashCopy commands exist (a FlashSystem 840/900 has none). Default true. */
  flashCopy?: boolean;
  /** How long a FlashCopy background copy at copy rate 50 takes, in ms (rate 100 is 4x faster). Default 200. */
  copyDurationMs?: number;
  /** The CMMVC code `mkvdiskhostmap` returns for a vdisk mapped elsewhere without `-force`: CMMVC6071E (default) or CMMVC6045E. */
  multiHostMapError?: 'CMMVC6071E' | 'CMMVC6045E';
  /** Real storage behind the vdisks. */
  backing?: SimulatorBackingStore;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
}

interface ParsedCommand {
  prefix: 'svcinfo' | 'svctask' | '';
  name: string;
  flags: Map<string, string | true>;
  obj?: string;
}

const VALUE_FLAGS = new Set([
  'delim',
  'host',
  'iogrp',
  'iscsiname',
  'hbawwpn',
  'mdiskgrp',
  'name',
  'scsi',
  'size',
  'unit',
  'source',
  'target',
  'copyrate',
  'cleanrate',
  'filtervalue',
]);
const BOOL_FLAGS = new Set(['bytes', 'force', 'autodelete', 'prep', 'nohdr']);
const NAME_RE = /^[A-Za-z_][A-Za-z0-9 ._-]*$/;
const UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4, pb: 1024 ** 5 };
const DEFAULT_NODES: SimNode[] = [
  { id: 1, name: 'node1', ioGroupId: 0, wwnn: '5005076802002B6C', status: 'online', iscsiName: 'iqn.1986-03.com.ibm:2145.flashsystemsim.node1', configNode: true },
  { id: 2, name: 'node2', ioGroupId: 0, wwnn: '5005076802002B6D', status: 'online', iscsiName: 'iqn.1986-03.com.ibm:2145.flashsystemsim.node2', configNode: false },
];
const DEFAULT_PORTS: SimPortIp[] = [
  { id: 1, nodeId: 1, ip: '192.168.1.10', ip6: '', state: 'online', speed: '10Gb/s', failover: false },
  { id: 1, nodeId: 2, ip: '192.168.1.11', ip6: '', state: 'online', speed: '10Gb/s', failover: false },
  { id: 2, nodeId: 1, ip: '', ip6: '', state: 'unconfigured', speed: 'NONE', failover: false },
];

/**
 * The simulated cluster. `execute(line)` runs one command line exactly as the SSH server
 * receives it; the public collections may be read (and, by tests, changed) directly.
 */
export class FlashSystemState {
  readonly systemName: string;
  readonly systemId: string;
  readonly poolName: string;
  poolCapacity: number;
  poolStatus: 'online' | 'offline' = 'online';
  openAccessEnabled = false;
  flashCopy: boolean;
  copyDurationMs: number;
  multiHostMapError: 'CMMVC6071E' | 'CMMVC6045E';
  readonly vdisks = new Map<number, SimVdisk>();
  readonly hosts = new Map<number, SimHost>();
  readonly mappings = new Map<number, SimMapping>();
  readonly fcmaps = new Map<number, SimFcMap>();
  readonly nodes: SimNode[];
  readonly ports: SimPortIp[];
  /** Every command line received, in order (tests assert on it). */
  readonly commandLog: string[] = [];
  backing: SimulatorBackingStore | undefined;
  private readonly faults = new Map<string, { fault: SimFault; times: number }[]>();
  private readonly now: () => number;
  private serial = Promise.resolve();

  constructor(options: FlashSystemStateOptions = {}) {
    this.systemName = options.systemName ?? 'flashsystem_sim';
    this.systemId = options.systemId ?? '0123456789ABCDEF';
    this.poolName = options.poolName ?? 'mdiskgrp0';
    this.poolCapacity = options.poolCapacity ?? 1024 ** 4;
    this.nodes = (options.nodes ?? DEFAULT_NODES).map((n) => ({ ...n }));
    this.ports = (options.ports ?? DEFAULT_PORTS).map((p) => ({ ...p }));
    this.flashCopy = options.flashCopy ?? true;
    this.copyDurationMs = options.copyDurationMs ?? 200;
    this.multiHostMapError = options.multiHostMapError ?? 'CMMVC6071E';
    this.backing = options.backing;
    this.now = options.now ?? Date.now;
  }

  /**
   * Make the next `times` runs of `command` (e.g. `mkvdiskhostmap`) fail or misbehave as
   * `fault` says. Faults queue up per command and are used first in, first out.
   */
  injectFault(command: string, fault: SimFault, times = 1): void {
    const q = this.faults.get(command) ?? [];
    q.push({ fault, times });
    this.faults.set(command, q);
  }

  /** Drop every pending fault. */
  clearFaults(): void {
    this.faults.clear();
  }

  /** Free pool capacity in bytes (capacity minus the vdisks' capacity). */
  freeCapacity(): number {
    let used = 0;
    for (const v of this.vdisks.values()) used += v.capacity;
    return Math.max(0, this.poolCapacity - used);
  }

  /** The vdisk named or numbered `ref`. */
  findVdisk(ref: string): SimVdisk | undefined {
    if (/^\d+$/.test(ref)) return this.vdisks.get(Number(ref));
    for (const v of this.vdisks.values()) if (v.name === ref) return v;
    return undefined;
  }

  /** The host named or numbered `ref`. */
  findHost(ref: string): SimHost | undefined {
    if (/^\d+$/.test(ref)) return this.hosts.get(Number(ref));
    for (const h of this.hosts.values()) if (h.name === ref) return h;
    return undefined;
  }

  /** The mappings of a host or of a vdisk. */
  mappingsOf(filter: { hostId?: number; vdiskId?: number }): SimMapping[] {
    return [...this.mappings.values()]
      .filter((m) => (filter.hostId === undefined || m.hostId === filter.hostId) && (filter.vdiskId === undefined || m.vdiskId === filter.vdiskId))
      .sort((a, b) => a.scsiId - b.scsiId || a.id - b.id);
  }

  /**
   * Run one command line. Commands run one at a time (the array serialises configuration
   * changes), so concurrent callers see a consistent state.
   */
  execute(line: string): Promise<CommandResult> {
    const run = this.serial.then(() => this.executeNow(line));
    this.serial = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async executeNow(line: string): Promise<CommandResult> {
    this.commandLog.push(line);
    this.tick();
    let words: string[];
    try {
      words = tokenize(line);
    } catch (err) {
      if (err instanceof ShellSyntaxError) return { stdout: '', stderr: `rbash: ${err.message}\n`, exitCode: 2 };
      throw err;
    }
    let parsed: ParsedCommand;
    try {
      parsed = parseCommand(words);
    } catch (err) {
      if (err instanceof CliError) return { stdout: '', stderr: `${err.message}\n`, exitCode: 1 };
      throw err;
    }
    const fault = this.takeFault(parsed.name);
    if (fault?.kind === 'hang') return { stdout: '', stderr: '', exitCode: 0, hang: true };
    if (fault?.kind === 'error') return { stdout: '', stderr: `${new CliError(fault.code, fault.text).message}\n`, exitCode: 1 };
    if (fault?.kind === 'output') return { stdout: fault.stdout, stderr: '', exitCode: 0 };
    try {
      const stdout = await this.dispatch(parsed, fault);
      return { stdout, stderr: '', exitCode: 0 };
    } catch (err) {
      if (err instanceof CliError) return { stdout: '', stderr: `${err.message}\n`, exitCode: 1 };
      return { stdout: '', stderr: `CMMVC5786E ${(err as Error).message}\n`, exitCode: 1 };
    }
  }

  private takeFault(command: string): SimFault | undefined {
    const q = this.faults.get(command);
    if (!q || q.length === 0) return undefined;
    const head = q[0]!;
    head.times -= 1;
    if (head.times <= 0) q.shift();
    return head.fault;
  }

  /** Advance FlashCopy background copies to the current time. */
  tick(): void {
    const t = this.now();
    for (const m of [...this.fcmaps.values()]) {
      if (m.status !== 'copying' || m.startedAt === undefined) continue;
      if (m.copyRate === 0) continue;
      const duration = (this.copyDurationMs * 50) / m.copyRate;
      m.progress = Math.min(100, Math.floor(((t - m.startedAt) / Math.max(1, duration)) * 100));
      if (m.progress >= 100) {
        m.status = 'idle_or_copied';
        m.progress = 100;
        if (m.autodelete) this.fcmaps.delete(m.id);
      }
    }
  }

  private async dispatch(c: ParsedCommand, fault: SimFault | undefined): Promise<string> {
    const delim = typeof c.flags.get('delim') === 'string' ? (c.flags.get('delim') as string) : undefined;
    const headerMismatch = fault?.kind === 'header_mismatch';
    switch (c.name) {
      case 'lssystem':
        return detailed(
          [
            ['id', this.systemId],
            ['name', this.systemName],
            ['location', 'local'],
            ['total_mdisk_capacity', fmtBytes(this.poolCapacity)],
            ['code_level', '8.5.0.0 (build 157.12.2203111203000)'],
            ['product_name', 'IBM FlashSystem (simulated)'],
            ['open_access_enabled', this.openAccessEnabled || fault?.kind === 'open_access' ? 'on' : 'off'],
          ],
          delim,
        );
      case 'lsmdiskgrp':
        return this.lsmdiskgrp(c, delim, fault);
      case 'lsiogrp':
        return concise(
          ['id', 'name', 'node_count', 'vdisk_count', 'host_count'],
          [0, 1, 2, 3].map((g) => [String(g), `io_grp${g}`, String(this.nodes.filter((n) => n.ioGroupId === g).length), String([...this.vdisks.values()].filter((v) => v.ioGroupId === g).length), String(g === 0 ? this.hosts.size : 0)]),
          delim,
          headerMismatch,
        );
      case 'lsnode':
        return this.lsnode(c, delim, headerMismatch);
      case 'lsportip':
        return concise(
          ['id', 'node_id', 'node_name', 'IP_address', 'mask', 'gateway', 'IP_address_6', 'prefix_6', 'gateway_6', 'MAC', 'duplex', 'state', 'speed', 'failover'],
          this.ports.map((p) => {
            const node = this.nodes.find((n) => n.id === p.nodeId);
            return [String(p.id), String(p.nodeId), node?.name ?? '', p.ip, p.ip ? '255.255.255.0' : '', p.ip ? p.ip.replace(/\.\d+$/, '.1') : '', p.ip6, p.ip6 ? '64' : '', '', `00:1a:64:00:${String(p.nodeId).padStart(2, '0')}:${String(p.id).padStart(2, '0')}`, 'Full', p.state, p.speed, p.failover ? 'yes' : 'no'];
          }),
          delim,
          headerMismatch,
        );
      case 'lsvdisk':
        return this.lsvdisk(c, delim, headerMismatch);
      case 'mkvdisk':
        return this.mkvdisk(c);
      case 'rmvdisk':
        return this.rmvdisk(c);
      case 'expandvdisksize':
        return this.expandvdisksize(c);
      case 'chvdisk':
        return this.chvdisk(c);
      case 'lshost':
        return this.lshost(c, delim, headerMismatch);
      case 'mkhost':
        return this.mkhost(c);
      case 'addhostport':
        return this.addhostport(c);
      case 'rmhost':
        return this.rmhost(c);
      case 'lshostvdiskmap':
        return this.lshostvdiskmap(c, delim, headerMismatch);
      case 'lsvdiskhostmap':
        return this.lsvdiskhostmap(c, delim, headerMismatch);
      case 'mkvdiskhostmap':
        return this.mkvdiskhostmap(c);
      case 'rmvdiskhostmap':
        return this.rmvdiskhostmap(c);
      case 'lsfcmap':
      case 'mkfcmap':
      case 'prestartfcmap':
      case 'startfcmap':
      case 'stopfcmap':
      case 'rmfcmap':
        if (!this.flashCopy) throw new CliError('CMMVC7205E');
        return this.fc(c, delim, headerMismatch);
      default:
        throw new CliError('CMMVC6051E', `An unsupported action was selected: ${c.name}.`);
    }
  }

  private lsmdiskgrp(c: ParsedCommand, delim: string | undefined, fault: SimFault | undefined): string {
    const bytes = c.flags.has('bytes');
    const status = fault?.kind === 'pool_offline' ? 'offline' : this.poolStatus;
    const cap = (n: number): string => (bytes ? String(n) : fmtBytes(n));
    const used = this.poolCapacity - this.freeCapacity();
    const attrs: [string, string][] = [
      ['id', '0'],
      ['name', this.poolName],
      ['status', status],
      ['mdisk_count', '1'],
      ['vdisk_count', String(this.vdisks.size)],
      ['capacity', cap(this.poolCapacity)],
      ['extent_size', '1024'],
      ['free_capacity', cap(this.freeCapacity())],
      ['virtual_capacity', cap(used)],
      ['used_capacity', cap(used)],
      ['real_capacity', cap(used)],
      ['overallocation', String(Math.round((used / this.poolCapacity) * 100))],
      ['warning', '80'],
    ];
    if (c.obj === undefined) {
      return concise(
        attrs.map(([k]) => k),
        [attrs.map(([, v]) => v)],
        delim,
        false,
      );
    }
    if (c.obj !== this.poolName && c.obj !== '0') throw new CliError('CMMVC5754E');
    return detailed(attrs, delim);
  }

  private lsnode(c: ParsedCommand, delim: string | undefined, headerMismatch: boolean): string {
    const row = (n: SimNode): string[] => [
      String(n.id),
      n.name,
      '',
      n.wwnn,
      n.status,
      String(n.ioGroupId),
      `io_grp${n.ioGroupId}`,
      n.configNode ? 'yes' : 'no',
      '',
      'SV1',
      n.iscsiName,
      '',
      `7800${n.id}0`,
      '',
      '',
      '',
    ];
    const header = ['id', 'name', 'UPS_serial_number', 'WWNN', 'status', 'IO_group_id', 'IO_group_name', 'config_node', 'UPS_unique_id', 'hardware', 'iscsi_name', 'iscsi_alias', 'panel_name', 'enclosure_id', 'canister_id', 'enclosure_serial_number'];
    if (c.obj !== undefined) {
      const n = this.nodes.find((x) => String(x.id) === c.obj || x.name === c.obj);
      if (!n) throw new CliError('CMMVC5754E');
      const r = row(n);
      return detailed(
        header.map((h, i) => [h, r[i]!] as [string, string]),
        delim,
      );
    }
    return concise(header, this.nodes.map(row), delim, headerMismatch);
  }

  private vdiskAttrs(v: SimVdisk, bytes: boolean): [string, string][] {
    const fcCount = [...this.fcmaps.values()].filter((m) => m.sourceId === v.id || m.targetId === v.id).length;
    return [
      ['id', String(v.id)],
      ['name', v.name],
      ['IO_group_id', String(v.ioGroupId)],
      ['IO_group_name', `io_grp${v.ioGroupId}`],
      ['status', v.status],
      ['mdisk_grp_id', '0'],
      ['mdisk_grp_name', this.poolName],
      ['capacity', bytes ? String(v.capacity) : fmtBytes(v.capacity)],
      ['type', 'striped'],
      ['formatted', 'yes'],
      ['vdisk_UID', v.uid],
      ['preferred_node_id', String(this.nodes.find((n) => n.ioGroupId === v.ioGroupId)?.id ?? '')],
      ['fast_write_state', 'empty'],
      ['cache', 'readwrite'],
      ['udid', ''],
      ['fc_map_count', String(fcCount)],
      ['sync_rate', '50'],
      ['copy_count', '1'],
      ['se_copy_count', '0'],
      ['open_access_scsi_id', ''],
      ['parent_mdisk_grp_id', '0'],
      ['parent_mdisk_grp_name', this.poolName],
    ];
  }

  private lsvdisk(c: ParsedCommand, delim: string | undefined, headerMismatch: boolean): string {
    const bytes = c.flags.has('bytes');
    if (c.obj !== undefined) {
      const v = this.findVdisk(c.obj);
      if (!v) throw new CliError('CMMVC5754E');
      return detailed(this.vdiskAttrs(v, bytes), delim);
    }
    const cols = ['id', 'name', 'IO_group_id', 'IO_group_name', 'status', 'mdisk_grp_id', 'mdisk_grp_name', 'capacity', 'type', 'vdisk_UID', 'fc_map_count'];
    let list = [...this.vdisks.values()].sort((a, b) => a.id - b.id);
    const filter = c.flags.get('filtervalue');
    if (typeof filter === 'string') {
      const m = /^(name|id|vdisk_UID)=(.*)$/.exec(filter);
      if (!m) throw new CliError('CMMVC5709E');
      const [, key, value] = m;
      list = list.filter((v) => (key === 'name' ? v.name === value : key === 'id' ? String(v.id) === value : v.uid === value));
    }
    return concise(
      cols,
      list.map((v) => {
        const a = new Map(this.vdiskAttrs(v, bytes));
        return cols.map((k) => a.get(k) ?? '');
      }),
      delim,
      headerMismatch,
    );
  }

  private async mkvdisk(c: ParsedCommand): Promise<string> {
    const name = str(c, 'name');
    const pool = str(c, 'mdiskgrp');
    const size = str(c, 'size');
    const unit = (optStr(c, 'unit') ?? 'mb').toLowerCase();
    const iogrp = optStr(c, 'iogrp') ?? '0';
    if (!NAME_RE.test(name) || name.endsWith(' ') || name.length > 63) throw new CliError('CMMVC6527E');
    if (pool !== this.poolName && pool !== '0') throw new CliError('CMMVC5754E');
    const iogrpId = Number(iogrp.replace(/^io_grp/, ''));
    if (!Number.isInteger(iogrpId) || !this.nodes.some((n) => n.ioGroupId === iogrpId)) throw new CliError('CMMVC5754E');
    if (!(unit in UNITS) || !/^\d+(\.\d+)?$/.test(size)) throw new CliError('CMMVC6070E');
    const capacity = Math.ceil(Number(size) * UNITS[unit]!);
    if (capacity <= 0) throw new CliError('CMMVC6070E');
    if (this.findVdisk(name)) throw new CliError('CMMVC6035E');
    if (this.poolStatus !== 'online') throw new CliError('CMMVC5786E');
    if (capacity > this.freeCapacity()) throw new CliError('CMMVC5860E');
    const id = lowestFree(this.vdisks.keys());
    const v: SimVdisk = { id, name, capacity, ioGroupId: iogrpId, status: 'online', uid: `60050768${this.systemId.slice(0, 8)}${String(id).padStart(16, '0')}`.toUpperCase() };
    await this.backing?.createVdisk?.(v);
    this.vdisks.set(id, v);
    return `Virtual Disk, id [${id}], successfully created\n`;
  }

  private async rmvdisk(c: ParsedCommand): Promise<string> {
    const v = this.findVdisk(obj(c));
    if (!v) throw new CliError('CMMVC5753E');
    const maps = this.mappingsOf({ vdiskId: v.id });
    const fcs = [...this.fcmaps.values()].filter((m) => m.sourceId === v.id || m.targetId === v.id);
    if ((maps.length > 0 || fcs.length > 0) && !c.flags.has('force')) throw new CliError('CMMVC5840E');
    for (const m of maps) {
      const h = this.hosts.get(m.hostId)!;
      await this.backing?.unmapVdisk?.(v, h, m.scsiId);
      this.mappings.delete(m.id);
    }
    for (const f of fcs) this.fcmaps.delete(f.id);
    await this.backing?.deleteVdisk?.(v);
    this.vdisks.delete(v.id);
    return '';
  }

  private async expandvdisksize(c: ParsedCommand): Promise<string> {
    const v = this.findVdisk(obj(c));
    if (!v) throw new CliError('CMMVC5753E');
    const size = str(c, 'size');
    const unit = (optStr(c, 'unit') ?? 'mb').toLowerCase();
    if (!(unit in UNITS) || !/^\d+(\.\d+)?$/.test(size)) throw new CliError('CMMVC6070E');
    const delta = Math.ceil(Number(size) * UNITS[unit]!);
    if (delta <= 0) throw new CliError('CMMVC6070E');
    if ([...this.fcmaps.values()].some((m) => (m.sourceId === v.id || m.targetId === v.id) && m.status !== 'idle_or_copied' && m.status !== 'stopped')) throw new CliError('CMMVC5903E');
    if (delta > this.freeCapacity()) throw new CliError('CMMVC5860E');
    await this.backing?.resizeVdisk?.(v, v.capacity + delta);
    v.capacity += delta;
    return '';
  }

  private chvdisk(c: ParsedCommand): string {
    const v = this.findVdisk(obj(c));
    if (!v) throw new CliError('CMMVC5753E');
    const name = str(c, 'name');
    if (!NAME_RE.test(name) || name.endsWith(' ') || name.length > 63) throw new CliError('CMMVC6527E');
    const other = this.findVdisk(name);
    if (other && other !== v) throw new CliError('CMMVC6035E');
    v.name = name;
    return '';
  }

  private lshost(c: ParsedCommand, delim: string | undefined, headerMismatch: boolean): string {
    if (c.obj !== undefined) {
      const h = this.findHost(c.obj);
      if (!h) throw new CliError('CMMVC5754E');
      const attrs: [string, string][] = [
        ['id', String(h.id)],
        ['name', h.name],
        ['port_count', String(h.iscsiNames.length + h.wwpns.length)],
        ['type', 'generic'],
        ['mask', '1111111111111111111111111111111111111111111111111111111111111111'],
        ['iogrp_count', '4'],
        ['status', 'online'],
      ];
      for (const iqn of h.iscsiNames) {
        attrs.push(['iscsi_name', iqn]);
        attrs.push(['node_logged_in_count', '0']);
        attrs.push(['state', 'offline']);
      }
      for (const w of h.wwpns) {
        attrs.push(['WWPN', w]);
        attrs.push(['node_logged_in_count', '0']);
        attrs.push(['state', 'inactive']);
      }
      return detailed(attrs, delim);
    }
    if (this.hosts.size === 0) return '';
    return concise(
      ['id', 'name', 'port_count', 'iogrp_count', 'status'],
      [...this.hosts.values()].sort((a, b) => a.id - b.id).map((h) => [String(h.id), h.name, String(h.iscsiNames.length + h.wwpns.length), '4', 'online']),
      delim,
      headerMismatch,
    );
  }

  private checkIqn(iqn: string): void {
    if (!/^(iqn\.\d{4}-\d{2}\.[A-Za-z0-9.:-]+|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16,32})$/.test(iqn) || iqn.length > 223) throw new CliError('CMMVC6581E');
    for (const h of this.hosts.values()) if (h.iscsiNames.some((x) => x.toLowerCase() === iqn.toLowerCase())) throw new CliError('CMMVC6581E');
  }

  private mkhost(c: ParsedCommand): string {
    const name = optStr(c, 'name');
    const iqn = optStr(c, 'iscsiname');
    const wwpn = optStr(c, 'hbawwpn');
    if (!iqn && !wwpn) throw new CliError('CMMVC5707E');
    if (name !== undefined) {
      if (!NAME_RE.test(name) || name.endsWith(' ') || name.length > 63) throw new CliError('CMMVC6527E');
      if (this.findHost(name)) throw new CliError('CMMVC6035E');
    }
    const iqns = iqn ? iqn.split(',') : [];
    for (const q of iqns) this.checkIqn(q);
    const wwpns = wwpn ? wwpn.split(':') : [];
    for (const w of wwpns) {
      if (!/^[0-9A-Fa-f]{16}$/.test(w)) throw new CliError('CMMVC5867E', 'The action failed because the worldwide port name is already assigned or is not valid.');
      for (const h of this.hosts.values()) if (h.wwpns.includes(w.toUpperCase())) throw new CliError('CMMVC5867E', 'The action failed because the worldwide port name is already assigned or is not valid.');
    }
    const id = lowestFree(this.hosts.keys());
    this.hosts.set(id, { id, name: name ?? `host${id}`, iscsiNames: iqns, wwpns: wwpns.map((w) => w.toUpperCase()) });
    return `Host, id [${id}], successfully created\n`;
  }

  private addhostport(c: ParsedCommand): string {
    const h = this.findHost(obj(c));
    if (!h) throw new CliError('CMMVC5753E');
    const iqn = optStr(c, 'iscsiname');
    if (!iqn) throw new CliError('CMMVC5707E');
    this.checkIqn(iqn);
    h.iscsiNames.push(iqn);
    return '';
  }

  private rmhost(c: ParsedCommand): string {
    const h = this.findHost(obj(c));
    if (!h) throw new CliError('CMMVC5753E');
    const maps = this.mappingsOf({ hostId: h.id });
    if (maps.length > 0 && !c.flags.has('force')) throw new CliError('CMMVC5871E');
    for (const m of maps) this.mappings.delete(m.id);
    this.hosts.delete(h.id);
    return '';
  }

  private lshostvdiskmap(c: ParsedCommand, delim: string | undefined, headerMismatch: boolean): string {
    const h = this.findHost(obj(c));
    if (!h) throw new CliError('CMMVC5754E');
    return concise(
      ['id', 'name', 'SCSI_id', 'vdisk_id', 'vdisk_name', 'vdisk_UID', 'IO_group_id', 'IO_group_name', 'mapping_type'],
      this.mappingsOf({ hostId: h.id }).map((m) => {
        const v = this.vdisks.get(m.vdiskId)!;
        return [String(h.id), h.name, String(m.scsiId), String(v.id), v.name, v.uid, String(v.ioGroupId), `io_grp${v.ioGroupId}`, 'private'];
      }),
      delim,
      headerMismatch,
    );
  }

  private lsvdiskhostmap(c: ParsedCommand, delim: string | undefined, headerMismatch: boolean): string {
    const v = this.findVdisk(obj(c));
    if (!v) throw new CliError('CMMVC5754E');
    const maps = this.mappingsOf({ vdiskId: v.id });
    if (maps.length === 0) return '';
    return concise(
      ['id', 'name', 'SCSI_id', 'host_id', 'host_name', 'vdisk_UID', 'IO_group_id', 'IO_group_name', 'mapping_type'],
      maps.map((m) => {
        const h = this.hosts.get(m.hostId)!;
        return [String(v.id), v.name, String(m.scsiId), String(h.id), h.name, v.uid, String(v.ioGroupId), `io_grp${v.ioGroupId}`, 'private'];
      }),
      delim,
      headerMismatch,
    );
  }

  private async mkvdiskhostmap(c: ParsedCommand): Promise<string> {
    const hostRef = str(c, 'host');
    const v = this.findVdisk(obj(c));
    const h = this.findHost(hostRef);
    if (!v || !h) throw new CliError('CMMVC5753E');
    const scsiText = optStr(c, 'scsi');
    const hostMaps = this.mappingsOf({ hostId: h.id });
    if (hostMaps.some((m) => m.vdiskId === v.id)) throw new CliError('CMMVC5878E', 'The VDisk-to-host mapping was not created because this VDisk is already mapped to this host.');
    let scsiId: number;
    if (scsiText === undefined) {
      scsiId = 0;
      while (hostMaps.some((m) => m.scsiId === scsiId)) scsiId++;
    } else {
      if (!/^\d+$/.test(scsiText) || Number(scsiText) > 2047) throw new CliError('CMMVC6070E');
      scsiId = Number(scsiText);
      if (hostMaps.some((m) => m.scsiId === scsiId)) throw new CliError('CMMVC5879E');
    }
    if (this.mappingsOf({ vdiskId: v.id }).length > 0 && !c.flags.has('force')) throw new CliError(this.multiHostMapError);
    await this.backing?.mapVdisk?.(v, h, scsiId);
    const id = lowestFree(this.mappings.keys());
    this.mappings.set(id, { id, hostId: h.id, vdiskId: v.id, scsiId });
    return `Virtual Disk to Host map, id [${id}], successfully created\n`;
  }

  private async rmvdiskhostmap(c: ParsedCommand): Promise<string> {
    const h = this.findHost(str(c, 'host'));
    const v = this.findVdisk(obj(c));
    if (!v || !h) throw new CliError('CMMVC5753E');
    const m = this.mappingsOf({ hostId: h.id, vdiskId: v.id })[0];
    if (!m) throw new CliError('CMMVC5842E');
    await this.backing?.unmapVdisk?.(v, h, m.scsiId);
    this.mappings.delete(m.id);
    return '';
  }

  private findFcMap(ref: string): SimFcMap | undefined {
    if (/^\d+$/.test(ref)) return this.fcmaps.get(Number(ref));
    for (const m of this.fcmaps.values()) if (m.name === ref) return m;
    return undefined;
  }

  private fcAttrs(m: SimFcMap): [string, string][] {
    const s = this.vdisks.get(m.sourceId);
    const t = this.vdisks.get(m.targetId);
    return [
      ['id', String(m.id)],
      ['name', m.name],
      ['source_vdisk_id', String(m.sourceId)],
      ['source_vdisk_name', s?.name ?? ''],
      ['target_vdisk_id', String(m.targetId)],
      ['target_vdisk_name', t?.name ?? ''],
      ['group_id', ''],
      ['group_name', ''],
      ['status', m.status],
      ['progress', String(m.progress)],
      ['copy_rate', String(m.copyRate)],
      ['clean_progress', '100'],
      ['incremental', 'off'],
      ['autodelete', m.autodelete ? 'on' : 'off'],
      ['start_time', m.startedAt !== undefined ? svcTime(m.startedAt) : ''],
    ];
  }

  private async fc(c: ParsedCommand, delim: string | undefined, headerMismatch: boolean): Promise<string> {
    switch (c.name) {
      case 'lsfcmap': {
        if (c.obj !== undefined) {
          const m = this.findFcMap(c.obj);
          if (!m) throw new CliError('CMMVC5754E');
          return detailed(this.fcAttrs(m), delim);
        }
        const cols = ['id', 'name', 'source_vdisk_id', 'source_vdisk_name', 'target_vdisk_id', 'target_vdisk_name', 'group_id', 'group_name', 'status', 'progress', 'copy_rate', 'clean_progress', 'incremental', 'start_time'];
        return concise(
          cols,
          [...this.fcmaps.values()].map((m) => {
            const a = new Map(this.fcAttrs(m));
            return cols.map((k) => a.get(k) ?? '');
          }),
          delim,
          headerMismatch,
        );
      }
      case 'mkfcmap': {
        const s = this.findVdisk(str(c, 'source'));
        const t = this.findVdisk(str(c, 'target'));
        if (!s || !t) throw new CliError('CMMVC5754E');
        if (s.id === t.id) throw new CliError('CMMVC5741E');
        if (s.capacity !== t.capacity) throw new CliError('CMMVC5924E');
        const rateText = optStr(c, 'copyrate') ?? '50';
        if (!/^\d+$/.test(rateText) || Number(rateText) > 150) throw new CliError('CMMVC6070E');
        const name = optStr(c, 'name');
        const id = lowestFree(this.fcmaps.keys());
        this.fcmaps.set(id, { id, name: name ?? `fcmap${id}`, sourceId: s.id, targetId: t.id, status: 'idle_or_copied', progress: 0, copyRate: Number(rateText), autodelete: c.flags.has('autodelete') });
        return `FlashCopy Mapping, id [${id}], successfully created\n`;
      }
      case 'prestartfcmap': {
        const m = this.findFcMap(obj(c));
        if (!m) throw new CliError('CMMVC5753E');
        if (m.status !== 'idle_or_copied' && m.status !== 'stopped') throw new CliError('CMMVC5903E');
        m.status = 'prepared';
        return '';
      }
      case 'startfcmap': {
        const m = this.findFcMap(obj(c));
        if (!m) throw new CliError('CMMVC5753E');
        if (c.flags.has('prep')) {
          if (m.status !== 'idle_or_copied' && m.status !== 'stopped' && m.status !== 'prepared') throw new CliError('CMMVC5903E');
        } else if (m.status !== 'prepared') throw new CliError('CMMVC5907E');
        const s = this.vdisks.get(m.sourceId)!;
        const t = this.vdisks.get(m.targetId)!;
        await this.backing?.copyVdisk?.(s, t);
        m.status = 'copying';
        m.progress = 0;
        m.startedAt = this.now();
        this.tick();
        return '';
      }
      case 'stopfcmap': {
        const m = this.findFcMap(obj(c));
        if (!m) throw new CliError('CMMVC5753E');
        if (m.status === 'copying' || m.status === 'prepared') m.status = 'stopped';
        return '';
      }
      case 'rmfcmap': {
        const m = this.findFcMap(obj(c));
        if (!m) throw new CliError('CMMVC5753E');
        if ((m.status === 'copying' || m.status === 'prepared') && !c.flags.has('force')) throw new CliError('CMMVC5903E');
        this.fcmaps.delete(m.id);
        return '';
      }
      default:
        throw new CliError('CMMVC6051E');
    }
  }
}

function parseCommand(words: string[]): ParsedCommand {
  if (words.length === 0) throw new CliError('CMMVC6051E');
  let prefix: ParsedCommand['prefix'] = '';
  let i = 0;
  if (words[0] === 'svcinfo' || words[0] === 'svctask') {
    prefix = words[0];
    i = 1;
  }
  const name = words[i++];
  if (!name) throw new CliError('CMMVC6051E');
  const flags = new Map<string, string | true>();
  let objRef: string | undefined;
  for (; i < words.length; i++) {
    const w = words[i]!;
    if (w.startsWith('-') && w.length > 1 && !/^-\d/.test(w)) {
      const f = w.slice(1);
      if (flags.has(f)) throw new CliError('CMMVC6070E');
      if (BOOL_FLAGS.has(f)) flags.set(f, true);
      else if (VALUE_FLAGS.has(f)) {
        const v = words[++i];
        if (v === undefined) throw new CliError('CMMVC6070E');
        flags.set(f, v);
      } else throw new CliError('CMMVC5709E', `[-${f}] is not a supported parameter.`);
    } else {
      if (objRef !== undefined) throw new CliError('CMMVC6070E');
      objRef = w;
    }
  }
  return { prefix, name, flags, ...(objRef !== undefined ? { obj: objRef } : {}) };
}

function str(c: ParsedCommand, flag: string): string {
  const v = c.flags.get(flag);
  if (typeof v !== 'string') throw new CliError('CMMVC5707E');
  return v;
}

function optStr(c: ParsedCommand, flag: string): string | undefined {
  const v = c.flags.get(flag);
  return typeof v === 'string' ? v : undefined;
}

function obj(c: ParsedCommand): string {
  if (c.obj === undefined) throw new CliError('CMMVC5701E');
  return c.obj;
}

function lowestFree(ids: Iterable<number>): number {
  const used = new Set(ids);
  let i = 0;
  while (used.has(i)) i++;
  return i;
}

/** The CLI's human capacity format (`10.00GB`). */
function fmtBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(2)}${units[u]}`;
}

function svcTime(ms: number): string {
  const d = new Date(ms);
  const p = (x: number): string => String(x).padStart(2, '0');
  return `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
}

/** Detailed view: `attr<delim>value` lines (aligned `attr value` without `-delim`). */
function detailed(attrs: [string, string][], delim: string | undefined): string {
  return attrs.map(([k, v]) => (delim !== undefined ? `${k}${delim}${v}` : `${k} ${v}`)).join('\n') + '\n';
}

/** Concise view: a header and rows (aligned columns without `-delim`). */
function concise(header: string[], rows: string[][], delim: string | undefined, headerMismatch: boolean): string {
  const head = headerMismatch ? header.slice(0, -1) : header;
  if (delim !== undefined) return [head, ...rows].map((r) => r.join(delim)).join('\n') + '\n';
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join(' ').trimEnd()).join('\n') + '\n';
}
